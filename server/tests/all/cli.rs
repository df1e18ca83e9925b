//! The `reclaim` command end to end: a real process per call, a real data
//! directory, JSON on stdout, JSON errors on stderr.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const SECRETS: &str = "cli-test-secret-0123456789abcdef0123456789";

fn reclaim(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reclaim"))
        .args(args)
        .env("RECLAIM_DATA", data)
        .env("RECLAIM_PUBLIC_URL", "https://id.example.test")
        .env_remove("RECLAIM_SECRETS")
        .output()
        .expect("reclaim runs")
}

fn ok(data: &Path, args: &[&str]) -> Value {
    let out = reclaim(data, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

fn refused(data: &Path, args: &[&str]) -> Value {
    let out = reclaim(data, args);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr.lines().last().expect("an error line");
    serde_json::from_str::<Value>(line).expect("the error is JSON")["error"].clone()
}

fn text(v: &Value) -> &str {
    v.as_str().expect("a string")
}

#[test]
fn the_whole_lifecycle_runs_from_the_command_line() {
    let data = tempfile::tempdir().unwrap();
    let data = data.path();
    let ann = ok(
        data,
        &[
            "identity",
            "create",
            "--email",
            "ann@example.com",
            "--name",
            "Ann",
            "--locale",
            "en",
        ],
    );
    let id = text(&ann["id"]).to_string();
    assert_eq!(ann["pk"], 1);
    assert_eq!(ann["active"], true);
    let list = ok(data, &["identity", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1);

    let link = ok(
        data,
        &["link", "create", "--identity", &id, "--expires-in", "15m"],
    );
    let url = text(&link["recovery_link"]);
    assert!(url.starts_with("https://id.example.test/self-service/recovery?flow="));
    assert!(text(&link["expires_at"]).ends_with('Z'));
    let redeemed = ok(data, &["redeem", "--link", url]);
    assert_eq!(redeemed["identity_id"], id.as_str());
    let again = refused(data, &["redeem", "--link", url]);
    assert_eq!(again["code"], 410);

    let code = ok(data, &["code", "create", "--identity", "1"]);
    assert!(!text(&code["recovery_link"]).contains(text(&code["recovery_code"])));
    let flow = text(&code["recovery_link"])
        .split("flow=")
        .nth(1)
        .unwrap()
        .to_string();
    let by_code = ok(
        data,
        &[
            "redeem",
            "--flow",
            &flow,
            "--code",
            text(&code["recovery_code"]),
        ],
    );
    assert_eq!(by_code["identity_id"], id.as_str());
    refused(
        data,
        &[
            "redeem",
            "--flow",
            &flow,
            "--code",
            text(&code["recovery_code"]),
        ],
    );

    ok(data, &["link", "create", "--identity", &id]);
    assert_eq!(ok(data, &["revoke", "--identity", &id])["revoked"], 1);

    ok(data, &["email", "send", "--identity", &id]);
    let outbox: Vec<_> = std::fs::read_dir(data.join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        outbox.len(),
        1,
        "the command delivered its mail before exiting"
    );
    let eml = std::fs::read_to_string(&outbox[0]).unwrap();
    assert!(eml.contains("Subject: Recover access to your account"));
}

#[test]
fn bad_input_gets_a_json_error_and_a_failing_exit() {
    let data = tempfile::tempdir().unwrap();
    let data = data.path();
    let ann = ok(data, &["identity", "create", "--email", "ann@example.com"]);
    let id = text(&ann["id"]);
    for bad in ["1d", "1h30m", "-1h", "0s", " 1h", "", "1H"] {
        let e = refused(
            data,
            &["link", "create", "--identity", id, "--expires-in", bad],
        );
        assert_eq!(e["code"], 400, "{bad:?}");
        assert_eq!(e["status"], "Bad Request");
    }
    let unknown = refused(
        data,
        &[
            "link",
            "create",
            "--identity",
            "6f1c1c8e-2b54-4c43-9f0e-6a8a9d1f7b10",
        ],
    );
    assert_eq!(unknown["code"], 404);
    let silent = ok(data, &["identity", "create"]);
    let no_mail = refused(data, &["email", "send", "--identity", text(&silent["id"])]);
    assert_eq!(
        no_mail["message"],
        "User does not have an email address set."
    );
}

#[test]
fn secrets_are_created_in_the_data_directory_and_never_printed() {
    let data = tempfile::tempdir().unwrap();
    let data = data.path();
    ok(data, &["identity", "create", "--email", "ann@example.com"]);
    let link = ok(data, &["link", "create", "--identity", "1"]);
    let secrets = std::fs::read_to_string(data.join("secrets")).unwrap();
    let secret = secrets.trim();
    assert!(secret.len() >= 32);
    assert!(!link.to_string().contains(secret));

    // Rotation from the environment: a new secret in front of the old one.
    let out = Command::new(env!("CARGO_BIN_EXE_reclaim"))
        .args(["redeem", "--link", text(&link["recovery_link"])])
        .env("RECLAIM_DATA", data)
        .env("RECLAIM_SECRETS", format!("{SECRETS},{secret}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn of_32_concurrent_redeeming_processes_exactly_one_wins() {
    let data = tempfile::tempdir().unwrap();
    let data = data.path();
    ok(data, &["identity", "create", "--email", "ann@example.com"]);
    let link = ok(data, &["link", "create", "--identity", "1"]);
    let url = text(&link["recovery_link"]).to_string();
    let children: Vec<_> = (0..32)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_reclaim"))
                .args(["redeem", "--link", &url])
                .env("RECLAIM_DATA", data)
                .env("RECLAIM_PUBLIC_URL", "https://id.example.test")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let winners = outputs.iter().filter(|o| o.status.success()).count();
    assert_eq!(
        winners,
        1,
        "{:?}",
        outputs
            .iter()
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            .collect::<Vec<_>>()
    );
    for loser in outputs.iter().filter(|o| !o.status.success()) {
        assert!(String::from_utf8_lossy(&loser.stderr).contains("\"code\":410"));
    }
}

/// The bounds of the tunables are the component's (`wit/recovery.wit`); the
/// server asks it at start-up, so an operator's mistake stops `serve` with
/// the component's reason instead of failing every request.
#[test]
fn serve_refuses_to_start_with_tunables_the_component_refuses() {
    let cases = [
        (
            "RECLAIM_MAX_CODE_ATTEMPTS",
            "0",
            "max-code-attempts must be between 1 and 255",
        ),
        (
            "RECLAIM_MAX_CODE_ATTEMPTS_PER_IDENTITY",
            "10001",
            "between 1 and 10000",
        ),
        (
            "RECLAIM_LIFESPAN",
            "25h",
            "the lifespan is longer than the maximum lifespan",
        ),
    ];
    for (name, value, reason) in cases {
        let message = crate::common::Server::serve_fails(&[(name, value)]);
        assert!(
            message.contains("the settings are refused") && message.contains(reason),
            "{name}={value}: {message}"
        );
    }
    // Within bounds, the same tunables start it (the defaults fill the rest).
    let server = crate::common::Server::start_with(&[
        ("RECLAIM_MAX_CODE_ATTEMPTS", "255"),
        ("RECLAIM_LIFESPAN", "24h"),
    ]);
    let ann = server.identity(Some("ann@example.com"));
    assert!(crate::common::admin_link(&server, &ann).contains("token="));
}
