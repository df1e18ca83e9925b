//! Events delivered to a real endpoint on loopback (`webhook_receiver.py`),
//! where the `standardwebhooks` library from PyPI verifies every delivery:
//! signed, retried with a stable id, stopped by a 410, never lost to a
//! crash, and never carrying a token, code, link or assertion.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{
    ADMIN_TOKEN, FormToken, Launch, NEW_PASSWORD, Server, admin_link, client, free_port, mail_link,
    redeem, set_password, token_of,
};

/// The specification's test secret.
pub const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// The platform's endpoint: a Python process verifying with the library.
pub struct Receiver {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Receiver {
    pub fn start(answers: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("deliveries.jsonl");
        Self::start_at(free_port(), log, answers, dir)
    }

    fn start_at(port: u16, log: PathBuf, answers: &str, dir: tempfile::TempDir) -> Self {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let python = root.join("../target/webhooks-venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: scripts/test installs it",
            python.display()
        );
        let child = Command::new(python)
            .arg(root.join("tests/webhook_receiver.py"))
            .args([&port.to_string(), SECRET, log.to_str().unwrap(), answers])
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the receiver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every request it got, in order.
    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Waits up to 30 seconds until `done` holds of the requests.
    pub fn wait_for(&self, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let requests = self.requests();
            if done(&requests) || Instant::now() > deadline {
                return requests;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A configuration file for `serve`: fast retries and short leases, and
/// the endpoints given as `[[webhooks]]` tables.
fn config(dir: &std::path::Path, top: &str, webhooks: &str, retry: &str) -> PathBuf {
    let path = dir.join("reclaim.toml");
    let retry = vec![format!("\"{retry}\""); 9].join(", ");
    std::fs::write(
        &path,
        format!(
            "{top}\nwebhook_timeout = \"1s\"\nwebhook_retry = [{retry}]\n\
             [courier]\ntimeout = \"2s\"\nlease = \"5s\"\ninterval = \"200ms\"\n{webhooks}"
        ),
    )
    .unwrap();
    path
}

fn endpoint(url: &str, extra: &str) -> String {
    format!("[[webhooks]]\nurl = \"{url}\"\nsecrets = [\"{SECRET}\"]\n{extra}\n")
}

/// A server whose configuration file lists `webhooks`, retrying every
/// 300 ms.
fn server(webhooks: &str, launch: Launch) -> (Server, tempfile::TempDir) {
    server_retrying(webhooks, launch, "300ms")
}

fn server_retrying(webhooks: &str, launch: Launch, retry: &str) -> (Server, tempfile::TempDir) {
    configured("", webhooks, launch, retry)
}

/// A server whose configuration file starts with `top` (top-level keys).
fn configured(
    top: &str,
    webhooks: &str,
    launch: Launch,
    retry: &str,
) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = config(dir.path(), top, webhooks, retry);
    let server = Server::launch(&[("RECLAIM_CONFIG", file.to_str().unwrap())], launch);
    (server, dir)
}

fn of_type<'a>(requests: &'a [Value], kind: &str) -> Vec<&'a Value> {
    requests
        .iter()
        .filter(|r| body(r)["type"] == kind)
        .collect()
}

pub fn body(request: &Value) -> Value {
    serde_json::from_str(request["body"].as_str().unwrap()).unwrap()
}

#[test]
fn a_recovery_reaches_the_platform_as_verified_events_that_never_carry_a_secret() {
    let receiver = Receiver::start("");
    let hooks = endpoint(&receiver.url("/with-hash"), "include_password_hash = true")
        + &endpoint(&receiver.url("/plain"), "");
    let (server, _config) = server(
        &hooks,
        Launch {
            log_to_file: true,
            ..Launch::default()
        },
    );
    let created = client()
        .post(server.url("/admin/identities"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({
            "schema_id": "default",
            "traits": { "email": "ann@example.com" },
            "external_id": "platform-42",
        }))
        .send()
        .unwrap();
    assert_eq!(created.status(), 201);
    let ann: Value = created.json().unwrap();
    let link = admin_link(&server, &ann);
    let form = FormToken::fetch(&server);
    let cookie = redeem(&server, &form, &link);
    let done = set_password(&server, &form, &cookie, NEW_PASSWORD);
    assert_eq!(done.status(), 200);
    let code: Value = client()
        .post(server.url("/admin/recovery/code"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "identity_id": ann["id"] }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    // authentik's route names the identity by its pk.
    let by_pk = json!({ "pk": ann["metadata_admin"]["pk"] });
    assert_eq!(mail_link(&server, &by_pk).status(), 204);
    let kinds = [
        "identity.created",
        "recovery.link.created",
        "recovery.redeemed",
        "recovery.completed",
        "recovery.code.created",
        "recovery.email.sent",
    ];
    let requests = receiver.wait_for(|r| {
        kinds
            .iter()
            .all(|k| of_type(r, k).len() >= 2 && r.iter().all(|x| x["verified"] == true))
            && of_type(r, "recovery.link.created").len() >= 4
    });
    for kind in kinds {
        assert!(of_type(&requests, kind).len() >= 2, "{kind}: {requests:#?}");
    }
    for request in &requests {
        assert_eq!(request["verified"], true, "{request}");
        assert!(request["id"].as_str().unwrap().starts_with("msg_"));
        let body = body(request);
        assert_eq!(body["data"]["identity_id"], ann["id"], "{body}");
        assert_eq!(body["data"]["external_id"], "platform-42");
        assert!(body["timestamp"].as_str().unwrap().contains('T'));
    }
    // Each event goes to both endpoints under one id; only the one that
    // asked for it gets the password's PHC string.
    let completed = of_type(&requests, "recovery.completed");
    assert_eq!(completed[0]["id"], completed[1]["id"]);
    for c in &completed {
        let hash = &body(c)["data"]["password_hash"];
        match c["path"].as_str().unwrap() {
            "/with-hash" => assert!(hash.as_str().unwrap().starts_with("$argon2id$")),
            _ => assert!(hash.is_null()),
        }
    }
    // The trail keeps the same events, with the request that caused each.
    let trail: Value = client()
        .get(server.url(&format!(
            "/admin/recovery/events?identity_id={}",
            ann["id"].as_str().unwrap()
        )))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let trail = trail.as_array().unwrap();
    assert!(trail.len() >= 7, "{trail:#?}");
    assert!(
        trail
            .iter()
            .all(|e| e["request_id"].is_string() || e["type"] == "recovery.email.sent")
    );
    // A page at a time, the `Link` header naming the next.
    let mut paged = Vec::new();
    let mut next = Some(format!(
        "/admin/recovery/events?identity_id={}&page_size=2",
        ann["id"].as_str().unwrap()
    ));
    while let Some(path) = next.take() {
        let page = client()
            .get(server.url(&path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .unwrap();
        next = page.headers()["link"]
            .to_str()
            .unwrap()
            .split(',')
            .find(|l| l.ends_with("rel=\"next\""))
            .map(|l| l.split(['<', '>']).nth(1).unwrap().to_string());
        let events: Vec<Value> = page.json().unwrap();
        assert!(events.len() <= 2);
        paged.extend(events);
    }
    assert_eq!(&paged, trail);
    let cli = server.cli_json(&["events", "list", "--identity", ann["id"].as_str().unwrap()]);
    assert_eq!(cli.as_array().unwrap().len(), trail.len());
    // No secret anywhere: not in a delivery, the trail, or the log.
    let everything = format!("{requests:?}{trail:?}{cli}{}", server.log());
    for secret in [token_of(&link), NEW_PASSWORD.to_string()] {
        assert!(!everything.contains(secret.as_str()), "{secret} leaked");
    }
    // The code is digits: it must not stand alone anywhere (inside a
    // timestamp's digits it is a coincidence).
    let code = code["recovery_code"].as_str().unwrap();
    let alone = everything.match_indices(code).any(|(at, _)| {
        let before = everything[..at].chars().next_back();
        let after = everything[at + code.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit()) && !after.is_some_and(|c| c.is_ascii_digit())
    });
    assert!(!alone, "the code {code} leaked");
    assert!(!format!("{trail:?}").contains("argon2id"));
}

#[test]
fn a_failing_endpoint_gets_the_same_delivery_until_it_answers_2xx_and_redirects_are_not_followed() {
    let receiver = Receiver::start("503,sleep,302,200");
    let hooks = endpoint(
        &receiver.url("/hooks"),
        "events = [\"recovery.link.created\"]",
    );
    let (server, _config) = server(&hooks, Launch::default());
    let ann = server.identity(Some("ann@example.com"));
    admin_link(&server, &ann);
    let requests = receiver.wait_for(|r| r.len() >= 4);
    std::thread::sleep(Duration::from_secs(2));
    let requests_after = receiver.requests();
    assert_eq!(
        requests_after.len(),
        4,
        "delivered once, then no more: {requests_after:#?}"
    );
    let answers: Vec<&str> = requests
        .iter()
        .map(|r| r["answer"].as_str().unwrap())
        .collect();
    assert_eq!(answers, ["503", "sleep", "302", "200"]);
    assert!(
        requests.iter().all(|r| r["id"] == requests[0]["id"]),
        "one webhook-id"
    );
    assert!(
        requests.iter().all(|r| r["path"] == "/hooks"),
        "the redirect was not followed"
    );
    assert!(requests.iter().all(|r| r["verified"] == true));
    assert_eq!(of_type(&requests, "recovery.link.created").len(), 4);
    let status = server.cli_json(&["courier", "status"]);
    assert_eq!(status["webhooks"][0]["delivered"], 1, "{status}");
}

#[test]
fn a_410_disables_the_endpoint_until_it_is_enabled_again() {
    let receiver = Receiver::start("410");
    let url = receiver.url("/hooks");
    let hooks = endpoint(&url, "events = [\"recovery.link.created\"]");
    let (server, _config) = server(&hooks, Launch::default());
    let ann = server.identity(Some("ann@example.com"));
    admin_link(&server, &ann);
    receiver.wait_for(|r| !r.is_empty());
    admin_link(&server, &ann);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(receiver.requests().len(), 1, "nothing more after the 410");
    let status = server.cli_json(&["courier", "status"]);
    let endpoint = &status["webhooks"][0];
    assert_eq!(endpoint["url"], url.as_str());
    assert!(endpoint["disabled_at"].is_string(), "{status}");
    assert_eq!(endpoint["queued"], 2);
    let metrics = client()
        .get(server.url("/metrics"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("reclaim_webhook_endpoint_disabled{")
                && l.contains(&url)
                && l.ends_with(" 1")),
        "{metrics}"
    );
    server.cli_json(&["courier", "enable-webhook", &url]);
    let requests = receiver.wait_for(|r| r.len() >= 3);
    assert_eq!(requests.len(), 3, "{requests:#?}");
    assert_eq!(requests[1]["answer"], "200");
    assert_eq!(requests[2]["answer"], "200");
}

#[test]
fn an_operation_that_rolls_back_emits_nothing() {
    let receiver = Receiver::start("");
    let (server, _config) = server(&endpoint(&receiver.url("/hooks"), ""), Launch::default());
    let create = |email: &str| -> Value {
        client()
            .post(server.url("/admin/identities"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "schema_id": "default", "traits": { "email": email } }))
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let ann = create("ann@example.com");
    create("bob@example.com");
    // Taking Bob's address fails, and the change is undone with its event.
    let taken = client()
        .put(server.url(&format!(
            "/admin/identities/{}",
            ann["id"].as_str().unwrap()
        )))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "schema_id": "default", "state": "active",
                       "traits": { "email": "bob@example.com" } }))
        .send()
        .unwrap();
    assert_eq!(taken.status(), 409);
    let requests = receiver.wait_for(|r| r.len() >= 2);
    std::thread::sleep(Duration::from_secs(1));
    let trail = server.cli_json(&["events", "list"]);
    let types: Vec<&str> = trail
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["identity.created", "identity.created"]);
    assert_eq!(requests.len(), 2);
    assert_eq!(receiver.requests().len(), 2);
}

#[test]
fn kill_9_with_deliveries_queued_loses_none() {
    // The endpoint is down while the events are made and `serve` dies.
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("deliveries.jsonl");
    let url = format!("http://127.0.0.1:{port}/hooks");
    let hooks = endpoint(&url, "events = [\"recovery.link.created\"]");
    // Retries far enough apart that none runs out while the endpoint is down.
    let (mut server, _config) = server_retrying(&hooks, Launch::default(), "3s");
    let ann = server.identity(Some("ann@example.com"));
    for _ in 0..20 {
        admin_link(&server, &ann);
    }
    server.kill();
    let receiver = Receiver::start_at(port, log, "", dir);
    server.restart();
    let requests = receiver.wait_for(|r| {
        r.iter()
            .filter(|x| x["answer"] == "200")
            .map(|x| x["id"].as_str().unwrap())
            .collect::<std::collections::HashSet<_>>()
            .len()
            >= 20
    });
    let delivered: Vec<&str> = requests
        .iter()
        .filter(|x| x["answer"] == "200")
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    let distinct: std::collections::HashSet<_> = delivered.iter().collect();
    assert_eq!(distinct.len(), 20, "{requests:#?}");
    assert_eq!(delivered.len(), 20, "each once");
    assert!(requests.iter().all(|r| r["verified"] == true));
}

/// The README's Python block that starts with `first_line`, as written.
fn readme_python(first_line: &str) -> String {
    include_str!("../../../README.md")
        .split("```python\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .find(|block| block.starts_with(first_line))
        .unwrap_or_else(|| panic!("the README has a Python block starting {first_line:?}"))
        .to_string()
}

#[test]
fn the_readmes_platform_side_redeems_an_assertion_and_verifies_a_delivery() {
    let receiver = Receiver::start("");
    let (server, _config) = configured(
        "completion = \"handoff\"\nhandoff_url = \"https://platform.example.test/recovered\"",
        &endpoint(
            &receiver.url("/hooks"),
            "events = [\"recovery.handed_off\"]",
        ),
        Launch::default(),
        "300ms",
    );
    let ann = server.identity(Some("ann@example.com"));
    let redeemed = FormToken::fetch(&server).post(
        &server,
        "/self-service/recovery/confirm",
        &[("token", &token_of(&admin_link(&server, &ann)))],
    );
    assert_eq!(redeemed.status(), 303);
    let location = redeemed.headers()["location"].to_str().unwrap();
    let assertion = location.split("recovery_assertion=").nth(1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("platform.py");
    // The README's two blocks, then what the platform's own code would do
    // with them: redeem the assertion, and verify the delivery it causes.
    std::fs::write(
        &script,
        format!(
            "{}\n{}\n{}",
            readme_python("# The platform's route at handoff_url"),
            readme_python("# Verifying a delivery"),
            r#"
import sys
reclaim_url, token, assertion, secret, log = sys.argv[1:]
recovered = redeem_assertion(reclaim_url, token, assertion)
try:
    redeem_assertion(reclaim_url, token, assertion)
    again = 200
except urllib.error.HTTPError as e:
    again = e.code
import time
for _ in range(100):
    lines = open(log).read().splitlines() if __import__("os").path.exists(log) else []
    if lines:
        break
    time.sleep(0.1)
delivery = json.loads(lines[0])
headers = {"webhook-id": delivery["id"], "webhook-timestamp": delivery["timestamp"],
           "webhook-signature": delivery["signature"]}
event = verified_event(delivery["body"].encode(), headers, secret)
try:
    verified_event(delivery["body"].encode() + b" ", headers, secret)
    tampered = "accepted"
except Exception:
    tampered = "refused"
print(json.dumps({"recovered": recovered, "again": again, "event": event, "tampered": tampered}))
"#
        ),
    )
    .unwrap();
    let python =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/webhooks-venv/bin/python");
    let output = Command::new(python)
        .arg(&script)
        .args([
            &server.base,
            ADMIN_TOKEN,
            assertion,
            SECRET,
            receiver.log.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["recovered"]["identity_id"], ann["id"]);
    assert_eq!(answer["recovered"]["method"], "link");
    assert_eq!(answer["again"], 410);
    assert_eq!(answer["event"]["type"], "recovery.handed_off");
    assert_eq!(answer["event"]["data"]["identity_id"], ann["id"]);
    assert_eq!(answer["tampered"], "refused");
}
