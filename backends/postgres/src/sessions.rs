//! Recovery sessions in PostgreSQL.

use anyhow::Result;

use super::PgWork;
use super::connection::Conn;
use super::credentials::{lock_identity, revoke_credentials};
use crate::storage::sessions::Completed;
use crate::storage::{LiveSession, NewSession, SessionStore, to_db};

/// Expires the identity's unredeemed assertions with its session, in the
/// unit's next round trip.
fn end_assertions(conn: &mut Conn, identity_id: &str, now: u64) -> Result<()> {
    conn.defer(
        "ending the recovery's assertions",
        "UPDATE recovery_assertions SET expires_at = $2
         WHERE identity_id = $1 AND used_at IS NULL AND expires_at > $2",
        vec![Box::new(identity_id.to_owned()), Box::new(to_db(now))],
    )
}

impl SessionStore for PgWork {
    fn open_session(
        &mut self,
        session: &NewSession,
        identity_id: &str,
        return_to: Option<&str>,
        address_key: Option<&str>,
    ) -> Result<()> {
        self.conn()?.defer(
            "opening the recovery session",
            "INSERT INTO recovery_sessions (identity_id, key, return_to, expires_at, address_key)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (identity_id) DO UPDATE
             SET key = EXCLUDED.key, return_to = EXCLUDED.return_to,
                 expires_at = EXCLUDED.expires_at, address_key = EXCLUDED.address_key",
            vec![
                Box::new(identity_id.to_owned()),
                Box::new(session.key.clone()),
                Box::new(return_to.map(str::to_owned)),
                Box::new(to_db(session.expires_at)),
                Box::new(address_key.map(str::to_owned)),
            ],
        )
    }

    fn end_sessions_quietly(&mut self, identity_id: &str, now: u64) -> Result<()> {
        let mut conn = self.conn()?;
        end_assertions(&mut conn, identity_id, now)?;
        conn.defer(
            "ending the recovery session",
            "DELETE FROM recovery_sessions WHERE identity_id = $1",
            vec![Box::new(identity_id.to_owned())],
        )
    }

    fn end_sessions(&mut self, identity_id: &str, now: u64) -> Result<u32> {
        let mut conn = self.conn()?;
        end_assertions(&mut conn, identity_id, now)?;
        let live = conn.query_opt(
            "DELETE FROM recovery_sessions WHERE identity_id = $1 RETURNING expires_at > $2",
            &[&identity_id, &to_db(now)],
        )?;
        Ok(u32::from(live.is_some_and(|row| row.get::<_, bool>(0))))
    }

    fn live_session(
        &mut self,
        identity_id: &str,
        key: &str,
        now: u64,
    ) -> Result<Option<LiveSession>> {
        Ok(self
            .conn()?
            .query_opt(
                "SELECT address_key FROM recovery_sessions
                 WHERE identity_id = $1 AND key = $2 AND expires_at > $3",
                &[&identity_id, &key, &to_db(now)],
            )?
            .map(|row| LiveSession {
                address_key: row.get(0),
            }))
    }

    fn complete_session(
        &mut self,
        identity_id: &str,
        key: &str,
        password_hash: &str,
        now: u64,
    ) -> Result<Option<Completed>> {
        let mut conn = self.conn()?;
        // Before the session's row: this unit revokes the identity's
        // credentials below, in the order every such unit keeps.
        lock_identity(&mut conn, identity_id)?;
        let ended = conn.query_opt(
            "DELETE FROM recovery_sessions
             WHERE identity_id = $1 AND key = $2 AND expires_at > $3
             RETURNING return_to",
            &[&identity_id, &key, &to_db(now)],
        )?;
        let Some(row) = ended else {
            return Ok(None);
        };
        // The platform's table is never written: its users' new passwords
        // are kept beside it (the caller checked the user exists).
        let stored = if self.on_platform() {
            conn.execute(
                "INSERT INTO platform_passwords (identity_id, password_hash, set_at)
                 VALUES ($2, $1, $3)
                 ON CONFLICT (identity_id) DO UPDATE
                 SET password_hash = EXCLUDED.password_hash, set_at = EXCLUDED.set_at",
                &[&password_hash, &identity_id, &to_db(now)],
            )?
        } else {
            conn.execute(
                "UPDATE identities SET password_hash = $1 WHERE id = $2",
                &[&password_hash, &identity_id],
            )?
        };
        if stored == 0 {
            // Dropped on `None`: the session's end goes with the unit.
            return Ok(None);
        }
        revoke_credentials(&mut conn, identity_id, None, now)?;
        Ok(Some(Completed {
            return_to: row.get(0),
        }))
    }
}
