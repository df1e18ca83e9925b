//! The identity admin API's writes, and the one rule of what a change to an
//! identity ends: deactivating it, deleting it or changing its address
//! revokes its links and codes and ends its recovery session in the same
//! unit of work as the change, and a changed address gets a notice at the
//! old one. (Changes made in a platform's own table are caught at
//! redemption instead: the component checks the identity, and the address
//! a credential was issued for, every time.)

use std::sync::Arc;

use super::{Error, Reclaim, count, record, refusal};
use crate::directory::NewIdentity;
use crate::events::{Event, EventType, Events};
use crate::storage::identities::{Conflict, ManagedByPlatform};
use crate::storage::{IdentityRecord, Pending, UnitOfWork};
use crate::wit::IdentityRef;
use crate::{ErrorKind, Identity};

impl Reclaim {
    /// Adds an identity (Kratos' `POST /admin/identities`).
    pub fn create_identity(&self, new: NewIdentity) -> Pending<IdentityRecord, Error> {
        let events = self.events.clone();
        self.unit("create_identity", move |mut work, now| {
            checked(&new)?;
            let id = uuid::Uuid::new_v4().hyphenated().to_string();
            let created = work.insert_identity(&id, &new, now).map_err(conflict)?;
            changed(
                &events,
                &mut *work,
                EventType::IdentityCreated,
                &created,
                now,
            )?;
            work.commit()?;
            Ok(created)
        })
    }

    /// Replaces every field of an identity but its id and pk (Kratos'
    /// `PUT /admin/identities/{id}`; `PATCH` computes the replacement).
    pub fn update_identity(&self, id: &str, new: NewIdentity) -> Pending<IdentityRecord, Error> {
        let id = id.to_owned();
        let (runtime, settings, clock) = (
            self.runtime.clone(),
            Arc::clone(&self.settings),
            Arc::clone(&self.clock),
        );
        let events = self.events.clone();
        self.unit("update_identity", move |mut work, now| {
            checked(&new)?;
            let old = work
                .identity_record_in(&id)?
                .ok_or_else(|| not_found(&id))?;
            let record = work
                .replace_identity(&id, &new, now)
                .map_err(conflict)?
                .ok_or_else(|| not_found(&id))?;
            let readdressed = !same_address(&old.identity, &record.identity);
            let deactivated = old.identity.active && !record.identity.active;
            if readdressed || deactivated {
                end_recovery(&mut *work, &id, now)?;
            }
            let event = changed_event(EventType::IdentityUpdated, &record, now)
                .detail("address_changed", readdressed)
                .detail("active", record.identity.active);
            super::record(&events, &mut *work, event)?;
            let old_address = old.identity.email.filter(|_| readdressed);
            let Some(old_address) = old_address else {
                work.commit()?;
                return Ok(record);
            };
            // The notice is rendered by the component, in the identity's
            // language, and queued in this unit: no change without it.
            let who = IdentityRef::Id(id.clone());
            let (answer, work, _) = runtime.run(work, settings, clock, |guest, store| {
                guest.call_notify_address_changed(store, &who, &old_address)
            });
            match answer {
                Ok(Ok(())) => {
                    work.commit()?;
                    count("notify_address_changed", "ok");
                    Ok(record)
                }
                Ok(Err(refused)) => Err(Error::Refused(refused)),
                Err(trap) => Err(Error::Failed(trap)),
            }
        })
    }

    /// Deletes an identity, its password, links, codes and session.
    pub fn delete_identity(&self, id: &str) -> Pending<(), Error> {
        let id = id.to_owned();
        let events = self.events.clone();
        self.unit("delete_identity", move |mut work, now| {
            let old = work.identity_record_in(&id)?;
            end_recovery(&mut *work, &id, now)?;
            if !work.delete_identity(&id).map_err(conflict)? {
                return Err(not_found(&id));
            }
            if let Some(old) = old {
                changed(&events, &mut *work, EventType::IdentityDeleted, &old, now)?;
            }
            work.commit()?;
            Ok(())
        })
    }

    /// Ends the identity's recovery session (Kratos'
    /// `DELETE /admin/identities/{id}/sessions`); how many were live.
    pub fn end_identity_sessions(&self, id: &str) -> Pending<u32, Error> {
        let id = id.to_owned();
        self.unit("end_identity_sessions", move |mut work, now| {
            if work.get_by_id(&id)?.is_none() {
                return Err(not_found(&id));
            }
            let ended = work.end_sessions(&id, now)?;
            work.commit()?;
            Ok(ended)
        })
    }
}

/// The `identity.*` event of a change to `identity`.
fn changed_event(kind: EventType, identity: &IdentityRecord, now: u64) -> Event {
    Event::new(kind, now).identity(&identity.identity.id, identity.external_id.clone())
}

fn changed(
    events: &Events,
    work: &mut dyn UnitOfWork,
    kind: EventType,
    identity: &IdentityRecord,
    now: u64,
) -> anyhow::Result<()> {
    record(events, work, changed_event(kind, identity, now))
}

/// Every way into the account that is open ends: links, codes, session.
fn end_recovery(work: &mut dyn UnitOfWork, id: &str, now: u64) -> anyhow::Result<()> {
    work.revoke_identity(id, None, now)?;
    work.end_sessions(id, now)?;
    Ok(())
}

/// Addresses compare as the directory looks them up: in their normal form.
fn same_address(old: &Identity, new: &Identity) -> bool {
    let normal = |i: &Identity| crate::storage::identities::email_normal(i.email.as_deref());
    normal(old) == normal(new)
}

fn checked(new: &NewIdentity) -> Result<(), Error> {
    new.check().map_err(|e| {
        refusal(
            ErrorKind::InvalidArgument,
            400,
            "The request was malformed or contained invalid parameters.",
            format!("{e:#}"),
        )
    })
}

fn not_found(id: &str) -> Error {
    refusal(
        ErrorKind::IdentityNotFound,
        404,
        "The requested identity could not be found.",
        format!("Unable to locate the identity {id}."),
    )
}

/// A taken address or external id, or a directory the platform manages,
/// as the 409 it is; other failures as they are.
pub(crate) fn conflict(e: anyhow::Error) -> Error {
    if let Some(conflict) = e.downcast_ref::<Conflict>() {
        return refusal(
            ErrorKind::InvalidArgument,
            409,
            "A resource with this identifier already exists.",
            conflict.to_string(),
        );
    }
    if let Some(managed) = e.downcast_ref::<ManagedByPlatform>() {
        return refusal(
            ErrorKind::InvalidArgument,
            409,
            "The request could not be executed because of a conflict.",
            managed.to_string(),
        );
    }
    Error::Failed(e)
}
