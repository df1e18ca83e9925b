//! PostgreSQL: many `reclaim serve` processes on one database. A fixed set
//! of worker threads each owns one connection; a unit of work is one
//! transaction on one of them, committed when the component returned and
//! rolled back when it trapped.
//!
//! ```no_run
//! use reclaim_storage::directory::NewIdentity;
//! use reclaim_storage::wit::IdentityRef;
//! use reclaim_storage::Identities;
//!
//! # fn main() -> anyhow::Result<()> {
//! let backend = reclaim_postgres::PostgresStorage::open("postgresql://reclaim@localhost/reclaim", None)?;
//! let new = NewIdentity { email: Some("ann@example.com".into()), active: true, ..Default::default() };
//! let ann = backend.create_identity(&new, 0)?;
//! assert!(backend.identity(&IdentityRef::Id(ann.id))?.is_some());
//! # Ok(())
//! # }
//! ```
//!
//! Isolation is READ COMMITTED, and it is enough because nothing decides on
//! a value it read earlier: every exclusive step is one guarded statement
//! (`UPDATE ... WHERE used_at IS NULL ... RETURNING`; PostgreSQL re-checks
//! the guard on the newest row version after waiting for a concurrent
//! writer), or holds a row lock (`FOR UPDATE` for rate-limit counters,
//! `FOR UPDATE SKIP LOCKED` for courier claims). SERIALIZABLE would add
//! retries and buy nothing here.
//!
//! The worker threads are ours, not tokio's: an operation waiting for a
//! round trip to the database blocks its worker, never a runtime thread
//! (the HTTP handlers await a [`Pending`]). Written by hand rather than with
//! a pool crate because each worker must own its connection for a whole
//! unit of work, which the component drives synchronously.

/// An identity's record from `identities`, its columns in the order
/// `identities::record_at` reads them; `$rest` filters.
macro_rules! record_select {
    ($rest:literal) => {
        concat!(
            "SELECT id, pk, email, display_name, locale, active, external_id, second_factor,
                    metadata_public, metadata_admin, created_at, updated_at, state_changed_at
             FROM identities ",
            $rest
        )
    };
}

mod assertions;
mod connect;
mod connection;
mod credentials;
mod events;
mod flows;
mod identities;
mod outbox;
mod platform;
mod rate_limits;
mod requests;
mod schema;
mod sessions;

// The seam's modules under the names the backend's files use.
pub(crate) use reclaim_storage::{self as storage, clock, directory, wit};

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, Result, anyhow, bail};

use crate::storage::promise;
use crate::storage::{Backend, Job, Pending, Storage, UnitOfWork};
use connect::{connect_once, tls};
use connection::{Conn, Losses};
use platform::Platform;

/// Connections (and worker threads) per process.
const WORKERS: usize = 16;

/// PostgreSQL storage.
pub struct PostgresStorage {
    tasks: Mutex<Option<Sender<Task>>>,
    /// The platform's own user table, when it is the directory.
    platform: Option<Arc<Platform>>,
}

enum Task {
    /// A unit of work: one transaction.
    Unit(Job),
    /// The backend's own statements, on a connection of their own.
    Call(Box<dyn FnOnce(&mut Conn) + Send>),
}

impl PostgresStorage {
    /// Connects to `url` (`postgres://user:pass@host:port/db`), brings the
    /// schema up to date and starts the workers. With `sslmode=require`
    /// connections use TLS (rustls), and the server's certificate must
    /// chain to a public root or to one of the PEM certificates in `ca`.
    pub fn open(url: &str, ca: Option<&std::path::Path>) -> Result<Self> {
        Self::open_with(url, ca, None)
    }

    /// [`Self::open`], with the platform's own user table as the directory
    /// when `directory` is given: its queries are prepared and checked
    /// first, and the identity admin API's writes are refused.
    pub fn open_with(
        url: &str,
        ca: Option<&std::path::Path>,
        directory: Option<&crate::directory::DirectoryQueries>,
    ) -> Result<Self> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .context("the database URL is not a PostgreSQL connection string")?;
        // An unreachable host fails the request rather than holding a worker.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(5));
        }
        let tls = tls(&config, ca)?;
        let mut first = connect_once(&config, tls.as_ref())?;
        schema::migrate(&mut first)?;
        let platform = match directory {
            Some(queries) => Some(Arc::new(Platform::check(&mut first, queries)?)),
            None => None,
        };
        drop(first);
        let (tasks, queue) = channel();
        let queue = Arc::new(Mutex::new(queue));
        let losses = Arc::new(Losses::default());
        for n in 0..WORKERS {
            let conn = Conn::new(config.clone(), tls.clone(), Arc::clone(&losses))?;
            let queue = Arc::clone(&queue);
            let platform = platform.clone();
            std::thread::Builder::new()
                .name(format!("reclaim-pg-{n}"))
                .spawn(move || work(&queue, conn, platform))
                .context("starting a PostgreSQL worker")?;
        }
        Ok(Self {
            tasks: Mutex::new(Some(tasks)),
            platform,
        })
    }

    fn send(&self, task: Task) {
        let tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        let refused = match tasks.as_ref() {
            Some(tasks) => tasks.send(task).err().map(|e| e.0),
            None => Some(task),
        };
        if let Some(Task::Unit(job)) = refused {
            job(Err(anyhow!("the PostgreSQL workers stopped")))(Err(anyhow!("stopped")));
        }
    }

    /// Runs `f` on a worker's connection; its answer arrives in a
    /// [`Pending`].
    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<T> + Send + 'static,
    ) -> Pending<T> {
        let (settle, pending) = promise();
        self.send(Task::Call(Box::new(move |conn| {
            let _ = settle.send(f(conn));
        })));
        pending
    }

    /// [`Self::call`] inside one transaction, committed if `f` succeeds.
    fn transaction<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<T> + Send + 'static,
    ) -> Pending<T> {
        self.call(move |conn| {
            conn.begin();
            match f(conn) {
                Ok(out) => {
                    conn.commit()?;
                    Ok(out)
                }
                Err(e) => {
                    conn.rollback();
                    Err(e)
                }
            }
        })
    }
}

impl Drop for PostgresStorage {
    fn drop(&mut self) {
        // The workers finish what is queued and exit.
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

fn work(queue: &Mutex<Receiver<Task>>, conn: Conn, platform: Option<Arc<Platform>>) {
    let cell = Arc::new(Mutex::new(UnitCell {
        conn,
        unit: 0,
        open: false,
        keep: false,
    }));
    loop {
        let task = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
        if task.is_ok() {
            lock(&cell).conn.check_after_losses();
        }
        match task {
            Err(_) => return,
            Ok(Task::Call(f)) => {
                let mut cell = lock(&cell);
                if catch_unwind(AssertUnwindSafe(|| f(&mut cell.conn))).is_err() {
                    tracing::error!("a PostgreSQL call panicked");
                    cell.conn.rollback();
                }
            }
            Ok(Task::Unit(job)) => run_unit(&cell, job, platform.clone()),
        }
    }
}

/// Runs one job in a transaction of its own and reports whether its
/// writes were committed.
fn run_unit(cell: &Arc<Mutex<UnitCell>>, job: Job, platform: Option<Arc<Platform>>) {
    let unit = {
        let mut state = lock(cell);
        // Sent with the unit's first statement.
        state.conn.begin();
        state.unit += 1;
        state.open = true;
        state.keep = false;
        state.unit
    };
    let work = PgWork {
        cell: Arc::clone(cell),
        unit,
        platform,
        prefetched: None,
    };
    let on_durable =
        catch_unwind(AssertUnwindSafe(|| job(Ok(Box::new(work))))).unwrap_or_else(|_| {
            tracing::error!("a unit of work panicked; its writes were rolled back");
            Box::new(|_| {})
        });
    let mut state = lock(cell);
    let keep = state.keep && !state.open;
    state.open = false;
    if !keep {
        state.conn.rollback();
        on_durable(Ok(()));
        return;
    }
    let committed = state.conn.commit();
    if committed.is_err() {
        state.conn.rollback();
    }
    drop(state);
    on_durable(committed);
}

/// A worker's connection and the unit of work on it.
struct UnitCell {
    conn: Conn,
    unit: u64,
    /// Whether `unit` is still running.
    open: bool,
    /// Whether it asked to keep its writes.
    keep: bool,
}

impl UnitCell {
    /// Whether `unit` is the unit of work the connection is in.
    fn is_open(&self, unit: u64) -> bool {
        self.open && self.unit == unit
    }
}

fn lock(cell: &Mutex<UnitCell>) -> MutexGuard<'_, UnitCell> {
    cell.lock().unwrap_or_else(|e| e.into_inner())
}

/// One unit of work: the open transaction of a worker's connection.
pub(crate) struct PgWork {
    cell: Arc<Mutex<UnitCell>>,
    unit: u64,
    platform: Option<Arc<Platform>>,
    /// The record of the identity whose credential this unit consumed, read
    /// in the same statement: the component asks for it next, and this
    /// saves that round trip.
    prefetched: Option<(String, Option<crate::storage::IdentityRecord>)>,
}

/// The connection, borrowed by the running unit of work.
pub(crate) struct ConnGuard<'a>(MutexGuard<'a, UnitCell>);

impl std::ops::Deref for ConnGuard<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        &self.0.conn
    }
}

impl std::ops::DerefMut for ConnGuard<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.0.conn
    }
}

impl PgWork {
    pub(crate) fn conn(&self) -> Result<ConnGuard<'_>> {
        let state = lock(&self.cell);
        if !state.is_open(self.unit) {
            bail!("this unit of work has ended");
        }
        Ok(ConnGuard(state))
    }
}

impl Drop for PgWork {
    fn drop(&mut self) {
        let mut state = lock(&self.cell);
        if state.is_open(self.unit) {
            state.open = false;
            state.keep = false;
        }
    }
}

impl UnitOfWork for PgWork {
    fn commit(self: Box<Self>) -> Result<()> {
        let mut state = lock(&self.cell);
        if !state.is_open(self.unit) {
            bail!("this unit of work has ended");
        }
        state.open = false;
        state.keep = true;
        Ok(())
    }
}

impl Storage for PostgresStorage {
    fn submit(&self, job: Job) {
        self.send(Task::Unit(job));
    }
}

impl Backend for PostgresStorage {
    fn ping(&self) -> Result<()> {
        self.call(Conn::ping).wait()
    }
}
