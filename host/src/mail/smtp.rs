//! Delivery over SMTP through lettre: plain, STARTTLS or implicit TLS,
//! with optional authentication, all named by one URL.

use std::time::Duration;

use anyhow::{Context, Result};
use lettre::address::Envelope;
use lettre::message::Mailbox;
use lettre::{SmtpTransport, Transport as _};

use super::QueuedMail;
use super::courier::{DeliveryError, Transport};

/// An SMTP relay.
pub struct SmtpRelay {
    transport: SmtpTransport,
}

impl SmtpRelay {
    /// A relay from a URL: `smtp://host:port` (plain),
    /// `smtp://host:587?tls=required` (STARTTLS), `smtps://host:465`
    /// (implicit TLS), with `user:password@` for authentication.
    pub fn from_url(url: &str, timeout: Duration) -> Result<Self> {
        let transport = SmtpTransport::from_url(url)
            // The URL may carry a password: never repeat it.
            .map_err(|e| {
                anyhow::anyhow!(
                    "the SMTP URL is not usable: {}",
                    e.to_string().replace(url, "<url>")
                )
            })?
            .timeout(Some(timeout))
            .build();
        Ok(Self { transport })
    }
}

impl Transport for SmtpRelay {
    fn deliver(&self, mail: &QueuedMail, from: &Mailbox, eml: &[u8]) -> Result<(), DeliveryError> {
        let to = mail.to.parse().map_err(|e| DeliveryError {
            permanent: true,
            message: format!("the recipient is not an address: {e}"),
        })?;
        let envelope = Envelope::new(Some(from.email.clone()), vec![to])
            .context("building the envelope")
            .map_err(|e| DeliveryError {
                permanent: true,
                message: format!("{e:#}"),
            })?;
        self.transport
            .send_raw(&envelope, eml)
            .map(|_| ())
            .map_err(|e| DeliveryError {
                // 5xx replies won't change on a retry; everything else might.
                permanent: e.is_permanent(),
                message: e.to_string(),
            })
    }
}
