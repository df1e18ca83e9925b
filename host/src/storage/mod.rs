//! Durable storage of credentials, identities and queued mail, and the unit
//! of work that makes each recovery operation all-or-nothing.

pub mod memory;
pub mod sqlite;

use anyhow::Result;

use crate::directory::Directory;
use crate::mail::Outbox;
use crate::wit::{ConsumeOutcome, Credential, CredentialKind, CredentialStatus};

pub use memory::MemoryStorage;
pub use sqlite::{Durability, SqliteStorage};

/// The component's `storage` import: single-use credentials kept under their
/// keyed hashes. Each method is one atomic step (see the WIT docs).
pub trait CredentialStore {
    fn insert(&mut self, credential: &Credential) -> Result<()>;
    fn consume(
        &mut self,
        keys: &[String],
        kind: CredentialKind,
        now: u64,
        max_failed_attempts: u32,
    ) -> Result<ConsumeOutcome>;
    fn code_for_flow(&mut self, flow_id: &str, now: u64) -> Result<Option<CredentialStatus>>;
    fn record_failed_attempt(
        &mut self,
        flow_id: &str,
        max_failed_attempts: u32,
        now: u64,
    ) -> Result<u32>;
    fn revoke_identity(
        &mut self,
        identity_id: &str,
        kind: Option<CredentialKind>,
        now: u64,
    ) -> Result<u32>;
}

/// Everything one operation may touch, inside one transaction. Dropping it
/// without [`UnitOfWork::commit`] discards every write.
pub trait UnitOfWork: CredentialStore + Directory + Outbox + Send {
    fn commit(self: Box<Self>) -> Result<()>;
}

/// A storage backend.
pub trait Storage: Send + Sync {
    /// Starts a unit of work; it holds the backend's write lock until it is
    /// committed or dropped, so operations never interleave.
    fn begin(&self) -> Result<Box<dyn UnitOfWork>>;
}
