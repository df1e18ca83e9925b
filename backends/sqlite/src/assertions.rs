//! Hand-off assertions in SQLite.

use anyhow::{Context, Result};
use rusqlite::{OptionalExtension, Row, params};

use super::writer::SqliteWork;
use crate::storage::events::Method;
use crate::storage::{AssertionRow, AssertionStore, NewAssertion, from_db, to_db};

fn assertion_row(r: &Row<'_>) -> rusqlite::Result<AssertionRow> {
    let method: String = r.get(1)?;
    Ok(AssertionRow {
        identity_id: r.get(0)?,
        method: Method::parse(&method).unwrap_or(Method::Link),
        flow_id: r.get(2)?,
        redeemed_at: from_db(r.get(3)?),
        expires_at: from_db(r.get(4)?),
        used_at: r.get::<_, Option<i64>>(5)?.map(from_db),
        address_key: r.get(6)?,
    })
}

impl AssertionStore for SqliteWork {
    fn open_assertion(&mut self, a: &NewAssertion) -> Result<()> {
        self.conn()?
            .prepare_cached(
                "INSERT INTO recovery_assertions (key, identity_id, method, flow_id, redeemed_at, expires_at, address_key)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )?
            .execute(params![
                a.key,
                a.identity_id,
                a.method.as_str(),
                a.flow_id,
                to_db(a.redeemed_at),
                to_db(a.expires_at),
                a.address_key
            ])
            .context("storing the assertion")?;
        Ok(())
    }

    fn use_assertion(&mut self, key: &str, now: u64) -> Result<Option<AssertionRow>> {
        Ok(self
            .conn()?
            .prepare_cached(
                "UPDATE recovery_assertions SET used_at = ?2
                 WHERE key = ?1 AND used_at IS NULL AND expires_at > ?2
                 RETURNING identity_id, method, flow_id, redeemed_at, expires_at, used_at, address_key",
            )?
            .query_row(params![key, to_db(now)], assertion_row)
            .optional()?)
    }

    fn assertion(&mut self, key: &str) -> Result<Option<AssertionRow>> {
        Ok(self
            .conn()?
            .prepare_cached(
                "SELECT identity_id, method, flow_id, redeemed_at, expires_at, used_at, address_key
                 FROM recovery_assertions WHERE key = ?",
            )?
            .query_row(params![key], assertion_row)
            .optional()?)
    }

    fn purge_assertions(&mut self, before: u64) -> Result<u64> {
        let purged = self
            .conn()?
            .prepare_cached("DELETE FROM recovery_assertions WHERE expires_at < ?")?
            .execute(params![to_db(before)])?;
        Ok(purged as u64)
    }
}
