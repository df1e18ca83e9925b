//! Brings a SQLite database to the schema `reclaim_schema` defines (the
//! one every SQL store of Reclaim's migrates from): the steps it has not
//! had, counted by `PRAGMA user_version`, run here.

use anyhow::{Context, Result};
use reclaim_schema::Dialect;
use rusqlite::Connection;

/// Applies the steps the database has not had, in one transaction that
/// holds the write lock: several processes opening it at once apply each
/// step once.
pub(super) fn migrate(conn: &Connection) -> Result<()> {
    let dialect = Dialect::Sqlite;
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    for statement in dialect.prepare() {
        tx.execute_batch(statement)?;
    }
    let had: i64 = tx.query_row(dialect.version(), [], |r| r.get(0))?;
    let had = usize::try_from(had).unwrap_or(0);
    for (step, statements) in dialect.steps().iter().enumerate().skip(had) {
        for statement in *statements {
            tx.execute_batch(statement)
                .with_context(|| format!("migrating the schema to version {}", step + 1))?;
        }
        tx.execute_batch(&dialect.record(step + 1))?;
    }
    let pending = tx
        .prepare(reclaim_schema::NORMAL_FORMS_TO_FILL)?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<(i64, String)>>>()?;
    crate::storage::identities::fill_normal_forms(pending, |forms| {
        let mut fill = tx.prepare(reclaim_schema::fill_normal_form(dialect))?;
        let mut stored = Vec::with_capacity(forms.len());
        for (pk, normal) in forms {
            if fill.execute(rusqlite::params![normal, pk, normal])? > 0 {
                stored.push(*pk);
            }
        }
        Ok(stored)
    })?;
    Ok(tx.commit()?)
}
