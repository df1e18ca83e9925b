//! The same component in the plain wasmtime CLI: composed with `wac plug`
//! with the filesystem provider built from `providers/filesystem`, so that
//! `wasmtime run --invoke` can create a link in one process and redeem it,
//! once, in the next; state lives in the mounted directory.
//!
//! Needs `wasmtime` 48.0.8 and `wac` on the PATH (scripts/test installs them).

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../../../tests/support/scenarios.rs"]
mod scenarios;

fn tool(name: &str) -> PathBuf {
    let found = Command::new(name).arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "`{name}` is not on the PATH: scripts/test installs it"
    );
    PathBuf::from(name)
}

fn run(command: &mut Command) -> String {
    let out = command.output().expect("the command runs");
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The composed component, built once per test binary.
fn composed() -> &'static Path {
    static COMPOSED: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    let (_, wasm) = COMPOSED.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let wasm = compose(dir.path());
        (dir, wasm)
    });
    wasm
}

/// Builds the provider and composes it with the embedded component.
fn compose(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let engine = dir.join("reclaim.wasm");
    run(Command::new(env!("CARGO_BIN_EXE_reclaim"))
        .args(["component", "--out"])
        .arg(&engine));
    // Where the host's build script built it already: this is then a no-op.
    let target = root.join("target/component");
    run(Command::new(env!("CARGO"))
        .current_dir(root)
        .args([
            "build",
            "--package",
            "reclaim-filesystem-provider",
            "--target",
            "wasm32-wasip2",
            "--release",
            "--locked",
        ])
        .arg("--target-dir")
        .arg(&target)
        .env_remove("CARGO_TARGET_DIR"));
    let provider = target.join("wasm32-wasip2/release/reclaim_filesystem_provider.wasm");
    let out = dir.join("reclaim-cli.wasm");
    run(Command::new(tool("wac"))
        .arg("plug")
        .arg(&engine)
        .arg("--plug")
        .arg(&provider)
        .arg("-o")
        .arg(&out));
    out
}

fn invoke(wasm: &Path, data: &Path, call: &str) -> String {
    let mount = format!("{}::/data", data.display());
    run(Command::new(tool("wasmtime"))
        .args(["run", "--dir", &mount, "--invoke", call])
        .arg(wasm))
    .trim()
    .to_string()
}

/// The value of `field: "..."` in a WAVE record.
fn wave_string(wave: &str, field: &str) -> String {
    let start = wave
        .find(&format!("{field}: \""))
        .unwrap_or_else(|| panic!("no {field} in {wave}"))
        + field.len()
        + 3;
    wave[start..].split('"').next().unwrap().to_string()
}

const ANN: &str = "9b2c72de-a449-4444-a852-24a7583cf696";

fn data_dir() -> tempfile::TempDir {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(
        data.path().join("identities.json"),
        format!(r#"[{{"id": "{ANN}", "pk": 1, "email": "ann@example.com", "display_name": "Ann", "locale": null}}]"#),
    )
    .unwrap();
    std::fs::write(
        data.path().join("settings.json"),
        r#"{"public_url": "https://id.example.test", "secrets": ["wasmtime-cli-secret-0123456789abcdef0123"]}"#,
    )
    .unwrap();
    data
}

#[test]
fn wasmtime_run_creates_a_link_that_a_second_run_redeems_once() {
    let wasm = composed();
    let data = data_dir();

    let created = invoke(
        wasm,
        data.path(),
        &format!(r#"create-link(id("{ANN}"), some("10m"), none)"#),
    );
    assert!(created.starts_with("ok("), "{created}");
    let link = wave_string(&created, "link");
    assert!(
        link.starts_with("https://id.example.test/self-service/recovery?flow="),
        "{link}"
    );
    let token = link.split("token=").nth(1).unwrap().to_string();
    let stored: Vec<_> = std::fs::read_dir(data.path().join("credentials"))
        .unwrap()
        .collect();
    assert_eq!(stored.len(), 1, "state persists in the mounted directory");

    let redeemed = invoke(wasm, data.path(), &format!(r#"redeem-link("{token}")"#));
    assert!(redeemed.starts_with("ok("), "{redeemed}");
    assert_eq!(wave_string(&redeemed, "identity-id"), ANN);

    let again = invoke(wasm, data.path(), &format!(r#"redeem-link("{token}")"#));
    assert!(
        again.starts_with("err(") && again.contains("credential-used"),
        "{again}"
    );
}

const RACERS: usize = 32;

/// Separate `wasmtime run` processes over one directory: the rename that
/// consumes a credential is the only thing standing between them.
#[test]
fn of_32_concurrent_wasmtime_processes_exactly_one_redeems() {
    // Found once, so the racers start as close together as they can.
    let wasmtime = tool("wasmtime");
    let wasm = composed();
    let data = data_dir();
    let created = invoke(
        wasm,
        data.path(),
        &format!(r#"create-link(id("{ANN}"), none, none)"#),
    );
    let token = wave_string(&created, "link")
        .split("token=")
        .nth(1)
        .unwrap()
        .to_string();
    let mount = format!("{}::/data", data.path().display());
    let call = format!(r#"redeem-link("{token}")"#);
    let children: Vec<_> = (0..RACERS)
        .map(|_| {
            Command::new(&wasmtime)
                .args(["run", "--dir", &mount, "--invoke", &call])
                .arg(wasm)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "a racer failed: {out:?}");
            String::from_utf8(out.stdout).unwrap()
        })
        .collect();
    let won = outputs.iter().filter(|o| o.starts_with("ok(")).count();
    let used = outputs
        .iter()
        .filter(|o| o.starts_with("err(") && o.contains("credential-used"))
        .count();
    assert_eq!((won, used), (1, RACERS - 1), "{outputs:?}");
}

#[test]
fn wasmtime_run_mails_a_link_into_the_mounted_outbox() {
    let wasm = composed();
    let data = data_dir();
    let mailed = invoke(
        wasm,
        data.path(),
        r#"send-recovery-email(pk(1), none, none, none)"#,
    );
    assert!(mailed.starts_with("ok("), "{mailed}");
    let outbox: Vec<_> = std::fs::read_dir(data.path().join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(outbox.len(), 1);
    let eml = std::fs::read_to_string(&outbox[0]).unwrap();
    assert!(eml.contains("Subject: Recover access to your account"));
    assert!(eml.contains("https://id.example.test/self-service/recovery?flow="));
}

/// A WAVE result's `kind: x` and `code: n`, for `err(...)`.
fn wave_error(wave: &str) -> serde_json::Value {
    let after = |field: &str| {
        let start = wave
            .find(&format!("{field}: "))
            .unwrap_or_else(|| panic!("no {field} in {wave}"))
            + field.len()
            + 2;
        wave[start..]
            .split([',', '}', ')'])
            .next()
            .unwrap()
            .trim()
            .to_string()
    };
    serde_json::json!({ "error": after("kind"), "code": after("code").parse::<u64>().unwrap() })
}

/// Runs a conformance scenario from `tests/conformance/` through the wasmtime
/// CLI, one process per step, up to its first `advance`: the CLI's clock is
/// the system's and can't be moved.
fn run_scenario(wasm: &Path, file: &Path) {
    use serde_json::{Value, json};
    let scenario: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let data = tempfile::tempdir().unwrap();
    let s = &scenario["settings"];
    let write_settings = |secrets: &Value| {
        let settings = json!({
            "public_url": "https://id.example.test",
            "secrets": secrets,
            // A tunable the scenario leaves out is null: the default.
            "default_lifespan_seconds": s["default_lifespan"],
            "max_lifespan_seconds": s["max_lifespan"],
            "revoke_older_links": s["revoke_older_links"],
            "max_code_attempts": s["max_code_attempts"],
        });
        std::fs::write(data.path().join("settings.json"), settings.to_string()).unwrap();
    };
    write_settings(&s["secrets"]);
    let mut ids = std::collections::HashMap::new();
    let mut identities = Vec::new();
    for (i, (name, spec)) in scenario["identities"]
        .as_object()
        .unwrap()
        .iter()
        .enumerate()
    {
        let id = format!("00000000-0000-4000-8000-{:012}", i + 1);
        identities.push(json!({ "id": id, "pk": i + 1, "email": spec["email"], "display_name": name, "locale": spec["locale"], "active": spec["active"] }));
        ids.insert(name.clone(), id);
    }
    std::fs::write(
        data.path().join("identities.json"),
        Value::Array(identities).to_string(),
    )
    .unwrap();
    let name_of = |id: &str| {
        ids.iter()
            .find(|(_, v)| v.as_str() == id)
            .map(|(n, _)| n.clone())
            .unwrap()
    };
    let mut saved: std::collections::HashMap<String, (String, String)> =
        std::collections::HashMap::new();
    let option = |v: &Value| {
        v.as_str()
            .map_or("none".to_string(), |s| format!("some({s:?})"))
    };
    for (i, step) in scenario["steps"].as_array().unwrap().iter().enumerate() {
        let context = format!("{} step {i}: {step}", file.display());
        let who = || match (step["identity"].as_str(), step["identity_id"].as_str()) {
            (Some(name), _) => format!("id({:?})", ids[name]),
            (None, Some(id)) => format!("id({id:?})"),
            _ => format!("pk({})", step["identity_pk"]),
        };
        let call = match step["op"].as_str().unwrap() {
            "create-link" => format!(
                "create-link({}, {}, none)",
                who(),
                option(&step["expires_in"])
            ),
            "create-code" => format!(
                "create-code({}, {}, none)",
                who(),
                option(&step["expires_in"])
            ),
            "send-recovery-email" => format!(
                "send-recovery-email({}, {}, {}, none, {})",
                who(),
                option(&step["expires_in"]),
                option(&step["template"]),
                option(&step["sender"])
            ),
            "redeem-link" => {
                let token = match step["token_of"].as_str() {
                    Some(name) => saved[name].0.clone(),
                    None => step["token"].as_str().unwrap().to_string(),
                };
                format!("redeem-link({token:?})")
            }
            "redeem-code" => {
                let (mut code, mut flow) = saved[step["code_of"].as_str().unwrap()].clone();
                if step["wrong"].as_bool() == Some(true) {
                    code = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
                } else if let Some(literal) = step["code"].as_str() {
                    code = literal.to_string();
                }
                if let Some(literal) = step["flow"].as_str() {
                    flow = literal.to_string();
                }
                format!("redeem-code({flow:?}, {code:?})")
            }
            "revoke" => format!("revoke({})", who()),
            "set-secrets" => {
                write_settings(&step["secrets"]);
                continue;
            }
            "expect_mail" => {
                let count = std::fs::read_dir(data.path().join("outbox"))
                    .map(|d| d.count())
                    .unwrap_or(0);
                assert_eq!(count as u64, step["count"].as_u64().unwrap(), "{context}");
                if let Some(sender) = step["sender"].as_str() {
                    let from = format!("From: {sender}\r\n");
                    let sent = std::fs::read_dir(data.path().join("outbox"))
                        .unwrap()
                        .filter(|f| {
                            let eml = std::fs::read_to_string(f.as_ref().unwrap().path());
                            eml.unwrap().contains(&from)
                        })
                        .count();
                    assert_eq!(sent, 1, "{context}");
                }
                continue;
            }
            "advance" => return,
            other => panic!("unknown op {other} in {context}"),
        };
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let wave = invoke(wasm, data.path(), &call);
        let got = if wave.starts_with("ok(") {
            let mut ok = json!({ "ok": true });
            if let Some(at) = wave.find("expires-at: ") {
                let expires: u64 = wave[at + 12..]
                    .split(['}', ','])
                    .next()
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap();
                ok["lifespan"] = json!(expires / 1_000_000_000 - started);
            }
            if wave.contains("identity-id: ") {
                ok["identity"] = json!(name_of(&wave_string(&wave, "identity-id")));
            }
            if let Some(name) = step["as"].as_str() {
                let flow = wave_string(&wave, "flow-id");
                let secret = if wave.contains("code: \"") {
                    wave_string(&wave, "code")
                } else {
                    wave_string(&wave, "link")
                        .split("token=")
                        .nth(1)
                        .unwrap()
                        .to_string()
                };
                saved.insert(name.to_string(), (secret, flow));
            }
            if let Some(count) = wave
                .strip_prefix("ok(")
                .and_then(|r| r.strip_suffix(')'))
                .and_then(|n| n.parse::<u64>().ok())
            {
                ok["revoked"] = json!(count);
            }
            ok
        } else {
            wave_error(&wave)
        };
        for (key, want) in step["expect"].as_object().expect("an expectation") {
            if key == "lifespan" {
                // The real clock moved while the process started.
                let lifespan = got[key]
                    .as_u64()
                    .unwrap_or_else(|| panic!("no lifespan: {got}\n{context}"));
                let want = want.as_u64().unwrap();
                assert!(
                    lifespan.abs_diff(want) <= 2,
                    "lifespan {lifespan} vs {want}\n{context}"
                );
            } else {
                assert_eq!(
                    &got[key], want,
                    "{key} differs: got {got} from {wave}\n{context}"
                );
            }
        }
    }
}

#[test]
fn the_conformance_scenarios_agree_in_the_wasmtime_cli() {
    let wasm = composed();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance");
    let files = scenarios::scenario_files(&dir);
    assert!(files.len() >= 6);
    for file in files {
        run_scenario(wasm, &file);
    }
}

/// The storage contract's test guest (`tests/guests/storage-contract`) on
/// the filesystem provider, in the wasmtime CLI: each scenario a process of
/// its own over the mounted directory, for an identity of its own, as the
/// Rust backends, Python and Node.js run the same guest.
#[test]
fn the_storage_guest_finds_the_contract_kept_by_the_filesystem_provider() {
    let dir = tempfile::tempdir().unwrap();
    let guest = dir.path().join("guest.wasm");
    std::fs::write(&guest, crate::common::storage_guest()).unwrap();
    composed(); // the provider, built where the host's build put it
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let provider =
        root.join("target/component/wasm32-wasip2/release/reclaim_filesystem_provider.wasm");
    let wasm = dir.path().join("guest-on-files.wasm");
    run(Command::new(tool("wac"))
        .arg("plug")
        .arg(&guest)
        .arg("--plug")
        .arg(&provider)
        .arg("-o")
        .arg(&wasm));
    let data = data_dir();
    let listed = invoke(&wasm, data.path(), "scenarios()");
    let scenarios: Vec<String> = listed
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(", ")
        .map(|name| name.trim_matches('"').to_string())
        .collect();
    assert!(scenarios.len() >= 13, "{listed}");
    let ids: Vec<String> = (0..scenarios.len())
        .map(|n| format!("00000000-0000-4000-8000-{n:012}"))
        .collect();
    let identities: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| serde_json::json!({"id": id, "pk": n + 1, "email": format!("guest{n}@example.com")}))
        .collect();
    std::fs::write(
        data.path().join("identities.json"),
        serde_json::to_string(&identities).unwrap(),
    )
    .unwrap();
    for (scenario, id) in scenarios.iter().zip(&ids) {
        let verdict = invoke(
            &wasm,
            data.path(),
            &format!("run(\"{scenario}\", \"{id}\")"),
        );
        assert_eq!(verdict, "ok", "the contract was broken: {verdict}");
    }
}
