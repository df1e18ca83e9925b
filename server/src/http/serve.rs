//! `reclaim serve`'s loop: the HTTP server, with the mail and webhook
//! couriers, the request queue, the rate limits' clean-up and the audit
//! trail's retention running alongside.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use super::{AppState, rate_limit, router};
use crate::events::webhooks::WebhookCourier;
use crate::mail::Courier;

/// How often the audit trail forgets events past their retention.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// How long one turn of a courier may deliver: a shutdown waits for the
/// turn in progress.
const DRAIN_BUDGET: Duration = Duration::from_secs(2);

/// How long an expired self-service flow is kept (answering 410) before
/// it is purged.
const FLOWS_KEPT_EXPIRED: Duration = Duration::from_secs(60 * 60);
/// How often queued self-service requests are served: a steady pace that
/// owes nothing to when any one request came, so the work a known address
/// causes can't be told from the requester's own next request.
pub const REQUEST_PACE: Duration = Duration::from_millis(200);
/// Requests served in one turn of the queue (they commit together).
const REQUEST_BATCH: usize = 256;
/// How long a claim on queued requests keeps other replicas off them: past
/// it, a replica that died holding them leaves them to the others.
const REQUEST_LEASE: Duration = Duration::from_secs(60);

/// Serves the self-service requests queued now; returns how many were
/// served. A request whose operation failed is dropped (and logged) rather
/// than tried forever.
pub async fn serve_queued_requests(app: &AppState) -> Result<usize> {
    let backend = app.backend.clone();
    let now = app.now_nanos();
    let lease_until = now.saturating_add(crate::clock::duration_nanos(REQUEST_LEASE));
    let limits = app.clone();
    let batch = tokio::task::spawn_blocking(move || {
        let claimed = backend.claim_requests(REQUEST_BATCH, now, lease_until)?;
        let mut kept = Vec::with_capacity(claimed.len());
        for request in claimed {
            if within_identitys_allowance(&limits, &request.email, now)? {
                kept.push(request);
            } else {
                backend.drop_request(request.id)?;
            }
        }
        anyhow::Ok(kept)
    })
    .await??;
    // All are submitted before any is awaited, so they share a commit.
    let pending: Vec<_> = batch
        .into_iter()
        .map(|request| (request.id, app.reclaim.serve_queued_request(request)))
        .collect();
    let served = pending.len();
    for (id, outcome) in pending {
        match outcome.await {
            Ok(()) | Err(crate::Error::Refused(_)) => {}
            // The database is out of reach: the request stays queued, and
            // is claimed again once its lease runs out.
            Err(crate::Error::Failed(e)) if crate::backends::is_unavailable(&e) => {
                tracing::warn!(error = %format!("{e:#}"), "self-service request not served yet; it stays queued");
            }
            Err(e @ crate::Error::Overloaded(_)) => {
                tracing::warn!(error = %e, "self-service request not served yet; it stays queued");
            }
            Err(crate::Error::Failed(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "self-service request not served here; dropped");
                let backend = app.backend.clone();
                tokio::task::spawn_blocking(move || backend.drop_request(id)).await??;
            }
        }
    }
    if served > 0 {
        app.courier.notify_one();
    }
    Ok(served)
}

/// Whether a queued request for `email` may be served: its address finds
/// no identity, or one still within its own allowance (`RateLimiter::
/// admit_identity`).
fn within_identitys_allowance(app: &AppState, email: &str, now: u64) -> Result<bool> {
    let filter = crate::storage::IdentityFilter {
        email: Some(email.to_owned()),
        after_pk: None,
        limit: 1,
    };
    let Some(found) = app.backend.list_identity_records(&filter)?.pop() else {
        return Ok(true);
    };
    let admitted = app
        .limiter
        .admit_identity(&*app.backend, &found.identity.id, now)
        .wait()?;
    Ok(admitted.is_ok())
}

/// Serves until SIGINT or SIGTERM; the courier, the request queue and the
/// rate limiter's clean-up run alongside.
pub async fn serve(
    state: AppState,
    courier: Courier,
    webhooks: WebhookCourier,
    listener: tokio::net::TcpListener,
) -> Result<()> {
    // Installed before the first request, so that nothing counted is lost.
    super::observe::prometheus();
    let interval = state.config.courier.interval;
    let wake = Arc::clone(&state.courier);
    let courier = Arc::new(courier);
    let courier_task = tokio::spawn(async move {
        loop {
            let pass = Arc::clone(&courier);
            match tokio::task::spawn_blocking(move || pass.drain_within(DRAIN_BUDGET)).await {
                Ok(Err(e)) => {
                    tracing::warn!(error = %format!("{e:#}"), "courier pass failed; mail stays queued")
                }
                Err(e) => tracing::warn!(error = %e, "courier pass panicked; mail stays queued"),
                Ok(Ok(_)) => {}
            }
            let _ = tokio::time::timeout(interval, wake.notified()).await;
        }
    });
    // Webhooks go out on a courier of their own: a slow endpoint delays
    // no mail. Every operation that records an event wakes it.
    let wake = state.reclaim.events().planned();
    let webhooks = Arc::new(webhooks);
    let webhook_task = tokio::spawn(async move {
        loop {
            let pass = Arc::clone(&webhooks);
            match tokio::task::spawn_blocking(move || pass.drain_within(DRAIN_BUDGET)).await {
                Ok(Err(e)) => {
                    tracing::warn!(error = %format!("{e:#}"), "webhook pass failed; deliveries stay queued")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "webhook pass panicked; deliveries stay queued")
                }
                Ok(Ok(_)) => {}
            }
            let _ = tokio::time::timeout(interval, wake.notified()).await;
        }
    });
    let retention = state.config.event_retention;
    let trail = state.clone();
    let retention_task = tokio::spawn(async move {
        let mut every = tokio::time::interval(RETENTION_EVERY);
        loop {
            every.tick().await;
            let before = trail
                .now_nanos()
                .saturating_sub(crate::clock::duration_nanos(retention));
            let backend = trail.backend.clone();
            match tokio::task::spawn_blocking(move || backend.purge_events(before)).await {
                Ok(Ok(purged)) if purged > 0 => tracing::info!(purged, "old events purged"),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %format!("{e:#}"), "purging old events failed")
                }
                Err(e) => tracing::warn!(error = %e, "purging old events panicked"),
            }
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
    let counters = state.clone();
    let forget_task = tokio::spawn(async move {
        let mut every = tokio::time::interval(rate_limit::FORGET_EVERY);
        loop {
            every.tick().await;
            let (backend, now) = (counters.backend.clone(), counters.now_nanos());
            match tokio::task::spawn_blocking(move || backend.forget_idle(now)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %format!("{e:#}"), "forgetting idle rate limits failed")
                }
                Err(e) => tracing::warn!(error = %e, "forgetting idle rate limits panicked"),
            }
            // Expired flows still answer 410 (and name a new flow) for a
            // while, then they go: the table holds only recent flows.
            let backend = counters.backend.clone();
            let before = now.saturating_sub(crate::clock::duration_nanos(FLOWS_KEPT_EXPIRED));
            match tokio::task::spawn_blocking(move || backend.purge_flows(before)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "purging old flows failed"),
                Err(e) => tracing::warn!(error = %e, "purging old flows panicked"),
            }
        }
    });
    let limits = state.config.server;
    super::serve_connections(listener, router(state), limits, shutdown_signal()).await;
    courier_task.abort();
    webhook_task.abort();
    retention_task.abort();
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
