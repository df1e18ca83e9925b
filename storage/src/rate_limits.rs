//! Rate-limit counters, kept by the backend so that every process sharing
//! it counts against the same limits. The rule is GCRA: each key holds one
//! timestamp (its theoretical arrival time), so a check is O(1) and a key
//! costs one small row. `limit` requests may come at once; after that one
//! more each `window / limit`.

use std::time::Duration;

use anyhow::Result;

use super::Pending;

/// How many requests a key may make in a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub limit: u32,
    pub window: Duration,
}

impl Quota {
    /// Time that one request uses up of the allowance, in nanoseconds.
    fn emission(&self) -> u64 {
        let per = self.window.as_nanos() / u128::from(self.limit.max(1));
        u64::try_from(per).unwrap_or(u64::MAX).max(1)
    }

    /// Counts a request at `now` against a key whose theoretical arrival
    /// time is `tat` (none: never seen, or forgotten). Returns the key's
    /// new time, or how long until a request would pass.
    pub fn admit(&self, tat: Option<u64>, now: u64) -> Result<u64, Duration> {
        let emission = self.emission();
        let tolerance = emission.saturating_mul(u64::from(self.limit.max(1) - 1));
        let tat = tat.unwrap_or(now).max(now);
        let allowed_from = tat.saturating_sub(tolerance);
        if now < allowed_from {
            Err(Duration::from_nanos(allowed_from - now))
        } else {
            Ok(tat.saturating_add(emission))
        }
    }
}

/// A key whose time is `tat` has its whole allowance back at `now`, and can
/// be forgotten.
pub fn recovered(tat: u64, now: u64) -> bool {
    tat <= now
}

/// Counters of requests by key.
pub trait RateLimits {
    /// Counts one request against each key in turn, under its quota, and
    /// stops at the first key that is over it: that key's wait comes back,
    /// the keys before it stay counted, and the keys after it are not.
    fn admit(&self, keys: &[(String, Quota)], now: u64) -> Pending<Result<(), Duration>>;

    /// Forgets keys that have their whole allowance back; returns how many
    /// keys remain. Called now and then, it bounds what the counters hold
    /// by the keys active within one window.
    fn forget_idle(&self, now: u64) -> Result<usize>;
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn a_burst_of_the_limit_passes_and_the_next_waits_its_share_of_the_window() {
        let quota = Quota {
            limit: 5,
            window: Duration::from_secs(300),
        };
        let mut tat = None;
        for _ in 0..5 {
            tat = Some(quota.admit(tat, 0).unwrap());
        }
        assert_eq!(quota.admit(tat, 0), Err(Duration::from_secs(60)));
        assert!(quota.admit(tat, 60 * SECOND).is_ok());
        assert!(!recovered(tat.unwrap(), 299 * SECOND));
        assert!(recovered(tat.unwrap(), 300 * SECOND));
    }
}
