//! Events: what happened to a recovery or an identity, kept as the audit
//! trail and delivered to the configured webhooks. [`Events::plan`] is the
//! one place an event's body is written and its endpoints chosen; the
//! backends only store rows (`storage::events`), the operations say what
//! happened (in their own units of work), and [`webhooks`] signs and sends.

#[cfg(feature = "webhooks")]
pub mod webhooks;

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value, json};

pub use crate::storage::events::Method;
use crate::storage::events::{EventRecord, NewDelivery, NewEvent};

/// The event types, as Standard Webhooks names them (`area.action`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum EventType {
    #[serde(rename = "recovery.link.created")]
    LinkCreated,
    #[serde(rename = "recovery.code.created")]
    CodeCreated,
    #[serde(rename = "recovery.email.sent")]
    EmailSent,
    #[serde(rename = "recovery.email.abandoned")]
    EmailAbandoned,
    #[serde(rename = "recovery.redeemed")]
    Redeemed,
    /// A password was set.
    #[serde(rename = "recovery.completed")]
    Completed,
    /// The platform redeemed the hand-off assertion.
    #[serde(rename = "recovery.handed_off")]
    HandedOff,
    #[serde(rename = "recovery.revoked")]
    Revoked,
    #[serde(rename = "identity.created")]
    IdentityCreated,
    #[serde(rename = "identity.updated")]
    IdentityUpdated,
    #[serde(rename = "identity.deleted")]
    IdentityDeleted,
}

impl EventType {
    pub const ALL: [Self; 11] = [
        Self::LinkCreated,
        Self::CodeCreated,
        Self::EmailSent,
        Self::EmailAbandoned,
        Self::Redeemed,
        Self::Completed,
        Self::HandedOff,
        Self::Revoked,
        Self::IdentityCreated,
        Self::IdentityUpdated,
        Self::IdentityDeleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::LinkCreated => "recovery.link.created",
            Self::CodeCreated => "recovery.code.created",
            Self::EmailSent => "recovery.email.sent",
            Self::EmailAbandoned => "recovery.email.abandoned",
            Self::Redeemed => "recovery.redeemed",
            Self::Completed => "recovery.completed",
            Self::HandedOff => "recovery.handed_off",
            Self::Revoked => "recovery.revoked",
            Self::IdentityCreated => "identity.created",
            Self::IdentityUpdated => "identity.updated",
            Self::IdentityDeleted => "identity.deleted",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

/// What happened, before it is written down. Never a token, code, link,
/// assertion or password: nothing here can carry one.
#[derive(Clone, Debug)]
pub struct Event {
    pub kind: EventType,
    pub identity_id: Option<String>,
    pub external_id: Option<String>,
    pub flow_id: Option<String>,
    pub method: Option<Method>,
    pub at: u64,
    pub request_id: Option<String>,
    /// Further fields of `data` (counts, a mail's template).
    pub details: Map<String, Value>,
    /// The new password's Argon2id PHC string (`recovery.completed`),
    /// for endpoints that ask for it; never in the trail.
    pub password_hash: Option<String>,
}

impl Event {
    pub fn new(kind: EventType, at: u64) -> Self {
        Self {
            kind,
            identity_id: None,
            external_id: None,
            flow_id: None,
            method: None,
            at,
            request_id: crate::request_context::request_id(),
            details: Map::new(),
            password_hash: None,
        }
    }

    pub fn identity(mut self, id: &str, external_id: Option<String>) -> Self {
        self.identity_id = Some(id.to_string());
        self.external_id = external_id;
        self
    }

    pub fn flow(mut self, flow_id: &str, method: Method) -> Self {
        self.flow_id = Some(flow_id.to_string());
        self.method = Some(method);
        self
    }

    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }

    /// The Standard Webhooks body: `{"type", "timestamp", "data"}`.
    fn body(&self, with_password_hash: bool) -> String {
        let mut data = Map::new();
        data.insert("identity_id".into(), json!(self.identity_id));
        data.insert("external_id".into(), json!(self.external_id));
        if let Some(flow_id) = &self.flow_id {
            data.insert("flow_id".into(), json!(flow_id));
        }
        if let Some(method) = self.method {
            data.insert("method".into(), json!(method));
        }
        data.insert("occurred_at".into(), json!(crate::clock::rfc3339(self.at)));
        data.extend(self.details.clone());
        if with_password_hash && let Some(hash) = &self.password_hash {
            data.insert("password_hash".into(), json!(hash));
        }
        json!({
            "type": self.kind.as_str(),
            "timestamp": crate::clock::rfc3339(self.at),
            "data": data,
        })
        .to_string()
    }
}

/// A configured endpoint, as far as choosing its events goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    pub url: String,
    /// Only these types; every type when `None`.
    pub events: Option<Vec<EventType>>,
    /// `recovery.completed` carries the new password's PHC string.
    pub include_password_hash: bool,
}

/// The events' planner: which endpoints get what. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Events {
    subscriptions: Arc<Vec<Subscription>>,
    /// Woken whenever a delivery is planned, so that a courier waiting for
    /// its next pass starts it now.
    planned: Arc<tokio::sync::Notify>,
}

impl Events {
    pub fn new(subscriptions: Vec<Subscription>) -> Self {
        Self {
            subscriptions: Arc::new(subscriptions),
            planned: Arc::default(),
        }
    }

    /// What a courier waits on between passes.
    pub fn planned(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.planned)
    }

    /// The rows for `event`: its trail entry and one delivery per endpoint
    /// that takes its type.
    pub fn plan(&self, event: &Event) -> NewEvent {
        let body = event.body(false);
        let deliveries: Vec<NewDelivery> = self
            .subscriptions
            .iter()
            .filter(|s| s.events.as_ref().is_none_or(|e| e.contains(&event.kind)))
            .map(|s| NewDelivery {
                endpoint: s.url.clone(),
                body: if s.include_password_hash && event.password_hash.is_some() {
                    event.body(true)
                } else {
                    body.clone()
                },
            })
            .collect();
        if !deliveries.is_empty() {
            self.planned.notify_one();
        }
        NewEvent {
            // Time-ordered, so the deliveries' key grows at one end.
            id: format!("msg_{}", uuid::Uuid::now_v7().simple()),
            kind: event.kind.as_str().to_string(),
            identity_id: event.identity_id.clone(),
            occurred_at: event.at,
            request_id: event.request_id.clone(),
            body,
            deliveries,
        }
    }
}

/// An event of the trail as the API shows it: its Standard Webhooks body,
/// with its id and the request that caused it.
pub fn shown(event: &EventRecord) -> Value {
    let mut body: Value = serde_json::from_str(&event.body).unwrap_or_else(|_| json!({}));
    if let Some(fields) = body.as_object_mut() {
        fields.insert("id".into(), json!(event.id));
        fields.insert("request_id".into(), json!(event.request_id));
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription(url: &str, events: Option<Vec<EventType>>, hash: bool) -> Subscription {
        Subscription {
            url: url.into(),
            events,
            include_password_hash: hash,
        }
    }

    #[test]
    fn endpoints_get_the_types_they_subscribed_to() {
        let events = Events::new(vec![
            subscription("https://a.test/", None, false),
            subscription("https://b.test/", Some(vec![EventType::Completed]), false),
        ]);
        let created = events.plan(&Event::new(EventType::LinkCreated, 0).identity("i", None));
        assert_eq!(created.deliveries.len(), 1);
        assert_eq!(created.deliveries[0].endpoint, "https://a.test/");
        let completed = events.plan(&Event::new(EventType::Completed, 0).identity("i", None));
        assert_eq!(completed.deliveries.len(), 2);
    }

    #[test]
    fn the_password_hash_goes_only_to_endpoints_that_ask_and_never_to_the_trail() {
        let events = Events::new(vec![
            subscription("https://a.test/", None, true),
            subscription("https://b.test/", None, false),
        ]);
        let mut completed = Event::new(EventType::Completed, 0).identity("i", Some("u-1".into()));
        completed.password_hash = Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into());
        let planned = events.plan(&completed);
        assert!(!planned.body.contains("argon2id"));
        assert!(planned.deliveries[0].body.contains("argon2id"));
        assert!(!planned.deliveries[1].body.contains("argon2id"));
        let body: Value = serde_json::from_str(&planned.body).unwrap();
        assert_eq!(body["type"], "recovery.completed");
        assert_eq!(body["data"]["external_id"], "u-1");
        assert!(
            body["timestamp"]
                .as_str()
                .unwrap()
                .starts_with("1970-01-01T")
        );
    }
}
