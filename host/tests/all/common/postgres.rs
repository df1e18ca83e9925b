//! A real PostgreSQL server for the tests: started once per test binary
//! from the machine's PostgreSQL binaries, in a temporary directory, on a
//! free loopback port; each test gets a database of its own. PostgreSQL
//! refuses to run as root, so under root it runs as the `postgres` user.
//! A watchdog stops it and removes its directory when the tests exit.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub struct PgServer {
    port: u16,
    /// The shell that runs the server and stops it when we exit; never
    /// waited for, since it outlives every test.
    _watchdog: std::process::Child,
}

/// The test binary's server, started on first use.
pub fn server() -> &'static PgServer {
    static SERVER: OnceLock<PgServer> = OnceLock::new();
    SERVER.get_or_init(PgServer::start)
}

/// Where the PostgreSQL binaries are: `RECLAIM_PG_BIN`, else the newest
/// Debian install. Missing binaries fail the test: scripts/test installs them.
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RECLAIM_PG_BIN") {
        return dir.into();
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (scripts/test installs Debian's postgresql)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort();
    found
        .pop()
        .expect("a PostgreSQL with initdb in /usr/lib/postgresql/*/bin")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A command that runs as the `postgres` user when we are root.
fn as_postgres(program: &str) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", program]);
        command
    } else {
        Command::new(program)
    }
}

impl PgServer {
    fn start() -> Self {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("reclaim-pg-")
            .tempdir()
            .unwrap()
            .keep();
        if is_root() {
            let chown = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(chown.success(), "chown of the PostgreSQL directory");
        }
        let data = dir.join("data");
        let initdb = as_postgres(bin.join("initdb").to_str().unwrap())
            .args([
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ])
            .output()
            .unwrap();
        assert!(
            initdb.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        let port = super::free_port();
        // The server lives as long as this test process: the watchdog shell
        // stops it (and removes its files) once our pid is gone.
        let script = format!(
            "{postgres} -D {data} -p {port} -k {dir} -c listen_addresses=127.0.0.1 \
             -c fsync=off -c max_connections=400 >{dir}/log 2>&1 & pg=$!; \
             while [ -d /proc/{pid} ] && kill -0 $pg 2>/dev/null; do sleep 1; done; \
             kill -INT $pg 2>/dev/null; wait $pg; rm -rf {dir}",
            postgres = bin.join("postgres").display(),
            data = data.display(),
            dir = dir.display(),
            pid = std::process::id(),
        );
        let watchdog = as_postgres("sh")
            .args(["-c", &script])
            .spawn()
            .expect("PostgreSQL starts");
        let server = Self {
            port,
            _watchdog: watchdog,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match postgres::Client::connect(&server.url("postgres"), postgres::NoTls) {
                Ok(_) => return server,
                Err(e) if Instant::now() > deadline => {
                    let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
                    panic!("PostgreSQL did not start: {e}\n{log}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// A new, empty database; returns its URL.
    pub fn fresh_database(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "reclaim_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = postgres::Client::connect(&self.url("postgres"), postgres::NoTls).unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        self.url(&name)
    }
}
