//! A real PostgreSQL server for the tests, from the machine's PostgreSQL
//! binaries, in a temporary directory, on a free loopback port: one shared
//! by the test binary (each test gets a database of its own), or one of a
//! test's own to stop and start. PostgreSQL refuses to run as root, so
//! under root it runs as the `postgres` user. A watchdog stops it and
//! removes its directory when the tests exit.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub struct PgServer {
    port: u16,
    /// Whether the server takes TLS connections (and only those, but for
    /// the `postgres` database the tests create databases through).
    tls: bool,
    bin: PathBuf,
    dir: PathBuf,
    /// The shell that stops the server once this process is gone; never
    /// waited for, since it outlives every test.
    _watchdog: Child,
}

/// The test binary's shared server, started on first use.
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

fn run(mut command: Command, what: &str) {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PgServer {
    /// A server of the caller's own, running.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// A server that refuses plain connections to the tests' databases,
    /// with a certificate for 127.0.0.1 from a CA of its own; returns the
    /// CA's PEM file too.
    pub fn start_tls() -> (Self, PathBuf) {
        let server = Self::start_with(true);
        let ca = server.dir.join("ca.pem");
        (server, ca)
    }

    fn start_with(tls: bool) -> Self {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("reclaim-pg-")
            .tempdir()
            .unwrap()
            .keep();
        if is_root() {
            let mut chown = Command::new("chown");
            chown.args(["-R", "postgres:postgres"]).arg(&dir);
            run(chown, "chown of the PostgreSQL directory");
        }
        let mut initdb = as_postgres(bin.join("initdb").to_str().unwrap());
        initdb.arg("-D").arg(dir.join("data"));
        initdb.args(["-A", "trust", "-U", "postgres", "--no-sync"]);
        run(initdb, "initdb");
        let watchdog = as_postgres("sh")
            .arg("-c")
            .arg(format!(
                "while [ -d /proc/{pid} ]; do sleep 1; done; \
                 {pg_ctl} -D {dir}/data -m immediate stop; rm -rf {dir}",
                pid = std::process::id(),
                pg_ctl = bin.join("pg_ctl").display(),
                dir = dir.display(),
            ))
            .spawn()
            .unwrap();
        if tls {
            make_certificates(&dir);
            std::fs::write(
                dir.join("data/pg_hba.conf"),
                "local all all trust\nhost postgres postgres 127.0.0.1/32 trust\n\
                 hostssl all all 127.0.0.1/32 trust\n",
            )
            .unwrap();
        }
        let server = Self {
            port: super::free_port(),
            tls,
            bin,
            dir,
            _watchdog: watchdog,
        };
        server.resume();
        server
    }

    fn pg_ctl(&self) -> Command {
        let mut command = as_postgres(self.bin.join("pg_ctl").to_str().unwrap());
        command.arg("-D").arg(self.dir.join("data")).arg("-w");
        command
    }

    /// Stops the server (a fast shutdown: sessions are cut off).
    pub fn stop(&self) {
        let mut stop = self.pg_ctl();
        stop.args(["-m", "fast", "stop"]);
        run(stop, "pg_ctl stop");
    }

    /// Starts the server (again) and waits until it takes connections.
    pub fn resume(&self) {
        let mut start = self.pg_ctl();
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=400",
            self.port,
            self.dir.display()
        );
        if self.tls {
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={dir}/server.crt -c ssl_key_file={dir}/server.key",
                dir = self.dir.display()
            ));
        }
        start
            .arg("-l")
            .arg(self.dir.join("log"))
            .arg("-o")
            .arg(options);
        start.arg("start");
        run(start, "pg_ctl start");
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(e) = postgres::Client::connect(&self.url("postgres"), postgres::NoTls) {
            assert!(Instant::now() < deadline, "PostgreSQL did not start: {e}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Freezes the server and its sessions (SIGSTOP), as a host that stops
    /// answering without closing anything does; [`Self::thaw`] resumes it.
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    pub fn thaw(&self) {
        self.signal("CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = std::fs::read_to_string(self.dir.join("data/postmaster.pid")).unwrap();
        let pid = pid.lines().next().unwrap().trim().to_string();
        let children = Command::new("pkill")
            .args([&format!("-{signal}"), "-P", &pid])
            .status()
            .unwrap();
        assert!(children.success(), "pkill -{signal} -P {pid}");
        let parent = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        assert!(parent.success(), "kill -{signal} {pid}");
    }

    pub fn port(&self) -> u16 {
        self.port
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

/// A CA and a server certificate for 127.0.0.1 signed by it, with openssl,
/// in `dir` (as the postgres user, who must own the key).
fn make_certificates(dir: &std::path::Path) {
    let script = format!(
        "cd {dir} && \
         openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=reclaim test CA' \
             -keyout ca.key -out ca.pem 2>/dev/null && \
         openssl req -newkey rsa:2048 -nodes -subj '/CN=127.0.0.1' \
             -keyout server.key -out server.csr 2>/dev/null && \
         printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > ext && \
         openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
             -extfile ext -out server.crt 2>/dev/null && \
         chmod 600 server.key && chmod 644 ca.pem",
        dir = dir.display()
    );
    let mut openssl = as_postgres("sh");
    openssl.args(["-c", &script]);
    run(openssl, "openssl");
}
