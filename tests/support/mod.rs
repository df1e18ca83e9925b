//! Helpers for the end-to-end tests: a data directory with a real SQLite
//! file, the embedded component compiled once per test binary, and a clock
//! the test controls.

pub mod mail_text;
pub mod scenarios;

pub use mail_text::{code_in, decoded_eml, link_in};

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reclaim::backends::SqliteStorage;
use reclaim::settings::parse_secrets;
use reclaim::storage::Identities;
use reclaim::{
    Identity, IdentityRef, ManualClock, NewIdentity, Reclaim, Runtime, Settings, Storage,
};

/// A secret for tests, 32 bytes or more.
pub const SECRET_A: &str = "test-secret-a-0123456789abcdef0123456789";
/// A second secret, for rotation.
pub const SECRET_B: &str = "test-secret-b-0123456789abcdef0123456789";
pub const PUBLIC_URL: &str = "https://id.example.test";

/// The embedded component, compiled once for the whole test binary.
pub fn engine() -> Runtime {
    static ENGINE: OnceLock<Runtime> = OnceLock::new();
    ENGINE
        .get_or_init(|| Runtime::embedded().expect("the embedded component compiles"))
        .clone()
}

/// A data directory with its database and a frozen clock.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub storage: Arc<SqliteStorage>,
    pub clock: ManualClock,
}

impl TestEnv {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage =
            Arc::new(SqliteStorage::open(dir.path().join("reclaim.db")).expect("database opens"));
        Self {
            dir,
            storage,
            clock: ManualClock::new(Duration::from_secs(1_800_000_000)),
        }
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("reclaim.db")
    }

    /// Settings with one secret and Kratos' defaults.
    pub fn settings(&self, secrets: &str) -> Settings {
        Settings::new(
            PUBLIC_URL,
            parse_secrets(secrets).expect("test secrets are valid"),
        )
    }

    /// A recovery engine over this directory with `settings`.
    pub fn reclaim_with(&self, settings: Settings) -> Reclaim {
        self.reclaim_on(self.storage.clone(), settings)
    }

    /// A recovery engine over any storage (for fault injection).
    pub fn reclaim_on(&self, storage: Arc<dyn Storage>, settings: Settings) -> Reclaim {
        Reclaim::new(engine(), storage, settings).with_clock(Arc::new(self.clock.clone()))
    }

    /// The operations on another runtime (other limits) over this directory.
    pub fn reclaim_on_runtime(&self, runtime: Runtime, settings: Settings) -> Reclaim {
        Reclaim::new(runtime, self.storage.clone(), settings)
            .with_clock(Arc::new(self.clock.clone()))
    }

    /// A recovery engine with the default settings and `SECRET_A`.
    pub fn reclaim(&self) -> Reclaim {
        self.reclaim_with(self.settings(SECRET_A))
    }

    /// Adds an active identity.
    pub fn identity(&self, email: Option<&str>, locale: Option<&str>) -> Identity {
        self.identity_with(NewIdentity {
            email: email.map(Into::into),
            display_name: Some("Ann Example".into()),
            locale: locale.map(Into::into),
            active: true,
            ..Default::default()
        })
    }

    /// Adds an identity as an embedder's own directory might hold it:
    /// written straight into the table, past the checks `identity create`
    /// makes, because the component and the mailer must cope with whatever
    /// a directory returns (an undeliverable address, a name with CR/LF).
    pub fn identity_with(&self, new: NewIdentity) -> Identity {
        let id = uuid::Uuid::new_v4().hyphenated().to_string();
        let conn = rusqlite::Connection::open(self.db_path()).expect("database opens");
        conn.execute(
            "INSERT INTO identities (id, email, display_name, locale, active, created_at) VALUES (?, ?, ?, ?, ?, 0)",
            rusqlite::params![id, new.email, new.display_name, new.locale, new.active],
        )
        .expect("identity is created");
        self.storage
            .identity(&IdentityRef::Id(id))
            .expect("the database answers")
            .expect("the identity is there")
    }

    /// Counts rows of a table in the database file, through a connection of
    /// the test's own.
    pub fn count(&self, sql: &str) -> i64 {
        let conn = rusqlite::Connection::open(self.db_path()).expect("database opens");
        conn.query_row(sql, [], |r| r.get(0))
            .expect("count query runs")
    }

    /// Runs a statement through a connection of the test's own (to stage a
    /// state a crash would leave behind).
    pub fn execute(&self, sql: &str) {
        let conn = rusqlite::Connection::open(self.db_path()).expect("database opens");
        conn.execute_batch(sql).expect("statement runs");
    }

    /// Every row of credentials and outbox, as text, to compare before and
    /// after an operation that must write nothing.
    pub fn snapshot(&self) -> Vec<String> {
        let conn = rusqlite::Connection::open(self.db_path()).expect("database opens");
        let mut rows = Vec::new();
        for sql in [
            "SELECT key, used_at, revoked_at, failed_attempts FROM credentials ORDER BY key",
            "SELECT id, status FROM outbox ORDER BY id",
        ] {
            let mut stmt = conn.prepare(sql).unwrap();
            let columns = stmt.column_count();
            let mut found = stmt.query([]).unwrap();
            while let Some(row) = found.next().unwrap() {
                let values: Vec<String> = (0..columns)
                    .map(|i| format!("{:?}", row.get_ref(i).unwrap()))
                    .collect();
                rows.push(values.join("|"));
            }
        }
        rows
    }
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

pub fn by_id(identity: &Identity) -> IdentityRef {
    IdentityRef::Id(identity.id.clone())
}

/// The `token` query parameter of a recovery link.
pub fn token_of(link: &str) -> String {
    link.split("token=")
        .nth(1)
        .expect("link carries a token")
        .to_string()
}

/// Every file of the database (main file, WAL, shared memory) as bytes.
pub fn database_bytes(db: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let path = PathBuf::from(format!("{}{suffix}", db.display()));
        if let Ok(content) = std::fs::read(&path) {
            bytes.extend(content);
        }
    }
    bytes
}

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}
