//! Group commit: one thread owns the writing connection and runs units of
//! work back to back inside one transaction, each in a savepoint, then
//! commits them together. One sync of the disk then covers a whole batch,
//! and writers never queue on SQLite's lock, whose busy handler sleeps in
//! steps of milliseconds.

use std::ops::Deref;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rusqlite::Connection;

use super::checkpointer::Checkpointer;
use crate::storage::OnDurable;

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

/// The writer thread's handle; dropping it lets the thread finish its queue
/// and close the connection.
pub(super) struct Writer {
    tasks: Option<Sender<Task>>,
    thread: Option<JoinHandle<()>>,
    thread_id: ThreadId,
}

impl Writer {
    /// Starts the writer on `conn`, with a checkpointer on `checkpoints`.
    pub(super) fn start(mut conn: Connection, checkpoints: Connection) -> Result<Self> {
        let (tasks, queue) = channel();
        let checkpointer = Checkpointer::start(&mut conn, checkpoints)?;
        let shared = Arc::new(Mutex::new(WriterState {
            conn,
            checkpointer,
            unit: 0,
            open: false,
            broken: false,
        }));
        let thread = std::thread::Builder::new()
            .name("reclaim-writer".into())
            .spawn(move || run(&shared, &queue))
            .context("starting the SQLite writer thread")?;
        Ok(Self {
            tasks: Some(tasks),
            thread_id: thread.thread().id(),
            thread: Some(thread),
        })
    }

    pub(super) fn send(&self, task: Task) {
        // A job that waited for a write of its own on this thread would
        // wait forever.
        let refused = if std::thread::current().id() == self.thread_id {
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

fn run(shared: &WriterCell, queue: &Receiver<Task>) {
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
        if catch_unwind(AssertUnwindSafe(|| serve(shared, queue, task, &mut next))).is_err() {
            let mut state = lock(shared);
            if !state.conn.is_autocommit() {
                let _ = state.conn.execute_batch("ROLLBACK");
            }
            state.open = false;
            state.broken = false;
            tracing::error!(
                "the storage writer panicked; its batch was rolled back and it goes on"
            );
        }
    }
}

/// Runs one task: a lone one, or a batch of units of work that starts with
/// it (leaving in `next` a lone task that arrived meanwhile).
fn serve(shared: &WriterCell, queue: &Receiver<Task>, task: Task, next: &mut Option<Task>) {
    let first = match task {
        Task::Alone(work) => {
            work(&lock(shared).conn);
            return;
        }
        Task::Unit(job) => job,
    };
    if let Err(e) = lock(shared).conn.execute_batch("BEGIN IMMEDIATE") {
        let why = format!("starting a transaction: {e}");
        job_refused(first, &why);
        return;
    }
    let started = Instant::now();
    let mut settled = vec![run_unit(shared, first)];
    while settled.len() < MAX_BATCH && started.elapsed() < MAX_BATCH_TIME {
        match queue.try_recv() {
            Ok(Task::Unit(job)) => settled.push(run_unit(shared, job)),
            Ok(alone) => {
                *next = Some(alone);
                break;
            }
            Err(_) => break,
        }
    }
    #[cfg(feature = "metrics")]
    metrics::histogram!("reclaim_storage_batch_size").record(settled.len() as f64);
    match finish_batch(&mut lock(shared)) {
        Ok(()) => settled.into_iter().for_each(|settle| settle(Ok(()))),
        Err(e) => {
            let why = format!("{e:#}");
            // Each caller gets the failure as its own error; a full disk
            // keeps its kind, so that callers can say "try again".
            let out_of_space = e.chain().any(super::is_out_of_space);
            tracing::error!(units = settled.len(), error = %why, "a batch of writes was lost");
            for settle in settled {
                settle(Err(if out_of_space {
                    crate::storage::Unavailable(why.clone().into()).into()
                } else {
                    anyhow!("{why}")
                }));
            }
        }
    }
    let state = lock(shared);
    if state.checkpointer.writer_must_catch_up() {
        state.checkpointer.catch_up(&state.conn);
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

/// One unit of work: a savepoint on the writer's connection, usable while
/// it is the open one.
pub(super) struct SqliteWork {
    shared: WriterCell,
    unit: u64,
}

/// The writer's connection, borrowed by the open unit of work.
pub(super) struct Conn<'a>(MutexGuard<'a, WriterState>);

impl Deref for Conn<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.0.conn
    }
}

impl SqliteWork {
    pub(super) fn conn(&self) -> Result<Conn<'_>> {
        let state = lock(&self.shared);
        if !state.is_open(self.unit) {
            bail!("this unit of work has ended");
        }
        Ok(Conn(state))
    }

    /// Keeps this unit's writes in the batch.
    pub(super) fn keep(self) -> Result<()> {
        let mut state = lock(&self.shared);
        if !state.is_open(self.unit) {
            bail!("this unit of work has ended");
        }
        end_unit(&mut state, true)
        // `Drop` then finds the unit closed.
    }
}

impl Drop for SqliteWork {
    fn drop(&mut self) {
        let mut state = lock(&self.shared);
        if state.is_open(self.unit) {
            let _ = end_unit(&mut state, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NewIdentity;
    use crate::storage::{Backend, Identities, SqliteStorage};

    #[test]
    fn a_panic_on_the_writer_outside_a_unit_leaves_it_writing() {
        let dir = tempfile::tempdir().unwrap();
        let storage = SqliteStorage::open(dir.path().join("reclaim.db")).unwrap();
        let new = |email: &str| NewIdentity {
            email: Some(email.into()),
            active: true,
            ..Default::default()
        };
        storage.create_identity(&new("ann@example.com"), 0).unwrap();
        storage.writer.send(Task::Alone(Box::new(|_| {
            panic!("injected into the writer")
        })));
        storage.ping().expect("the writer still answers");
        storage.create_identity(&new("bob@example.com"), 0).unwrap();
        assert_eq!(storage.list_identities().unwrap().len(), 2);
    }
}
