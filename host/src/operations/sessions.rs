//! The recovery session between a redemption and the new password: every
//! step re-reads the identity in the same unit of work that acts on the
//! session, so a session outlives neither a deactivation, a deletion nor a
//! new address, wherever the directory changed, and none sets the password
//! of an identity that `handoff` hands off (a second factor, or `handoff`
//! mode). [`may_set_password`] is the one rule, [`check`] the one reading.

use super::handoff::{Completion, hands_off, still_addressed};
use super::{Error, Reclaim, record};
use crate::events::{Event, EventType};
use crate::settings::Settings;
use crate::storage::{Completed, IdentityRecord, LiveSession, UnitOfWork};

impl Reclaim {
    /// Whether the identity's session with `key` is live and the identity
    /// may still recover; a session whose identity may not is ended.
    pub fn recovery_session(&self, identity_id: &str, key: &str) -> crate::Pending<bool, Error> {
        let (identity_id, key) = (identity_id.to_owned(), key.to_owned());
        let (completion, settings) = (self.completion, std::sync::Arc::clone(&self.settings));
        self.unit("recovery_session", move |mut work, now| {
            match check(&mut *work, completion, &settings, &identity_id, &key, now)? {
                Check::NoSession => Ok(false),
                Check::MayNot => end_session(work, &identity_id, now).map(|()| false),
                Check::Stands(_) => Ok(true),
            }
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
        let settings = std::sync::Arc::clone(&self.settings);
        self.unit("complete_recovery", move |mut work, now| {
            let identity = match check(&mut *work, completion, &settings, &identity_id, &key, now)?
            {
                Check::NoSession => return Ok(None),
                Check::MayNot => return end_session(work, &identity_id, now).map(|()| None),
                Check::Stands(identity) => identity,
            };
            match work.complete_session(&identity_id, &key, &hash, now)? {
                Some(completed) => {
                    let mut event = Event::new(EventType::Completed, now)
                        .identity(&identity_id, identity.external_id);
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

/// Where the identity's session with `key` stands, for the form and the
/// password step alike.
enum Check {
    /// No live session has that key.
    NoSession,
    /// The session is live, but its identity may no longer set a password:
    /// the caller ends it.
    MayNot,
    /// The session stands, for this identity as it is now.
    Stands(Box<IdentityRecord>),
}

fn check(
    work: &mut dyn UnitOfWork,
    completion: Completion,
    settings: &Settings,
    identity_id: &str,
    key: &str,
    now: u64,
) -> anyhow::Result<Check> {
    let Some(session) = work.live_session(identity_id, key, now)? else {
        return Ok(Check::NoSession);
    };
    let identity = work.identity_record_in(identity_id)?;
    Ok(
        match identity.filter(|r| may_set_password(completion, settings, &session, r)) {
            Some(identity) => Check::Stands(Box::new(identity)),
            None => Check::MayNot,
        },
    )
}

/// Whether Reclaim may set the password of the identity whose live
/// `session` this is: it exists, is active, is still at the address the
/// redeemed credential was issued for, and is not one that is handed off.
fn may_set_password(
    completion: Completion,
    settings: &Settings,
    session: &LiveSession,
    identity: &IdentityRecord,
) -> bool {
    identity.identity.active
        && still_addressed(settings, session.address_key.as_deref(), identity)
        && !hands_off(completion, Some(identity))
}

fn end_session(mut work: Box<dyn UnitOfWork>, identity_id: &str, now: u64) -> Result<(), Error> {
    work.end_sessions(identity_id, now)?;
    work.commit()?;
    Ok(())
}
