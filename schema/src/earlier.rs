//! Databases the Python and Node.js packages made before they took their
//! schema from this crate: no step recorded, and `credentials`, `outbox`
//! and perhaps `identities` in the packages' own earlier shapes. The SQL
//! provider, the one runner that meets them, brings one in within the
//! migrating transaction:
//! 1. [`is_earlier`] says whether the database is one.
//! 2. Each table of [`TABLES`] that it has gets the [`Table::added`]
//!    columns it lacks, loses its [`Table::indexes`] (their names are the
//!    new tables'), and is renamed `earlier_<name>`.
//! 3. Every step runs, as for a new database.
//! 4. Each renamed table's rows go into the new one ([`copy`]), and it is
//!    dropped; then, on PostgreSQL, [`AFTER_COPY_POSTGRESQL`].

use crate::Dialect;

/// One table of the packages' earlier shapes.
pub struct Table {
    pub name: &'static str,
    /// Columns some earlier files lack (Node.js's outbox had no `flow_id`,
    /// Python's no `queued_at`), added so that one [`copy`] fits them all.
    pub added: &'static [(&'static str, &'static str)],
    pub indexes: &'static [&'static str],
}

pub const TABLES: &[Table] = &[
    Table {
        name: "credentials",
        added: &[("address_key", "TEXT"), ("last_failed_at", "BIGINT")],
        indexes: &["credentials_by_identity"],
    },
    Table {
        name: "outbox",
        added: &[("flow_id", "TEXT"), ("queued_at", "BIGINT")],
        indexes: &[],
    },
    Table {
        name: "identities",
        added: &[],
        indexes: &["identities_by_email"],
    },
];

/// A database is of the earlier shape when it records no step, has
/// `credentials`, and lacks `outbox_attempts`, which every database of
/// this crate's steps has (the host's first release too).
pub fn is_earlier(steps_had: usize, has_table: impl Fn(&str) -> bool) -> bool {
    steps_had == 0 && has_table("credentials") && !has_table("outbox_attempts")
}

/// A query with one parameter, a table's name: a row if the table exists.
pub fn has_table(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
        Dialect::Postgresql => {
            "SELECT 1 FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_name = ?"
        }
    }
}

/// A query with two parameters, a table's name and a column's: a row if
/// the table has the column.
pub fn has_column(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "SELECT 1 FROM pragma_table_info(?) WHERE name = ?",
        Dialect::Postgresql => {
            "SELECT 1 FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = ? AND column_name = ?"
        }
    }
}

/// The statements of step 2 for one table, after its missing columns.
pub fn set_aside(table: &Table) -> Vec<String> {
    let mut statements: Vec<String> = table
        .indexes
        .iter()
        .map(|index| format!("DROP INDEX IF EXISTS {index}"))
        .collect();
    statements.push(format!("ALTER TABLE {0} RENAME TO earlier_{0}", table.name));
    statements
}

/// The statements of step 4 for one table: its rows into the new table,
/// then the earlier one dropped. `now` (nanoseconds) stands for what the
/// earlier shapes did not keep: when an identity was added, and when a
/// message was queued. A message a courier was sending when the process
/// stopped is queued again (sent at least once, never lost).
pub fn copy(table: &Table, now: u64) -> Vec<String> {
    let insert = match table.name {
        "credentials" => "INSERT INTO credentials (key, kind, identity_id, flow_id, issued_at,
                 expires_at, return_to, used_at, revoked_at, failed_attempts, address_key,
                 last_failed_at)
             SELECT key, kind, identity_id, flow_id, issued_at, expires_at, return_to, used_at,
                 revoked_at, failed_attempts, address_key, last_failed_at
             FROM earlier_credentials"
            .to_string(),
        "outbox" => format!(
            "INSERT INTO outbox (id, recipient, to_name, subject, text_body, html_body, template,
                 flow_id, status, queued_at)
             SELECT id, recipient, to_name, subject, text_body, html_body, template, flow_id,
                 CASE WHEN status IN ('sent', 'abandoned') THEN status ELSE 'queued' END,
                 coalesce(queued_at, {now})
             FROM earlier_outbox"
        ),
        "identities" => format!(
            "INSERT INTO identities (pk, id, email, display_name, locale, active, created_at)
             SELECT pk, id, email, display_name, locale, active <> 0, {now}
             FROM earlier_identities"
        ),
        other => unreachable!("{other} is not one of TABLES"),
    };
    vec![insert, format!("DROP TABLE earlier_{}", table.name)]
}

/// The identities' counter continues after the highest `pk` copied
/// (SQLite's AUTOINCREMENT does this itself).
pub const AFTER_COPY_POSTGRESQL: &str = "SELECT setval(pg_get_serial_sequence('identities', 'pk'),
     (SELECT coalesce(max(pk), 0) + 1 FROM identities), false)";
