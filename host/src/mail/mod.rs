//! Mail: the component's `mailer` import queues rendered messages in the
//! outbox, inside the operation's transaction; a courier delivers them later.

pub mod address;
#[cfg(feature = "smtp")]
pub mod courier;
#[cfg(feature = "smtp")]
pub mod eml;
pub mod outbox;
#[cfg(feature = "smtp")]
pub mod smtp;

use anyhow::Result;
use serde::Serialize;

use crate::wit::Message;

#[cfg(feature = "smtp")]
pub use courier::{Courier, DeliveryError, EmlDirectory, RetryPolicy, Transport};
pub use outbox::{Attempt, MailStatus, MailSummary, OutboxStatus, OutboxStore};
#[cfg(feature = "smtp")]
pub use smtp::SmtpRelay;

/// A message in the outbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueuedMail {
    /// Outbox id (a UUID); also the local part of the `Message-ID`, so a
    /// message delivered twice after a crash is recognisably the same.
    pub id: String,
    pub to: String,
    pub to_name: Option<String>,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    /// The template that produced it.
    pub template: String,
    /// Sender, when not the courier's default (`Name <address>`).
    pub sender: Option<String>,
    /// When it was queued, in nanoseconds since the Unix epoch.
    pub queued_at: u64,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// The recovery flow whose credential the message carries: revoked if
    /// the message is abandoned.
    pub flow_id: Option<String>,
    /// The identity the message is about, and its external id, for the
    /// `recovery.email.*` events.
    pub identity_id: Option<String>,
    pub external_id: Option<String>,
}

/// The outbox side of a unit of work.
pub trait Outbox {
    /// Adds a message to the outbox, in the current transaction.
    fn enqueue(&mut self, mail: &QueuedMail) -> Result<()>;
}

/// Checks a message before it is queued and fits its recipient's name to
/// one header line; the error is safe to show (`reclaim_wire::mail`, the
/// rule the SQL provider applies too).
pub fn check(message: &Message) -> std::result::Result<Option<String>, String> {
    reclaim_wire::mail::check_headers(&message.to, message.to_name.as_deref(), &message.subject)
        .map_err(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(to: &str, name: Option<&str>, subject: &str) -> Message {
        Message {
            to: to.into(),
            to_name: name.map(Into::into),
            subject: subject.into(),
            text_body: "t".into(),
            html_body: "h".into(),
            template: "recovery-link".into(),
            flow_id: None,
        }
    }

    #[test]
    fn well_formed_messages_pass() {
        assert_eq!(
            check(&message("a@example.com", Some("Ann"), "Hi")),
            Ok(Some("Ann".into()))
        );
    }

    #[test]
    fn header_injection_is_refused() {
        assert!(check(&message("a@example.com\r\nBcc: x@y", None, "Hi")).is_err());
        assert!(check(&message("a@example.com", Some("Ann\r\nBcc: x@y"), "Hi")).is_err());
        assert!(check(&message("a@example.com", None, "Hi\nBcc: x@y")).is_err());
        assert!(check(&message("not an address", None, "Hi")).is_err());
        assert!(check(&message("a@[127.0.0.1]", None, "Hi")).is_err());
    }
}
