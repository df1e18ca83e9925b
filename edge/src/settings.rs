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

/// `RECLAIM_RECOVERY_UI_URL`, or Reclaim's own recovery page.
pub fn recovery_ui_url(public_url: &str) -> String {
    std::env::var("RECLAIM_RECOVERY_UI_URL")
        .ok()
        .filter(|u| url::Url::parse(u).is_ok())
        .unwrap_or_else(|| format!("{}/self-service/recovery", public_url.trim_end_matches('/')))
}

/// `RECLAIM_FLOW_LIFESPAN` (`30m`, `2h`), or an hour as Kratos'.
pub fn flow_lifespan_ns() -> u64 {
    std::env::var("RECLAIM_FLOW_LIFESPAN")
        .ok()
        .and_then(|text| humantime::parse_duration(&text).ok())
        .filter(|lifespan| !lifespan.is_zero())
        .and_then(|lifespan| u64::try_from(lifespan.as_nanos()).ok())
        .unwrap_or(reclaim_wire::flows::FLOW_LIFESPAN_NS)
}

/// `RECLAIM_USE_CONTINUE_WITH_TRANSITIONS` (`true`), off as in Kratos.
pub fn use_continue_with_transitions() -> bool {
    std::env::var("RECLAIM_USE_CONTINUE_WITH_TRANSITIONS").is_ok_and(|v| v == "true" || v == "1")
}

/// What the pages and authentik's routes need of `settings.json`.
pub struct Settings {
    /// The public URL, as links and flows name it.
    pub public_url: String,
    /// Wrong codes a flow survives, if the file names a number.
    pub max_code_attempts: Option<u32>,
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
            public_url: file.public_url.clone(),
            max_code_attempts: file.max_code_attempts,
            public_origin: public.origin().ascii_serialization(),
            secure_cookies: public.scheme() == "https",
            csrf: Csrf::new(secret.as_bytes()),
            email_stages: file.email_stages,
        }
    }
}
