//! Brings the host's database to the schema `reclaim_schema` defines, the
//! Rust host's too (so a database the packages made opens in `reclaim
//! serve`, and the other way round), inside the transaction the host opened
//! for `migrate`; files of the packages' earlier shapes are brought in
//! first (`reclaim_schema::earlier`).

use reclaim_schema::{Dialect, earlier};

use crate::db::{self, text};

fn dialect() -> Dialect {
    if db::is_postgresql() {
        Dialect::Postgresql
    } else {
        Dialect::Sqlite
    }
}

pub fn migrate() {
    let dialect = dialect();
    for statement in dialect.prepare() {
        db::query(statement, &[]);
    }
    let had = db::query_one(dialect.version(), &[]).map_or(0, |row| row.int(0));
    let had = usize::try_from(had).unwrap_or(0);
    let has_table =
        |name: &str| db::query_one(earlier::has_table(dialect), &[text(name)]).is_some();
    let set_aside: Vec<&earlier::Table> = if earlier::is_earlier(had, has_table) {
        earlier::TABLES
            .iter()
            .filter(|t| has_table(t.name))
            .collect()
    } else {
        Vec::new()
    };
    for table in &set_aside {
        for (column, kind) in table.added {
            let has = db::query_one(
                earlier::has_column(dialect),
                &[text(table.name), text(column)],
            );
            if has.is_none() {
                db::execute(
                    &format!("ALTER TABLE {} ADD COLUMN {column} {kind}", table.name),
                    &[],
                );
            }
        }
        for statement in earlier::set_aside(table) {
            db::execute(&statement, &[]);
        }
    }
    for (step, statements) in dialect.steps().iter().enumerate().skip(had) {
        for statement in *statements {
            db::execute(statement, &[]);
        }
        db::execute(&dialect.record(step + 1), &[]);
    }
    fill_normal_forms(dialect);
    if set_aside.is_empty() {
        return;
    }
    let now = crate::now();
    for table in &set_aside {
        for statement in earlier::copy(table, now) {
            db::execute(&statement, &[]);
        }
    }
    if dialect == Dialect::Postgresql {
        db::query(earlier::AFTER_COPY_POSTGRESQL, &[]);
    }
}

/// Gives identities stored without it (by this package's own `create`, or
/// before step 6) their address's normal form, by the rule every host
/// applies (`reclaim_address::fill_normal_forms`); a twin keeps none.
fn fill_normal_forms(dialect: Dialect) {
    let pending = db::query(reclaim_schema::NORMAL_FORMS_TO_FILL, &[])
        .into_iter()
        .map(|row| (row.int(0), row.text(1)));
    let fill = reclaim_schema::fill_normal_form(dialect);
    let _twins = reclaim_address::fill_normal_forms(pending, |forms| {
        let stored = forms
            .iter()
            .filter(|(pk, normal)| {
                db::execute(fill, &[text(normal), db::int(*pk), text(normal)]) > 0
            })
            .map(|(pk, _)| *pk)
            .collect();
        Ok::<_, std::convert::Infallible>(stored)
    });
}
