//! Hand-off assertions in PostgreSQL.

use anyhow::{Context, Result};
use postgres::Row;

use super::PgWork;
use crate::storage::events::Method;
use crate::storage::{AssertionRow, AssertionStore, NewAssertion, from_db, to_db};

fn assertion_row(r: &Row) -> AssertionRow {
    AssertionRow {
        identity_id: r.get(0),
        method: Method::parse(r.get(1)).unwrap_or(Method::Link),
        flow_id: r.get(2),
        redeemed_at: from_db(r.get(3)),
        expires_at: from_db(r.get(4)),
        used_at: r.get::<_, Option<i64>>(5).map(from_db),
        address_key: r.get(6),
    }
}

impl AssertionStore for PgWork {
    fn open_assertion(&mut self, a: &NewAssertion) -> Result<()> {
        self.conn()?
            .execute(
                "INSERT INTO recovery_assertions (key, identity_id, method, flow_id, redeemed_at, expires_at, address_key)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &a.key,
                    &a.identity_id,
                    &a.method.as_str(),
                    &a.flow_id,
                    &to_db(a.redeemed_at),
                    &to_db(a.expires_at),
                    &a.address_key,
                ],
            )
            .context("storing the assertion")?;
        Ok(())
    }

    fn use_assertion(&mut self, key: &str, now: u64) -> Result<Option<AssertionRow>> {
        // The row lock makes concurrent redemptions on every replica wait
        // for the first, which then sees `used_at` set: one winner.
        Ok(self
            .conn()?
            .query_opt(
                "UPDATE recovery_assertions SET used_at = $2
                 WHERE key = $1 AND used_at IS NULL AND expires_at > $2
                 RETURNING identity_id, method, flow_id, redeemed_at, expires_at, used_at, address_key",
                &[&key, &to_db(now)],
            )?
            .map(|r| assertion_row(&r)))
    }

    fn assertion(&mut self, key: &str) -> Result<Option<AssertionRow>> {
        Ok(self
            .conn()?
            .query_opt(
                "SELECT identity_id, method, flow_id, redeemed_at, expires_at, used_at, address_key
                 FROM recovery_assertions WHERE key = $1",
                &[&key],
            )?
            .map(|r| assertion_row(&r)))
    }

    fn purge_assertions(&mut self, before: u64) -> Result<u64> {
        self.conn()?.execute(
            "DELETE FROM recovery_assertions WHERE expires_at < $1",
            &[&to_db(before)],
        )
    }
}
