//! The default backend: one SQLite file in WAL mode.

mod checkpointer;
mod outbox;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use crate::directory::{Directory, Identity, NewIdentity};
use crate::mail::{Outbox, QueuedMail};
use crate::storage::{
    CredentialStore, Job, NewSession, Outcome, QueuedRequest, RequestQueue, SessionStore, Storage,
    UnitOfWork, settling,
};
use crate::wit::{
    ConsumeOutcome, Credential, CredentialKind, CredentialState, CredentialStatus, IdentityRef,
};
use writer::{SqliteWork, Task, Writer};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS identities (
    pk           INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    email        TEXT,
    display_name TEXT,
    locale       TEXT,
    active       INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    -- Argon2id PHC string, set by a completed recovery.
    password_hash TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS identities_by_email ON identities (lower(email)) WHERE email IS NOT NULL;

CREATE TABLE IF NOT EXISTS credentials (
    key             TEXT PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('link', 'code')),
    identity_id     TEXT NOT NULL,
    flow_id         TEXT NOT NULL UNIQUE,
    issued_at       INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    return_to       TEXT,
    used_at         INTEGER,
    revoked_at      INTEGER,
    failed_attempts INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS outstanding_credentials ON credentials (identity_id)
    WHERE used_at IS NULL AND revoked_at IS NULL;

CREATE TABLE IF NOT EXISTS outbox (
    id         TEXT PRIMARY KEY,
    recipient  TEXT NOT NULL,
    to_name    TEXT,
    subject    TEXT NOT NULL,
    text_body  TEXT NOT NULL,
    html_body  TEXT NOT NULL,
    template   TEXT NOT NULL,
    sender     TEXT,
    status     TEXT NOT NULL DEFAULT 'queued'
               CHECK (status IN ('queued', 'processing', 'sent', 'abandoned')),
    queued_at  INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    -- When a queued message is next due (its retry time); NULL: now.
    next_attempt_at INTEGER,
    -- The courier holding a processing message, and until when.
    claimed_by  TEXT,
    lease_until INTEGER,
    sent_at    INTEGER,
    updated_at INTEGER
);
-- Every delivery attempt, as Kratos' courier keeps them.
-- `attempt` counts within the message's current round: `courier retry`
-- starts a new round from 1, so the log keeps rows of both.
CREATE TABLE IF NOT EXISTS outbox_attempts (
    id       INTEGER PRIMARY KEY,
    mail_id  TEXT NOT NULL REFERENCES outbox (id),
    attempt  INTEGER NOT NULL,
    at       INTEGER NOT NULL,
    courier  TEXT NOT NULL,
    outcome  TEXT NOT NULL,
    error    TEXT
);
CREATE INDEX IF NOT EXISTS attempts_by_mail ON outbox_attempts (mail_id);
CREATE INDEX IF NOT EXISTS due_mail ON outbox (queued_at) WHERE status IN ('queued', 'processing');
";

/// Changes to the schema since the first release, in order: `PRAGMA
/// user_version` counts those a database has had, so an existing data
/// directory upgrades in place and a new one passes through the same steps.
const MIGRATIONS: &[&str] = &[
    // 1: the flow whose credential a message carries (revoked if the message
    // is abandoned), and self-service requests waiting for their turn.
    "ALTER TABLE outbox ADD COLUMN flow_id TEXT;
     CREATE TABLE recovery_requests (
         id        INTEGER PRIMARY KEY,
         email     TEXT NOT NULL,
         return_to TEXT,
         queued_at INTEGER NOT NULL
     );
     -- The session that carries a person from a redeemed credential to the
     -- new-password form: at most one per identity (a newer redemption
     -- replaces it, and everything that ends a recovery deletes it), found
     -- by the identity named in the cookie and checked against SHA-256 of
     -- the cookie's secret, so the store never holds a usable cookie.
     -- Sessions of the first release (keyed by cookie alone, 15 minutes at
     -- most) end with the upgrade.
     DROP TABLE IF EXISTS recovery_sessions;
     CREATE TABLE recovery_sessions (
         identity_id TEXT PRIMARY KEY,
         key         TEXT NOT NULL,
         return_to   TEXT,
         expires_at  INTEGER NOT NULL
     ) WITHOUT ROWID;",
];

const CREDENTIAL_COLUMNS: &str = "key, kind, identity_id, flow_id, issued_at, expires_at, return_to, used_at, revoked_at, failed_attempts";

/// How much of the database file connections read through a memory map.
const MMAP_BYTES: u64 = 256 << 20;

/// How long a writer waits for another's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// SQLite storage in one file. Reads use pooled connections; every write of
/// this process goes through one writer thread, which commits many units of
/// work at once (see `writer`). Other processes sharing the file wait for
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
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
        conn.execute_batch(SCHEMA).context("creating the schema")?;
        migrate(&conn)?;
        Ok(Self {
            writer: Writer::start(conn, pool.connect()?)?,
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

    /// [`Self::with_writer`] without blocking: the outcome can be awaited.
    fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Outcome<T> {
        let (job, outcome) = settling(move |work: SqliteWork| {
            let out = f(&*work.conn()?)?;
            work.keep()?;
            Ok(out)
        });
        self.writer.send(Task::Unit(Box::new(job)));
        outcome
    }

    /// Runs `f` on the writer's connection between batches, outside any
    /// transaction.
    fn between_batches<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.writer.send(Task::Alone(Box::new(move |conn| {
            let _ = tx.send(f(conn));
        })));
        Outcome(rx).wait()
    }

    /// Adds an identity to the built-in directory.
    pub fn create_identity(&self, new: &NewIdentity, now: u64) -> Result<Identity> {
        new.check()?;
        let id = uuid::Uuid::new_v4().hyphenated().to_string();
        let new = new.clone();
        self.with_writer(move |conn| {
            let inserted = conn.execute(
                "INSERT INTO identities (id, email, display_name, locale, active, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                params![id, new.email, new.display_name, new.locale, new.active, to_sql(now)],
            );
            match inserted {
                Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                    bail!("an identity with this email address already exists")
                }
                other => other.context("adding the identity")?,
            };
            identity_where(conn, "id = ?", &id)?.context("the new identity vanished")
        })
    }

    /// An identity of the built-in directory.
    pub fn identity(&self, by: &IdentityRef) -> Result<Option<Identity>> {
        self.with_connection(|conn| match by {
            IdentityRef::Id(id) => identity_where(conn, "id = ?", id),
            IdentityRef::Pk(pk) => identity_where(conn, "pk = ?", pk),
        })
    }

    /// Whether the database answers a query and the writer a unit of work:
    /// a writer thread that stopped would otherwise fail every write while
    /// reads still succeed.
    pub fn ping(&self) -> Result<()> {
        self.with_connection(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?))?;
        self.with_writer(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?))
    }

    /// The Argon2id hash of an identity's password, if one was set.
    pub fn password_hash(&self, identity_id: &str) -> Result<Option<String>> {
        self.with_connection(|conn| {
            Ok(conn
                .query_row(
                    "SELECT password_hash FROM identities WHERE id = ?",
                    [identity_id],
                    |r| r.get(0),
                )
                .optional()?
                .flatten())
        })
    }

    /// Queues a self-service request; the outcome arrives once it is
    /// durable. Known and unknown addresses cost the same here: one row.
    pub fn queue_request(&self, email: &str, return_to: Option<&str>, now: u64) -> Outcome<()> {
        let (email, return_to) = (email.to_owned(), return_to.map(str::to_owned));
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO recovery_requests (email, return_to, queued_at) VALUES (?, ?, ?)",
            )?
            .execute(params![email, return_to, to_sql(now)])?;
            Ok(())
        })
    }

    /// Up to `limit` queued self-service requests, oldest first.
    pub fn queued_requests(&self, limit: usize) -> Result<Vec<QueuedRequest>> {
        self.with_connection(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, email, return_to FROM recovery_requests ORDER BY id LIMIT ?",
            )?;
            let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                Ok(QueuedRequest {
                    id: r.get(0)?,
                    email: r.get(1)?,
                    return_to: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Drops a queued request that could not be served (its operation
    /// trapped), so that it is not tried forever.
    pub fn drop_request(&self, id: i64) -> Result<()> {
        self.with_writer(move |conn| {
            conn.execute("DELETE FROM recovery_requests WHERE id = ?", [id])?;
            Ok(())
        })
    }

    /// Whether the identity's session is live at `now` and has `key`.
    pub fn session_is_live(&self, identity_id: &str, key: &str, now: u64) -> Result<bool> {
        self.with_connection(|conn| {
            Ok(conn
                .query_row(
                    "SELECT 1 FROM recovery_sessions WHERE identity_id = ? AND key = ? AND expires_at > ?",
                    params![identity_id, key, to_sql(now)],
                    |_| Ok(()),
                )
                .optional()?
                .is_some())
        })
    }

    /// Ends the identity's live session with `key` and stores the new
    /// password hash, in one transaction that also revokes its outstanding
    /// links and codes: a new password closes every way in that was opened
    /// before it. Returns the session's `return_to` (`Some` of it), or none
    /// when the session is not live.
    pub fn complete_session(
        &self,
        identity_id: &str,
        key: &str,
        password_hash: &str,
        now: u64,
    ) -> Result<Option<Option<String>>> {
        let (identity_id, key, password_hash) = (
            identity_id.to_owned(),
            key.to_owned(),
            password_hash.to_owned(),
        );
        self.with_writer(move |conn| {
            let ended = conn
                .query_row(
                    "DELETE FROM recovery_sessions
                     WHERE identity_id = ?1 AND key = ?2 AND expires_at > ?3
                     RETURNING return_to",
                    params![identity_id, key, to_sql(now)],
                    |r| r.get::<_, Option<String>>(0),
                )
                .optional()?;
            if ended.is_some() {
                conn.execute(
                    "UPDATE identities SET password_hash = ? WHERE id = ?",
                    params![password_hash, identity_id],
                )?;
                revoke_credentials(conn, &identity_id, None, now)?;
            }
            Ok(ended)
        })
    }

    /// Every identity of the built-in directory, by pk.
    pub fn list_identities(&self) -> Result<Vec<Identity>> {
        self.with_connection(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {IDENTITY_COLUMNS} FROM identities ORDER BY pk"
            ))?;
            let rows = stmt.query_map([], identity_from_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
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

impl CredentialStore for SqliteWork {
    fn insert(&mut self, c: &Credential) -> Result<()> {
        self.conn()?
            .prepare_cached(
                "INSERT INTO credentials (key, kind, identity_id, flow_id, issued_at, expires_at, return_to)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )?
            .execute(params![
                c.key,
                kind_name(c.kind),
                c.identity_id,
                c.flow_id,
                to_sql(c.issued_at),
                to_sql(c.expires_at),
                c.return_to
            ])
            .context("storing the credential")?;
        Ok(())
    }

    fn consume(
        &mut self,
        keys: &[String],
        kind: CredentialKind,
        now: u64,
        max_failed_attempts: u32,
    ) -> Result<ConsumeOutcome> {
        if keys.is_empty() {
            return Ok(ConsumeOutcome::Unknown);
        }
        let placeholders = vec!["?"; keys.len()].join(", ");
        let now = to_sql(now);
        let mut args: Vec<rusqlite::types::Value> = vec![
            now.into(),
            kind_name(kind).to_string().into(),
            now.into(),
            i64::from(max_failed_attempts).into(),
        ];
        args.extend(keys.iter().map(|k| k.clone().into()));
        // The guard is in the UPDATE itself: SQLite runs it under the write
        // lock, so of many concurrent callers exactly one changes the row.
        let consumed = self
            .conn()?
            .prepare_cached(&format!(
                "UPDATE credentials SET used_at = ?
                 WHERE kind = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?
                   AND failed_attempts < ? AND key IN ({placeholders})
                 RETURNING {CREDENTIAL_COLUMNS}"
            ))?
            .query_row(params_from_iter(args.iter()), status_from_row)
            .optional()?;
        if let Some(status) = consumed {
            return Ok(ConsumeOutcome::Consumed(status.credential));
        }
        Ok(match self.find(keys, kind, from_sql(now))? {
            None => ConsumeOutcome::Unknown,
            Some(status) => ConsumeOutcome::NotActive(match status.state {
                // Active but over the attempt limit: the flow is dead.
                CredentialState::Active => CredentialState::Revoked,
                state => state,
            }),
        })
    }

    fn find(
        &mut self,
        keys: &[String],
        kind: CredentialKind,
        now: u64,
    ) -> Result<Option<CredentialStatus>> {
        if keys.is_empty() {
            return Ok(None);
        }
        let placeholders = vec!["?"; keys.len()].join(", ");
        let mut args: Vec<rusqlite::types::Value> = vec![kind_name(kind).to_string().into()];
        args.extend(keys.iter().map(|k| k.clone().into()));
        let found = self
            .conn()?
            .prepare_cached(&format!(
                "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE kind = ? AND key IN ({placeholders})"
            ))?
            .query_row(params_from_iter(args.iter()), status_from_row)
            .optional()?;
        Ok(found.map(|stored| stored.status_at(now)))
    }

    fn code_for_flow(&mut self, flow_id: &str, now: u64) -> Result<Option<CredentialStatus>> {
        let found = self
            .conn()?
            .prepare_cached(&format!(
                "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE flow_id = ? AND kind = 'code'"
            ))?
            .query_row([flow_id], status_from_row)
            .optional()?;
        Ok(found.map(|stored| stored.status_at(now)))
    }

    fn record_failed_attempt(
        &mut self,
        flow_id: &str,
        max_failed_attempts: u32,
        now: u64,
    ) -> Result<u32> {
        let count: Option<i64> = self
            .conn()?
            .prepare_cached(
                "UPDATE credentials SET failed_attempts = failed_attempts + 1,
                    revoked_at = CASE WHEN failed_attempts + 1 >= ?1 AND revoked_at IS NULL AND used_at IS NULL
                                      THEN ?2 ELSE revoked_at END
                 WHERE flow_id = ?3 AND kind = 'code'
                 RETURNING failed_attempts",
            )?
            .query_row(params![i64::from(max_failed_attempts), to_sql(now), flow_id], |r| r.get(0))
            .optional()?;
        // A flow that vanished meanwhile counts as spent.
        Ok(count.map_or(max_failed_attempts, |c| {
            u32::try_from(c).unwrap_or(u32::MAX)
        }))
    }

    fn revoke_identity(
        &mut self,
        identity_id: &str,
        kind: Option<CredentialKind>,
        now: u64,
    ) -> Result<u32> {
        revoke_credentials(&*self.conn()?, identity_id, kind, now)
    }
}

impl SessionStore for SqliteWork {
    fn open_session(
        &mut self,
        session: &NewSession,
        identity_id: &str,
        return_to: Option<&str>,
    ) -> Result<()> {
        self.conn()?
            .prepare_cached(
                "INSERT OR REPLACE INTO recovery_sessions (identity_id, key, return_to, expires_at) VALUES (?, ?, ?, ?)",
            )?
            .execute(params![identity_id, session.key, return_to, to_sql(session.expires_at)])
            .context("opening the recovery session")?;
        Ok(())
    }

    fn end_sessions(&mut self, identity_id: &str, now: u64) -> Result<u32> {
        end_sessions(&*self.conn()?, identity_id, now)
    }
}

impl RequestQueue for SqliteWork {
    fn dequeue_request(&mut self, id: i64) -> Result<bool> {
        let removed = self
            .conn()?
            .prepare_cached("DELETE FROM recovery_requests WHERE id = ?")?
            .execute([id])?;
        Ok(removed == 1)
    }
}

/// Revokes the identity's active credentials (of one kind, or all).
fn revoke_credentials(
    conn: &Connection,
    identity_id: &str,
    kind: Option<CredentialKind>,
    now: u64,
) -> Result<u32> {
    let revoked = conn
        .prepare_cached(
            "UPDATE credentials SET revoked_at = ?1
             WHERE identity_id = ?2 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?1
               AND (?3 IS NULL OR kind = ?3)",
        )?
        .execute(params![to_sql(now), identity_id, kind.map(kind_name)])?;
    Ok(u32::try_from(revoked).unwrap_or(u32::MAX))
}

/// Ends (deletes) the identity's session; counts it if it was live at `now`.
fn end_sessions(conn: &Connection, identity_id: &str, now: u64) -> Result<u32> {
    let live: Option<bool> = conn
        .prepare_cached(
            "DELETE FROM recovery_sessions WHERE identity_id = ? RETURNING expires_at > ?",
        )?
        .query_row(params![identity_id, to_sql(now)], |r| r.get(0))
        .optional()?;
    Ok(u32::from(live == Some(true)))
}

impl Directory for SqliteWork {
    fn get_by_id(&mut self, id: &str) -> Result<Option<Identity>> {
        identity_where(&*self.conn()?, "id = ?", &id)
    }

    fn get_by_pk(&mut self, pk: i64) -> Result<Option<Identity>> {
        identity_where(&*self.conn()?, "pk = ?", &pk)
    }

    fn find_by_email(&mut self, email: &str) -> Result<Option<Identity>> {
        identity_where(&*self.conn()?, "lower(email) = lower(?)", &email)
    }
}

impl Outbox for SqliteWork {
    fn enqueue(&mut self, mail: &QueuedMail) -> Result<()> {
        self.conn()?
            .prepare_cached(
                "INSERT INTO outbox (id, recipient, to_name, subject, text_body, html_body, template, sender, queued_at, flow_id)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )?
            .execute(params![
                mail.id,
                mail.to,
                mail.to_name,
                mail.subject,
                mail.text_body,
                mail.html_body,
                mail.template,
                mail.sender,
                to_sql(mail.queued_at),
                mail.flow_id
            ])
            .context("queueing the message")?;
        Ok(())
    }
}

const IDENTITY_COLUMNS: &str = "id, pk, email, display_name, locale, active";

fn identity_where(
    conn: &Connection,
    condition: &str,
    value: &dyn rusqlite::ToSql,
) -> Result<Option<Identity>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {IDENTITY_COLUMNS} FROM identities WHERE {condition}"
        ))?
        .query_row([value], identity_from_row)
        .optional()?)
}

/// Applies the migrations the database has not had, in one transaction:
/// several processes opening it at once apply each step once.
fn migrate(conn: &Connection) -> Result<()> {
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let version = usize::try_from(version).unwrap_or(0);
    for (step, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        tx.execute_batch(sql)
            .with_context(|| format!("migrating the schema to version {}", step + 1))?;
    }
    tx.execute_batch(&format!("PRAGMA user_version = {}", MIGRATIONS.len()))?;
    Ok(tx.commit()?)
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

fn identity_from_row(r: &Row<'_>) -> rusqlite::Result<Identity> {
    Ok(Identity {
        id: r.get(0)?,
        pk: r.get(1)?,
        email: r.get(2)?,
        display_name: r.get(3)?,
        locale: r.get(4)?,
        active: r.get(5)?,
    })
}

/// A credential row with the columns that decide its state.
struct StoredCredential {
    credential: Credential,
    used_at: Option<i64>,
    revoked_at: Option<i64>,
    failed_attempts: u32,
}

impl StoredCredential {
    /// The credential and where it stands at `now`.
    fn status_at(self, now: u64) -> CredentialStatus {
        CredentialStatus {
            state: self.state_at(now),
            credential: self.credential,
            failed_attempts: self.failed_attempts,
        }
    }

    /// Used wins over revoked, revoked over expired: the first thing that
    /// happened to a credential is the reason it no longer works.
    fn state_at(&self, now: u64) -> CredentialState {
        if self.used_at.is_some() {
            CredentialState::Used
        } else if self.revoked_at.is_some() {
            CredentialState::Revoked
        } else if self.credential.expires_at <= now {
            CredentialState::Expired
        } else {
            CredentialState::Active
        }
    }
}

fn status_from_row(r: &Row<'_>) -> rusqlite::Result<StoredCredential> {
    let kind: String = r.get(1)?;
    Ok(StoredCredential {
        credential: Credential {
            key: r.get(0)?,
            kind: if kind == "code" {
                CredentialKind::Code
            } else {
                CredentialKind::Link
            },
            identity_id: r.get(2)?,
            flow_id: r.get(3)?,
            issued_at: from_sql(r.get(4)?),
            expires_at: from_sql(r.get(5)?),
            return_to: r.get(6)?,
        },
        used_at: r.get(7)?,
        revoked_at: r.get(8)?,
        failed_attempts: u32::try_from(r.get::<_, i64>(9)?).unwrap_or(u32::MAX),
    })
}

fn kind_name(kind: CredentialKind) -> &'static str {
    match kind {
        CredentialKind::Link => "link",
        CredentialKind::Code => "code",
    }
}

/// Timestamps are u64 nanoseconds; SQLite integers are i64, enough until
/// 2262.
fn to_sql(nanos: u64) -> i64 {
    i64::try_from(nanos).unwrap_or(i64::MAX)
}

fn from_sql(nanos: i64) -> u64 {
    u64::try_from(nanos).unwrap_or(0)
}
