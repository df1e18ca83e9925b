//! The audit trail and the webhook outbox: rows only. What an event says and
//! which endpoints get it is decided in `events` (`Events::plan`); how a
//! delivery's attempt moves it on is the outbox's [`Attempt`].

use anyhow::Result;
use serde::Serialize;

use super::outbox::Attempt;

/// How a recovery was proven.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Link,
    Code,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Link => "link",
            Self::Code => "code",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "link" => Some(Self::Link),
            "code" => Some(Self::Code),
            _ => None,
        }
    }
}

/// An event ready to be stored: the audit row, and one delivery per
/// endpoint that takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// The `webhook-id` of every delivery of it (`msg_...`).
    pub id: String,
    pub kind: String,
    pub identity_id: Option<String>,
    pub occurred_at: u64,
    pub request_id: Option<String>,
    /// `{"type", "timestamp", "data"}`, as the audit trail keeps it.
    pub body: String,
    pub deliveries: Vec<NewDelivery>,
}

/// One endpoint's copy of an event: its body may carry more than the
/// audit row's (a password hash the endpoint asked for).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDelivery {
    pub endpoint: String,
    pub body: String,
}

/// Events inside a unit of work: they commit with the operation's writes.
pub trait EventLog {
    fn record_event(&mut self, event: &NewEvent) -> Result<()>;
}

/// A delivery claimed by a courier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedDelivery {
    pub event_id: String,
    pub endpoint: String,
    pub body: String,
    /// Attempts so far.
    pub attempts: u32,
}

/// What came of one attempt at a delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryAttempt {
    pub event_id: String,
    pub endpoint: String,
    pub attempt: Attempt,
}

impl DeliveryAttempt {
    /// The columns the attempt sets: status, error, next attempt.
    pub fn columns(&self) -> (&'static str, Option<String>, Option<i64>) {
        let status = DeliveryStatus::after(&self.attempt).as_str();
        match &self.attempt {
            Attempt::Sent => (status, None, None),
            Attempt::Retry { error, retry_at } => {
                (status, Some(error.clone()), Some(crate::to_db(*retry_at)))
            }
            Attempt::Abandon { error } => (status, Some(error.clone()), None),
        }
    }
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Queued,
    Processing,
    Delivered,
    Abandoned,
}

impl DeliveryStatus {
    pub const ALL: [Self; 4] = [
        Self::Queued,
        Self::Processing,
        Self::Delivered,
        Self::Abandoned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Processing => "processing",
            Self::Delivered => "delivered",
            Self::Abandoned => "abandoned",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The status an attempt leaves a delivery in.
    pub fn after(attempt: &Attempt) -> Self {
        match attempt {
            Attempt::Sent => Self::Delivered,
            Attempt::Retry { .. } => Self::Queued,
            Attempt::Abandon { .. } => Self::Abandoned,
        }
    }
}

/// One endpoint's deliveries by status, and whether a 410 disabled it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EndpointStatus {
    pub url: String,
    pub queued: u64,
    pub processing: u64,
    pub delivered: u64,
    pub abandoned: u64,
    /// RFC 3339; set while the endpoint is disabled.
    pub disabled_at: Option<String>,
    pub disabled_reason: Option<String>,
}

impl EndpointStatus {
    pub fn add(&mut self, status: DeliveryStatus, count: u64) {
        *match status {
            DeliveryStatus::Queued => &mut self.queued,
            DeliveryStatus::Processing => &mut self.processing,
            DeliveryStatus::Delivered => &mut self.delivered,
            DeliveryStatus::Abandoned => &mut self.abandoned,
        } += count;
    }
}

/// Every endpoint's status, by URL, from the deliveries' counts by
/// endpoint and status and the disabled endpoints (when, why): how each
/// backend's two reads become the operator's view.
pub fn endpoint_statuses(
    counts: impl IntoIterator<Item = (String, DeliveryStatus, u64)>,
    disabled: impl IntoIterator<Item = (String, u64, String)>,
) -> Vec<EndpointStatus> {
    let mut by_url: std::collections::BTreeMap<String, EndpointStatus> = Default::default();
    let entry = |by_url: &mut std::collections::BTreeMap<String, EndpointStatus>, url: String| {
        by_url.entry(url.clone()).or_insert_with(|| EndpointStatus {
            url,
            ..Default::default()
        });
    };
    for (url, status, count) in counts {
        entry(&mut by_url, url.clone());
        if let Some(s) = by_url.get_mut(&url) {
            s.add(status, count);
        }
    }
    for (url, at, reason) in disabled {
        entry(&mut by_url, url.clone());
        if let Some(s) = by_url.get_mut(&url) {
            s.disabled_at = Some(crate::clock::rfc3339(at));
            s.disabled_reason = Some(reason);
        }
    }
    by_url.into_values().collect()
}

/// A page of the audit trail: events after `after_seq`, oldest first.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub identity_id: Option<String>,
    /// Only events at or after this time.
    pub since: Option<u64>,
    pub after_seq: Option<i64>,
    pub limit: usize,
}

/// A stored event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    /// Its place in the trail, for paging.
    pub seq: i64,
    pub id: String,
    pub kind: String,
    pub identity_id: Option<String>,
    pub occurred_at: u64,
    pub request_id: Option<String>,
    pub body: String,
}

/// The webhook outbox and the trail outside units of work. Several couriers
/// may share one: `claim_deliveries` hands each delivery to one at a time.
pub trait EventStore: Send + Sync {
    /// Claims up to `limit` deliveries due at `now` to endpoints that are
    /// not disabled, as the mail outbox's `claim` does.
    fn claim_deliveries(
        &self,
        courier: &str,
        limit: usize,
        now: u64,
        lease_until: u64,
    ) -> Result<Vec<QueuedDelivery>>;

    /// Extends `courier`'s claim right before it sends; false when the
    /// claim was lost.
    fn renew_delivery(
        &self,
        event_id: &str,
        endpoint: &str,
        courier: &str,
        now: u64,
        lease_until: u64,
    ) -> Result<bool>;

    /// Moves each delivery on by its attempt, if `courier` still holds it,
    /// in one transaction (a courier records a pass at once); how many it
    /// held. A delivered or abandoned one's body is blanked (it may carry a
    /// password hash); the trail keeps its own copy.
    fn record_deliveries(
        &self,
        courier: &str,
        now: u64,
        attempts: &[DeliveryAttempt],
    ) -> Result<usize>;

    /// [`Self::record_deliveries`] of one.
    fn record_delivery(
        &self,
        event_id: &str,
        endpoint: &str,
        courier: &str,
        now: u64,
        attempt: &Attempt,
    ) -> Result<bool> {
        let one = DeliveryAttempt {
            event_id: event_id.to_string(),
            endpoint: endpoint.to_string(),
            attempt: attempt.clone(),
        };
        Ok(self.record_deliveries(courier, now, &[one])? == 1)
    }

    /// Stops deliveries to `url` (it answered 410) until it is enabled.
    fn disable_endpoint(&self, url: &str, now: u64, reason: &str) -> Result<()>;

    /// Resumes deliveries to `url`; whether it was disabled.
    fn enable_endpoint(&self, url: &str) -> Result<bool>;

    /// Every endpoint with deliveries or a disablement.
    fn webhook_status(&self) -> Result<Vec<EndpointStatus>>;

    /// A page of the trail.
    fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>>;

    /// Forgets events that occurred before `before`, their finished
    /// deliveries, and assertions that expired before it; how many events.
    fn purge_events(&self, before: u64) -> Result<u64>;
}
