//! The same component in the plain wasmtime CLI: composed with `wac plug`
//! with the filesystem provider built from `providers/filesystem`, so that
//! `wasmtime run --invoke` can create a link in one process and redeem it,
//! once, in the next; state lives in the mounted directory.
//!
//! Needs `wasmtime` 48.0.8 and `wac` on the PATH (scripts/test installs them).

use std::path::{Path, PathBuf};
use std::process::Command;

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

/// Builds the provider and composes it with the embedded component.
fn composed(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let engine = dir.join("reclaim.wasm");
    run(Command::new(env!("CARGO_BIN_EXE_reclaim"))
        .args(["component", "--out"])
        .arg(&engine));
    let target = root.join("target/providers");
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
    let work = tempfile::tempdir().unwrap();
    let wasm = composed(work.path());
    let data = data_dir();

    let created = invoke(
        &wasm,
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

    let redeemed = invoke(&wasm, data.path(), &format!(r#"redeem-link("{token}")"#));
    assert!(redeemed.starts_with("ok("), "{redeemed}");
    assert_eq!(wave_string(&redeemed, "identity-id"), ANN);

    let again = invoke(&wasm, data.path(), &format!(r#"redeem-link("{token}")"#));
    assert!(
        again.starts_with("err(") && again.contains("credential-used"),
        "{again}"
    );
}

#[test]
fn of_six_concurrent_wasmtime_processes_exactly_one_redeems() {
    let work = tempfile::tempdir().unwrap();
    let wasm = composed(work.path());
    let data = data_dir();
    let created = invoke(
        &wasm,
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
    let children: Vec<_> = (0..6)
        .map(|_| {
            Command::new("wasmtime")
                .args(["run", "--dir", &mount, "--invoke", &call])
                .arg(&wasm)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<String> = children
        .into_iter()
        .map(|c| String::from_utf8(c.wait_with_output().unwrap().stdout).unwrap())
        .collect();
    assert_eq!(
        outputs.iter().filter(|o| o.starts_with("ok(")).count(),
        1,
        "{outputs:?}"
    );
}

#[test]
fn wasmtime_run_mails_a_link_into_the_mounted_outbox() {
    let work = tempfile::tempdir().unwrap();
    let wasm = composed(work.path());
    let data = data_dir();
    let mailed = invoke(
        &wasm,
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
