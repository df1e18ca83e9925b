//! A data directory on a small tmpfs that fills up: every request gets an
//! answer in its API's shape (success, or 503 with `Retry-After`), nothing
//! acknowledged is lost, and the service recovers without a restart once
//! space returns.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::{FormToken, Server, admin_link, client, request_link, token_of};

/// A tmpfs of its own, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (the test must not skip): {status}"
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Writes a file until the filesystem is full; returns its path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 4096];
    loop {
        match file.write_all(&chunk).and_then(|()| file.sync_all()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => return path, // ENOSPC
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
}

#[test]
fn a_full_disk_gets_clean_503s_loses_nothing_acknowledged_and_recovers() {
    let disk = Tmpfs::mount("24m");
    let data = disk.path().join("data");
    // Every acknowledged link stays valid: none revokes another.
    let server = Server::start_with(&[
        ("RECLAIM_DATA", data.to_str().unwrap()),
        ("RECLAIM_REVOKE_OLDER_LINKS", "false"),
    ]);
    let ann = server.identity(Some("ann@example.com"));
    let before = admin_link(&server, &ann);

    let filler = fill(disk.path());
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for _ in 0..300 {
        if refused >= 10 {
            break;
        }
        let response = request_link(&server, &ann);
        match response.status().as_u16() {
            200 => acknowledged.push(
                response.json::<Value>().unwrap()["recovery_link"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ),
            503 => {
                assert_eq!(response.headers()["retry-after"], "1");
                let body: Value = response.json().unwrap();
                assert_eq!(body["error"]["code"], 503, "{body}");
                refused += 1;
            }
            other => panic!("a full disk answered {other}: {}", response.text().unwrap()),
        }
    }
    assert!(refused > 0, "the disk never filled up");
    // A redemption that can't be written is refused alike, and spends nothing.
    let form = FormToken::fetch(&server);
    let confirm = form.post(
        &server,
        "/self-service/recovery/confirm",
        &[("token", &token_of(&before))],
    );
    assert!(
        matches!(confirm.status().as_u16(), 303 | 503),
        "{}",
        confirm.status()
    );
    let before_redeemed = confirm.status() == 303;

    // Space returns: the same process serves again, and every link it
    // acknowledged works.
    std::fs::remove_file(filler).unwrap();
    assert_eq!(request_link(&server, &ann).status(), 200);
    let mut links = acknowledged;
    if !before_redeemed {
        links.push(before);
    }
    for link in &links {
        let redeemed = server.cli(&["redeem", "--link", link]);
        assert!(
            redeemed.status.success(),
            "an acknowledged link was lost: {}",
            String::from_utf8_lossy(&redeemed.stderr)
        );
    }
    let ready = client().get(server.url("/health/ready")).send().unwrap();
    assert_eq!(ready.status(), 200);
}
