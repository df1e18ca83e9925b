//! The front's settings, read for each request (an edge runtime keeps no
//! instance between requests): the admin token and allowed `return_to`
//! URLs from the environment, under the names `reclaim serve` reads; the
//! public URL, the first hashing secret (the CSRF key's source, as in
//! `reclaim serve`) and any extra email stages from `/data/settings.json`,
//! the file the filesystem provider gives the engine, so the front and the
//! engine can't disagree about them.

use reclaim_wire::authentik::{DEFAULT_STAGE, DEFAULT_STAGE_TEMPLATE, DEFAULT_STAGE_TOKEN_EXPIRY};
use reclaim_wire::csrf::Csrf;
use serde::Deserialize;

const SETTINGS_FILE: &str = "/data/settings.json";

/// The admin API's bearer token; unset or empty, the admin API admits
/// no one.
pub fn admin_token() -> String {
    std::env::var("RECLAIM_ADMIN_TOKEN").unwrap_or_default()
}

/// `RECLAIM_ALLOWED_RETURN_URLS`, comma-separated; entries that are not
/// URLs admit nothing.
pub fn allowed_return_urls() -> Vec<url::Url> {
    std::env::var("RECLAIM_ALLOWED_RETURN_URLS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|u| url::Url::parse(u.trim()).ok())
        .collect()
}

/// An authentik email stage.
#[derive(Deserialize, Clone)]
pub struct EmailStage {
    pub name: String,
    pub id: Option<String>,
    pub subject: Option<String>,
    #[serde(default = "default_template")]
    pub template: String,
    #[serde(default = "default_expiry")]
    pub token_expiry: String,
}

fn default_template() -> String {
    DEFAULT_STAGE_TEMPLATE.into()
}
fn default_expiry() -> String {
    DEFAULT_STAGE_TOKEN_EXPIRY.into()
}

#[derive(Deserialize)]
struct SettingsFile {
    public_url: String,
    secrets: Vec<String>,
    #[serde(default)]
    email_stages: Vec<EmailStage>,
}

/// What the pages and authentik's routes need of `settings.json`.
pub struct Settings {
    /// `scheme://host[:port]` of the public URL, for the Origin check.
    pub public_origin: String,
    /// Whether cookies are `Secure` (an https public URL).
    pub secure_cookies: bool,
    pub csrf: Csrf,
    email_stages: Vec<EmailStage>,
}

impl Settings {
    /// Reads `settings.json`. On a fresh directory the engine creates it
    /// (with a new secret) the first time it runs, so a missing file is
    /// made by asking the engine something harmless first.
    pub fn load() -> Self {
        let text = match std::fs::read_to_string(SETTINGS_FILE) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let _ = crate::bindings::reclaim::recovery::recovery::check_link("");
                std::fs::read_to_string(SETTINGS_FILE)
                    .unwrap_or_else(|e| panic!("{SETTINGS_FILE}: {e} (run with --dir DIR::/data)"))
            }
            Err(e) => panic!("{SETTINGS_FILE}: {e}"),
        };
        let file: SettingsFile =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{SETTINGS_FILE}: {e}"));
        let public = url::Url::parse(&file.public_url)
            .unwrap_or_else(|e| panic!("{SETTINGS_FILE}: public_url: {e}"));
        let secret = file
            .secrets
            .first()
            .unwrap_or_else(|| panic!("{SETTINGS_FILE}: no secret"));
        Self {
            public_origin: public.origin().ascii_serialization(),
            secure_cookies: public.scheme() == "https",
            csrf: Csrf::new(secret.as_bytes()),
            email_stages: file.email_stages,
        }
    }

    /// The stage named or identified by `key`; `default` always exists.
    pub fn email_stage(&self, key: &str) -> Option<EmailStage> {
        let found = self.email_stages.iter().find(|s| {
            s.name == key
                || s.id
                    .as_deref()
                    .is_some_and(|id| id.eq_ignore_ascii_case(key))
        });
        match found {
            Some(stage) => Some(stage.clone()),
            None if key == DEFAULT_STAGE => Some(EmailStage {
                name: DEFAULT_STAGE.into(),
                id: None,
                subject: None,
                template: default_template(),
                token_expiry: default_expiry(),
            }),
            None => None,
        }
    }
}
