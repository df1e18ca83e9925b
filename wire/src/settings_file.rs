//! `settings.json`, the settings of the wasmtime CLI and the edge: one
//! shape, which the filesystem provider reads for the engine's settings and
//! the edge for its origin, CSRF key and email stages, so the two can't
//! read one file apart. A tunable left out is left to the component's
//! default (`wit/recovery.wit`, `settings`).

use serde::{Deserialize, Serialize};

use crate::authentik::EmailStage;

/// The file's contents.
#[derive(Debug, Serialize, Deserialize)]
pub struct SettingsFile {
    /// The public URL links and the pages' origin are built on.
    pub public_url: String,
    /// Hashing secrets, newest first; the first is also the CSRF key's
    /// source.
    pub secrets: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_lifespan_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lifespan_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_older_links: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_code_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_code_attempts_per_identity: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_attempt_window_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_unknown_recipients: Option<bool>,
    /// authentik's email stages besides `default`; only an operator writes
    /// them, never the provider that creates a fresh file.
    #[serde(default, skip_serializing)]
    pub email_stages: Vec<EmailStage>,
}

impl SettingsFile {
    /// A fresh file: this URL and secret, every tunable at its default.
    pub fn fresh(public_url: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            public_url: public_url.into(),
            secrets: vec![secret.into()],
            default_lifespan_seconds: None,
            max_lifespan_seconds: None,
            revoke_older_links: None,
            max_code_attempts: None,
            max_code_attempts_per_identity: None,
            code_attempt_window_seconds: None,
            notify_unknown_recipients: None,
            email_stages: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_file_names_only_the_url_and_secret_and_reads_back() {
        let fresh = SettingsFile::fresh("http://127.0.0.1:4433", "s".repeat(64));
        let text = serde_json::to_string(&fresh).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let keys: Vec<_> = value.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["public_url", "secrets"]);
        let back: SettingsFile = serde_json::from_str(&text).unwrap();
        assert_eq!(back.secrets, fresh.secrets);
        assert!(back.max_code_attempts.is_none() && back.email_stages.is_empty());
    }

    #[test]
    fn an_operators_file_gives_tunables_and_stages() {
        let file: SettingsFile = serde_json::from_str(
            r#"{"public_url": "https://id.example", "secrets": ["a"], "max_code_attempts": 3,
                "email_stages": [{"name": "welcome", "subject": "Hi"}]}"#,
        )
        .unwrap();
        assert_eq!(file.max_code_attempts, Some(3));
        assert_eq!(file.email_stages[0].name, "welcome");
    }
}
