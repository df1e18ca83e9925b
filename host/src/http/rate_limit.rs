//! Sliding-window limits on self-service requests, per address and per
//! client, kept in memory (each `serve` process limits what it sees).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counts events per key within a window.
pub struct RateLimiter {
    window: Duration,
    events: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            events: Mutex::new(HashMap::new()),
        }
    }

    /// Records an attempt under every key, unless one of them already holds
    /// `limit` attempts in the window; then returns how long until that key
    /// frees up and records nothing.
    pub fn check(&self, keys: &[(&str, u32)], now: Instant) -> Result<(), Duration> {
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        // Forget keys whose window has passed, so memory stays bounded by the
        // traffic of one window.
        events.retain(|_, times| {
            times
                .back()
                .is_some_and(|t| now.duration_since(*t) < self.window)
        });
        let mut wait = Duration::ZERO;
        for (key, limit) in keys {
            if let Some(times) = events.get_mut(*key) {
                while times
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= self.window)
                {
                    times.pop_front();
                }
                if times.len() >= *limit as usize {
                    let oldest = *times.front().expect("a full window has events");
                    wait = wait.max(self.window - now.duration_since(oldest));
                }
            }
        }
        if wait > Duration::ZERO {
            return Err(wait);
        }
        for (key, _) in keys {
            events.entry((*key).to_string()).or_default().push_back(now);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sixth_request_in_the_window_waits_for_the_first_to_age_out() {
        let limiter = RateLimiter::new(Duration::from_secs(300));
        let start = Instant::now();
        for i in 0..5 {
            assert!(
                limiter
                    .check(&[("a", 5)], start + Duration::from_secs(i))
                    .is_ok()
            );
        }
        let wait = limiter
            .check(&[("a", 5)], start + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(290));
        assert!(
            limiter
                .check(&[("b", 5)], start + Duration::from_secs(10))
                .is_ok(),
            "keys are separate"
        );
        assert!(
            limiter
                .check(&[("a", 5)], start + Duration::from_secs(300))
                .is_ok()
        );
    }

    #[test]
    fn a_refused_attempt_is_not_counted_under_the_other_keys() {
        let limiter = RateLimiter::new(Duration::from_secs(60));
        let now = Instant::now();
        assert!(limiter.check(&[("addr", 1), ("client", 2)], now).is_ok());
        assert!(limiter.check(&[("addr", 1), ("client", 2)], now).is_err());
        assert!(limiter.check(&[("other", 1), ("client", 2)], now).is_ok());
    }
}
