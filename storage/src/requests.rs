//! Self-service requests wait in the store and are served at a steady pace,
//! apart from the request that queued them: the work a known address causes
//! can't then be timed by the requester's next request.

use anyhow::Result;

use super::Pending;

/// A self-service request waiting for its turn (see
/// [`crate::Reclaim::serve_queued_request`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedRequest {
    pub id: i64,
    pub email: String,
    pub return_to: Option<String>,
    /// For a code (the flow API's `code` method): the flow id the code is
    /// bound to, drawn by the flow before the request was queued. None: a
    /// link.
    pub code_flow: Option<String>,
}

/// A self-service request to queue.
#[derive(Clone, Copy, Debug, Default)]
pub struct NewRequest<'a> {
    pub email: &'a str,
    pub return_to: Option<&'a str>,
    /// See [`QueuedRequest::code_flow`].
    pub code_flow: Option<&'a str>,
}

/// The queue inside a unit of work.
pub trait RequestQueue {
    /// Removes a served request, in the transaction that served it;
    /// returns false when it was no longer there (another process sharing
    /// the store served it first).
    fn dequeue_request(&mut self, id: i64) -> Result<bool>;
}

/// The queue as the public route and the serving loop use it.
pub trait Requests {
    /// Queues a request; settled once it is durable. Known and unknown
    /// addresses cost the same here: one row.
    fn queue_request(&self, request: &NewRequest<'_>, now: u64) -> Pending<()>;

    /// Claims up to `limit` queued requests, oldest first, until
    /// `lease_until`: requests another process claimed are skipped until
    /// their lease runs out (it died), so replicas sharing the queue don't
    /// all run the same request. A claim is not the guard against serving
    /// twice; the dequeue in the serving unit of work is.
    fn claim_requests(
        &self,
        limit: usize,
        now: u64,
        lease_until: u64,
    ) -> Result<Vec<QueuedRequest>>;

    /// Drops a request that could not be served (its operation trapped), so
    /// that it is not tried forever.
    fn drop_request(&self, id: i64) -> Result<()>;
}
