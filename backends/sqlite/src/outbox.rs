//! The outbox of the SQLite backend: claims under a lease, attempts, and
//! the operator's views.

use anyhow::{Context, Result};
use rusqlite::{OptionalExtension, Row, params};

use super::SqliteStorage;
use super::writer::SqliteWork;
use crate::clock::seconds_between;
use crate::storage::outbox::{
    Attempt, MailStatus, MailSummary, Outbox, OutboxStatus, OutboxStore, QueuedMail,
};
use crate::storage::{NewEvent, from_db, to_db};

const MAIL_COLUMNS: &str = "id, recipient, to_name, subject, text_body, html_body, template, sender, queued_at, attempts, flow_id, identity_id, external_id";

fn mail_from_row(r: &Row<'_>) -> rusqlite::Result<QueuedMail> {
    Ok(QueuedMail {
        id: r.get(0)?,
        to: r.get(1)?,
        to_name: r.get(2)?,
        subject: r.get(3)?,
        text_body: r.get(4)?,
        html_body: r.get(5)?,
        template: r.get(6)?,
        sender: r.get(7)?,
        queued_at: from_db(r.get(8)?),
        attempts: u32::try_from(r.get::<_, i64>(9)?).unwrap_or(u32::MAX),
        flow_id: r.get(10)?,
        identity_id: r.get(11)?,
        external_id: r.get(12)?,
    })
}

fn rfc3339(nanos: i64) -> String {
    crate::clock::rfc3339(from_db(nanos))
}

impl OutboxStore for SqliteStorage {
    fn claim(
        &self,
        courier: &str,
        limit: usize,
        now: u64,
        lease_until: u64,
    ) -> Result<Vec<QueuedMail>> {
        let courier = courier.to_owned();
        self.with_writer(move |conn| {
            // One statement under SQLite's write lock: a row is claimed by
            // exactly one courier.
            let mut stmt = conn.prepare_cached(&format!(
                "UPDATE outbox SET status = 'processing', claimed_by = ?1, lease_until = ?2, updated_at = ?3
                 WHERE id IN (
                     SELECT id FROM outbox
                     WHERE (status = 'queued' AND coalesce(next_attempt_at, 0) <= ?3)
                        OR (status = 'processing' AND lease_until <= ?3)
                     ORDER BY queued_at, id LIMIT ?4)
                 RETURNING {MAIL_COLUMNS}"
            ))?;
            let rows = stmt.query_map(
                params![courier, to_db(lease_until), to_db(now), i64::try_from(limit).unwrap_or(i64::MAX)],
                mail_from_row,
            )?;
            let mut claimed: Vec<QueuedMail> = rows.collect::<rusqlite::Result<_>>()?;
            claimed.sort_by(|a, b| (a.queued_at, &a.id).cmp(&(b.queued_at, &b.id)));
            Ok(claimed)
        })
    }

    fn renew(&self, id: &str, courier: &str, now: u64, lease_until: u64) -> Result<bool> {
        let (id, courier) = (id.to_owned(), courier.to_owned());
        self.with_writer(move |conn| {
            let renewed = conn
                .prepare_cached(
                    "UPDATE outbox SET lease_until = ?1
                 WHERE id = ?2 AND claimed_by = ?3 AND status = 'processing' AND lease_until > ?4",
                )?
                .execute(params![to_db(lease_until), id, courier, to_db(now)])?;
            Ok(renewed == 1)
        })
    }

    fn record_attempt(
        &self,
        id: &str,
        courier: &str,
        now: u64,
        attempt: &Attempt,
        event: Option<&NewEvent>,
    ) -> Result<bool> {
        let (id, courier, attempt) = (id.to_owned(), courier.to_owned(), attempt.clone());
        let event = event.cloned();
        self.with_writer(move |conn| {
            let (status, error, next) = match &attempt {
                Attempt::Sent => ("sent", None, None),
                Attempt::Retry { error, retry_at } => ("queued", Some(error.as_str()), Some(to_db(*retry_at))),
                Attempt::Abandon { error } => ("abandoned", Some(error.as_str()), None),
            };
            let recorded: Option<(i64, Option<String>)> = conn
                .prepare_cached(
                    // A delivered message's bodies carry a live link: they are
                    // blanked, so the database holds no usable token. So are
                    // an abandoned one's, if they carry a credential (which is
                    // revoked below): it will never be sent.
                    "UPDATE outbox SET status = ?1, attempts = attempts + 1, last_error = coalesce(?2, last_error),
                         next_attempt_at = ?3, claimed_by = NULL, lease_until = NULL, updated_at = ?4,
                         sent_at = CASE WHEN ?1 = 'sent' THEN ?4 ELSE sent_at END,
                         text_body = CASE WHEN ?1 = 'sent' OR (?1 = 'abandoned' AND flow_id IS NOT NULL) THEN '' ELSE text_body END,
                         html_body = CASE WHEN ?1 = 'sent' OR (?1 = 'abandoned' AND flow_id IS NOT NULL) THEN '' ELSE html_body END
                     WHERE id = ?5 AND claimed_by = ?6 AND status = 'processing'
                     RETURNING attempts, flow_id",
                )?
                .query_row(params![status, error, next, to_db(now), id, courier], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let Some((attempts, flow_id)) = recorded else {
                return Ok(false);
            };
            if let (Attempt::Abandon { .. }, Some(flow_id)) = (&attempt, flow_id) {
                conn.prepare_cached(
                    "UPDATE credentials SET revoked_at = ?1
                     WHERE flow_id = ?2 AND used_at IS NULL AND revoked_at IS NULL",
                )?
                .execute(params![to_db(now), flow_id])?;
            }
            conn.prepare_cached(
                "INSERT INTO outbox_attempts (mail_id, attempt, at, courier, outcome, error) VALUES (?, ?, ?, ?, ?, ?)",
            )?
            .execute(params![id, attempts, to_db(now), courier, status, error])?;
            if let Some(event) = &event {
                super::events::insert_event(conn, event)?;
            }
            Ok(true)
        })
    }

    fn status(&self, now: u64) -> Result<OutboxStatus> {
        self.with_connection(|conn| {
            let mut status = OutboxStatus::default();
            let mut stmt =
                conn.prepare_cached("SELECT status, count(*) FROM outbox GROUP BY status")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let count = u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0);
                if let Some(state) = MailStatus::parse(&row.get::<_, String>(0)?) {
                    status.add(state, count);
                }
            }
            let oldest: Option<i64> = conn.query_row(
                "SELECT min(queued_at) FROM outbox WHERE status = 'queued'",
                [],
                |r| r.get(0),
            )?;
            status.oldest_queued_age_seconds = oldest.map(|at| seconds_between(from_db(at), now));
            Ok(status)
        })
    }

    fn list(&self, status: Option<MailStatus>, limit: usize) -> Result<Vec<MailSummary>> {
        self.with_connection(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, recipient, subject, template, status, attempts, last_error, queued_at, next_attempt_at, sent_at
                 FROM outbox WHERE ?1 IS NULL OR status = ?1 ORDER BY queued_at DESC, id LIMIT ?2",
            )?;
            let rows = stmt.query_map(
                params![status.map(MailStatus::as_str), i64::try_from(limit).unwrap_or(i64::MAX)],
                |r| {
                    Ok(MailSummary {
                        id: r.get(0)?,
                        to: r.get(1)?,
                        subject: r.get(2)?,
                        template: r.get(3)?,
                        status: MailStatus::parse(&r.get::<_, String>(4)?).unwrap_or(MailStatus::Queued),
                        attempts: u32::try_from(r.get::<_, i64>(5)?).unwrap_or(u32::MAX),
                        last_error: r.get(6)?,
                        queued_at: rfc3339(r.get(7)?),
                        next_attempt_at: r.get::<_, Option<i64>>(8)?.map(rfc3339),
                        sent_at: r.get::<_, Option<i64>>(9)?.map(rfc3339),
                    })
                },
            )?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn checkpoint(&self) -> Result<()> {
        // TRUNCATE empties the log, so no copy of a blanked page stays there.
        self.between_batches(|conn| Ok(conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?))
    }

    fn retry(&self, id: &str, now: u64) -> Result<bool> {
        let id = id.to_owned();
        self.with_writer(move |conn| {
            // A message that carried a credential lost its link when it was
            // abandoned: it can't be sent again, only replaced.
            let changed = conn.execute(
                "UPDATE outbox SET status = 'queued', attempts = 0, next_attempt_at = NULL, updated_at = ?1
                 WHERE id = ?2 AND status = 'abandoned' AND flow_id IS NULL",
                params![to_db(now), id],
            )?;
            Ok(changed == 1)
        })
    }
}

impl Outbox for SqliteWork {
    fn enqueue(&mut self, mail: &QueuedMail) -> Result<()> {
        self.conn()?
            .prepare_cached(
                "INSERT INTO outbox (id, recipient, to_name, subject, text_body, html_body, template, sender, queued_at, flow_id, identity_id, external_id)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )?
            .execute(params![
                mail.id,
                mail.to,
                mail.to_name,
                mail.subject,
                mail.text_body,
                mail.html_body,
                mail.template,
                mail.sender,
                to_db(mail.queued_at),
                mail.flow_id,
                mail.identity_id,
                mail.external_id
            ])
            .context("queueing the message")?;
        Ok(())
    }
}
