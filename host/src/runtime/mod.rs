//! The recovery component on wasmtime: compiled and type-checked once
//! (`cache` keeps the compiled form between processes), then instantiated
//! from the pooling allocator for every operation, with memory limits, over
//! one unit of work that the imports (`imports`) reach.

mod cache;
mod imports;
mod randomness;

pub use cache::cache_dir;
pub(crate) use imports::{HostState, Observed};
pub use imports::{Imports, add_to_linker};
pub use randomness::add_untraced_randomness;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use wasmtime::component::Linker;
use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

use crate::clock::{Clock, SystemClock};
use crate::settings::Settings;
use crate::storage::UnitOfWork;
use crate::wit::exports::reclaim::recovery::recovery::Guest;
use crate::wit::{RecoveryEngine, RecoveryEnginePre};

/// The component this crate was built with (see `build.rs`).
pub const EMBEDDED_COMPONENT: &[u8] = include_bytes!(env!("RECLAIM_COMPONENT_PATH"));

/// The edge component: the same engine composed with the HTTP front
/// (`edge/`) and the filesystem provider, for `wasmtime serve` and other
/// `wasi:http` runtimes. This host never runs it; it only hands it out.
pub const EMBEDDED_EDGE_COMPONENT: &[u8] = include_bytes!(env!("RECLAIM_EDGE_PATH"));

/// The SQL component: the same engine composed with the SQL provider
/// (`providers/sql`), its storage, outbox and default directory over a
/// host's SQL connection, for the Python and Node.js packages. This host
/// only hands it out.
pub const EMBEDDED_SQL_COMPONENT: &[u8] = include_bytes!(env!("RECLAIM_SQL_PATH"));

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
    /// CPU time one operation's guest code may run before it traps (its
    /// unit of work is then discarded): a looping component or template
    /// can't hold the storage's writer, nor the process.
    pub operation_deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_memory_bytes: 64 << 20,
            max_concurrent_operations: 128,
            reuse_instances: 0,
            operation_deadline: Duration::from_secs(1),
        }
    }
}

/// Bytes at the start of each pooled linear memory and table that are reset
/// with `memset` when an instance is freed, rather than handed back to the
/// kernel and faulted in again by the next (fresh) instance. The component
/// links with a 128 KiB stack at the bottom of its memory (component/build.rs),
/// so its stack top, data and heap of one operation sit in the first 384 KiB.
/// Measured (BENCHMARKS.md, issue 15): a fresh-instance create_link went from
/// 43 to 20 µs; every instance still starts from the component's initial
/// memory, so nothing of one operation reaches the next.
const KEEP_RESIDENT_MEMORY: usize = 384 << 10;
const KEEP_RESIDENT_TABLES: usize = 16 << 10;

/// How often the epoch advances: the granularity of the deadline.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// `time` in epoch ticks, at least one.
fn ticks(time: Duration) -> u64 {
    u64::try_from(time.as_nanos() / EPOCH_TICK.as_nanos())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// Advances `engine`'s epoch every [`EPOCH_TICK`] until the engine is gone.
fn start_epoch_ticker(engine: &wasmtime::Engine) -> Result<()> {
    let engine = engine.weak();
    std::thread::Builder::new()
        .name("reclaim-epoch".into())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .context("starting the epoch ticker")?;
    Ok(())
}

/// An instance that returned, with its store, kept for the next operation.
struct Warm {
    store: Store<HostState>,
    instance: RecoveryEngine,
}

/// The recovery component compiled for wasmtime and type-checked against
/// the `recovery-engine` world, ready to instantiate, with its limits and
/// warm instances. Cheap to clone: clones share all of it.
#[derive(Clone)]
pub struct Runtime(Arc<Compiled>);

struct Compiled {
    pre: RecoveryEnginePre<HostState>,
    limits: Limits,
    warm: Mutex<Vec<Warm>>,
}

impl Runtime {
    /// The embedded component, compiled with the default limits.
    pub fn embedded() -> Result<Self> {
        Self::new(EMBEDDED_COMPONENT, Limits::default())
    }

    /// Compiles `wasm` (or loads its compiled form from the cache, see
    /// [`cache_dir`]) and checks that it targets the `recovery-engine` world.
    pub fn new(wasm: &[u8], limits: Limits) -> Result<Self> {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(limits.max_concurrent_operations)
            .total_core_instances(limits.max_concurrent_operations * 4)
            .total_memories(limits.max_concurrent_operations * 2)
            .total_tables(limits.max_concurrent_operations * 4)
            .total_stacks(limits.max_concurrent_operations)
            .max_memory_size(limits.max_memory_bytes)
            .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY)
            .table_keep_resident(KEEP_RESIDENT_TABLES);
        let mut config = Config::new();
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // Guest code checks the epoch at loop heads and calls; a store whose
        // deadline has passed traps there.
        config.epoch_interruption(true);
        let engine = wasmtime::Engine::new(&config)?;
        start_epoch_ticker(&engine)?;
        let component = cache::load_component(&engine, wasm)?;
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        add_untraced_randomness(&mut linker)?;
        add_to_linker(&mut linker, |state| &mut state.imports)?;
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
        let work = crate::backends::scratch_unit()?;
        let settings = Arc::new(Settings::new("http://localhost", Vec::new()));
        let (result, _, _) = self.run(work, settings, Arc::new(SystemClock), |_, _| Ok(()));
        result
    }

    /// Asks the component whether it accepts `settings` (every operation
    /// checks them first, and the component holds their defaults and
    /// bounds): `check-link` of nothing, over a unit of work that touches no
    /// backend, answers `misconfigured` for settings it refuses. Like
    /// [`Self::warm_up`], it instantiates the component once.
    pub fn check_settings(&self, settings: &Settings) -> Result<()> {
        let work = crate::backends::scratch_unit()?;
        let settings = Arc::new(settings.clone());
        let (result, _, _) = self.run(work, settings, Arc::new(SystemClock), |guest, store| {
            guest.call_check_link(store, "")
        });
        match result? {
            Err(refused) if refused.kind == crate::ErrorKind::Misconfigured => {
                anyhow::bail!("the settings are refused: {}", refused.message)
            }
            _ => Ok(()),
        }
    }

    /// Runs one operation over `work`, in a fresh instance (or a warm one,
    /// see [`Limits::reuse_instances`]). Returns the work with the result:
    /// the caller commits it only if the call returned.
    pub(crate) fn run<T>(
        &self,
        work: Box<dyn UnitOfWork>,
        settings: Arc<Settings>,
        clock: Arc<dyn Clock>,
        call: impl FnOnce(&Guest, &mut Store<HostState>) -> wasmtime::Result<T>,
    ) -> (Result<T>, Box<dyn UnitOfWork>, Observed) {
        let warm = if self.0.limits.reuse_instances > 0 {
            self.0.warm.lock().unwrap_or_else(|e| e.into_inner()).pop()
        } else {
            None
        };
        let (mut store, instance) = match warm {
            Some(Warm { store, instance }) => (store, Ok(instance)),
            None => self.fresh(),
        };
        store.data_mut().imports.begin(work, settings, clock);
        store.set_epoch_deadline(self.deadline_ticks());
        let result = instance
            .and_then(|instance| {
                call(instance.reclaim_recovery_recovery(), &mut store)
                    .map(|value| (value, instance))
            })
            .map_err(anyhow::Error::from);
        let (work, observed) = store.data_mut().imports.end_observed();
        let result = result.map(|(value, instance)| {
            let mut warm = self.0.warm.lock().unwrap_or_else(|e| e.into_inner());
            if warm.len() < self.0.limits.reuse_instances {
                warm.push(Warm { store, instance });
            }
            value
        });
        (result, work, observed)
    }

    /// The operation deadline in epoch ticks.
    fn deadline_ticks(&self) -> u64 {
        ticks(self.0.limits.operation_deadline)
    }

    /// A new store with a new instance in it.
    fn fresh(&self) -> (Store<HostState>, wasmtime::Result<RecoveryEngine>) {
        let state = HostState::new(self.0.limits.max_memory_bytes);
        let mut store = Store::new(self.0.pre.engine(), state);
        store.limiter(|state| state.limits());
        // At each deadline the guest's own time is checked (the epoch runs
        // on through storage calls, which don't count): past the limit the
        // call traps; short of it, the guest gets the rest.
        let limit = self.0.limits.operation_deadline;
        store.epoch_deadline_callback(move |store| {
            let used = store.data().imports.guest_time();
            if used >= limit {
                return Err(wasmtime::Error::msg(format!(
                    "the operation's guest code ran past its deadline ({limit:?})"
                )));
            }
            Ok(wasmtime::UpdateDeadline::Continue(ticks(limit - used)))
        });
        store.set_epoch_deadline(self.deadline_ticks());
        let instance = self.0.pre.instantiate(&mut store);
        (store, instance)
    }
}
