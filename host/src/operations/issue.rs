//! Operations that issue credentials or send mail.

use super::{EmailOptions, Error, Reclaim};
use crate::storage::{Pending, QueuedRequest};
use crate::wit::{IdentityRef, Mailed, RecoveryCode, RecoveryLink};

impl Reclaim {
    /// Creates a recovery link (Kratos' `POST /admin/recovery/link`).
    pub fn create_link(
        &self,
        identity: &IdentityRef,
        expires_in: Option<&str>,
        return_to: Option<&str>,
    ) -> Pending<RecoveryLink, Error> {
        let (identity, expires_in, return_to) = owned(identity, expires_in, return_to);
        self.submit("create_link", move |guest, store| {
            guest.call_create_link(
                store,
                &identity,
                expires_in.as_deref(),
                return_to.as_deref(),
            )
        })
    }

    /// Creates a recovery code (Kratos' `POST /admin/recovery/code`).
    pub fn create_code(
        &self,
        identity: &IdentityRef,
        expires_in: Option<&str>,
        return_to: Option<&str>,
    ) -> Pending<RecoveryCode, Error> {
        let (identity, expires_in, return_to) = owned(identity, expires_in, return_to);
        self.submit("create_code", move |guest, store| {
            guest.call_create_code(
                store,
                &identity,
                expires_in.as_deref(),
                return_to.as_deref(),
            )
        })
    }

    /// Mails a recovery link (authentik's `recovery_email`).
    pub fn send_recovery_email(
        &self,
        identity: &IdentityRef,
        options: &EmailOptions<'_>,
    ) -> Pending<Mailed, Error> {
        // The mailer refuses a sender that is not one, as every host's does
        // (`reclaim_wire::mail::check_headers`).
        let sender = options.from.map(str::to_owned);
        let (identity, expires_in, template) =
            owned(identity, options.expires_in, options.template);
        let subject = options.subject.map(str::to_owned);
        self.submit("send_recovery_email", move |guest, store| {
            guest.call_send_recovery_email(
                store,
                &identity,
                expires_in.as_deref(),
                template.as_deref(),
                subject.as_deref(),
                sender.as_deref(),
            )
        })
    }

    /// Mails a recovery code with the link to its flow's code page.
    pub fn send_recovery_code(
        &self,
        identity: &IdentityRef,
        expires_in: Option<&str>,
    ) -> Pending<Mailed, Error> {
        let (identity, expires_in, _) = owned(identity, expires_in, None);
        self.submit("send_recovery_code", move |guest, store| {
            guest.call_send_recovery_code(store, &identity, expires_in.as_deref())
        })
    }

    /// A self-service request by address; succeeds alike for unknown ones.
    pub fn request_recovery(&self, email: &str, return_to: Option<&str>) -> Pending<(), Error> {
        let (email, return_to) = (email.to_owned(), return_to.map(str::to_owned));
        self.submit("request_recovery", move |guest, store| {
            guest.call_request_recovery(store, &email, return_to.as_deref())
        })
    }

    /// Serves a self-service request that waited in the storage's queue:
    /// the request and its removal from the queue are one transaction, so a
    /// request is served once, even across a crash.
    pub fn serve_queued_request(&self, request: QueuedRequest) -> Pending<(), Error> {
        let QueuedRequest {
            id,
            email,
            return_to,
            code_flow,
        } = request;
        self.submit_then(
            "serve_queued_request",
            move |guest, store| match &code_flow {
                Some(flow) => {
                    guest.call_request_recovery_code(store, &email, flow, return_to.as_deref())
                }
                None => guest.call_request_recovery(store, &email, return_to.as_deref()),
            },
            move |answer, work, _| {
                // Another process sharing the store served it first: this
                // unit's mail must not go out a second time.
                if !work.dequeue_request(id)? {
                    anyhow::bail!("request {id} was already served");
                }
                Ok(answer)
            },
        )
    }

    /// Queues the "your password was changed" notice.
    pub fn notify_password_changed(&self, identity: &IdentityRef) -> Pending<(), Error> {
        let identity = identity.clone();
        self.submit("notify_password_changed", move |guest, store| {
            guest.call_notify_password_changed(store, &identity)
        })
    }

    /// Queues the "your account was recovered" notice, for a recovery
    /// handed off to the platform.
    pub fn notify_account_recovered(&self, identity: &IdentityRef) -> Pending<(), Error> {
        let identity = identity.clone();
        self.submit("notify_account_recovered", move |guest, store| {
            guest.call_notify_account_recovered(store, &identity)
        })
    }
}

/// An operation runs on the storage's thread: its arguments move there.
fn owned(
    identity: &IdentityRef,
    a: Option<&str>,
    b: Option<&str>,
) -> (IdentityRef, Option<String>, Option<String>) {
    (identity.clone(), a.map(str::to_owned), b.map(str::to_owned))
}
