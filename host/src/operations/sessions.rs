//! The recovery session between a redemption and the new password: every
//! step re-reads the identity in the same unit of work that acts on the
//! session, so a session outlives neither a deactivation nor a deletion,
//! wherever the directory changed, and none sets the password of an
//! identity that `handoff` hands off (a second factor, or `handoff` mode).

use super::handoff::{Completion, hands_off};
use super::{Error, Reclaim, record};
use crate::events::{Event, EventType};
use crate::storage::{Completed, IdentityRecord, UnitOfWork};

impl Reclaim {
    /// Whether the identity's session with `key` is live and the identity
    /// may still recover; a session whose identity may not is ended.
    pub fn recovery_session(&self, identity_id: &str, key: &str) -> crate::Pending<bool, Error> {
        let (identity_id, key) = (identity_id.to_owned(), key.to_owned());
        let completion = self.completion;
        self.unit("recovery_session", move |mut work, now| {
            if !may_set_password(completion, work.identity_record_in(&identity_id)?.as_ref()) {
                end_session(work, &identity_id, now)?;
                return Ok(false);
            }
            Ok(work.session_is_live(&identity_id, &key, now)?)
        })
    }

    /// Stores the new password of the identity whose live session has
    /// `key`, ends the session and revokes the identity's links and codes,
    /// in one unit of work that first checks the identity still exists
    /// and is active. `None` when there is no live session, or the identity
    /// may no longer recover (its session then ends).
    pub fn complete_recovery(
        &self,
        identity_id: &str,
        key: &str,
        password_hash: &str,
    ) -> crate::Pending<Option<Completed>, Error> {
        let (identity_id, key, hash) = (
            identity_id.to_owned(),
            key.to_owned(),
            password_hash.to_owned(),
        );
        let (completion, events) = (self.completion, self.events.clone());
        self.unit("complete_recovery", move |mut work, now| {
            let identity = work.identity_record_in(&identity_id)?;
            if !may_set_password(completion, identity.as_ref()) {
                end_session(work, &identity_id, now)?;
                return Ok(None);
            }
            match work.complete_session(&identity_id, &key, &hash, now)? {
                Some(completed) => {
                    let mut event = Event::new(EventType::Completed, now)
                        .identity(&identity_id, identity.and_then(|r| r.external_id));
                    event.password_hash = Some(hash);
                    record(&events, &mut *work, event)?;
                    work.commit()?;
                    Ok(Some(completed))
                }
                // Nothing of it stands: the unit is dropped.
                None => Ok(None),
            }
        })
    }
}

/// Whether Reclaim may set this identity's password: it exists, is active,
/// and is not one that is handed off.
fn may_set_password(completion: Completion, identity: Option<&IdentityRecord>) -> bool {
    identity.is_some_and(|r| r.identity.active) && !hands_off(completion, identity)
}

fn end_session(mut work: Box<dyn UnitOfWork>, identity_id: &str, now: u64) -> Result<(), Error> {
    work.end_sessions(identity_id, now)?;
    work.commit()?;
    Ok(())
}
