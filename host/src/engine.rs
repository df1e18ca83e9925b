//! Runs the recovery component on wasmtime: compiled and type-checked once,
//! then instantiated from the pooling allocator for every operation, with
//! memory limits, inside one storage transaction.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits,
    StoreLimitsBuilder,
};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::clock::{Clock, WasiWallClock};
use crate::mail::{self, QueuedMail};
use crate::settings::Settings;
use crate::storage::UnitOfWork;
use crate::wit::exports::reclaim::recovery::recovery::Guest;
use crate::wit::reclaim::recovery::{directory, mailer, settings, storage, types};
use crate::wit::{
    ConsumeOutcome, Credential, CredentialKind, CredentialStatus, Identity, MailTemplate, Message,
    RecoveryEngine, RecoveryEnginePre, WitSettings,
};

/// The component this crate was built with (see `build.rs`).
pub const EMBEDDED_COMPONENT: &[u8] = include_bytes!(env!("RECLAIM_COMPONENT_PATH"));

/// Bounds on what one operation may use.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Linear memory one instance may grow to, in bytes.
    pub max_memory_bytes: usize,
    /// Operations that may run at once (pooling allocator slots).
    pub max_concurrent_operations: u32,
    /// Instances kept warm for later operations. 0 (the default) gives every
    /// operation a fresh instance: nothing of one operation can be seen by
    /// the next. Above 0 an instance that returned is reused, which saves
    /// instantiation and the first touch of its memory; the component keeps
    /// no state between calls, and an instance that trapped is never reused.
    pub reuse_instances: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_memory_bytes: 64 << 20,
            max_concurrent_operations: 128,
            reuse_instances: 0,
        }
    }
}

/// An instance that returned, with its store, kept for the next operation.
struct Warm {
    store: Store<HostState>,
    instance: RecoveryEngine,
}

/// A compiled, type-checked recovery component, ready to instantiate.
/// Cheap to clone: clones share the compiled code and the warm instances.
#[derive(Clone)]
pub struct Engine(Arc<Compiled>);

struct Compiled {
    pre: RecoveryEnginePre<HostState>,
    limits: Limits,
    warm: Mutex<Vec<Warm>>,
}

impl Engine {
    /// The embedded component, compiled with the default limits.
    pub fn embedded() -> Result<Self> {
        Self::new(EMBEDDED_COMPONENT, Limits::default())
    }

    /// Compiles `wasm` (or loads its compiled form from the cache, see
    /// [`cache_dir`]) and checks that it is a recovery engine.
    pub fn new(wasm: &[u8], limits: Limits) -> Result<Self> {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(limits.max_concurrent_operations)
            .total_core_instances(limits.max_concurrent_operations * 4)
            .total_memories(limits.max_concurrent_operations * 2)
            .total_tables(limits.max_concurrent_operations * 4)
            .total_stacks(limits.max_concurrent_operations)
            .max_memory_size(limits.max_memory_bytes);
        let mut config = Config::new();
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = wasmtime::Engine::new(&config)?;
        let component = load_component(&engine, wasm)?;
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        RecoveryEngine::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        let pre = linker
            .instantiate_pre(&component)
            .and_then(RecoveryEnginePre::new)
            .map_err(anyhow::Error::from)
            .context("the component is not a reclaim:recovery engine")?;
        Ok(Self(Arc::new(Compiled {
            pre,
            limits,
            warm: Mutex::new(Vec::new()),
        })))
    }

    /// Instantiates the component once and drops the instance, calling
    /// nothing: warms the pooling allocator's slots at start-up, and is what
    /// the benchmarks time as "instantiation".
    pub fn warm_up(&self) -> Result<()> {
        let work = crate::storage::MemoryStorage::new().begin()?;
        let settings = Arc::new(Settings::new("http://localhost", Vec::new()));
        let (result, _) = self.run(
            work,
            settings,
            Arc::new(crate::clock::SystemClock),
            None,
            |_, _| Ok(()),
        );
        result
    }

    /// Runs one operation over `work`, in a fresh instance (or a warm one,
    /// see [`Limits::reuse_instances`]). Returns the work with the result:
    /// the caller commits it only if the call returned.
    pub(crate) fn run<T>(
        &self,
        work: Box<dyn UnitOfWork>,
        settings: Arc<Settings>,
        clock: Arc<dyn Clock>,
        sender: Option<String>,
        call: impl FnOnce(&Guest, &mut Store<HostState>) -> wasmtime::Result<T>,
    ) -> (Result<T>, Box<dyn UnitOfWork>) {
        let warm = if self.0.limits.reuse_instances > 0 {
            self.0.warm.lock().unwrap_or_else(|e| e.into_inner()).pop()
        } else {
            None
        };
        let (mut store, instance) = match warm {
            Some(Warm { store, instance }) => (store, Ok(instance)),
            None => self.fresh(),
        };
        let state = store.data_mut();
        state.work = Some(work);
        state.settings = settings;
        state.sender = sender;
        *state.clock.write().unwrap_or_else(|e| e.into_inner()) = clock;
        let result = instance
            .and_then(|instance| {
                call(instance.reclaim_recovery_recovery(), &mut store)
                    .map(|value| (value, instance))
            })
            .map_err(anyhow::Error::from);
        let work = store
            .data_mut()
            .work
            .take()
            .expect("the work stays in the store during the call");
        let result = result.map(|(value, instance)| {
            let mut warm = self.0.warm.lock().unwrap_or_else(|e| e.into_inner());
            if warm.len() < self.0.limits.reuse_instances {
                warm.push(Warm { store, instance });
            }
            value
        });
        (result, work)
    }

    /// A new store with a new instance in it.
    fn fresh(&self) -> (Store<HostState>, wasmtime::Result<RecoveryEngine>) {
        let clock: Arc<RwLock<Arc<dyn Clock>>> =
            Arc::new(RwLock::new(Arc::new(crate::clock::SystemClock)));
        let state = HostState {
            wasi: WasiCtxBuilder::new()
                .wall_clock(WasiWallClock(Arc::clone(&clock)))
                .build(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(self.0.limits.max_memory_bytes)
                .instances(16)
                .build(),
            work: None,
            settings: Arc::new(Settings::new("http://localhost", Vec::new())),
            clock,
            sender: None,
        };
        let mut store = Store::new(self.0.pre.engine(), state);
        store.limiter(|state| &mut state.limits);
        let instance = self.0.pre.instantiate(&mut store);
        (store, instance)
    }
}

/// Where compiled components are cached: `RECLAIM_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/reclaim`, else `~/.cache/reclaim`.
pub fn cache_dir() -> Option<PathBuf> {
    let env = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("RECLAIM_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("reclaim")))
        .or_else(|| env("HOME").map(|d| d.join(".cache").join("reclaim")))
}

/// Compiling the component takes seconds; every CLI call would pay it. The
/// compiled form is cached under a name derived from the wasm bytes and the
/// engine's settings, so a stale or foreign artifact is never picked up.
fn load_component(engine: &wasmtime::Engine, wasm: &[u8]) -> Result<Component> {
    let Some(dir) = cache_dir() else {
        return Ok(Component::new(engine, wasm)?);
    };
    let mut settings_hash = std::collections::hash_map::DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut settings_hash);
    let wasm_hash = hex::encode(&Sha256::digest(wasm)[..16]);
    let path = dir.join(format!(
        "component-{wasm_hash}-{:016x}.cwasm",
        settings_hash.finish()
    ));
    if path.exists() {
        // SAFETY: the file was written by `precompile_component` of an engine
        // with the same settings (its name says so), in the operator's own
        // cache directory.
        if let Ok(component) = unsafe { Component::deserialize_file(engine, &path) } {
            return Ok(component);
        }
    }
    let compiled = engine.precompile_component(wasm)?;
    // A cache that can't be written only costs time.
    let partial = path.with_extension(format!("partial{}", std::process::id()));
    if std::fs::create_dir_all(&dir).is_ok() && std::fs::write(&partial, &compiled).is_ok() {
        let _ = std::fs::rename(&partial, &path);
    }
    // SAFETY: these bytes came from `precompile_component` just above.
    Ok(unsafe { Component::deserialize(engine, &compiled) }?)
}

/// Everything one instance can reach: WASI with no files, environment or
/// sockets, and the unit of work behind the recovery imports.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    /// The current operation's unit of work (none between operations).
    work: Option<Box<dyn UnitOfWork>>,
    settings: Arc<Settings>,
    /// The current operation's clock, shared with the guest's wall clock.
    clock: Arc<RwLock<Arc<dyn Clock>>>,
    /// Sender of the mail this operation queues, if not the default.
    sender: Option<String>,
}

impl HostState {
    fn work(&mut self) -> &mut dyn UnitOfWork {
        self.work
            .as_deref_mut()
            .expect("imports are only called during an operation")
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

impl types::Host for HostState {}

impl directory::Host for HostState {
    fn get_by_id(&mut self, id: String) -> Result<Option<Identity>> {
        self.work().get_by_id(&id)
    }

    fn get_by_pk(&mut self, pk: i64) -> Result<Option<Identity>> {
        self.work().get_by_pk(pk)
    }

    fn find_by_email(&mut self, email: String) -> Result<Option<Identity>> {
        self.work().find_by_email(&email)
    }
}

impl storage::Host for HostState {
    fn insert(&mut self, credential: Credential) -> Result<()> {
        self.work().insert(&credential)
    }

    fn consume(
        &mut self,
        keys: Vec<String>,
        kind: CredentialKind,
        now: u64,
        max_failed_attempts: u32,
    ) -> Result<ConsumeOutcome> {
        self.work().consume(&keys, kind, now, max_failed_attempts)
    }

    fn find(
        &mut self,
        keys: Vec<String>,
        kind: CredentialKind,
        now: u64,
    ) -> Result<Option<CredentialStatus>> {
        self.work().find(&keys, kind, now)
    }

    fn code_for_flow(&mut self, flow_id: String, now: u64) -> Result<Option<CredentialStatus>> {
        self.work().code_for_flow(&flow_id, now)
    }

    fn record_failed_attempt(
        &mut self,
        flow_id: String,
        max_failed_attempts: u32,
        now: u64,
    ) -> Result<u32> {
        self.work()
            .record_failed_attempt(&flow_id, max_failed_attempts, now)
    }

    fn revoke_identity(
        &mut self,
        identity_id: String,
        kind: Option<CredentialKind>,
        now: u64,
    ) -> Result<u32> {
        self.work().revoke_identity(&identity_id, kind, now)
    }
}

impl mailer::Host for HostState {
    fn queue(&mut self, message: Message) -> Result<std::result::Result<(), String>> {
        let to_name = match mail::check(&message) {
            Ok(fitted) => fitted,
            Err(reason) => return Ok(Err(reason)),
        };
        let mail = QueuedMail {
            id: uuid::Uuid::new_v4().hyphenated().to_string(),
            to: message.to,
            to_name,
            subject: message.subject,
            text_body: message.text_body,
            html_body: message.html_body,
            template: message.template,
            sender: self.sender.clone(),
            queued_at: self
                .clock
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .now_nanos(),
            attempts: 0,
            flow_id: message.flow_id,
        };
        self.work().enqueue(&mail)?;
        Ok(Ok(()))
    }
}

impl settings::Host for HostState {
    fn get(&mut self) -> Result<WitSettings> {
        Ok(self.settings.to_wit())
    }

    fn template(&mut self, name: String, locale: String) -> Result<Option<MailTemplate>> {
        Ok(self.settings.templates.get(&name, &locale).cloned())
    }
}
