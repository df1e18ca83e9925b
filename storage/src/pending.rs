//! [`Pending`]: the one name for a result that arrives once the writes
//! behind it are durable, and the plumbing that produces it.

use anyhow::Result;

use super::{Storage, UnitOfWork};

/// A result available once the writes behind it are durable (or lost):
/// [`Pending::wait`] for it on a thread, or await it in a task. Storage
/// calls answer with `anyhow::Error`; recovery operations with
/// [`crate::Error`], which tells a refusal from a failure.
#[must_use = "the answer, and whether it was durably written"]
pub struct Pending<T, E = anyhow::Error>(tokio::sync::oneshot::Receiver<Result<T, E>>);

impl<T, E: From<anyhow::Error>> Pending<T, E> {
    /// A result that is already settled (a backend that writes nothing, or
    /// keeps its writes in memory).
    pub fn ready(result: Result<T, E>) -> Self {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = tx.send(result);
        Self(rx)
    }

    /// Blocks the thread until the result is settled. Async tasks should
    /// await it instead; waiting inside a runtime only blocks that worker
    /// (the writer does not need the runtime), unlike tokio's
    /// `blocking_recv`, which panics there.
    pub fn wait(self) -> Result<T, E> {
        futures_executor::block_on(self)
    }
}

impl<T, E: From<anyhow::Error>> Future for Pending<T, E> {
    type Output = Result<T, E>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<T, E>> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|settled| settled.unwrap_or_else(|_| Err(writer_stopped().into())))
    }
}

fn writer_stopped() -> anyhow::Error {
    anyhow::anyhow!("the storage writer stopped before the work was settled")
}

/// Told once whether the writes a job kept are durable, or why they were
/// lost.
pub type OnDurable = Box<dyn FnOnce(Result<()>) + Send>;

/// Runs `work` in a unit of work of `storage` and returns its result once
/// what it committed is durable.
pub fn transact<T: Send + 'static>(
    storage: &dyn Storage,
    work: impl FnOnce(Box<dyn UnitOfWork>) -> Result<T> + Send + 'static,
) -> Result<T> {
    submit(storage, work).wait()
}

/// Submits `work` to run in a unit of work of `storage`; its result arrives
/// in the [`Pending`] once what it committed is durable.
pub fn submit<T: Send + 'static, E: From<anyhow::Error> + Send + 'static>(
    storage: &dyn Storage,
    work: impl FnOnce(Box<dyn UnitOfWork>) -> Result<T, E> + Send + 'static,
) -> Pending<T, E> {
    let (job, pending) = settling(work);
    storage.submit(Box::new(job));
    pending
}

/// A job that runs `work` on its unit of work `W` and reports the result
/// only when the writes are durable (or lost): a failure to begin or to
/// make the writes durable wins over what `work` returned.
pub fn settling<W, T: Send + 'static, E: From<anyhow::Error> + Send + 'static>(
    work: impl FnOnce(W) -> Result<T, E> + Send + 'static,
) -> (
    impl FnOnce(Result<W>) -> OnDurable + Send + 'static,
    Pending<T, E>,
) {
    let (tx, pending) = promise();
    let job = move |begun: Result<W>| -> OnDurable {
        let outcome = begun.map_err(E::from).and_then(work);
        Box::new(move |durable: Result<()>| {
            let _ = tx.send(durable.map_err(E::from).and(outcome));
        })
    };
    (job, pending)
}

/// A [`Pending`] and the sender that settles it.
pub fn promise<T, E>() -> (tokio::sync::oneshot::Sender<Result<T, E>>, Pending<T, E>) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    (tx, Pending(rx))
}
