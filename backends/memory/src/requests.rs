//! The self-service request queue in memory.

use anyhow::Result;

use super::{MemoryStorage, MemoryWork, Undo};
use crate::storage::{NewRequest, Pending, QueuedRequest, RequestQueue, Requests};

impl RequestQueue for MemoryWork {
    fn dequeue_request(&mut self, id: i64) -> Result<bool> {
        let mut tables = self.tables();
        let Some(at) = tables.requests.iter().position(|r| r.id == id) else {
            return Ok(false);
        };
        let request = tables.requests.remove(at);
        tables.request_claims.remove(&id);
        drop(tables);
        self.undo.push(Undo::Request(at, request));
        Ok(true)
    }
}

impl Requests for MemoryStorage {
    fn queue_request(&self, request: &NewRequest<'_>, _now: u64) -> Pending<()> {
        self.write(|tables| {
            tables.next_request += 1;
            tables.requests.push(QueuedRequest {
                id: tables.next_request,
                email: request.email.to_string(),
                return_to: request.return_to.map(str::to_string),
                code_flow: request.code_flow.map(str::to_string),
            });
        });
        Pending::ready(Ok(()))
    }

    fn claim_requests(
        &self,
        limit: usize,
        now: u64,
        lease_until: u64,
    ) -> Result<Vec<QueuedRequest>> {
        Ok(self.write(|tables| {
            let claimable: Vec<QueuedRequest> = tables
                .requests
                .iter()
                .filter(|r| {
                    tables
                        .request_claims
                        .get(&r.id)
                        .is_none_or(|until| *until <= now)
                })
                .take(limit)
                .cloned()
                .collect();
            for request in &claimable {
                tables.request_claims.insert(request.id, lease_until);
            }
            claimable
        }))
    }

    fn drop_request(&self, id: i64) -> Result<()> {
        self.write(|tables| {
            tables.requests.retain(|r| r.id != id);
            tables.request_claims.remove(&id);
        });
        Ok(())
    }
}
