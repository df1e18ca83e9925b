//! What every handler shares, and the request headers it reads.

use std::sync::Arc;

use anyhow::{Context, Result};
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::header::AUTHORIZATION;
use tokio::sync::Notify;

use super::{csrf, pages, rate_limit};
use crate::config::Config;
use crate::operations::Reclaim;
use crate::storage::Backend;

/// What every handler shares. Cloned for every request, so it is one
/// reference count.
#[derive(Clone)]
pub struct AppState(Arc<App>);

/// The contents of [`AppState`].
pub struct App {
    pub reclaim: Reclaim,
    pub backend: Arc<dyn Backend>,
    pub config: Arc<Config>,
    pub pages: Arc<pages::Pages>,
    pub limiter: rate_limit::RateLimiter,
    /// CSRF tokens of the self-service forms.
    pub csrf: csrf::Csrf,
    /// Wakes the courier after an operation queued mail.
    pub courier: Arc<Notify>,
    /// Password hashes computed at once: each takes ~19 MiB, so this bounds
    /// the memory that setting passwords can take.
    pub hashing: tokio::sync::Semaphore,
    admin_token: Arc<String>,
    /// `scheme://host[:port]` of the public URL, for the Origin check.
    pub public_origin: String,
    /// Where the pages' forms may lead (`Config::form_targets`), worked out
    /// once for every answer's security headers.
    pub form_targets: Vec<url::Url>,
}

impl std::ops::Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.0
    }
}

impl AppState {
    pub fn new(
        reclaim: Reclaim,
        backend: Arc<dyn Backend>,
        config: Config,
        admin_token: String,
    ) -> Result<Self> {
        let form_targets = config.form_targets();
        let public_origin = url::Url::parse(&config.settings.public_url)?
            .origin()
            .ascii_serialization();
        let limits = &config.rate_limits;
        let csrf = csrf::Csrf::new(
            config
                .settings
                .secrets
                .first()
                .context("no hashing secret to derive the CSRF key from")?
                .bytes(),
        );
        Ok(Self(Arc::new(App {
            limiter: rate_limit::RateLimiter::new(
                limits.per_address,
                limits.per_client,
                limits.flows_per_client,
                limits.window,
            ),
            csrf,
            pages: Arc::new(pages::Pages::new()?),
            reclaim,
            backend,
            config: Arc::new(config),
            courier: Arc::new(Notify::new()),
            hashing: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            ),
            admin_token: Arc::new(admin_token),
            public_origin,
            form_targets,
        })))
    }

    /// The `Set-Cookie` value of one of our cookies: for our pages' path
    /// alone, `HttpOnly`, `SameSite=Strict`, `Secure` when the public URL is
    /// https; with `max_age` in seconds, or for the browser's session.
    pub fn private_cookie(
        &self,
        name: &str,
        value: &str,
        path: &str,
        max_age: Option<u64>,
    ) -> HeaderValue {
        let secure = self.config.settings.public_url.starts_with("https://");
        HeaderValue::from_str(&csrf::private_cookie(name, value, path, max_age, secure))
            .expect("our cookie values are UUIDs and hex")
    }

    pub fn now_nanos(&self) -> u64 {
        self.reclaim.clock().now_nanos()
    }

    pub(super) fn authorized(&self, request: &Request) -> bool {
        let presented = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        reclaim_wire::checks::admin_authorized(presented, &self.admin_token)
    }
}
