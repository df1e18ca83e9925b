//! The audit trail and webhook deliveries in PostgreSQL. Couriers on
//! every replica claim deliveries with `FOR UPDATE SKIP LOCKED` under a
//! lease, as they claim mail.

use anyhow::Result;

use super::{Conn, PgWork, PostgresStorage};
use crate::storage::events::{
    DeliveryAttempt, DeliveryStatus, EndpointStatus, EventFilter, EventLog, EventRecord,
    EventStore, NewEvent, QueuedDelivery, endpoint_statuses,
};
use crate::storage::{from_db, to_db};

/// Adds an event and its deliveries in the caller's transaction, sent with
/// its next round trip: nothing is read back.
pub(super) fn insert_event(conn: &mut Conn, event: &NewEvent) -> Result<()> {
    conn.defer(
        "recording the event",
        "INSERT INTO events (id, type, identity_id, occurred_at, request_id, body)
         VALUES ($1, $2, $3, $4, $5, $6)",
        vec![
            Box::new(event.id.clone()),
            Box::new(event.kind.clone()),
            Box::new(event.identity_id.clone()),
            Box::new(to_db(event.occurred_at)),
            Box::new(event.request_id.clone()),
            Box::new(event.body.clone()),
        ],
    )?;
    for d in &event.deliveries {
        conn.defer(
            "queueing the webhook delivery",
            "INSERT INTO webhook_deliveries (event_id, endpoint, body, queued_at)
             VALUES ($1, $2, $3, $4)",
            vec![
                Box::new(event.id.clone()),
                Box::new(d.endpoint.clone()),
                Box::new(d.body.clone()),
                Box::new(to_db(event.occurred_at)),
            ],
        )?;
    }
    Ok(())
}

impl EventLog for PgWork {
    fn record_event(&mut self, event: &NewEvent) -> Result<()> {
        insert_event(&mut *self.conn()?, event)
    }
}

impl EventStore for PostgresStorage {
    fn claim_deliveries(
        &self,
        courier: &str,
        limit: usize,
        now: u64,
        lease_until: u64,
    ) -> Result<Vec<QueuedDelivery>> {
        let courier = courier.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.call(move |conn| {
            let rows = conn.query(
                "UPDATE webhook_deliveries SET status = 'processing', claimed_by = $1, lease_until = $2
                 WHERE (event_id, endpoint) IN (
                     SELECT event_id, endpoint FROM webhook_deliveries
                     WHERE ((status = 'queued' AND coalesce(next_attempt_at, 0) <= $3)
                            OR (status = 'processing' AND lease_until <= $3))
                       AND endpoint NOT IN (SELECT url FROM webhook_endpoints)
                     ORDER BY queued_at LIMIT $4
                     FOR UPDATE SKIP LOCKED)
                 RETURNING event_id, endpoint, body, attempts",
                &[&courier, &to_db(lease_until), &to_db(now), &limit],
            )?;
            Ok(rows
                .iter()
                .map(|r| QueuedDelivery {
                    event_id: r.get(0),
                    endpoint: r.get(1),
                    body: r.get(2),
                    attempts: u32::try_from(r.get::<_, i32>(3)).unwrap_or(u32::MAX),
                })
                .collect())
        })
        .wait()
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
        self.call(move |conn| {
            let renewed = conn.execute(
                "UPDATE webhook_deliveries SET lease_until = $1
                 WHERE event_id = $2 AND endpoint = $3 AND claimed_by = $4
                   AND status = 'processing' AND lease_until > $5",
                &[
                    &to_db(lease_until),
                    &event_id,
                    &endpoint,
                    &courier,
                    &to_db(now),
                ],
            )?;
            Ok(renewed == 1)
        })
        .wait()
    }

    fn record_deliveries(
        &self,
        courier: &str,
        now: u64,
        attempts: &[DeliveryAttempt],
    ) -> Result<usize> {
        let (courier, attempts) = (courier.to_owned(), attempts.to_vec());
        self.transaction(move |conn| {
            let mut recorded = 0;
            for a in &attempts {
                let (status, error, next) = a.columns();
                recorded += conn.execute(
                    "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1,
                         last_error = coalesce($2, last_error), next_attempt_at = $3,
                         claimed_by = NULL, lease_until = NULL,
                         delivered_at = CASE WHEN $1 = 'delivered' THEN $4 ELSE delivered_at END,
                         body = CASE WHEN $1 = 'queued' THEN body ELSE '' END
                     WHERE event_id = $5 AND endpoint = $6 AND claimed_by = $7 AND status = 'processing'",
                    &[&status, &error, &next, &to_db(now), &a.event_id, &a.endpoint, &courier],
                )?;
            }
            Ok(usize::try_from(recorded).unwrap_or(usize::MAX))
        })
        .wait()
    }

    fn disable_endpoint(&self, url: &str, now: u64, reason: &str) -> Result<()> {
        let (url, reason) = (url.to_owned(), reason.to_owned());
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO webhook_endpoints (url, disabled_at, reason) VALUES ($1, $2, $3)
                 ON CONFLICT (url) DO NOTHING",
                &[&url, &to_db(now), &reason],
            )?;
            Ok(())
        })
        .wait()
    }

    fn enable_endpoint(&self, url: &str) -> Result<bool> {
        let url = url.to_owned();
        self.call(move |conn| {
            Ok(conn.execute("DELETE FROM webhook_endpoints WHERE url = $1", &[&url])? == 1)
        })
        .wait()
    }

    fn webhook_status(&self) -> Result<Vec<EndpointStatus>> {
        self.call(move |conn| {
            let counts = conn.query(
                "SELECT endpoint, status, count(*) FROM webhook_deliveries GROUP BY endpoint, status",
                &[],
            )?;
            let counts = counts.iter().filter_map(|r| {
                let count = u64::try_from(r.get::<_, i64>(2)).unwrap_or(0);
                Some((r.get(0), DeliveryStatus::parse(r.get(1))?, count))
            });
            let disabled = conn.query("SELECT url, disabled_at, reason FROM webhook_endpoints", &[])?;
            let disabled = disabled
                .iter()
                .map(|r| (r.get(0), from_db(r.get(1)), r.get(2)));
            Ok(endpoint_statuses(counts, disabled))
        })
        .wait()
    }

    fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>> {
        let filter = filter.clone();
        self.call(move |conn| {
            let rows = conn.query(
                "SELECT seq, id, type, identity_id, occurred_at, request_id, body FROM events
                 WHERE seq > $1 AND ($2::TEXT IS NULL OR identity_id = $2)
                   AND ($3::BIGINT IS NULL OR occurred_at >= $3)
                 ORDER BY seq LIMIT $4",
                &[
                    &filter.after_seq.unwrap_or(0),
                    &filter.identity_id,
                    &filter.since.map(to_db),
                    &i64::try_from(filter.limit).unwrap_or(i64::MAX),
                ],
            )?;
            Ok(rows
                .iter()
                .map(|r| EventRecord {
                    seq: r.get(0),
                    id: r.get(1),
                    kind: r.get(2),
                    identity_id: r.get(3),
                    occurred_at: from_db(r.get(4)),
                    request_id: r.get(5),
                    body: r.get(6),
                })
                .collect())
        })
        .wait()
    }

    fn purge_events(&self, before: u64) -> Result<u64> {
        let before = to_db(before);
        self.transaction(move |conn| {
            conn.execute(
                "DELETE FROM recovery_assertions WHERE expires_at < $1",
                &[&before],
            )?;
            conn.execute(
                "DELETE FROM webhook_deliveries WHERE status IN ('delivered', 'abandoned')
                   AND event_id IN (SELECT id FROM events WHERE occurred_at < $1)",
                &[&before],
            )?;
            conn.execute(
                "DELETE FROM events WHERE occurred_at < $1
                   AND id NOT IN (SELECT event_id FROM webhook_deliveries)",
                &[&before],
            )
        })
        .wait()
    }
}
