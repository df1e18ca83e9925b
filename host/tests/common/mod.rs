//! A real `reclaim serve` on loopback, with its own data directory, for the
//! HTTP and browser tests.

#![allow(dead_code)] // each test binary uses its own part of this

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const RETURN_URL: &str = "https://app.example.test/welcome";

pub struct Server {
    child: Child,
    // Held open so the server's stdout never breaks.
    _stdout: BufReader<std::process::ChildStdout>,
    pub base: String,
    pub data: tempfile::TempDir,
}

/// A port that was free a moment ago: the public URL must name the port
/// before the server starts.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    pub fn start_with(env: &[(&str, &str)]) -> Self {
        let data = tempfile::tempdir().unwrap();
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut command = Command::new(env!("CARGO_BIN_EXE_reclaim"));
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .envs(base_env(data.path(), &base))
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().expect("reclaim serve starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let announced: Value =
            serde_json::from_str(&line).expect("serve announces where it listens");
        assert_eq!(announced["listening"], format!("127.0.0.1:{port}"));
        Self {
            child,
            _stdout: stdout,
            base,
            data,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Runs the CLI on the server's data directory.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_reclaim"))
            .args(args)
            .envs(base_env(self.data.path(), &self.base))
            .output()
            .unwrap()
    }

    pub fn cli_json(&self, args: &[&str]) -> Value {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Adds an identity; returns its JSON (with `id` and `pk`).
    pub fn identity(&self, email: Option<&str>) -> Value {
        let mut args = vec!["identity", "create", "--name", "Ann Example"];
        if let Some(email) = email {
            args.extend(["--email", email]);
        }
        self.cli_json(&args)
    }

    /// Delivered mail, waiting up to ten seconds for at least `count`.
    pub fn mail(&self, count: usize) -> Vec<String> {
        let dir = self.data.path().join("outbox");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
                .unwrap_or_default();
            files.retain(|p| p.extension().is_some_and(|e| e == "eml"));
            if files.len() >= count || Instant::now() > deadline {
                files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
                return files
                    .iter()
                    .map(|p| decoded(&std::fs::read_to_string(p).unwrap()))
                    .collect();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn base_env(data: &Path, base: &str) -> Vec<(String, String)> {
    [
        ("RECLAIM_DATA", data.display().to_string()),
        ("RECLAIM_PUBLIC_URL", base.to_string()),
        ("RECLAIM_ADMIN_TOKEN", ADMIN_TOKEN.to_string()),
        (
            "RECLAIM_ALLOWED_RETURN_URLS",
            "https://app.example.test/".to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Quoted-printable soft breaks and escapes undone.
pub fn decoded(raw: &str) -> String {
    let joined = raw.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'=', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The first recovery link in a text.
pub fn link_in(text: &str, base: &str) -> Option<String> {
    let start = text.find(&format!("{base}/self-service/recovery?"))?;
    let rest = &text[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"' || c == '<')
        .unwrap_or(rest.len());
    Some(rest[..end].to_string())
}
