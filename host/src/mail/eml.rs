//! RFC 5322 messages, built with lettre so that headers are encoded and
//! folded correctly.

use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result};
use lettre::Message;
use lettre::message::header::{ContentType, MessageId};
use lettre::message::{Mailbox, MultiPart, SinglePart};

use super::QueuedMail;

/// The `Message-ID` of a queued message: stable across redeliveries.
pub fn message_id(mail: &QueuedMail, from: &Mailbox) -> String {
    format!("<{}@{}>", mail.id, from.email.domain())
}

/// The message's own sender, or else `default_from`.
pub fn sender(mail: &QueuedMail, default_from: &Mailbox) -> Result<Mailbox> {
    match mail.sender.as_deref() {
        Some(own) => own.parse().context("queued sender is not an address"),
        None => Ok(default_from.clone()),
    }
}

/// The whole message from `from`: headers, and a text + HTML alternative
/// body.
pub fn build(mail: &QueuedMail, from: &Mailbox) -> Result<Vec<u8>> {
    let to = Mailbox::new(
        mail.to_name.clone(),
        mail.to
            .parse()
            .context("queued recipient is not an address")?,
    );
    let message = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.subject.clone())
        .date(UNIX_EPOCH + Duration::from_nanos(mail.queued_at))
        .header(MessageId::from(message_id(mail, from)))
        .multipart(
            MultiPart::alternative()
                // Derived from the id, so a redelivery is byte-for-byte the same.
                .boundary(format!("reclaim-{}", mail.id.replace('-', "")))
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(mail.text_body.clone()),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(mail.html_body.clone()),
                ),
        )
        .context("building the message")?;
    Ok(message.formatted())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_headers_and_both_bodies() {
        let mail = QueuedMail {
            id: "0b6f5c1e-5a8e-4a51-9d5e-000000000001".into(),
            to: "ann@example.com".into(),
            to_name: Some("Ann Müller".into()),
            subject: "Zugang wiederherstellen".into(),
            text_body: "plain".into(),
            html_body: "<p>html</p>".into(),
            template: "recovery-link".into(),
            sender: None,
            queued_at: 1_700_000_000_000_000_000,
            attempts: 0,
            flow_id: None,
            identity_id: None,
            external_id: None,
        };
        let from: Mailbox = "Reclaim <no-reply@reclaim.test>".parse().unwrap();
        let eml = String::from_utf8(build(&mail, &from).unwrap()).unwrap();
        assert!(eml.contains("Message-ID: <0b6f5c1e-5a8e-4a51-9d5e-000000000001@reclaim.test>"));
        assert!(eml.contains("From: Reclaim <no-reply@reclaim.test>"));
        assert!(eml.contains("ann@example.com"));
        assert!(eml.contains("Date: Tue, 14 Nov 2023 22:13:20 +0000"));
        assert!(eml.contains("text/plain") && eml.contains("text/html"));
    }
}
