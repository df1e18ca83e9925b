//! Operations that redeem, check or revoke credentials; what a redemption
//! in the pages leads to is `handoff`'s rule.

use super::handoff::Redeemed;
use super::{Error, Reclaim, Revocation, about, on_success, record};
use crate::events::{Event, EventType, Method};
use crate::storage::{FlowStep, NewSession, Pending, UnitOfWork};
use crate::wit::{IdentityRef, Redemption};

impl Reclaim {
    /// Redeems a link token, once.
    pub fn redeem_link(&self, token: &str) -> Pending<Redemption, Error> {
        let token = token.to_owned();
        let next = self.continuation();
        self.submit_then(
            "redeem_link",
            move |guest, store| guest.call_redeem_link(store, &token),
            move |answer, work, observed| {
                on_success(answer, |r| {
                    Ok(next
                        .after(r, Method::Link, None, work, observed)?
                        .redemption)
                })
            },
        )
    }

    /// Redeems a link token in the pages and, in the same transaction,
    /// opens `session` for its identity or hands the recovery off (see
    /// `handoff`). Either way every other session of the identity ends:
    /// whoever redeemed an older credential loses what it gave them.
    /// `ending` names what the redemption writes of the self-service flows
    /// it ends (the flow's new state, the settings flow), given where it
    /// led: written in the same transaction, and if the flow moved on
    /// meanwhile, nothing of the redemption is kept.
    pub fn redeem_link_into(
        &self,
        token: &str,
        session: NewSession,
        ending: impl FnOnce(&Redeemed) -> FlowStep + Send + 'static,
    ) -> Pending<Redeemed, Error> {
        let token = token.to_owned();
        let next = self.continuation();
        self.submit_then(
            "redeem_link",
            move |guest, store| guest.call_redeem_link(store, &token),
            move |answer, work, observed| {
                on_success(answer, |r| {
                    let redeemed = next.after(r, Method::Link, Some(session), work, observed)?;
                    write_ending(work, ending(&redeemed))?;
                    Ok(redeemed)
                })
            },
        )
    }

    /// Whether a link token would redeem now; consumes nothing.
    pub fn check_link(&self, token: &str) -> Pending<(), Error> {
        let token = token.to_owned();
        self.submit("check_link", move |guest, store| {
            guest.call_check_link(store, &token)
        })
    }

    /// Redeems a flow's code, once; wrong codes count against the flow.
    pub fn redeem_code(&self, flow_id: &str, code: &str) -> Pending<Redemption, Error> {
        let (flow_id, code) = (flow_id.to_owned(), code.to_owned());
        let next = self.continuation();
        self.submit_then(
            "redeem_code",
            move |guest, store| guest.call_redeem_code(store, &flow_id, &code),
            move |answer, work, observed| {
                on_success(answer, |r| {
                    Ok(next
                        .after(r, Method::Code, None, work, observed)?
                        .redemption)
                })
            },
        )
    }

    /// Redeems a flow's code in the pages or the flow API, as
    /// [`Reclaim::redeem_link_into`] does.
    pub fn redeem_code_into(
        &self,
        flow_id: &str,
        code: &str,
        session: NewSession,
        ending: impl FnOnce(&Redeemed) -> FlowStep + Send + 'static,
    ) -> Pending<Redeemed, Error> {
        let (flow_id, code) = (flow_id.to_owned(), code.to_owned());
        let next = self.continuation();
        self.submit_then(
            "redeem_code",
            move |guest, store| guest.call_redeem_code(store, &flow_id, &code),
            move |answer, work, observed| {
                on_success(answer, |r| {
                    let redeemed = next.after(r, Method::Code, Some(session), work, observed)?;
                    write_ending(work, ending(&redeemed))?;
                    Ok(redeemed)
                })
            },
        )
    }

    /// Revokes an identity's outstanding links and codes and ends its
    /// recovery session.
    pub fn revoke(&self, identity: &IdentityRef) -> Pending<Revocation, Error> {
        let identity = identity.clone();
        let now = self.clock.now_nanos();
        let by = identity.clone();
        let events = self.events.clone();
        self.submit_around(
            "revoke",
            // Ended here, to be counted: the component's revocation would end
            // it too (the storage import does), without saying so. A refusal
            // (no such identity) had no session to end.
            move |work| match work.get(&by)? {
                Some(identity) => Ok(Some((
                    identity.id.clone(),
                    work.end_sessions(&identity.id, now)?,
                ))),
                None => Ok(None),
            },
            move |guest, store| guest.call_revoke(store, &identity),
            move |answer, work, ended, observed| {
                on_success(answer, |credentials| {
                    let (id, sessions) = ended.unwrap_or_default();
                    let event = Event::new(EventType::Revoked, now)
                        .detail("credentials", credentials)
                        .detail("sessions", sessions);
                    let event = about(work, observed, event, &id)?;
                    record(&events, work, event)?;
                    Ok(Revocation {
                        credentials,
                        sessions,
                    })
                })
            },
        )
    }
}

/// A redemption's flows, in its unit: a flow that moved on meanwhile fails
/// the unit (nothing of the redemption is kept; the credential stays).
fn write_ending(work: &mut dyn UnitOfWork, step: FlowStep) -> anyhow::Result<()> {
    if step.is_empty() {
        return Ok(());
    }
    if !work.save_flow_step(step.replace.as_ref(), &step.insert, &step.put)? {
        anyhow::bail!("the self-service flow moved on while its credential was redeemed");
    }
    Ok(())
}
