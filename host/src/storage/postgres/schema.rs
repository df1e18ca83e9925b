//! Brings a PostgreSQL database to the schema `reclaim_schema` defines (the
//! one every SQL store of Reclaim's migrates from): every process applies
//! the steps its database lacks at start, under the crate's advisory lock,
//! so that replicas starting together apply each step once.

use anyhow::{Context, Result};
use postgres::Client;
use reclaim_schema::Dialect;

/// Applies the steps the database has not had, in one transaction.
pub(super) fn migrate(client: &mut Client) -> Result<()> {
    let dialect = Dialect::Postgresql;
    let mut tx = client.transaction()?;
    for statement in dialect.prepare() {
        tx.batch_execute(statement)?;
    }
    let had: i64 = tx.query_one(dialect.version(), &[])?.get(0);
    for (step, statements) in dialect
        .steps()
        .iter()
        .enumerate()
        .skip(usize::try_from(had).unwrap_or(0))
    {
        for statement in *statements {
            tx.batch_execute(statement)
                .with_context(|| format!("migrating the schema to version {}", step + 1))?;
        }
        tx.batch_execute(&dialect.record(step + 1))?;
    }
    let pending = tx
        .query(reclaim_schema::NORMAL_FORMS_TO_FILL, &[])?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    crate::storage::identities::fill_normal_forms(pending, |normal, pk| {
        let statement = reclaim_schema::fill_normal_form(dialect);
        Ok(tx.execute(statement, &[&normal, &pk, &normal])? > 0)
    })?;
    Ok(tx.commit()?)
}
