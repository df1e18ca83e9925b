//! Ory's own Python SDK, `ory-kratos-client` (installed by `scripts/test`
//! in its own virtual environment), drives the identity admin API of a
//! running `reclaim serve`: a platform's client code works unchanged.

use std::path::PathBuf;
use std::process::Command;

use crate::common::{ADMIN_TOKEN, Server};

#[test]
fn ory_kratos_client_manages_identities_unchanged() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("../target/kratos-sdk-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: scripts/test installs it",
        python.display()
    );
    let server = Server::start();
    let output = Command::new(&python)
        .arg(root.join("tests/kratos_sdk.py"))
        .arg(&server.base)
        .arg(ADMIN_TOKEN)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("kratos sdk: ok"));
}
