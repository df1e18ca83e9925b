//! The recovery session between a redemption and the new password: every
//! step re-reads the identity in the same unit of work that acts on the
//! session, so a session outlives neither a deactivation nor a deletion,
//! wherever the directory changed.

use super::{Error, Reclaim};
use crate::Identity;
use crate::storage::{Completed, UnitOfWork};

impl Reclaim {
    /// Whether the identity's session with `key` is live and the identity
    /// may still recover; a session whose identity may not is ended.
    pub fn recovery_session(&self, identity_id: &str, key: &str) -> crate::Pending<bool, Error> {
        let (identity_id, key) = (identity_id.to_owned(), key.to_owned());
        self.unit("recovery_session", move |mut work, now| {
            if !may_recover(work.get_by_id(&identity_id)?) {
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
        self.unit("complete_recovery", move |mut work, now| {
            if !may_recover(work.get_by_id(&identity_id)?) {
                end_session(work, &identity_id, now)?;
                return Ok(None);
            }
            match work.complete_session(&identity_id, &key, &hash, now)? {
                Some(completed) => {
                    work.commit()?;
                    Ok(Some(completed))
                }
                // Nothing of it stands: the unit is dropped.
                None => Ok(None),
            }
        })
    }
}

fn may_recover(identity: Option<Identity>) -> bool {
    identity.is_some_and(|i| i.active)
}

fn end_session(mut work: Box<dyn UnitOfWork>, identity_id: &str, now: u64) -> Result<(), Error> {
    work.end_sessions(identity_id, now)?;
    work.commit()?;
    Ok(())
}
