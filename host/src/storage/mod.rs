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
    fn find(
        &mut self,
        keys: &[String],
        kind: CredentialKind,
        now: u64,
    ) -> Result<Option<CredentialStatus>>;
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

/// A recovery session to open: what carries a person from a redeemed
/// credential to the new-password form.
#[derive(Clone, Debug)]
pub struct NewSession {
    /// SHA-256 of the cookie's secret, so the store never holds a usable one.
    pub key: String,
    /// When the session ends if nothing ends it sooner.
    pub expires_at: u64,
}

/// Recovery sessions, kept beside the credentials they were opened with: a
/// session is only as alive as the recovery that opened it. An identity has
/// at most one: a newer redemption replaces it, and everything that ends a
/// recovery (a new password, a revocation) ends it, in the same transaction.
pub trait SessionStore {
    /// Opens the session of the identity whose credential was just
    /// redeemed, replacing any it had.
    fn open_session(
        &mut self,
        session: &NewSession,
        identity_id: &str,
        return_to: Option<&str>,
    ) -> Result<()>;
    /// Ends the identity's session; returns how many were live at `now`
    /// (0 or 1).
    fn end_sessions(&mut self, identity_id: &str, now: u64) -> Result<u32>;
}

/// A self-service request waiting for its turn (see
/// [`crate::NonBlocking::serve_queued_request`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedRequest {
    pub id: i64,
    pub email: String,
    pub return_to: Option<String>,
}

/// Self-service requests wait in the store and are served at a steady pace,
/// apart from the request that queued them: the work a known address causes
/// can't then be timed by the requester's next request.
pub trait RequestQueue {
    /// Removes a served request, in the transaction that served it;
    /// returns false when it was no longer there (another process sharing
    /// the store served it first).
    fn dequeue_request(&mut self, id: i64) -> Result<bool>;
}

/// Everything one operation may touch, inside one transaction. Dropping it
/// without [`UnitOfWork::commit`] discards every write.
pub trait UnitOfWork:
    CredentialStore + Directory + Outbox + SessionStore + RequestQueue + Send
{
    /// Keeps this unit's writes. They are durable once the job's
    /// [`Settled`] callback hears `Ok`: a backend may commit many units in
    /// one transaction.
    fn commit(self: Box<Self>) -> Result<()>;
}

/// A job for [`Storage::submit`]: given its unit of work (or why none could
/// be started), it runs, commits or drops the unit, and returns whom to tell
/// when its writes are durable. It must not keep the unit past its return.
pub type Job = Box<dyn FnOnce(Result<Box<dyn UnitOfWork>>) -> Settled + Send>;

/// Told once whether the writes a job kept are durable, or why they were
/// lost.
pub type Settled = Box<dyn FnOnce(Result<()>) + Send>;

/// A storage backend.
pub trait Storage: Send + Sync {
    /// Runs `job` with a unit of work of its own, on the calling thread or
    /// one of the backend's. Units of work never interleave. A backend may
    /// commit many of them in one transaction (group commit), so that one
    /// sync of the disk covers them all; it then keeps each in a savepoint,
    /// so a dropped unit still undoes only its own writes.
    fn submit(&self, job: Job);
}

/// Runs `work` in a unit of work of `storage` and returns its result once
/// what it committed is durable.
pub fn transact<T: Send + 'static>(
    storage: &dyn Storage,
    work: impl FnOnce(Box<dyn UnitOfWork>) -> Result<T> + Send + 'static,
) -> Result<T> {
    submit(storage, work).wait()
}

/// Submits `work` to run in a unit of work of `storage`; its result arrives
/// in the [`Outcome`] once what it committed is durable.
pub fn submit<T: Send + 'static>(
    storage: &dyn Storage,
    work: impl FnOnce(Box<dyn UnitOfWork>) -> Result<T> + Send + 'static,
) -> Outcome<T> {
    let (job, outcome) = settling(work);
    storage.submit(Box::new(job));
    outcome
}

/// Where a job's outcome arrives once its writes are settled: waited for by
/// a thread, or awaited by a task.
pub struct Outcome<T>(tokio::sync::oneshot::Receiver<Result<T>>);

impl<T> Outcome<T> {
    /// Blocks the thread until the outcome is settled. Async tasks should
    /// await it instead; waiting inside a runtime only blocks that worker
    /// (the writer does not need the runtime), unlike tokio's
    /// `blocking_recv`, which panics there.
    pub fn wait(self) -> Result<T> {
        futures_executor::block_on(self)
    }
}

impl<T> Future for Outcome<T> {
    type Output = Result<T>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<T>> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|settled| settled.unwrap_or_else(|_| Err(writer_stopped())))
    }
}

fn writer_stopped() -> anyhow::Error {
    anyhow::anyhow!("the storage writer stopped before the work was settled")
}

/// A job that runs `work` on its unit of work `W` and reports the result
/// only when the writes are durable (or lost).
pub(crate) fn settling<W, T: Send + 'static>(
    work: impl FnOnce(W) -> Result<T> + Send + 'static,
) -> (
    impl FnOnce(Result<W>) -> Settled + Send + 'static,
    Outcome<T>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job = move |begun: Result<W>| -> Settled {
        let outcome = begun.and_then(work);
        Box::new(move |durable: Result<()>| {
            let _ = tx.send(durable.and(outcome));
        })
    };
    (job, Outcome(rx))
}
