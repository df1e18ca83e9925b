//! A worker's connection: a unit of work's statements pipelined into as few
//! round trips as its answers allow, a connection lost before anything of a
//! transaction was answered replaced and the transaction sent again, its
//! prepared statements, TLS when the URL asks for it, and errors sorted into
//! "the database is out of reach" and faults. [`Conn::round_trip`] is the
//! one place statements are sent.
//!
//! Pipelining: `BEGIN` goes out with the transaction's first statement, and
//! a write whose answer nobody reads ([`Conn::defer`]) goes out with the
//! next statement that needs one, or with `COMMIT`. tokio-postgres writes
//! every request issued before it is polled in one flush, so each of these
//! groups costs one round trip. The statements still run in the order they
//! were issued, so every read sees the unit's own earlier writes.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, anyhow};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls, Row, Socket, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::storage::Unavailable;

/// How long a round trip (or connecting) may wait for the database. Every
/// unit's statements are short and wait only on other units' short locks,
/// so no answer after this long means the server is gone or frozen (a
/// failover whose old host vanished sends no reset): the connection is
/// then treated as lost, like one the server closed, and a transaction not
/// yet answered is sent again on a fresh one.
const ROUND_TRIP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `future`'s output, or `None` when the database took longer than
/// [`ROUND_TRIP_TIMEOUT`].
fn answered<F: Future>(runtime: &tokio::runtime::Runtime, future: F) -> Option<F::Output> {
    // The timer is made inside the runtime, which drives it.
    runtime
        .block_on(async { tokio::time::timeout(ROUND_TRIP_TIMEOUT, future).await })
        .ok()
}

fn unanswered() -> anyhow::Error {
    anyhow::Error::new(Unavailable(
        format!("PostgreSQL did not answer within {ROUND_TRIP_TIMEOUT:?}").into(),
    ))
}

/// A value a deferred write owns until it is sent.
pub(super) type Param = Box<dyn ToSql + Sync + Send>;

/// Connections of one pool found lost, counted: a worker whose connection
/// has not been checked since the latest loss checks it (one `Sync`
/// message) before its next task, so that a database restart costs the
/// pool's other connections nothing a request would notice.
#[derive(Default)]
pub(super) struct Losses(AtomicU64);

/// A write sent with the next round trip.
struct Deferred {
    sql: &'static str,
    params: Vec<Param>,
    what: &'static str,
}

/// The transaction the connection is in, if any.
#[derive(Default)]
struct Transaction {
    /// Between [`Conn::begin`] and its commit or rollback.
    open: bool,
    /// `BEGIN` reached this connection.
    sent: bool,
    /// A round trip of it was answered: the unit has seen what the
    /// database said, so it can't be sent again.
    answered: bool,
    deferred: Vec<Deferred>,
}

/// What the last statement of a round trip is.
enum Last<'a> {
    Rows(&'static str, &'a [&'a (dyn ToSql + Sync)]),
    Count(&'static str, &'a [&'a (dyn ToSql + Sync)]),
    Commit,
}

/// What one statement answered.
enum Answer {
    Rows(Vec<Row>),
    Count(u64),
}

type Call<'a> = Pin<Box<dyn Future<Output = Result<Answer, tokio_postgres::Error>> + 'a>>;

/// A connection that reconnects when it was lost, with its prepared
/// statements (each is prepared once per connection: a statement sent as
/// text costs a second round trip every time). It runs on a runtime of its
/// own, on its worker's thread: the component drives storage synchronously.
pub(crate) struct Conn {
    config: Config,
    tls: Option<MakeRustlsConnect>,
    runtime: tokio::runtime::Runtime,
    client: Option<Client>,
    statements: HashMap<&'static str, Statement>,
    losses: Arc<Losses>,
    /// The count of losses this connection was checked after.
    checked: u64,
    transaction: Transaction,
}

impl Conn {
    pub(super) fn new(
        config: Config,
        tls: Option<MakeRustlsConnect>,
        losses: Arc<Losses>,
    ) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting a PostgreSQL connection's runtime")?;
        let checked = losses.0.load(Ordering::Relaxed);
        Ok(Self {
            config,
            tls,
            runtime,
            client: None,
            statements: HashMap::new(),
            losses,
            checked,
            transaction: Transaction::default(),
        })
    }

    /// The client, connecting first if there is none or it was lost.
    fn connect(&mut self) -> Result<()> {
        if self.client.as_ref().is_some_and(|c| !c.is_closed()) {
            return Ok(());
        }
        self.forget_client();
        let config = self.config.clone();
        let tls = self.tls.clone();
        // The connection's task runs whenever this runtime waits for an
        // answer, which is the only time it has anything to do.
        let client = answered(&self.runtime, async move {
            match tls {
                Some(tls) => open_client(&config, tls).await,
                None => open_client(&config, NoTls).await,
            }
        })
        .ok_or_else(unanswered)
        .context("connecting to PostgreSQL")?;
        let client = client
            .map_err(|e| anyhow::Error::new(Unavailable(Box::new(e))))
            .context("connecting to PostgreSQL")?;
        self.client = Some(client);
        Ok(())
    }

    /// Drops the client (and with it any transaction it was in).
    fn forget_client(&mut self) {
        self.client = None;
        self.statements.clear();
        self.transaction.sent = false;
    }

    /// Checks the connection when another was lost since it was last
    /// checked: a dead one is replaced before a task finds out.
    pub(super) fn check_after_losses(&mut self) {
        let losses = self.losses.0.load(Ordering::Relaxed);
        if losses == self.checked {
            return;
        }
        self.checked = losses;
        if let Some(client) = &self.client
            && (client.is_closed()
                || !matches!(
                    answered(&self.runtime, client.check_connection()),
                    Some(Ok(()))
                ))
        {
            self.forget_client();
        }
    }

    /// Whether the database answers, on a fresh connection if this one was
    /// lost.
    pub(super) fn ping(&mut self) -> Result<()> {
        for _ in 0..2 {
            self.connect()?;
            let client = self.client.as_ref().expect("just connected");
            match answered(&self.runtime, client.check_connection()) {
                Some(Ok(())) => return Ok(()),
                Some(Err(e)) if !is_lost(&e) => return Err(failure(e)),
                Some(Err(_)) | None => self.lost(),
            }
        }
        Err(anyhow::Error::new(Unavailable(
            "the connection was lost again".into(),
        )))
    }

    /// Starts a transaction. Nothing is sent until its first statement.
    pub(super) fn begin(&mut self) {
        self.transaction = Transaction {
            open: true,
            ..Transaction::default()
        };
    }

    /// Commits the transaction, with the writes still deferred, in one
    /// round trip. A connection lost on the way leaves the outcome
    /// unknown, so it is reported, never sent again.
    pub(super) fn commit(&mut self) -> Result<()> {
        if !self.transaction.sent && self.transaction.deferred.is_empty() {
            // Nothing of it reached the database.
            self.transaction = Transaction::default();
            return Ok(());
        }
        let committed = self.round_trip(&Last::Commit).map(drop);
        self.transaction = Transaction::default();
        committed
    }

    /// Ends the transaction, undoing it. A connection that can't roll back
    /// is of no further use.
    pub(super) fn rollback(&mut self) {
        let sent = self.transaction.sent || !self.transaction.open;
        self.transaction = Transaction::default();
        if !sent {
            return;
        }
        if let Some(client) = &self.client
            && !matches!(
                answered(&self.runtime, client.batch_execute("ROLLBACK")),
                Some(Ok(()))
            )
        {
            self.forget_client();
        }
    }

    /// Queues a write whose answer the caller does not need: it goes with
    /// the transaction's next round trip, and a failure fails that one.
    /// Outside a transaction it runs now.
    pub(super) fn defer(
        &mut self,
        what: &'static str,
        sql: &'static str,
        params: Vec<Param>,
    ) -> Result<()> {
        if !self.transaction.open {
            let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| &**p as _).collect();
            return self.execute(sql, &refs).context(what).map(drop);
        }
        self.transaction
            .deferred
            .push(Deferred { sql, params, what });
        Ok(())
    }

    pub(super) fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        match self.round_trip(&Last::Rows(sql, params))? {
            Answer::Rows(rows) => Ok(rows),
            Answer::Count(_) => Err(anyhow!("rows expected")),
        }
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
        match self.round_trip(&Last::Count(sql, params))? {
            Answer::Count(count) => Ok(count),
            Answer::Rows(_) => Err(anyhow!("a row count expected")),
        }
    }

    /// Sends what the transaction has waiting (`BEGIN`, deferred writes)
    /// and `last` in one round trip, and returns `last`'s answer. If the
    /// connection turns out lost before any round trip of the transaction
    /// was answered and `last` is not its `COMMIT`, nothing of it took
    /// effect (the database undoes a transaction whose session ends), so
    /// it is sent again, once, on a fresh connection.
    fn round_trip(&mut self, last: &Last<'_>) -> Result<Answer> {
        let replayable =
            self.transaction.open && !self.transaction.answered && !matches!(last, Last::Commit);
        let mut attempts = if replayable { 2 } else { 1 };
        loop {
            attempts -= 1;
            match self.send(last) {
                Ok(answer) => return Ok(answer),
                Err(Sent { error, lost }) => {
                    if lost {
                        self.lost();
                    }
                    if !(lost && attempts > 0) {
                        self.transaction.answered = true;
                        self.transaction.deferred.clear();
                        return Err(error);
                    }
                    tracing::info!(
                        "a PostgreSQL connection was lost; its transaction is sent again"
                    );
                }
            }
        }
    }

    /// Records that this connection was lost, so that the others check.
    fn lost(&mut self) {
        self.forget_client();
        let losses = self.losses.0.fetch_add(1, Ordering::Relaxed) + 1;
        self.checked = losses;
    }

    /// One round trip: the statements are prepared first where they are
    /// new to this connection (all together, once per connection).
    fn send(&mut self, last: &Last<'_>) -> std::result::Result<Answer, Sent> {
        self.connect()
            .map_err(|error| Sent { error, lost: false })?;
        let last_sql = match last {
            Last::Rows(sql, _) | Last::Count(sql, _) => Some(*sql),
            Last::Commit => None,
        };
        let new: Vec<&'static str> = {
            let mut new: Vec<&'static str> = (self.transaction.deferred.iter().map(|d| d.sql))
                .chain(last_sql)
                .filter(|sql| !self.statements.contains_key(sql))
                .collect();
            new.sort_unstable();
            new.dedup();
            new
        };
        let client = self.client.as_ref().expect("just connected");
        if !new.is_empty() {
            let prepared = answered(
                &self.runtime,
                futures_util::future::join_all(new.iter().map(|sql| client.prepare(sql))),
            )
            .ok_or_else(Sent::unanswered)?;
            for (sql, statement) in new.iter().zip(prepared) {
                let statement = statement.map_err(Sent::of)?;
                self.statements.insert(sql, statement);
            }
        }
        let statements = &self.statements;
        let begin = self.transaction.open && !self.transaction.sent;
        let mut calls: Vec<Call<'_>> = Vec::new();
        // What each call is, for the error of the first that failed (the
        // caller says what its own statement was).
        let mut whats: Vec<Option<&'static str>> = Vec::new();
        if begin {
            calls.push(Box::pin(async move {
                client
                    .batch_execute("BEGIN")
                    .await
                    .map(|()| Answer::Count(0))
            }));
            whats.push(Some("starting a transaction"));
        }
        for deferred in &self.transaction.deferred {
            let statement = &statements[deferred.sql];
            calls.push(Box::pin(async move {
                let params: Vec<&(dyn ToSql + Sync)> =
                    deferred.params.iter().map(|p| &**p as _).collect();
                client.execute(statement, &params).await.map(Answer::Count)
            }));
            whats.push(Some(deferred.what));
        }
        match last {
            Last::Rows(sql, params) => {
                let statement = &statements[sql];
                calls.push(Box::pin(async move {
                    client.query(statement, params).await.map(Answer::Rows)
                }));
            }
            Last::Count(sql, params) => {
                let statement = &statements[sql];
                calls.push(Box::pin(async move {
                    client.execute(statement, params).await.map(Answer::Count)
                }));
            }
            Last::Commit => calls.push(Box::pin(async move {
                client
                    .batch_execute("COMMIT")
                    .await
                    .map(|()| Answer::Count(0))
            })),
        }
        whats.push(matches!(last, Last::Commit).then_some("committing"));
        let answers = answered(&self.runtime, futures_util::future::join_all(calls))
            .ok_or_else(Sent::unanswered)?;
        if begin {
            self.transaction.sent = true;
        }
        let mut last_answer = None;
        for (answer, what) in answers.into_iter().zip(whats) {
            match answer {
                Ok(answer) => last_answer = Some(answer),
                // The first failure is the cause; the rest failed because
                // the transaction was aborted by it.
                Err(e) => {
                    let lost = is_lost(&e);
                    let error = failure(e);
                    let error = match what {
                        Some(what) => error.context(what),
                        None => error,
                    };
                    return Err(Sent { error, lost });
                }
            }
        }
        self.transaction.deferred.clear();
        self.transaction.answered |= self.transaction.open;
        Ok(last_answer.expect("a round trip has a last statement"))
    }
}

/// A client over `tls`, its connection's task spawned on the current
/// runtime.
async fn open_client<T>(config: &Config, tls: T) -> Result<Client, tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
{
    let (client, connection) = config.connect(tls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// A round trip that failed, and whether because the connection was lost.
struct Sent {
    error: anyhow::Error,
    lost: bool,
}

impl Sent {
    /// No answer in time: the connection is as good as lost.
    fn unanswered() -> Self {
        Self {
            error: unanswered(),
            lost: true,
        }
    }

    fn of(e: tokio_postgres::Error) -> Self {
        Self {
            lost: is_lost(&e),
            error: failure(e),
        }
    }
}

/// Whether the connection is gone (or being shut down by the server), as
/// opposed to a statement that failed on a live one.
fn is_lost(e: &tokio_postgres::Error) -> bool {
    let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
    // SQLSTATE classes 08 (connection exception) and 57 (operator
    // intervention: an administrator's or a crash's shutdown).
    let class = e.code().map(|c| &c.code()[..2]);
    e.is_closed() || io || matches!(class, Some("08" | "57"))
}

/// A PostgreSQL error as the host reports it: a lost connection or a server
/// that is shutting down or out of connections is [`Unavailable`] (the
/// caller answers 503); anything else is a fault.
fn failure(e: tokio_postgres::Error) -> anyhow::Error {
    let out_of_resources = e.code().is_some_and(|c| c.code().starts_with("53"));
    if is_lost(&e) || out_of_resources {
        anyhow::Error::new(Unavailable(Box::new(e)))
    } else {
        e.into()
    }
}
