//! A unit of work whose directory is someone else's: [`DirectoryOverride`]
//! is any decorator that answers [`Directory`] and [`IdentityStore`] itself
//! and passes every other part of [`UnitOfWork`] to the unit it wraps (the
//! passing written here once); [`Directed`] is the one for an embedder's
//! [`UserDirectory`], whose writes (the identity admin API's) are refused:
//! the users are the embedder's.

use std::sync::Arc;

use anyhow::Result;

use super::identities::{IdentityRecord, IdentityStore, ManagedByPlatform};
use super::outbox::{Outbox, QueuedMail};
use super::{
    AssertionRow, AssertionStore, Completed, CredentialStore, EventLog, LiveSession, NewAssertion,
    NewEvent, NewSession, RequestQueue, SessionStore, UnitOfWork,
};
use crate::directory::{Directory, Identity, NewIdentity, UserDirectory};
use crate::wit::{ConsumeOutcome, Credential, CredentialKind, CredentialStatus};

/// A decorator of a unit of work's directory: it answers the directory's
/// reads and writes itself, and everything else goes to [`Self::inner`].
pub trait DirectoryOverride: Directory + IdentityStore + Send {
    /// The unit every other call goes to.
    fn inner(&mut self) -> &mut dyn UnitOfWork;
    /// Commits the unit it wraps.
    fn commit_inner(self: Box<Self>) -> Result<()>;
}

/// The backend's unit, with an embedder's users as its directory.
pub struct Directed {
    pub work: Box<dyn UnitOfWork>,
    pub users: Arc<dyn UserDirectory>,
}

impl DirectoryOverride for Directed {
    fn inner(&mut self) -> &mut dyn UnitOfWork {
        &mut *self.work
    }
    fn commit_inner(self: Box<Self>) -> Result<()> {
        self.work.commit()
    }
}

impl<D: DirectoryOverride + 'static> UnitOfWork for D {
    fn commit(self: Box<Self>) -> Result<()> {
        self.commit_inner()
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

impl<D: DirectoryOverride> CredentialStore for D {
    fn insert(&mut self, credential: &Credential) -> Result<()> {
        self.inner().insert(credential)
    }
    fn consume(
        &mut self,
        keys: &[String],
        kind: CredentialKind,
        now: u64,
        max_failed_attempts: u32,
    ) -> Result<ConsumeOutcome> {
        self.inner().consume(keys, kind, now, max_failed_attempts)
    }
    fn find(
        &mut self,
        keys: &[String],
        kind: CredentialKind,
        now: u64,
    ) -> Result<Option<CredentialStatus>> {
        self.inner().find(keys, kind, now)
    }
    fn code_for_flow(&mut self, flow_id: &str, now: u64) -> Result<Option<CredentialStatus>> {
        self.inner().code_for_flow(flow_id, now)
    }
    fn record_failed_attempt(&mut self, flow_id: &str, max: u32, now: u64) -> Result<u32> {
        self.inner().record_failed_attempt(flow_id, max, now)
    }
    fn identity_failed_attempts(&mut self, identity_id: &str, since: u64) -> Result<u32> {
        self.inner().identity_failed_attempts(identity_id, since)
    }
    fn revoke_identity(
        &mut self,
        identity_id: &str,
        kind: Option<CredentialKind>,
        now: u64,
    ) -> Result<u32> {
        self.inner().revoke_identity(identity_id, kind, now)
    }
}

impl<D: DirectoryOverride> Outbox for D {
    fn enqueue(&mut self, mail: &QueuedMail) -> Result<()> {
        self.inner().enqueue(mail)
    }
}

impl<D: DirectoryOverride> SessionStore for D {
    fn open_session(
        &mut self,
        session: &NewSession,
        identity_id: &str,
        return_to: Option<&str>,
        address_key: Option<&str>,
    ) -> Result<()> {
        self.inner()
            .open_session(session, identity_id, return_to, address_key)
    }
    fn end_sessions(&mut self, identity_id: &str, now: u64) -> Result<u32> {
        self.inner().end_sessions(identity_id, now)
    }
    fn end_sessions_quietly(&mut self, identity_id: &str, now: u64) -> Result<()> {
        self.inner().end_sessions_quietly(identity_id, now)
    }
    fn live_session(
        &mut self,
        identity_id: &str,
        key: &str,
        now: u64,
    ) -> Result<Option<LiveSession>> {
        self.inner().live_session(identity_id, key, now)
    }
    fn complete_session(
        &mut self,
        identity_id: &str,
        key: &str,
        password_hash: &str,
        now: u64,
    ) -> Result<Option<Completed>> {
        self.inner()
            .complete_session(identity_id, key, password_hash, now)
    }
}

impl<D: DirectoryOverride> super::FlowSteps for D {
    fn save_flow_step(
        &mut self,
        replace: Option<&super::StoredFlow>,
        insert: &[super::StoredFlow],
        put: &[super::StoredFlow],
    ) -> Result<bool> {
        self.inner().save_flow_step(replace, insert, put)
    }
}

impl<D: DirectoryOverride> RequestQueue for D {
    fn dequeue_request(&mut self, id: i64) -> Result<bool> {
        self.inner().dequeue_request(id)
    }
}

impl<D: DirectoryOverride> AssertionStore for D {
    fn open_assertion(&mut self, assertion: &NewAssertion) -> Result<()> {
        self.inner().open_assertion(assertion)
    }
    fn use_assertion(&mut self, key: &str, now: u64) -> Result<Option<AssertionRow>> {
        self.inner().use_assertion(key, now)
    }
    fn assertion(&mut self, key: &str) -> Result<Option<AssertionRow>> {
        self.inner().assertion(key)
    }
    fn purge_assertions(&mut self, before: u64) -> Result<u64> {
        self.inner().purge_assertions(before)
    }
}

impl<D: DirectoryOverride> EventLog for D {
    fn record_event(&mut self, event: &NewEvent) -> Result<()> {
        self.inner().record_event(event)
    }
}
