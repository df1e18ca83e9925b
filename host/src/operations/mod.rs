//! The recovery operations as a Rust API: each one runs the component once,
//! inside one unit of work that commits only if the component returned, and
//! answers with a [`Pending`]: `.wait()` for it on a thread, or `.await` it.
//! Issuing (`issue`), redeeming (`redeem`), the sessions a redemption
//! opens (`sessions`), the hand-off to the platform (`handoff`) and the
//! identity admin API's writes (`identities`) each have a file. Every
//! operation records its events in its own unit of work (`record`).

mod handoff;
mod identities;
mod issue;

pub use handoff::{Assertion, Completion, Redeemed, Step};

/// A storage error as the identity API answers it: a taken address or
/// external id, or a directory the platform manages, is a 409.
pub fn identity_storage_error(e: anyhow::Error) -> Error {
    identities::conflict(e)
}
mod redeem;
mod sessions;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use wasmtime::Store;

use crate::clock::{Clock, SystemClock};
use crate::directory::UserDirectory;
use crate::events::{Event, EventType, Events, Method};
use crate::runtime::{HostState, Observed, Runtime};
use crate::settings::Settings;
use crate::storage::{Pending, Storage, UnitOfWork};
use crate::wit::RecoveryError;
use crate::wit::exports::reclaim::recovery::recovery::Guest;

/// How a recovery email is sent (authentik's email stage).
#[derive(Clone, Copy, Debug, Default)]
pub struct EmailOptions<'a> {
    /// Lifespan of the mailed link, `^[0-9]+(ns|us|ms|s|m|h)$`.
    pub expires_in: Option<&'a str>,
    /// Mail template set (default `recovery-link`).
    pub template: Option<&'a str>,
    /// Subject template replacing the set's.
    pub subject: Option<&'a str>,
    /// Sender replacing the configured one: `address` or
    /// `Name <address>`, refused (400) unless it is one.
    pub from: Option<&'a str>,
}

/// What a revocation ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Revocation {
    /// Outstanding links and codes revoked.
    pub credentials: u32,
    /// Live recovery sessions ended.
    pub sessions: u32,
}

/// Why an operation did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The component refused the request; the error says why, in the shape
    /// of the seed APIs' error bodies.
    #[error("{} {}: {}", .0.code, .0.status, .0.message)]
    Refused(RecoveryError),
    /// The component trapped or the host failed; nothing was written.
    #[error("the recovery engine failed: {0:#}")]
    Failed(#[from] anyhow::Error),
    /// As many operations as allowed are already waiting for the storage;
    /// this one was not started. Retry shortly.
    #[error("{0} recovery operations are already in flight; this one was not started")]
    Overloaded(usize),
}

impl Error {
    /// The label of this outcome in metrics: `ok` is the success, a
    /// refusal is named by its kind.
    fn outcome(&self) -> &'static str {
        match self {
            Self::Refused(refusal) => refusal.kind.wit_name(),
            Self::Failed(failure) if crate::backends::is_unavailable(failure) => "unavailable",
            Self::Failed(_) => "failed",
            Self::Overloaded(_) => "overloaded",
        }
    }
}

/// The recovery operations bound to their storage, settings and clock.
/// Every operation is handed to the storage (the SQLite backend runs it on
/// its writer thread) and answers through a [`Pending`].
#[derive(Clone)]
pub struct Reclaim {
    runtime: Runtime,
    storage: Arc<dyn Storage>,
    settings: Arc<Settings>,
    clock: Arc<dyn Clock>,
    admission: Arc<Admission>,
    /// An embedder's own users, in front of the backend's directory.
    users: Option<Arc<dyn UserDirectory>>,
    /// Who hears of what the operations do.
    events: Events,
    /// How a redemption in the pages ends.
    completion: Completion,
    assertion_lifespan: std::time::Duration,
}

/// Operations submitted and not yet answered, against how many may be.
/// Storage queues are unbounded; this bound keeps a burst from queueing
/// more work than the storage can finish before callers give up, and
/// answers the rest at once.
struct Admission {
    in_flight: AtomicUsize,
    cap: usize,
}

/// One admitted operation; dropping it (when the operation ends, or its
/// job is dropped unrun) gives its place back.
struct Admitted(Arc<Admission>);

impl Admission {
    fn admit(self: &Arc<Self>) -> Result<Admitted, Error> {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let admitted = Admitted(Arc::clone(self));
        if before >= self.cap {
            return Err(Error::Overloaded(before));
        }
        #[cfg(feature = "metrics")]
        metrics::gauge!("reclaim_operations_in_flight").set((before + 1) as f64);
        Ok(admitted)
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let _before = self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        #[cfg(feature = "metrics")]
        metrics::gauge!("reclaim_operations_in_flight").set(_before.saturating_sub(1) as f64);
    }
}

impl Reclaim {
    /// The operations on the system clock.
    pub fn new(runtime: Runtime, storage: Arc<dyn Storage>, settings: Settings) -> Self {
        Self {
            runtime,
            storage,
            settings: Arc::new(settings),
            clock: Arc::new(SystemClock),
            admission: Arc::new(Admission {
                in_flight: AtomicUsize::new(0),
                cap: usize::MAX,
            }),
            users: None,
            events: Events::default(),
            completion: Completion::Password,
            assertion_lifespan: handoff::ASSERTION_LIFESPAN,
        }
    }

    /// The same operations, recording their events for these webhooks
    /// (the audit trail keeps every event either way).
    pub fn with_events(mut self, events: Events) -> Self {
        self.events = events;
        self
    }

    /// The same operations, ending redemptions in the pages as
    /// `completion` says, with assertions that live `assertion_lifespan`.
    pub fn with_completion(
        mut self,
        completion: Completion,
        assertion_lifespan: std::time::Duration,
    ) -> Self {
        self.completion = completion;
        self.assertion_lifespan = assertion_lifespan;
        self
    }

    /// The same operations with an embedder's own users as the directory:
    /// every operation looks identities up in `users`, inside its unit of
    /// work, and the backend keeps only credentials, sessions and mail. The
    /// identity operations' writes are then refused (the users are yours).
    pub fn with_directory(mut self, users: impl UserDirectory + 'static) -> Self {
        self.users = Some(Arc::new(users));
        self
    }

    /// A place among the operations in flight, or the answer of one that
    /// gets none.
    fn admit<T>(&self, operation: &'static str) -> Result<Admitted, Pending<T, Error>> {
        self.admission.admit().map_err(|overloaded| {
            count(operation, overloaded.outcome());
            Pending::ready(Err(overloaded))
        })
    }

    /// `work` with this value's directory in front, if it has one.
    fn directed(
        users: &Option<Arc<dyn UserDirectory>>,
        work: Box<dyn UnitOfWork>,
    ) -> Box<dyn UnitOfWork> {
        match users {
            Some(users) => Box::new(crate::storage::directed::Directed {
                work,
                users: Arc::clone(users),
            }),
            None => work,
        }
    }

    /// The same operations, with at most `cap` in flight at once (in this
    /// value and its clones); beyond it they fail at once with
    /// [`Error::Overloaded`]. Unbounded unless set.
    pub fn with_max_in_flight(mut self, cap: usize) -> Self {
        self.admission = Arc::new(Admission {
            in_flight: AtomicUsize::new(0),
            cap: cap.max(1),
        });
        self
    }

    /// The same operations on another clock (tests freeze and advance time).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The runtime that runs the component.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The clock the component sees.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The storage backend.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Who hears of what the operations do.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Runs `call` in an instance, inside a unit of work of its own that
    /// commits only if the call returned; answers once that is durable.
    fn submit<T: Send + 'static>(
        &self,
        operation: &'static str,
        call: impl FnOnce(&Guest, &mut Store<HostState>) -> wasmtime::Result<Result<T, RecoveryError>>
        + Send
        + 'static,
    ) -> Pending<T, Error> {
        self.submit_then(operation, call, |answer, _, _| Ok(answer))
    }

    /// [`Self::submit`], then `finish` with the component's answer and what
    /// the call observed, in the same unit of work: the host's own writes
    /// (sessions, the request queue) stand or fall with the component's.
    fn submit_then<T: Send + 'static, U: Send + 'static>(
        &self,
        operation: &'static str,
        call: impl FnOnce(&Guest, &mut Store<HostState>) -> wasmtime::Result<Result<T, RecoveryError>>
        + Send
        + 'static,
        finish: impl FnOnce(
            Result<T, RecoveryError>,
            &mut dyn UnitOfWork,
            &Observed,
        ) -> anyhow::Result<Result<U, RecoveryError>>
        + Send
        + 'static,
    ) -> Pending<U, Error> {
        self.submit_around(
            operation,
            |_| Ok(()),
            call,
            move |answer, work, (), observed| finish(answer, work, observed),
        )
    }

    /// [`Self::submit_then`] with the host's own writes before the call as
    /// well (`prepare`), whose result `finish` gets: all in the one unit.
    fn submit_around<P: Send + 'static, T: Send + 'static, U: Send + 'static>(
        &self,
        operation: &'static str,
        prepare: impl FnOnce(&mut dyn UnitOfWork) -> anyhow::Result<P> + Send + 'static,
        call: impl FnOnce(&Guest, &mut Store<HostState>) -> wasmtime::Result<Result<T, RecoveryError>>
        + Send
        + 'static,
        finish: impl FnOnce(
            Result<T, RecoveryError>,
            &mut dyn UnitOfWork,
            P,
            &Observed,
        ) -> anyhow::Result<Result<U, RecoveryError>>
        + Send
        + 'static,
    ) -> Pending<U, Error> {
        let admitted = match self.admit(operation) {
            Ok(admitted) => admitted,
            Err(overloaded) => return overloaded,
        };
        let runtime = self.runtime.clone();
        let (settings, clock) = (Arc::clone(&self.settings), Arc::clone(&self.clock));
        #[cfg(feature = "metrics")]
        let started = std::time::Instant::now();
        let users = self.users.clone();
        let events = self.events.clone();
        let submitted = crate::request_context::carry(move |work| {
            let _admitted = admitted;
            let mut work = Self::directed(&users, work);
            let prepared = prepare(&mut *work)?;
            let now = clock.now_nanos();
            let (result, mut work, observed) = runtime.run(work, settings, clock, call);
            let answer = match result {
                // Commit on the component's answer, discard on a trap: this
                // is the one place that decides it. A refusal stands as
                // written: the component refuses before its first write, or
                // after writes that must stand (a wrong code).
                Ok(answer) => {
                    record_issued(&events, &mut *work, &observed, now)?;
                    let answer = finish(answer, &mut *work, prepared, &observed)?;
                    work.commit()?;
                    answer.map_err(Error::Refused)
                }
                Err(trap) => {
                    drop(work);
                    tracing::error!(error = %format!("{trap:#}"), "recovery operation trapped; nothing was written");
                    Err(Error::Failed(trap))
                }
            };
            let outcome = answer.as_ref().err().map_or("ok", Error::outcome);
            count(operation, outcome);
            #[cfg(feature = "metrics")]
            metrics::histogram!("reclaim_operation_duration_seconds", "operation" => operation)
                .record(started.elapsed().as_secs_f64());
            answer
        });
        crate::storage::submit(&*self.storage, submitted)
    }
}

impl Reclaim {
    /// Runs `work`, a host operation that needs no component call, in a
    /// unit of work of its own, counted and admitted like the component's
    /// operations; `work` commits the unit or drops it.
    fn unit<T: Send + 'static>(
        &self,
        operation: &'static str,
        work: impl FnOnce(Box<dyn UnitOfWork>, u64) -> Result<T, Error> + Send + 'static,
    ) -> Pending<T, Error> {
        let admitted = match self.admit(operation) {
            Ok(admitted) => admitted,
            Err(overloaded) => return overloaded,
        };
        let now = self.clock.now_nanos();
        let users = self.users.clone();
        let submitted = crate::request_context::carry(move |unit| {
            let _admitted = admitted;
            let unit = Self::directed(&users, unit);
            let answer = work(unit, now);
            count(
                operation,
                answer.as_ref().err().map_or("ok", Error::outcome),
            );
            answer
        });
        crate::storage::submit(&*self.storage, submitted)
    }
}

/// Records `event` in `work`, for the trail and the endpoints that take it.
pub(crate) fn record(
    events: &Events,
    work: &mut dyn UnitOfWork,
    event: Event,
) -> anyhow::Result<()> {
    work.record_event(&events.plan(&event))
}

/// `event` about the identity `id`, with its external id: as the
/// operation read it, or as `work` sees it.
pub(crate) fn about(
    work: &mut dyn UnitOfWork,
    observed: &Observed,
    event: Event,
    id: &str,
) -> anyhow::Result<Event> {
    let external_id = match observed.record_of(id) {
        Some(record) => record.external_id.clone(),
        None => work.identity_record_in(id)?.and_then(|r| r.external_id),
    };
    Ok(event.identity(id, external_id))
}

/// The `recovery.link.created` and `recovery.code.created` events of the
/// credentials an operation stored.
fn record_issued(
    events: &Events,
    work: &mut dyn UnitOfWork,
    observed: &Observed,
    now: u64,
) -> anyhow::Result<()> {
    for credential in &observed.issued {
        let (kind, method) = match credential.kind {
            crate::wit::CredentialKind::Link => (EventType::LinkCreated, Method::Link),
            crate::wit::CredentialKind::Code => (EventType::CodeCreated, Method::Code),
        };
        let event = Event::new(kind, now).flow(&credential.flow_id, method);
        let event = about(work, observed, event, &credential.identity_id)?;
        record(events, work, event)?;
    }
    Ok(())
}

/// A refusal made by the host, in the component's shape.
pub(crate) fn refusal(
    kind: crate::ErrorKind,
    code: u16,
    reason: &str,
    message: impl Into<String>,
) -> Error {
    let status = http::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    Error::Refused(RecoveryError {
        kind,
        code,
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.into(),
    })
}

/// Counts one operation's outcome: `reclaim_operations_total` by
/// operation and outcome (`ok`, a refusal's kind, `failed`, `unavailable`,
/// `overloaded`).
fn count(operation: &'static str, outcome: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("reclaim_operations_total", "operation" => operation, "outcome" => outcome)
        .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (operation, outcome);
}

/// `finish` for the component's success; a refusal passes through.
fn on_success<T, U>(
    answer: Result<T, RecoveryError>,
    finish: impl FnOnce(T) -> anyhow::Result<U>,
) -> anyhow::Result<Result<U, RecoveryError>> {
    match answer {
        Ok(value) => finish(value).map(Ok),
        Err(refusal) => Ok(Err(refusal)),
    }
}

#[cfg(test)]
mod tests;
