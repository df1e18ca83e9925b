//! `settings.json`: the engine's settings, with the defaults of what it
//! leaves out; a missing file is created with one fresh secret.

use serde::{Deserialize, Serialize};

use super::{Data, active_by_default, random_hex};
use crate::bindings::exports::reclaim::recovery::settings::Settings;

/// `settings.json`.
#[derive(Serialize, Deserialize)]
struct StoredSettings {
    public_url: String,
    secrets: Vec<String>,
    #[serde(default = "default_lifespan")]
    default_lifespan_seconds: u64,
    #[serde(default = "max_lifespan")]
    max_lifespan_seconds: u64,
    #[serde(default = "active_by_default")]
    revoke_older_links: bool,
    #[serde(default = "max_code_attempts")]
    max_code_attempts: u32,
    #[serde(default)]
    notify_unknown_recipients: bool,
    #[serde(default = "max_code_attempts_per_identity")]
    max_code_attempts_per_identity: u32,
    #[serde(default = "code_attempt_window")]
    code_attempt_window_seconds: u64,
}

fn default_lifespan() -> u64 {
    3600
}
fn max_lifespan() -> u64 {
    86_400
}
fn max_code_attempts() -> u32 {
    5
}
fn max_code_attempts_per_identity() -> u32 {
    10
}
fn code_attempt_window() -> u64 {
    3600
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
                    default_lifespan_seconds: default_lifespan(),
                    max_lifespan_seconds: max_lifespan(),
                    revoke_older_links: true,
                    max_code_attempts: max_code_attempts(),
                    notify_unknown_recipients: false,
                    max_code_attempts_per_identity: max_code_attempts_per_identity(),
                    code_attempt_window_seconds: code_attempt_window(),
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
        Settings {
            public_url: stored.public_url,
            default_lifespan_ns: stored
                .default_lifespan_seconds
                .saturating_mul(1_000_000_000),
            max_lifespan_ns: stored.max_lifespan_seconds.saturating_mul(1_000_000_000),
            secrets: stored.secrets.into_iter().map(String::into_bytes).collect(),
            revoke_older_links: stored.revoke_older_links,
            max_code_attempts: stored.max_code_attempts,
            max_code_attempts_per_identity: stored.max_code_attempts_per_identity,
            code_attempt_window_ns: stored
                .code_attempt_window_seconds
                .saturating_mul(1_000_000_000),
            notify_unknown_recipients: stored.notify_unknown_recipients,
        }
    }
}
