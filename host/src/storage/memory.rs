//! Storage in memory: for embedders' tests and for benchmarks that measure
//! the engine without a disk. Units of work run one at a time and undo
//! their writes when dropped uncommitted, as the SQLite backend's do.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use anyhow::Result;

use super::{
    CredentialStore, Job, NewSession, QueuedRequest, RequestQueue, SessionStore, Storage,
    UnitOfWork,
};
use crate::directory::{Directory, Identity, NewIdentity};
use crate::mail::{Outbox, QueuedMail};
use crate::wit::{ConsumeOutcome, Credential, CredentialKind, CredentialState, CredentialStatus};

#[derive(Clone)]
struct Row {
    credential: Credential,
    used: bool,
    revoked: bool,
    failed_attempts: u32,
}

impl Row {
    fn status(&self, now: u64) -> CredentialStatus {
        CredentialStatus {
            credential: self.credential.clone(),
            state: self.state(now),
            failed_attempts: self.failed_attempts,
        }
    }

    fn state(&self, now: u64) -> CredentialState {
        if self.used {
            CredentialState::Used
        } else if self.revoked {
            CredentialState::Revoked
        } else if self.credential.expires_at <= now {
            CredentialState::Expired
        } else {
            CredentialState::Active
        }
    }
}

#[derive(Default)]
struct State {
    identities: Vec<Identity>,
    credentials: HashMap<String, Row>,
    flows: HashMap<String, String>,
    by_identity: HashMap<String, Vec<String>>,
    outbox: Vec<QueuedMail>,
    /// Recovery sessions by identity: the key and when it expires.
    sessions: HashMap<String, (String, u64)>,
    /// Self-service requests waiting to be served, oldest first.
    requests: Vec<QueuedRequest>,
    next_request: i64,
}

/// What undoes one write.
enum Undo {
    Credential(String, Option<Row>),
    /// A key pruned from an identity's index of active credentials.
    Indexed(String, String),
    Outbox,
    /// A session as it was before (none: it did not exist).
    Session(String, Option<(String, u64)>),
    /// A served request, put back where it was.
    Request(usize, QueuedRequest),
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    busy: Mutex<bool>,
    idle: Condvar,
}

/// In-memory storage with the built-in directory.
#[derive(Clone, Default)]
pub struct MemoryStorage {
    shared: Arc<Shared>,
}

impl MemoryStorage {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an identity.
    pub fn create_identity(&self, new: &NewIdentity) -> Identity {
        let mut state = self.state();
        let identity = Identity {
            id: uuid::Uuid::new_v4().hyphenated().to_string(),
            pk: state.identities.len() as i64 + 1,
            email: new.email.clone(),
            display_name: new.display_name.clone(),
            locale: new.locale.clone(),
            active: new.active,
        };
        state.identities.push(identity.clone());
        identity
    }

    /// Messages queued so far.
    pub fn outbox(&self) -> Vec<QueuedMail> {
        self.state().outbox.clone()
    }
}

impl Storage for MemoryStorage {
    /// Runs the job on the calling thread; its writes are settled at once.
    fn submit(&self, job: Job) {
        job(self.begin())(Ok(()));
    }
}

impl MemoryStorage {
    /// A unit of work, once the one before it ended.
    pub fn begin(&self) -> Result<Box<dyn UnitOfWork>> {
        let mut busy = self.shared.busy.lock().unwrap_or_else(|e| e.into_inner());
        while *busy {
            busy = self
                .shared
                .idle
                .wait(busy)
                .unwrap_or_else(|e| e.into_inner());
        }
        *busy = true;
        Ok(Box::new(MemoryWork {
            storage: self.clone(),
            undo: Vec::new(),
            committed: false,
        }))
    }
}

struct MemoryWork {
    storage: MemoryStorage,
    undo: Vec<Undo>,
    committed: bool,
}

impl MemoryWork {
    fn update(&mut self, key: &str, change: impl FnOnce(&mut Row)) {
        let mut state = self.storage.state();
        if let Some(row) = state.credentials.get_mut(key) {
            self.undo
                .push(Undo::Credential(key.to_string(), Some(row.clone())));
            change(row);
        }
    }
}

impl Drop for MemoryWork {
    fn drop(&mut self) {
        if !self.committed {
            let mut state = self.storage.state();
            for undo in self.undo.drain(..).rev() {
                match undo {
                    Undo::Credential(key, Some(row)) => {
                        state.credentials.insert(key, row);
                    }
                    Undo::Credential(key, None) => {
                        if let Some(row) = state.credentials.remove(&key) {
                            state.flows.remove(&row.credential.flow_id);
                            if let Some(keys) =
                                state.by_identity.get_mut(&row.credential.identity_id)
                            {
                                keys.retain(|k| *k != key);
                            }
                        }
                    }
                    Undo::Indexed(identity, key) => {
                        state.by_identity.entry(identity).or_default().push(key);
                    }
                    Undo::Outbox => {
                        state.outbox.pop();
                    }
                    Undo::Session(key, Some(session)) => {
                        state.sessions.insert(key, session);
                    }
                    Undo::Session(key, None) => {
                        state.sessions.remove(&key);
                    }
                    Undo::Request(at, request) => {
                        state.requests.insert(at, request);
                    }
                }
            }
        }
        let mut busy = self
            .storage
            .shared
            .busy
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *busy = false;
        self.storage.shared.idle.notify_one();
    }
}

impl UnitOfWork for MemoryWork {
    fn commit(mut self: Box<Self>) -> Result<()> {
        self.committed = true;
        Ok(())
    }
}

impl CredentialStore for MemoryWork {
    fn insert(&mut self, credential: &Credential) -> Result<()> {
        let mut state = self.storage.state();
        let key = credential.key.clone();
        state.flows.insert(credential.flow_id.clone(), key.clone());
        state
            .by_identity
            .entry(credential.identity_id.clone())
            .or_default()
            .push(key.clone());
        state.credentials.insert(
            key.clone(),
            Row {
                credential: credential.clone(),
                used: false,
                revoked: false,
                failed_attempts: 0,
            },
        );
        self.undo.push(Undo::Credential(key, None));
        Ok(())
    }

    fn consume(
        &mut self,
        keys: &[String],
        kind: CredentialKind,
        now: u64,
        max_failed: u32,
    ) -> Result<ConsumeOutcome> {
        let found = {
            let state = self.storage.state();
            keys.iter().find_map(|k| {
                state
                    .credentials
                    .get(k)
                    .filter(|r| r.credential.kind == kind)
                    .map(|r| (k.clone(), r.clone()))
            })
        };
        let Some((key, row)) = found else {
            return Ok(ConsumeOutcome::Unknown);
        };
        Ok(match row.state(now) {
            CredentialState::Active if row.failed_attempts < max_failed => {
                self.update(&key, |r| r.used = true);
                ConsumeOutcome::Consumed(row.credential)
            }
            CredentialState::Active => ConsumeOutcome::NotActive(CredentialState::Revoked),
            state => ConsumeOutcome::NotActive(state),
        })
    }

    fn find(
        &mut self,
        keys: &[String],
        kind: CredentialKind,
        now: u64,
    ) -> Result<Option<CredentialStatus>> {
        let state = self.storage.state();
        Ok(keys
            .iter()
            .filter_map(|key| state.credentials.get(key))
            .find(|row| row.credential.kind == kind)
            .map(|row| row.status(now)))
    }

    fn code_for_flow(&mut self, flow_id: &str, now: u64) -> Result<Option<CredentialStatus>> {
        let state = self.storage.state();
        Ok(state
            .flows
            .get(flow_id)
            .and_then(|key| state.credentials.get(key))
            .filter(|row| row.credential.kind == CredentialKind::Code)
            .map(|row| row.status(now)))
    }

    fn record_failed_attempt(&mut self, flow_id: &str, max_failed: u32, _now: u64) -> Result<u32> {
        let key = self.storage.state().flows.get(flow_id).cloned();
        let Some(key) = key else {
            return Ok(max_failed);
        };
        let mut count = max_failed;
        self.update(&key, |row| {
            row.failed_attempts += 1;
            if row.failed_attempts >= max_failed && !row.used {
                row.revoked = true;
            }
            count = row.failed_attempts;
        });
        Ok(count)
    }

    fn revoke_identity(
        &mut self,
        identity_id: &str,
        kind: Option<CredentialKind>,
        now: u64,
    ) -> Result<u32> {
        // The index keeps only active credentials: inactive ones are pruned
        // here, so revoking costs what the identity has outstanding, not
        // everything it ever had.
        let (revoke, pruned) = {
            let mut state = self.storage.state();
            let State {
                by_identity,
                credentials,
                ..
            } = &mut *state;
            let keys = by_identity.entry(identity_id.to_string()).or_default();
            let mut revoke = Vec::new();
            let mut pruned = Vec::new();
            keys.retain(|key| match credentials.get(key) {
                Some(row) if row.state(now) == CredentialState::Active => {
                    if kind.is_none_or(|kind| kind == row.credential.kind) {
                        revoke.push(key.clone());
                    }
                    true
                }
                _ => {
                    pruned.push(key.clone());
                    false
                }
            });
            (revoke, pruned)
        };
        self.undo.extend(
            pruned
                .into_iter()
                .map(|key| Undo::Indexed(identity_id.to_string(), key)),
        );
        for key in &revoke {
            self.update(key, |row| row.revoked = true);
        }
        Ok(revoke.len() as u32)
    }
}

impl Directory for MemoryWork {
    fn get_by_id(&mut self, id: &str) -> Result<Option<Identity>> {
        Ok(self
            .storage
            .state()
            .identities
            .iter()
            .find(|i| i.id == id)
            .cloned())
    }

    fn get_by_pk(&mut self, pk: i64) -> Result<Option<Identity>> {
        Ok(self
            .storage
            .state()
            .identities
            .iter()
            .find(|i| i.pk == pk)
            .cloned())
    }

    fn find_by_email(&mut self, email: &str) -> Result<Option<Identity>> {
        Ok(self
            .storage
            .state()
            .identities
            .iter()
            .find(|i| {
                i.email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(email))
            })
            .cloned())
    }
}

impl Outbox for MemoryWork {
    fn enqueue(&mut self, mail: &QueuedMail) -> Result<()> {
        self.storage.state().outbox.push(mail.clone());
        self.undo.push(Undo::Outbox);
        Ok(())
    }
}

impl SessionStore for MemoryWork {
    fn open_session(
        &mut self,
        session: &NewSession,
        identity_id: &str,
        _return_to: Option<&str>,
    ) -> Result<()> {
        let before = self.storage.state().sessions.insert(
            identity_id.to_string(),
            (session.key.clone(), session.expires_at),
        );
        self.undo
            .push(Undo::Session(identity_id.to_string(), before));
        Ok(())
    }

    fn end_sessions(&mut self, identity_id: &str, now: u64) -> Result<u32> {
        let ended = self.storage.state().sessions.remove(identity_id);
        let live = ended.as_ref().is_some_and(|(_, expires)| *expires > now);
        if let Some(session) = ended {
            self.undo
                .push(Undo::Session(identity_id.to_string(), Some(session)));
        }
        Ok(u32::from(live))
    }
}

impl RequestQueue for MemoryWork {
    fn dequeue_request(&mut self, id: i64) -> Result<bool> {
        let mut state = self.storage.state();
        let Some(at) = state.requests.iter().position(|r| r.id == id) else {
            return Ok(false);
        };
        let request = state.requests.remove(at);
        self.undo.push(Undo::Request(at, request));
        Ok(true)
    }
}

impl MemoryStorage {
    /// Queues a self-service request.
    pub fn queue_request(&self, email: &str, return_to: Option<&str>) -> QueuedRequest {
        let mut state = self.state();
        state.next_request += 1;
        let request = QueuedRequest {
            id: state.next_request,
            email: email.to_string(),
            return_to: return_to.map(str::to_string),
        };
        state.requests.push(request.clone());
        request
    }

    /// The requests still queued.
    pub fn queued_requests(&self) -> Vec<QueuedRequest> {
        self.state().requests.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{Settings, parse_secrets};
    use crate::{Engine, Error, IdentityRef, Reclaim};

    fn reclaim(storage: &MemoryStorage) -> Reclaim {
        let secrets = parse_secrets("memory-test-secret-0123456789abcdef0123").unwrap();
        Reclaim::new(
            Engine::embedded().unwrap(),
            Arc::new(storage.clone()),
            Settings::new("https://id.test", secrets),
        )
    }

    /// Storage holding one identity, and an engine over it.
    fn with_ann() -> (MemoryStorage, Identity, Reclaim) {
        let storage = MemoryStorage::new();
        let ann = storage.create_identity(&NewIdentity {
            email: Some("ann@example.com".into()),
            active: true,
            ..Default::default()
        });
        let reclaim = reclaim(&storage);
        (storage, ann, reclaim)
    }

    #[test]
    fn links_redeem_once_through_the_component() {
        let (_, ann, reclaim) = with_ann();
        let link = reclaim
            .create_link(&IdentityRef::Pk(ann.pk), None, None)
            .unwrap();
        let token = link.link.split("token=").nth(1).unwrap();
        assert_eq!(reclaim.redeem_link(token).unwrap().identity_id, ann.id);
        assert!(matches!(reclaim.redeem_link(token), Err(Error::Refused(_))));
    }

    #[test]
    fn a_queued_request_is_served_once_even_when_two_servers_take_it() {
        let (storage, _, reclaim) = with_ann();
        let request = storage.queue_request("ann@example.com", None);
        reclaim
            .nonblocking()
            .serve_queued_request(request.clone())
            .wait()
            .unwrap();
        let again = reclaim.nonblocking().serve_queued_request(request).wait();
        assert!(matches!(again, Err(Error::Failed(_))), "{again:?}");
        assert_eq!(storage.outbox().len(), 1, "the second serving was undone");
        assert!(storage.queued_requests().is_empty());
    }

    #[test]
    fn uncommitted_work_is_undone() {
        let (storage, ann, reclaim) = with_ann();
        let link = reclaim
            .create_link(&IdentityRef::Id(ann.id.clone()), None, None)
            .unwrap();
        let token = link.link.split("token=").nth(1).unwrap().to_string();
        {
            let mut work = storage.begin().unwrap();
            work.revoke_identity(&ann.id, None, 0).unwrap();
            work.enqueue(&QueuedMail {
                id: "m".into(),
                to: "ann@example.com".into(),
                to_name: None,
                subject: "s".into(),
                text_body: "t".into(),
                html_body: "h".into(),
                template: "recovery-link".into(),
                sender: None,
                queued_at: 0,
                attempts: 0,
                flow_id: None,
            })
            .unwrap();
        }
        assert!(storage.outbox().is_empty());
        assert!(
            reclaim.redeem_link(&token).is_ok(),
            "the revocation was undone"
        );
    }
}
