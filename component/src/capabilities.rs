//! What the recovery logic needs from its host, as one trait: the component
//! implements it over the WIT imports, and a native build or a unit test can
//! implement it in-process.

use crate::bindings::reclaim::recovery::{
    directory,
    mailer::{self, Message},
    settings::{self, MailTemplate, Settings},
    storage::{self, ConsumeOutcome, Credential, CredentialKind, CredentialStatus},
    types::{Identity, IdentityRef},
};

/// The recovery logic's view of its host.
pub trait Capabilities {
    fn identity(&self, by: &IdentityRef) -> Option<Identity>;
    fn identity_by_email(&self, email: &str) -> Option<Identity>;
    fn insert(&self, credential: &Credential);
    fn consume(
        &self,
        keys: &[String],
        kind: CredentialKind,
        now: u64,
        max_failed: u32,
    ) -> ConsumeOutcome;
    fn find(&self, keys: &[String], kind: CredentialKind, now: u64) -> Option<CredentialStatus>;
    fn code_for_flow(&self, flow_id: &str, now: u64) -> Option<CredentialStatus>;
    fn record_failed_attempt(&self, flow_id: &str, max_failed: u32, now: u64) -> u32;
    fn identity_failed_attempts(&self, identity_id: &str, since: u64) -> u32;
    fn revoke_identity(&self, identity_id: &str, kind: Option<CredentialKind>, now: u64) -> u32;
    fn queue(&self, message: &Message) -> Result<(), String>;
    fn settings(&self) -> Settings;
    fn mail_template(&self, name: &str, locale: &str) -> Option<MailTemplate>;
    /// Nanoseconds since the Unix epoch.
    fn now(&self) -> u64;
    /// Cryptographically secure random bytes.
    fn fill_random(&self, buf: &mut [u8]);
}

/// The host as the component sees it: the WIT imports, plus WASI's wall
/// clock and random source (reached through std and getrandom, which the
/// wasm32-wasip2 target maps to `wasi:clocks/wall-clock` and
/// `wasi:random/random`).
pub struct WitImports;

impl Capabilities for WitImports {
    fn identity(&self, by: &IdentityRef) -> Option<Identity> {
        match by {
            IdentityRef::Id(id) => directory::get_by_id(id),
            IdentityRef::Pk(pk) => directory::get_by_pk(*pk),
        }
    }

    fn identity_by_email(&self, email: &str) -> Option<Identity> {
        directory::find_by_email(email)
    }

    fn insert(&self, credential: &Credential) {
        storage::insert(credential)
    }

    fn consume(
        &self,
        keys: &[String],
        kind: CredentialKind,
        now: u64,
        max_failed: u32,
    ) -> ConsumeOutcome {
        storage::consume(keys, kind, now, max_failed)
    }

    fn find(&self, keys: &[String], kind: CredentialKind, now: u64) -> Option<CredentialStatus> {
        storage::find(keys, kind, now)
    }

    fn code_for_flow(&self, flow_id: &str, now: u64) -> Option<CredentialStatus> {
        storage::code_for_flow(flow_id, now)
    }

    fn record_failed_attempt(&self, flow_id: &str, max_failed: u32, now: u64) -> u32 {
        storage::record_failed_attempt(flow_id, max_failed, now)
    }

    fn identity_failed_attempts(&self, identity_id: &str, since: u64) -> u32 {
        storage::identity_failed_attempts(identity_id, since)
    }

    fn revoke_identity(&self, identity_id: &str, kind: Option<CredentialKind>, now: u64) -> u32 {
        storage::revoke_identity(identity_id, kind, now)
    }

    fn queue(&self, message: &Message) -> Result<(), String> {
        mailer::queue(message)
    }

    fn settings(&self) -> Settings {
        settings::get()
    }

    fn mail_template(&self, name: &str, locale: &str) -> Option<MailTemplate> {
        settings::template(name, locale)
    }

    fn now(&self) -> u64 {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX)
    }

    fn fill_random(&self, buf: &mut [u8]) {
        // Without randomness no credential is safe to issue: trapping discards
        // the operation instead of issuing a guessable one.
        getrandom::fill(buf).expect("wasi:random/random failed");
    }
}
