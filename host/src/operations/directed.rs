//! A unit of work whose directory is an embedder's [`UserDirectory`]: every
//! other call goes to the backend's unit. Written by hand because each
//! trait of [`UnitOfWork`] must pass through, and the directory's writes
//! (the identity admin API's) are refused: the users are the embedder's.

use std::sync::Arc;

use anyhow::Result;

use crate::directory::{Directory, Identity, NewIdentity, UserDirectory};
use crate::mail::{Outbox, QueuedMail};
use crate::storage::identities::{IdentityRecord, IdentityStore, ManagedByPlatform};
use crate::storage::{
    AssertionRow, AssertionStore, Completed, CredentialStore, EventLog, LiveSession, NewAssertion,
    NewEvent, NewSession, RequestQueue, SessionStore, UnitOfWork,
};
use crate::wit::{ConsumeOutcome, Credential, CredentialKind, CredentialStatus};

pub(super) struct Directed {
    pub(super) work: Box<dyn UnitOfWork>,
    pub(super) users: Arc<dyn UserDirectory>,
}

impl UnitOfWork for Directed {
    fn commit(self: Box<Self>) -> Result<()> {
        self.work.commit()
    }
}

impl Directory for Directed {
    fn get_by_id(&mut self, id: &str) -> Result<Option<Identity>> {
        self.users.get_by_id(id)
    }
    fn get_by_pk(&mut self, pk: i64) -> Result<Option<Identity>> {
        self.users.get_by_pk(pk)
    }
    fn find_by_email(&mut self, email: &str) -> Result<Option<Identity>> {
        self.users.find_by_email(email)
    }
}

impl IdentityStore for Directed {
    fn identity_record_in(&mut self, id: &str) -> Result<Option<IdentityRecord>> {
        Ok(self
            .users
            .get_by_id(id)?
            .map(|identity| IdentityRecord::of_directory(identity, false)))
    }
    fn insert_identity(&mut self, _: &str, _: &NewIdentity, _: u64) -> Result<IdentityRecord> {
        Err(ManagedByPlatform.into())
    }
    fn replace_identity(
        &mut self,
        _: &str,
        _: &NewIdentity,
        _: u64,
    ) -> Result<Option<IdentityRecord>> {
        Err(ManagedByPlatform.into())
    }
    fn delete_identity(&mut self, _: &str) -> Result<bool> {
        Err(ManagedByPlatform.into())
    }
}

impl CredentialStore for Directed {
    fn insert(&mut self, credential: &Credential) -> Result<()> {
        self.work.insert(credential)
    }
    fn consume(
        &mut self,
        keys: &[String],
        kind: CredentialKind,
        now: u64,
        max_failed_attempts: u32,
    ) -> Result<ConsumeOutcome> {
        self.work.consume(keys, kind, now, max_failed_attempts)
    }
    fn find(
        &mut self,
        keys: &[String],
        kind: CredentialKind,
        now: u64,
    ) -> Result<Option<CredentialStatus>> {
        self.work.find(keys, kind, now)
    }
    fn code_for_flow(&mut self, flow_id: &str, now: u64) -> Result<Option<CredentialStatus>> {
        self.work.code_for_flow(flow_id, now)
    }
    fn record_failed_attempt(&mut self, flow_id: &str, max: u32, now: u64) -> Result<u32> {
        self.work.record_failed_attempt(flow_id, max, now)
    }
    fn identity_failed_attempts(&mut self, identity_id: &str, since: u64) -> Result<u32> {
        self.work.identity_failed_attempts(identity_id, since)
    }
    fn revoke_identity(
        &mut self,
        identity_id: &str,
        kind: Option<CredentialKind>,
        now: u64,
    ) -> Result<u32> {
        self.work.revoke_identity(identity_id, kind, now)
    }
}

impl Outbox for Directed {
    fn enqueue(&mut self, mail: &QueuedMail) -> Result<()> {
        self.work.enqueue(mail)
    }
}

impl SessionStore for Directed {
    fn open_session(
        &mut self,
        session: &NewSession,
        identity_id: &str,
        return_to: Option<&str>,
        address_key: Option<&str>,
    ) -> Result<()> {
        self.work
            .open_session(session, identity_id, return_to, address_key)
    }
    fn end_sessions(&mut self, identity_id: &str, now: u64) -> Result<u32> {
        self.work.end_sessions(identity_id, now)
    }
    fn end_sessions_quietly(&mut self, identity_id: &str, now: u64) -> Result<()> {
        self.work.end_sessions_quietly(identity_id, now)
    }
    fn live_session(
        &mut self,
        identity_id: &str,
        key: &str,
        now: u64,
    ) -> Result<Option<LiveSession>> {
        self.work.live_session(identity_id, key, now)
    }
    fn complete_session(
        &mut self,
        identity_id: &str,
        key: &str,
        password_hash: &str,
        now: u64,
    ) -> Result<Option<Completed>> {
        self.work
            .complete_session(identity_id, key, password_hash, now)
    }
}

impl RequestQueue for Directed {
    fn dequeue_request(&mut self, id: i64) -> Result<bool> {
        self.work.dequeue_request(id)
    }
}

impl AssertionStore for Directed {
    fn open_assertion(&mut self, assertion: &NewAssertion) -> Result<()> {
        self.work.open_assertion(assertion)
    }
    fn use_assertion(&mut self, key: &str, now: u64) -> Result<Option<AssertionRow>> {
        self.work.use_assertion(key, now)
    }
    fn assertion(&mut self, key: &str) -> Result<Option<AssertionRow>> {
        self.work.assertion(key)
    }
    fn purge_assertions(&mut self, before: u64) -> Result<u64> {
        self.work.purge_assertions(before)
    }
}

impl EventLog for Directed {
    fn record_event(&mut self, event: &NewEvent) -> Result<()> {
        self.work.record_event(event)
    }
}
