//! The self-service request queue in PostgreSQL.

use anyhow::Result;

use super::{PgWork, PostgresStorage};
use crate::storage::{NewRequest, Pending, QueuedRequest, RequestQueue, Requests, to_db};

impl RequestQueue for PgWork {
    fn dequeue_request(&mut self, id: i64) -> Result<bool> {
        // Two replicas serving one request: the second's DELETE waits for
        // the first's commit and then finds nothing, so its unit (and its
        // mail) is rolled back.
        let removed = self
            .conn()?
            .execute("DELETE FROM recovery_requests WHERE id = $1", &[&id])?;
        Ok(removed == 1)
    }
}

impl Requests for PostgresStorage {
    fn queue_request(&self, request: &NewRequest<'_>, now: u64) -> Pending<()> {
        let email = request.email.to_owned();
        let return_to = request.return_to.map(str::to_owned);
        let code_flow = request.code_flow.map(str::to_owned);
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO recovery_requests (email, return_to, code_flow, queued_at)
                 VALUES ($1, $2, $3, $4)",
                &[&email, &return_to, &code_flow, &to_db(now)],
            )?;
            Ok(())
        })
    }

    fn claim_requests(
        &self,
        limit: usize,
        now: u64,
        lease_until: u64,
    ) -> Result<Vec<QueuedRequest>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.call(move |conn| {
            let mut rows = conn.query(
                "UPDATE recovery_requests SET claimed_until = $1
                 WHERE id IN (SELECT id FROM recovery_requests
                              WHERE coalesce(claimed_until, 0) <= $2
                              ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
                 RETURNING id, email, return_to, code_flow",
                &[&to_db(lease_until), &to_db(now), &limit],
            )?;
            rows.sort_by_key(|r| r.get::<_, i64>(0));
            Ok(rows
                .iter()
                .map(|r| QueuedRequest {
                    id: r.get(0),
                    email: r.get(1),
                    return_to: r.get(2),
                    code_flow: r.get(3),
                })
                .collect())
        })
        .wait()
    }

    fn drop_request(&self, id: i64) -> Result<()> {
        self.call(move |conn| {
            conn.execute("DELETE FROM recovery_requests WHERE id = $1", &[&id])?;
            Ok(())
        })
        .wait()
    }
}
