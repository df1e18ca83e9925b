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

/// `kratos_flows.py` against a server started with `env`.
fn flows_with_the_sdk(ending: &str, env: &[(&str, &str)]) {
    let server = Server::start_with(env);
    server.identity(Some("ann@example.com"));
    run_flows_script(ending, &server.base, &server.data.path().join("outbox"));
}

/// `kratos_flows.py ENDING BASE OUTBOX`, which must pass.
fn run_flows_script(ending: &str, base: &str, outbox: &std::path::Path) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("../target/kratos-sdk-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: scripts/test installs it",
        python.display()
    );
    let output = Command::new(&python)
        .arg(root.join("tests/kratos_flows.py"))
        .arg(ending)
        .arg(base)
        .arg(outbox)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(&format!("kratos flows ({ending}): ok")));
}

#[test]
fn ory_kratos_client_recovers_an_account_through_the_flow_api_with_continue_with() {
    flows_with_the_sdk(
        "continue_with",
        &[("RECLAIM_USE_CONTINUE_WITH_TRANSITIONS", "true")],
    );
}

#[test]
fn ory_kratos_client_meets_kratos_default_ending_of_a_recovery_flow() {
    flows_with_the_sdk("redirect", &[]);
}

#[test]
fn ory_kratos_client_is_told_an_expired_flow_is_gone_and_given_a_new_one() {
    flows_with_the_sdk("expiry", &[("RECLAIM_FLOW_LIFESPAN", "1s")]);
}

#[test]
fn ory_kratos_client_recovers_an_account_through_the_edges_flow_api() {
    let native = Server::start();
    let ann = native.identity(Some("ann@example.com"));
    let edge = crate::edge::Edge::start(std::slice::from_ref(&ann));
    run_flows_script("edge", &edge.base, &edge.data.path().join("outbox"));
}
