//! Rate-limit counters in PostgreSQL, shared by every replica: each key's
//! row is locked while it is counted, so concurrent requests through
//! different replicas are counted one after the other.

use std::time::Duration;

use anyhow::Result;

use super::PostgresStorage;
use crate::storage::{Pending, Quota, RateLimits, from_db, to_db};

impl RateLimits for PostgresStorage {
    fn admit(&self, keys: &[(String, Quota)], now: u64) -> Pending<Result<(), Duration>> {
        let keys = keys.to_vec();
        self.transaction(move |conn| {
            for (key, quota) in &keys {
                // The row must exist to be locked; a new key's time is 0,
                // which counts as "never seen".
                conn.execute(
                    "INSERT INTO rate_limits (key, tat) VALUES ($1, 0) ON CONFLICT (key) DO NOTHING",
                    &[key],
                )?;
                let tat: i64 = conn
                    .query_opt("SELECT tat FROM rate_limits WHERE key = $1 FOR UPDATE", &[key])?
                    .map_or(0, |row| row.get(0));
                match quota.admit(Some(from_db(tat)), now) {
                    Ok(next) => {
                        conn.execute(
                            "UPDATE rate_limits SET tat = $2 WHERE key = $1",
                            &[key, &to_db(next)],
                        )?;
                    }
                    Err(wait) => return Ok(Err(wait)),
                }
            }
            Ok(Ok(()))
        })
    }

    fn forget_idle(&self, now: u64) -> Result<usize> {
        self.call(move |conn| {
            conn.execute("DELETE FROM rate_limits WHERE tat <= $1", &[&to_db(now)])?;
            let left: i64 = conn
                .query_opt("SELECT count(*) FROM rate_limits", &[])?
                .map_or(0, |row| row.get(0));
            Ok(usize::try_from(left).unwrap_or(usize::MAX))
        })
        .wait()
    }
}
