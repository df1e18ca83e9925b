//! Reclaim's storage seam: everything the host keeps, behind one seam.
//!
//! ```
//! use reclaim_storage::directory::NewIdentity;
//! use reclaim_storage::wit::IdentityRef;
//! use reclaim_storage::{Backend, Identities};
//!
//! # fn main() -> anyhow::Result<()> {
//! // Any backend: the memory one here, SQLite or PostgreSQL in a service.
//! let backend: Box<dyn Backend> = Box::new(reclaim_memory::MemoryStorage::new());
//! let new = NewIdentity { email: Some("ann@example.com".into()), active: true, ..Default::default() };
//! let ann = backend.create_identity(&new, 0)?;
//! let found = backend.identity(&IdentityRef::Id(ann.id.clone()))?.expect("stored");
//! assert_eq!(found.email.as_deref(), Some("ann@example.com"));
//! # Ok(())
//! # }
//! ```
//!
//! A backend is a [`Backend`]:
//! units of work for the component's operations and the host's writes
//! around them ([`Storage`]: credentials, the directory and its
//! administration, sessions, hand-off assertions, events, the outbox, the
//! request queue), and the host's reads and own keeping (identities, the
//! request queue, the self-service flows, the outbox, webhook deliveries and
//! the audit trail, rate limits, health). The rest of the host holds an
//! `Arc<dyn Backend>`. The seam names no backend: each is a crate of its own
//! under `backends/` that implements it file for file, and the host's
//! `backends::open` is the one place that picks one. The types the seam
//! speaks are here too: the WIT contract's ([`wit`]), the [`clock`], the
//! identity [`directory`].

pub mod assertions;
pub mod clock;
pub mod credentials;
pub mod directed;
pub mod directory;
pub mod events;
pub mod flows;
pub mod identities;
pub mod outbox;
mod pending;
pub mod rate_limits;
pub mod requests;
pub mod sessions;
pub mod wit;

use anyhow::Result;

use crate::directory::Directory;
use outbox::{Outbox, OutboxStore};

pub use assertions::{AssertionRow, AssertionStore, NewAssertion, Taken};
pub use credentials::{CredentialRecord, CredentialStore};
pub use events::{EventLog, EventStore, NewEvent};
pub use flows::{FlowStep, FlowSteps, Flows, StoredFlow};
pub use identities::{
    Conflict, Identities, IdentityFilter, IdentityKey, IdentityRecord, IdentityStore,
    ManagedByPlatform,
};
pub use pending::{OnDurable, Pending, submit, transact};
#[doc(hidden)]
pub use pending::{promise, settling};
pub use rate_limits::{Quota, RateLimits};
pub use requests::{NewRequest, QueuedRequest, RequestQueue, Requests};
pub use sessions::{Completed, LiveSession, NewSession, SessionStore};

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
    + FlowSteps
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
    Storage + Identities + Requests + Flows + OutboxStore + EventStore + RateLimits + Send + Sync
{
    /// Whether the backend answers a read and a write: a writer that
    /// stopped would otherwise fail every write while reads still succeed.
    fn ping(&self) -> Result<()>;
}

/// A failure of the backend being out of reach (a lost connection, a
/// database shutting down) rather than a fault: callers answer 503 and the
/// request can be tried again; nothing of it was written. It is an error
/// of its own (not a context message), so it stays findable in the chain
/// after the trap that carried it out of the component.
#[derive(Debug, thiserror::Error)]
#[error("the database is not answering")]
pub struct Unavailable(#[source] pub Box<dyn std::error::Error + Send + Sync + 'static>);

/// Timestamps are u64 nanoseconds since the Unix epoch; databases keep i64,
/// enough until 2262.
pub fn to_db(nanos: u64) -> i64 {
    i64::try_from(nanos).unwrap_or(i64::MAX)
}

pub fn from_db(nanos: i64) -> u64 {
    u64::try_from(nanos).unwrap_or(0)
}
