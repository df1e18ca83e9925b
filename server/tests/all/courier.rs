//! The courier against a real SMTP server (aiosmtpd on loopback): delivery,
//! outages, crashes, permanent failures, several couriers, languages and
//! header injection.

use crate::common;

use std::collections::HashSet;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{ADMIN_TOKEN, Server, SmtpSink, header, link_in};
use serde_json::Value;

/// A configuration file with fast retries, for tests that wait on them.
fn fast_retries(dir: &std::path::Path, extra: &str) -> String {
    let path = dir.join("courier.toml");
    std::fs::write(
        &path,
        format!(
            "[courier]\ntimeout = \"2s\"\nlease = \"5s\"\nretry_base = \"100ms\"\nretry_max = \"300ms\"\n\
             interval = \"100ms\"\n{extra}"
        ),
    )
    .unwrap();
    path.display().to_string()
}

fn status(server: &Server) -> Value {
    server.cli_json(&["courier", "status"])
}

fn message_ids(messages: &[String]) -> Vec<String> {
    messages
        .iter()
        .map(|m| header(m, "Message-ID").expect("a Message-ID").to_string())
        .collect()
}

fn watch(server: &Server) -> Child {
    server
        .command()
        .args(["courier", "watch"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_until(secs: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    done()
}

/// Queues `count` recovery mails by CLI while the relay is down (each
/// command's own delivery attempt fails and is recorded as a retry).
fn queue_mail(server: &Server, count: usize) {
    for i in 0..count {
        let who = server.identity(Some(&format!("person{i}@example.com")));
        server.cli_json(&["email", "send", "--identity", who["id"].as_str().unwrap()]);
    }
}

#[test]
fn a_link_created_through_the_api_arrives_over_smtp_and_redeems() {
    let sink = SmtpSink::running();
    let server = Server::start_with(&[
        ("RECLAIM_SMTP_URL", &sink.url()),
        ("RECLAIM_MAIL_FROM", "Reclaim <no-reply@reclaim.test>"),
    ]);
    let ann = server.identity(Some("ann@example.com"));
    assert_eq!(common::mail_link(&server, &ann).status(), 204);
    let messages = sink.wait_for(1, 10);
    assert_eq!(messages.len(), 1);
    let mail = &messages[0];
    assert_eq!(
        header(mail, "X-Envelope-From"),
        Some("no-reply@reclaim.test")
    );
    assert_eq!(header(mail, "X-Envelope-To"), Some("ann@example.com"));
    assert_eq!(
        header(mail, "From"),
        Some("Reclaim <no-reply@reclaim.test>")
    );
    assert_eq!(
        header(mail, "To"),
        Some("\"Ann Example\" <ann@example.com>")
    );
    assert_eq!(
        header(mail, "Subject"),
        Some("Recover access to your account")
    );
    assert!(header(mail, "Message-ID").is_some_and(|id| id.ends_with("@reclaim.test>")));
    assert!(header(mail, "Date").is_some());
    let link = link_in(mail, &server.base).expect("the mail carries the link");
    assert_eq!(
        server.cli_json(&["redeem", "--link", &link])["identity_id"],
        ann["id"]
    );
    assert!(wait_until(5, || status(&server)["sent"] == 1));
}

#[test]
fn with_the_smtp_server_down_mail_stays_queued_then_arrives_exactly_once() {
    let mut sink = SmtpSink::stopped(0.0);
    let config_dir = tempfile::tempdir().unwrap();
    let config = fast_retries(config_dir.path(), "max_attempts = 1000\n");
    let server = Server::start_with(&[
        ("RECLAIM_SMTP_URL", &sink.url()),
        ("RECLAIM_CONFIG", &config),
    ]);
    queue_mail(&server, 3);
    std::thread::sleep(Duration::from_secs(1));
    let waiting = status(&server);
    assert_eq!(waiting["sent"], 0);
    assert_eq!(waiting["abandoned"], 0);
    assert_eq!(
        waiting["queued"].as_u64().unwrap() + waiting["processing"].as_u64().unwrap(),
        3
    );
    let listed = server.cli_json(&["courier", "list", "--status", "queued"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["last_error"].as_str().is_some_and(|e| !e.is_empty()))
    );

    sink.start();
    let messages = sink.wait_for(3, 15);
    assert_eq!(messages.len(), 3);
    std::thread::sleep(Duration::from_secs(1));
    let messages = sink.messages();
    assert_eq!(messages.len(), 3, "nothing arrives twice");
    assert_eq!(
        message_ids(&messages)
            .into_iter()
            .collect::<HashSet<_>>()
            .len(),
        3
    );
    assert!(wait_until(5, || status(&server)["sent"] == 3));
}

#[test]
fn a_courier_killed_mid_batch_loses_nothing_and_a_new_one_finishes() {
    // A slow relay, so the courier is surely in the middle of its batch.
    let mut sink = SmtpSink::stopped(0.3);
    let config_dir = tempfile::tempdir().unwrap();
    let config = fast_retries(config_dir.path(), "max_attempts = 1000\n");
    let server = Server::offline(&[
        ("RECLAIM_SMTP_URL", &sink.url()),
        ("RECLAIM_CONFIG", &config),
    ]);
    queue_mail(&server, 12);
    sink.start();
    let mut first = watch(&server);
    assert!(
        wait_until(20, || sink.messages().len() >= 2),
        "the first courier started delivering"
    );
    // SIGKILL: no chance to clean up its claims.
    first.kill().unwrap();
    first.wait().unwrap();
    let before_restart = sink.messages().len();
    assert!(
        before_restart < 12,
        "killed mid-batch ({before_restart} delivered)"
    );

    let mut second = watch(&server);
    let finished = wait_until(40, || status(&server)["sent"] == 12);
    second.kill().unwrap();
    second.wait().unwrap();
    assert!(finished, "the second courier finished: {}", status(&server));
    let ids = message_ids(&sink.messages());
    let unique: HashSet<_> = ids.iter().cloned().collect();
    assert_eq!(unique.len(), 12, "every message arrived");
    // At most the message in flight at the kill is sent again, with its Message-ID.
    assert!(ids.len() <= 13, "{} deliveries", ids.len());
}

#[test]
fn failing_addresses_are_abandoned_visibly_and_notices_can_be_retried() {
    let sink = SmtpSink::running();
    let config_dir = tempfile::tempdir().unwrap();
    let config = fast_retries(config_dir.path(), "max_attempts = 3\n");
    let server = Server::start_with(&[
        ("RECLAIM_SMTP_URL", &sink.url()),
        ("RECLAIM_CONFIG", &config),
        ("RECLAIM_NOTIFY_UNKNOWN_RECIPIENTS", "true"),
    ]);
    for address in ["reject@example.com", "tempfail@example.com"] {
        let who = server.identity(Some(address));
        let response = reqwest::blocking::Client::new()
            .post(server.url(&format!(
                "/api/v3/core/users/{}/recovery_email/?email_stage=default",
                who["pk"]
            )))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .unwrap();
        assert_eq!(response.status(), 204);
    }
    assert!(
        wait_until(20, || status(&server)["abandoned"] == 2),
        "{}",
        status(&server)
    );
    let abandoned = server.cli_json(&["courier", "list", "--status", "abandoned"]);
    let by_to = |abandoned: &Value, to: &str| {
        abandoned
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["to"] == to)
            .unwrap()
            .clone()
    };
    let rejected = by_to(&abandoned, "reject@example.com");
    assert_eq!(rejected["attempts"], 1, "a permanent 550 is not retried");
    assert!(rejected["last_error"].as_str().unwrap().contains("550"));
    let tempfailed = by_to(&abandoned, "tempfail@example.com");
    assert_eq!(
        tempfailed["attempts"], 3,
        "a transient 451 is retried up to max_attempts"
    );
    assert!(tempfailed["last_error"].as_str().unwrap().contains("451"));
    assert!(sink.messages().is_empty());
    // Abandoning a recovery mail revoked its link: it can only be replaced.
    let refused = server.cli(&["courier", "retry", tempfailed["id"].as_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("send a new one"));

    // A notice carries no link: once abandoned, it can be sent again.
    server.cli_json(&["request", "--email", "tempfail-note@example.com"]);
    assert!(
        wait_until(20, || status(&server)["abandoned"] == 3),
        "{}",
        status(&server)
    );
    let abandoned = server.cli_json(&["courier", "list", "--status", "abandoned"]);
    let notice = by_to(&abandoned, "tempfail-note@example.com");
    assert_eq!(notice["template"], "recovery-unknown");
    let retried = server.cli_json(&["courier", "retry", notice["id"].as_str().unwrap()]);
    assert_eq!(retried["status"], "queued");
    let attempts_logged = |id: &str| {
        let db = rusqlite::Connection::open(server.data.path().join("reclaim.db")).unwrap();
        db.query_row(
            "SELECT count(*) FROM outbox_attempts WHERE mail_id = ?",
            [id],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
    };
    let id = notice["id"].as_str().unwrap();
    assert!(
        wait_until(20, || attempts_logged(id) == 6),
        "a retried message gets a new round of attempts"
    );
    assert!(wait_until(5, || status(&server)["abandoned"] == 3));
    let unknown = server.cli(&["courier", "retry", "no-such-id"]);
    assert!(!unknown.status.success());
}

#[test]
fn two_couriers_on_one_database_deliver_each_message_once() {
    let mut sink = SmtpSink::stopped(0.05);
    let config_dir = tempfile::tempdir().unwrap();
    let config = fast_retries(config_dir.path(), "max_attempts = 1000\nbatch = 2\n");
    let server = Server::offline(&[
        ("RECLAIM_SMTP_URL", &sink.url()),
        ("RECLAIM_CONFIG", &config),
    ]);
    queue_mail(&server, 20);
    sink.start();
    let mut couriers = [watch(&server), watch(&server)];
    let finished = wait_until(40, || status(&server)["sent"] == 20);
    std::thread::sleep(Duration::from_millis(500));
    for courier in &mut couriers {
        courier.kill().unwrap();
        courier.wait().unwrap();
    }
    assert!(finished, "{}", status(&server));
    let ids = message_ids(&sink.messages());
    assert_eq!(ids.len(), 20, "each message once");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 20);
}

#[test]
fn german_identities_get_german_mail_and_no_crlf_reaches_the_wire() {
    let sink = SmtpSink::running();
    let server = Server::start_with(&[("RECLAIM_SMTP_URL", &sink.url())]);
    let bea = server.cli_json(&[
        "identity",
        "create",
        "--email",
        "bea@example.com",
        "--name",
        "Bea",
        "--locale",
        "de",
    ]);
    // Refused where identities are created; an embedder's own directory
    // may still hold such a name, so the mailer refuses it too.
    let created = server.cli(&[
        "identity",
        "create",
        "--email",
        "eve@example.com",
        "--name",
        "Eve\r\nBcc: all@example.com",
    ]);
    assert!(!created.status.success());
    let db = rusqlite::Connection::open(server.data.path().join("reclaim.db")).unwrap();
    db.execute(
        "INSERT INTO identities (id, email, display_name, active, created_at)
         VALUES ('7f0c3c55-3b51-4a8e-9d38-2f5c1e1b9a01', 'eve@example.com', 'Eve\r\nBcc: all@example.com', 1, 0)",
        [],
    )
    .unwrap();
    let eve: Value = serde_json::json!({ "pk": db.last_insert_rowid() });
    let client = reqwest::blocking::Client::new();
    let send = |who: &Value| {
        client
            .post(server.url(&format!(
                "/api/v3/core/users/{}/recovery_email/?email_stage=default",
                who["pk"]
            )))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .unwrap()
    };
    assert_eq!(send(&bea).status(), 204);
    let refused = send(&eve);
    assert_eq!(
        refused.status(),
        400,
        "a name with CR/LF is refused, nothing queued"
    );
    let mail = sink.wait_for(1, 10).pop().unwrap();
    assert_eq!(
        header(&mail, "Subject"),
        Some("Zugang zu Ihrem Konto wiederherstellen")
    );
    assert!(mail.contains("Hallo Bea"));
    assert!(mail.contains("läuft in 30 Minuten ab"), "{mail}");
    std::thread::sleep(Duration::from_millis(500));
    let all = sink.messages();
    assert_eq!(all.len(), 1);
    assert!(
        all.iter()
            .all(|m| !m.contains("Bcc:") && header(m, "X-Envelope-To") != Some("all@example.com"))
    );
}
