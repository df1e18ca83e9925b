//! The TOML configuration: any file either resolves or is refused with an
//! error; never a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use reclaim_server::config::{Config, Options};

fuzz_target!(|text: &str| {
    // One data directory for every run: resolving creates it and its secrets.
    static DATA: OnceLock<tempfile::TempDir> = OnceLock::new();
    let data = DATA.get_or_init(|| tempfile::tempdir().unwrap());
    let overrides = Options {
        data: Some(data.path().to_path_buf()),
        ..Options::default()
    };
    let _ = Config::resolve_toml(text, overrides);
});
