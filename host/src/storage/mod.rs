//! Everything the host keeps, behind one seam. A backend is a [`Backend`]:
//! units of work for the component's operations and the host's writes
//! around them ([`Storage`]: credentials, the directory and its
//! administration, sessions, hand-off assertions, events, the outbox, the
//! request queue), and the host's reads and own keeping (identities, the
//! request queue, the outbox, webhook deliveries and the audit trail, rate
//! limits, health). The rest of the host holds an
//! `Arc<dyn Backend>`; [`open`] is the one place that picks a concrete one.

pub mod assertions;
pub mod credentials;
pub mod events;
pub mod identities;
pub mod memory;
mod pending;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod rate_limits;
pub mod requests;
pub mod sessions;
pub mod sqlite;

use std::sync::Arc;

use anyhow::Result;

use crate::directory::Directory;
use crate::mail::{Outbox, OutboxStore};

pub use assertions::{AssertionRow, AssertionStore, NewAssertion, Taken};
pub use credentials::{CredentialRecord, CredentialStore};
pub use events::{EventLog, EventStore, NewEvent};
pub use identities::{
    Conflict, Identities, IdentityFilter, IdentityKey, IdentityRecord, IdentityStore,
    ManagedByPlatform,
};
pub use memory::MemoryStorage;
pub(crate) use pending::settling;
pub use pending::{OnDurable, Pending, submit, transact};
#[cfg(feature = "postgres")]
pub use postgres::PostgresStorage;
pub use rate_limits::{Quota, RateLimits};
pub use requests::{QueuedRequest, RequestQueue, Requests};
pub use sessions::{Completed, LiveSession, NewSession, SessionStore};
pub use sqlite::{Durability, SqliteStorage};

/// Everything one operation may touch, inside one transaction. Dropping it
/// without [`UnitOfWork::commit`] discards every write.
pub trait UnitOfWork:
    CredentialStore
    + Directory
    + IdentityStore
    + Outbox
    + SessionStore
    + AssertionStore
    + EventLog
    + RequestQueue
    + Send
{
    /// Keeps this unit's writes. They are durable once the job's
    /// [`OnDurable`] callback hears `Ok`: a backend may commit many units in
    /// one transaction.
    fn commit(self: Box<Self>) -> Result<()>;
}

/// A job for [`Storage::submit`]: given its unit of work (or why none could
/// be started), it runs, commits or drops the unit, and returns whom to tell
/// when its writes are durable. It must not keep the unit past its return.
pub type Job = Box<dyn FnOnce(Result<Box<dyn UnitOfWork>>) -> OnDurable + Send>;

/// Units of work: what the recovery operations run in.
pub trait Storage: Send + Sync {
    /// Runs `job` with a unit of work of its own, on the calling thread or
    /// one of the backend's. Units of work never interleave. A backend may
    /// commit many of them in one transaction (group commit), so that one
    /// sync of the disk covers them all; it then keeps each in a savepoint,
    /// so a dropped unit still undoes only its own writes.
    fn submit(&self, job: Job);
}

/// A whole backend: what `reclaim serve`, the CLI and the courier hold.
/// Methods block unless they return a [`Pending`]; async callers run the
/// blocking ones on a blocking thread.
pub trait Backend:
    Storage + Identities + Requests + OutboxStore + EventStore + RateLimits + Send + Sync
{
    /// Whether the backend answers a read and a write: a writer that
    /// stopped would otherwise fail every write while reads still succeed.
    fn ping(&self) -> Result<()>;
}

/// Where and how the backend keeps its data.
#[derive(Clone, Debug)]
pub enum Location {
    /// One SQLite file.
    Sqlite {
        path: std::path::PathBuf,
        durability: Durability,
    },
    /// A PostgreSQL database, shared by any number of processes
    /// (`postgres://user:pass@host:port/db`).
    Postgres {
        url: String,
        /// PEM certificates to trust for TLS (`sslmode=require`), besides
        /// the public roots.
        ca: Option<std::path::PathBuf>,
        /// The platform's own user table as the directory, in place of
        /// Reclaim's `identities`.
        directory: Option<DirectoryQueries>,
    },
    /// Process memory: gone when the process ends (tests, benchmarks).
    Memory,
}

/// The platform's queries of one user, each taking its value as `$1` and
/// yielding the columns `id`, `pk`, `email`, `display_name`, `locale`,
/// `active` and optionally `second_factor`; run inside each operation's own
/// transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryQueries {
    pub by_id: String,
    pub by_pk: String,
    pub by_email: String,
}

/// Opens the backend at `location`: the one function that names a
/// concrete backend.
pub fn open(location: &Location) -> Result<Arc<dyn Backend>> {
    Ok(match location {
        Location::Sqlite { path, durability } => {
            Arc::new(SqliteStorage::open_with(path, *durability)?)
        }
        #[cfg(feature = "postgres")]
        Location::Postgres { url, ca, directory } => Arc::new(PostgresStorage::open_with(
            url,
            ca.as_deref(),
            directory.as_ref(),
        )?),
        #[cfg(not(feature = "postgres"))]
        Location::Postgres { .. } => {
            anyhow::bail!(
                "this build of reclaim has no PostgreSQL backend (its `postgres` feature)"
            )
        }
        Location::Memory => Arc::new(MemoryStorage::new()),
    })
}

/// A failure of the backend being out of reach (a lost connection, a
/// database shutting down) rather than a fault: callers answer 503 and the
/// request can be tried again; nothing of it was written. It is an error
/// of its own (not a context message), so it stays findable in the chain
/// after the trap that carried it out of the component.
#[derive(Debug, thiserror::Error)]
#[error("the database is not answering")]
pub struct Unavailable(#[source] pub Box<dyn std::error::Error + Send + Sync + 'static>);

/// Whether `error` says the backend was out of reach, or out of space.
pub fn is_unavailable(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| cause.is::<Unavailable>() || sqlite::is_out_of_space(cause))
}

/// A unit of work over nothing, for a call that must not touch a backend
/// (warming the runtime up).
pub fn scratch_unit() -> Result<Box<dyn UnitOfWork>> {
    MemoryStorage::new().begin()
}

/// Timestamps are u64 nanoseconds since the Unix epoch; databases keep i64,
/// enough until 2262.
pub(crate) fn to_db(nanos: u64) -> i64 {
    i64::try_from(nanos).unwrap_or(i64::MAX)
}

pub(crate) fn from_db(nanos: i64) -> u64 {
    u64::try_from(nanos).unwrap_or(0)
}
