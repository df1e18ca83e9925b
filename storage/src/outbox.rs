//! The outbox: the messages an operation queues in its unit of work
//! ([`Outbox`]), and the durable side of the courier ([`OutboxStore`]):
//! claiming queued mail under a lease, recording every attempt, and the
//! operator's views of the queue.

use anyhow::Result;
use serde::Serialize;

use super::NewEvent;

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

/// Where a message stands. Kratos' courier has the same four.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum MailStatus {
    /// Waiting for a courier (possibly until its next retry is due).
    Queued,
    /// Claimed by a courier whose lease has not run out.
    Processing,
    /// Delivered.
    Sent,
    /// Given up on after too many failures, or a permanent one.
    Abandoned,
}

impl MailStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Processing => "processing",
            Self::Sent => "sent",
            Self::Abandoned => "abandoned",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Queued, Self::Processing, Self::Sent, Self::Abandoned]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// What came of one delivery attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// Delivered.
    Sent,
    /// Failed; try again at `retry_at` (nanoseconds since the Unix epoch).
    Retry { error: String, retry_at: u64 },
    /// Failed for good.
    Abandon { error: String },
}

/// A message as the operator sees it: no bodies.
#[derive(Clone, Debug, Serialize)]
pub struct MailSummary {
    pub id: String,
    pub to: String,
    pub subject: String,
    pub template: String,
    pub status: MailStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// RFC 3339.
    pub queued_at: String,
    pub next_attempt_at: Option<String>,
    pub sent_at: Option<String>,
}

/// Counts by status, and how long the oldest queued message has waited.
#[derive(Clone, Debug, Default, Serialize)]
pub struct OutboxStatus {
    pub queued: u64,
    pub processing: u64,
    pub sent: u64,
    pub abandoned: u64,
    pub oldest_queued_age_seconds: Option<u64>,
}

impl OutboxStatus {
    /// Adds `count` messages of `status`.
    pub fn add(&mut self, status: MailStatus, count: u64) {
        *match status {
            MailStatus::Queued => &mut self.queued,
            MailStatus::Processing => &mut self.processing,
            MailStatus::Sent => &mut self.sent,
            MailStatus::Abandoned => &mut self.abandoned,
        } += count;
    }
}

/// Outbox storage for couriers. Several couriers may share one: `claim`
/// hands each message to one courier at a time.
pub trait OutboxStore: Send + Sync {
    /// Claims up to `limit` messages that are due at `now`: queued ones whose
    /// retry time has come, and processing ones whose lease has run out (their
    /// courier died). They stay claimed by `courier` until `lease_until`.
    fn claim(
        &self,
        courier: &str,
        limit: usize,
        now: u64,
        lease_until: u64,
    ) -> Result<Vec<QueuedMail>>;

    /// Extends `courier`'s claim on a message to `lease_until`, just before
    /// it is sent; returns false when the claim was lost (its lease ran out
    /// and another courier took it), and the message must not be sent.
    fn renew(&self, id: &str, courier: &str, now: u64, lease_until: u64) -> Result<bool>;

    /// Records an attempt by `courier` and moves the message on, if `courier`
    /// still holds its claim; returns whether it did. `event` (what the
    /// attempt means to the audit trail and the webhooks) is recorded in the
    /// same transaction, if the attempt is.
    fn record_attempt(
        &self,
        id: &str,
        courier: &str,
        now: u64,
        attempt: &Attempt,
        event: Option<&NewEvent>,
    ) -> Result<bool>;

    /// Counts by status at `now`.
    fn status(&self, now: u64) -> Result<OutboxStatus>;

    /// Messages, newest first, optionally of one status.
    fn list(&self, status: Option<MailStatus>, limit: usize) -> Result<Vec<MailSummary>>;

    /// Makes blanked bodies of delivered mail unrecoverable from the store's
    /// files (SQLite: a truncating checkpoint of the log). A courier calls it
    /// after a pass that delivered something.
    fn checkpoint(&self) -> Result<()> {
        Ok(())
    }

    /// Puts an abandoned message back in the queue, attempts reset; returns
    /// whether there was such a message. One that carried a credential can't
    /// be: abandoning it blanked it and revoked the credential.
    fn retry(&self, id: &str, now: u64) -> Result<bool>;
}
