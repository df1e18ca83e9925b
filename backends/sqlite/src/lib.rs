//! The default backend: one SQLite file in WAL mode. Reads use pooled
//! connections; every write of this process goes through one writer thread
//! that commits many units of work at once (`writer`). This file holds the
//! connections; each domain's tables have a file of their own.
//!
//! ```
//! use reclaim_storage::directory::NewIdentity;
//! use reclaim_storage::wit::IdentityRef;
//! use reclaim_storage::Identities;
//!
//! # fn main() -> anyhow::Result<()> {
//! # let dir = tempfile::tempdir()?;
//! let backend = reclaim_sqlite::SqliteStorage::open(dir.path().join("reclaim.db"))?;
//! let new = NewIdentity { email: Some("ann@example.com".into()), active: true, ..Default::default() };
//! let ann = backend.create_identity(&new, 0)?;
//! assert!(backend.identity(&IdentityRef::Id(ann.id))?.is_some());
//! # Ok(())
//! # }
//! ```

mod assertions;
mod checkpointer;
mod credentials;
mod events;
mod flows;
mod identities;
mod outbox;
mod rate_limits;
mod requests;
mod schema;
mod sessions;
mod writer;

// The seam's modules under the names the backend's files use.
pub(crate) use reclaim_storage::{self as storage, clock, directory, wit};

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rusqlite::Connection;

use crate::storage::promise;
use crate::storage::{Backend, Job, Pending, Storage, UnitOfWork, settling};
use writer::{SqliteWork, Task, Writer};

/// Whether `cause` is SQLite finding the disk full: like a database out of
/// reach, nothing was written and the same request can succeed once space
/// returns, so callers answer 503 rather than 500.
pub fn is_out_of_space(cause: &(dyn std::error::Error + 'static)) -> bool {
    let full = |e: &rusqlite::ffi::Error| e.code == rusqlite::ErrorCode::DiskFull;
    match cause.downcast_ref::<rusqlite::Error>() {
        Some(rusqlite::Error::SqliteFailure(e, _)) => full(e),
        _ => cause
            .downcast_ref::<rusqlite::ffi::Error>()
            .is_some_and(full),
    }
}

/// How much of the database file connections read through a memory map.
const MMAP_BYTES: u64 = 256 << 20;

/// How long a writer waits for another's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// SQLite storage in one file. Other processes sharing the file wait for
/// SQLite's write lock (`BEGIN IMMEDIATE`).
pub struct SqliteStorage {
    pool: Pool,
    writer: Writer,
}

struct Pool {
    path: PathBuf,
    durability: Durability,
    idle: Mutex<Vec<Connection>>,
}

/// When a commit is on disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// `synchronous = FULL`: every commit is synced before it returns, so an
    /// acknowledged operation survives power loss.
    #[default]
    Full,
    /// `synchronous = NORMAL`: commits survive a crash of the process, not
    /// of the machine (WAL is synced at checkpoints).
    Normal,
}

impl Pool {
    fn connect(&self) -> Result<Connection> {
        let conn = Connection::open(&self.path)
            .with_context(|| format!("opening {}", self.path.display()))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // WAL lets readers run beside the writer; the durability setting
        // decides whether each commit is synced (see `Durability`).
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            bail!(
                "{} does not support WAL mode (got {mode})",
                self.path.display()
            );
        }
        // Deleted and overwritten content (blanked mail bodies) is zeroed on
        // disk rather than left in free pages.
        conn.execute_batch("PRAGMA secure_delete = ON;")?;
        // Pages are read through a memory map rather than a pread and a
        // copy each (writes still go through the WAL with pwrite). The cost:
        // a read error of the disk arrives as SIGBUS rather than an error.
        conn.execute_batch(&format!("PRAGMA mmap_size = {MMAP_BYTES};"))?;
        conn.execute_batch(match self.durability {
            Durability::Full => "PRAGMA synchronous = FULL;",
            Durability::Normal => "PRAGMA synchronous = NORMAL;",
        })?;
        Ok(conn)
    }

    fn acquire(&self) -> Result<Connection> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match pooled {
            Some(conn) => Ok(conn),
            None => self.connect(),
        }
    }

    fn release(&self, conn: Connection) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
    }
}

impl SqliteStorage {
    /// Opens (creating if needed) the database at `path`, syncing every
    /// commit ([`Durability::Full`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, Durability::Full)
    }

    /// Opens the database with the given durability.
    pub fn open_with(path: impl AsRef<Path>, durability: Durability) -> Result<Self> {
        let pool = Pool {
            path: path.as_ref().to_path_buf(),
            durability,
            idle: Mutex::new(Vec::new()),
        };
        create_private(&pool.path)?;
        let conn = pool.connect()?;
        schema::migrate(&conn).context("creating the schema")?;
        Ok(Self {
            writer: Writer::start(conn, pool.connect()?, durability == Durability::Full)?,
            pool,
        })
    }

    fn with_connection<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.pool.acquire()?;
        let out = f(&conn);
        self.pool.release(conn);
        out
    }

    /// Runs `f` as a unit of work of the writer (in a batch, in a savepoint
    /// that is undone if `f` fails) and returns once its writes are durable.
    fn with_writer<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.write(f).wait()
    }

    /// [`Self::with_writer`] without blocking: the result can be awaited.
    fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Pending<T> {
        let (job, pending) = settling(move |work: SqliteWork| {
            let out = f(&*work.conn()?)?;
            work.keep()?;
            Ok(out)
        });
        self.writer.send(Task::Unit(Box::new(job)));
        pending
    }

    /// Runs `f` on the writer's connection between batches, outside any
    /// transaction.
    fn between_batches<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (settle, pending) = promise();
        self.writer.send(Task::Alone(Box::new(move |conn| {
            let _ = settle.send(f(conn));
        })));
        pending.wait()
    }
}

impl Storage for SqliteStorage {
    fn submit(&self, job: Job) {
        self.writer
            .send(Task::Unit(Box::new(move |work: Result<SqliteWork>| {
                job(work.map(|work| Box::new(work) as Box<dyn UnitOfWork>))
            })));
    }
}

impl UnitOfWork for SqliteWork {
    fn commit(self: Box<Self>) -> Result<()> {
        self.keep()
    }
}

impl Backend for SqliteStorage {
    fn ping(&self) -> Result<()> {
        self.with_connection(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?))?;
        self.with_writer(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?))
    }
}

/// The database holds addresses and password hashes: it is created readable
/// by its owner alone (SQLite gives its WAL and shared-memory files the same
/// mode), and an existing one that others can read is tightened.
fn create_private(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        match created {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        }
        for suffix in ["", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", path.display()));
            if let Ok(meta) = std::fs::metadata(&file)
                && meta.permissions().mode() & 0o077 != 0
            {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("making {} private", file.display()))?;
                tracing::warn!(file = %file.display(), "others could read the database; it is now private (0600)");
            }
        }
    }
    Ok(())
}
