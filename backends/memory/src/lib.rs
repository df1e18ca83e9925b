//! Storage in memory: for embedders' tests, benchmarks that measure the runtime
//! without a disk, and as the second backend the contract suite
//! holds the SQLite one to. Units of work run one at a time and undo their
//! writes when dropped uncommitted, as the SQLite backend's do; the
//! backend's own writes (claims, sessions, counters) wait their turn too.
//!
//! ```
//! use reclaim_storage::directory::NewIdentity;
//! use reclaim_storage::wit::IdentityRef;
//! use reclaim_storage::Identities;
//!
//! # fn main() -> anyhow::Result<()> {
//! let backend = reclaim_memory::MemoryStorage::new();
//! let new = NewIdentity { email: Some("ann@example.com".into()), active: true, ..Default::default() };
//! let ann = backend.create_identity(&new, 0)?;
//! assert!(backend.identity(&IdentityRef::Id(ann.id))?.is_some());
//! # Ok(())
//! # }
//! ```

mod assertions;
mod credentials;
mod events;
mod flows;
mod identities;
mod outbox;
mod rate_limits;
mod requests;
mod sessions;

// The seam's modules under the names the backend's files use.
pub(crate) use reclaim_storage::{self as storage, clock, directory, wit};

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use anyhow::Result;

use crate::storage::AssertionRow;
use crate::storage::events::EventRecord;
use crate::storage::identities::IdentityRecord;
use crate::storage::outbox::QueuedMail;
use crate::storage::{Backend, CredentialRecord, Job, QueuedRequest, Storage, UnitOfWork};
use outbox::StoredMail;

#[derive(Default)]
struct Tables {
    identities: Vec<IdentityRecord>,
    /// The pk the next identity gets (pks are never reused).
    next_pk: i64,
    passwords: HashMap<String, String>,
    credentials: HashMap<String, CredentialRecord>,
    flows: HashMap<String, String>,
    /// An identity's credentials that were active when last looked at.
    by_identity: HashMap<String, Vec<String>>,
    outbox: Vec<StoredMail>,
    /// Recovery sessions by identity.
    sessions: HashMap<String, sessions::StoredSession>,
    /// Self-service requests waiting to be served, oldest first.
    requests: Vec<QueuedRequest>,
    /// Claims on queued requests: until when.
    request_claims: HashMap<i64, u64>,
    next_request: i64,
    /// The flow API's flows by id.
    self_service_flows: HashMap<String, crate::storage::StoredFlow>,
    /// Rate-limit keys and their theoretical arrival times.
    rate_limits: HashMap<String, u64>,
    /// Hand-off assertions by key.
    assertions: HashMap<String, AssertionRow>,
    /// The audit trail, oldest first, and the seq of its newest event.
    events: Vec<EventRecord>,
    next_event_seq: i64,
    deliveries: Vec<events::StoredDelivery>,
    /// Endpoints that answered 410: when, and why.
    disabled_endpoints: HashMap<String, (u64, String)>,
}

/// What undoes one write.
enum Undo {
    Credential(String, Option<CredentialRecord>),
    /// A key pruned from an identity's index of active credentials.
    Indexed(String, String),
    Outbox,
    /// A session as it was before (none: it did not exist).
    Session(String, Option<sessions::StoredSession>),
    /// A served request, put back where it was.
    Request(usize, QueuedRequest),
    /// The identities and passwords as they were before this unit's first
    /// identity write.
    Identities(Vec<IdentityRecord>, HashMap<String, String>, i64),
    /// An assertion as it was before (none: it did not exist).
    Assertion(String, Option<AssertionRow>),
    /// An event, with this many deliveries.
    Event(usize),
    /// A flow as it was before (none: it did not exist).
    Flow(String, Option<crate::storage::StoredFlow>),
}

/// The tables, and the turn that units of work take on them.
#[derive(Default)]
struct Database {
    tables: Mutex<Tables>,
    busy: Mutex<bool>,
    idle: Condvar,
}

/// In-memory storage with the built-in directory.
#[derive(Clone, Default)]
pub struct MemoryStorage {
    database: Arc<Database>,
}

impl MemoryStorage {
    pub fn new() -> Self {
        Self::default()
    }

    fn tables(&self) -> MutexGuard<'_, Tables> {
        self.database
            .tables
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// A unit of work, once the one before it ended.
    pub fn begin(&self) -> Result<Box<dyn UnitOfWork>> {
        Ok(Box::new(self.turn()))
    }

    /// Waits for this thread's turn on the tables.
    fn turn(&self) -> MemoryWork {
        let mut busy = self.database.busy.lock().unwrap_or_else(|e| e.into_inner());
        while *busy {
            busy = self
                .database
                .idle
                .wait(busy)
                .unwrap_or_else(|e| e.into_inner());
        }
        *busy = true;
        MemoryWork {
            storage: self.clone(),
            undo: Vec::new(),
            committed: false,
        }
    }

    /// Runs one of the backend's own writes in its turn: it can't fail
    /// halfway, so it needs no undo.
    fn write<T>(&self, f: impl FnOnce(&mut Tables) -> T) -> T {
        let mut turn = self.turn();
        let out = f(&mut self.tables());
        turn.committed = true;
        out
    }

    /// Messages queued so far.
    pub fn outbox(&self) -> Vec<QueuedMail> {
        self.tables()
            .outbox
            .iter()
            .map(|m| m.mail.clone())
            .collect()
    }
}

impl Storage for MemoryStorage {
    /// Runs the job on the calling thread; its writes are settled at once.
    fn submit(&self, job: Job) {
        job(self.begin())(Ok(()));
    }
}

impl Backend for MemoryStorage {
    fn ping(&self) -> Result<()> {
        Ok(())
    }
}

struct MemoryWork {
    storage: MemoryStorage,
    undo: Vec<Undo>,
    committed: bool,
}

impl MemoryWork {
    fn tables(&self) -> MutexGuard<'_, Tables> {
        self.storage.tables()
    }

    /// Keeps what undoes this unit's identity writes, once.
    fn snapshot_identities(&mut self) {
        if !self.undo.iter().any(|u| matches!(u, Undo::Identities(..))) {
            let tables = self.storage.tables();
            let undo = Undo::Identities(
                tables.identities.clone(),
                tables.passwords.clone(),
                tables.next_pk,
            );
            drop(tables);
            self.undo.push(undo);
        }
    }

    fn update(&mut self, key: &str, change: impl FnOnce(&mut CredentialRecord)) {
        let mut tables = self.storage.tables();
        if let Some(record) = tables.credentials.get_mut(key) {
            self.undo
                .push(Undo::Credential(key.to_string(), Some(record.clone())));
            change(record);
        }
    }
}

impl Drop for MemoryWork {
    fn drop(&mut self) {
        if !self.committed {
            let mut tables = self.storage.tables();
            for undo in self.undo.drain(..).rev() {
                undo.apply(&mut tables);
            }
        }
        let mut busy = self
            .storage
            .database
            .busy
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *busy = false;
        self.storage.database.idle.notify_one();
    }
}

impl Undo {
    fn apply(self, tables: &mut Tables) {
        match self {
            Undo::Credential(key, Some(record)) => {
                tables.credentials.insert(key, record);
            }
            Undo::Credential(key, None) => {
                if let Some(record) = tables.credentials.remove(&key) {
                    tables.flows.remove(&record.credential.flow_id);
                    if let Some(keys) = tables.by_identity.get_mut(&record.credential.identity_id) {
                        keys.retain(|k| *k != key);
                    }
                }
            }
            Undo::Indexed(identity, key) => {
                tables.by_identity.entry(identity).or_default().push(key);
            }
            Undo::Outbox => {
                tables.outbox.pop();
            }
            Undo::Session(key, Some(session)) => {
                tables.sessions.insert(key, session);
            }
            Undo::Session(key, None) => {
                tables.sessions.remove(&key);
            }
            Undo::Request(at, request) => {
                tables.requests.insert(at, request);
            }
            Undo::Identities(identities, passwords, next_pk) => {
                tables.identities = identities;
                tables.passwords = passwords;
                tables.next_pk = next_pk;
            }
            Undo::Assertion(key, Some(row)) => {
                tables.assertions.insert(key, row);
            }
            Undo::Assertion(key, None) => {
                tables.assertions.remove(&key);
            }
            Undo::Flow(id, Some(flow)) => {
                tables.self_service_flows.insert(id, flow);
            }
            Undo::Flow(id, None) => {
                tables.self_service_flows.remove(&id);
            }
            Undo::Event(deliveries) => {
                tables.events.pop();
                let kept = tables.deliveries.len().saturating_sub(deliveries);
                tables.deliveries.truncate(kept);
            }
        }
    }
}

impl UnitOfWork for MemoryWork {
    fn commit(mut self: Box<Self>) -> Result<()> {
        self.committed = true;
        Ok(())
    }
}
