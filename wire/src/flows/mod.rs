//! Kratos' self-service flows (recovery, settings) as one state machine
//! with two faces: the JSON flow API that Ory's SDKs and Ory Elements
//! speak, and the HTML pages that draw the same nodes. This module owns
//! every state, message and limit of a flow; [`driver`] carries out every
//! request to a recovery flow, and a server only implements
//! [`driver::FlowHost`]: it keeps a [`Record`] in its store, calls the
//! operations a step asks for, and sends the replies it is given.
//!
//! ```
//! use reclaim_wire::flows::{FlowType, Record, recovery::{RecoveryFlow, Step, Submit}};
//!
//! let now = 1_700_000_000_000_000_000;
//! let flow = RecoveryFlow::new("code", None);
//! let record = Record::recovery(FlowType::Api, now, "https://id.example/self-service/recovery/api", None, None, flow);
//! let submit = Submit { method: Some("code".into()), email: Some("ann@example.com".into()), ..Submit::default() };
//! assert!(matches!(record.recovery_step(&submit), Some(Step::Send { .. })));
//! ```

pub mod driver;
pub mod errors;
pub mod nodes;
pub mod recovery;
pub mod settings;
pub mod texts;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::rfc3339;
use nodes::Node;
use recovery::RecoveryFlow;
use settings::{SessionRecord, SettingsFlow};
use texts::Text;

/// Wrong codes a flow survives when the settings name no number.
pub use reclaim_rules::DEFAULT_MAX_CODE_ATTEMPTS;

/// How long a flow lives (Kratos' `lifespan` default).
pub const FLOW_LIFESPAN_NS: u64 = 60 * 60 * 1_000_000_000;

/// Where the flow API answers, under the public URL.
pub const RECOVERY_PATH: &str = "/self-service/recovery";
pub const SETTINGS_PATH: &str = "/self-service/settings";

/// `api` (a native app: no cookies, no CSRF) or `browser`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowType {
    Api,
    Browser,
}

/// A flow as kept between requests: what every flow has, and its kind's own.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    #[serde(rename = "type")]
    pub flow_type: FlowType,
    pub issued_at: u64,
    pub expires_at: u64,
    pub request_url: String,
    pub return_to: Option<String>,
    /// SHA-256 of the CSRF token a browser flow was issued with: only the
    /// browser holding that token's cookie may read or move the flow.
    pub csrf_key: Option<String>,
    pub transient_payload: Option<Value>,
    pub of: Of,
}

/// What kind of flow a record is.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Of {
    Recovery(RecoveryFlow),
    Settings(SettingsFlow),
    /// Not a flow: what `whoami` tells of a recovery session.
    Session(SessionRecord),
}

impl Record {
    /// A new recovery flow issued at `now`.
    pub fn recovery(
        flow_type: FlowType,
        now: u64,
        request_url: &str,
        return_to: Option<String>,
        csrf_token: Option<&str>,
        flow: RecoveryFlow,
    ) -> Self {
        Self::new(
            flow_type,
            now,
            request_url,
            return_to,
            csrf_token,
            Of::Recovery(flow),
        )
    }

    pub(crate) fn new(
        flow_type: FlowType,
        now: u64,
        request_url: &str,
        return_to: Option<String>,
        csrf_token: Option<&str>,
        of: Of,
    ) -> Self {
        Self {
            flow_type,
            issued_at: now,
            expires_at: now.saturating_add(FLOW_LIFESPAN_NS),
            request_url: request_url.to_string(),
            return_to,
            csrf_key: csrf_token.map(csrf_key),
            transient_payload: None,
            of,
        }
    }

    /// The record with a lifespan other than [`FLOW_LIFESPAN_NS`] (the
    /// server's configured one), counted from its issue.
    pub fn lasting(mut self, lifespan_ns: u64) -> Self {
        self.expires_at = self.issued_at.saturating_add(lifespan_ns);
        self
    }

    /// The stored body.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a record serialises")
    }

    /// A stored body, if it is one of ours.
    pub fn from_json(body: &str) -> Option<Self> {
        serde_json::from_str(body).ok()
    }

    pub fn is_expired(&self, now: u64) -> bool {
        now >= self.expires_at
    }

    /// Whether the request may read or move this flow: an API flow, or a
    /// browser flow and the CSRF token of the request's cookie (`None`: no
    /// cookie) is the one it was issued with.
    pub fn csrf_holds(&self, token: Option<&str>) -> bool {
        match (self.flow_type, &self.csrf_key, token) {
            (FlowType::Api, _, _) => true,
            (FlowType::Browser, Some(key), Some(token)) => {
                bool::from(csrf_key(token).as_bytes().ct_eq(key.as_bytes()))
            }
            _ => false,
        }
    }

    /// The flow as Kratos sends it: `id` is the store's, `public_url` the
    /// server's, `csrf_token` the token of the request's cookie (empty for
    /// API flows). A settings flow's `identity` is the server's to add, as
    /// the identity now is.
    pub fn view(&self, id: &str, public_url: &str, csrf_token: &str) -> Value {
        let base = public_url.trim_end_matches('/');
        let (path, state, active, nodes, messages) = match &self.of {
            Of::Recovery(f) => (
                RECOVERY_PATH,
                f.state.as_str(),
                Some(f.active.as_str()),
                f.nodes(),
                &f.messages,
            ),
            Of::Settings(f) => (
                SETTINGS_PATH,
                f.state.as_str(),
                f.saved.then_some("password"),
                f.nodes(),
                &f.messages,
            ),
            Of::Session(_) => unreachable!("a session is not viewed as a flow"),
        };
        let mut all: Vec<Node> = vec![nodes::csrf(csrf_token)];
        all.extend(nodes);
        let mut flow = json!({
            "id": id,
            "type": self.flow_type,
            "expires_at": rfc3339(self.expires_at),
            "issued_at": rfc3339(self.issued_at),
            "request_url": self.request_url,
            "state": state,
            "ui": {
                "action": format!("{base}{path}?flow={id}"),
                "method": "POST",
                "nodes": all,
                "messages": messages,
            },
        });
        let object = flow.as_object_mut().expect("an object");
        if let Some(active) = active {
            object.insert("active".into(), json!(active));
        }
        if let Some(return_to) = &self.return_to {
            object.insert("return_to".into(), json!(return_to));
        }
        if let Some(payload) = &self.transient_payload {
            object.insert("transient_payload".into(), payload.clone());
        }
        flow
    }
}

/// What a record keeps of a CSRF token: its SHA-256, so the store holds
/// nothing a forger could submit.
fn csrf_key(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A flow's messages: at most one of each id, newest last.
pub(crate) fn say(messages: &mut Vec<Text>, text: Text) {
    messages.retain(|m| m.id != text.id);
    messages.push(text);
}

/// Where a flow's UI is: `ui_url?flow=<id>`.
pub fn ui_location(ui_url: &str, id: &str) -> String {
    let joint = if ui_url.contains('?') { '&' } else { '?' };
    format!("{ui_url}{joint}flow={id}")
}

/// `path` of the public URL, with `return_to` when the flow has one: a
/// flow's `request_url`.
pub fn request_url(public_url: &str, path: &str, return_to: Option<&str>) -> String {
    let base = public_url.trim_end_matches('/');
    match return_to {
        Some(r) => format!(
            "{base}{path}?{}",
            serde_urlencoded::to_string([("return_to", r)]).unwrap_or_default()
        ),
        None => format!("{base}{path}"),
    }
}

/// Whether a client wants JSON rather than a redirect (an SPA's fetch,
/// Ory's SDKs), as Kratos negotiates it from `Accept` and `Content-Type`.
pub fn wants_json(accept: Option<&str>, content_type: Option<&str>) -> bool {
    [accept, content_type]
        .iter()
        .any(|v| v.is_some_and(|v| v.contains("application/json")))
}

/// A JSON or urlencoded body (Kratos takes both), or why it can't be read.
pub fn parse_body<T: serde::de::DeserializeOwned>(
    content_type: Option<&str>,
    bytes: &[u8],
) -> Result<T, String> {
    let parsed = if content_type.is_some_and(|t| t.starts_with("application/json")) {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    } else {
        // A form names `method` twice (the hidden node and the button, as
        // Kratos' own UI posts it): the first of each name counts.
        let mut fields = serde_json::Map::new();
        for (name, value) in url::form_urlencoded::parse(bytes) {
            fields
                .entry(name.into_owned())
                .or_insert_with(|| Value::String(value.into_owned()));
        }
        serde_json::from_value(Value::Object(fields)).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| format!("The request body could not be read: {e}"))
}

/// The message ids of a flow's view, in order: what the tests compare.
#[cfg(test)]
pub(crate) fn message_ids(view: &Value) -> Vec<u64> {
    view["ui"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect()
}
