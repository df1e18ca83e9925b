//! Brings a PostgreSQL database to the schema `reclaim_schema` defines (the
//! one every SQL store of Reclaim's migrates from): every process applies
//! the steps its database lacks at start, under the crate's advisory lock,
//! so that replicas starting together apply each step once.

use anyhow::{Context, Result};
use postgres::Client;
use reclaim_schema::Dialect;

/// How many normal forms one statement stores.
const FILL_CHUNK: usize = 10_000;

/// `reclaim_schema::fill_normal_form` for many identities at once: the
/// pks and their forms as two arrays (no two forms alike, which the rule
/// sees to), each stored unless another identity has it; answers the pks
/// it stored.
const FILL_NORMAL_FORMS: &str = "UPDATE identities AS i SET email_normal = v.normal
     FROM unnest($1::BIGINT[], $2::TEXT[]) AS v(pk, normal)
     WHERE i.pk = v.pk
       AND NOT EXISTS (SELECT 1 FROM identities AS o WHERE o.email_normal = v.normal)
     RETURNING i.pk";

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
    crate::storage::identities::fill_normal_forms(pending, |forms| {
        let mut stored = Vec::with_capacity(forms.len());
        // A statement per chunk rather than per identity: an upgrade of a
        // large table is a few round trips, not one per row.
        for chunk in forms.chunks(FILL_CHUNK) {
            let (pks, normals): (Vec<i64>, Vec<&str>) =
                chunk.iter().map(|(pk, n)| (*pk, n.as_str())).unzip();
            for row in tx.query(FILL_NORMAL_FORMS, &[&pks, &normals])? {
                stored.push(row.get(0));
            }
        }
        Ok(stored)
    })?;
    Ok(tx.commit()?)
}
