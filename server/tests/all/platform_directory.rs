//! A platform's own `app.users` table in a real PostgreSQL as the identity
//! directory (`[directory]` queries): links and mail for its users by id, pk
//! and address, its own changes ending recovery, the identity API's writes
//! refused, and a broken query stopping the start.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::postgres;
use crate::common::{
    ADMIN_TOKEN, FormToken, NEW_PASSWORD, Server, client, link_in, password_form, redeem,
    set_password, token_of,
};

const SECRETS: &str = "platform-secret-0123456789abcdef0123456789";

/// The README's `[directory]` example, exactly as written: the queries
/// these tests run.
fn readme_queries() -> [String; 3] {
    let readme = include_str!("../../../README.md");
    let block = readme
        .split("```toml\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .find(|block| block.starts_with("[directory]"))
        .expect("the README has a [directory] example");
    let parsed: toml::Table = toml::from_str(block).unwrap();
    let directory = parsed["directory"].as_table().unwrap();
    ["by_id", "by_pk", "by_email"].map(|q| directory[q].as_str().unwrap().to_string())
}

/// A fresh database with the platform's table and two users; its URL and
/// Ann's id and pk.
fn platform() -> (String, String, i64) {
    let url = postgres::server().fresh_database();
    let mut db = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
    db.batch_execute(
        "CREATE SCHEMA app;
         CREATE TABLE app.users (
             id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
             pk bigserial UNIQUE,
             email text UNIQUE,
             name text,
             locale text,
             is_active boolean NOT NULL DEFAULT true,
             has_mfa boolean NOT NULL DEFAULT false
         );
         INSERT INTO app.users (email, name, locale) VALUES ('ann@platform.example', 'Ann', 'de');
         INSERT INTO app.users (email, name) VALUES ('bob@platform.example', 'Bob');",
    )
    .unwrap();
    let row = db
        .query_one(
            "SELECT id::text, pk FROM app.users WHERE email = 'ann@platform.example'",
            &[],
        )
        .unwrap();
    (url, row.get(0), row.get(1))
}

fn env<'a>(url: &'a str, queries: &'a [String; 3]) -> Vec<(&'a str, &'a str)> {
    vec![
        ("RECLAIM_DATABASE_URL", url),
        ("RECLAIM_SECRETS", SECRETS),
        ("RECLAIM_DIRECTORY_BY_ID", &queries[0]),
        ("RECLAIM_DIRECTORY_BY_PK", &queries[1]),
        ("RECLAIM_DIRECTORY_BY_EMAIL", &queries[2]),
    ]
}

fn sql(url: &str, statement: &str) {
    let mut db = ::postgres::Client::connect(url, ::postgres::NoTls).unwrap();
    db.batch_execute(statement).unwrap();
}

fn link_for(server: &Server, id: &str) -> reqwest::blocking::Response {
    client()
        .post(server.url("/admin/recovery/link"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "identity_id": id }))
        .send()
        .unwrap()
}

fn confirm(server: &Server, link: &str) -> u16 {
    FormToken::fetch(server)
        .post(
            server,
            "/self-service/recovery/confirm",
            &[("token", &token_of(link))],
        )
        .status()
        .as_u16()
}

#[test]
fn the_platforms_users_recover_by_id_pk_and_address() {
    let (url, ann_id, ann_pk) = platform();
    let queries = readme_queries();
    let server = Server::start_with(&env(&url, &queries));
    // By id: Kratos' admin link.
    let link = link_for(&server, &ann_id);
    assert_eq!(link.status(), 200);
    let link = link.json::<Value>().unwrap()["recovery_link"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(confirm(&server, &link), 303);
    // By pk: authentik's recovery mail, in the user's language.
    let mailed = client()
        .post(server.url(&format!(
            "/api/v3/core/users/{ann_pk}/recovery_email/?email_stage=default"
        )))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap();
    assert_eq!(mailed.status(), 204);
    // By address: the self-service form.
    FormToken::fetch(&server).post(
        &server,
        "/self-service/recovery",
        &[("email", "BOB@platform.example")],
    );
    let mail = server.mail(2);
    assert_eq!(mail.len(), 2, "{mail:?}");
    assert!(
        mail.iter()
            .any(|m| m.contains("ann@platform.example") && m.contains("Hallo Ann"))
    );
    assert!(mail.iter().any(|m| m.contains("bob@platform.example")));
    // Reads of the identity API answer from the platform's table.
    let read: Value = client()
        .get(server.url(&format!("/admin/identities/{ann_id}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(read["traits"]["email"], "ann@platform.example");
    assert_eq!(read["metadata_admin"]["pk"], ann_pk);
    let found: Vec<Value> = client()
        .get(server.url("/admin/identities?credentials_identifier=ann@platform.example"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(found.len(), 1);
}

#[test]
fn a_deactivation_or_new_address_in_the_platforms_table_refuses_the_next_redemption() {
    let (url, ann_id, _) = platform();
    let queries = readme_queries();
    let server = Server::start_with(&env(&url, &queries));
    let links: Vec<String> = (0..2)
        .map(|_| {
            link_for(&server, &ann_id).json::<Value>().unwrap()["recovery_link"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    sql(
        &url,
        "UPDATE app.users SET is_active = false WHERE email = 'ann@platform.example'",
    );
    assert_ne!(confirm(&server, &links[1]), 303, "a disabled user's link");
    sql(
        &url,
        "UPDATE app.users SET is_active = true, email = 'ann@elsewhere.example' WHERE email = 'ann@platform.example'",
    );
    assert_eq!(
        confirm(&server, &links[1]),
        410,
        "a link sent to the old address"
    );
    // Mailed to where the platform now says, it works.
    FormToken::fetch(&server).post(
        &server,
        "/self-service/recovery",
        &[("email", "ann@elsewhere.example")],
    );
    let mail = server.mail(1);
    let fresh = link_in(&mail[0], &server.base).unwrap();
    assert_eq!(confirm(&server, &fresh), 303);
}

#[test]
fn a_new_address_in_the_platforms_table_ends_an_open_session() {
    let (url, ann_id, _) = platform();
    let queries = readme_queries();
    let server = Server::start_with(&env(&url, &queries));
    let link = link_for(&server, &ann_id).json::<Value>().unwrap()["recovery_link"]
        .as_str()
        .unwrap()
        .to_string();
    let form = FormToken::fetch(&server);
    let cookie = redeem(&server, &form, &link);
    assert_eq!(password_form(&server, &cookie), 200, "the session is open");
    sql(
        &url,
        "UPDATE app.users SET email = 'ann@elsewhere.example' WHERE email = 'ann@platform.example'",
    );
    assert_ne!(
        password_form(&server, &cookie),
        200,
        "the session was opened for the old address"
    );
    let set = set_password(&server, &form, &cookie, NEW_PASSWORD);
    assert_ne!(set.status(), 303, "no password is set");
    // Back at the old address, the session stays ended.
    sql(
        &url,
        "UPDATE app.users SET email = 'ann@platform.example' WHERE email = 'ann@elsewhere.example'",
    );
    assert_ne!(password_form(&server, &cookie), 200);
    let mut db = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
    let stored: i64 = db
        .query_one("SELECT count(*) FROM platform_passwords", &[])
        .unwrap()
        .get(0);
    assert_eq!(stored, 0, "no password was kept for the user");
}

#[test]
fn the_identity_apis_writes_are_refused_and_the_table_is_untouched() {
    let (url, ann_id, _) = platform();
    let queries = readme_queries();
    let server = Server::start_with(&env(&url, &queries));
    let attempts = [
        client()
            .post(server.url("/admin/identities"))
            .json(&json!({ "schema_id": "default", "traits": { "email": "new@platform.example" } })),
        client()
            .put(server.url(&format!("/admin/identities/{ann_id}")))
            .json(&json!({ "schema_id": "default", "state": "inactive", "traits": { "email": "ann@platform.example" } })),
        client().delete(server.url(&format!("/admin/identities/{ann_id}"))),
    ];
    for attempt in attempts {
        let refused = attempt.bearer_auth(ADMIN_TOKEN).send().unwrap();
        assert_eq!(refused.status(), 409);
        let body: Value = refused.json().unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("identities are managed by the platform"),
            "{body}"
        );
    }
    let mut db = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
    let row = db
        .query_one("SELECT count(*), bool_and(is_active) FROM app.users", &[])
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, bool>(1)), (2, true));
}

#[test]
fn a_broken_directory_query_stops_the_start_with_a_clear_message() {
    let (url, _, _) = platform();
    let broken = |from: &str, to: &str| {
        let mut queries = readme_queries();
        assert!(queries[0].contains(from));
        queries[0] = queries[0].replace(from, to);
        queries
    };
    let typo = broken("locale,", "loacle AS locale,");
    let stderr = Server::serve_fails(&env(&url, &typo));
    assert!(stderr.contains("by_id"), "{stderr}");
    assert!(stderr.contains("loacle"), "{stderr}");
    let missing_column = broken("locale, ", "");
    let stderr = Server::serve_fails(&env(&url, &missing_column));
    assert!(stderr.contains("no column \"locale\""), "{stderr}");
    let wrong_type = broken("is_active AS active", "email AS active");
    let stderr = Server::serve_fails(&env(&url, &wrong_type));
    assert!(stderr.contains("\"active\" is of type text"), "{stderr}");
}

#[test]
fn an_address_two_platform_users_share_finds_neither_and_the_log_says_so() {
    let (url, _, _) = platform();
    sql(
        &url,
        "INSERT INTO app.users (email, name) VALUES ('ANN@platform.example', 'Look-alike')",
    );
    let queries = readme_queries();
    let server = Server::launch(
        &env(&url, &queries),
        crate::common::Launch {
            log_to_file: true,
            ..Default::default()
        },
    );
    let requested = FormToken::fetch(&server).post(
        &server,
        "/self-service/recovery",
        &[("email", "ann@platform.example")],
    );
    assert_eq!(requested.status(), 200, "the same answer as for anyone");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log().contains("found several users") {
        assert!(Instant::now() < deadline, "no log line:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !server.log().contains("ann@platform.example"),
        "no address in the log"
    );
    // Bob, alone at his address, is still found.
    FormToken::fetch(&server).post(
        &server,
        "/self-service/recovery",
        &[("email", "bob@platform.example")],
    );
    let mail = server.mail(1);
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert!(mail[0].contains("bob@platform.example"));
}

#[test]
fn addresses_the_platforms_query_maps_to_one_user_share_that_users_allowance() {
    let (url, _, _) = platform();
    // A platform whose lookup ignores `+tags`: every ann+N@ is Ann, and
    // each is a mailbox of its own in the normal form.
    let mut queries = readme_queries();
    queries[2] = queries[2].replace(
        "lower(email) = lower($1)",
        r"lower(email) = regexp_replace(lower($1), '\+[^@]*@', '@')",
    );
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        "[rate_limit]\nper_address = 2\nwindow = \"1h\"\n",
    )
    .unwrap();
    let mut environment = env(&url, &queries);
    let config_path = config.path().to_str().unwrap().to_string();
    environment.push(("RECLAIM_CONFIG", &config_path));
    let server = Server::start_with(&environment);
    for tag in 1..=4 {
        let answered = FormToken::fetch(&server).post(
            &server,
            "/self-service/recovery",
            &[("email", &format!("ann+{tag}@platform.example"))],
        );
        assert_eq!(
            answered.status(),
            200,
            "each address is within its own limit"
        );
    }
    // The queue serves every 200 ms: give it time for all four.
    std::thread::sleep(Duration::from_secs(2));
    let mail = server.mail(3);
    assert_eq!(
        mail.len(),
        2,
        "Ann's allowance is two, whatever the address"
    );
}
