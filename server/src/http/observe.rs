//! What an operator sees of each request: one access-log line and the
//! request metrics, tied together by a request id that error bodies and the
//! `X-Request-Id` header carry; and the Prometheus `/metrics` document.

use axum::routing::MethodRouter;
use reclaim_wire::routes::{Route, Verb};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::AppState;
use crate::mail::MailStatus;

use crate::request_context::REQUEST_ID;

/// The id of the request being served (a fresh one outside a request).
pub fn request_id() -> String {
    crate::request_context::request_id().unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Latency buckets, in seconds: an operation takes about a millisecond.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Units of work per SQLite commit.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// The process's Prometheus recorder, installed on first use. An embedder
/// that installed its own recorder keeps it; this handle then renders
/// nothing of ours.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("reclaim_storage_batch_size".into()),
                    BATCH_BUCKETS,
                )
            })
            .expect("the bucket lists are not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics shows none of ours");
        }
        handle
    })
}

/// Serves the request under a fresh id, then logs one line for it and
/// counts it. The line names the route's template, never the path, query,
/// cookies or body: those carry tokens, codes and addresses.
pub async fn access_log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let id: Arc<str> = uuid::Uuid::new_v4().to_string().into();
    let mut response = REQUEST_ID.scope(Arc::clone(&id), next.run(request)).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    tracing::info!(
        target: "reclaim::access",
        method,
        route = %route,
        status,
        latency_us = elapsed.as_micros() as u64,
        request = %id,
    );
    metrics::counter!(
        "reclaim_http_requests_total",
        "method" => method,
        "route" => route.clone(),
        "status" => status.to_string()
    )
    .increment(1);
    metrics::histogram!("reclaim_http_request_duration_seconds", "route" => route)
        .record(elapsed.as_secs_f64());
    response
}

/// A method as a label: any other method is `other`, so that a client
/// can't make up labels without end.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// Prometheus metrics: requests, operations, storage batches, courier
/// attempts, connections, and the outbox by status.
#[utoipa::path(get, path = "/metrics", tag = "meta",
    security(("admin_token" = [])),
    responses(
        (status = 200, content_type = "text/plain", description = "Prometheus text format"),
        (status = 401, description = "No valid admin token"),
    ))]
pub async fn metrics_document(State(app): State<AppState>) -> Response {
    // The outbox is counted when asked, from the database every replica
    // shares, so each replica reports the same depth.
    let (backend, now) = (app.backend.clone(), app.now_nanos());
    match tokio::task::spawn_blocking(move || backend.status(now)).await {
        Ok(Ok(status)) => {
            for (mail_status, count) in [
                (MailStatus::Queued, status.queued),
                (MailStatus::Processing, status.processing),
                (MailStatus::Sent, status.sent),
                (MailStatus::Abandoned, status.abandoned),
            ] {
                metrics::gauge!("reclaim_outbox_messages", "status" => mail_status.as_str())
                    .set(count as f64);
            }
            metrics::gauge!("reclaim_outbox_oldest_queued_age_seconds")
                .set(status.oldest_queued_age_seconds.unwrap_or(0) as f64);
        }
        _ => tracing::warn!("the outbox could not be counted for /metrics"),
    }
    // Webhook deliveries by endpoint and status, and the endpoints a 410
    // disabled (1 while disabled), from the same shared database.
    let backend = app.backend.clone();
    match tokio::task::spawn_blocking(move || backend.webhook_status()).await {
        Ok(Ok(endpoints)) => {
            for e in endpoints {
                for (status, count) in [
                    ("queued", e.queued),
                    ("processing", e.processing),
                    ("delivered", e.delivered),
                    ("abandoned", e.abandoned),
                ] {
                    metrics::gauge!("reclaim_webhook_deliveries", "endpoint" => e.url.clone(), "status" => status)
                        .set(count as f64);
                }
                metrics::gauge!("reclaim_webhook_endpoint_disabled", "endpoint" => e.url.clone())
                    .set(if e.disabled_at.is_some() { 1.0 } else { 0.0 });
            }
        }
        _ => tracing::warn!("webhook deliveries could not be counted for /metrics"),
    }
    (
        StatusCode::OK,
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        prometheus().render(),
    )
        .into_response()
}

/// This area's handler of one method of a route (`http::endpoint`).
pub(super) fn endpoint(route: Route, verb: Verb) -> Option<MethodRouter<AppState>> {
    use axum::routing::get;
    Some(match (route, verb) {
        (Route::Metrics, Verb::Get) => get(metrics_document),
        _ => return None,
    })
}

/// This area's routes in the OpenAPI document.
pub(super) fn openapi() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics_document))
}
