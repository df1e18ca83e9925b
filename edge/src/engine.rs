//! The engine's operations, their refusals as the wire crate's. A failure
//! of the engine or the storage is a trap, which ends this instance and
//! the request with it: the runtime answers 500 itself.

use reclaim_wire::refusal::{Outcome, Refusal};

pub use crate::bindings::reclaim::recovery::recovery::*;
pub use crate::bindings::reclaim::recovery::types::IdentityRef;
use crate::bindings::reclaim::recovery::types::{ErrorKind, RecoveryError};

/// An operation's result with its refusal as the wire sees it.
pub fn wired<T>(result: Result<T, RecoveryError>) -> Result<T, Outcome> {
    result.map_err(|e| {
        Outcome::Refused(Refusal {
            kind: reclaim_wire::kind_of!(ErrorKind, e.kind),
            code: e.code,
            status: e.status,
            reason: e.reason,
            message: e.message,
        })
    })
}
