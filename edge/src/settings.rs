//! The front's settings, read for each request (an edge runtime keeps no
//! instance between requests): the admin token and allowed `return_to`
//! URLs from the environment, under the names `reclaim serve` reads; the
//! public URL, the first hashing secret (the CSRF key's source, as in
//! `reclaim serve`) and any extra email stages from `/data/settings.json`,
//! the file the filesystem provider gives the engine, so the front and the
//! engine can't disagree about them.

use reclaim_wire::authentik::EmailStage;
use reclaim_wire::csrf::Csrf;
use reclaim_wire::settings_file::SettingsFile;

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

/// What the pages and authentik's routes need of `settings.json`.
pub struct Settings {
    /// `scheme://host[:port]` of the public URL, for the Origin check.
    pub public_origin: String,
    /// Whether cookies are `Secure` (an https public URL).
    pub secure_cookies: bool,
    pub csrf: Csrf,
    /// The stages besides `default` (`EmailStage::find` has it always).
    pub email_stages: Vec<EmailStage>,
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
}
