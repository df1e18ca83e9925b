//! A real `reclaim serve` on loopback, with its own data directory, for the
//! HTTP and browser tests.

#![allow(dead_code)] // each test binary uses its own part of this

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod postgres;
pub mod round_trips;

#[path = "../../../../tests/support/mail_text.rs"]
mod mail_text;
#[allow(unused_imports)] // not every test binary reads mail
pub use mail_text::{code_in, decoded_eml as decoded, link_in};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const RETURN_URL: &str = "https://app.example.test/welcome";

pub struct Server {
    /// The `serve` process and its stdout (held open so it never breaks);
    /// none for a deployment driven by the CLI alone.
    process: Option<(Child, BufReader<std::process::ChildStdout>)>,
    pub base: String,
    pub data: tempfile::TempDir,
    env: Vec<(String, String)>,
    launch: Launch,
}

/// How `serve` is started, beyond its environment.
#[derive(Clone, Copy, Default)]
pub struct Launch {
    /// The process's open-file limit, soft and hard.
    pub open_files: Option<u64>,
    /// Its log goes to `DATA/serve.log` (read with [`Server::log`]) rather
    /// than the test's stderr.
    pub log_to_file: bool,
}

/// A port that was free a moment ago: the public URL must name the port
/// before the server starts.
pub fn free_port() -> u16 {
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
        Self::launch(env, Launch::default())
    }

    pub fn launch(env: &[(&str, &str)], launch: Launch) -> Self {
        let mut server = Self::offline(env);
        server.launch = launch;
        server.base = format!("http://127.0.0.1:{}", free_port());
        server.spawn();
        server
    }

    /// What `serve` logged so far (with [`Launch::log_to_file`]).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("serve.log")).unwrap_or_default()
    }

    /// Starts `serve` on this deployment's port and data directory.
    fn spawn(&mut self) {
        let listen = self.base.trim_start_matches("http://").to_string();
        let mut command = self.command();
        command
            .args(["serve", "--listen", &listen])
            .stdout(Stdio::piped());
        if self.launch.log_to_file {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.data.path().join("serve.log"))
                .unwrap();
            command.stderr(log);
        } else {
            command.stderr(Stdio::inherit());
            // The test's own output stays readable: no access log line per
            // request unless a test asks for one.
            if !self.env.iter().any(|(k, _)| k == "RECLAIM_LOG") {
                command.env("RECLAIM_LOG", "warn");
            }
        }
        if let Some(files) = self.launch.open_files {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe and touches no memory
            // of the parent.
            unsafe {
                command.pre_exec(move || {
                    let limit = rustix::process::Rlimit {
                        current: Some(files),
                        maximum: Some(files),
                    };
                    rustix::process::setrlimit(rustix::process::Resource::Nofile, limit)
                        .map_err(std::io::Error::from)
                });
            }
        }
        let mut child = command.spawn().expect("reclaim serve starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let announced: Value =
            serde_json::from_str(&line).expect("serve announces where it listens");
        assert_eq!(announced["listening"], listen);
        self.process = Some((child, stdout));
    }

    /// The `serve` process's id.
    pub fn pid(&self) -> u32 {
        self.process.as_ref().expect("serve is running").0.id()
    }

    /// Kills `serve` outright (SIGKILL): no shutdown, no flushing.
    pub fn kill(&mut self) {
        if let Some((mut child, _)) = self.process.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Hands the running `serve` process to the caller (to kill it at a
    /// moment of its choosing); `restart` starts a new one.
    pub fn detach(&mut self) -> Child {
        self.process.take().expect("serve is running").0
    }

    /// Starts `serve` again on the same port and data directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// A data directory and environment for the CLI, with no `serve`.
    pub fn offline(env: &[(&str, &str)]) -> Self {
        Self {
            process: None,
            base: "http://127.0.0.1:4433".into(),
            data: tempfile::tempdir().unwrap(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            launch: Launch::default(),
        }
    }

    /// `serve` with `env`: the message it stopped with (within 30 s, or the
    /// test fails).
    pub fn serve_fails(env: &[(&str, &str)]) -> String {
        let offline = Server::offline(env);
        let mut child = offline
            .command()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(!status.success());
                let mut stderr = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
                // The CLI's error, in errorGeneric's shape.
                let error: Value = serde_json::from_str(stderr.trim())
                    .unwrap_or_else(|_| panic!("not an error body: {stderr}"));
                return error["error"]["message"].as_str().unwrap().to_string();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("serve started with {env:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `reclaim` with this deployment's data directory and environment.
    pub fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_reclaim"));
        command
            .envs(base_env(self.data.path(), &self.base))
            .envs(self.env.iter().cloned());
        command
    }

    /// The value of `name` in this deployment's own environment.
    pub fn env_value(&self, name: &str) -> String {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} is not set for this server"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Runs the CLI on the server's data directory.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        self.command().args(args).output().unwrap()
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
        if let Some((child, _)) = &mut self.process {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A request to `path` with the admin token.
pub fn admin(
    server: &Server,
    method: reqwest::Method,
    path: &str,
) -> reqwest::blocking::RequestBuilder {
    client()
        .request(method, server.url(path))
        .bearer_auth(ADMIN_TOKEN)
}

/// An HTTP client that shows redirects rather than following them.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Asks the Kratos admin route for a recovery link for `identity`; the
/// answer, whatever it is.
pub fn request_link(server: &Server, identity: &Value) -> reqwest::blocking::Response {
    client()
        .post(server.url("/admin/recovery/link"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({ "identity_id": identity["id"] }))
        .send()
        .unwrap()
}

/// A recovery link for `identity`, from the Kratos admin route.
pub fn admin_link(server: &Server, identity: &Value) -> String {
    let response = request_link(server, identity);
    assert_eq!(response.status(), 200);
    response.json::<Value>().unwrap()["recovery_link"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Mails `identity` a recovery link through authentik's route and its
/// default email stage.
pub fn mail_link(server: &Server, identity: &Value) -> reqwest::blocking::Response {
    client()
        .post(server.url(&format!(
            "/api/v3/core/users/{}/recovery_email/?email_stage=default",
            identity["pk"]
        )))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap()
}

/// The token of a recovery link.
pub fn token_of(link: &str) -> String {
    link.split("token=").nth(1).unwrap().to_string()
}

/// What a self-service form page hands a browser: the CSRF cookie
/// (`name=value`, for a `Cookie` header) and the form's token.
#[derive(Clone, Debug)]
pub struct FormToken {
    pub cookie: String,
    pub token: String,
}

impl FormToken {
    /// Opens the request form, as a browser would before posting.
    pub fn fetch(server: &Server) -> Self {
        Self::fetch_from(&server.base, "/self-service/recovery")
    }

    /// Opens the form page at `path` of the server at `base`.
    pub fn fetch_from(base: &str, path: &str) -> Self {
        let page = reqwest::blocking::get(format!("{base}{path}")).unwrap();
        assert_eq!(page.status(), 200, "{path}");
        let cookie = page
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("reclaim_csrf="))
            .expect("the form page sets a CSRF cookie")
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let token = csrf_token_in(&page.text().unwrap()).expect("the form carries a CSRF token");
        Self { cookie, token }
    }
}

impl FormToken {
    /// Posts a self-service form as our own page's browser does: with this
    /// token, its cookie and our origin.
    pub fn post(
        &self,
        server: &Server,
        path: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::blocking::Response {
        self.post_with_cookie(server, path, &self.cookie, fields)
    }

    /// [`FormToken::post`] with another `Cookie` header (this token's cookie
    /// and a session, or a forgery's).
    pub fn post_with_cookie(
        &self,
        server: &Server,
        path: &str,
        cookie: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::blocking::Response {
        self.post_to_with_cookie(&server.base, path, cookie, fields)
    }

    /// [`FormToken::post`] to the server at `base`.
    pub fn post_to(
        &self,
        base: &str,
        path: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::blocking::Response {
        self.post_to_with_cookie(base, path, &self.cookie, fields)
    }

    fn post_to_with_cookie(
        &self,
        base: &str,
        path: &str,
        cookie: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::blocking::Response {
        let mut fields = fields.to_vec();
        fields.push(("csrf_token", &self.token));
        client()
            .post(format!("{base}{path}"))
            .header("cookie", cookie)
            .header("origin", base)
            .form(&fields)
            .send()
            .unwrap()
    }
}

/// A flow's page but its flow id and the addresses the person typed, which
/// are the only parts of the page that may differ between addresses.
pub fn but_flow_and_address(page: &str, typed: &[&str]) -> String {
    let mut page = page.to_string();
    while let Some(at) = page.find("flow=") {
        page.replace_range(at..at + "flow=".len() + 36, "FLOW");
    }
    for address in typed {
        page = page.replace(address, "ADDRESS");
    }
    page
}

/// The CSRF token in a page's form.
pub fn csrf_token_in(page: &str) -> Option<String> {
    let start = page.find("name=\"csrf_token\" value=\"")? + "name=\"csrf_token\" value=\"".len();
    let end = page[start..].find('"')? + start;
    Some(page[start..end].to_string())
}

/// A real SMTP server (aiosmtpd, `smtp_sink.py`) on loopback that keeps
/// every message it accepts as a file.
pub struct SmtpSink {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    delay: f64,
}

impl SmtpSink {
    /// A sink on a fresh port, not yet listening.
    pub fn stopped(delay: f64) -> Self {
        Self {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            delay,
        }
    }

    pub fn running() -> Self {
        let mut sink = Self::stopped(0.0);
        sink.start();
        sink
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn start(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_sink.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .args([
                "--port",
                &self.port.to_string(),
                "--delay",
                &self.delay.to_string(),
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs the SMTP sink (apt-get install python3-aiosmtpd)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the SMTP sink did not start");
        self.child = Some(child);
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Messages received so far, decoded.
    pub fn messages(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| decoded(&std::fs::read_to_string(p).unwrap()))
            .collect()
    }

    /// Waits up to `secs` seconds for at least `count` messages.
    pub fn wait_for(&self, count: usize, secs: u64) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let messages = self.messages();
            if messages.len() >= count || Instant::now() > deadline {
                return messages;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The value of a header in a message.
pub fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
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

/// Redeems `link` through the confirmation page; the cookie header that
/// carries the CSRF cookie and the recovery session.
pub fn redeem(server: &Server, form: &FormToken, link: &str) -> String {
    let confirmed = form.post(
        server,
        "/self-service/recovery/confirm",
        &[("token", &token_of(link))],
    );
    assert_eq!(confirmed.status(), 303);
    let session = confirmed.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    format!("{}; {session}", form.cookie)
}

pub fn set_password(
    server: &Server,
    form: &FormToken,
    cookie: &str,
    password: &str,
) -> reqwest::blocking::Response {
    form.post_with_cookie(
        server,
        "/self-service/recovery/password",
        cookie,
        &[("password", password), ("password_confirm", password)],
    )
}

pub fn password_form(server: &Server, cookie: &str) -> u16 {
    client()
        .get(server.url("/self-service/recovery/password"))
        .header("cookie", cookie)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

pub fn password_is(server: &Server, identity: &Value, password: &str) -> bool {
    server
        .cli(&[
            "identity",
            "check-password",
            "--identity",
            identity["id"].as_str().unwrap(),
            "--password",
            password,
        ])
        .status
        .success()
}

/// A password the strength check accepts.
pub const NEW_PASSWORD: &str = "correct horse battery staple 7";

/// The storage contract's test guest (`tests/guests/storage-contract`),
/// built for `wasm32-wasip2` once per test run: the same file the Python
/// and Node.js tests run through their hosts.
pub fn storage_guest() -> &'static [u8] {
    static WASM: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    WASM.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        // The target directory host/build.rs builds the components in: the
        // dependencies they share are built once.
        let target = root.join("target").join("component");
        let status = Command::new(env!("CARGO"))
            .current_dir(root)
            .args(["build", "--package", "reclaim-storage-contract"])
            .args([
                "--target",
                "wasm32-wasip2",
                "--release",
                "--locked",
                "--quiet",
            ])
            .arg("--target-dir")
            .arg(&target)
            .env_remove("CARGO_TARGET_DIR")
            .status()
            .expect("cargo runs");
        assert!(
            status.success(),
            "building the storage contract guest failed"
        );
        std::fs::read(target.join("wasm32-wasip2/release/reclaim_storage_contract.wasm")).unwrap()
    })
}
