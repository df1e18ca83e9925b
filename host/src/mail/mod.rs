//! Mail: the component's `mailer` import queues rendered messages in the
//! outbox (`storage::outbox`), inside the operation's transaction; a courier
//! delivers them later. This module owns the checks and the delivery.

pub mod address;
#[cfg(feature = "smtp")]
pub mod courier;
#[cfg(feature = "smtp")]
pub mod eml;
#[cfg(feature = "smtp")]
pub mod smtp;

use crate::wit::Message;

#[cfg(feature = "smtp")]
pub use courier::{Courier, DeliveryError, EmlDirectory, RetryPolicy, Transport};
// The outbox is the storage seam's: mail queues and delivers what it keeps.
pub use crate::storage::outbox::{
    Attempt, MailStatus, MailSummary, Outbox, OutboxStatus, OutboxStore, QueuedMail,
};
#[cfg(feature = "smtp")]
pub use smtp::SmtpRelay;

/// Checks a message before it is queued and fits its recipient's name to
/// one header line; the error is safe to show (`reclaim_wire::mail`, the
/// rule the SQL provider applies too).
pub fn check(message: &Message) -> std::result::Result<Option<String>, String> {
    reclaim_wire::mail::check_headers(
        &message.to,
        message.to_name.as_deref(),
        &message.subject,
        message.sender.as_deref(),
    )
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
            sender: None,
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
