//! The accept loop. hyper serves each connection; this module decides which
//! connections stay. A connection that has not sent a request's headers
//! within the header timeout, or has sat idle between requests that long,
//! is closed. When the connection cap or the process's open-file limit is
//! reached, the longest-idle connection makes room for the new one, so
//! clients that trickle bytes can't keep others out. (axum's own `serve`
//! has neither: on a full file table it sleeps a second per accept.)

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tower_service::Service;

use crate::config::ServerLimits;

/// File descriptors kept free for everything but connections: the
/// database, its WAL, the outbox files, the component cache.
const RESERVED_FILES: u64 = 64;

/// Serves `router` on `listener` until `shutdown` resolves, then lets the
/// requests in progress finish (for up to the request timeout).
pub async fn serve_connections(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) {
    let cap = limits.max_connections.min(connection_budget());
    let table = Arc::new(Table::new(cap));
    let (stopping, stop) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let sweeper = tokio::spawn(sweep(Arc::clone(&table), limits.header_timeout));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors: an idle connection goes, or
                    // (when every one is busy) the next accept waits a moment.
                    if !(is_out_of_files(&e) && table.evict_idlest()) {
                        tracing::debug!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    continue;
                }
            },
        };
        if table.len() >= cap && !table.evict_idlest() {
            // Every connection is serving a request: this one waits its turn
            // in no queue of ours.
            metrics::counter!("reclaim_http_connections_closed_total", "reason" => "refused")
                .increment(1);
            drop(stream);
            continue;
        }
        let (id, activity, close) = table.open();
        let (router, table, stop) = (router.clone(), Arc::clone(&table), stop.clone());
        tasks.spawn(async move {
            serve_one(stream, peer, router, &activity, &close, stop, limits).await;
            table.close(id);
        });
        // Finished connections are reaped as we go, so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    drop(listener);
    sweeper.abort();
    let _ = stopping.send(true);
    let _ = tokio::time::timeout(limits.request_timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
}

async fn serve_one(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    activity: &Arc<Activity>,
    close: &Notify,
    mut stop: watch::Receiver<bool>,
    limits: ServerLimits,
) {
    let _ = stream.set_nodelay(true);
    let requests = Arc::clone(activity);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let busy = Busy::begin(&requests);
        let mut router = router.clone();
        async move {
            let response = router.call(request).await;
            drop(busy);
            response
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let connection = http.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        // Idle too long, or making room for a new connection.
        () = close.notified() => {}
        _ = stop.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// The connections open now.
struct Table {
    open: Mutex<HashMap<u64, Slot>>,
    next_id: AtomicU64,
}

/// An open connection: what it is doing, and how to end it.
struct Slot {
    activity: Arc<Activity>,
    close: Arc<Notify>,
}

/// Whether a connection is serving a request, and since when it has not
/// (in [`millis`]).
struct Activity {
    busy: AtomicUsize,
    idle_since: AtomicU64,
}

/// One request in service on a connection; dropped when it is answered, or
/// when the connection goes before that.
struct Busy(Arc<Activity>);

/// Milliseconds since the first connection: the clock of idle times.
fn millis() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

impl Table {
    fn new(cap: usize) -> Self {
        Self {
            open: Mutex::new(HashMap::with_capacity(cap.min(1024))),
            next_id: AtomicU64::new(0),
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Slot>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn len(&self) -> usize {
        self.slots().len()
    }

    fn open(&self) -> (u64, Arc<Activity>, Arc<Notify>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity {
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(millis()),
        });
        let close = Arc::new(Notify::new());
        let mut slots = self.slots();
        slots.insert(
            id,
            Slot {
                activity: Arc::clone(&activity),
                close: Arc::clone(&close),
            },
        );
        metrics::gauge!("reclaim_http_connections").set(slots.len() as f64);
        (id, activity, close)
    }

    fn close(&self, id: u64) {
        let mut slots = self.slots();
        slots.remove(&id);
        metrics::gauge!("reclaim_http_connections").set(slots.len() as f64);
    }

    /// Closes the connection that has been idle longest; false if every
    /// connection is serving a request.
    fn evict_idlest(&self) -> bool {
        let mut slots = self.slots();
        let idlest = slots
            .iter()
            .filter(|(_, slot)| slot.activity.busy.load(Ordering::Acquire) == 0)
            .min_by_key(|(_, slot)| slot.activity.idle_since.load(Ordering::Acquire))
            .map(|(id, _)| *id);
        let Some(id) = idlest else {
            return false;
        };
        // Out of the table now, so that the next accept sees the room; its
        // task ends it at once (a permit waits if it is not listening yet).
        if let Some(slot) = slots.remove(&id) {
            slot.close.notify_one();
        }
        metrics::counter!("reclaim_http_connections_closed_total", "reason" => "evicted")
            .increment(1);
        true
    }

    /// Closes every connection idle for longer than `limit`.
    fn close_idle(&self, limit: Duration) {
        let cutoff = millis().saturating_sub(limit.as_millis() as u64);
        let mut slots = self.slots();
        slots.retain(|_, Slot { activity, close }| {
            let idle = activity.busy.load(Ordering::Acquire) == 0
                && activity.idle_since.load(Ordering::Acquire) < cutoff;
            if idle {
                close.notify_one();
                metrics::counter!("reclaim_http_connections_closed_total", "reason" => "idle")
                    .increment(1);
            }
            !idle
        });
        metrics::gauge!("reclaim_http_connections").set(slots.len() as f64);
    }
}

impl Busy {
    fn begin(activity: &Arc<Activity>) -> Self {
        activity.busy.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(activity))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        // Stamped before the count drops, so that an idle connection is
        // never seen with an old stamp.
        self.0.idle_since.store(millis(), Ordering::Release);
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Closes idle connections a few times per header timeout; hyper's own
/// header timeout covers the first request, this covers keep-alive waits
/// and the trickle of bytes that keeps hyper's timer from ever firing.
async fn sweep(table: Arc<Table>, limit: Duration) {
    let mut every = tokio::time::interval((limit / 4).max(Duration::from_millis(50)));
    loop {
        every.tick().await;
        table.close_idle(limit);
    }
}

/// How many connections the open-file limit leaves room for, after raising
/// the soft limit to the hard one (as Go's runtime does at start).
fn connection_budget() -> usize {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            limit = raised;
        }
    }
    let files = limit.current.unwrap_or(u64::MAX);
    files
        .saturating_sub(RESERVED_FILES)
        .max(1)
        .min(usize::MAX as u64) as usize
}

fn is_out_of_files(e: &std::io::Error) -> bool {
    use rustix::io::Errno;
    matches!(Errno::from_io_error(e), Some(Errno::MFILE | Errno::NFILE))
}
