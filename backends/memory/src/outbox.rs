//! The outbox in memory: claims under a lease, attempts, the operator's
//! views, as the SQLite backend keeps them.

use anyhow::Result;

use super::credentials::revoke_flow;
use super::{MemoryStorage, MemoryWork, Undo};
use crate::storage::NewEvent;
use crate::storage::outbox::{
    Attempt, MailStatus, MailSummary, Outbox, OutboxStatus, OutboxStore, QueuedMail,
};

/// A message and where its delivery stands.
#[derive(Clone)]
pub(super) struct StoredMail {
    pub(super) mail: QueuedMail,
    status: MailStatus,
    last_error: Option<String>,
    next_attempt_at: Option<u64>,
    claimed_by: Option<String>,
    lease_until: u64,
    sent_at: Option<u64>,
}

impl StoredMail {
    fn is_due(&self, now: u64) -> bool {
        match self.status {
            MailStatus::Queued => self.next_attempt_at.unwrap_or(0) <= now,
            MailStatus::Processing => self.lease_until <= now,
            MailStatus::Sent | MailStatus::Abandoned => false,
        }
    }

    fn is_claimed_by(&self, courier: &str) -> bool {
        self.status == MailStatus::Processing && self.claimed_by.as_deref() == Some(courier)
    }
}

impl Outbox for MemoryWork {
    fn enqueue(&mut self, mail: &QueuedMail) -> Result<()> {
        self.tables().outbox.push(StoredMail {
            mail: mail.clone(),
            status: MailStatus::Queued,
            last_error: None,
            next_attempt_at: None,
            claimed_by: None,
            lease_until: 0,
            sent_at: None,
        });
        self.undo.push(Undo::Outbox);
        Ok(())
    }
}

impl OutboxStore for MemoryStorage {
    fn claim(
        &self,
        courier: &str,
        limit: usize,
        now: u64,
        lease_until: u64,
    ) -> Result<Vec<QueuedMail>> {
        Ok(self.write(|tables| {
            let mut due: Vec<&mut StoredMail> =
                tables.outbox.iter_mut().filter(|m| m.is_due(now)).collect();
            due.sort_by(|a, b| (a.mail.queued_at, &a.mail.id).cmp(&(b.mail.queued_at, &b.mail.id)));
            due.into_iter()
                .take(limit)
                .map(|m| {
                    m.status = MailStatus::Processing;
                    m.claimed_by = Some(courier.to_string());
                    m.lease_until = lease_until;
                    m.mail.clone()
                })
                .collect()
        }))
    }

    fn renew(&self, id: &str, courier: &str, now: u64, lease_until: u64) -> Result<bool> {
        Ok(self.write(
            |tables| match tables.outbox.iter_mut().find(|m| m.mail.id == id) {
                Some(m) if m.is_claimed_by(courier) && m.lease_until > now => {
                    m.lease_until = lease_until;
                    true
                }
                _ => false,
            },
        ))
    }

    fn record_attempt(
        &self,
        id: &str,
        courier: &str,
        now: u64,
        attempt: &Attempt,
        event: Option<&NewEvent>,
    ) -> Result<bool> {
        Ok(self.write(|tables| {
            let Some(m) = tables
                .outbox
                .iter_mut()
                .find(|m| m.mail.id == id && m.is_claimed_by(courier))
            else {
                return false;
            };
            m.mail.attempts += 1;
            m.claimed_by = None;
            m.next_attempt_at = None;
            let blank = match attempt {
                Attempt::Sent => {
                    m.status = MailStatus::Sent;
                    m.sent_at = Some(now);
                    true
                }
                Attempt::Retry { error, retry_at } => {
                    m.status = MailStatus::Queued;
                    m.last_error = Some(error.clone());
                    m.next_attempt_at = Some(*retry_at);
                    false
                }
                Attempt::Abandon { error } => {
                    m.status = MailStatus::Abandoned;
                    m.last_error = Some(error.clone());
                    m.mail.flow_id.is_some()
                }
            };
            // As in SQLite: a delivered message, and an abandoned one that
            // carried a credential, keep no usable token.
            if blank {
                m.mail.text_body.clear();
                m.mail.html_body.clear();
            }
            let abandoned_flow = match attempt {
                Attempt::Abandon { .. } => m.mail.flow_id.clone(),
                _ => None,
            };
            if let Some(flow_id) = abandoned_flow {
                revoke_flow(tables, &flow_id);
            }
            if let Some(event) = event {
                super::events::insert_event(tables, event);
            }
            true
        }))
    }

    fn status(&self, now: u64) -> Result<OutboxStatus> {
        let tables = self.tables();
        let mut status = OutboxStatus::default();
        for m in &tables.outbox {
            status.add(m.status, 1);
        }
        status.oldest_queued_age_seconds = tables
            .outbox
            .iter()
            .filter(|m| m.status == MailStatus::Queued)
            .map(|m| m.mail.queued_at)
            .min()
            .map(|at| crate::clock::seconds_between(at, now));
        Ok(status)
    }

    fn list(&self, status: Option<MailStatus>, limit: usize) -> Result<Vec<MailSummary>> {
        let tables = self.tables();
        let mut listed: Vec<&StoredMail> = tables
            .outbox
            .iter()
            .filter(|m| status.is_none_or(|s| s == m.status))
            .collect();
        listed.sort_by(|a, b| {
            (std::cmp::Reverse(a.mail.queued_at), &a.mail.id)
                .cmp(&(std::cmp::Reverse(b.mail.queued_at), &b.mail.id))
        });
        Ok(listed
            .into_iter()
            .take(limit)
            .map(|m| MailSummary {
                id: m.mail.id.clone(),
                to: m.mail.to.clone(),
                subject: m.mail.subject.clone(),
                template: m.mail.template.clone(),
                status: m.status,
                attempts: m.mail.attempts,
                last_error: m.last_error.clone(),
                queued_at: crate::clock::rfc3339(m.mail.queued_at),
                next_attempt_at: m.next_attempt_at.map(crate::clock::rfc3339),
                sent_at: m.sent_at.map(crate::clock::rfc3339),
            })
            .collect())
    }

    fn retry(&self, id: &str, _now: u64) -> Result<bool> {
        Ok(self.write(
            |tables| match tables.outbox.iter_mut().find(|m| m.mail.id == id) {
                Some(m) if m.status == MailStatus::Abandoned && m.mail.flow_id.is_none() => {
                    m.status = MailStatus::Queued;
                    m.mail.attempts = 0;
                    m.next_attempt_at = None;
                    true
                }
                _ => false,
            },
        ))
    }
}
