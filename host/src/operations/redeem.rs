//! Operations that redeem, check or revoke credentials, and the recovery
//! sessions a redemption opens.

use super::{Error, Reclaim, Revocation, on_success};
use crate::storage::{NewSession, Pending, UnitOfWork};
use crate::wit::{IdentityRef, Redemption};

impl Reclaim {
    /// Redeems a link token, once.
    pub fn redeem_link(&self, token: &str) -> Pending<Redemption, Error> {
        self.redeem_link_into(token, None)
    }

    /// Redeems a link token and, in the same transaction, opens `session`
    /// for its identity. Either way every other session of the identity
    /// ends: whoever redeemed an older credential loses what it gave them.
    pub fn redeem_link_into(
        &self,
        token: &str,
        session: Option<NewSession>,
    ) -> Pending<Redemption, Error> {
        let token = token.to_owned();
        self.submit_then(
            "redeem_link",
            None,
            move |guest, store| guest.call_redeem_link(store, &token),
            move |answer, work| on_success(answer, |r| replace_sessions(r, session, work)),
        )
    }

    /// Whether a link token would redeem now; consumes nothing.
    pub fn check_link(&self, token: &str) -> Pending<(), Error> {
        let token = token.to_owned();
        self.submit("check_link", None, move |guest, store| {
            guest.call_check_link(store, &token)
        })
    }

    /// Redeems a flow's code, once; wrong codes count against the flow.
    pub fn redeem_code(&self, flow_id: &str, code: &str) -> Pending<Redemption, Error> {
        self.redeem_code_into(flow_id, code, None)
    }

    /// Redeems a flow's code and opens `session`, as
    /// [`Reclaim::redeem_link_into`] does.
    pub fn redeem_code_into(
        &self,
        flow_id: &str,
        code: &str,
        session: Option<NewSession>,
    ) -> Pending<Redemption, Error> {
        let (flow_id, code) = (flow_id.to_owned(), code.to_owned());
        self.submit_then(
            "redeem_code",
            None,
            move |guest, store| guest.call_redeem_code(store, &flow_id, &code),
            move |answer, work| on_success(answer, |r| replace_sessions(r, session, work)),
        )
    }

    /// Revokes an identity's outstanding links and codes and ends its
    /// recovery session.
    pub fn revoke(&self, identity: &IdentityRef) -> Pending<Revocation, Error> {
        let identity = identity.clone();
        let now = self.clock.now_nanos();
        let by = identity.clone();
        self.submit_around(
            "revoke",
            None,
            // Ended here, to be counted: the component's revocation would end
            // it too (the storage import does), without saying so. A refusal
            // (no such identity) had no session to end.
            move |work| match work.get(&by)? {
                Some(identity) => work.end_sessions(&identity.id, now),
                None => Ok(0),
            },
            move |guest, store| guest.call_revoke(store, &identity),
            move |answer, _, sessions| {
                on_success(answer, |credentials| {
                    Ok(Revocation {
                        credentials,
                        sessions,
                    })
                })
            },
        )
    }
}

/// After a redemption: the new session (if any) opens. The older one has
/// ended already: a redemption revokes every other credential of the
/// identity, and the storage import ends the session with them (the WIT's
/// `revoke-identity`).
fn replace_sessions(
    redemption: Redemption,
    session: Option<NewSession>,
    work: &mut dyn UnitOfWork,
) -> anyhow::Result<Redemption> {
    if let Some(session) = session {
        work.open_session(
            &session,
            &redemption.identity_id,
            redemption.return_to.as_deref(),
        )?;
    }
    Ok(redemption)
}
