//! Whether a caller is alone: how many units are in flight, and for how
//! many submissions in a row there were none (`Writer::lone` decides on it).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// Submissions in a row that found no other unit in flight before a caller
/// counts as alone: a unit run on its caller's thread while others queue
/// would commit alone and keep them from the batch (measured in
/// BENCHMARKS.md, "A lone caller without the two thread hand-offs").
pub(super) const LONE_STREAK: u32 = 8;

/// How many units are in flight, and for how many submissions in a row
/// there were none.
#[derive(Default)]
pub(super) struct Load {
    in_flight: AtomicUsize,
    streak: AtomicU32,
}

impl Load {
    /// Counts a unit in (until its `InFlight` drops), and says whether its
    /// caller has been alone for [`LONE_STREAK`] submissions.
    pub(super) fn enter(self: &Arc<Self>) -> (InFlight, bool) {
        let lone = if self.in_flight.fetch_add(1, Ordering::AcqRel) == 0 {
            self.streak.fetch_add(1, Ordering::Relaxed) + 1 >= LONE_STREAK
        } else {
            self.streak.store(0, Ordering::Relaxed);
            false
        };
        (InFlight(Arc::clone(self)), lone)
    }
}

/// A unit counted in flight until it is settled (or dropped unsettled).
pub(super) struct InFlight(Arc<Load>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}
