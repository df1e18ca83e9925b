//! PostgreSQL: many `reclaim serve` processes on one database. A fixed set
//! of worker threads each owns one connection; a unit of work is one
//! transaction on one of them, committed when the component returned and
//! rolled back when it trapped.
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

mod credentials;
mod identities;
mod outbox;
mod rate_limits;
mod requests;
mod schema;
mod sessions;

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, Result, anyhow, bail};
use postgres::types::ToSql;
use postgres::{Client, NoTls, Row, Statement};

use crate::storage::pending::promise;
use crate::storage::{Backend, Job, Pending, Storage, Unavailable, UnitOfWork};

/// Connections (and worker threads) per process.
const WORKERS: usize = 16;

/// PostgreSQL storage.
pub struct PostgresStorage {
    tasks: Mutex<Option<Sender<Task>>>,
}

enum Task {
    /// A unit of work: one transaction.
    Unit(Job),
    /// The backend's own statements, on a connection of their own.
    Call(Box<dyn FnOnce(&mut Conn) + Send>),
}

impl PostgresStorage {
    /// Connects to `url` (`postgres://user:pass@host:port/db`), brings the
    /// schema up to date and starts the workers.
    pub fn open(url: &str) -> Result<Self> {
        let mut config: postgres::Config = url
            .parse()
            .context("the database URL is not a PostgreSQL connection string")?;
        // An unreachable host fails the request rather than holding a worker.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(5));
        }
        if url.contains("sslmode=require") || url.contains("sslmode=verify") {
            bail!(
                "TLS to PostgreSQL is not supported yet: use sslmode=disable on a trusted network"
            );
        }
        let mut first = Conn::new(config.clone());
        schema::migrate(first.client()?)?;
        let (tasks, queue) = channel();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..WORKERS {
            let (queue, conn) = (Arc::clone(&queue), Conn::new(config.clone()));
            std::thread::Builder::new()
                .name(format!("reclaim-pg-{n}"))
                .spawn(move || work(&queue, conn))
                .context("starting a PostgreSQL worker")?;
        }
        Ok(Self {
            tasks: Mutex::new(Some(tasks)),
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
            conn.batch("BEGIN")?;
            match f(conn) {
                Ok(out) => {
                    conn.batch("COMMIT")?;
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

fn work(queue: &Mutex<Receiver<Task>>, conn: Conn) {
    let cell = Arc::new(Mutex::new(UnitCell {
        conn,
        unit: 0,
        open: false,
        keep: false,
    }));
    loop {
        let task = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
        match task {
            Err(_) => return,
            Ok(Task::Call(f)) => {
                let mut cell = lock(&cell);
                if catch_unwind(AssertUnwindSafe(|| f(&mut cell.conn))).is_err() {
                    tracing::error!("a PostgreSQL call panicked");
                    cell.conn.rollback();
                }
            }
            Ok(Task::Unit(job)) => run_unit(&cell, job),
        }
    }
}

/// Runs one job in a transaction of its own and reports whether its
/// writes were committed.
fn run_unit(cell: &Arc<Mutex<UnitCell>>, job: Job) {
    let unit = {
        let mut state = lock(cell);
        let begun = state.conn.batch("BEGIN");
        if let Err(e) = begun {
            drop(state);
            // The job and its callback each need the error: a copy keeps
            // whether the database was out of reach.
            let copy = copy_error(&e);
            job(Err(e.context("starting a transaction")))(Err(copy));
            return;
        }
        state.unit += 1;
        state.open = true;
        state.keep = false;
        state.unit
    };
    let work = PgWork {
        cell: Arc::clone(cell),
        unit,
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
    let committed = state.conn.batch("COMMIT");
    if committed.is_err() {
        state.conn.rollback();
    }
    drop(state);
    on_durable(committed.context("committing"));
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

fn lock(cell: &Mutex<UnitCell>) -> MutexGuard<'_, UnitCell> {
    cell.lock().unwrap_or_else(|e| e.into_inner())
}

/// One unit of work: the open transaction of a worker's connection.
pub(super) struct PgWork {
    cell: Arc<Mutex<UnitCell>>,
    unit: u64,
}

/// The connection, borrowed by the running unit of work.
pub(super) struct ConnGuard<'a>(MutexGuard<'a, UnitCell>);

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
    pub(super) fn conn(&self) -> Result<ConnGuard<'_>> {
        let state = lock(&self.cell);
        if !(state.open && state.unit == self.unit) {
            bail!("this unit of work has ended");
        }
        Ok(ConnGuard(state))
    }
}

impl Drop for PgWork {
    fn drop(&mut self) {
        let mut state = lock(&self.cell);
        if state.open && state.unit == self.unit {
            state.open = false;
            state.keep = false;
        }
    }
}

impl UnitOfWork for PgWork {
    fn commit(self: Box<Self>) -> Result<()> {
        let mut state = lock(&self.cell);
        if !(state.open && state.unit == self.unit) {
            bail!("this unit of work has ended");
        }
        state.open = false;
        state.keep = true;
        Ok(())
    }
}

/// A connection that reconnects when it was lost, with its prepared
/// statements (each is prepared once per connection: a statement sent as
/// text costs a second round trip every time).
pub(super) struct Conn {
    config: postgres::Config,
    client: Option<Client>,
    statements: HashMap<&'static str, Statement>,
}

impl Conn {
    fn new(config: postgres::Config) -> Self {
        Self {
            config,
            client: None,
            statements: HashMap::new(),
        }
    }

    /// The client, connecting first if there is none or it was lost.
    fn client(&mut self) -> Result<&mut Client> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.statements.clear();
            let client = self
                .config
                .connect(NoTls)
                .map_err(|e| anyhow::Error::new(Unavailable(Box::new(e))))
                .context("connecting to PostgreSQL")?;
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("just connected"))
    }

    /// Runs statements with no parameters and no rows (BEGIN, COMMIT).
    fn batch(&mut self, sql: &str) -> Result<()> {
        self.client()?.batch_execute(sql).map_err(failure)
    }

    fn rollback(&mut self) {
        if let Some(client) = self.client.as_mut()
            && client.batch_execute("ROLLBACK").is_err()
        {
            // A connection that can't roll back is of no further use.
            self.client = None;
        }
    }

    fn statement(&mut self, sql: &'static str) -> Result<Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client()?.prepare(sql).map_err(failure)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    pub(super) fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        let statement = self.statement(sql)?;
        self.client()?.query(&statement, params).map_err(failure)
    }

    pub(super) fn query_opt(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    pub(super) fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64> {
        let statement = self.statement(sql)?;
        self.client()?.execute(&statement, params).map_err(failure)
    }
}

impl Storage for PostgresStorage {
    fn submit(&self, job: Job) {
        self.send(Task::Unit(job));
    }
}

impl Backend for PostgresStorage {
    fn ping(&self) -> Result<()> {
        self.call(|conn| {
            conn.query_opt("SELECT 1", &[])?;
            Ok(())
        })
        .wait()
    }
}

/// A PostgreSQL error as the host reports it: a lost connection or a server
/// that is shutting down or out of connections is [`Unavailable`] (the
/// caller answers 503); anything else is a fault.
fn failure(e: postgres::Error) -> anyhow::Error {
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    // SQLSTATE classes 08 (connection exception), 53 (insufficient
    // resources) and 57 (operator intervention: admin shutdown).
    let class = e.code().map(|c| &c.code()[..2]);
    if e.is_closed() || io || matches!(class, Some("08" | "53" | "57")) {
        anyhow::Error::new(Unavailable(Box::new(e)))
    } else {
        e.into()
    }
}

/// The same failure again, as text, still marked [`Unavailable`] if it was.
fn copy_error(e: &anyhow::Error) -> anyhow::Error {
    let text = format!("{e:#}");
    if crate::storage::is_unavailable(e) {
        anyhow::Error::new(Unavailable(text.into()))
    } else {
        anyhow!(text)
    }
}
