//! The hand-off through the real pages: a redemption that ends in the
//! platform with a single-use assertion, redeemed once by its server, and
//! identities with a second factor that never see Reclaim's password form.

use reqwest::blocking::Response;
use serde_json::{Value, json};

use crate::common::{
    ADMIN_TOKEN, FormToken, Launch, NEW_PASSWORD, RETURN_URL, Server, admin, admin_link, client,
    link_in, password_form, password_is, redeem, set_password, token_of,
};

const HANDOFF_URL: &str = "https://platform.example.test/recovered";

fn handoff_server(extra: &[(&str, &str)]) -> Server {
    let mut env = vec![
        ("RECLAIM_COMPLETION", "handoff"),
        ("RECLAIM_HANDOFF_URL", HANDOFF_URL),
        ("RECLAIM_ALLOWED_RETURN_URLS", RETURN_URL),
    ];
    env.extend_from_slice(extra);
    // The log is kept, to be searched for the assertions.
    let launch = Launch {
        log_to_file: true,
        ..Launch::default()
    };
    Server::launch(&env, launch)
}

/// Confirms `link` in the pages; the answer.
fn confirm(server: &Server, link: &str) -> Response {
    FormToken::fetch(server).post(
        server,
        "/self-service/recovery/confirm",
        &[("token", &token_of(link))],
    )
}

/// The assertion a hand-off redirect carries, after checking where it goes.
fn assertion_of(response: &Response, target: &str) -> String {
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with(&format!("{target}?recovery_assertion=")),
        "{location}"
    );
    assert!(
        response.headers().get("set-cookie").is_none()
            || !response.headers()["set-cookie"]
                .to_str()
                .unwrap()
                .contains("reclaim_recovery_session"),
        "a hand-off opens no session"
    );
    assert_eq!(response.headers()["referrer-policy"], "same-origin");
    assert_eq!(response.headers()["cache-control"], "no-store");
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "recovery_assertion")
        .unwrap()
        .1
        .into_owned()
}

fn redeem_assertion(base: &str, assertion: &str) -> Response {
    client()
        .post(format!("{base}/admin/recovery/assertions"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "assertion": assertion }))
        .send()
        .unwrap()
}

/// An identity created through the admin API, with the platform's own id.
fn platform_user(server: &Server, email: &str, second_factor: bool) -> Value {
    let created = client()
        .post(server.url("/admin/identities"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({
            "schema_id": "default",
            "traits": { "email": email, "name": "Ann Example" },
            "external_id": format!("platform-{email}"),
            "metadata_admin": { "second_factor": second_factor },
        }))
        .send()
        .unwrap();
    assert_eq!(created.status(), 201);
    created.json().unwrap()
}

#[test]
fn a_handed_off_link_is_redeemed_once_by_the_platform_and_the_owner_is_told() {
    let server = handoff_server(&[]);
    let ann = platform_user(&server, "ann@example.com", false);
    let redeemed = confirm(&server, &admin_link(&server, &ann));
    let assertion = assertion_of(&redeemed, HANDOFF_URL);
    assert_eq!(assertion.len(), 64);
    let first = redeem_assertion(&server.base, &assertion);
    assert_eq!(first.status(), 200);
    let body: Value = first.json().unwrap();
    assert_eq!(body["identity_id"], ann["id"]);
    assert_eq!(body["external_id"], "platform-ann@example.com");
    assert_eq!(body["method"], "link");
    assert_eq!(body["second_factor"], false);
    assert!(body["flow_id"].as_str().is_some_and(|f| !f.is_empty()));
    assert!(body["redeemed_at"].as_str().unwrap().contains('T'));
    let again = redeem_assertion(&server.base, &assertion);
    assert_eq!(again.status(), 410);
    assert_eq!(again.json::<Value>().unwrap()["error"]["code"], 410);
    let made_up = redeem_assertion(&server.base, &"0".repeat(64));
    assert_eq!(made_up.status(), 404);
    assert_eq!(made_up.json::<Value>().unwrap()["error"]["code"], 404);
    let anonymous = client()
        .post(server.url("/admin/recovery/assertions"))
        .json(&json!({ "assertion": assertion }))
        .send()
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    // The trail has both halves of the hand-off, and never the assertion.
    let trail = server.cli_json(&["events", "list"]);
    let types: Vec<&str> = trail
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(types.contains(&"recovery.redeemed") && types.contains(&"recovery.handed_off"));
    assert!(!trail.to_string().contains(&assertion));
    assert!(
        !server.log().contains(&assertion),
        "no assertion in the log"
    );
    // No password form in this mode, and the owner hears of the recovery.
    assert_eq!(password_form(&server, ""), 401);
    let mail = server.mail(1);
    assert!(
        mail.iter()
            .any(|m| m.contains("Your account was recovered")),
        "{mail:?}"
    );
}

#[test]
fn a_handed_off_code_goes_to_the_allowed_return_to() {
    let server = handoff_server(&[]);
    let ann = server.identity(Some("ann@example.com"));
    let created: Value = client()
        .post(server.url(&format!("/admin/recovery/code?return_to={RETURN_URL}")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "identity_id": ann["id"] }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let link = created["recovery_link"].as_str().unwrap();
    let flow = link
        .split("flow=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let redeemed = FormToken::fetch(&server).post(
        &server,
        "/self-service/recovery/code",
        &[
            ("flow", flow),
            ("code", created["recovery_code"].as_str().unwrap()),
        ],
    );
    let assertion = assertion_of(&redeemed, RETURN_URL);
    let body: Value = redeem_assertion(&server.base, &assertion).json().unwrap();
    assert_eq!(body["method"], "code");
    assert_eq!(body["flow_id"], flow);
}

#[test]
fn an_assertion_expires_at_its_lifespan() {
    let server = handoff_server(&[("RECLAIM_ASSERTION_LIFESPAN", "1s")]);
    let ann = server.identity(Some("ann@example.com"));
    let assertion = assertion_of(&confirm(&server, &admin_link(&server, &ann)), HANDOFF_URL);
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let late = redeem_assertion(&server.base, &assertion);
    assert_eq!(late.status(), 410);
    assert!(
        late.json::<Value>().unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
}

#[test]
fn of_32_concurrent_redemptions_of_an_assertion_exactly_one_wins() {
    let server = handoff_server(&[]);
    let ann = server.identity(Some("ann@example.com"));
    for round in 0..5 {
        let assertion = assertion_of(&confirm(&server, &admin_link(&server, &ann)), HANDOFF_URL);
        let statuses: Vec<u16> = std::thread::scope(|scope| {
            let racers: Vec<_> = (0..32)
                .map(|_| {
                    let (base, assertion) = (&server.base, &assertion);
                    scope.spawn(move || redeem_assertion(base, assertion).status().as_u16())
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "round {round}: {statuses:?}"
        );
        assert!(
            statuses.iter().all(|s| *s == 200 || *s == 410),
            "{statuses:?}"
        );
    }
}

#[test]
fn a_second_factor_account_is_handed_off_in_password_mode_and_never_gets_a_password_form() {
    let server = Server::start_with(&[("RECLAIM_HANDOFF_URL", HANDOFF_URL)]);
    let ann = platform_user(&server, "ann@example.com", true);
    let redeemed = confirm(&server, &admin_link(&server, &ann));
    let assertion = assertion_of(&redeemed, HANDOFF_URL);
    let body: Value = redeem_assertion(&server.base, &assertion).json().unwrap();
    assert_eq!(body["second_factor"], true);
    // Without a hand-off URL there is nowhere to hand it, and still no form.
    let plain = Server::start();
    let bob = platform_user(&plain, "bob@example.com", true);
    let refused = confirm(&plain, &admin_link(&plain, &bob));
    assert_eq!(refused.status(), 403);
    assert!(refused.text().unwrap().contains("second factor"));
}

#[test]
fn a_session_opened_before_a_second_factor_was_enabled_cannot_set_the_password() {
    let server = Server::start();
    let ann = platform_user(&server, "ann@example.com", false);
    let form = FormToken::fetch(&server);
    let cookie = redeem(&server, &form, &admin_link(&server, &ann));
    assert_eq!(password_form(&server, &cookie), 200);
    let patched = client()
        .patch(server.url(&format!(
            "/admin/identities/{}",
            ann["id"].as_str().unwrap()
        )))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!([{ "op": "replace", "path": "/metadata_admin/second_factor", "value": true }]))
        .send()
        .unwrap();
    assert_eq!(patched.status(), 200, "{}", patched.text().unwrap());
    // The form and a forged POST with the same session are both refused.
    assert_eq!(password_form(&server, &cookie), 401);
    assert_eq!(
        set_password(&server, &form, &cookie, NEW_PASSWORD).status(),
        401
    );
    assert!(!password_is(&server, &ann, NEW_PASSWORD));
}

/// A fresh assertion for `identity`, from an admin link confirmed in the
/// pages.
fn handed_off_assertion(server: &Server, identity: &Value) -> String {
    assertion_of(&confirm(server, &admin_link(server, identity)), HANDOFF_URL)
}

#[test]
fn a_deleted_second_factor_identitys_assertion_is_refused_not_failed_open() {
    let server = Server::start_with(&[("RECLAIM_HANDOFF_URL", HANDOFF_URL)]);
    let ann = platform_user(&server, "ann@example.com", true);
    let assertion = handed_off_assertion(&server, &ann);
    let id = ann["id"].as_str().unwrap();
    let deleted = admin(
        &server,
        reqwest::Method::DELETE,
        &format!("/admin/identities/{id}"),
    )
    .send()
    .unwrap();
    assert_eq!(deleted.status(), 204);
    let refused = redeem_assertion(&server.base, &assertion);
    assert_eq!(refused.status(), 410);
    let body: Value = refused.json().unwrap();
    assert_eq!(body["error"]["code"], 410, "{body}");
    assert!(body.get("second_factor").is_none());
}

#[test]
fn whatever_ends_an_identitys_recovery_ends_its_handoff_assertion() {
    let server = handoff_server(&[]);
    let ann = platform_user(&server, "ann@example.com", false);
    let id = ann["id"].as_str().unwrap().to_string();
    let patch = |ops: Value| {
        let patched = admin(
            &server,
            reqwest::Method::PATCH,
            &format!("/admin/identities/{id}"),
        )
        .json(&ops)
        .send()
        .unwrap();
        assert_eq!(patched.status(), 200, "{}", patched.text().unwrap());
    };
    type Ending<'a> = (&'a str, Box<dyn Fn() + 'a>);
    let endings: Vec<Ending> = vec![
        (
            "deactivated",
            Box::new(|| {
                patch(json!([{ "op": "replace", "path": "/state", "value": "inactive" }]));
                patch(json!([{ "op": "replace", "path": "/state", "value": "active" }]));
            }),
        ),
        (
            "readdressed",
            Box::new(|| {
                patch(
                    json!([{ "op": "replace", "path": "/traits/email", "value": "ann@elsewhere.example" }]),
                );
                patch(
                    json!([{ "op": "replace", "path": "/traits/email", "value": "ann@example.com" }]),
                );
            }),
        ),
        (
            "sessions ended",
            Box::new(|| {
                let ended = admin(
                    &server,
                    reqwest::Method::DELETE,
                    &format!("/admin/identities/{}/sessions", id.replace('-', "")),
                )
                .send()
                .unwrap();
                assert_eq!(ended.status(), 204);
            }),
        ),
        (
            "revoked",
            // In another of a UUID's forms: every form names the identity.
            Box::new(|| {
                let revoked = server.cli_json(&["revoke", "--identity", &id.to_uppercase()]);
                assert_eq!(revoked["revoked"], 0, "the redemption revoked the rest");
            }),
        ),
        ("re-issued", Box::new(|| drop(admin_link(&server, &ann)))),
    ];
    for (ending, end) in endings {
        let assertion = handed_off_assertion(&server, &ann);
        end();
        let refused = redeem_assertion(&server.base, &assertion);
        assert_eq!(
            refused.status(),
            410,
            "{ending}: {}",
            refused.text().unwrap()
        );
    }
    // A newer redemption (of a link the owner asked for after the first)
    // leaves only its own assertion.
    let first = handed_off_assertion(&server, &ann);
    let requested = FormToken::fetch(&server).post(
        &server,
        "/self-service/recovery",
        &[("email", "ann@example.com")],
    );
    assert_eq!(requested.status(), 200);
    // Among the notices of the hand-offs so far, the one link mailed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mailed = loop {
        let mail = server.mail(1);
        if let Some(link) = mail.iter().find_map(|m| link_in(m, &server.base)) {
            break link;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no link was mailed: {mail:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let second = assertion_of(&confirm(&server, &mailed), HANDOFF_URL);
    assert_eq!(redeem_assertion(&server.base, &first).status(), 410);
    assert_eq!(redeem_assertion(&server.base, &second).status(), 200);
}

#[test]
fn the_handoff_owns_its_parameter_in_the_return_to() {
    let server = handoff_server(&[]);
    let ann = platform_user(&server, "ann@example.com", false);
    let planted = format!("{RETURN_URL}?recovery_assertion=attackers&next=home");
    let created: Value = admin(&server, reqwest::Method::POST, "/admin/recovery/link")
        .query(&[("return_to", planted.as_str())])
        .json(&json!({ "identity_id": ann["id"] }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let link = created["recovery_link"].as_str().unwrap();
    let redirected = confirm(&server, link);
    assert_eq!(redirected.status(), 303);
    let location = url::Url::parse(redirected.headers()["location"].to_str().unwrap()).unwrap();
    let assertions: Vec<String> = location
        .query_pairs()
        .filter(|(k, _)| k == "recovery_assertion")
        .map(|(_, v)| v.into_owned())
        .collect();
    assert_eq!(assertions.len(), 1, "{location}");
    assert_ne!(assertions[0], "attackers");
    assert!(
        location
            .query_pairs()
            .any(|(k, v)| k == "next" && v == "home")
    );
    assert_eq!(redeem_assertion(&server.base, &assertions[0]).status(), 200);
}
