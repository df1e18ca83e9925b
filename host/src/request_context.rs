//! The id of the request an operation serves, wherever the operation runs:
//! the HTTP layer sets it for the request's task ([`REQUEST_ID`]), and the
//! operations carry it onto the storage's thread ([`carry`]), so that the
//! events a unit of work records name the request that caused them.

use std::cell::RefCell;
use std::sync::Arc;

tokio::task_local! {
    /// The request the current task serves.
    pub static REQUEST_ID: Arc<str>;
}

thread_local! {
    static CARRIED: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The id of the request being served here, if any: the one carried onto
/// this thread, else the current task's.
pub fn request_id() -> Option<String> {
    CARRIED
        .with(|c| c.borrow().clone())
        .or_else(|| REQUEST_ID.try_with(|id| id.to_string()).ok())
}

/// `f`, wrapped so that it runs under the request id current where `carry`
/// was called, on whichever thread it runs.
pub fn carry<A, T>(f: impl FnOnce(A) -> T) -> impl FnOnce(A) -> T {
    let id = request_id();
    move |arg| {
        let before = CARRIED.with(|c| c.replace(id));
        let out = f(arg);
        CARRIED.with(|c| *c.borrow_mut() = before);
        out
    }
}
