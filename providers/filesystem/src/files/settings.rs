//! `settings.json` as the engine's settings (the file's one shape is
//! `reclaim_wire::settings_file`); a missing file is created with one fresh
//! secret.

use reclaim_wire::settings_file::SettingsFile;

use super::{Data, random_hex};
use crate::bindings::exports::reclaim::recovery::settings::Settings;

const SECOND_NS: u64 = 1_000_000_000;

impl Data {
    /// The settings; a missing file is created with one fresh secret.
    pub fn settings(&self) -> Settings {
        let file: SettingsFile = match self.read_string("settings.json") {
            Some(text) => {
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("settings.json: {e}"))
            }
            None => {
                let fresh = SettingsFile::fresh("http://127.0.0.1:4433", random_hex::<32>());
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
            public_url: file.public_url,
            default_lifespan_ns: nanos(file.default_lifespan_seconds),
            max_lifespan_ns: nanos(file.max_lifespan_seconds),
            secrets: file.secrets.into_iter().map(String::into_bytes).collect(),
            revoke_older_links: file.revoke_older_links,
            max_code_attempts: file.max_code_attempts,
            max_code_attempts_per_identity: file.max_code_attempts_per_identity,
            code_attempt_window_ns: nanos(file.code_attempt_window_seconds),
            notify_unknown_recipients: file.notify_unknown_recipients,
        }
    }
}
