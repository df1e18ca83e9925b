//! The outbox in PostgreSQL: couriers on every replica claim with
//! `FOR UPDATE SKIP LOCKED` under a lease, so each message goes to one
//! courier at a time, and one that dies leaves its claims to expire.

use anyhow::Result;
use postgres::Row;

use super::{PgWork, PostgresStorage};
use crate::clock::{rfc3339, seconds_between};
use crate::storage::outbox::{
    Attempt, MailStatus, MailSummary, Outbox, OutboxStatus, OutboxStore, QueuedMail,
};
use crate::storage::{NewEvent, from_db, to_db};

fn mail(r: &Row) -> QueuedMail {
    QueuedMail {
        id: r.get(0),
        to: r.get(1),
        to_name: r.get(2),
        subject: r.get(3),
        text_body: r.get(4),
        html_body: r.get(5),
        template: r.get(6),
        sender: r.get(7),
        queued_at: from_db(r.get(8)),
        attempts: u32::try_from(r.get::<_, i32>(9)).unwrap_or(u32::MAX),
        flow_id: r.get(10),
        identity_id: r.get(11),
        external_id: r.get(12),
    }
}

impl Outbox for PgWork {
    fn enqueue(&mut self, m: &QueuedMail) -> Result<()> {
        let m = m.clone();
        self.conn()?.defer(
            "queueing the message",
            "INSERT INTO outbox (id, recipient, to_name, subject, text_body, html_body, template, sender, queued_at, flow_id, identity_id, external_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            vec![
                Box::new(m.id), Box::new(m.to), Box::new(m.to_name), Box::new(m.subject),
                Box::new(m.text_body), Box::new(m.html_body), Box::new(m.template),
                Box::new(m.sender), Box::new(to_db(m.queued_at)), Box::new(m.flow_id),
                Box::new(m.identity_id), Box::new(m.external_id),
            ],
        )
    }
}

impl OutboxStore for PostgresStorage {
    fn claim(
        &self,
        courier: &str,
        limit: usize,
        now: u64,
        lease_until: u64,
    ) -> Result<Vec<QueuedMail>> {
        let courier = courier.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.call(move |conn| {
            let rows = conn.query(
                "UPDATE outbox SET status = 'processing', claimed_by = $1, lease_until = $2, updated_at = $3
                 WHERE id IN (
                     SELECT id FROM outbox
                     WHERE (status = 'queued' AND coalesce(next_attempt_at, 0) <= $3)
                        OR (status = 'processing' AND lease_until <= $3)
                     ORDER BY queued_at, id LIMIT $4
                     FOR UPDATE SKIP LOCKED)
                 RETURNING id, recipient, to_name, subject, text_body, html_body, template, sender,
                           queued_at, attempts, flow_id, identity_id, external_id",
                &[&courier, &to_db(lease_until), &to_db(now), &limit],
            )?;
            let mut claimed: Vec<QueuedMail> = rows.iter().map(mail).collect();
            claimed.sort_by(|a, b| (a.queued_at, &a.id).cmp(&(b.queued_at, &b.id)));
            Ok(claimed)
        })
        .wait()
    }

    fn renew(&self, id: &str, courier: &str, now: u64, lease_until: u64) -> Result<bool> {
        let (id, courier) = (id.to_owned(), courier.to_owned());
        self.call(move |conn| {
            let renewed = conn.execute(
                "UPDATE outbox SET lease_until = $1
                 WHERE id = $2 AND claimed_by = $3 AND status = 'processing' AND lease_until > $4",
                &[&to_db(lease_until), &id, &courier, &to_db(now)],
            )?;
            Ok(renewed == 1)
        })
        .wait()
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
        self.transaction(move |conn| {
            let (status, error, next) = match &attempt {
                Attempt::Sent => ("sent", None, None),
                Attempt::Retry { error, retry_at } => {
                    ("queued", Some(error.clone()), Some(to_db(*retry_at)))
                }
                Attempt::Abandon { error } => ("abandoned", Some(error.clone()), None),
            };
            // As in SQLite: a delivered message's bodies, and an abandoned
            // one's that carried a credential, are blanked.
            let recorded = conn.query_opt(
                "UPDATE outbox SET status = $1, attempts = attempts + 1, last_error = coalesce($2, last_error),
                     next_attempt_at = $3, claimed_by = NULL, lease_until = NULL, updated_at = $4,
                     sent_at = CASE WHEN $1 = 'sent' THEN $4 ELSE sent_at END,
                     text_body = CASE WHEN $1 = 'sent' OR ($1 = 'abandoned' AND flow_id IS NOT NULL) THEN '' ELSE text_body END,
                     html_body = CASE WHEN $1 = 'sent' OR ($1 = 'abandoned' AND flow_id IS NOT NULL) THEN '' ELSE html_body END
                 WHERE id = $5 AND claimed_by = $6 AND status = 'processing'
                 RETURNING attempts, flow_id",
                &[&status, &error, &next, &to_db(now), &id, &courier],
            )?;
            let Some(row) = recorded else {
                return Ok(false);
            };
            let (attempts, flow_id): (i32, Option<String>) = (row.get(0), row.get(1));
            if let (Attempt::Abandon { .. }, Some(flow_id)) = (&attempt, flow_id) {
                conn.execute(
                    "UPDATE credentials SET revoked_at = $1
                     WHERE flow_id = $2 AND used_at IS NULL AND revoked_at IS NULL",
                    &[&to_db(now), &flow_id],
                )?;
            }
            conn.execute(
                "INSERT INTO outbox_attempts (mail_id, attempt, at, courier, outcome, error)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&id, &attempts, &to_db(now), &courier, &status, &error],
            )?;
            if let Some(event) = &event {
                super::events::insert_event(conn, event)?;
            }
            Ok(true)
        })
        .wait()
    }

    fn status(&self, now: u64) -> Result<OutboxStatus> {
        self.call(move |conn| {
            let mut status = OutboxStatus::default();
            for row in conn.query("SELECT status, count(*) FROM outbox GROUP BY status", &[])? {
                let count = u64::try_from(row.get::<_, i64>(1)).unwrap_or(0);
                if let Some(state) = MailStatus::parse(row.get(0)) {
                    status.add(state, count);
                }
            }
            let oldest: Option<i64> = conn
                .query_opt(
                    "SELECT min(queued_at) FROM outbox WHERE status = 'queued'",
                    &[],
                )?
                .and_then(|row| row.get(0));
            status.oldest_queued_age_seconds = oldest.map(|at| seconds_between(from_db(at), now));
            Ok(status)
        })
        .wait()
    }

    fn list(&self, status: Option<MailStatus>, limit: usize) -> Result<Vec<MailSummary>> {
        let status = status.map(MailStatus::as_str);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.call(move |conn| {
            let rows = conn.query(
                "SELECT id, recipient, subject, template, status, attempts, last_error, queued_at,
                        next_attempt_at, sent_at
                 FROM outbox WHERE $1::TEXT IS NULL OR status = $1
                 ORDER BY queued_at DESC, id LIMIT $2",
                &[&status, &limit],
            )?;
            Ok(rows
                .iter()
                .map(|r| MailSummary {
                    id: r.get(0),
                    to: r.get(1),
                    subject: r.get(2),
                    template: r.get(3),
                    status: MailStatus::parse(r.get(4)).unwrap_or(MailStatus::Queued),
                    attempts: u32::try_from(r.get::<_, i32>(5)).unwrap_or(u32::MAX),
                    last_error: r.get(6),
                    queued_at: rfc3339(from_db(r.get(7))),
                    next_attempt_at: r.get::<_, Option<i64>>(8).map(|t| rfc3339(from_db(t))),
                    sent_at: r.get::<_, Option<i64>>(9).map(|t| rfc3339(from_db(t))),
                })
                .collect())
        })
        .wait()
    }

    fn retry(&self, id: &str, now: u64) -> Result<bool> {
        let id = id.to_owned();
        self.call(move |conn| {
            // A message that carried a credential lost its link when it was
            // abandoned: it can't be sent again, only replaced.
            let changed = conn.execute(
                "UPDATE outbox SET status = 'queued', attempts = 0, next_attempt_at = NULL, updated_at = $1
                 WHERE id = $2 AND status = 'abandoned' AND flow_id IS NULL",
                &[&to_db(now), &id],
            )?;
            Ok(changed == 1)
        })
        .wait()
    }
}
