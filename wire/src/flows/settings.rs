//! The settings flow a recovery ends in (`show_form` → `success`), the
//! session record `whoami` reads, and how a recovery's end is answered
//! (Kratos' two endings, or the platform's hand-off).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::nodes::{self, Node};
use super::texts::{self, Text};
use super::{FlowType, Of, Record, say};
use crate::rfc3339;

/// A settings flow's own state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SettingsFlow {
    pub state: SettingsState,
    /// The identity's id: the server shows the identity as it is when the
    /// flow is read (`identity`), not as it was when the flow began.
    pub identity_id: String,
    /// Whether a password was saved (`active: "password"` from then on).
    pub saved: bool,
    pub messages: Vec<Text>,
    /// Messages on the password node (why a password was refused).
    #[serde(default)]
    pub password_messages: Vec<Text>,
}

/// `state` of a settings flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingsState {
    ShowForm,
    Success,
}

impl SettingsState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ShowForm => "show_form",
            Self::Success => "success",
        }
    }
}

impl SettingsFlow {
    pub(super) fn nodes(&self) -> Vec<Node> {
        let mut nodes = nodes::new_password();
        nodes[0].messages = self.password_messages.clone();
        nodes
    }
}

/// What `whoami` tells of a recovery session: the session itself (its key,
/// its end) is the backend's; this is how it began.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionRecord {
    pub identity_id: String,
    /// SHA-256 of the session's secret, as the backend keeps it: a record
    /// of an older session of the identity tells nothing of a newer one.
    pub key: String,
    /// `code_recovery` or `link_recovery`.
    pub method: String,
    pub authenticated_at: u64,
    pub expires_at: u64,
}

/// A settings flow submission (`updateSettingsFlowWithPasswordMethod`).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct SettingsSubmit {
    pub method: Option<String>,
    pub password: Option<String>,
    pub csrf_token: Option<String>,
}

impl Record {
    /// A settings flow for the identity of a live session, issued at `now`;
    /// `recovered_until` (the session's end) when a recovery opens it, which
    /// then carries 1060001.
    pub fn settings(
        flow_type: FlowType,
        now: u64,
        request_url: &str,
        return_to: Option<String>,
        csrf_token: Option<&str>,
        identity_id: &str,
        recovered_until: Option<u64>,
    ) -> Self {
        let messages = recovered_until
            .map(|until| {
                let minutes = until.saturating_sub(now) as f64 / 60e9;
                vec![texts::recovered(&rfc3339(until), minutes)]
            })
            .unwrap_or_default();
        let mut record = Self::new(
            flow_type,
            now,
            request_url,
            return_to,
            csrf_token,
            Of::Settings(SettingsFlow {
                state: SettingsState::ShowForm,
                identity_id: identity_id.to_string(),
                saved: false,
                messages,
                password_messages: Vec::new(),
            }),
        );
        // A settings flow lives no longer than the session that may use it.
        if let Some(until) = recovered_until {
            record.expires_at = record.expires_at.min(until);
        }
        record
    }

    /// The session record a recovery opens.
    pub fn session(identity_id: &str, key: &str, method: &str, now: u64, until: u64) -> Self {
        let mut record = Self::new(
            FlowType::Api,
            now,
            "",
            None,
            None,
            Of::Session(SessionRecord {
                identity_id: identity_id.to_string(),
                key: key.to_string(),
                method: method.to_string(),
                authenticated_at: now,
                expires_at: until,
            }),
        );
        record.expires_at = until;
        record
    }

    pub fn settings_flow(&self) -> Option<&SettingsFlow> {
        match &self.of {
            Of::Settings(f) => Some(f),
            _ => None,
        }
    }

    /// The password a submission asks to save, or the flow with the
    /// message saying why not (400).
    pub fn password_of<'a>(
        &self,
        submit: &'a SettingsSubmit,
        check: impl FnOnce(&str) -> Result<(), String>,
    ) -> Result<&'a str, Box<Record>> {
        let refuse = |on_password: bool, text: Text| {
            let mut next = self.clone();
            if let Of::Settings(f) = &mut next.of {
                f.messages.clear();
                f.password_messages.clear();
                match on_password {
                    true => f.password_messages.push(text),
                    false => say(&mut f.messages, text),
                }
            }
            Box::new(next)
        };
        if submit.method.as_deref() != Some("password") {
            return Err(refuse(
                false,
                texts::invalid(
                    "Could not find a strategy to update your settings. Did you fill out the form correctly?",
                ),
            ));
        }
        let Some(password) = submit.password.as_deref().filter(|p| !p.is_empty()) else {
            return Err(refuse(true, texts::missing("password")));
        };
        check(password).map_err(|reason| refuse(true, texts::password_refused(&reason)))?;
        Ok(password)
    }

    /// After the password was saved: `success` and 1050001.
    pub fn saved(&self) -> Self {
        let mut next = self.clone();
        if let Of::Settings(f) = &mut next.of {
            f.state = SettingsState::Success;
            f.saved = true;
            f.messages = vec![texts::settings_saved()];
            f.password_messages.clear();
        }
        next
    }
}

/// A session as `whoami` answers it (Kratos' `session`).
pub fn whoami(session_id: &str, record: &SessionRecord, identity: Value) -> Value {
    json!({
        "id": session_id,
        "active": true,
        "expires_at": rfc3339(record.expires_at),
        "authenticated_at": rfc3339(record.authenticated_at),
        "issued_at": rfc3339(record.authenticated_at),
        "authenticator_assurance_level": "aal1",
        "authentication_methods": [{
            "method": record.method,
            "aal": "aal1",
            "completed_at": rfc3339(record.authenticated_at),
        }],
        "identity": identity,
    })
}

/// How a recovery that passed its challenge is answered.
#[derive(Debug, PartialEq)]
pub enum Ending {
    /// Kratos' default: 422 `browser_location_change_required` to the
    /// settings UI (a browser's form post: 303 there).
    RedirectToSettings { location: String },
    /// `use_continue_with_transitions`: 200 with the recovery flow and
    /// `continue_with` (the session token for API flows, the settings UI).
    ContinueWith {
        session_token: Option<String>,
        settings_flow: String,
        location: String,
    },
    /// The recovery ends in the platform: to the hand-off URL with its
    /// assertion, no settings flow and no session.
    HandOff { location: String },
    /// A server that keeps no sessions (the edge): to the allowed
    /// `return_to`, or the flow's own page.
    Redirect { location: String },
}

impl Ending {
    /// `continue_with` of the answer.
    pub fn continue_with(&self) -> Vec<Value> {
        match self {
            Self::RedirectToSettings { location }
            | Self::HandOff { location }
            | Self::Redirect { location } => {
                vec![json!({"action": "redirect_browser_to", "redirect_browser_to": location})]
            }
            Self::ContinueWith {
                session_token,
                settings_flow,
                location,
            } => {
                let mut actions = Vec::new();
                if let Some(token) = session_token {
                    actions.push(
                        json!({"action": "set_ory_session_token", "ory_session_token": token}),
                    );
                }
                actions.push(json!({
                    "action": "show_settings_ui",
                    "flow": {"id": settings_flow, "url": location},
                }));
                actions
            }
        }
    }

    /// Where a browser goes.
    pub fn location(&self) -> &str {
        match self {
            Self::RedirectToSettings { location }
            | Self::HandOff { location }
            | Self::Redirect { location }
            | Self::ContinueWith { location, .. } => location,
        }
    }
}
