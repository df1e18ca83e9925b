//! The recovery operations, written against [`Capabilities`] so that the
//! same logic runs inside the component and natively: issuing credentials
//! (`issue`), mailing them and notices (`notify`), and redeeming or revoking
//! them (`redeem`). This file holds what they share.

mod issue;
mod notify;
mod redeem;

use crate::bindings::reclaim::recovery::{
    storage::{Credential, CredentialKind},
    types::{ErrorKind, Identity, IdentityRef, RecoveryError},
};
use crate::capabilities::Capabilities;
use crate::durations::parse_lifespan;
use crate::errors::{error, inactive_identity};
use crate::settings::Effective;
use crate::tokens;

pub(crate) type Outcome<T> = Result<T, RecoveryError>;

/// One operation's view of the host and its settings.
pub struct Recovery<'a, C: Capabilities> {
    caps: &'a C,
    settings: Effective,
}

impl<'a, C: Capabilities> Recovery<'a, C> {
    /// Reads the settings once per operation, with their defaults, checked.
    pub fn new(caps: &'a C) -> Outcome<Self> {
        let settings = Effective::of(caps.settings())?;
        Ok(Self { caps, settings })
    }

    /// A link token's key under every secret, newest first.
    pub(super) fn link_keys(&self, token: &str) -> Vec<String> {
        self.settings
            .secrets
            .iter()
            .map(|s| tokens::link_key(s, token))
            .collect()
    }

    pub(super) fn lifespan(&self, expires_in: Option<&str>) -> Outcome<u64> {
        match expires_in {
            None => Ok(self.settings.default_lifespan_ns),
            Some(text) => parse_lifespan(text, self.settings.max_lifespan_ns)
                .map_err(|e| error(ErrorKind::InvalidArgument, e.message(text))),
        }
    }

    pub(super) fn identity(&self, who: &IdentityRef) -> Outcome<Identity> {
        if let IdentityRef::Id(id) = who
            && !tokens::is_uuid(id)
        {
            return Err(error(
                ErrorKind::InvalidArgument,
                "\"identity_id\" must be a UUID",
            ));
        }
        self.caps.identity(who).ok_or_else(|| {
            let shown = match who {
                IdentityRef::Id(id) => id.clone(),
                IdentityRef::Pk(pk) => pk.to_string(),
            };
            error(
                ErrorKind::IdentityNotFound,
                format!("Unable to locate the identity {shown}."),
            )
        })
    }

    pub(super) fn active_identity(&self, who: &IdentityRef) -> Outcome<Identity> {
        let identity = self.identity(who)?;
        if identity.active {
            Ok(identity)
        } else {
            Err(inactive_identity())
        }
    }

    pub(super) fn new_credential(
        &self,
        identity: &Identity,
        kind: CredentialKind,
        lifespan: u64,
        return_to: Option<String>,
        flow_id: Option<String>,
        key: impl FnOnce(&[u8], &str) -> String,
    ) -> Credential {
        // A flow the caller drew (`request-recovery-code`), else a new one.
        let flow_id = flow_id.unwrap_or_else(|| tokens::draw_flow_id(&mut self.random()));
        let now = self.caps.now();
        let secret = &self.settings.secrets[0];
        Credential {
            key: key(secret, &flow_id),
            address_key: address_of(identity)
                .map(|address| reclaim_address::address_key(secret, address)),
            kind,
            identity_id: identity.id.clone(),
            flow_id,
            issued_at: now,
            expires_at: now.saturating_add(lifespan),
            return_to,
        }
    }

    /// Stores a new credential, after revoking the identity's older ones when
    /// it replaces them.
    pub(super) fn store(&self, identity: &Identity, credential: &Credential, replaces_older: bool) {
        if replaces_older {
            self.caps
                .revoke_identity(&identity.id, None, credential.issued_at);
        }
        self.caps.insert(credential);
    }

    /// Whether `identity` still has the address `credential` was issued
    /// for (under any secret, so rotation keeps outstanding links).
    pub(super) fn still_addressed(&self, credential: &Credential, identity: &Identity) -> bool {
        reclaim_address::still_addressed(
            &self.settings.secrets,
            credential.address_key.as_deref(),
            identity.email.as_deref(),
        )
    }

    pub(super) fn random(&self) -> impl FnMut(&mut [u8]) + '_ {
        |buf| self.caps.fill_random(buf)
    }
}

/// The identity's address, if it has one: a directory may answer an empty
/// string for none.
pub(super) fn address_of(identity: &Identity) -> Option<&str> {
    reclaim_address::present(identity.email.as_deref())
}
