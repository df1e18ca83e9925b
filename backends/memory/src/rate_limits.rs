//! Rate-limit counters in memory.

use std::time::Duration;

use anyhow::Result;

use super::MemoryStorage;
use crate::storage::rate_limits::recovered;
use crate::storage::{Pending, Quota, RateLimits};

impl RateLimits for MemoryStorage {
    fn admit(&self, keys: &[(String, Quota)], now: u64) -> Pending<Result<(), Duration>> {
        let admitted = self.write(|tables| {
            for (key, quota) in keys {
                let tat = tables.rate_limits.get(key).copied();
                tables
                    .rate_limits
                    .insert(key.clone(), quota.admit(tat, now)?);
            }
            Ok(())
        });
        Pending::ready(Ok(admitted))
    }

    fn forget_idle(&self, now: u64) -> Result<usize> {
        Ok(self.write(|tables| {
            tables.rate_limits.retain(|_, tat| !recovered(*tat, now));
            tables.rate_limits.len()
        }))
    }
}
