//! Redeeming, checking and revoking credentials.

use super::{Outcome, Recovery};
use crate::bindings::exports::reclaim::recovery::recovery::Redemption;
use crate::bindings::reclaim::recovery::{
    storage::{ConsumeOutcome, Credential, CredentialKind, CredentialState},
    types::{ErrorKind, IdentityRef},
};
use crate::capabilities::Capabilities;
use crate::errors::{
    error, inactive_credential, inactive_identity, readdressed_credential, too_many_attempts,
    too_many_identity_attempts, unknown_credential,
};
use crate::tokens;

impl<C: Capabilities> Recovery<'_, C> {
    pub fn check_link(&self, token: &str) -> Outcome<()> {
        if !tokens::is_token_shaped(token) {
            return Err(unknown_credential());
        }
        let keys = self.link_keys(token);
        let now = self.caps.now();
        let status = self
            .caps
            .find(&keys, CredentialKind::Link, now)
            .filter(|status| tokens::matches_any(&status.credential.key, &keys))
            .ok_or_else(unknown_credential)?;
        if status.state != CredentialState::Active {
            return Err(inactive_credential(status.state, "link"));
        }
        // What a redemption would answer for the identity, too.
        self.holder_may_recover(&status.credential)
    }

    pub fn redeem_link(&self, token: &str) -> Outcome<Redemption> {
        if !tokens::is_token_shaped(token) {
            return Err(unknown_credential());
        }
        let keys = self.link_keys(token);
        let now = self.caps.now();
        match self
            .caps
            .consume(&keys, CredentialKind::Link, now, u32::MAX)
        {
            ConsumeOutcome::Consumed(credential) if tokens::matches_any(&credential.key, &keys) => {
                self.finish_redemption(credential, now)
            }
            // A store that returned a record under another key is broken:
            // trapping discards the consumption.
            ConsumeOutcome::Consumed(_) => {
                panic!("storage consumed a credential under a key that was not asked for")
            }
            ConsumeOutcome::Unknown => Err(unknown_credential()),
            ConsumeOutcome::NotActive(state) => Err(inactive_credential(state, "link")),
        }
    }

    pub fn redeem_code(&self, flow_id: &str, code: &str) -> Outcome<Redemption> {
        if !tokens::is_uuid(flow_id) {
            return Err(error(ErrorKind::InvalidArgument, "\"flow\" must be a UUID"));
        }
        if !tokens::is_code_shaped(code) {
            return Err(error(
                ErrorKind::InvalidArgument,
                format!("\"code\" must be {} digits", tokens::CODE_DIGITS),
            ));
        }
        let now = self.caps.now();
        let max = self.settings.max_code_attempts;
        let status = self
            .caps
            .code_for_flow(flow_id, now)
            .ok_or_else(unknown_credential)?;
        if status.failed_attempts >= max {
            return Err(too_many_attempts());
        }
        if status.state != CredentialState::Active {
            return Err(inactive_credential(status.state, "code"));
        }
        // Every code of the identity counts against one cap as well, so that
        // more flows don't bring more guesses. Checked before the code is: a
        // right code past the cap would otherwise still tell a guesser it
        // was right.
        let identity_max = self.settings.max_code_attempts_per_identity;
        let since = now.saturating_sub(self.settings.code_attempt_window_ns);
        let identity_id = status.credential.identity_id.clone();
        let identity_failed = self.caps.identity_failed_attempts(&identity_id, since);
        if identity_failed >= identity_max {
            return Err(too_many_identity_attempts());
        }
        let keys: Vec<String> = self
            .settings
            .secrets
            .iter()
            .map(|s| tokens::code_key(s, flow_id, code))
            .collect();
        if !tokens::matches_any(&status.credential.key, &keys) {
            let failed = self.caps.record_failed_attempt(flow_id, max, now);
            if failed >= max {
                return Err(too_many_attempts());
            }
            if identity_failed + 1 >= identity_max {
                return Err(too_many_identity_attempts());
            }
            let left = (max - failed).min(identity_max - identity_failed - 1);
            return Err(error(
                ErrorKind::CodeIncorrect,
                format!(
                    "The recovery code is invalid or has already been used. {left} attempt{} left.",
                    if left == 1 { "" } else { "s" }
                ),
            ));
        }
        match self
            .caps
            .consume(&[status.credential.key], CredentialKind::Code, now, max)
        {
            ConsumeOutcome::Consumed(credential) => self.finish_redemption(credential, now),
            ConsumeOutcome::Unknown => Err(unknown_credential()),
            // Another caller's wrong codes ran the flow out meanwhile.
            ConsumeOutcome::NotActive(CredentialState::Revoked) => Err(too_many_attempts()),
            ConsumeOutcome::NotActive(state) => Err(inactive_credential(state, "code")),
        }
    }

    pub fn revoke(&self, who: &IdentityRef) -> Outcome<u32> {
        let identity = self.identity(who)?;
        Ok(self
            .caps
            .revoke_identity(&identity.id, None, self.caps.now()))
    }

    pub(super) fn finish_redemption(
        &self,
        credential: Credential,
        now: u64,
    ) -> Outcome<Redemption> {
        // A credential its holder may no longer use (the account disabled,
        // or its address changed since) stays used, but takes nothing else
        // with it: whoever holds an old mailbox must not be able to kill the
        // links the account's current address was sent.
        self.holder_may_recover(&credential)?;
        // Whoever holds one credential of an identity now holds the account:
        // every other way in dies with this one.
        self.caps
            .revoke_identity(&credential.identity_id, None, now);
        Ok(Redemption {
            identity_id: credential.identity_id,
            flow_id: credential.flow_id,
            return_to: credential.return_to,
        })
    }

    /// Whether the identity a credential recovers still exists, is active
    /// and still has the address the credential was issued for.
    pub(super) fn holder_may_recover(&self, credential: &Credential) -> Outcome<()> {
        match self
            .caps
            .identity(&IdentityRef::Id(credential.identity_id.clone()))
        {
            Some(identity) if !identity.active => Err(inactive_identity()),
            Some(identity) if !self.still_addressed(credential, &identity) => {
                Err(readdressed_credential())
            }
            Some(_) => Ok(()),
            None => Err(error(
                ErrorKind::IdentityNotFound,
                "The identity of this credential no longer exists.",
            )),
        }
    }
}
