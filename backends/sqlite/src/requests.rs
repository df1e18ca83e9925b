//! The self-service request queue in SQLite.

use anyhow::Result;
use rusqlite::params;

use super::SqliteStorage;
use super::writer::SqliteWork;
use crate::storage::{NewRequest, Pending, QueuedRequest, RequestQueue, Requests, to_db};

impl RequestQueue for SqliteWork {
    fn dequeue_request(&mut self, id: i64) -> Result<bool> {
        let removed = self
            .conn()?
            .prepare_cached("DELETE FROM recovery_requests WHERE id = ?")?
            .execute([id])?;
        Ok(removed == 1)
    }
}

impl Requests for SqliteStorage {
    fn queue_request(&self, request: &NewRequest<'_>, now: u64) -> Pending<()> {
        let email = request.email.to_owned();
        let return_to = request.return_to.map(str::to_owned);
        let code_flow = request.code_flow.map(str::to_owned);
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO recovery_requests (email, return_to, code_flow, queued_at)
                 VALUES (?, ?, ?, ?)",
            )?
            .execute(params![email, return_to, code_flow, to_db(now)])?;
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
        self.with_writer(move |conn| {
            let mut stmt = conn.prepare_cached(
                "UPDATE recovery_requests SET claimed_until = ?1
                 WHERE id IN (SELECT id FROM recovery_requests
                              WHERE coalesce(claimed_until, 0) <= ?2 ORDER BY id LIMIT ?3)
                 RETURNING id, email, return_to, code_flow",
            )?;
            let rows = stmt.query_map(params![to_db(lease_until), to_db(now), limit], |r| {
                Ok(QueuedRequest {
                    id: r.get(0)?,
                    email: r.get(1)?,
                    return_to: r.get(2)?,
                    code_flow: r.get(3)?,
                })
            })?;
            let mut claimed: Vec<QueuedRequest> = rows.collect::<rusqlite::Result<_>>()?;
            claimed.sort_by_key(|r| r.id);
            Ok(claimed)
        })
    }

    fn drop_request(&self, id: i64) -> Result<()> {
        self.with_writer(move |conn| {
            conn.execute("DELETE FROM recovery_requests WHERE id = ?", [id])?;
            Ok(())
        })
    }
}
