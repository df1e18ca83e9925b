//! Recovery sessions in memory.

use anyhow::Result;

use super::{MemoryWork, Undo};
use crate::storage::sessions::Completed;
use crate::storage::{CredentialStore, LiveSession, NewSession, SessionStore};

#[derive(Clone)]
pub(super) struct StoredSession {
    key: String,
    expires_at: u64,
    return_to: Option<String>,
    address_key: Option<String>,
}

impl StoredSession {
    fn is_live(&self, key: &str, now: u64) -> bool {
        self.key == key && self.expires_at > now
    }
}

impl SessionStore for MemoryWork {
    fn open_session(
        &mut self,
        session: &NewSession,
        identity_id: &str,
        return_to: Option<&str>,
        address_key: Option<&str>,
    ) -> Result<()> {
        let stored = StoredSession {
            key: session.key.clone(),
            expires_at: session.expires_at,
            return_to: return_to.map(str::to_string),
            address_key: address_key.map(str::to_string),
        };
        let before = self
            .tables()
            .sessions
            .insert(identity_id.to_string(), stored);
        self.undo
            .push(Undo::Session(identity_id.to_string(), before));
        Ok(())
    }

    fn end_sessions(&mut self, identity_id: &str, now: u64) -> Result<u32> {
        self.end_assertions(identity_id, now);
        let ended = self.tables().sessions.remove(identity_id);
        let live = ended.as_ref().is_some_and(|s| s.expires_at > now);
        if let Some(session) = ended {
            self.undo
                .push(Undo::Session(identity_id.to_string(), Some(session)));
        }
        Ok(u32::from(live))
    }

    fn live_session(
        &mut self,
        identity_id: &str,
        key: &str,
        now: u64,
    ) -> Result<Option<LiveSession>> {
        Ok(self
            .tables()
            .sessions
            .get(identity_id)
            .filter(|s| s.is_live(key, now))
            .map(|s| LiveSession {
                address_key: s.address_key.clone(),
            }))
    }

    fn complete_session(
        &mut self,
        identity_id: &str,
        key: &str,
        password_hash: &str,
        now: u64,
    ) -> Result<Option<Completed>> {
        let live = self
            .tables()
            .sessions
            .get(identity_id)
            .is_some_and(|s| s.is_live(key, now));
        let exists = self
            .tables()
            .identities
            .iter()
            .any(|r| r.identity.id == identity_id);
        if !live || !exists {
            return Ok(None);
        }
        self.snapshot_identities();
        let session = self.tables().sessions.remove(identity_id);
        self.undo
            .push(Undo::Session(identity_id.to_string(), session.clone()));
        self.tables()
            .passwords
            .insert(identity_id.to_string(), password_hash.to_string());
        self.revoke_identity(identity_id, None, now)?;
        Ok(Some(Completed {
            return_to: session.and_then(|s| s.return_to),
        }))
    }
}
