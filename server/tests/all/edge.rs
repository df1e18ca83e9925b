//! The edge component (`reclaim component --edge`) under the real
//! `wasmtime serve`, against the real `reclaim serve`: one table of HTTP
//! cases, each sent to both, must get the same status, the headers that
//! matter and the same body shape. Then what only the edge must prove:
//! many instances at once over one data directory redeem a link exactly
//! once and stop wrong codes exactly at the limit.
//!
//! Needs `wasmtime` 48.0.8 on the PATH (scripts/test installs it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use reqwest::blocking::{RequestBuilder, Response};
use serde_json::{Value, json};

use crate::common::{ADMIN_TOKEN, FormToken, RETURN_URL, Server, client, free_port, token_of};

/// The composed edge component, written once per test binary.
fn edge_wasm() -> &'static Path {
    static WASM: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, wasm) = WASM.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("reclaim-edge.wasm");
        let out = Command::new(env!("CARGO_BIN_EXE_reclaim"))
            .args(["component", "--edge", "--out"])
            .arg(&wasm)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (dir, wasm)
    });
    wasm
}

/// `wasmtime serve` running the edge component on its own data directory.
pub struct Edge {
    child: Child,
    pub base: String,
    pub data: tempfile::TempDir,
}

impl Edge {
    /// Serves `identities` (as `reclaim identity create` prints them), with
    /// the settings `reclaim serve` has by default and the tests' admin
    /// token and allowed return URL.
    pub fn start(identities: &[Value]) -> Self {
        Self::start_with(identities, &[])
    }

    /// [`Edge::start`] with more `wasmtime serve` flags.
    pub fn start_with(identities: &[Value], flags: &[&str]) -> Self {
        let found = Command::new("wasmtime").arg("--version").output();
        assert!(
            found.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("48.0.8")),
            "wasmtime 48.0.8 is not on the PATH: scripts/test installs it"
        );
        let data = tempfile::tempdir().unwrap();
        let base = format!("http://127.0.0.1:{}", free_port());
        let write = |name: &str, value: Value| {
            std::fs::write(data.path().join(name), value.to_string()).unwrap();
        };
        write("identities.json", Value::from(identities.to_vec()));
        write(
            "settings.json",
            json!({
                "public_url": base,
                "secrets": ["an-edge-test-secret-of-32-bytes-or-more"],
            }),
        );
        let child = Command::new("wasmtime")
            .arg("serve")
            .arg("-Scli")
            .arg("--dir")
            .arg(format!("{}::/data", data.path().display()))
            .args(["--env", &format!("RECLAIM_ADMIN_TOKEN={ADMIN_TOKEN}")])
            .args([
                "--env",
                "RECLAIM_ALLOWED_RETURN_URLS=https://app.example.test/",
            ])
            .args(["--addr", base.trim_start_matches("http://")])
            .args(flags)
            .arg(edge_wasm())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("wasmtime serve starts");
        let edge = Self { child, base, data };
        let deadline = Instant::now() + Duration::from_secs(60);
        while client().get(edge.url("/health/alive")).send().is_err() {
            assert!(Instant::now() < deadline, "wasmtime serve did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        edge
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The same deployment twice: `reclaim serve`, and `wasmtime serve` with
/// the same identities (ids and pks included).
struct Pair {
    native: Server,
    edge: Edge,
    /// Ann has an address; Bo has none.
    ann: Value,
    bo: Value,
}

impl Pair {
    fn start() -> Self {
        Self::start_with(&[])
    }

    fn start_with(edge_flags: &[&str]) -> Self {
        let native = Server::start();
        let ann = native.identity(Some("ann@example.com"));
        let bo = native.cli_json(&["identity", "create", "--name", "Bo"]);
        let edge = Edge::start_with(&[ann.clone(), bo.clone()], edge_flags);
        Self {
            native,
            edge,
            ann,
            bo,
        }
    }
}

/// What is compared of an answer.
#[derive(Debug, PartialEq)]
struct Observed {
    status: u16,
    headers: Vec<(&'static str, Option<String>)>,
    body: Value,
}

/// Headers whose values must agree; the rest (dates, lengths, cookies'
/// random values, request ids) may not.
const COMPARED_HEADERS: [&str; 8] = [
    "content-type",
    "cache-control",
    "referrer-policy",
    "x-content-type-options",
    "x-frame-options",
    "content-security-policy",
    "allow",
    "retry-after",
];

/// JSON keys whose values are the same on both servers; every other value
/// is compared by its type alone (links, tokens, times, request ids).
const EXACT_KEYS: [&str; 6] = [
    "code",
    "status",
    "reason",
    "message",
    "detail",
    "non_field_errors",
];

fn shape(value: &Value, exact: bool) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        shape(v, exact || EXACT_KEYS.contains(&k.as_str())),
                    )
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| shape(v, exact)).collect()),
        _ if exact => value.clone(),
        Value::String(_) => json!("<string>"),
        Value::Number(_) => json!("<number>"),
        other => other.clone(),
    }
}

fn observe(response: Response) -> Observed {
    let status = response.status().as_u16();
    let headers = COMPARED_HEADERS
        .iter()
        .map(|name| {
            let value = response
                .headers()
                .get(*name)
                .map(|v| v.to_str().unwrap().to_string());
            (*name, value)
        })
        .collect();
    let is_json = response
        .headers()
        .get("content-type")
        .is_some_and(|t| t.to_str().unwrap().starts_with("application/json"));
    let text = response.text().unwrap();
    let body = if is_json {
        shape(&serde_json::from_str(&text).unwrap(), false)
    } else if let Some(h1) = heading(&text) {
        // A page: its heading and message say which page and why; its
        // CSRF token and cookie are random.
        json!({ "page": h1, "alert": alert(&text) })
    } else {
        json!(text)
    };
    Observed {
        status,
        headers,
        body,
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let from = from + text[from..].find('>')? + 1;
    let to = from + text[from..].find(end)?;
    Some(text[from..to].trim())
}

fn heading(page: &str) -> Option<String> {
    between(page, "<h1", "</h1>").map(str::to_string)
}

fn alert(page: &str) -> Option<String> {
    between(page, "role=\"alert\"", "</p>").map(str::to_string)
}

/// How to send a case to a server at `base`, given who Ann and Bo are.
type Sender = Box<dyn Fn(&str, &Value, &Value) -> RequestBuilder>;

struct Case {
    name: &'static str,
    send: Sender,
}

fn case(
    name: &'static str,
    send: impl Fn(&str, &Value, &Value) -> RequestBuilder + 'static,
) -> Case {
    Case {
        name,
        send: Box::new(send),
    }
}

fn kratos(base: &str, path: &str, body: Value) -> RequestBuilder {
    client()
        .post(format!("{base}{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
}

fn link_with_expiry(base: &str, ann: &Value, expires_in: &str) -> RequestBuilder {
    kratos(
        base,
        "/admin/recovery/link",
        json!({ "identity_id": ann["id"], "expires_in": expires_in }),
    )
}

fn authentik(base: &str, path: &str) -> RequestBuilder {
    client()
        .post(format!("{base}/api/v3/core/users/{path}"))
        .bearer_auth(ADMIN_TOKEN)
}

fn cases() -> Vec<Case> {
    let mut cases = vec![
        case("alive", |b, _, _| client().get(format!("{b}/health/alive"))),
        case("unknown route", |b, _, _| {
            client().get(format!("{b}/nowhere"))
        }),
        case("stylesheet", |b, _, _| {
            client().get(format!("{b}/self-service/assets/style.css"))
        }),
        // Kratos
        case("link", |b, ann, _| {
            kratos(
                b,
                "/admin/recovery/link",
                json!({ "identity_id": ann["id"] }),
            )
        }),
        case("link under /iam", |b, ann, _| {
            kratos(b, "/iam/recovery/link", json!({ "identity_id": ann["id"] }))
        }),
        case("link with an allowed return_to", |b, ann, _| {
            kratos(
                b,
                &format!("/admin/recovery/link?return_to={RETURN_URL}"),
                json!({ "identity_id": ann["id"] }),
            )
        }),
        case("link with a foreign return_to", |b, ann, _| {
            kratos(
                b,
                "/admin/recovery/link?return_to=https://evil.example/",
                json!({ "identity_id": ann["id"] }),
            )
        }),
        case("link with an upper-case UUID", |b, ann, _| {
            let id = ann["id"].as_str().unwrap().to_uppercase();
            kratos(b, "/admin/recovery/link", json!({ "identity_id": id }))
        }),
        case("link without a token", |b, ann, _| {
            client()
                .post(format!("{b}/admin/recovery/link"))
                .json(&json!({ "identity_id": ann["id"] }))
        }),
        case("link with a wrong token", |b, ann, _| {
            client()
                .post(format!("{b}/admin/recovery/link"))
                .bearer_auth("not-the-token")
                .json(&json!({ "identity_id": ann["id"] }))
        }),
        case("link, malformed JSON", |b, _, _| {
            client()
                .post(format!("{b}/admin/recovery/link"))
                .bearer_auth(ADMIN_TOKEN)
                .header("content-type", "application/json")
                .body("{\"identity_id\": ")
        }),
        case("link, JSON of the wrong type", |b, _, _| {
            kratos(b, "/admin/recovery/link", json!({ "identity_id": 7 }))
        }),
        case("link, no identity_id", |b, _, _| {
            kratos(b, "/admin/recovery/link", json!({}))
        }),
        case("link, identity_id not a UUID", |b, _, _| {
            kratos(b, "/admin/recovery/link", json!({ "identity_id": "ann" }))
        }),
        case("link, unknown identity", |b, _, _| {
            kratos(
                b,
                "/admin/recovery/link",
                json!({ "identity_id": "00000000-0000-4000-8000-000000000000" }),
            )
        }),
        case("link, body over 16 KiB", |b, ann, _| {
            let padding = "x".repeat(17 * 1024);
            kratos(
                b,
                "/admin/recovery/link",
                json!({ "identity_id": ann["id"], "padding": padding }),
            )
        }),
        case("link, GET", |b, _, _| {
            client()
                .get(format!("{b}/admin/recovery/link"))
                .bearer_auth(ADMIN_TOKEN)
        }),
        case("code", |b, ann, _| {
            kratos(
                b,
                "/admin/recovery/code",
                json!({ "identity_id": ann["id"] }),
            )
        }),
        case("code under /iam, with flow_type", |b, ann, _| {
            kratos(
                b,
                "/iam/recovery/code",
                json!({ "identity_id": ann["id"], "flow_type": "browser" }),
            )
        }),
        case("code, unknown identity", |b, _, _| {
            kratos(
                b,
                "/admin/recovery/code",
                json!({ "identity_id": "00000000-0000-4000-8000-000000000000" }),
            )
        }),
        case("code, bad expires_in", |b, ann, _| {
            kratos(
                b,
                "/admin/recovery/code",
                json!({ "identity_id": ann["id"], "expires_in": "1d" }),
            )
        }),
        // authentik
        case("authentik link", |b, ann, _| {
            authentik(b, &format!("{}/recovery/", ann["pk"]))
        }),
        case("authentik link, authentik duration", |b, ann, _| {
            authentik(b, &format!("{}/recovery/", ann["pk"]))
                .json(&json!({ "token_duration": "hours=1;minutes=30" }))
        }),
        case("authentik link, bad duration", |b, ann, _| {
            authentik(b, &format!("{}/recovery/", ann["pk"]))
                .json(&json!({ "token_duration": "fortnights=1" }))
        }),
        case("authentik link, malformed JSON", |b, ann, _| {
            authentik(b, &format!("{}/recovery/", ann["pk"])).body("[1")
        }),
        case("authentik link, unknown user", |b, _, _| {
            authentik(b, "999999/recovery/")
        }),
        case("authentik link, pk not a number", |b, _, _| {
            authentik(b, "ann/recovery/")
        }),
        case("authentik link without a token", |b, ann, _| {
            client().post(format!("{b}/api/v3/core/users/{}/recovery/", ann["pk"]))
        }),
        case("authentik mail", |b, ann, _| {
            authentik(
                b,
                &format!("{}/recovery_email/?email_stage=default", ann["pk"]),
            )
        }),
        case("authentik mail, user without an address", |b, _, bo| {
            authentik(
                b,
                &format!("{}/recovery_email/?email_stage=default", bo["pk"]),
            )
        }),
        case("authentik mail, unknown stage", |b, ann, _| {
            authentik(
                b,
                &format!("{}/recovery_email/?email_stage=nope", ann["pk"]),
            )
        }),
        case("authentik mail, no stage", |b, ann, _| {
            authentik(b, &format!("{}/recovery_email/", ann["pk"]))
        }),
        case("authentik mail, stage in the body", |b, ann, _| {
            authentik(b, &format!("{}/recovery_email/", ann["pk"]))
                .json(&json!({ "email_stage": "default", "token_duration": "minutes=10" }))
        }),
        case("authentik mail, unknown user", |b, _, _| {
            authentik(b, "999999/recovery_email/?email_stage=default")
        }),
        // Self-service pages
        case("request form", |b, _, _| {
            client().get(format!("{b}/self-service/recovery"))
        }),
        case("code form", |b, _, _| {
            client().get(format!("{b}/self-service/recovery?flow=f"))
        }),
        case("confirmation page of an unknown link", |b, _, _| {
            client().get(format!(
                "{b}/self-service/recovery?flow=f&token=not-a-real-token"
            ))
        }),
        case("request without a CSRF token", |b, _, _| {
            client()
                .post(format!("{b}/self-service/recovery"))
                .form(&[("email", "ann@example.com")])
        }),
        case("request, not a form", |b, _, _| {
            client()
                .post(format!("{b}/self-service/recovery"))
                .json(&json!({ "email": "ann@example.com" }))
        }),
        case("request, body over 16 KiB", |b, _, _| {
            let padding = "x".repeat(17 * 1024);
            client()
                .post(format!("{b}/self-service/recovery"))
                .form(&[("email", padding.as_str())])
        }),
        case("confirm without a CSRF token", |b, _, _| {
            client()
                .post(format!("{b}/self-service/recovery/confirm"))
                .form(&[("token", "t")])
        }),
        case("code without a CSRF token", |b, _, _| {
            client()
                .post(format!("{b}/self-service/recovery/code"))
                .form(&[("flow", "f"), ("code", "123456")])
        }),
    ];
    cases.extend(flow_cases());
    // Every form of a bad `expires_in` the grammar refuses, and the bounds.
    for (name, expires_in) in [
        ("expires_in empty", ""),
        ("expires_in without a unit", "10"),
        ("expires_in in days", "1d"),
        ("expires_in negative", "-1s"),
        ("expires_in zero", "0s"),
        ("expires_in fractional", "1.5h"),
        ("expires_in compound", "1h30m"),
        ("expires_in with a space", "10 m"),
        ("expires_in over the maximum", "25h"),
        ("expires_in overflowing", "99999999999999999999h"),
        ("expires_in at the maximum", "24h"),
        ("expires_in in nanoseconds", "90000000000ns"),
    ] {
        cases.push(case(name, move |b, ann, _| {
            link_with_expiry(b, ann, expires_in)
        }));
    }
    cases
}

#[test]
fn every_http_case_gets_the_same_answer_from_wasmtime_serve_and_reclaim_serve() {
    same_answers(&Pair::start());
}

/// Instances that serve many requests (faster, less isolated; see the
/// README) must answer exactly as fresh ones do.
#[test]
fn reused_edge_instances_answer_every_case_as_fresh_ones_do() {
    same_answers(&Pair::start_with(&["--max-instance-reuse-count", "128"]));
}

/// The README's recommended `wasmtime serve` flags ("Faster instances"),
/// read from it as written.
fn readme_pooling_flags() -> Vec<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let command = readme
        .split("```sh\n")
        .find(|block| block.contains("pooling-allocator=y"))
        .and_then(|block| block.split("```").next())
        .expect("the README's pooling flags");
    let words: Vec<&str> = command.split_whitespace().collect();
    let flags: Vec<String> = words
        .windows(2)
        .filter(|pair| pair[0] == "-O")
        .flat_map(|pair| ["-O".to_string(), pair[1].to_string()])
        .collect();
    assert_eq!(flags.len(), 8, "four -O options: {command}");
    flags
}

#[test]
fn pooled_edge_instances_on_the_readmes_flags_answer_every_case_as_the_defaults_do() {
    let flags = readme_pooling_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    same_answers(&Pair::start_with(&flags));
}

fn same_answers(pair: &Pair) {
    let mut differences = Vec::new();
    for case in cases() {
        let send = |base: &str| observe((case.send)(base, &pair.ann, &pair.bo).send().unwrap());
        let native = send(&pair.native.base);
        let edge = send(&pair.edge.base);
        if native != edge {
            differences.push(format!(
                "{}:\n  reclaim serve: {native:?}\n  wasmtime serve: {edge:?}",
                case.name
            ));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

#[test]
fn the_self_service_steps_before_redemption_answer_alike() {
    let pair = Pair::start();
    for base in [&pair.native.base, &pair.edge.base] {
        let form = FormToken::fetch_from(base, "/self-service/recovery");
        let known = form.post_to(
            base,
            "/self-service/recovery",
            &[("email", "ann@example.com")],
        );
        let unknown = form.post_to(
            base,
            "/self-service/recovery",
            &[("email", "zed@example.com")],
        );
        let typed = ["ann@example.com", "zed@example.com"];
        let known = crate::common::but_flow_and_address(&known.text().unwrap(), &typed);
        let unknown = crate::common::but_flow_and_address(&unknown.text().unwrap(), &typed);
        assert_eq!(known, unknown, "{base}: the same bytes for every address");
        assert_eq!(heading(&known).unwrap(), "Check your email");
        let bad = form.post_to(
            base,
            "/self-service/recovery",
            &[("email", "not an address")],
        );
        assert_eq!(bad.status(), 400);
        let foreign = client()
            .post(format!("{base}/self-service/recovery"))
            .header("cookie", &form.cookie)
            .header("origin", "https://evil.example")
            .form(&[("email", "ann@example.com"), ("csrf_token", &form.token)])
            .send()
            .unwrap();
        assert_eq!(foreign.status(), 403, "{base}: a post from another site");
    }
    // The link the request mailed opens a confirmation page on each, and a
    // wrong code is counted alike.
    let mut answers = Vec::new();
    for base in [&pair.native.base, &pair.edge.base] {
        let link = link_from(base, &pair.ann, None);
        let confirm = observe(client().get(&link).send().unwrap());
        let code = code_from(base, &pair.ann);
        let flow = code.flow.as_str();
        let form = FormToken::fetch_from(base, &format!("/self-service/recovery?flow={flow}"));
        let wrong = observe(form.post_to(
            base,
            "/self-service/recovery/code",
            &[("flow", flow), ("code", code.wrong)],
        ));
        answers.push((confirm, wrong));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[1].1.status, 400);
}

/// A new API flow's id on the server at `base`.
fn api_flow(base: &str) -> String {
    let flow: Value = client()
        .get(format!("{base}/self-service/recovery/api"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    flow["id"].as_str().unwrap().to_string()
}

fn submit_to(base: &str, flow: &str, body: Value) -> RequestBuilder {
    client()
        .post(format!("{base}/self-service/recovery?flow={flow}"))
        .json(&body)
}

/// Kratos' recovery flow API, which both servers answer from one driver.
fn flow_cases() -> Vec<Case> {
    // One submission to a new API flow each.
    let submissions = [
        (
            "flow sent to an unknown address",
            json!({"method": "code", "email": "zed@example.com"}),
        ),
        ("flow sent to no address", json!({"method": "code"})),
        (
            "flow sent to what is no address",
            json!({"method": "code", "email": "not an address"}),
        ),
        (
            "flow with an unknown method",
            json!({"method": "password", "email": "zed@example.com"}),
        ),
    ];
    let mut cases = vec![
        case("flow api started", |b, _, _| {
            client().get(format!("{b}/self-service/recovery/api"))
        }),
        case("flow browser started as JSON", |b, _, _| {
            client()
                .get(format!("{b}/self-service/recovery/browser"))
                .header("accept", "application/json")
        }),
        case("flow browser started by a browser", |b, _, _| {
            client().get(format!("{b}/self-service/recovery/browser"))
        }),
        case("flow with a return_to not allowed", |b, _, _| {
            client().get(format!(
                "{b}/self-service/recovery/api?return_to=https://evil.example/"
            ))
        }),
        case("flow unknown", |b, _, _| {
            client().get(format!(
                "{b}/self-service/recovery/flows?id=5f0a8c1e-0000-4000-8000-000000000000"
            ))
        }),
        case("flow id that is no UUID", |b, _, _| {
            client().get(format!("{b}/self-service/recovery/flows?id=../settings"))
        }),
        case("flow without an id", |b, _, _| {
            client().get(format!("{b}/self-service/recovery/flows"))
        }),
        case("flow read", |b, _, _| {
            let flow = api_flow(b);
            client().get(format!("{b}/self-service/recovery/flows?id={flow}"))
        }),
        case("browser flow read without its cookie", |b, _, _| {
            let flow: Value = client()
                .get(format!("{b}/self-service/recovery/browser"))
                .header("accept", "application/json")
                .send()
                .unwrap()
                .json()
                .unwrap();
            let id = flow["id"].as_str().unwrap();
            client().get(format!("{b}/self-service/recovery/flows?id={id}"))
        }),
        case("flow with a wrong code", |b, _, _| {
            let flow = api_flow(b);
            submit_to(
                b,
                &flow,
                json!({"method": "code", "email": "zed@example.com"}),
            )
            .send()
            .unwrap();
            submit_to(b, &flow, json!({"method": "code", "code": "123456"}))
        }),
        case("flow with an unreadable body", |b, _, _| {
            let flow = api_flow(b);
            client()
                .post(format!("{b}/self-service/recovery?flow={flow}"))
                .header("content-type", "application/json")
                .body("{")
        }),
        case("flow submitted from a browser", |b, _, _| {
            let flow = api_flow(b);
            submit_to(
                b,
                &flow,
                json!({"method": "code", "email": "zed@example.com"}),
            )
            .header("origin", "https://evil.example")
        }),
    ];
    cases.extend(submissions.into_iter().map(|(name, body)| {
        case(name, move |b, _, _| {
            submit_to(b, &api_flow(b), body.clone())
        })
    }));
    cases
}

/// A recovery link from the Kratos admin route of the server at `base`.
fn link_from(base: &str, ann: &Value, return_to: Option<&str>) -> String {
    let path = match return_to {
        Some(url) => format!("/admin/recovery/link?return_to={url}"),
        None => "/admin/recovery/link".into(),
    };
    let response = kratos(base, &path, json!({ "identity_id": ann["id"] }))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json::<Value>().unwrap()["recovery_link"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A recovery code from the Kratos admin route of the server at `base`.
struct Code {
    flow: String,
    right: String,
    /// A code that is not this one.
    wrong: &'static str,
}

fn code_from(base: &str, ann: &Value) -> Code {
    let response = kratos(
        base,
        "/admin/recovery/code",
        json!({ "identity_id": ann["id"] }),
    )
    .send()
    .unwrap();
    assert_eq!(response.status(), 201);
    let code = response.json::<Value>().unwrap();
    let right = code["recovery_code"].as_str().unwrap().to_string();
    let flow = code["recovery_link"]
        .as_str()
        .unwrap()
        .split("flow=")
        .nth(1)
        .unwrap();
    Code {
        flow: flow.to_string(),
        wrong: if right == "000000" {
            "111111"
        } else {
            "000000"
        },
        right,
    }
}

#[test]
fn the_edge_redeems_a_link_once_and_sends_the_person_to_its_return_to() {
    let native = Server::start();
    let ann = native.identity(Some("ann@example.com"));
    let edge = Edge::start(std::slice::from_ref(&ann));
    let link = link_from(&edge.base, &ann, Some(RETURN_URL));
    // Opening the link consumes nothing, however often.
    for _ in 0..2 {
        let page = client().get(&link).send().unwrap();
        assert_eq!(page.status(), 200);
        assert_eq!(
            heading(&page.text().unwrap()).unwrap(),
            "Reset your password"
        );
    }
    let form = FormToken::fetch_from(&edge.base, link.trim_start_matches(&edge.base));
    let token = token_of(&link);
    let redeemed = form.post_to(
        &edge.base,
        "/self-service/recovery/confirm",
        &[("token", &token)],
    );
    assert_eq!(redeemed.status(), 303);
    assert_eq!(redeemed.headers()["location"], RETURN_URL);
    let again = form.post_to(
        &edge.base,
        "/self-service/recovery/confirm",
        &[("token", &token)],
    );
    assert_eq!(again.status(), 410);
    assert_eq!(
        heading(&again.text().unwrap()).unwrap(),
        "This recovery link was already used"
    );
    // Without a return_to, the page that says so.
    let link = link_from(&edge.base, &ann, None);
    let plain = form.post_to(
        &edge.base,
        "/self-service/recovery/confirm",
        &[("token", &token_of(&link))],
    );
    assert_eq!(plain.status(), 200);
    assert_eq!(
        heading(&plain.text().unwrap()).unwrap(),
        "Recovery confirmed"
    );
}

#[test]
fn the_edge_mails_through_the_outbox_of_its_data_directory() {
    let native = Server::start();
    let ann = native.identity(Some("ann@example.com"));
    let edge = Edge::start(std::slice::from_ref(&ann));
    let sent = authentik(
        &edge.base,
        &format!("{}/recovery_email/?email_stage=default", ann["pk"]),
    )
    .send()
    .unwrap();
    assert_eq!(sent.status(), 204);
    let outbox: Vec<_> = std::fs::read_dir(edge.data.path().join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    let mail = crate::common::decoded(&std::fs::read_to_string(&outbox[0]).unwrap());
    let link = crate::common::link_in(&mail, &edge.base).expect("a link to the edge");
    let page = client().get(&link).send().unwrap();
    assert_eq!(page.status(), 200);
}

#[test]
fn the_edge_mails_from_the_sender_of_an_email_stage_as_reclaim_serve_does() {
    let native = Server::start();
    let ann = native.identity(Some("ann@example.com"));
    let edge = Edge::start(std::slice::from_ref(&ann));
    // settings.json is read for each request: written anew and renamed over.
    let settings = edge.data.path().join("settings.json");
    let mut written: Value =
        serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    written["email_stages"] =
        json!([{ "name": "support", "from": "Acme Support <help@acme.example>" }]);
    let fresh = edge.data.path().join("settings.json.new");
    std::fs::write(&fresh, written.to_string()).unwrap();
    std::fs::rename(&fresh, &settings).unwrap();
    let sent = authentik(
        &edge.base,
        &format!("{}/recovery_email/?email_stage=support", ann["pk"]),
    )
    .send()
    .unwrap();
    assert_eq!(sent.status(), 204);
    let outbox: Vec<_> = std::fs::read_dir(edge.data.path().join("outbox"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(outbox.len(), 1);
    assert!(
        outbox[0].starts_with("From: Acme Support <help@acme.example>\r\n"),
        "{}",
        outbox[0]
    );
}

#[test]
fn the_edge_mails_again_after_a_relay_moved_its_outbox_away() {
    let native = Server::start();
    let ann = native.identity(Some("ann@example.com"));
    let edge = Edge::start(std::slice::from_ref(&ann));
    let send = || {
        authentik(
            &edge.base,
            &format!("{}/recovery_email/?email_stage=default", ann["pk"]),
        )
        .send()
        .unwrap()
        .status()
    };
    assert_eq!(send(), 204);
    let outbox = edge.data.path().join("outbox");
    std::fs::rename(&outbox, edge.data.path().join("relaying")).unwrap();
    assert_eq!(send(), 204, "the next request makes the outbox again");
    assert_eq!(std::fs::read_dir(&outbox).unwrap().count(), 1);
}

/// `n` requests sent at once (after a barrier), their answers in order.
fn at_once(n: usize, send: impl Fn(usize) -> Response + Send + Sync + 'static) -> Vec<Response> {
    let barrier = Arc::new(Barrier::new(n));
    let send = Arc::new(send);
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (barrier, send) = (barrier.clone(), send.clone());
            std::thread::spawn(move || {
                barrier.wait();
                send(i)
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

#[test]
fn of_32_concurrent_redemptions_of_one_link_at_the_edge_exactly_one_wins_100_times_over() {
    let native = Server::start();
    let ann = native.identity(Some("ann@example.com"));
    let edge = Arc::new(Edge::start(std::slice::from_ref(&ann)));
    let form = Arc::new(FormToken::fetch_from(&edge.base, "/self-service/recovery"));
    for round in 0..100 {
        let token = token_of(&link_from(&edge.base, &ann, Some(RETURN_URL)));
        let (edge, form) = (edge.clone(), form.clone());
        let statuses: Vec<u16> = at_once(32, move |_| {
            form.post_to(
                &edge.base,
                "/self-service/recovery/confirm",
                &[("token", &token)],
            )
        })
        .into_iter()
        .map(|r| r.status().as_u16())
        .collect();
        let won = statuses.iter().filter(|s| **s == 303).count();
        let lost = statuses.iter().filter(|s| **s == 410).count();
        assert_eq!((won, lost), (1, 31), "round {round}: {statuses:?}");
    }
}

#[test]
fn concurrent_wrong_codes_at_the_edge_stop_exactly_at_the_attempt_limit() {
    let native = Server::start();
    // An identity per round: each round's five wrong codes stay under the
    // per-identity cap of ten, so only the flow's limit is at work.
    let people: Vec<Value> = (0..10)
        .map(|i| native.identity(Some(&format!("ann{i}@example.com"))))
        .collect();
    let edge = Arc::new(Edge::start(&people));
    for (round, ann) in people.iter().enumerate() {
        let Code { flow, right, wrong } = code_from(&edge.base, ann);
        let form = Arc::new(FormToken::fetch_from(
            &edge.base,
            &format!("/self-service/recovery?flow={flow}"),
        ));
        let pages: Vec<String> = {
            let (edge, form, flow) = (edge.clone(), form.clone(), flow.clone());
            at_once(32, move |_| {
                form.post_to(
                    &edge.base,
                    "/self-service/recovery/code",
                    &[("flow", &flow), ("code", wrong)],
                )
            })
            .into_iter()
            .map(|r| heading(&r.text().unwrap()).unwrap())
            .collect()
        };
        // The default limit is five: four wrong codes are answered with the
        // code form again, and the fifth and every later one end the flow.
        let retried = pages
            .iter()
            .filter(|h| *h == "Enter your recovery code")
            .count();
        let ended = pages
            .iter()
            .filter(|h| *h == "Too many wrong codes")
            .count();
        assert_eq!((retried, ended), (4, 28), "round {round}: {pages:?}");
        let counted = std::fs::read_dir(edge.data.path().join("attempts"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{flow}."))
            })
            .count();
        assert_eq!(counted, 5, "round {round}: wrong codes on disk");
        // Not even the right code opens an ended flow.
        let late = form.post_to(
            &edge.base,
            "/self-service/recovery/code",
            &[("flow", &flow), ("code", &right)],
        );
        assert_eq!(
            heading(&late.text().unwrap()).unwrap(),
            "Too many wrong codes"
        );
    }
}

#[test]
fn a_new_link_revokes_links_from_before_the_identity_index_existed() {
    let native = Server::start();
    let ann = native.identity(Some("ann@example.com"));
    let edge = Edge::start(std::slice::from_ref(&ann));
    let old = link_from(&edge.base, &ann, None);
    // A directory as earlier providers left it: credentials, no index.
    std::fs::remove_dir_all(edge.data.path().join("by-identity")).unwrap();
    let new = link_from(&edge.base, &ann, None);
    let page = client().get(&old).send().unwrap();
    assert_eq!(page.status(), 410);
    assert_eq!(
        heading(&page.text().unwrap()).unwrap(),
        "This recovery link is no longer valid"
    );
    assert_eq!(client().get(&new).send().unwrap().status(), 200);
    assert!(edge.data.path().join("by-identity/.complete").exists());
    // The revoked link left the index: a revocation reads live ones only.
    let indexed = edge
        .data
        .path()
        .join("by-identity")
        .join(ann["id"].as_str().unwrap());
    assert_eq!(std::fs::read_dir(indexed).unwrap().count(), 1);
}

/// The six-digit code of the one mail in the edge's outbox.
fn edge_code(edge: &Edge) -> String {
    let outbox: Vec<_> = std::fs::read_dir(edge.data.path().join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    let mail = crate::common::decoded(&std::fs::read_to_string(&outbox[0]).unwrap());
    crate::common::code_in(&mail).expect("a code mail with six digits")
}

#[test]
fn of_16_parallel_right_codes_on_one_edge_flow_one_ends_it_and_the_rest_see_it_ended() {
    let native = Server::start();
    let ann = native.identity(Some("ann@example.com"));
    let edge = Edge::start(std::slice::from_ref(&ann));
    let flow = api_flow(&edge.base);
    let sent = submit_to(
        &edge.base,
        &flow,
        json!({"method": "code", "email": "ann@example.com"}),
    )
    .send()
    .unwrap();
    assert_eq!(sent.status(), 200);
    let code = edge_code(&edge);
    let base = edge.base.clone();
    let answers = at_once(16, move |_| {
        submit_to(
            &base,
            &flow,
            json!({"method": "code", "email": "", "code": code}),
        )
        .send()
        .unwrap()
    });
    let mut endings = 0;
    for answer in answers {
        let status = answer.status().as_u16();
        let body: Value = answer.json().unwrap();
        match status {
            // Kratos' default ending: no session at the edge, so to the
            // flow's own page.
            422 => {
                endings += 1;
                assert_eq!(body["error"]["id"], "browser_location_change_required");
                assert!(
                    body["redirect_browser_to"]
                        .as_str()
                        .unwrap()
                        .contains("?flow=")
                );
            }
            // Behind the winner: the flow as it now is, the code already
            // used, or a new flow saying it was done (4060001) or that the
            // code was tried too often (4000001: the engine counts every
            // attempt on the code).
            200 => assert!(
                body["state"] == "passed_challenge"
                    || [4060006, 4060001, 4000001]
                        .contains(&body["ui"]["messages"][0]["id"].as_u64().unwrap()),
                "{body}"
            ),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(endings, 1);
}

#[test]
fn a_browser_recovers_through_the_edges_flow_pages_to_its_return_to() {
    let native = Server::start();
    let ann = native.identity(Some("ann@example.com"));
    let edge = Edge::start(std::slice::from_ref(&ann));
    // The browser route leads to the recovery UI, the edge's own page.
    let started = client()
        .get(edge.url(&format!(
            "/self-service/recovery/browser?return_to={RETURN_URL}"
        )))
        .send()
        .unwrap();
    assert_eq!(started.status(), 303);
    let cookie = started.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("Path=/self-service;"), "{cookie}");
    let cookie = cookie.split(';').next().unwrap().to_string();
    let page_url = started.headers()["location"].to_str().unwrap().to_string();
    let flow = page_url.split("flow=").nth(1).unwrap().to_string();
    let page = client()
        .get(&page_url)
        .header("cookie", &cookie)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(heading(&page).unwrap(), "Recover your account");
    let token = crate::common::csrf_token_in(&page).expect("the flow's CSRF token");
    let action = edge.url(&format!("/self-service/recovery?flow={flow}"));
    let post = |fields: &[(&str, &str)]| {
        client()
            .post(&action)
            .header("cookie", &cookie)
            .header("origin", &edge.base)
            .form(fields)
            .send()
            .unwrap()
    };
    let sent = post(&[
        ("csrf_token", &token),
        ("method", "code"),
        ("email", "ann@example.com"),
    ]);
    assert_eq!(sent.status(), 303, "back to the UI");
    let page = client()
        .get(&page_url)
        .header("cookie", &cookie)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(heading(&page).unwrap(), "Enter your recovery code");
    // Without the cookie the token is refused.
    let forged = client()
        .post(&action)
        .form(&[
            ("csrf_token", token.as_str()),
            ("method", "code"),
            ("code", "123456"),
        ])
        .send()
        .unwrap();
    assert_eq!(forged.status(), 403);
    let ended = post(&[
        ("csrf_token", &token),
        ("method", "code"),
        ("code", &edge_code(&edge)),
    ]);
    assert_eq!(ended.status(), 303);
    assert_eq!(ended.headers()["location"], RETURN_URL);
}

#[test]
fn the_edges_flows_are_purged_an_hour_past_expiry_by_the_first_new_flow_of_a_minute() {
    let native = Server::start();
    let ann = native.identity(Some("ann@example.com"));
    let lifespan = ["--env", "RECLAIM_FLOW_LIFESPAN=1s"];
    let edge = Edge::start_with(std::slice::from_ref(&ann), &lifespan);
    let flows = edge.data.path().join("self-service-flows");
    let touch = |name: &str, ago: &str| {
        let touched = Command::new("touch")
            .args(["-d", ago])
            .arg(flows.join(name))
            .status()
            .unwrap();
        assert!(touched.success());
    };
    let (old, recent) = (api_flow(&edge.base), api_flow(&edge.base));
    // The old flow last moved two hours ago; the last purge was before
    // this minute.
    touch(&old, "2 hours ago");
    touch(".purged", "2 minutes ago");
    let newer = api_flow(&edge.base);
    assert!(
        !flows.join(&old).exists(),
        "expired over an hour ago: purged"
    );
    assert!(flows.join(&recent).exists() && flows.join(&newer).exists());
    // Within the minute, no other purge.
    touch(&recent, "2 hours ago");
    api_flow(&edge.base);
    assert!(flows.join(&recent).exists(), "one purge a minute");
}
