//! The courier: claims due mail under a lease, delivers it, and records
//! every attempt. Failures retry with exponential backoff and jitter until
//! the message is abandoned. A crash between delivery and bookkeeping
//! delivers the same message again, under the same `Message-ID` and with
//! the same bytes, so mail is never lost and a repeat is recognisable.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use lettre::message::Mailbox;

use super::{QueuedMail, eml};
use crate::clock::Clock;
use crate::clock::duration_nanos;
use crate::events::{Event, EventType, Events};
use crate::storage::NewEvent;
use crate::storage::outbox::{Attempt, OutboxStore};

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    /// Whether trying again can't help (a 5xx reply, a refused address).
    pub permanent: bool,
    pub message: String,
}

impl DeliveryError {
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            permanent: false,
            message: message.into(),
        }
    }
}

/// Where delivered mail goes.
pub trait Transport: Send + Sync {
    /// Delivers one message from `from`; `eml` is the whole RFC 5322 message.
    fn deliver(&self, mail: &QueuedMail, from: &Mailbox, eml: &[u8]) -> Result<(), DeliveryError>;
}

/// Delivery as `.eml` files in a directory, one per message, named by outbox
/// id: the zero-configuration default, and what tests read. A message is
/// kept for the retention the operator sets, then deleted: each carries a
/// live link in plain text.
pub struct EmlDirectory {
    dir: PathBuf,
    retention: Duration,
    /// When files past their retention were last deleted.
    pruned: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How often the directory is searched for files past their retention.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

impl EmlDirectory {
    /// The directory is made (or narrowed to) `0700`: its messages carry
    /// live links, for the operator's eyes only. Messages older than
    /// `retention` are deleted as new ones are written.
    pub fn new(dir: impl Into<PathBuf>, retention: Duration) -> Result<Self> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let dir = dir.into();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} the owner's alone", dir.display()))?;
        Ok(Self {
            dir,
            retention,
            pruned: std::sync::Mutex::new(None),
        })
    }

    /// Deletes the messages written more than the retention ago, at most
    /// once a [`PRUNE_EVERY`]; a file that can't be read or deleted is
    /// left for the next time.
    fn prune(&self) {
        let now = std::time::Instant::now();
        {
            let mut pruned = self.pruned.lock().unwrap_or_else(|e| e.into_inner());
            if pruned.is_some_and(|at| now.duration_since(at) < PRUNE_EVERY) {
                return;
            }
            *pruned = Some(now);
        }
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for path in entries.flatten().map(|e| e.path()) {
            let old = fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|at| at.elapsed().ok())
                .is_some_and(|age| age > self.retention);
            if old && path.extension().is_some_and(|e| e == "eml") {
                let _ = fs::remove_file(&path);
            }
        }
    }

    fn write(&self, mail: &QueuedMail, eml: &[u8]) -> std::io::Result<()> {
        // Written beside, synced, then renamed: a reader never sees half a
        // message, and a redelivery replaces the file with the same bytes.
        let path = self.dir.join(format!("{}.eml", mail.id));
        let partial = self.dir.join(format!(".{}.eml.partial", mail.id));
        // The message carries a live link: for its owner's eyes only.
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&partial)?;
        file.write_all(eml)?;
        file.sync_all()?;
        fs::rename(&partial, &path)?;
        fs::File::open(&self.dir)?.sync_all()?;
        self.prune();
        Ok(())
    }
}

impl Transport for EmlDirectory {
    fn deliver(&self, mail: &QueuedMail, _from: &Mailbox, eml: &[u8]) -> Result<(), DeliveryError> {
        self.write(mail, eml).map_err(|e| {
            DeliveryError::transient(format!("writing to {}: {e}", self.dir.display()))
        })
    }
}

/// When failed deliveries are tried again.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts before a message is abandoned.
    pub max_attempts: u32,
    /// Wait after the first failure; doubled after each further one.
    pub base_delay: Duration,
    /// The longest wait between two attempts.
    pub max_delay: Duration,
    /// How long a claim lasts; longer than a delivery may take.
    pub lease: Duration,
    /// Messages claimed at a time.
    pub batch: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(15 * 60),
            lease: Duration::from_secs(120),
            batch: 10,
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempts + 1`, after `attempts` failures:
    /// exponential, capped, with full jitter over its upper half so that
    /// couriers retrying together spread out.
    pub fn delay(&self, attempts: u32, jitter: f64) -> Duration {
        let exponential = self.base_delay.saturating_mul(
            1u32.checked_shl(attempts.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        let capped = exponential.min(self.max_delay);
        capped.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }
}

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PassReport {
    pub sent: usize,
    pub retried: usize,
    pub abandoned: usize,
}

/// Moves mail from the outbox to a transport.
pub struct Courier {
    id: String,
    outbox: Arc<dyn OutboxStore>,
    transport: Box<dyn Transport>,
    from: Mailbox,
    clock: Arc<dyn Clock>,
    policy: RetryPolicy,
    events: Events,
}

impl Courier {
    pub fn new(
        outbox: Arc<dyn OutboxStore>,
        transport: Box<dyn Transport>,
        from: Mailbox,
        clock: Arc<dyn Clock>,
        policy: RetryPolicy,
    ) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            outbox,
            transport,
            from,
            clock,
            policy,
            events: Events::default(),
        }
    }

    /// The same courier, planning its `recovery.email.*` events for these
    /// webhooks (the audit trail keeps them either way).
    pub fn with_events(mut self, events: Events) -> Self {
        self.events = events;
        self
    }

    /// The event an attempt on `mail` means, if any: a recovery mail about
    /// an identity that was delivered or given up on.
    fn event(&self, mail: &QueuedMail, attempt: &Attempt) -> Option<NewEvent> {
        let kind = match attempt {
            Attempt::Sent => EventType::EmailSent,
            Attempt::Abandon { .. } => EventType::EmailAbandoned,
            Attempt::Retry { .. } => return None,
        };
        let identity_id = mail.identity_id.as_deref()?;
        let mut event = Event::new(kind, self.now())
            .identity(identity_id, mail.external_id.clone())
            .detail("template", mail.template.clone())
            .detail("mail_id", mail.id.clone());
        if let Some(flow_id) = &mail.flow_id {
            event = event.detail("flow_id", flow_id.clone());
        }
        Some(self.events.plan(&event))
    }

    fn now(&self) -> u64 {
        self.clock.now_nanos()
    }

    fn lease_until(&self) -> u64 {
        self.now().saturating_add(duration_nanos(self.policy.lease))
    }

    /// Claims one batch of due mail and tries each message once.
    pub fn pass(&self) -> Result<PassReport> {
        let mut report = PassReport::default();
        let batch =
            self.outbox
                .claim(&self.id, self.policy.batch, self.now(), self.lease_until())?;
        for mail in &batch {
            // A claim is only as good as its lease: renew it right before
            // sending, and skip the message if another courier took it over.
            if !self
                .outbox
                .renew(&mail.id, &self.id, self.now(), self.lease_until())?
            {
                continue;
            }
            let built =
                eml::sender(mail, &self.from).and_then(|from| Ok((eml::build(mail, &from)?, from)));
            let attempt = match built {
                Err(e) => Attempt::Abandon {
                    error: format!("the message can't be built: {e:#}"),
                },
                Ok((bytes, from)) => match self.transport.deliver(mail, &from, &bytes) {
                    Ok(()) => Attempt::Sent,
                    Err(e) if e.permanent || mail.attempts + 1 >= self.policy.max_attempts => {
                        Attempt::Abandon { error: e.message }
                    }
                    Err(e) => {
                        let delay = self.policy.delay(mail.attempts + 1, crate::clock::jitter());
                        Attempt::Retry {
                            error: e.message,
                            retry_at: self.now().saturating_add(duration_nanos(delay)),
                        }
                    }
                },
            };
            #[cfg(feature = "metrics")]
            {
                let outcome = match &attempt {
                    Attempt::Sent => "sent",
                    Attempt::Retry { .. } => "retry",
                    Attempt::Abandon { .. } => "abandoned",
                };
                metrics::counter!("reclaim_courier_attempts_total", "outcome" => outcome)
                    .increment(1);
            }
            match &attempt {
                Attempt::Sent => {
                    report.sent += 1;
                    tracing::info!(id = %mail.id, template = %mail.template, "mail delivered");
                }
                Attempt::Retry { error, .. } => {
                    report.retried += 1;
                    tracing::warn!(id = %mail.id, attempt = mail.attempts + 1, error = %error, "delivery failed; will retry");
                }
                Attempt::Abandon { error } => {
                    report.abandoned += 1;
                    tracing::error!(id = %mail.id, attempt = mail.attempts + 1, error = %error, "delivery abandoned");
                }
            }
            let event = self.event(mail, &attempt);
            self.outbox
                .record_attempt(&mail.id, &self.id, self.now(), &attempt, event.as_ref())?;
        }
        Ok(report)
    }

    /// Runs passes until nothing is due; returns the totals.
    pub fn drain(&self) -> Result<PassReport> {
        self.drain_within(Duration::MAX)
    }

    /// [`Self::drain`], stopping after the pass that outlasts `budget`, so
    /// that a backlog never holds up a shutdown; the rest waits for the
    /// next call.
    pub fn drain_within(&self, budget: Duration) -> Result<PassReport> {
        let mut total = PassReport::default();
        let started = std::time::Instant::now();
        loop {
            let pass = self.pass()?;
            if pass == PassReport::default() || started.elapsed() >= budget {
                if total.sent > 0 {
                    self.outbox.checkpoint()?;
                }
                return Ok(total);
            }
            total.sent += pass.sent;
            total.retried += pass.retried;
            total.abandoned += pass.abandoned;
        }
    }

    /// Runs passes every `interval` until `stop` is set.
    pub fn watch(&self, interval: Duration, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            match self.drain() {
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "courier pass failed; mail stays queued")
                }
            }
            std::thread::sleep(interval);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_jitter_stays_in_the_upper_half() {
        let policy = RetryPolicy {
            base_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(60),
            ..RetryPolicy::default()
        };
        assert_eq!(policy.delay(1, 1.0), Duration::from_secs(5));
        assert_eq!(policy.delay(2, 1.0), Duration::from_secs(10));
        assert_eq!(policy.delay(3, 1.0), Duration::from_secs(20));
        assert_eq!(policy.delay(10, 1.0), Duration::from_secs(60));
        assert_eq!(policy.delay(40, 1.0), Duration::from_secs(60));
        assert_eq!(policy.delay(2, 0.0), Duration::from_secs(5));
        let j = crate::clock::jitter();
        assert!((0.0..1.0).contains(&j));
    }

    #[test]
    fn eml_files_past_their_retention_are_deleted_as_new_ones_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = EmlDirectory::new(dir.path(), Duration::from_secs(3600)).unwrap();
        let aged = |name: &str, age: Duration| {
            let path = dir.path().join(name);
            let file = fs::File::create(&path).unwrap();
            file.set_modified(std::time::SystemTime::now() - age)
                .unwrap();
            path
        };
        let old = aged("old.eml", Duration::from_secs(7200));
        let recent = aged("recent.eml", Duration::from_secs(60));
        let other = aged("notes.txt", Duration::from_secs(7200));
        let mail = QueuedMail {
            id: "new".into(),
            to: "ann@example.com".into(),
            to_name: None,
            subject: "s".into(),
            text_body: "t".into(),
            html_body: "h".into(),
            template: "recovery-link".into(),
            sender: None,
            queued_at: 0,
            attempts: 0,
            flow_id: None,
            identity_id: None,
            external_id: None,
        };
        outbox.write(&mail, b"message").unwrap();
        assert!(!old.exists(), "past its retention");
        assert!(recent.exists() && other.exists());
        assert!(dir.path().join("new.eml").exists());
    }
}
