//! What one instance can reach: WASI with no files, environment or
//! sockets, and the recovery imports, each answered from the operation's
//! unit of work.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Result;
use wasmtime::StoreLimits;
use wasmtime::StoreLimitsBuilder;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::clock::{Clock, SystemClock};
use crate::mail;
use crate::settings::Settings;
use crate::storage::outbox::QueuedMail;
use crate::storage::{IdentityRecord, UnitOfWork};
use crate::wit::RecoveryEngine;
use crate::wit::reclaim::recovery::{directory, mailer, settings, storage, types};
use crate::wit::{
    ConsumeOutcome, Credential, CredentialKind, CredentialStatus, Identity, MailTemplate, Message,
    WitSettings,
};

/// One store of Reclaim's own runtime: WASI with no files, environment or
/// sockets, the store's limits, and the recovery imports.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    pub(super) imports: Imports,
}

/// The recovery imports of one store (`directory`, `storage`, `mailer`,
/// `settings`), answered from the current operation's unit of work. An
/// embedder with a store of its own keeps one in its store data and links
/// it with [`add_to_linker`]; [`Imports::begin`] and [`Imports::end`]
/// bracket each call into the component.
pub struct Imports {
    /// The current operation's unit of work (none between operations).
    work: Option<Box<dyn UnitOfWork>>,
    settings: Arc<Settings>,
    /// The current operation's clock, shared with the guest's wall clock.
    clock: Arc<RwLock<Arc<dyn Clock>>>,
    /// When the current operation began, and how much of it the host's
    /// storage calls took.
    started: Instant,
    host_time: Duration,
    /// The identity the operation last found in the directory: the one its
    /// mail is about.
    found: Option<String>,
    /// What the operation did and found that its events and the host's
    /// steps after it need.
    observed: Observed,
}

/// Adds the recovery imports to an embedder's `linker`, each answered by
/// the [`Imports`] that `get` finds in the store's data (as
/// `wasmtime-wasi-config`'s `add_to_linker` does). WASI is the embedder's
/// to add, followed by [`super::add_untraced_randomness`] so that no log
/// holds what a token was drawn from; [`Imports::wall_clock`] gives the
/// guest the operations' clock.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut Imports,
) -> wasmtime::Result<()> {
    RecoveryEngine::add_to_linker::<T, HasSelf<Imports>>(linker, get)
}

/// What one operation stored and found, beyond its answer.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    /// The credentials it stored, for their events.
    pub issued: Vec<Issued>,
    /// The whole record of the identity it last looked up by id (the
    /// component's usual lookup), read in the same query: its external id
    /// and second factor then cost no second read.
    pub record: Option<IdentityRecord>,
    /// The credential it consumed (a redemption): what a session or an
    /// assertion opened after it remembers of the address.
    pub consumed: Option<Credential>,
}

impl Observed {
    /// The identity's record, if this operation read it.
    pub fn record_of(&self, id: &str) -> Option<&IdentityRecord> {
        self.record.as_ref().filter(|r| r.identity.id == id)
    }
}

/// A credential an operation stored.
#[derive(Clone, Debug)]
pub(crate) struct Issued {
    pub identity_id: String,
    pub flow_id: String,
    pub kind: CredentialKind,
}

impl HostState {
    /// The state of a new store: no operation yet.
    pub(super) fn new(max_memory_bytes: usize) -> Self {
        let imports = Imports::new();
        Self {
            wasi: WasiCtxBuilder::new()
                .wall_clock(imports.wall_clock())
                .build(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(max_memory_bytes)
                .instances(16)
                .build(),
            imports,
        }
    }

    pub(super) fn limits(&mut self) -> &mut StoreLimits {
        &mut self.limits
    }
}

impl Default for Imports {
    fn default() -> Self {
        Self::new()
    }
}

impl Imports {
    /// Imports between operations, on the system clock.
    pub fn new() -> Self {
        Self {
            work: None,
            settings: Arc::new(Settings::new("http://localhost", Vec::new())),
            clock: Arc::new(RwLock::new(Arc::new(SystemClock))),
            started: Instant::now(),
            host_time: Duration::ZERO,
            found: None,
            observed: Observed::default(),
        }
    }

    /// The guest's `wasi:clocks/wall-clock`, following the clock of the
    /// operation under way (give it to the store's `WasiCtxBuilder`).
    pub fn wall_clock(&self) -> impl wasmtime_wasi::HostWallClock + use<> {
        WasiWallClock(Arc::clone(&self.clock))
    }

    /// Starts an operation over `work`: the component's calls until
    /// [`Imports::end`] read and write through it.
    pub fn begin(
        &mut self,
        work: Box<dyn UnitOfWork>,
        settings: Arc<Settings>,
        clock: Arc<dyn Clock>,
    ) {
        self.work = Some(work);
        self.started = Instant::now();
        self.host_time = Duration::ZERO;
        self.settings = settings;
        self.found = None;
        self.observed = Observed::default();
        *self.clock.write().unwrap_or_else(|e| e.into_inner()) = clock;
    }

    /// Ends the operation and hands its unit of work back, to commit if the
    /// component answered and to drop if it trapped.
    pub fn end(&mut self) -> Option<Box<dyn UnitOfWork>> {
        self.observed = Observed::default();
        self.work.take()
    }

    /// Ends the operation, handing its unit of work back with what it
    /// stored and found.
    pub(super) fn end_observed(&mut self) -> (Box<dyn UnitOfWork>, Observed) {
        let work = self
            .work
            .take()
            .expect("the work stays in the store during the call");
        (work, std::mem::take(&mut self.observed))
    }

    /// Notes the identity a directory call found.
    fn found(&mut self, identity: Result<Option<Identity>>) -> Result<Option<Identity>> {
        if let Ok(Some(identity)) = &identity {
            self.found = Some(identity.id.clone());
        }
        identity
    }

    /// Runs a storage call of the current operation, counting its time as
    /// the host's: the deadline bounds the guest's own time, not the
    /// database's. Outside an operation the call fails (the guest traps).
    fn timed<T>(&mut self, call: impl FnOnce(&mut dyn UnitOfWork) -> Result<T>) -> Result<T> {
        let started = Instant::now();
        let work = self.work.as_deref_mut().ok_or_else(|| {
            anyhow::anyhow!(
                "the component called an import outside an operation (no `Imports::begin`)"
            )
        })?;
        let out = call(work);
        self.host_time += started.elapsed();
        out
    }

    /// How long the current operation's guest code has run.
    pub(super) fn guest_time(&self) -> Duration {
        self.started.elapsed().saturating_sub(self.host_time)
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for Imports {}

impl directory::Host for Imports {
    fn get_by_id(&mut self, id: String) -> Result<Option<Identity>> {
        // The same one read as the directory's, of the whole record.
        let record = self.timed(|work| work.identity_record_in(&id))?;
        let identity = record.as_ref().map(|r| r.identity.clone());
        self.observed.record = record;
        self.found(Ok(identity))
    }

    fn get_by_pk(&mut self, pk: i64) -> Result<Option<Identity>> {
        let found = self.timed(|work| work.get_by_pk(pk));
        self.found(found)
    }

    fn find_by_email(&mut self, email: String) -> Result<Option<Identity>> {
        let found = self.timed(|work| work.find_by_email(&email));
        self.found(found)
    }
}

impl storage::Host for Imports {
    fn insert(&mut self, credential: Credential) -> Result<()> {
        self.timed(|work| work.insert(&credential))?;
        self.observed.issued.push(Issued {
            identity_id: credential.identity_id,
            flow_id: credential.flow_id,
            kind: credential.kind,
        });
        Ok(())
    }

    fn consume(
        &mut self,
        keys: Vec<String>,
        kind: CredentialKind,
        now: u64,
        max_failed_attempts: u32,
    ) -> Result<ConsumeOutcome> {
        let outcome = self.timed(|work| work.consume(&keys, kind, now, max_failed_attempts))?;
        if let ConsumeOutcome::Consumed(credential) = &outcome {
            self.observed.consumed = Some(credential.clone());
        }
        Ok(outcome)
    }

    fn find(
        &mut self,
        keys: Vec<String>,
        kind: CredentialKind,
        now: u64,
    ) -> Result<Option<CredentialStatus>> {
        self.timed(|work| work.find(&keys, kind, now))
    }

    fn code_for_flow(&mut self, flow_id: String, now: u64) -> Result<Option<CredentialStatus>> {
        self.timed(|work| work.code_for_flow(&flow_id, now))
    }

    fn record_failed_attempt(
        &mut self,
        flow_id: String,
        max_failed_attempts: u32,
        now: u64,
    ) -> Result<u32> {
        self.timed(|work| work.record_failed_attempt(&flow_id, max_failed_attempts, now))
    }

    fn identity_failed_attempts(&mut self, identity_id: String, since: u64) -> Result<u32> {
        self.timed(|work| work.identity_failed_attempts(&identity_id, since))
    }

    fn revoke_identity(
        &mut self,
        identity_id: String,
        kind: Option<CredentialKind>,
        now: u64,
    ) -> Result<u32> {
        self.timed(|work| {
            let revoked = work.revoke_identity(&identity_id, kind, now)?;
            // The WIT rule: revoking every kind ends the recovery session too.
            if kind.is_none() {
                work.end_sessions_quietly(&identity_id, now)?;
            }
            Ok(revoked)
        })
    }
}

impl mailer::Host for Imports {
    fn queue(&mut self, message: Message) -> Result<std::result::Result<(), String>> {
        let to_name = match mail::check(&message) {
            Ok(fitted) => fitted,
            Err(reason) => return Ok(Err(reason)),
        };
        let mut mail = QueuedMail {
            id: uuid::Uuid::new_v4().hyphenated().to_string(),
            to: message.to,
            to_name,
            subject: message.subject,
            text_body: message.text_body,
            html_body: message.html_body,
            template: message.template,
            sender: message.sender,
            queued_at: self
                .clock
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .now_nanos(),
            attempts: 0,
            flow_id: message.flow_id,
            identity_id: self.found.clone(),
            external_id: None,
        };
        let known = mail
            .identity_id
            .as_deref()
            .map(|id| self.observed.record_of(id).map(|r| r.external_id.clone()));
        self.timed(|work| {
            mail.external_id = match (known, &mail.identity_id) {
                (Some(Some(external_id)), _) => external_id,
                (_, Some(id)) => work.identity_record_in(id)?.and_then(|r| r.external_id),
                _ => None,
            };
            work.enqueue(&mail)
        })?;
        Ok(Ok(()))
    }
}

impl settings::Host for Imports {
    fn get(&mut self) -> Result<WitSettings> {
        Ok(self.settings.to_wit())
    }

    fn template(&mut self, name: String, locale: String) -> Result<Option<MailTemplate>> {
        Ok(self.settings.templates.get(&name, &locale).cloned())
    }
}

/// Presents the current operation's [`Clock`] as the guest's
/// `wasi:clocks/wall-clock` (a warm instance serves operations of `Reclaim`s
/// on different clocks, so the clock is looked up at each reading).
struct WasiWallClock(Arc<RwLock<Arc<dyn Clock>>>);

impl wasmtime_wasi::HostWallClock for WasiWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        self.0.read().unwrap_or_else(|e| e.into_inner()).now()
    }
}
