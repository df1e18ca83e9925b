//! The admin APIs of a running `reclaim serve`: Kratos' and authentik's
//! shapes, statuses and error bodies, authentication and limits.

use crate::common;

use common::{ADMIN_TOKEN, RETURN_URL, Server, link_in};
use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};

fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn post(server: &Server, path: &str, body: &str, token: Option<&str>) -> Response {
    let mut request = client()
        .post(server.url(path))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().unwrap()
}

/// Asserts Kratos' errorGeneric with `code`; returns the error object.
fn error_generic(response: Response, code: u16) -> Value {
    assert_eq!(response.status().as_u16(), code);
    let body: Value = response.json().unwrap();
    let error = &body["error"];
    assert_eq!(error["code"], code);
    assert_eq!(
        error["status"],
        StatusCode::from_u16(code)
            .unwrap()
            .canonical_reason()
            .unwrap()
    );
    assert!(error["reason"].as_str().is_some_and(|r| !r.is_empty()));
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    let request = error["request"].as_str().expect("a request id");
    assert!(uuid::Uuid::try_parse(request).is_ok(), "{request}");
    error.clone()
}

#[test]
fn kratos_link_and_code_have_the_documented_shapes_on_both_prefixes() {
    let server = Server::start();
    let ann = server.identity(Some("ann@example.com"));
    let id = ann["id"].as_str().unwrap();
    for prefix in ["/admin", "/iam"] {
        let response = post(
            &server,
            &format!("{prefix}/recovery/link"),
            &json!({ "identity_id": id, "expires_in": "15m" }).to_string(),
            Some(ADMIN_TOKEN),
        );
        assert_eq!(response.status(), 200);
        let body: Value = response.json().unwrap();
        let link = body["recovery_link"].as_str().unwrap();
        assert!(
            link.starts_with(&format!("{}/self-service/recovery?flow=", server.base)),
            "{link}"
        );
        assert!(link.contains("&token="));
        let expires_at = body["expires_at"].as_str().unwrap();
        assert!(
            humantime::parse_rfc3339(expires_at).is_ok() && expires_at.ends_with('Z'),
            "{expires_at}"
        );
        assert_eq!(body.as_object().unwrap().len(), 2);

        let response = post(
            &server,
            &format!("{prefix}/recovery/code"),
            &json!({ "identity_id": id }).to_string(),
            Some(ADMIN_TOKEN),
        );
        assert_eq!(response.status(), 201);
        let body: Value = response.json().unwrap();
        let code = body["recovery_code"].as_str().unwrap();
        assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()));
        let link = body["recovery_link"].as_str().unwrap();
        assert!(!link.contains("token=") && !link.contains(code));
        assert!(body["expires_at"].as_str().unwrap().ends_with('Z'));
    }
}

#[test]
fn kratos_bad_inputs_get_error_generic() {
    let server = Server::start();
    let ann = server.identity(Some("ann@example.com"));
    let id = ann["id"].as_str().unwrap();
    for path in ["/admin/recovery/link", "/admin/recovery/code"] {
        let malformed = error_generic(post(&server, path, "{not json", Some(ADMIN_TOKEN)), 400);
        assert!(malformed["message"].as_str().unwrap().contains("JSON"));
        error_generic(post(&server, path, "{}", Some(ADMIN_TOKEN)), 400);
        error_generic(
            post(
                &server,
                path,
                r#"{"identity_id": "nope"}"#,
                Some(ADMIN_TOKEN),
            ),
            400,
        );
        error_generic(
            post(&server, path, r#"{"identity_id": 42}"#, Some(ADMIN_TOKEN)),
            400,
        );
        for bad in ["1d", "1h30m", "-1h", "0s", " 1h", "", "1H"] {
            let body = json!({ "identity_id": id, "expires_in": bad }).to_string();
            let e = error_generic(post(&server, path, &body, Some(ADMIN_TOKEN)), 400);
            let message = e["message"].as_str().unwrap();
            assert!(
                message.contains("^[0-9]+(ns|us|ms|s|m|h)$")
                    || message.contains("greater than zero"),
                "{bad:?}: {message}"
            );
        }
        let unknown = json!({ "identity_id": "6f1c1c8e-2b54-4c43-9f0e-6a8a9d1f7b10" }).to_string();
        error_generic(post(&server, path, &unknown, Some(ADMIN_TOKEN)), 404);
    }
}

#[test]
fn return_to_must_be_on_the_allow_list() {
    let server = Server::start();
    let ann = server.identity(Some("ann@example.com"));
    let body = json!({ "identity_id": ann["id"] }).to_string();
    let refused = post(
        &server,
        "/admin/recovery/link?return_to=https%3A%2F%2Fevil.example%2F",
        &body,
        Some(ADMIN_TOKEN),
    );
    let e = error_generic(refused, 400);
    assert!(e["message"].as_str().unwrap().contains("not allowed"));
    let allowed = post(
        &server,
        &format!("/admin/recovery/link?return_to={}", urlencode(RETURN_URL)),
        &body,
        Some(ADMIN_TOKEN),
    );
    assert_eq!(allowed.status(), 200);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn admin_routes_need_the_bearer_token() {
    let server = Server::start();
    let ann = server.identity(Some("ann@example.com"));
    let body = json!({ "identity_id": ann["id"] }).to_string();
    for token in [None, Some("wrong"), Some("")] {
        for path in ["/admin/recovery/link", "/iam/recovery/code"] {
            error_generic(post(&server, path, &body, token), 401);
        }
        for path in [
            "/api/v3/core/users/1/recovery/",
            "/api/v3/core/users/1/recovery_email/?email_stage=default",
        ] {
            let response = post(&server, path, "", token);
            assert_eq!(response.status(), 403);
            let body: Value = response.json().unwrap();
            assert!(
                body["detail"].is_string() && body["code"].is_string(),
                "{body}"
            );
        }
    }
    assert_eq!(
        server.cli_json(&["revoke", "--identity", "1"])["revoked"],
        0,
        "nothing was issued"
    );
}

#[test]
fn bodies_over_the_limit_get_413() {
    let server = Server::start();
    let huge = format!(r#"{{"identity_id": "{}"}}"#, "x".repeat(64 * 1024));
    error_generic(
        post(&server, "/admin/recovery/link", &huge, Some(ADMIN_TOKEN)),
        413,
    );
    let response = post(
        &server,
        "/api/v3/core/users/1/recovery/",
        &huge,
        Some(ADMIN_TOKEN),
    );
    assert_eq!(response.status(), 413);
}

#[test]
fn authentik_recovery_returns_a_working_link() {
    let server = Server::start();
    let ann = server.identity(Some("ann@example.com"));
    let pk = ann["pk"].as_i64().unwrap();
    let response = post(
        &server,
        &format!("/api/v3/core/users/{pk}/recovery/"),
        "",
        Some(ADMIN_TOKEN),
    );
    assert_eq!(response.status(), 200);
    let body: Value = response.json().unwrap();
    assert_eq!(body.as_object().unwrap().len(), 1);
    let link = body["link"].as_str().unwrap();
    let redeemed = server.cli_json(&["redeem", "--link", link]);
    assert_eq!(redeemed["identity_id"], ann["id"]);

    let timed = post(
        &server,
        &format!("/api/v3/core/users/{pk}/recovery/"),
        r#"{"token_duration": "minutes=10"}"#,
        Some(ADMIN_TOKEN),
    );
    assert_eq!(timed.status(), 200);
    for missing in [
        "/api/v3/core/users/999/recovery/",
        "/api/v3/core/users/abc/recovery/",
    ] {
        let response = post(&server, missing, "", Some(ADMIN_TOKEN));
        assert_eq!(response.status(), 404);
        assert!(response.json::<Value>().unwrap()["detail"].is_string());
    }
}

fn non_field_error(response: Response) -> String {
    assert_eq!(response.status(), 400);
    let body: Value = response.json().unwrap();
    assert_eq!(body["code"], "invalid");
    body["non_field_errors"][0].as_str().unwrap().to_string()
}

#[test]
fn authentik_recovery_email_queues_mail_with_the_stage() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("reclaim.toml");
    std::fs::write(
        &config,
        "[email_stages.welcome]\nid = \"1b4c5e2a-8f0e-4d7b-9a63-2f1e0c9d8b7a\"\nsubject = \"Welcome back, {{ name }}\"\ntoken_expiry = \"2h\"\nfrom = \"Support <support@example.test>\"\n",
    )
    .unwrap();
    let server = Server::start_with(&[("RECLAIM_CONFIG", config.to_str().unwrap())]);
    let ann = server.identity(Some("ann@example.com"));
    let pk = ann["pk"].as_i64().unwrap();
    let path = format!(
        "/api/v3/core/users/{pk}/recovery_email/?email_stage=1b4c5e2a-8f0e-4d7b-9a63-2f1e0c9d8b7a"
    );
    let response = post(&server, &path, "", Some(ADMIN_TOKEN));
    assert_eq!(response.status(), 204);
    let mail = server.mail(1).pop().unwrap();
    assert!(
        mail.contains("Subject: Welcome back, Ann Example"),
        "{mail}"
    );
    assert!(mail.contains("From: Support <support@example.test>"));
    assert!(mail.contains("expires in 2 hours"));
    let link = link_in(&mail, &server.base).unwrap();
    assert_eq!(
        server.cli_json(&["redeem", "--link", &link])["identity_id"],
        ann["id"]
    );

    // The stage may also come in the body.
    let body = post(
        &server,
        &format!("/api/v3/core/users/{pk}/recovery_email/"),
        r#"{"email_stage": "default"}"#,
        Some(ADMIN_TOKEN),
    );
    assert_eq!(body.status(), 204);
}

#[test]
fn authentik_recovery_email_refusals_use_authentiks_messages() {
    let server = Server::start();
    let silent = server.identity(None);
    let ann = server.identity(Some("ann@example.com"));
    let no_mail = post(
        &server,
        &format!(
            "/api/v3/core/users/{}/recovery_email/?email_stage=default",
            silent["pk"]
        ),
        "",
        Some(ADMIN_TOKEN),
    );
    assert_eq!(
        non_field_error(no_mail),
        "User does not have an email address set."
    );
    let pk = ann["pk"].as_i64().unwrap();
    for path in [
        format!("/api/v3/core/users/{pk}/recovery_email/?email_stage=nope"),
        format!("/api/v3/core/users/{pk}/recovery_email/"),
    ] {
        assert_eq!(
            non_field_error(post(&server, &path, "", Some(ADMIN_TOKEN))),
            "Email stage not found."
        );
    }
    let unknown = post(
        &server,
        "/api/v3/core/users/999/recovery_email/?email_stage=default",
        "",
        Some(ADMIN_TOKEN),
    );
    assert_eq!(unknown.status(), 404);
    let outbox = server.data.path().join("outbox");
    let count = std::fs::read_dir(&outbox).map(|d| d.count()).unwrap_or(0);
    assert_eq!(count, 0, "nothing was mailed");
}

#[test]
fn health_and_openapi_describe_every_route() {
    let server = Server::start();
    for path in ["/health/alive", "/health/ready"] {
        let response = client().get(server.url(path)).send().unwrap();
        assert_eq!(response.status(), 200);
    }
    let doc: Value = client()
        .get(server.url("/openapi.json"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/admin/recovery/link",
        "/admin/recovery/code",
        "/iam/recovery/link",
        "/iam/recovery/code",
        "/api/v3/core/users/{id}/recovery/",
        "/api/v3/core/users/{id}/recovery_email/",
        "/health/alive",
        "/health/ready",
        "/self-service/recovery",
        "/self-service/recovery/confirm",
        "/self-service/recovery/code",
        "/self-service/recovery/password",
        "/self-service/assets/style.css",
        "/openapi.json",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} is missing from {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }
    assert!(doc["components"]["schemas"]["ErrorGeneric"].is_object());
    let methods = &doc["paths"]["/self-service/recovery"];
    assert!(methods["get"].is_object() && methods["post"].is_object());
}
