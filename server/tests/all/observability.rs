//! What an operator sees: one access-log line per request, tied to error
//! bodies by the request id and free of secrets, and `/metrics` behind the
//! admin token.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{
    ADMIN_TOKEN, FormToken, Launch, Server, admin_link, client, mail_link, token_of,
};

#[test]
fn each_request_is_logged_once_by_route_without_tokens_codes_cookies_or_addresses() {
    let server = Server::launch(
        &[],
        Launch {
            log_to_file: true,
            ..Launch::default()
        },
    );
    let ann = server.identity(Some("ann.secret@example.com"));
    let link = admin_link(&server, &ann);
    let token = token_of(&link);
    // The confirmation page, with the token in its query string.
    let page = client().get(&link).send().unwrap();
    assert_eq!(page.status(), 200);
    let form = FormToken::fetch(&server);
    let requested = form.post(
        &server,
        "/self-service/recovery",
        &[("email", "ann.secret@example.com")],
    );
    assert_eq!(requested.status(), 200);
    let code = client()
        .post(server.url("/admin/recovery/code"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "identity_id": ann["id"] }))
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap();
    let refused = client()
        .post(server.url("/admin/recovery/link"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "identity_id": "not-a-uuid" }))
        .send()
        .unwrap();
    assert_eq!(refused.status(), 400);
    let id = refused.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = refused.json().unwrap();
    assert_eq!(body["error"]["request"], id.as_str(), "{body}");

    // Lines are written after the answer: wait for the last one.
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = server.log();
        if log.contains(&id) || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("reclaim::access"))
        .collect();
    let refused_line = lines
        .iter()
        .find(|l| l.contains(&id))
        .unwrap_or_else(|| panic!("no access line for {id}:\n{log}"));
    for part in [
        "POST",
        "route=/admin/recovery/link",
        "status=400",
        "latency_us=",
    ] {
        assert!(refused_line.contains(part), "{refused_line}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("route=/self-service/recovery ")
                && l.contains("GET")
                && l.contains("status=200"))
    );
    assert_eq!(
        lines.iter().filter(|l| l.contains(&id)).count(),
        1,
        "one line per request"
    );
    let cookie_value = form.cookie.split_once('=').unwrap().1;
    for secret in [
        token.as_str(),
        code["recovery_code"].as_str().unwrap(),
        "ann.secret",
        cookie_value,
        "token=",
        ADMIN_TOKEN,
    ] {
        assert!(!log.contains(secret), "the log holds {secret:?}:\n{log}");
    }
}

#[test]
fn metrics_need_the_admin_token_and_count_operations_requests_and_the_outbox() {
    let server = Server::start();
    let ann = server.identity(Some("ann@example.com"));
    assert_eq!(
        client()
            .get(server.url("/metrics"))
            .send()
            .unwrap()
            .status(),
        401
    );
    let link = admin_link(&server, &ann);
    let redeemed = FormToken::fetch(&server).post(
        &server,
        "/self-service/recovery/confirm",
        &[("token", &token_of(&link))],
    );
    assert_eq!(redeemed.status(), 303);
    assert_eq!(mail_link(&server, &ann).status(), 204);
    server.mail(1);

    let response = client()
        .get(server.url("/metrics"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = response.text().unwrap();
    for expected in [
        r#"reclaim_operations_total{operation="create_link",outcome="ok"} 1"#,
        r#"reclaim_operations_total{operation="redeem_link",outcome="ok"} 1"#,
        r#"reclaim_operations_total{operation="send_recovery_email",outcome="ok"} 1"#,
        r#"reclaim_http_requests_total{method="POST",route="/admin/recovery/link",status="200"} 1"#,
        r#"reclaim_operation_duration_seconds_bucket{operation="create_link",le="+Inf"} 1"#,
        r#"reclaim_storage_batch_size_count"#,
        r#"reclaim_courier_attempts_total{outcome="sent"} 1"#,
        r#"reclaim_http_connections "#,
    ] {
        assert!(text.contains(expected), "no {expected} in:\n{text}");
    }
    let sent = text
        .lines()
        .find(|l| l.starts_with(r#"reclaim_outbox_messages{status="sent"}"#))
        .unwrap_or_else(|| panic!("no outbox depth:\n{text}"));
    assert!(sent.ends_with(" 1"), "{sent}");
}

#[test]
fn no_log_level_shows_the_randomness_a_token_or_code_was_drawn_from() {
    let server = Server::launch(
        &[("RECLAIM_LOG", "trace")],
        Launch {
            log_to_file: true,
            ..Launch::default()
        },
    );
    let ann = server.identity(Some("ann@example.com"));
    let token = token_of(&admin_link(&server, &ann));
    // A code is drawn too (six digits are too short to look for: the
    // clock's traced nanoseconds hold any six digits).
    let code = client()
        .post(server.url("/admin/recovery/code"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "identity_id": ann["id"] }))
        .send()
        .unwrap();
    assert_eq!(code.status(), 201);
    let log = server.log();
    // The guest's other WASI calls are traced: the level is really on.
    assert!(log.contains("wall-clock"), "no WASI trace at all:\n{log}");
    for secret in ["get-random", "insecure-seed", token.as_str()] {
        assert!(!log.contains(secret), "the log holds {secret:?}");
    }
}
