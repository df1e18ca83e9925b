//! schemathesis (installed by `scripts/test`) against `/openapi.json` of a
//! running `reclaim serve`: generated requests on every documented route,
//! with every check but one, must find no 5xx and nothing undocumented.

use std::path::PathBuf;
use std::process::Command;

use crate::common::{ADMIN_TOKEN, Server};

/// Requests generated per operation and phase.
const EXAMPLES: &str = "60";

#[test]
fn generated_requests_find_no_server_error_and_no_undocumented_answer() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let schemathesis = root.join("../target/schemathesis-venv/bin/schemathesis");
    assert!(
        schemathesis.exists(),
        "{} is missing: scripts/test installs it",
        schemathesis.display()
    );
    // Self-service requests are limited per client; schemathesis is one.
    let server = Server::start_with(&[]);
    server.identity(Some("ann@example.com"));
    let reports = tempfile::tempdir().unwrap();
    let output = Command::new(&schemathesis)
        .arg("run")
        .arg(server.url("/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {ADMIN_TOKEN}")])
        .args(["--checks", "all"])
        // The document can't say that `expires_in` must be more than zero
        // and at most the configured maximum, nor which email stages are
        // configured: such requests are rightly refused. And authentik
        // answers a missing token 403 `not_authenticated`, not 401: we keep
        // its shape (http_api's tests pin 401 and 403 per API).
        .args([
            "--exclude-checks",
            "positive_data_acceptance,missing_required_header",
        ])
        .args(["--max-examples", EXAMPLES, "--seed", "1", "--workers", "1"])
        .arg("--report-dir")
        .arg(reports.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    // The summary, for CI's log.
    let summary: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" generated, ") || l.trim_start().starts_with("Tested:"))
        .collect();
    println!("schemathesis: {}", summary.join(" | "));
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
