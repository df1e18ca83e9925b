//! `reclaim serve`: the HTTP APIs, the courier and the request queue in one
//! process.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::Service;
use reclaim_server::config::Config;
use reclaim_server::http::{self, AppState};

/// The admin API's bearer token: configured, or kept in the data directory
/// (created on first start, readable by the owner alone).
fn admin_token(config: &Config) -> Result<(String, Option<PathBuf>)> {
    if let Some(token) = &config.admin_token {
        return Ok((token.clone(), None));
    }
    let path = config.data.join("admin-token");
    if !path.exists() {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw)?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(mut file) => std::io::Write::write_all(&mut file, hex::encode(raw).as_bytes())?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        }
    }
    let token =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok((token.trim().to_string(), Some(path)))
}

/// How long a stopping `serve` waits for the couriers' work in progress.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(20);

pub fn serve(service: Service) -> Result<Value> {
    let (token, token_file) = admin_token(&service.config)?;
    let listen = service.config.listen;
    // The first request shouldn't pay for faulting in the runtime, and a
    // component that can't be instantiated, or settings it refuses, should
    // stop the start: asking the component about the settings instantiates
    // it, which warms the runtime too.
    service
        .reclaim
        .runtime()
        .check_settings(service.reclaim.settings())?;
    let state = AppState::new(service.reclaim, service.backend, service.config, token)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let bound = listener.local_addr()?;
        // One line for whoever started us (scripts, tests): where to connect,
        // and where the admin token is (never the token itself).
        println!(
            "{}",
            json!({ "listening": bound.to_string(), "admin_token_file": token_file })
        );
        match &token_file {
            Some(path) => tracing::warn!("admin API token is in {}", path.display()),
            None => tracing::info!("admin API token comes from the configuration"),
        }
        http::serve(state, service.courier, service.webhooks, listener).await
    })?;
    // A delivery in flight finishes or times out; nothing waits longer.
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    Ok(json!({ "stopped": true }))
}
