//! The audit trail and webhook deliveries in memory, as the SQLite
//! backend keeps them.

use std::collections::HashMap;

use anyhow::Result;

use super::{MemoryStorage, MemoryWork, Tables, Undo};
use crate::storage::events::{
    DeliveryAttempt, DeliveryStatus, EndpointStatus, EventFilter, EventLog, EventRecord,
    EventStore, NewEvent, QueuedDelivery, endpoint_statuses,
};
use crate::storage::outbox::Attempt;

/// A delivery and where it stands.
#[derive(Clone)]
pub(super) struct StoredDelivery {
    queued: QueuedDelivery,
    queued_at: u64,
    status: DeliveryStatus,
    next_attempt_at: u64,
    claimed_by: Option<String>,
    lease_until: u64,
}

impl StoredDelivery {
    fn is(&self, event_id: &str, endpoint: &str) -> bool {
        self.queued.event_id == event_id && self.queued.endpoint == endpoint
    }

    fn is_claimed_by(&self, courier: &str) -> bool {
        self.status == DeliveryStatus::Processing && self.claimed_by.as_deref() == Some(courier)
    }
}

/// Adds an event and its deliveries; how many deliveries.
pub(super) fn insert_event(tables: &mut Tables, event: &NewEvent) -> usize {
    tables.next_event_seq += 1;
    tables.events.push(EventRecord {
        seq: tables.next_event_seq,
        id: event.id.clone(),
        kind: event.kind.clone(),
        identity_id: event.identity_id.clone(),
        occurred_at: event.occurred_at,
        request_id: event.request_id.clone(),
        body: event.body.clone(),
    });
    for delivery in &event.deliveries {
        tables.deliveries.push(StoredDelivery {
            queued: QueuedDelivery {
                event_id: event.id.clone(),
                endpoint: delivery.endpoint.clone(),
                body: delivery.body.clone(),
                attempts: 0,
            },
            queued_at: event.occurred_at,
            status: DeliveryStatus::Queued,
            next_attempt_at: 0,
            claimed_by: None,
            lease_until: 0,
        });
    }
    event.deliveries.len()
}

impl EventLog for MemoryWork {
    fn record_event(&mut self, event: &NewEvent) -> Result<()> {
        let deliveries = insert_event(&mut self.tables(), event);
        self.undo.push(Undo::Event(deliveries));
        Ok(())
    }
}

impl EventStore for MemoryStorage {
    fn claim_deliveries(
        &self,
        courier: &str,
        limit: usize,
        now: u64,
        lease_until: u64,
    ) -> Result<Vec<QueuedDelivery>> {
        Ok(self.write(|tables| {
            let disabled = &tables.disabled_endpoints;
            let mut due: Vec<&mut StoredDelivery> = tables
                .deliveries
                .iter_mut()
                .filter(|d| !disabled.contains_key(&d.queued.endpoint))
                .filter(|d| match d.status {
                    DeliveryStatus::Queued => d.next_attempt_at <= now,
                    DeliveryStatus::Processing => d.lease_until <= now,
                    _ => false,
                })
                .collect();
            due.sort_by_key(|d| d.queued_at);
            due.into_iter()
                .take(limit)
                .map(|d| {
                    d.status = DeliveryStatus::Processing;
                    d.claimed_by = Some(courier.to_string());
                    d.lease_until = lease_until;
                    d.queued.clone()
                })
                .collect()
        }))
    }

    fn renew_delivery(
        &self,
        event_id: &str,
        endpoint: &str,
        courier: &str,
        now: u64,
        lease_until: u64,
    ) -> Result<bool> {
        Ok(self.write(|tables| {
            match tables
                .deliveries
                .iter_mut()
                .find(|d| d.is(event_id, endpoint))
            {
                Some(d) if d.is_claimed_by(courier) && d.lease_until > now => {
                    d.lease_until = lease_until;
                    true
                }
                _ => false,
            }
        }))
    }

    fn record_deliveries(
        &self,
        courier: &str,
        _now: u64,
        attempts: &[DeliveryAttempt],
    ) -> Result<usize> {
        Ok(self.write(|tables| {
            let mut recorded = 0;
            for a in attempts {
                let Some(d) = tables
                    .deliveries
                    .iter_mut()
                    .find(|d| d.is(&a.event_id, &a.endpoint) && d.is_claimed_by(courier))
                else {
                    continue;
                };
                d.queued.attempts += 1;
                d.claimed_by = None;
                d.status = DeliveryStatus::after(&a.attempt);
                if let Attempt::Retry { retry_at, .. } = &a.attempt {
                    d.next_attempt_at = *retry_at;
                } else {
                    d.queued.body.clear();
                }
                recorded += 1;
            }
            recorded
        }))
    }

    fn disable_endpoint(&self, url: &str, now: u64, reason: &str) -> Result<()> {
        self.write(|tables| {
            tables
                .disabled_endpoints
                .insert(url.to_string(), (now, reason.to_string()));
        });
        Ok(())
    }

    fn enable_endpoint(&self, url: &str) -> Result<bool> {
        Ok(self.write(|tables| tables.disabled_endpoints.remove(url).is_some()))
    }

    fn webhook_status(&self) -> Result<Vec<EndpointStatus>> {
        let tables = self.tables();
        let mut counts: HashMap<(String, &'static str), u64> = HashMap::new();
        for d in &tables.deliveries {
            *counts
                .entry((d.queued.endpoint.clone(), d.status.as_str()))
                .or_default() += 1;
        }
        let counts = counts.into_iter().filter_map(|((url, status), count)| {
            Some((url, DeliveryStatus::parse(status)?, count))
        });
        let disabled = tables
            .disabled_endpoints
            .iter()
            .map(|(url, (at, reason))| (url.clone(), *at, reason.clone()));
        Ok(endpoint_statuses(counts, disabled))
    }

    fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>> {
        let tables = self.tables();
        Ok(tables
            .events
            .iter()
            .filter(|e| filter.after_seq.is_none_or(|after| e.seq > after))
            .filter(|e| filter.since.is_none_or(|since| e.occurred_at >= since))
            .filter(|e| {
                filter
                    .identity_id
                    .as_ref()
                    .is_none_or(|id| e.identity_id.as_ref() == Some(id))
            })
            .take(filter.limit)
            .cloned()
            .collect())
    }

    fn purge_events(&self, before: u64) -> Result<u64> {
        Ok(self.write(|tables| {
            tables.assertions.retain(|_, a| a.expires_at >= before);
            let events = &tables.events;
            let old = |id: &str| events.iter().any(|e| e.id == id && e.occurred_at < before);
            tables.deliveries.retain(|d| {
                !(matches!(
                    d.status,
                    DeliveryStatus::Delivered | DeliveryStatus::Abandoned
                ) && old(&d.queued.event_id))
            });
            let pending: std::collections::HashSet<String> = tables
                .deliveries
                .iter()
                .map(|d| d.queued.event_id.clone())
                .collect();
            let count = tables.events.len();
            tables
                .events
                .retain(|e| e.occurred_at >= before || pending.contains(&e.id));
            (count - tables.events.len()) as u64
        }))
    }
}
