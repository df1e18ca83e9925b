//! The hand-off: a redemption in the pages that ends in the platform, with a
//! single-use assertion its server redeems, rather than in Reclaim's
//! password form. [`hands_off`] is the one rule of when: always in
//! `handoff` mode, and in `password` mode for an identity with a second
//! factor, so that a reset never bypasses it (OWASP ASVS 5.0 V6.4.3).

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{Error, Reclaim, record, refusal};
use crate::ErrorKind;
use crate::events::{Event, EventType, Events, Method};
use crate::runtime::Observed;
use crate::settings::Settings;
use crate::storage::assertions::{self, Taken};
use crate::storage::{IdentityRecord, NewAssertion, NewSession, UnitOfWork};
use crate::wit::Redemption;

/// How long an assertion may wait for the platform's server by default.
pub const ASSERTION_LIFESPAN: Duration = Duration::from_secs(5 * 60);

/// How a redemption in the pages ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Completion {
    /// Reclaim's new-password form (but for identities with a second factor).
    #[default]
    Password,
    /// A redirect to the platform with an assertion; no password form.
    Handoff,
}

/// Where a redemption in the pages leads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The recovery session opened: on to the password form.
    Session,
    /// Handed off: the assertion goes to the platform, once.
    HandedOff { assertion: String },
}

/// A redemption in the pages, and where it leads.
#[derive(Clone, Debug)]
pub struct Redeemed {
    pub redemption: Redemption,
    pub method: Method,
    pub step: Step,
}

/// A redeemed assertion, as `POST /admin/recovery/assertions` answers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Assertion {
    pub identity_id: String,
    /// The platform's own id of the identity, if it has one.
    pub external_id: Option<String>,
    /// How the person proved control: `link` or `code`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "link"))]
    pub method: Method,
    pub flow_id: String,
    /// When the link or code was redeemed (RFC 3339).
    pub redeemed_at: String,
    /// Whether the account has a second factor: the platform must check it
    /// before it lets the person in.
    pub second_factor: bool,
}

/// Whether `identity` is still at the address whose key a session or an
/// assertion remembers (the one rule, `reclaim_address::still_addressed`,
/// that the component applies to credentials).
pub(crate) fn still_addressed(
    settings: &Settings,
    address_key: Option<&str>,
    identity: &IdentityRecord,
) -> bool {
    let secrets: Vec<&[u8]> = settings.secrets.iter().map(|s| s.bytes()).collect();
    reclaim_address::still_addressed(&secrets, address_key, identity.identity.email.as_deref())
}

/// Whether a redemption of `identity` ends in the platform.
pub(crate) fn hands_off(completion: Completion, identity: Option<&IdentityRecord>) -> bool {
    completion == Completion::Handoff || identity.is_some_and(|r| r.second_factor)
}

/// The stored forms of an assertion, one per hashing secret (newest
/// first): HMAC-SHA256, so a database dump holds none that works.
fn assertion_keys(settings: &Settings, assertion: &str) -> Vec<String> {
    settings
        .secrets
        .iter()
        .map(|secret| {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.bytes())
                .expect("HMAC takes keys of any length");
            mac.update(b"reclaim/assertion/");
            mac.update(assertion.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        })
        .collect()
}

/// The rule for what follows a redemption in the pages, and its events,
/// in the redemption's unit of work.
pub(super) struct Continuation {
    pub(super) completion: Completion,
    pub(super) lifespan: Duration,
    pub(super) settings: std::sync::Arc<Settings>,
    pub(super) events: Events,
    pub(super) now: u64,
}

impl Continuation {
    /// Records the redemption and, for the pages (`session` given), opens
    /// the session or the assertion that `hands_off` picks. The older
    /// session has ended already: a redemption revokes every other
    /// credential of the identity, and the storage import ends the session
    /// with them (the WIT's `revoke-identity`).
    pub(super) fn after(
        self,
        redemption: Redemption,
        method: Method,
        session: Option<NewSession>,
        work: &mut dyn UnitOfWork,
        observed: &Observed,
    ) -> anyhow::Result<Redeemed> {
        // The component read the identity to check it; what it read is
        // what this redemption stands on.
        let identity = match observed.record_of(&redemption.identity_id) {
            Some(record) => Some(record.clone()),
            None => work.identity_record_in(&redemption.identity_id)?,
        };
        let event = Event::new(EventType::Redeemed, self.now)
            .flow(&redemption.flow_id, method)
            .identity(
                &redemption.identity_id,
                identity.as_ref().and_then(|r| r.external_id.clone()),
            );
        record(&self.events, work, event)?;
        // What the redeemed credential remembers of the address: the
        // session or assertion stands only while the identity is there.
        let address_key = observed
            .consumed
            .as_ref()
            .filter(|c| c.flow_id == redemption.flow_id)
            .and_then(|c| c.address_key.clone());
        let step = match session {
            None => Step::Session,
            Some(_) if hands_off(self.completion, identity.as_ref()) => {
                let mut raw = [0u8; 32];
                getrandom::fill(&mut raw)
                    .map_err(|_| anyhow::anyhow!("no randomness for an assertion"))?;
                let assertion = hex::encode(raw);
                let key = assertion_keys(&self.settings, &assertion)
                    .into_iter()
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("no hashing secret"))?;
                work.open_assertion(&NewAssertion {
                    key,
                    identity_id: redemption.identity_id.clone(),
                    method,
                    flow_id: redemption.flow_id.clone(),
                    redeemed_at: self.now,
                    expires_at: self
                        .now
                        .saturating_add(crate::clock::duration_nanos(self.lifespan)),
                    address_key,
                })?;
                Step::HandedOff { assertion }
            }
            Some(session) => {
                work.open_session(
                    &session,
                    &redemption.identity_id,
                    redemption.return_to.as_deref(),
                    address_key.as_deref(),
                )?;
                Step::Session
            }
        };
        Ok(Redeemed {
            redemption,
            method,
            step,
        })
    }
}

impl Reclaim {
    /// How redemptions in the pages end.
    pub fn completion(&self) -> Completion {
        self.completion
    }

    pub(super) fn continuation(&self) -> Continuation {
        Continuation {
            completion: self.completion,
            lifespan: self.assertion_lifespan,
            settings: std::sync::Arc::clone(&self.settings),
            events: self.events.clone(),
            now: self.clock.now_nanos(),
        }
    }

    /// Redeems a hand-off assertion, once: of any number of concurrent
    /// calls, on any number of replicas, one gets it. A used or expired one
    /// is a 410, an unknown one a 404.
    pub fn redeem_assertion(&self, assertion: &str) -> crate::Pending<Assertion, Error> {
        let keys = assertion_keys(&self.settings, assertion);
        let (settings, events) = (std::sync::Arc::clone(&self.settings), self.events.clone());
        self.unit("redeem_assertion", move |mut work, now| {
            let row = match assertions::take(&mut *work, &keys, now)? {
                Taken::Redeemed(row) => row,
                Taken::Used => return Err(gone("The recovery assertion was already redeemed.")),
                Taken::Expired => {
                    return Err(gone(
                        "The recovery assertion has expired, or its recovery was ended.",
                    ));
                }
                Taken::Unknown => {
                    return Err(refusal(
                        ErrorKind::CredentialUnknown,
                        404,
                        "The requested resource could not be found.",
                        "No recovery assertion matches.",
                    ));
                }
            };
            // The recovery it ends must still stand: the identity exists,
            // is active and is at the address the credential was issued
            // for. Refused, it is used all the same: nothing fails open.
            let identity = work
                .identity_record_in(&row.identity_id)?
                .filter(|r| r.identity.active)
                .filter(|r| still_addressed(&settings, row.address_key.as_deref(), r));
            let Some(identity) = identity else {
                work.commit()?;
                return Err(gone(
                    "The recovery this assertion ended no longer stands: the account was \
                     deleted, deactivated or given another address.",
                ));
            };
            let external_id = identity.external_id.clone();
            let event = Event::new(EventType::HandedOff, now)
                .flow(&row.flow_id, row.method)
                .identity(&row.identity_id, external_id.clone());
            record(&events, &mut *work, event)?;
            work.commit()?;
            Ok(Assertion {
                identity_id: row.identity_id,
                external_id,
                method: row.method,
                flow_id: row.flow_id,
                redeemed_at: crate::clock::rfc3339(row.redeemed_at),
                second_factor: identity.second_factor,
            })
        })
    }
}

fn gone(message: &str) -> Error {
    refusal(
        ErrorKind::CredentialUsed,
        410,
        "The requested resource is no longer available.",
        message,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::parse_secrets;

    #[test]
    fn assertions_are_stored_under_a_keyed_hash_for_every_secret() {
        let settings = Settings::new(
            "https://id.example.test",
            parse_secrets(
                "a-hashing-secret-of-at-least-32-bytes,another-hashing-secret-of-32-bytes!",
            )
            .unwrap(),
        );
        let keys = assertion_keys(&settings, "abc");
        assert_eq!(keys.len(), 2);
        assert_ne!(keys[0], keys[1]);
        assert!(keys.iter().all(|k| k.len() == 64 && !k.contains("abc")));
        assert_eq!(keys, assertion_keys(&settings, "abc"));
    }

    #[test]
    fn a_second_factor_is_always_handed_off() {
        let mut record = IdentityRecord::of_directory(
            crate::Identity {
                id: "i".into(),
                pk: 1,
                email: None,
                display_name: None,
                locale: None,
                active: true,
            },
            false,
        );
        assert!(!hands_off(Completion::Password, Some(&record)));
        assert!(hands_off(Completion::Handoff, Some(&record)));
        record.second_factor = true;
        assert!(hands_off(Completion::Password, Some(&record)));
    }
}
