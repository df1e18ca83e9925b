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

/// A live session, as the steps after a redemption check it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveSession {
    /// The address key of the credential that opened it.
    pub address_key: Option<String>,
}

/// Sessions inside a unit of work, beside the credentials they were opened
/// with: a session is only as alive as the recovery that opened it. An
/// identity has at most one: a newer redemption replaces it, and everything
/// that ends a recovery (a new password, a revocation) ends it, in the same
/// transaction. A hand-off assertion is the same recovery's other ending,
/// so ending the sessions ends the identity's unredeemed assertions too.
pub trait SessionStore {
    /// Opens the session of the identity whose credential was just
    /// redeemed, replacing any it had. `address_key` is the credential's
    /// (the WIT's `credential.address-key`): the session stands only while
    /// the identity is still at that address.
    fn open_session(
        &mut self,
        session: &NewSession,
        identity_id: &str,
        return_to: Option<&str>,
        address_key: Option<&str>,
    ) -> Result<()>;
    /// Ends the identity's session and its unredeemed hand-off assertions
    /// (they expire at `now`); returns how many sessions were live at `now`
    /// (0 or 1).
    fn end_sessions(&mut self, identity_id: &str, now: u64) -> Result<u32>;

    /// [`Self::end_sessions`] for a caller that does not need the count,
    /// which lets a backend send it without waiting for its answer.
    fn end_sessions_quietly(&mut self, identity_id: &str, now: u64) -> Result<()> {
        self.end_sessions(identity_id, now).map(drop)
    }

    /// The identity's session, if it is live at `now` and has `key`.
    fn live_session(
        &mut self,
        identity_id: &str,
        key: &str,
        now: u64,
    ) -> Result<Option<LiveSession>>;

    /// Ends the identity's live session with `key` and stores the new
    /// password hash, revoking its outstanding links and codes in the same
    /// unit: a new password closes every way in that was opened before it.
    /// `None` (and nothing written) when the session is not live or the
    /// identity has no row to take the password. Whether the identity may
    /// still recover is the caller's to check first, in the same unit
    /// (`operations/sessions.rs`).
    fn complete_session(
        &mut self,
        identity_id: &str,
        key: &str,
        password_hash: &str,
        now: u64,
    ) -> Result<Option<Completed>>;
}

/// A session that ended with a new password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completed {
    /// Where the person goes next, as the redeemed credential said.
    pub return_to: Option<String>,
}
