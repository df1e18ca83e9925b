//! `reclaim serve`: the seed systems' HTTP APIs (Kratos' admin recovery,
//! authentik's user recovery), the self-service pages, health and OpenAPI.
//! Every recovery request goes through the component.

pub mod authentik;
pub mod csrf;
pub mod kratos;
pub mod pages;
pub mod rate_limit;
pub mod self_service;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result};
use axum::Extension;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio::sync::Notify;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Config;
use crate::mail::Courier;
use crate::operations::Reclaim;
use crate::storage::SqliteStorage;

/// Largest request body accepted; recovery requests are a few hundred bytes.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// What every handler shares. Cloned for every request, so it is one
/// reference count.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The contents of [`AppState`].
pub struct Shared {
    pub reclaim: Reclaim,
    pub storage: Arc<SqliteStorage>,
    pub config: Arc<Config>,
    pub pages: Arc<pages::Pages>,
    pub limiter: Arc<rate_limit::RateLimiter>,
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
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(
        reclaim: Reclaim,
        storage: Arc<SqliteStorage>,
        config: Config,
        admin_token: String,
    ) -> Result<Self> {
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
        Ok(Self(Arc::new(Shared {
            limiter: Arc::new(rate_limit::RateLimiter::new(
                limits.per_address,
                limits.per_client,
                limits.window,
            )),
            csrf,
            pages: Arc::new(pages::Pages::new()?),
            reclaim,
            storage,
            config: Arc::new(config),
            courier: Arc::new(Notify::new()),
            hashing: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            ),
            admin_token: Arc::new(admin_token),
            public_origin,
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
        let secure = if self.config.settings.public_url.starts_with("https://") {
            "; Secure"
        } else {
            ""
        };
        let max_age = max_age
            .map(|s| format!("; Max-Age={s}"))
            .unwrap_or_default();
        HeaderValue::from_str(&format!(
            "{name}={value}; Path={path}{max_age}; HttpOnly; SameSite=Strict{secure}"
        ))
        .expect("our cookie values are UUIDs and hex")
    }

    pub fn now_nanos(&self) -> u64 {
        self.reclaim.clock().now_nanos()
    }

    fn authorized(&self, request: &Request) -> bool {
        let presented = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .unwrap_or_default();
        !self.admin_token.is_empty()
            && bool::from(presented.as_bytes().ct_eq(self.admin_token.as_bytes()))
    }
}

/// The value of cookie `name`, if the request carries it.
fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_string())
}

/// Whether `value` is what our cookies' secrets are: 256 bits in hex.
fn is_hex_256(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The credentials of `Authorization: Bearer <token>`; the scheme is
/// case-insensitive (RFC 7235).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Reclaim", description = "Account recovery: Kratos' and authentik's recovery APIs, served by a sandboxed WebAssembly component."),
    modifiers(&AdminToken),
)]
struct ApiDoc;

struct AdminToken;

impl utoipa::Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    let kratos = || {
        OpenApiRouter::new()
            .routes(routes!(kratos::create_recovery_link))
            .routes(routes!(kratos::create_recovery_code))
            .route_layer(middleware::from_fn_with_state(state.clone(), kratos_auth))
    };
    let authentik = OpenApiRouter::new()
        .routes(routes!(authentik::recovery))
        .routes(routes!(authentik::recovery_email))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            authentik_auth,
        ));
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/admin", kratos())
        .nest("/iam", kratos())
        .merge(authentik)
        .routes(routes!(alive))
        .routes(routes!(ready))
        .routes(routes!(self_service::show, self_service::request))
        .routes(routes!(self_service::confirm))
        .routes(routes!(self_service::code))
        .routes(routes!(
            self_service::password_form,
            self_service::set_password
        ))
        .routes(routes!(stylesheet))
        .routes(routes!(openapi_document))
        .split_for_parts();
    api.layer(Extension(Arc::new(openapi)))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            security_headers,
        ))
        .with_state(state)
}

async fn kratos_auth(State(app): State<AppState>, request: Request, next: Next) -> Response {
    if app.authorized(&request) {
        next.run(request).await
    } else {
        kratos::unauthorized()
    }
}

async fn authentik_auth(State(app): State<AppState>, request: Request, next: Next) -> Response {
    if app.authorized(&request) {
        next.run(request).await
    } else {
        authentik::forbidden()
    }
}

/// Responses carry links, tokens and sessions: none may be cached or leak
/// through a Referer to another site (`same-origin`: a Referer only ever
/// goes back to us, which also makes browsers name our origin on our own
/// form posts, see `self_service::forged`). Pages run no script and load
/// only our stylesheet; a form may post only to us, or (after a recovery)
/// redirect to an allowed `return_to`.
async fn security_headers(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let is_asset = request.uri().path().starts_with("/self-service/assets/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let mut form_action = String::from("'self'");
    for allowed in &app.config.allowed_return_urls {
        form_action.push(' ');
        form_action.push_str(&allowed.origin().ascii_serialization());
    }
    let csp = format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action {form_action}; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        headers.insert(CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !is_asset {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta", responses((status = 200, description = "The OpenAPI document")))]
async fn openapi_document(
    Extension(doc): Extension<Arc<utoipa::openapi::OpenApi>>,
) -> impl IntoResponse {
    axum::Json(doc.as_ref().clone())
}

/// The pages' stylesheet.
#[utoipa::path(get, path = "/self-service/assets/style.css", tag = "self-service",
    responses((status = 200, content_type = "text/css", description = "The stylesheet")))]
async fn stylesheet() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        pages::STYLESHEET,
    )
}

/// Whether the process is up.
#[utoipa::path(get, path = "/health/alive", tag = "health", responses((status = 200, description = "Alive")))]
async fn alive() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

/// Whether the database answers.
#[utoipa::path(get, path = "/health/ready", tag = "health", responses(
    (status = 200, description = "Ready"),
    (status = 503, description = "The database does not answer"),
))]
async fn ready(State(app): State<AppState>) -> Response {
    let storage = app.storage.clone();
    match tokio::task::spawn_blocking(move || storage.ping()).await {
        Ok(Ok(())) => axum::Json(json!({ "status": "ok" })).into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "errors": { "database": "not answering" } })),
        )
            .into_response(),
    }
}

/// RFC 3339 in UTC with nanoseconds, as Kratos' Go server prints times.
pub fn rfc3339(nanos: u64) -> String {
    humantime::format_rfc3339_nanos(UNIX_EPOCH + Duration::from_nanos(nanos)).to_string()
}

/// How often queued self-service requests are served: a steady pace that
/// owes nothing to when any one request came, so the work a known address
/// causes can't be told from the requester's own next request.
pub const REQUEST_PACE: Duration = Duration::from_millis(200);
/// Requests served in one turn of the queue (they commit together).
const REQUEST_BATCH: usize = 256;

/// Serves the self-service requests queued now; returns how many were
/// served. A request whose operation failed is dropped (and logged) rather
/// than tried forever.
pub async fn serve_queued_requests(app: &AppState) -> Result<usize> {
    let storage = app.storage.clone();
    let batch =
        tokio::task::spawn_blocking(move || storage.queued_requests(REQUEST_BATCH)).await??;
    // All are submitted before any is awaited, so they share a commit.
    let pending: Vec<_> = batch
        .into_iter()
        .map(|request| {
            (
                request.id,
                app.reclaim.nonblocking().serve_queued_request(request),
            )
        })
        .collect();
    let served = pending.len();
    for (id, outcome) in pending {
        match outcome.await {
            Ok(()) | Err(crate::Error::Refused(_)) => {}
            Err(crate::Error::Failed(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "self-service request not served here; dropped");
                let storage = app.storage.clone();
                tokio::task::spawn_blocking(move || storage.drop_request(id)).await??;
            }
        }
    }
    if served > 0 {
        app.courier.notify_one();
    }
    Ok(served)
}

/// Serves until SIGINT or SIGTERM; the courier, the request queue and the
/// rate limiter's clean-up run alongside.
pub async fn serve(
    state: AppState,
    courier: Courier,
    listener: tokio::net::TcpListener,
) -> Result<()> {
    let interval = state.config.courier.interval;
    let wake = Arc::clone(&state.courier);
    let courier = Arc::new(courier);
    let courier_task = tokio::spawn(async move {
        loop {
            let pass = Arc::clone(&courier);
            match tokio::task::spawn_blocking(move || pass.drain()).await {
                Ok(Err(e)) => {
                    tracing::warn!(error = %format!("{e:#}"), "courier pass failed; mail stays queued")
                }
                Err(e) => tracing::warn!(error = %e, "courier pass panicked; mail stays queued"),
                Ok(Ok(_)) => {}
            }
            let _ = tokio::time::timeout(interval, wake.notified()).await;
        }
    });
    let queue = state.clone();
    let requests_task = tokio::spawn(async move {
        let mut pace = tokio::time::interval(REQUEST_PACE);
        pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            pace.tick().await;
            if let Err(e) = serve_queued_requests(&queue).await {
                tracing::warn!(error = %format!("{e:#}"), "serving queued requests failed; they stay queued");
            }
        }
    });
    let limiter = Arc::clone(&state.limiter);
    let forget_task = tokio::spawn(async move {
        let mut every = tokio::time::interval(rate_limit::FORGET_EVERY);
        loop {
            every.tick().await;
            limiter.forget_idle();
        }
    });
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving")?;
    courier_task.abort();
    requests_task.abort();
    forget_task.abort();
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            term.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}
