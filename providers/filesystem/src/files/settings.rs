//! `settings.json`: the engine's settings as the operator wrote them; what
//! the file leaves out is left to the component's defaults (the one copy,
//! `wit/recovery.wit`). A missing file is created with one fresh secret.

use serde::{Deserialize, Serialize};

use super::{Data, random_hex};
use crate::bindings::exports::reclaim::recovery::settings::Settings;

const SECOND_NS: u64 = 1_000_000_000;

/// `settings.json`.
#[derive(Serialize, Deserialize)]
struct StoredSettings {
    public_url: String,
    secrets: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default_lifespan_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_lifespan_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoke_older_links: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_code_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    notify_unknown_recipients: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_code_attempts_per_identity: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code_attempt_window_seconds: Option<u64>,
}

impl Data {
    /// The settings; a missing file is created with one fresh secret.
    pub fn settings(&self) -> Settings {
        let stored: StoredSettings = match self.read_string("settings.json") {
            Some(text) => {
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("settings.json: {e}"))
            }
            None => {
                let fresh = StoredSettings {
                    public_url: "http://127.0.0.1:4433".into(),
                    secrets: vec![random_hex::<32>()],
                    default_lifespan_seconds: None,
                    max_lifespan_seconds: None,
                    revoke_older_links: None,
                    max_code_attempts: None,
                    notify_unknown_recipients: None,
                    max_code_attempts_per_identity: None,
                    code_attempt_window_seconds: None,
                };
                // Of instances starting at once, one creates the file and
                // every other uses it: links hashed under a secret that lost
                // the race would never redeem.
                let bytes = serde_json::to_vec_pretty(&fresh).expect("serialisable");
                if !self.write_new("settings.json", &bytes) {
                    return self.settings();
                }
                fresh
            }
        };
        let nanos = |seconds: Option<u64>| seconds.map(|s| s.saturating_mul(SECOND_NS));
        Settings {
            public_url: stored.public_url,
            default_lifespan_ns: nanos(stored.default_lifespan_seconds),
            max_lifespan_ns: nanos(stored.max_lifespan_seconds),
            secrets: stored.secrets.into_iter().map(String::into_bytes).collect(),
            revoke_older_links: stored.revoke_older_links,
            max_code_attempts: stored.max_code_attempts,
            max_code_attempts_per_identity: stored.max_code_attempts_per_identity,
            code_attempt_window_ns: nanos(stored.code_attempt_window_seconds),
            notify_unknown_recipients: stored.notify_unknown_recipients,
        }
    }
}
