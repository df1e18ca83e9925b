//! Group commit: one thread owns the writing connection and runs units of
//! work back to back inside one transaction, each in a savepoint, then
//! commits them together. One sync of the disk then covers a whole batch,
//! and writers never queue on SQLite's lock, whose busy handler sleeps in
//! steps of milliseconds. A lone caller (`Writer::lone`, the one place that
//! decides) runs its unit as a batch of one on its own thread instead,
//! sparing the two thread hand-offs.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rusqlite::Connection;

use super::checkpointer::Checkpointer;
use crate::storage::OnDurable;

mod load;
mod work;
use load::Load;
pub(super) use work::SqliteWork;

/// Units of work one transaction takes at most: bounds how long the first
/// of them waits for its answer.
const MAX_BATCH: usize = 256;
/// Time one transaction's units may run before it commits, for the same
/// reason.
const MAX_BATCH_TIME: Duration = Duration::from_millis(4);

/// How long the writer looks for work before it sleeps.
const SPIN_BEFORE_SLEEPING: Duration = Duration::from_micros(50);

/// A job of the writer: given its unit of work, it runs and returns whom to
/// tell when its writes are durable.
pub(super) type WriterJob = Box<dyn FnOnce(Result<SqliteWork>) -> OnDurable + Send>;

pub(super) enum Task {
    /// A unit of work, in a savepoint of the current batch.
    Unit(WriterJob),
    /// Work that must run outside any transaction (a WAL checkpoint),
    /// between batches.
    Alone(Box<dyn FnOnce(&Connection) + Send>),
}

/// The writing connection and the unit of work it is in, if any.
pub(super) struct WriterState {
    /// Declared before `checkpointer`, so it is closed first: its commit
    /// hook keeps the checkpointer thread alive.
    conn: Connection,
    checkpointer: Checkpointer,
    /// Number of the latest unit of work.
    unit: u64,
    /// Whether that unit is still open (neither committed nor dropped).
    open: bool,
    /// Something left the batch's transaction in an unknown state: it is
    /// rolled back whole and nothing of it is acknowledged.
    broken: bool,
}

impl WriterState {
    /// Whether `unit` is the unit of work the connection is in.
    fn is_open(&self, unit: u64) -> bool {
        self.open && self.unit == unit
    }
}

/// The writer's state, shared by its thread and the open unit of work.
type WriterCell = Arc<Mutex<WriterState>>;

fn lock(shared: &WriterCell) -> MutexGuard<'_, WriterState> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whoever runs a batch holds this: the writer thread, or a lone caller.
type BatchLock = Arc<Mutex<()>>;

fn hold(batch: &BatchLock) -> MutexGuard<'_, ()> {
    batch.lock().unwrap_or_else(|e| e.into_inner())
}

thread_local! {
    /// The writer whose batch this thread is running as a lone caller (0:
    /// none), so that a unit does not wait for another of the same writer.
    static RUNNING_BATCH_OF: Cell<u64> = const { Cell::new(0) };
}

/// Tells writers apart for [`RUNNING_BATCH_OF`].
static WRITERS: AtomicU64 = AtomicU64::new(1);

/// The writer thread's handle; dropping it lets the thread finish its queue
/// and close the connection.
pub(super) struct Writer {
    tasks: Option<Sender<Task>>,
    thread: Option<JoinHandle<()>>,
    thread_id: ThreadId,
    id: u64,
    shared: WriterCell,
    batch: BatchLock,
    load: Arc<Load>,
    syncs: bool,
}

impl Writer {
    /// Starts the writer on `conn`, with a checkpointer on `checkpoints`.
    /// `syncs`: whether a commit waits for the disk (`synchronous=FULL`).
    pub(super) fn start(
        mut conn: Connection,
        checkpoints: Connection,
        syncs: bool,
    ) -> Result<Self> {
        let (tasks, queue) = channel();
        let checkpointer = Checkpointer::start(&mut conn, checkpoints)?;
        let shared = Arc::new(Mutex::new(WriterState {
            conn,
            checkpointer,
            unit: 0,
            open: false,
            broken: false,
        }));
        let batch = BatchLock::default();
        let thread = std::thread::Builder::new()
            .name("reclaim-writer".into())
            .spawn({
                let (shared, batch) = (Arc::clone(&shared), Arc::clone(&batch));
                move || run(&shared, &batch, &queue)
            })
            .context("starting the SQLite writer thread")?;
        Ok(Self {
            tasks: Some(tasks),
            thread_id: thread.thread().id(),
            thread: Some(thread),
            id: WRITERS.fetch_add(1, Ordering::Relaxed),
            shared,
            batch,
            load: Arc::default(),
            syncs,
        })
    }

    pub(super) fn send(&self, task: Task) {
        let task = match task {
            Task::Unit(job) => match self.lone(job) {
                Some(job) => Task::Unit(job),
                None => return,
            },
            alone => alone,
        };
        // A job that waited for a write of its own on this thread would
        // wait forever.
        let refused =
            if std::thread::current().id() == self.thread_id || RUNNING_BATCH_OF.get() == self.id {
                Some((task, "a unit of work may not start another"))
            } else {
                match self.tasks.as_ref().map(|tasks| tasks.send(task)) {
                    Some(Ok(())) => None,
                    Some(Err(returned)) => Some((returned.0, "the SQLite writer thread stopped")),
                    None => None,
                }
            };
        match refused {
            Some((Task::Unit(job), why)) => job_refused(job, why),
            Some((Task::Alone(_), why)) => tracing::error!("{why}"),
            None => {}
        }
    }
}

impl Writer {
    /// Runs `job` here, as a batch of its own, when its caller is alone and
    /// no batch is running; otherwise hands it back (counted in flight) for
    /// the writer thread.
    fn lone(&self, job: WriterJob) -> Option<WriterJob> {
        let (in_flight, lone) = self.load.enter();
        let job: WriterJob = Box::new(move |work| {
            let settle = job(work);
            Box::new(move |durable| {
                // Out of flight before its caller hears, so that a caller's
                // next unit finds it gone.
                drop(in_flight);
                settle(durable);
            })
        });
        if !lone || RUNNING_BATCH_OF.get() == self.id {
            return Some(job);
        }
        let Some(here) = Here::now(self.syncs) else {
            return Some(job);
        };
        let Ok(_batch) = self.batch.try_lock() else {
            return Some(job);
        };
        RUNNING_BATCH_OF.set(self.id);
        let batch = || run_batch(&self.shared, job, || None);
        let answers = catch_unwind(AssertUnwindSafe(|| here.block(batch)))
            .unwrap_or_else(|_| recover(&self.shared));
        RUNNING_BATCH_OF.set(0);
        drop(_batch);
        answers.tell();
        catch_up_if_behind(&self.shared, &self.batch);
        None
    }
}

/// How a lone caller runs its batch on its own thread, or `None` where
/// that thread must not block.
enum Here {
    /// Blocking this thread: an embedder's, a courier's, the blocking
    /// pool's, or a tokio worker's when the commit is not synced (the whole
    /// unit then takes a few hundred microseconds, and handing the worker's
    /// other tasks away cost a tenth of that, measured in BENCHMARKS.md).
    Directly,
    /// A tokio worker that waits for a sync of the disk hands its other
    /// tasks to another thread first (`block_in_place`).
    #[cfg(feature = "multi-thread")]
    InPlace,
}

impl Here {
    /// `None` on a current-thread runtime's thread, or (without the
    /// server's multi-thread runtime built in) any runtime's.
    fn now(
        #[cfg_attr(not(feature = "multi-thread"), expect(unused_variables))] syncs: bool,
    ) -> Option<Self> {
        match tokio::runtime::Handle::try_current() {
            Err(_) => Some(Self::Directly),
            #[cfg(feature = "multi-thread")]
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                Some(if syncs { Self::InPlace } else { Self::Directly })
            }
            Ok(_) => None,
        }
    }

    fn block<T>(self, work: impl FnOnce() -> T) -> T {
        match self {
            Self::Directly => work(),
            #[cfg(feature = "multi-thread")]
            Self::InPlace => tokio::task::block_in_place(work),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.tasks = None;
        if let Some(thread) = self.thread.take()
            && std::thread::current().id() != self.thread_id
        {
            let _ = thread.join();
        }
    }
}

fn run(shared: &WriterCell, batch: &BatchLock, queue: &Receiver<Task>) {
    let mut next = None;
    loop {
        let task = match next.take() {
            Some(task) => task,
            None => match next_task(queue) {
                Some(task) => task,
                None => return,
            },
        };
        // A panic outside a unit of work (SQLite's glue, a checkpoint) must
        // not end the writer, or every later write would fail: the batch it
        // hit is rolled back, its callers hear that nothing was settled
        // (their callbacks are dropped unanswered), and the writer goes on.
        let answers = {
            let _batch = hold(batch);
            catch_unwind(AssertUnwindSafe(|| serve(shared, queue, task, &mut next)))
                .unwrap_or_else(|_| recover(shared))
        };
        answers.tell();
        catch_up_if_behind(shared, batch);
    }
}

/// After a panic outside a unit of work: the batch it hit is rolled back,
/// and its callers are owed nothing. The caller holds the batch lock.
fn recover(shared: &WriterCell) -> Answers {
    let mut state = lock(shared);
    if !state.conn.is_autocommit() {
        let _ = state.conn.execute_batch("ROLLBACK");
    }
    state.open = false;
    state.broken = false;
    tracing::error!("the storage writer panicked; its batch was rolled back and it goes on");
    Answers::default()
}

/// What a batch owes its callers: each one's callback and whether its
/// writes are durable. Told once the batch lock is released, so that a
/// caller's next unit finds it free.
#[derive(Default)]
struct Answers(Vec<(OnDurable, Result<()>)>);

impl Answers {
    fn tell(self) {
        for (settle, durable) in self.0 {
            settle(durable);
        }
    }
}

/// The writer's own checkpoint, between batches, when the log has outgrown
/// the checkpointer. Whoever runs a batch meanwhile tries after it; the
/// batch lock is taken only when needed, so that a caller's next unit
/// rarely finds it held.
fn catch_up_if_behind(shared: &WriterCell, batch: &BatchLock) {
    if !lock(shared).checkpointer.writer_must_catch_up() {
        return;
    }
    if let Ok(_batch) = batch.try_lock() {
        let state = lock(shared);
        state.checkpointer.catch_up(&state.conn);
    }
}

/// Runs one task: a lone one, or a batch of units of work that starts with
/// it (leaving in `next` a lone task that arrived meanwhile).
fn serve(
    shared: &WriterCell,
    queue: &Receiver<Task>,
    task: Task,
    next: &mut Option<Task>,
) -> Answers {
    match task {
        Task::Alone(work) => {
            work(&lock(shared).conn);
            Answers::default()
        }
        Task::Unit(first) => run_batch(shared, first, || match queue.try_recv() {
            Ok(Task::Unit(job)) => Some(job),
            Ok(alone) => {
                *next = Some(alone);
                None
            }
            Err(_) => None,
        }),
    }
}

/// One transaction: `first`, then the units `more` gives while the batch
/// has room, committed together; answers whether their writes are durable.
/// The caller holds the batch lock.
fn run_batch(
    shared: &WriterCell,
    first: WriterJob,
    mut more: impl FnMut() -> Option<WriterJob>,
) -> Answers {
    if let Err(e) = lock(shared).conn.execute_batch("BEGIN IMMEDIATE") {
        let why = format!("starting a transaction: {e}");
        job_refused(first, &why);
        return Answers::default();
    }
    let started = Instant::now();
    let mut settled = vec![run_unit(shared, first)];
    while settled.len() < MAX_BATCH && started.elapsed() < MAX_BATCH_TIME {
        match more() {
            Some(job) => settled.push(run_unit(shared, job)),
            None => break,
        }
    }
    #[cfg(feature = "metrics")]
    metrics::histogram!("reclaim_storage_batch_size").record(settled.len() as f64);
    match finish_batch(&mut lock(shared)) {
        Ok(()) => Answers(settled.into_iter().map(|settle| (settle, Ok(()))).collect()),
        Err(e) => {
            let why = format!("{e:#}");
            // Each caller gets the failure as its own error; a full disk
            // keeps its kind, so that callers can say "try again".
            let out_of_space = e.chain().any(super::is_out_of_space);
            tracing::error!(units = settled.len(), error = %why, "a batch of writes was lost");
            let lost = |settle| {
                let error = if out_of_space {
                    crate::storage::Unavailable(why.clone().into()).into()
                } else {
                    anyhow!("{why}")
                };
                (settle, Err(error))
            };
            Answers(settled.into_iter().map(lost).collect())
        }
    }
}

/// The next task, looking for one briefly before sleeping: a caller that
/// sends its next unit of work right after its last answer (one caller at a
/// time) would otherwise wait for this thread to be woken, tens of
/// microseconds on a virtual machine.
fn next_task(queue: &Receiver<Task>) -> Option<Task> {
    let spin_until = Instant::now() + SPIN_BEFORE_SLEEPING;
    while Instant::now() < spin_until {
        match queue.try_recv() {
            Ok(task) => return Some(task),
            Err(std::sync::mpsc::TryRecvError::Disconnected) => return None,
            Err(std::sync::mpsc::TryRecvError::Empty) => std::hint::spin_loop(),
        }
    }
    queue.recv().ok()
}

fn job_refused(job: WriterJob, why: &str) {
    job(Err(anyhow!("{why}")))(Err(anyhow!("{why}")));
}

/// Runs one job in a savepoint of the open transaction.
fn run_unit(shared: &WriterCell, job: WriterJob) -> OnDurable {
    let unit = {
        let mut state = lock(shared);
        // SQLite ends a transaction by itself on some errors (a full disk);
        // a savepoint now would start a new one outside the batch.
        if state.broken || state.conn.is_autocommit() {
            state.broken = true;
            drop(state);
            return job(Err(anyhow!("an earlier write of this batch failed")));
        }
        if let Err(e) = state.conn.execute_batch("SAVEPOINT unit") {
            state.broken = true;
            drop(state);
            return job(Err(anyhow!("starting a savepoint: {e}")));
        }
        state.unit += 1;
        state.open = true;
        state.unit
    };
    let work = SqliteWork {
        shared: Arc::clone(shared),
        unit,
    };
    let settled = catch_unwind(AssertUnwindSafe(|| job(Ok(work)))).unwrap_or_else(|_| {
        tracing::error!("a unit of work panicked; its writes were undone");
        Box::new(|_| {})
    });
    // A job that kept its unit past its return: nothing more is written
    // through it, and what it wrote is undone.
    let mut state = lock(shared);
    if state.is_open(unit) {
        tracing::error!("a unit of work outlived its job; its writes were undone");
        // A failure marks the batch broken, which rolls it back whole.
        let _ = end_unit(&mut state, false);
    }
    settled
}

/// Releases the open savepoint, keeping or undoing its writes.
fn end_unit(state: &mut WriterState, keep: bool) -> Result<()> {
    state.open = false;
    let sql = if keep {
        "RELEASE unit"
    } else {
        "ROLLBACK TO unit; RELEASE unit"
    };
    state.conn.execute_batch(sql).map_err(|e| {
        state.broken = true;
        anyhow!("ending a unit of work: {e}")
    })
}

fn finish_batch(state: &mut WriterState) -> Result<()> {
    let broken = std::mem::replace(&mut state.broken, false);
    if state.conn.is_autocommit() {
        bail!("the transaction was rolled back by SQLite");
    }
    if broken {
        let _ = state.conn.execute_batch("ROLLBACK");
        bail!("a write of this batch failed; the batch was rolled back");
    }
    if let Err(e) = state.conn.execute_batch("COMMIT") {
        if !state.conn.is_autocommit() {
            let _ = state.conn.execute_batch("ROLLBACK");
        }
        return Err(e).context("committing");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
