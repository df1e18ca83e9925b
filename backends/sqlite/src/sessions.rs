//! Recovery sessions in SQLite.

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, params};

use super::credentials::revoke_credentials;
use super::identities::set_password_hash;
use super::writer::SqliteWork;
use crate::storage::sessions::Completed;
use crate::storage::{LiveSession, NewSession, SessionStore, to_db};

impl SessionStore for SqliteWork {
    fn open_session(
        &mut self,
        session: &NewSession,
        identity_id: &str,
        return_to: Option<&str>,
        address_key: Option<&str>,
    ) -> Result<()> {
        self.conn()?
            .prepare_cached(
                "INSERT OR REPLACE INTO recovery_sessions (identity_id, key, return_to, expires_at, address_key)
                 VALUES (?, ?, ?, ?, ?)",
            )?
            .execute(params![
                identity_id,
                session.key,
                return_to,
                to_db(session.expires_at),
                address_key
            ])
            .context("opening the recovery session")?;
        Ok(())
    }

    fn end_sessions(&mut self, identity_id: &str, now: u64) -> Result<u32> {
        end_sessions(&*self.conn()?, identity_id, now)
    }

    fn live_session(
        &mut self,
        identity_id: &str,
        key: &str,
        now: u64,
    ) -> Result<Option<LiveSession>> {
        Ok(self
            .conn()?
            .prepare_cached(
                "SELECT address_key FROM recovery_sessions
                 WHERE identity_id = ? AND key = ? AND expires_at > ?",
            )?
            .query_row(params![identity_id, key, to_db(now)], |r| {
                Ok(LiveSession {
                    address_key: r.get(0)?,
                })
            })
            .optional()?)
    }

    fn complete_session(
        &mut self,
        identity_id: &str,
        key: &str,
        password_hash: &str,
        now: u64,
    ) -> Result<Option<Completed>> {
        let conn = self.conn()?;
        let ended = conn
            .prepare_cached(
                "DELETE FROM recovery_sessions
                 WHERE identity_id = ?1 AND key = ?2 AND expires_at > ?3
                 RETURNING return_to",
            )?
            .query_row(params![identity_id, key, to_db(now)], |r| {
                r.get::<_, Option<String>>(0)
            })
            .optional()?;
        let Some(return_to) = ended else {
            return Ok(None);
        };
        if !set_password_hash(&conn, identity_id, password_hash)? {
            // The unit is dropped on `None`: the session's end goes with it,
            // and the caller ends it on its own.
            return Ok(None);
        }
        revoke_credentials(&conn, identity_id, None, now)?;
        Ok(Some(Completed { return_to }))
    }
}

/// Ends (deletes) the identity's session and expires its unredeemed
/// assertions; counts the session if it was live at `now`.
fn end_sessions(conn: &Connection, identity_id: &str, now: u64) -> Result<u32> {
    conn.prepare_cached(
        "UPDATE recovery_assertions SET expires_at = ?2
         WHERE identity_id = ?1 AND used_at IS NULL AND expires_at > ?2",
    )?
    .execute(params![identity_id, to_db(now)])?;
    let live: Option<bool> = conn
        .prepare_cached(
            "DELETE FROM recovery_sessions WHERE identity_id = ? RETURNING expires_at > ?",
        )?
        .query_row(params![identity_id, to_db(now)], |r| r.get(0))
        .optional()?;
    Ok(u32::from(live == Some(true)))
}
