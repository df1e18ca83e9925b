//! The courier: delivers queued mail, then marks it sent. A crash between
//! the two delivers the same message again under the same `Message-ID`, so
//! mail is never lost and a repeat is recognisable.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use lettre::message::Mailbox;

use super::{QueuedMail, eml};
use crate::clock::Clock;
use crate::storage::Storage;

/// How many messages one pass takes from the outbox.
const BATCH: usize = 100;

/// Where delivered mail goes.
pub trait Transport: Send + Sync {
    /// Delivers one message; `eml` is the whole RFC 5322 message.
    fn deliver(&self, mail: &QueuedMail, eml: &[u8]) -> Result<()>;
}

/// Delivery as `.eml` files in a directory, one per message, named by outbox
/// id: the zero-configuration default, and what tests read.
pub struct EmlDirectory {
    dir: PathBuf,
}

impl EmlDirectory {
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self { dir })
    }
}

impl Transport for EmlDirectory {
    fn deliver(&self, mail: &QueuedMail, eml: &[u8]) -> Result<()> {
        // Written beside, synced, then renamed: a reader never sees half a
        // message, and a redelivery replaces the file with the same bytes.
        let path = self.dir.join(format!("{}.eml", mail.id));
        let partial = self.dir.join(format!(".{}.eml.partial", mail.id));
        let mut file = fs::File::create(&partial)
            .with_context(|| format!("creating {}", partial.display()))?;
        file.write_all(eml)?;
        file.sync_all()?;
        fs::rename(&partial, &path).with_context(|| format!("writing {}", path.display()))?;
        fs::File::open(&self.dir)?.sync_all()?;
        Ok(())
    }
}

/// Moves mail from the outbox to a transport.
pub struct Courier {
    storage: Arc<dyn Storage>,
    transport: Box<dyn Transport>,
    from: Mailbox,
    clock: Arc<dyn Clock>,
}

impl Courier {
    pub fn new(
        storage: Arc<dyn Storage>,
        transport: Box<dyn Transport>,
        from: Mailbox,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            storage,
            transport,
            from,
            clock,
        }
    }

    /// Delivers everything queued; returns how many messages went out.
    pub fn deliver_pending(&self) -> Result<usize> {
        let mut delivered = 0;
        loop {
            let batch = self.storage.pending_mail(BATCH)?;
            if batch.is_empty() {
                return Ok(delivered);
            }
            for mail in &batch {
                let eml = eml::build(mail, &self.from)?;
                self.transport.deliver(mail, &eml)?;
                let now = u64::try_from(self.clock.now().as_nanos()).unwrap_or(u64::MAX);
                self.storage.mark_mail_sent(&mail.id, now)?;
                tracing::info!(id = %mail.id, template = %mail.template, "mail delivered");
                delivered += 1;
            }
        }
    }
}
