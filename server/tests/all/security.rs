//! Regression tests for what an attacker found in the recovery flow (one
//! per finding), against a real `reclaim serve` and the compiled component.

use crate::common;

use std::thread;

use common::{
    ADMIN_TOKEN, FormToken, Server, SmtpSink, admin_link, client, link_in, password_is, token_of,
};
use reqwest::blocking::Response;
use serde_json::{Value, json};

/// Redeems a link; returns the session cookie (`name=value`).
fn redeem(server: &Server, form: &FormToken, link: &str) -> String {
    let confirmed = form.post(
        server,
        "/self-service/recovery/confirm",
        &[("token", &token_of(link))],
    );
    assert_eq!(confirmed.status(), 303);
    confirmed.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

fn set_password(server: &Server, form: &FormToken, session: &str, password: &str) -> Response {
    form.post_with_cookie(
        server,
        "/self-service/recovery/password",
        &format!("{}; {session}", form.cookie),
        &[("password", password), ("password_confirm", password)],
    )
}

/// Finding 1: a session opened by an intercepted link died with nothing.
#[test]
fn a_recovery_session_ends_with_a_newer_redemption_a_new_password_and_a_revocation() {
    let server = Server::start();
    let ann = server.identity(Some("ann@example.com"));
    let form = FormToken::fetch(&server);

    let attacker = redeem(&server, &form, &admin_link(&server, &ann));
    let owner = redeem(&server, &form, &admin_link(&server, &ann));
    assert_eq!(
        set_password(&server, &form, &attacker, "attacker password").status(),
        401,
        "the owner's newer redemption ended the older session"
    );
    assert!(matches!(
        set_password(&server, &form, &owner, "owner password")
            .status()
            .as_u16(),
        200 | 303
    ));

    let later = redeem(&server, &form, &admin_link(&server, &ann));
    let revoked = server.cli_json(&["revoke", "--identity", ann["id"].as_str().unwrap()]);
    assert_eq!(revoked, json!({ "revoked": 0, "sessions_ended": 1 }));
    assert_eq!(
        set_password(&server, &form, &later, "attacker password").status(),
        401,
        "revoke ended the session"
    );
    assert!(password_is(&server, &ann, "owner password"));
    assert!(!password_is(&server, &ann, "attacker password"));
}

/// Finding 1, the password step: a session sets one password, once, and
/// the new password revokes every link still outstanding.
#[test]
fn a_new_password_ends_the_session_and_revokes_outstanding_links() {
    let server = Server::start_with(&[("RECLAIM_REVOKE_OLDER_LINKS", "false")]);
    let ann = server.identity(Some("ann@example.com"));
    let form = FormToken::fetch(&server);
    let session = redeem(&server, &form, &admin_link(&server, &ann));
    let issued_after = admin_link(&server, &ann);
    assert_eq!(
        set_password(&server, &form, &session, "first password").status(),
        200
    );
    assert_eq!(
        set_password(&server, &form, &session, "second password").status(),
        401
    );
    let late = form.post(
        &server,
        "/self-service/recovery/confirm",
        &[("token", &token_of(&issued_after))],
    );
    assert_eq!(late.status(), 410, "the new password revoked the link");
    assert!(password_is(&server, &ann, "first password"));
}

/// Finding 2: the request is only queued before the answer, durably: a
/// server killed right after answering still mails the link once it is
/// back. (Timing is measured by `examples/request_timing`, not here.)
#[test]
fn a_queued_request_survives_a_kill_and_is_served_after_the_restart() {
    let mut server = Server::start();
    server.identity(Some("ann@example.com"));
    let form = FormToken::fetch(&server);
    let answered = form.post(
        &server,
        "/self-service/recovery",
        &[("email", "ann@example.com")],
    );
    assert_eq!(answered.status(), 200);
    server.kill();
    server.restart();
    let mail = server.mail(1);
    assert_eq!(mail.len(), 1, "the request was served after the restart");
    assert!(link_in(&mail[0], &server.base).is_some());
}

/// An identity id no session belongs to: cookies naming it are well formed,
/// so the server has to look them up.
const NOBODY: &str = "3f1e2d4c-5b6a-4798-8a7b-6c5d4e3f2a1b";

/// Finding 3: without a live session nothing is hashed, so anonymous posts
/// can't drive memory up (each Argon2id hash takes ~19 MiB).
#[test]
fn password_posts_without_a_live_session_cost_no_memory() {
    let server = Server::start();
    let form = FormToken::fetch(&server);
    let peak = |pid: u32| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap()
    };
    // Warm the server up, so the baseline includes its steady state.
    for _ in 0..20 {
        assert_eq!(
            set_password(
                &server,
                &form,
                &format!("reclaim_recovery_session={NOBODY}.{}", "0".repeat(64)),
                "x".repeat(1000).as_str()
            )
            .status(),
            401
        );
    }
    let before = peak(server.pid());
    let attackers: Vec<_> = (0..16)
        .map(|i| {
            let (server_base, form) = (server.base.clone(), form.clone());
            thread::spawn(move || {
                let client = client();
                for j in 0..25 {
                    let response = client
                        .post(format!("{server_base}/self-service/recovery/password"))
                        .header(
                            "cookie",
                            format!(
                                "{}; reclaim_recovery_session={NOBODY}.{:064x}",
                                form.cookie,
                                i * 100 + j
                            ),
                        )
                        .header("origin", &server_base)
                        .form(&[
                            ("password", "a long enough password"),
                            ("password_confirm", "a long enough password"),
                            ("csrf_token", &form.token),
                        ])
                        .send()
                        .unwrap();
                    assert_eq!(response.status(), 401);
                }
            })
        })
        .collect();
    for attacker in attackers {
        attacker.join().unwrap();
    }
    let grown_kib = peak(server.pid()).saturating_sub(before);
    assert!(
        grown_kib < 64 * 1024,
        "400 anonymous password posts raised the peak RSS by {grown_kib} KiB"
    );
}

/// Finding 4: a stranger's request for someone's address cancels nothing,
/// and the links it sent stay usable while the address is limited.
#[test]
fn self_service_requests_cancel_no_link_and_leave_sent_links_usable() {
    let server = Server::start();
    let ann = server.identity(Some("ann@example.com"));
    let form = FormToken::fetch(&server);
    let from_admin = admin_link(&server, &ann);
    for _ in 0..5 {
        let stranger = FormToken::fetch(&server);
        let answered = stranger.post(
            &server,
            "/self-service/recovery",
            &[("email", "ann@example.com")],
        );
        assert_eq!(answered.status(), 200);
    }
    let limited = form.post(
        &server,
        "/self-service/recovery",
        &[("email", "ann@example.com")],
    );
    assert_eq!(limited.status(), 429);
    assert!(limited.text().unwrap().contains("already sent stay valid"));
    let mail = server.mail(5);
    assert_eq!(mail.len(), 5);
    let mailed = link_in(&mail[0], &server.base).unwrap();
    let confirmed = form.post(
        &server,
        "/self-service/recovery/confirm",
        &[("token", &token_of(&from_admin))],
    );
    assert_eq!(
        confirmed.status(),
        303,
        "the administrator's link survived five requests"
    );
    // Redeeming one revokes the rest: the newest-wins guarantee now comes
    // from the person, not from a stranger.
    let after = form.post(
        &server,
        "/self-service/recovery/confirm",
        &[("token", &token_of(&mailed))],
    );
    assert_eq!(after.status(), 410);
}

/// Finding 5: a form post needs the CSRF token of the browser's cookie and
/// our own origin; `Origin: null` is refused, and a refused post spends
/// nothing.
#[test]
fn form_posts_need_a_csrf_token_and_our_origin() {
    let server = Server::start();
    let ann = server.identity(Some("ann@example.com"));
    let link = admin_link(&server, &ann);
    let form = FormToken::fetch(&server);
    let other = FormToken::fetch(&server);
    let token = token_of(&link);
    let attempt = |origin: Option<&str>, cookie: &str, csrf: Option<&str>| {
        let mut fields = vec![("token", token.as_str())];
        if let Some(csrf) = csrf {
            fields.push(("csrf_token", csrf));
        }
        let mut request = client()
            .post(server.url("/self-service/recovery/confirm"))
            .header("cookie", cookie);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.form(&fields).send().unwrap().status().as_u16()
    };
    let base = server.base.as_str();
    assert_eq!(attempt(Some("null"), &form.cookie, Some(&form.token)), 403);
    assert_eq!(
        attempt(
            Some("https://evil.example"),
            &form.cookie,
            Some(&form.token)
        ),
        403
    );
    assert_eq!(attempt(Some(base), &form.cookie, None), 403);
    assert_eq!(attempt(Some(base), "", Some(&form.token)), 403);
    assert_eq!(attempt(Some(base), &form.cookie, Some(&other.token)), 403);
    let cross_site = client()
        .post(server.url("/self-service/recovery/confirm"))
        .header("cookie", &form.cookie)
        .header("sec-fetch-site", "cross-site")
        .form(&[("token", token.as_str()), ("csrf_token", &form.token)])
        .send()
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    assert_eq!(attempt(Some(base), &form.cookie, Some(&form.token)), 303);
}

/// Finding 6: clients behind a trusted proxy are told apart by
/// `X-Forwarded-For`, IPv6 clients by their /64; an untrusted peer's
/// forwarded header is ignored.
#[test]
fn the_client_limit_keys_on_forwarded_addresses_only_from_trusted_proxies() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("reclaim.toml");
    std::fs::write(&config, "[rate_limit]\nper_client = 2\nper_address = 100\n").unwrap();
    let config = config.display().to_string();
    let request = |server: &Server, forwarded: &str, n: usize| {
        let form = FormToken::fetch(server);
        client()
            .post(server.url("/self-service/recovery"))
            .header("cookie", &form.cookie)
            .header("x-forwarded-for", forwarded)
            .form(&[
                ("email", format!("n{n}@example.com").as_str()),
                ("csrf_token", &form.token),
            ])
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    let proxied = Server::start_with(&[
        ("RECLAIM_CONFIG", &config),
        ("RECLAIM_TRUSTED_PROXIES", "127.0.0.0/8"),
    ]);
    assert_eq!(request(&proxied, "203.0.113.1", 1), 200);
    assert_eq!(request(&proxied, "198.51.100.9, 203.0.113.1", 2), 200);
    assert_eq!(request(&proxied, "203.0.113.1", 3), 429);
    assert_eq!(request(&proxied, "203.0.113.2", 4), 200, "another client");
    assert_eq!(request(&proxied, "2001:db8:1:2::1", 5), 200);
    assert_eq!(request(&proxied, "2001:db8:1:2::ffff", 6), 200);
    assert_eq!(
        request(&proxied, "2001:db8:1:2:abcd::1", 7),
        429,
        "the same /64"
    );
    assert_eq!(request(&proxied, "2001:db8:1:3::1", 8), 200);

    let direct = Server::start_with(&[("RECLAIM_CONFIG", &config)]);
    assert_eq!(request(&direct, "203.0.113.1", 1), 200);
    assert_eq!(request(&direct, "203.0.113.2", 2), 200);
    assert_eq!(
        request(&direct, "203.0.113.3", 3),
        429,
        "an untrusted peer can't pick its own address"
    );
}

/// Finding 7: mail given up on leaves no live link behind, and the
/// database is the owner's alone.
#[test]
fn abandoned_mail_is_blanked_its_link_revoked_and_the_database_private() {
    let sink = SmtpSink::running();
    let server = Server::offline(&[("RECLAIM_SMTP_URL", &sink.url())]);
    let reject = server.identity(Some("reject-ann@example.com"));
    let sent = server.cli_json(&[
        "email",
        "send",
        "--identity",
        reject["id"].as_str().unwrap(),
    ]);
    let listed = server.cli_json(&["courier", "list", "--status", "abandoned"]);
    let id = listed[0]["id"].as_str().unwrap();

    let db = rusqlite::Connection::open(server.data.path().join("reclaim.db")).unwrap();
    let (text, html): (String, String) = db
        .query_row(
            "SELECT text_body, html_body FROM outbox WHERE id = ?",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (text.as_str(), html.as_str()),
        ("", ""),
        "the bodies are blanked"
    );
    let revoked: Option<i64> = db
        .query_row(
            "SELECT revoked_at FROM credentials WHERE flow_id = ?",
            [sent["flow_id"].as_str().unwrap()],
            |r| r.get(0),
        )
        .unwrap();
    assert!(revoked.is_some(), "the mailed credential is revoked");
    let retry = server.cli(&["courier", "retry", id]);
    assert!(
        !retry.status.success(),
        "a blanked message can't be sent again"
    );

    use std::os::unix::fs::PermissionsExt;
    for file in ["reclaim.db", "reclaim.db-wal", "reclaim.db-shm"] {
        let path = server.data.path().join(file);
        if let Ok(meta) = std::fs::metadata(&path) {
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{file}");
        }
    }
    let fresh = server.data.path().join("created-by-reclaim");
    let listed = server
        .command()
        .env("RECLAIM_DATA", &fresh)
        .args(["identity", "list"])
        .output()
        .unwrap();
    assert!(listed.status.success());
    let dir_mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
    assert_eq!(
        dir_mode & 0o077,
        0,
        "a data directory reclaim creates is private"
    );
}

/// Finding 8: one address check everywhere, and names that fit a header.
#[test]
fn addresses_relays_refuse_are_refused_everywhere_and_long_names_fit_one_line() {
    let server = Server::start();
    for bad in ["\"a\\\"b\"@example.com", "a@[127.0.0.1]"] {
        let created = server.cli(&["identity", "create", "--email", bad]);
        assert!(!created.status.success(), "identity create accepted {bad}");
        let form = FormToken::fetch(&server);
        let requested = form.post(&server, "/self-service/recovery", &[("email", bad)]);
        assert_eq!(requested.status(), 400, "{bad}");
    }
    let injected = server.cli(&[
        "identity",
        "create",
        "--email",
        "b@example.com",
        "--name",
        "Ann\r\nBcc: x@y",
    ]);
    assert!(!injected.status.success());

    let long_name = "𝔄".repeat(256);
    let ann = server.cli_json(&[
        "identity",
        "create",
        "--email",
        "ann@example.com",
        "--name",
        &long_name,
    ]);
    server.cli_json(&["email", "send", "--identity", ann["id"].as_str().unwrap()]);
    let outbox = server.data.path().join("outbox");
    let eml = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "eml"))
        .unwrap();
    let raw = std::fs::read_to_string(eml).unwrap();
    let longest = raw.split("\r\n").map(str::len).max().unwrap();
    assert!(longest <= 998, "a line of {longest} bytes");
}

/// Finding 9: the Bearer scheme is case-insensitive.
#[test]
fn the_bearer_scheme_is_case_insensitive() {
    let server = Server::start();
    let ann = server.identity(Some("ann@example.com"));
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let response = client()
            .post(server.url("/admin/recovery/link"))
            .header("authorization", format!("{scheme} {ADMIN_TOKEN}"))
            .json(&json!({ "identity_id": ann["id"] }))
            .send()
            .unwrap();
        assert_eq!(response.status(), 200, "{scheme}");
    }
}

/// Finding 10: `return_to` is matched at a path boundary and used in the
/// normalised form that was checked.
#[test]
fn return_to_matches_at_a_slash_and_is_redirected_to_normalised() {
    let server = Server::start_with(&[(
        "RECLAIM_ALLOWED_RETURN_URLS",
        "https://app.example.test/done",
    )]);
    let ann = server.identity(Some("ann@example.com"));
    let create = |return_to: &str| {
        client()
            .post(server.url("/admin/recovery/link"))
            .query(&[("return_to", return_to)])
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "identity_id": ann["id"] }))
            .send()
            .unwrap()
    };
    assert_eq!(create("https://app.example.test/donex").status(), 400);
    let created = create("HTTPS://APP.EXAMPLE.TEST:443/done/./next");
    assert_eq!(created.status(), 200);
    let link = created.json::<Value>().unwrap()["recovery_link"]
        .as_str()
        .unwrap()
        .to_string();
    let form = FormToken::fetch(&server);
    let session = redeem(&server, &form, &link);
    let done = set_password(&server, &form, &session, "a new password");
    assert_eq!(done.status(), 303);
    assert_eq!(
        done.headers()["location"],
        "https://app.example.test/done/next"
    );
}

/// Finding 10: the page a link opens already says when the link is dead,
/// and opening a live one spends nothing.
#[test]
fn a_dead_link_looks_dead_before_the_person_acts() {
    let server = Server::start();
    let ann = server.identity(Some("ann@example.com"));
    let first = admin_link(&server, &ann);
    let open = |link: &str| client().get(link).send().unwrap();
    assert_eq!(open(&first).status(), 200);
    let second = admin_link(&server, &ann);
    let revoked = open(&first);
    assert_eq!(revoked.status(), 410);
    assert!(
        revoked
            .text()
            .unwrap()
            .contains("This recovery link is no longer valid")
    );
    let unknown = open(&format!(
        "{}?flow=x&token={}",
        server.url("/self-service/recovery"),
        "A".repeat(43)
    ));
    assert_eq!(unknown.status(), 404);
    let form = FormToken::fetch(&server);
    redeem(&server, &form, &second);
    let used = open(&second);
    assert_eq!(used.status(), 410);
    assert!(
        used.text()
            .unwrap()
            .contains("This recovery link was already used")
    );
}

/// The queue's durable form: a request that was answered is served once.
#[test]
fn a_request_is_mailed_once() {
    let server = Server::start();
    server.identity(Some("ann@example.com"));
    let form = FormToken::fetch(&server);
    form.post(
        &server,
        "/self-service/recovery",
        &[("email", "ann@example.com")],
    );
    let mail = server.mail(1);
    thread::sleep(std::time::Duration::from_millis(600));
    assert_eq!(server.mail(1).len(), mail.len());
}

#[test]
fn the_eml_outbox_is_its_owners_alone() {
    use std::os::unix::fs::PermissionsExt;
    let server = crate::common::Server::start();
    let ann = server.identity(Some("ann@example.com"));
    assert_eq!(crate::common::mail_link(&server, &ann).status(), 204);
    let mail = server.mail(1);
    assert_eq!(mail.len(), 1);
    let outbox = server.data.path().join("outbox");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&outbox), 0o700);
    for file in std::fs::read_dir(&outbox).unwrap() {
        assert_eq!(mode(&file.unwrap().path()), 0o600);
    }
}
