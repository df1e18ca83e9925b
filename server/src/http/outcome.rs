//! An operation's error as the wire crate's [`Outcome`], which every
//! route's shape (Kratos, authentik, pages) is built from. The cause of a
//! failure is logged here, once, under the request id the answer names.

use reclaim_wire::refusal::{Failure, Outcome, Refusal};

use crate::operations::Error;
use crate::wit::{ErrorKind, RecoveryError};

/// `e` as the wire sees it, its cause logged.
pub fn outcome(e: &Error) -> Outcome {
    match e {
        Error::Refused(refusal) => Outcome::Refused(refusal_of(refusal)),
        Error::Failed(failure) if crate::backends::is_unavailable(failure) => {
            tracing::warn!(request = %super::request_id(), error = %format!("{failure:#}"), "database unavailable");
            Outcome::Failed(Failure::Unavailable)
        }
        Error::Overloaded(_) => Outcome::Failed(Failure::Overloaded),
        Error::Failed(failure) => {
            tracing::error!(request = %super::request_id(), error = %format!("{failure:#}"), "operation failed");
            Outcome::Failed(Failure::Failed)
        }
    }
}

fn refusal_of(e: &RecoveryError) -> Refusal {
    Refusal {
        kind: reclaim_wire::kind_of!(ErrorKind, e.kind),
        code: e.code,
        status: e.status.clone(),
        reason: e.reason.clone(),
        message: e.message.clone(),
    }
}
