//! Kratos' identity admin API on a running `reclaim serve`, and what a
//! change to an identity ends, whoever makes it: through the API, or in the
//! database table behind the server's back (as a platform's own jobs do).

use reqwest::blocking::Response;
use serde_json::{Value, json};

use crate::common::{
    FormToken, NEW_PASSWORD, Server, admin, admin_link, client, link_in, password_form,
    password_is, redeem, set_password, token_of,
};

/// Creates an identity through the API; its `Identity`.
fn create(server: &Server, traits: Value) -> Value {
    let response = admin(server, reqwest::Method::POST, "/admin/identities")
        .json(&json!({ "schema_id": "default", "traits": traits }))
        .send()
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().unwrap()
}

fn put(server: &Server, identity: &Value, body: Value) -> Response {
    admin(
        server,
        reqwest::Method::PUT,
        &format!("/admin/identities/{}", identity["id"].as_str().unwrap()),
    )
    .json(&body)
    .send()
    .unwrap()
}

fn deactivate(server: &Server, identity: &Value) {
    let response = put(
        server,
        identity,
        json!({ "schema_id": "default", "state": "inactive", "traits": identity["traits"] }),
    );
    assert_eq!(response.status(), 200);
}

/// Runs SQL on the server's SQLite file, as the platform's own code would.
fn behind_the_back(server: &Server, sql: &str, id: &str) {
    let db = rusqlite::Connection::open(server.data.path().join("reclaim.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    assert_eq!(db.execute(sql, [id]).unwrap(), 1, "{sql}");
}

#[test]
fn a_session_opened_before_deactivation_cannot_set_the_password() {
    let server = Server::start();
    let ann = create(
        &server,
        json!({ "email": "ann@example.com", "name": "Ann" }),
    );
    let form = FormToken::fetch(&server);
    let cookie = redeem(&server, &form, &admin_link(&server, &ann));
    assert_eq!(password_form(&server, &cookie), 200);
    deactivate(&server, &ann);
    assert_eq!(password_form(&server, &cookie), 401);
    assert_eq!(
        set_password(&server, &form, &cookie, NEW_PASSWORD).status(),
        401
    );
    // Re-enabled, the account still has no password set by that session.
    let enabled = put(
        &server,
        &ann,
        json!({ "schema_id": "default", "state": "active", "traits": ann["traits"] }),
    );
    assert_eq!(enabled.status(), 200);
    assert_eq!(
        set_password(&server, &form, &cookie, NEW_PASSWORD).status(),
        401
    );
    assert!(!password_is(&server, &ann, NEW_PASSWORD));
}

#[test]
fn a_session_is_refused_once_the_platform_disables_the_account_in_its_table() {
    let server = Server::start();
    let ann = create(&server, json!({ "email": "ann@example.com" }));
    let form = FormToken::fetch(&server);
    let cookie = redeem(&server, &form, &admin_link(&server, &ann));
    behind_the_back(
        &server,
        "UPDATE identities SET active = 0 WHERE id = ?",
        ann["id"].as_str().unwrap(),
    );
    let refused = set_password(&server, &form, &cookie, NEW_PASSWORD);
    assert_eq!(refused.status(), 401);
    assert!(!refused.text().unwrap().contains("Password changed"));
    behind_the_back(
        &server,
        "UPDATE identities SET active = 1 WHERE id = ?",
        ann["id"].as_str().unwrap(),
    );
    assert_eq!(
        set_password(&server, &form, &cookie, NEW_PASSWORD).status(),
        401
    );
    assert!(!password_is(&server, &ann, NEW_PASSWORD));
}

#[test]
fn a_session_opened_before_deletion_cannot_set_the_password() {
    let server = Server::start();
    let ann = create(&server, json!({ "email": "ann@example.com" }));
    let form = FormToken::fetch(&server);
    let cookie = redeem(&server, &form, &admin_link(&server, &ann));
    let deleted = admin(
        &server,
        reqwest::Method::DELETE,
        &format!("/admin/identities/{}", ann["id"].as_str().unwrap()),
    )
    .send()
    .unwrap();
    assert_eq!(deleted.status(), 204);
    let refused = set_password(&server, &form, &cookie, NEW_PASSWORD);
    assert_eq!(refused.status(), 401);
    assert!(!refused.text().unwrap().contains("Password changed"));
}

#[test]
fn a_session_is_refused_once_the_platform_deletes_the_row() {
    let server = Server::start();
    let ann = create(&server, json!({ "email": "ann@example.com" }));
    let form = FormToken::fetch(&server);
    let cookie = redeem(&server, &form, &admin_link(&server, &ann));
    behind_the_back(
        &server,
        "DELETE FROM identities WHERE id = ?",
        ann["id"].as_str().unwrap(),
    );
    let refused = set_password(&server, &form, &cookie, NEW_PASSWORD);
    assert_eq!(refused.status(), 401);
}

/// Mails Ann a link through the self-service form; the link.
fn mailed_link(server: &Server, email: &str, mail_so_far: usize) -> String {
    FormToken::fetch(server).post(server, "/self-service/recovery", &[("email", email)]);
    let mail = server.mail(mail_so_far + 1);
    let newest = mail
        .iter()
        .rev()
        .find(|m| {
            crate::common::header(m, "To").is_some_and(|to| to.contains(email))
                && m.contains("/self-service/recovery?flow=")
        })
        .unwrap_or_else(|| panic!("no link mailed to {email}: {mail:?}"));
    link_in(newest, &server.base).unwrap()
}

#[test]
fn a_link_sent_before_an_address_change_through_the_api_is_refused_after_it() {
    let server = Server::start();
    let ann = create(
        &server,
        json!({ "email": "ann@old.example", "name": "Ann", "locale": "de" }),
    );
    let old_link = mailed_link(&server, "ann@old.example", 0);
    let patched = admin(
        &server,
        reqwest::Method::PATCH,
        &format!("/admin/identities/{}", ann["id"].as_str().unwrap()),
    )
    .json(&json!([{ "op": "replace", "path": "/traits/email", "value": "ann@new.example" }]))
    .send()
    .unwrap();
    assert_eq!(patched.status(), 200);
    let patched: Value = patched.json().unwrap();
    assert_eq!(patched["recovery_addresses"][0]["value"], "ann@new.example");
    let form = FormToken::fetch(&server);
    let refused = form.post(
        &server,
        "/self-service/recovery/confirm",
        &[("token", &token_of(&old_link))],
    );
    assert_eq!(refused.status(), 410);
    // The old mailbox is told, in Ann's language.
    let mail = server.mail(2);
    let notice = mail
        .iter()
        .find(|m| m.contains("Die Wiederherstellungsadresse"))
        .unwrap_or_else(|| panic!("no notice: {mail:?}"));
    assert!(notice.contains("ann@old.example>"), "{notice}");
    assert!(notice.contains("ann@new.example"), "{notice}");
    assert!(!notice.contains("token="), "the notice carries no way in");
    // The new address recovers as before.
    let new_link = mailed_link(&server, "ann@new.example", 2);
    redeem(&server, &form, &new_link);
}

#[test]
fn a_link_sent_before_the_platform_changes_the_address_in_its_table_is_refused() {
    let server = Server::start();
    let ann = create(&server, json!({ "email": "ann@old.example" }));
    let old_link = mailed_link(&server, "ann@old.example", 0);
    let still_good = admin_link(&server, &ann);
    behind_the_back(
        &server,
        "UPDATE identities SET email = 'ann@new.example' WHERE id = ?",
        ann["id"].as_str().unwrap(),
    );
    let form = FormToken::fetch(&server);
    for link in [&old_link, &still_good] {
        let refused = form.post(
            &server,
            "/self-service/recovery/confirm",
            &[("token", &token_of(link))],
        );
        assert_eq!(refused.status(), 410, "{link}");
    }
    // Only a case change is no change.
    let fresh = admin_link(&server, &ann);
    behind_the_back(
        &server,
        "UPDATE identities SET email = 'ANN@new.example' WHERE id = ?",
        ann["id"].as_str().unwrap(),
    );
    redeem(&server, &form, &fresh);
}

#[test]
fn removing_the_address_refuses_the_links_sent_to_it() {
    let server = Server::start();
    let ann = create(&server, json!({ "email": "ann@example.com" }));
    let link = admin_link(&server, &ann);
    behind_the_back(
        &server,
        "UPDATE identities SET email = NULL WHERE id = ?",
        ann["id"].as_str().unwrap(),
    );
    let refused = FormToken::fetch(&server).post(
        &server,
        "/self-service/recovery/confirm",
        &[("token", &token_of(&link))],
    );
    assert_eq!(refused.status(), 410);
}

#[test]
fn an_administrators_reissue_ends_the_session_of_the_old_link() {
    let server = Server::start();
    let ann = create(&server, json!({ "email": "ann@example.com" }));
    let form = FormToken::fetch(&server);
    let cookie = redeem(&server, &form, &admin_link(&server, &ann));
    assert_eq!(password_form(&server, &cookie), 200);
    admin_link(&server, &ann);
    assert_eq!(password_form(&server, &cookie), 401);
    assert_eq!(
        set_password(&server, &form, &cookie, NEW_PASSWORD).status(),
        401
    );
}

/// Three live codes of Ann's (older ones are not revoked here): a flow and
/// its code each.
fn codes(server: &Server, ann: &Value, count: usize) -> Vec<(String, String)> {
    (0..count)
        .map(|_| {
            let created: Value = admin(server, reqwest::Method::POST, "/admin/recovery/code")
                .json(&json!({ "identity_id": ann["id"] }))
                .send()
                .unwrap()
                .json()
                .unwrap();
            let link = created["recovery_link"].as_str().unwrap();
            (
                link.split("flow=").nth(1).unwrap().to_string(),
                created["recovery_code"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn wrong(code: &str) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
}

#[test]
fn guesses_across_flows_stop_at_the_per_identity_cap() {
    let server = Server::start_with(&[("RECLAIM_REVOKE_OLDER_LINKS", "false")]);
    let ann = create(&server, json!({ "email": "ann@example.com" }));
    let flows = codes(&server, &ann, 3);
    let form = FormToken::fetch(&server);
    let submit = |flow: &str, code: &str| {
        form.post(
            &server,
            "/self-service/recovery/code",
            &[("flow", flow), ("code", code)],
        )
    };
    // Five wrong codes on the first flow kill it; five on the second reach
    // the identity's cap of ten.
    for (flow, code) in &flows[..2] {
        for _ in 0..5 {
            assert_eq!(submit(flow, &wrong(code)).status(), 400);
        }
    }
    let (flow, code) = &flows[2];
    let right = submit(flow, code);
    assert_eq!(
        right.status(),
        400,
        "the right code past the cap is refused too"
    );
    assert!(
        right
            .text()
            .unwrap()
            .contains("Too many wrong codes were submitted for this account"),
    );
}

#[test]
fn identities_round_trip_through_the_api_in_kratos_shape() {
    let server = Server::start();
    let created = admin(&server, reqwest::Method::POST, "/iam/identities")
        .json(&json!({
            "schema_id": "default",
            "traits": { "email": "Ann@Example.com", "name": "Ann", "locale": "de" },
            "external_id": "app-user-1",
            "metadata_admin": { "second_factor": true, "team": "blue" },
        }))
        .send()
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().unwrap();
    assert_eq!(created["state"], "active");
    assert_eq!(created["schema_id"], "default");
    assert_eq!(created["recovery_addresses"][0]["value"], "ann@example.com");
    assert_eq!(created["recovery_addresses"][0]["via"], "email");
    assert_eq!(created["metadata_admin"]["second_factor"], true);
    assert_eq!(created["metadata_admin"]["team"], "blue");
    assert!(created["metadata_admin"]["pk"].is_i64());
    let by_external: Value = admin(
        &server,
        reqwest::Method::GET,
        "/admin/identities/by/external/app-user-1",
    )
    .send()
    .unwrap()
    .json()
    .unwrap();
    assert_eq!(by_external, created);
    let schema: Value = client()
        .get(created["schema_url"].as_str().unwrap())
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(schema["properties"]["traits"]["required"], json!(["email"]));
    // authentik's routes address the same person by the pk.
    let pk = created["metadata_admin"]["pk"].as_i64().unwrap();
    let recovery = admin(
        &server,
        reqwest::Method::POST,
        &format!("/api/v3/core/users/{pk}/recovery/"),
    )
    .send()
    .unwrap();
    assert_eq!(recovery.status(), 200);
}

fn error_of(response: Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().unwrap();
    assert_eq!(body["error"]["code"], status, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    body
}

#[test]
fn bad_identities_get_error_generic_and_nothing_is_written() {
    let server = Server::start();
    let ann = create(&server, json!({ "email": "ann@example.com" }));
    for (body, status) in [
        (
            json!({ "schema_id": "default", "traits": { "name": "no address" } }),
            400,
        ),
        (
            json!({ "schema_id": "default", "traits": { "email": "a@b.c", "phone": "1" } }),
            400,
        ),
        (
            json!({ "schema_id": "admin", "traits": { "email": "a@b.c" } }),
            400,
        ),
        (
            json!({ "schema_id": "default", "traits": { "email": "not an address" } }),
            400,
        ),
        (
            json!({ "schema_id": "default", "state": "gone", "traits": { "email": "a@b.c" } }),
            400,
        ),
        (
            json!({ "schema_id": "default", "traits": { "email": "ANN@example.com" } }),
            409,
        ),
    ] {
        let response = admin(&server, reqwest::Method::POST, "/admin/identities")
            .json(&body)
            .send()
            .unwrap();
        error_of(response, status);
    }
    let listed: Vec<Value> = admin(&server, reqwest::Method::GET, "/admin/identities")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(listed.len(), 1);
    let unknown = format!("/admin/identities/{}", uuid::Uuid::new_v4());
    error_of(
        admin(&server, reqwest::Method::GET, &unknown)
            .send()
            .unwrap(),
        404,
    );
    error_of(
        admin(&server, reqwest::Method::DELETE, &unknown)
            .send()
            .unwrap(),
        404,
    );
    error_of(
        admin(
            &server,
            reqwest::Method::GET,
            "/admin/identities/not-a-uuid",
        )
        .send()
        .unwrap(),
        404,
    );
    let failed_test = admin(
        &server,
        reqwest::Method::PATCH,
        &format!("/admin/identities/{}", ann["id"].as_str().unwrap()),
    )
    .json(&json!([
        { "op": "test", "path": "/state", "value": "inactive" },
        { "op": "replace", "path": "/traits/email", "value": "x@example.com" },
    ]))
    .send()
    .unwrap();
    error_of(failed_test, 400);
    let moved_id = admin(
        &server,
        reqwest::Method::PATCH,
        &format!("/admin/identities/{}", ann["id"].as_str().unwrap()),
    )
    .json(&json!([{ "op": "replace", "path": "/id", "value": uuid::Uuid::new_v4().to_string() }]))
    .send()
    .unwrap();
    error_of(moved_id, 400);
    let unchanged: Value = admin(
        &server,
        reqwest::Method::GET,
        &format!("/admin/identities/{}", ann["id"].as_str().unwrap()),
    )
    .send()
    .unwrap()
    .json()
    .unwrap();
    assert_eq!(unchanged["traits"]["email"], "ann@example.com");
    error_of(
        client()
            .get(server.url("/admin/identities"))
            .send()
            .unwrap(),
        401,
    );
}

#[test]
fn a_batch_of_a_thousand_is_answered_slot_by_slot() {
    let server = Server::start();
    create(&server, json!({ "email": "taken@example.com" }));
    let mut slots: Vec<Value> = (0..999)
        .map(|i| {
            json!({
                "patch_id": uuid::Uuid::new_v4().to_string(),
                "create": {
                    "schema_id": "default",
                    "traits": { "email": format!("user{i}@example.com"), "name": format!("User {i}") },
                    "metadata_public": { "bio": "x".repeat(2000) },
                },
            })
        })
        .collect();
    slots.insert(
        500,
        json!({ "patch_id": uuid::Uuid::new_v4().to_string(), "create": { "schema_id": "default", "traits": { "email": "taken@example.com" } } }),
    );
    let body = json!({ "identities": slots });
    assert!(
        body.to_string().len() > 2 * 1024 * 1024,
        "a body of a few MiB"
    );
    let answer = admin(&server, reqwest::Method::PATCH, "/admin/identities")
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().unwrap();
    let answers = answer["identities"].as_array().unwrap();
    assert_eq!(answers.len(), 1000);
    for (slot, answered) in slots.iter().zip(answers) {
        assert_eq!(answered["patch_id"], slot["patch_id"]);
    }
    assert_eq!(answers[500]["action"], "error");
    assert_eq!(answers[500]["error"]["code"], 409);
    assert_eq!(
        answers.iter().filter(|a| a["action"] == "create").count(),
        999
    );
    // Paged through, 250 at a time, by the Link header.
    let mut seen = 0;
    let mut next = Some("/admin/identities?page_size=250".to_string());
    while let Some(path) = next {
        let page = admin(&server, reqwest::Method::GET, &path).send().unwrap();
        next = page.headers().get("link").and_then(|l| {
            l.to_str()
                .unwrap()
                .split(',')
                .find(|part| part.contains("rel=\"next\""))
                .map(|part| part.split(['<', '>']).nth(1).unwrap().to_string())
        });
        seen += page.json::<Vec<Value>>().unwrap().len();
    }
    assert_eq!(seen, 1000);
    // The public routes keep their 16 KiB.
    let large = client()
        .post(server.url("/self-service/recovery"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("email={}", "a".repeat(20_000)))
        .send()
        .unwrap();
    assert_eq!(large.status(), 413);
}

#[test]
fn common_and_blank_passwords_are_refused_on_the_form_and_the_session_lives_on() {
    let server = Server::start();
    let ann = create(&server, json!({ "email": "ann@example.com" }));
    let form = FormToken::fetch(&server);
    let cookie = redeem(&server, &form, &admin_link(&server, &ann));
    for (password, shown) in [
        ("P@ssw0rd123", "too common"),
        ("            ", "only spaces"),
    ] {
        let refused = set_password(&server, &form, &cookie, password);
        assert_eq!(refused.status(), 400, "{password:?}");
        assert!(refused.text().unwrap().contains(shown), "{password:?}");
    }
    assert_eq!(
        set_password(&server, &form, &cookie, NEW_PASSWORD).status(),
        200
    );
    assert!(password_is(&server, &ann, NEW_PASSWORD));
}

#[test]
fn a_patch_of_what_put_cannot_set_is_refused_and_the_second_factor_is_kept() {
    let server = Server::start();
    let created = admin(&server, reqwest::Method::POST, "/admin/identities")
        .json(&json!({
            "schema_id": "default",
            "traits": { "email": "ann@example.com" },
            "metadata_admin": { "second_factor": true, "team": "a" },
        }))
        .send()
        .unwrap();
    assert_eq!(created.status(), 201);
    let ann: Value = created.json().unwrap();
    let path = format!("/admin/identities/{}", ann["id"].as_str().unwrap());
    let patch = |ops: Value| {
        admin(&server, reqwest::Method::PATCH, &path)
            .json(&ops)
            .send()
            .unwrap()
    };
    for (op, target, value) in [
        ("replace", "/updated_at", json!("2020-01-01T00:00:00Z")),
        ("add", "/credentials", json!({ "password": {} })),
        (
            "add",
            "/verifiable_addresses/-",
            json!({ "value": "x@example.com" }),
        ),
        (
            "replace",
            "/organization_id",
            json!(uuid::Uuid::new_v4().to_string()),
        ),
        ("add", "/no_such_key", json!(1)),
        ("remove", "/created_at", Value::Null),
    ] {
        let op = if value.is_null() {
            json!([{ "op": op, "path": target }])
        } else {
            json!([{ "op": op, "path": target, "value": value }])
        };
        let body = error_of(patch(op), 400);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("can't be changed"),
            "{target}: {body}"
        );
    }
    // Replacing metadata_admin whole keeps the second factor...
    let kept =
        patch(json!([{ "op": "replace", "path": "/metadata_admin", "value": { "team": "b" } }]));
    assert_eq!(kept.status(), 200);
    let kept: Value = kept.json().unwrap();
    assert_eq!(kept["metadata_admin"]["second_factor"], true);
    assert_eq!(kept["metadata_admin"]["team"], "b");
    // ...which only an explicit change turns off.
    let off = patch(
        json!([{ "op": "replace", "path": "/metadata_admin/second_factor", "value": false }]),
    );
    assert_eq!(
        off.json::<Value>().unwrap()["metadata_admin"]["second_factor"],
        false
    );
    // Metadata that could not be read back is refused, not stored as null.
    let mut deep = json!("leaf");
    for _ in 0..100 {
        deep = json!({ "a": deep });
    }
    error_of(
        patch(json!([{ "op": "replace", "path": "/metadata_public", "value": deep }])),
        400,
    );
}

#[test]
fn every_spelling_of_a_mailbox_reaches_its_one_identity_through_the_server() {
    let server = Server::start();
    let ann = create(&server, json!({ "email": "u@kexample.com" }));
    // The Kelvin sign is the letter k: the same mailbox, so taken.
    let twin = admin(&server, reqwest::Method::POST, "/admin/identities")
        .json(&json!({ "schema_id": "default", "traits": { "email": "u@\u{212A}example.com" } }))
        .send()
        .unwrap();
    error_of(twin, 409);
    let listed: Vec<Value> = admin(
        &server,
        reqwest::Method::GET,
        "/admin/identities?credentials_identifier=U@%E2%84%AAexample.com",
    )
    .send()
    .unwrap()
    .json()
    .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], ann["id"]);
    // A self-service request in another spelling mails the identity.
    FormToken::fetch(&server).post(
        &server,
        "/self-service/recovery",
        &[("email", "U@\u{212A}EXAMPLE.com")],
    );
    let mail = server.mail(1);
    assert_eq!(mail.len(), 1);
    assert!(mail[0].contains("To: u@kexample.com"), "{}", mail[0]);
    // A change to another spelling of the same mailbox is no new address:
    // the links stand, and no notice goes to the "old" one.
    let link = link_in(&mail[0], &server.base).unwrap();
    let respelled = put(
        &server,
        &ann,
        json!({ "schema_id": "default", "state": "active", "traits": { "email": "U@KEXAMPLE.COM" } }),
    );
    assert_eq!(respelled.status(), 200);
    let form = FormToken::fetch(&server);
    let cookie = redeem(&server, &form, &link);
    assert_eq!(password_form(&server, &cookie), 200);
    // A notice would have been queued with the change and mailed at once.
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(server.mail(0).len(), 1, "no address-changed notice");
}

#[test]
fn the_rate_limit_counters_hold_no_hash_a_guessed_address_confirms() {
    use sha2::Digest;
    let server = Server::start();
    FormToken::fetch(&server).post(
        &server,
        "/self-service/recovery",
        &[("email", "guess.me@example.com")],
    );
    let db = rusqlite::Connection::open(server.data.path().join("reclaim.db")).unwrap();
    let keys: Vec<String> = db
        .prepare("SELECT key FROM rate_limits")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(keys.iter().any(|k| k.starts_with("address:")), "{keys:?}");
    let unsalted = hex::encode(sha2::Sha256::digest("guess.me@example.com"));
    assert!(
        keys.iter()
            .all(|k| !k.contains(&unsalted) && !k.contains("guess.me")),
        "{keys:?}"
    );
}
