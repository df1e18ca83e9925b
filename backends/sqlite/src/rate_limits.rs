//! Rate-limit counters in SQLite: one row per key, counted on the writer so
//! that a check and its update are one step for every process on the file.

use std::time::Duration;

use anyhow::Result;
use rusqlite::{OptionalExtension, params};

use super::SqliteStorage;
use crate::storage::{Pending, Quota, RateLimits, from_db, to_db};

impl RateLimits for SqliteStorage {
    fn admit(&self, keys: &[(String, Quota)], now: u64) -> Pending<Result<(), Duration>> {
        let keys = keys.to_vec();
        self.write(move |conn| {
            for (key, quota) in &keys {
                let tat: Option<i64> = conn
                    .prepare_cached("SELECT tat FROM rate_limits WHERE key = ?")?
                    .query_row([key], |r| r.get(0))
                    .optional()?;
                match quota.admit(tat.map(from_db), now) {
                    Ok(next) => {
                        conn.prepare_cached(
                            "INSERT INTO rate_limits (key, tat) VALUES (?1, ?2)
                             ON CONFLICT (key) DO UPDATE SET tat = ?2",
                        )?
                        .execute(params![key, to_db(next)])?;
                    }
                    Err(wait) => return Ok(Err(wait)),
                }
            }
            Ok(Ok(()))
        })
    }

    fn forget_idle(&self, now: u64) -> Result<usize> {
        self.with_writer(move |conn| {
            conn.execute("DELETE FROM rate_limits WHERE tat <= ?", [to_db(now)])?;
            let left: i64 = conn.query_row("SELECT count(*) FROM rate_limits", [], |r| r.get(0))?;
            Ok(usize::try_from(left).unwrap_or(usize::MAX))
        })
    }
}
