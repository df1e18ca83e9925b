//! Recovery sessions: what carries a person from a redeemed credential to
//! the new-password form.

use anyhow::Result;

/// A recovery session to open.
#[derive(Clone, Debug)]
pub struct NewSession {
    /// SHA-256 of the cookie's secret, so the store never holds a usable one.
    pub key: String,
    /// When the session ends if nothing ends it sooner.
    pub expires_at: u64,
}

/// Sessions inside a unit of work, beside the credentials they were opened
/// with: a session is only as alive as the recovery that opened it. An
/// identity has at most one: a newer redemption replaces it, and everything
/// that ends a recovery (a new password, a revocation) ends it, in the same
/// transaction.
pub trait SessionStore {
    /// Opens the session of the identity whose credential was just
    /// redeemed, replacing any it had.
    fn open_session(
        &mut self,
        session: &NewSession,
        identity_id: &str,
        return_to: Option<&str>,
    ) -> Result<()>;
    /// Ends the identity's session; returns how many were live at `now`
    /// (0 or 1).
    fn end_sessions(&mut self, identity_id: &str, now: u64) -> Result<u32>;
}

/// A session that ended with a new password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completed {
    /// Where the person goes next, as the redeemed credential said.
    pub return_to: Option<String>,
}

/// Sessions as the new-password form uses them.
pub trait Sessions {
    /// Whether the identity's session is live at `now` and has `key`.
    fn session_is_live(&self, identity_id: &str, key: &str, now: u64) -> Result<bool>;

    /// Ends the identity's live session with `key` and stores the new
    /// password hash, in one transaction that also revokes its outstanding
    /// links and codes: a new password closes every way in that was opened
    /// before it. `None` when the session is not live.
    fn complete_session(
        &self,
        identity_id: &str,
        key: &str,
        password_hash: &str,
        now: u64,
    ) -> Result<Option<Completed>>;
}
