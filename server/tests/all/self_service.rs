//! The self-service pages of a running `reclaim serve`, over plain HTTP:
//! no enumeration, rate limits, links that survive being fetched, and a
//! clear page for every way a link can fail.

use crate::common;

use common::{ADMIN_TOKEN, FormToken, Server, admin_link, client, link_in, token_of};
use reqwest::blocking::Response;
use serde_json::{Value, json};

fn request_recovery(server: &Server, email: &str) -> Response {
    request_with(&FormToken::fetch(server), server, email)
}

fn request_with(form: &FormToken, server: &Server, email: &str) -> Response {
    form.post(server, "/self-service/recovery", &[("email", email)])
}

fn confirm(server: &Server, link: &str) -> Response {
    FormToken::fetch(server).post(
        server,
        "/self-service/recovery/confirm",
        &[("token", &token_of(link))],
    )
}

/// Status, headers but the date, the (random) request id and the length
/// (of the address typed), and body but the flow's id and the address
/// typed: what a caller can compare.
fn observable(response: Response) -> (u16, Vec<(String, String)>, String) {
    let status = response.status().as_u16();
    let mut headers: Vec<_> = response
        .headers()
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "date" | "x-request-id" | "content-length"))
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    headers.sort();
    let body = common::but_flow_and_address(
        &response.text().unwrap(),
        &["ann@example.com", "nobody@example.com"],
    );
    (status, headers, body)
}

#[test]
fn known_and_unknown_addresses_get_byte_identical_answers() {
    let server = Server::start();
    server.identity(Some("ann@example.com"));
    // One browser asks for both (its CSRF token is on the page).
    let form = FormToken::fetch(&server);
    let known = observable(request_with(&form, &server, "ann@example.com"));
    let unknown = observable(request_with(&form, &server, "nobody@example.com"));
    assert_eq!(known.0, 200);
    assert_eq!(known, unknown);
    let mail = server.mail(1);
    assert_eq!(mail.len(), 1, "only the known address is mailed");
    assert!(
        mail[0].contains("To: \"Ann Example\" <ann@example.com>")
            || mail[0].contains("To: Ann Example <ann@example.com>"),
        "{}",
        mail[0]
    );
}

#[test]
fn the_sixth_request_for_an_address_is_limited_alike_for_known_and_unknown() {
    let server = Server::start();
    server.identity(Some("ann@example.com"));
    for address in ["ann@example.com", "nobody@example.com"] {
        for _ in 0..5 {
            assert_eq!(request_recovery(&server, address).status(), 200);
        }
        let limited = request_recovery(&server, address);
        assert_eq!(limited.status(), 429);
        let retry_after: u64 = limited.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=300).contains(&retry_after));
        assert!(
            limited
                .text()
                .unwrap()
                .contains("Too many account recovery attempts")
        );
    }
}

#[test]
fn malformed_addresses_are_refused_on_the_page() {
    let server = Server::start();
    let response = request_recovery(&server, "not an address");
    assert_eq!(response.status(), 400);
    let page = response.text().unwrap();
    // The flow's message on the address node, as Kratos words it.
    assert!(page.contains("data-message-id=\"4000001\""), "{page}");
    assert!(page.contains("is not valid"), "{page}");
}

#[test]
fn opening_a_link_consumes_nothing_and_only_the_confirmation_redeems() {
    let server = Server::start();
    let ann = server.identity(Some("ann@example.com"));
    let link = admin_link(&server, &ann);
    for _ in 0..3 {
        // What a mail scanner does.
        let page = client().get(&link).send().unwrap();
        assert_eq!(page.status(), 200);
        assert_eq!(page.headers()["referrer-policy"], "same-origin");
        assert_eq!(page.headers()["cache-control"], "no-store");
        assert!(
            page.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'none'")
        );
        assert!(
            page.text()
                .unwrap()
                .contains("action=\"/self-service/recovery/confirm\"")
        );
    }
    let confirmed = confirm(&server, &link);
    assert_eq!(confirmed.status(), 303);
    let settings = confirmed.headers()["location"].to_str().unwrap();
    assert!(
        settings.starts_with(&server.url("/self-service/recovery/password?flow=")),
        "on to the settings flow's UI: {settings}"
    );
    let cookie = confirmed.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(
        !cookie.contains(&token_of(&link)),
        "the session is not the token"
    );

    let again = confirm(&server, &link);
    assert_eq!(again.status(), 410);
    let page = again.text().unwrap();
    assert!(page.contains("This recovery link was already used"));
    assert!(
        page.contains("href=\"/self-service/recovery\""),
        "offers a new link"
    );
}

#[test]
fn revoked_unknown_and_expired_links_each_get_their_page() {
    let server = Server::start();
    let ann = server.identity(Some("ann@example.com"));
    let first = admin_link(&server, &ann);
    let _second = admin_link(&server, &ann);
    let revoked = confirm(&server, &first);
    assert_eq!(revoked.status(), 410);
    assert!(
        revoked
            .text()
            .unwrap()
            .contains("This recovery link is no longer valid")
    );

    let unknown = confirm(&server, &format!("?token={}", "A".repeat(43)));
    assert_eq!(unknown.status(), 404);
    assert!(
        unknown
            .text()
            .unwrap()
            .contains("This recovery link is not valid")
    );

    let short = client()
        .post(server.url("/admin/recovery/link"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "identity_id": ann["id"], "expires_in": "1ms" }))
        .send()
        .unwrap();
    let link = short.json::<Value>().unwrap()["recovery_link"]
        .as_str()
        .unwrap()
        .to_string();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let expired = confirm(&server, &link);
    assert_eq!(expired.status(), 410);
    assert!(
        expired
            .text()
            .unwrap()
            .contains("This recovery link has expired")
    );
}

#[test]
fn a_code_flow_dies_after_five_wrong_codes() {
    let server = Server::start();
    let ann = server.identity(Some("ann@example.com"));
    let created: Value = client()
        .post(server.url("/admin/recovery/code"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "identity_id": ann["id"] }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let link = created["recovery_link"].as_str().unwrap();
    let flow = link.split("flow=").nth(1).unwrap();
    let page = client().get(link).send().unwrap().text().unwrap();
    assert!(page.contains("action=\"/self-service/recovery/code\""));
    let code = created["recovery_code"].as_str().unwrap();
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    let form = FormToken::fetch(&server);
    let submit = |c: &str| {
        form.post(
            &server,
            "/self-service/recovery/code",
            &[("flow", flow), ("code", c)],
        )
    };
    for left in (1..=4).rev() {
        let response = submit(&wrong);
        assert_eq!(response.status(), 400);
        assert!(
            response
                .text()
                .unwrap()
                .contains(&format!("{left} attempt"))
        );
    }
    let fifth = submit(&wrong);
    assert!(fifth.text().unwrap().contains("Too many wrong codes"));
    let right = submit(code);
    assert_eq!(right.status(), 400);
    assert!(
        right
            .text()
            .unwrap()
            .contains("Please request another code")
    );
}

#[test]
fn posts_from_other_sites_are_refused() {
    let server = Server::start();
    let ann = server.identity(Some("ann@example.com"));
    let link = admin_link(&server, &ann);
    let form = FormToken::fetch(&server);
    let forged = client()
        .post(server.url("/self-service/recovery/confirm"))
        .header("origin", "https://evil.example")
        .header("cookie", &form.cookie)
        .form(&[("token", token_of(&link)), ("csrf_token", form.token)])
        .send()
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(
        confirm(&server, &link).status(),
        303,
        "the link was not spent by the forgery"
    );
}

#[test]
fn the_password_form_needs_a_live_session() {
    let server = Server::start();
    let page = client()
        .get(server.url("/self-service/recovery/password"))
        .send()
        .unwrap();
    assert_eq!(page.status(), 401);
    let form = FormToken::fetch(&server);
    let forged = form.post_with_cookie(
        &server,
        "/self-service/recovery/password",
        &format!(
            "{}; reclaim_recovery_session={}",
            form.cookie,
            "0".repeat(64)
        ),
        &[
            ("password", "a new password"),
            ("password_confirm", "a new password"),
        ],
    );
    assert_eq!(forged.status(), 401);
}

#[test]
fn a_mailed_link_leads_through_a_new_password_to_the_return_url() {
    let server = Server::start();
    let ann = server.identity(Some("ann@example.com"));
    let form = client()
        .get(
            server.url("/self-service/recovery?return_to=https%3A%2F%2Fapp.example.test%2Fwelcome"),
        )
        .send()
        .unwrap()
        .text()
        .unwrap();
    // The form posts with the allowed return_to.
    assert!(
        form.contains("?return_to=https%3A%2F%2Fapp.example.test%2Fwelcome\""),
        "{form}"
    );
    let form_token = FormToken::fetch(&server);
    form_token.post(
        &server,
        "/self-service/recovery",
        &[
            ("email", "ann@example.com"),
            ("return_to", "https://app.example.test/welcome"),
        ],
    );
    let link = link_in(&server.mail(1)[0], &server.base).unwrap();
    let confirmed = confirm(&server, &link);
    let session = confirmed.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let cookie = format!("{}; {session}", form_token.cookie);
    let mismatch = form_token.post_with_cookie(
        &server,
        "/self-service/recovery/password",
        &cookie,
        &[
            ("password", "a new password"),
            ("password_confirm", "another one"),
        ],
    );
    assert_eq!(mismatch.status(), 400);
    assert!(mismatch.text().unwrap().contains("do not match"));
    let saved = form_token.post_with_cookie(
        &server,
        "/self-service/recovery/password",
        &cookie,
        &[
            ("password", "a new password"),
            ("password_confirm", "a new password"),
        ],
    );
    assert_eq!(saved.status(), 303);
    assert_eq!(
        saved.headers()["location"],
        "https://app.example.test/welcome"
    );
    let check = server.cli(&[
        "identity",
        "check-password",
        "--identity",
        ann["id"].as_str().unwrap(),
        "--password",
        "a new password",
    ]);
    assert!(check.status.success());
    let wrong = server.cli(&[
        "identity",
        "check-password",
        "--identity",
        ann["id"].as_str().unwrap(),
        "--password",
        "old password",
    ]);
    assert!(!wrong.status.success());
    let notices = server.mail(2);
    assert!(
        notices
            .iter()
            .any(|m| m.contains("Subject: Your password was changed"))
    );
    let reused = form_token.post_with_cookie(
        &server,
        "/self-service/recovery/password",
        &cookie,
        &[
            ("password", "third password"),
            ("password_confirm", "third password"),
        ],
    );
    assert_eq!(
        reused.status(),
        401,
        "the session ended with the new password"
    );
}
