//! The audit trail and webhook deliveries in SQLite. Deliveries are
//! claimed under a lease as the outbox's mail is.

use anyhow::{Context, Result};
use rusqlite::{Connection, Row, params};

use super::SqliteStorage;
use super::writer::SqliteWork;
use crate::storage::events::{
    DeliveryAttempt, DeliveryStatus, EndpointStatus, EventFilter, EventLog, EventRecord,
    EventStore, NewEvent, QueuedDelivery, endpoint_statuses,
};
use crate::storage::{from_db, to_db};

/// Adds an event and its deliveries, in the caller's transaction.
pub(super) fn insert_event(conn: &Connection, event: &NewEvent) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO events (id, type, identity_id, occurred_at, request_id, body)
         VALUES (?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        event.id,
        event.kind,
        event.identity_id,
        to_db(event.occurred_at),
        event.request_id,
        event.body
    ])
    .context("recording the event")?;
    let mut deliver = conn.prepare_cached(
        "INSERT INTO webhook_deliveries (event_id, endpoint, body, queued_at) VALUES (?, ?, ?, ?)",
    )?;
    for d in &event.deliveries {
        deliver
            .execute(params![
                event.id,
                d.endpoint,
                d.body,
                to_db(event.occurred_at)
            ])
            .context("queueing the webhook delivery")?;
    }
    Ok(())
}

impl EventLog for SqliteWork {
    fn record_event(&mut self, event: &NewEvent) -> Result<()> {
        insert_event(&*self.conn()?, event)
    }
}

fn delivery(r: &Row<'_>) -> rusqlite::Result<QueuedDelivery> {
    Ok(QueuedDelivery {
        event_id: r.get(0)?,
        endpoint: r.get(1)?,
        body: r.get(2)?,
        attempts: u32::try_from(r.get::<_, i64>(3)?).unwrap_or(u32::MAX),
    })
}

fn event_record(r: &Row<'_>) -> rusqlite::Result<EventRecord> {
    Ok(EventRecord {
        seq: r.get(0)?,
        id: r.get(1)?,
        kind: r.get(2)?,
        identity_id: r.get(3)?,
        occurred_at: from_db(r.get(4)?),
        request_id: r.get(5)?,
        body: r.get(6)?,
    })
}

impl EventStore for SqliteStorage {
    fn claim_deliveries(
        &self,
        courier: &str,
        limit: usize,
        now: u64,
        lease_until: u64,
    ) -> Result<Vec<QueuedDelivery>> {
        let courier = courier.to_owned();
        self.with_writer(move |conn| {
            let mut stmt = conn.prepare_cached(
                "UPDATE webhook_deliveries SET status = 'processing', claimed_by = ?1, lease_until = ?2
                 WHERE (event_id, endpoint) IN (
                     SELECT event_id, endpoint FROM webhook_deliveries
                     WHERE ((status = 'queued' AND coalesce(next_attempt_at, 0) <= ?3)
                            OR (status = 'processing' AND lease_until <= ?3))
                       AND endpoint NOT IN (SELECT url FROM webhook_endpoints)
                     ORDER BY queued_at LIMIT ?4)
                 RETURNING event_id, endpoint, body, attempts",
            )?;
            let rows = stmt.query_map(
                params![courier, to_db(lease_until), to_db(now), i64::try_from(limit).unwrap_or(i64::MAX)],
                delivery,
            )?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn renew_delivery(
        &self,
        event_id: &str,
        endpoint: &str,
        courier: &str,
        now: u64,
        lease_until: u64,
    ) -> Result<bool> {
        let (event_id, endpoint, courier) =
            (event_id.to_owned(), endpoint.to_owned(), courier.to_owned());
        self.with_writer(move |conn| {
            let renewed = conn
                .prepare_cached(
                    "UPDATE webhook_deliveries SET lease_until = ?1
                     WHERE event_id = ?2 AND endpoint = ?3 AND claimed_by = ?4
                       AND status = 'processing' AND lease_until > ?5",
                )?
                .execute(params![
                    to_db(lease_until),
                    event_id,
                    endpoint,
                    courier,
                    to_db(now)
                ])?;
            Ok(renewed == 1)
        })
    }

    fn record_deliveries(
        &self,
        courier: &str,
        now: u64,
        attempts: &[DeliveryAttempt],
    ) -> Result<usize> {
        let (courier, attempts) = (courier.to_owned(), attempts.to_vec());
        self.with_writer(move |conn| {
            let mut stmt = conn.prepare_cached(
                "UPDATE webhook_deliveries SET status = ?1, attempts = attempts + 1,
                     last_error = coalesce(?2, last_error), next_attempt_at = ?3,
                     claimed_by = NULL, lease_until = NULL,
                     delivered_at = CASE WHEN ?1 = 'delivered' THEN ?4 ELSE delivered_at END,
                     body = CASE WHEN ?1 = 'queued' THEN body ELSE '' END
                 WHERE event_id = ?5 AND endpoint = ?6 AND claimed_by = ?7 AND status = 'processing'",
            )?;
            let mut recorded = 0;
            for a in &attempts {
                let (status, error, next) = a.columns();
                recorded += stmt.execute(params![
                    status,
                    error,
                    next,
                    to_db(now),
                    a.event_id,
                    a.endpoint,
                    courier
                ])?;
            }
            Ok(recorded)
        })
    }

    fn disable_endpoint(&self, url: &str, now: u64, reason: &str) -> Result<()> {
        let (url, reason) = (url.to_owned(), reason.to_owned());
        self.with_writer(move |conn| {
            conn.prepare_cached(
                "INSERT INTO webhook_endpoints (url, disabled_at, reason) VALUES (?, ?, ?)
                 ON CONFLICT (url) DO NOTHING",
            )?
            .execute(params![url, to_db(now), reason])?;
            Ok(())
        })
    }

    fn enable_endpoint(&self, url: &str) -> Result<bool> {
        let url = url.to_owned();
        self.with_writer(move |conn| {
            Ok(conn.execute("DELETE FROM webhook_endpoints WHERE url = ?", params![url])? == 1)
        })
    }

    fn webhook_status(&self) -> Result<Vec<EndpointStatus>> {
        self.with_connection(|conn| {
            let counts = conn
                .prepare_cached(
                    "SELECT endpoint, status, count(*) FROM webhook_deliveries GROUP BY endpoint, status",
                )?
                .query_map([], |r| {
                    let status: String = r.get(1)?;
                    Ok((r.get::<_, String>(0)?, status, r.get::<_, i64>(2)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let disabled = conn
                .prepare_cached("SELECT url, disabled_at, reason FROM webhook_endpoints")?
                .query_map([], |r| Ok((r.get(0)?, from_db(r.get(1)?), r.get(2)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let counts = counts.into_iter().filter_map(|(url, status, count)| {
                Some((url, DeliveryStatus::parse(&status)?, u64::try_from(count).unwrap_or(0)))
            });
            Ok(endpoint_statuses(counts, disabled))
        })
    }

    fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>> {
        self.with_connection(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, id, type, identity_id, occurred_at, request_id, body FROM events
                 WHERE seq > ?1 AND (?2 IS NULL OR identity_id = ?2) AND (?3 IS NULL OR occurred_at >= ?3)
                 ORDER BY seq LIMIT ?4",
            )?;
            let rows = stmt.query_map(
                params![
                    filter.after_seq.unwrap_or(0),
                    filter.identity_id,
                    filter.since.map(to_db),
                    i64::try_from(filter.limit).unwrap_or(i64::MAX)
                ],
                event_record,
            )?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn purge_events(&self, before: u64) -> Result<u64> {
        self.with_writer(move |conn| {
            let before = to_db(before);
            conn.prepare_cached("DELETE FROM recovery_assertions WHERE expires_at < ?")?
                .execute(params![before])?;
            conn.prepare_cached(
                "DELETE FROM webhook_deliveries WHERE status IN ('delivered', 'abandoned')
                   AND event_id IN (SELECT id FROM events WHERE occurred_at < ?)",
            )?
            .execute(params![before])?;
            let purged = conn
                .prepare_cached(
                    "DELETE FROM events WHERE occurred_at < ?
                       AND id NOT IN (SELECT event_id FROM webhook_deliveries)",
                )?
                .execute(params![before])?;
            Ok(purged as u64)
        })
    }
}
