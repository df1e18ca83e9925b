//! What "now" is, for the component (through WASI's wall clock) and for the
//! host's own records (outbox timestamps), from one source.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time.
pub trait Clock: Send + Sync {
    /// Time since the Unix epoch.
    fn now(&self) -> Duration;

    /// The same in nanoseconds, the unit of the WIT's `timestamp`.
    fn now_nanos(&self) -> u64 {
        duration_nanos(self.now())
    }
}

/// Whole seconds from `earlier` to `later` (0 if `later` is not later).
pub fn seconds_between(earlier: u64, later: u64) -> u64 {
    later.saturating_sub(earlier) / 1_000_000_000
}

/// RFC 3339 in UTC with nanoseconds, as Kratos' Go server prints times.
pub fn rfc3339(nanos: u64) -> String {
    reclaim_wire::rfc3339(nanos)
}

/// The operating system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    }
}

/// A clock that stands still until told to move: tests freeze time with it,
/// then advance it past a lifespan.
#[derive(Clone, Debug)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock stopped at `at` (time since the Unix epoch).
    pub fn new(at: Duration) -> Self {
        Self {
            nanos: Arc::new(AtomicU64::new(duration_nanos(at))),
        }
    }

    /// A clock stopped at the current system time.
    pub fn frozen_now() -> Self {
        Self::new(SystemClock.now())
    }

    /// Moves the clock forward; every clone sees the move.
    pub fn advance(&self, by: Duration) {
        self.nanos.fetch_add(duration_nanos(by), Ordering::SeqCst);
    }

    /// Sets the clock; every clone sees it.
    pub fn set(&self, at: Duration) {
        self.nanos.store(duration_nanos(at), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
}

/// A duration in nanoseconds, the unit of the WIT's timestamps (saturating:
/// nothing we time lasts 584 years).
pub fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A uniform draw from [0, 1) for the couriers' retry jitter: spreading
/// retries needs no cryptographic strength, but the OS source costs nothing
/// here.
pub fn jitter() -> f64 {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_stands_still_until_advanced_and_clones_share_it() {
        let clock = ManualClock::new(Duration::from_secs(100));
        let twin = clock.clone();
        assert_eq!(clock.now(), Duration::from_secs(100));
        twin.advance(Duration::from_secs(5));
        assert_eq!(clock.now(), Duration::from_secs(105));
        clock.set(Duration::from_secs(1));
        assert_eq!(twin.now(), Duration::from_secs(1));
    }
}
