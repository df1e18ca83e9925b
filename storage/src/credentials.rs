//! Credentials: the component's `storage` import, and the rule that says
//! where a stored credential stands, shared by every backend. The Rust
//! backends keep statements of their own rather than the SQL provider's
//! (`providers/sql`, which the Python and Node.js packages run): measured
//! through the same engine, the provider's path did half the pairs per
//! second once the disk's sync stopped dominating (BENCHMARKS.md, "The Rust
//! host through the SQL provider"). `tests/guests/storage-contract` holds
//! both to the same behaviour.

use anyhow::Result;

use crate::wit::{ConsumeOutcome, Credential, CredentialKind, CredentialState, CredentialStatus};

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
    /// Wrong codes of the identity's code credentials whose latest wrong
    /// code came after `since` (see the WIT docs: exclusive per identity
    /// from here to the end of the unit).
    fn identity_failed_attempts(&mut self, identity_id: &str, since: u64) -> Result<u32>;
    fn revoke_identity(
        &mut self,
        identity_id: &str,
        kind: Option<CredentialKind>,
        now: u64,
    ) -> Result<u32>;
}

/// A stored credential with what has happened to it.
#[derive(Clone, Debug)]
pub struct CredentialRecord {
    pub credential: Credential,
    pub used: bool,
    pub revoked: bool,
    pub failed_attempts: u32,
    /// When its latest wrong code came (0: never).
    pub last_failed_at: u64,
}

impl CredentialRecord {
    /// A credential just issued.
    pub fn issued(credential: Credential) -> Self {
        Self {
            credential,
            used: false,
            revoked: false,
            failed_attempts: 0,
            last_failed_at: 0,
        }
    }

    /// Where it stands at `now` (`reclaim_rules::standing`: the first
    /// thing that happened to it is the reason it no longer works).
    pub fn state_at(&self, now: u64) -> CredentialState {
        state(reclaim_rules::standing(
            self.used,
            self.revoked,
            self.credential.expires_at,
            now,
        ))
    }

    /// The credential and where it stands at `now`.
    pub fn status_at(self, now: u64) -> CredentialStatus {
        CredentialStatus {
            state: self.state_at(now),
            credential: self.credential,
            failed_attempts: self.failed_attempts,
        }
    }

    /// Whether it can be consumed at `now`, or why not: an active flow over
    /// its attempt limit is dead, as if revoked.
    pub fn consumable_at(&self, now: u64, max_failed_attempts: u32) -> Result<(), CredentialState> {
        let standing =
            reclaim_rules::standing(self.used, self.revoked, self.credential.expires_at, now);
        reclaim_rules::consumable(standing, self.failed_attempts, max_failed_attempts)
            .map_err(state)
    }

    /// What `consume` answers for this record when it did not consume it.
    pub fn not_consumed(&self, now: u64, max_failed_attempts: u32) -> ConsumeOutcome {
        ConsumeOutcome::NotActive(
            self.consumable_at(now, max_failed_attempts)
                .err()
                .unwrap_or(CredentialState::Revoked),
        )
    }
}

/// The WIT's name for a standing.
fn state(standing: reclaim_rules::Standing) -> CredentialState {
    match standing {
        reclaim_rules::Standing::Active => CredentialState::Active,
        reclaim_rules::Standing::Used => CredentialState::Used,
        reclaim_rules::Standing::Revoked => CredentialState::Revoked,
        reclaim_rules::Standing::Expired => CredentialState::Expired,
    }
}

/// The name a credential kind is stored under.
pub fn kind_name(kind: CredentialKind) -> &'static str {
    match kind {
        CredentialKind::Link => "link",
        CredentialKind::Code => "code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(expires_at: u64) -> CredentialRecord {
        CredentialRecord::issued(Credential {
            key: "k".into(),
            kind: CredentialKind::Code,
            identity_id: "i".into(),
            flow_id: "f".into(),
            issued_at: 0,
            expires_at,
            return_to: None,
            address_key: None,
        })
    }

    #[test]
    fn the_first_thing_that_happened_is_the_state() {
        let mut r = record(10);
        assert_eq!(r.state_at(9), CredentialState::Active);
        assert_eq!(
            r.state_at(10),
            CredentialState::Expired,
            "expiry is exclusive"
        );
        r.revoked = true;
        assert_eq!(r.state_at(20), CredentialState::Revoked);
        r.used = true;
        assert_eq!(r.state_at(20), CredentialState::Used);
    }

    #[test]
    fn an_active_flow_over_its_attempts_counts_as_revoked() {
        let mut r = record(10);
        assert_eq!(r.consumable_at(0, 5), Ok(()));
        r.failed_attempts = 5;
        assert_eq!(r.consumable_at(0, 5), Err(CredentialState::Revoked));
    }
}
