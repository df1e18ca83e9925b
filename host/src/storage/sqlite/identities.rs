//! The built-in identity directory in SQLite: the component's `directory`
//! import, and its administration.

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStorage;
use super::writer::SqliteWork;
use crate::directory::{Directory, Identity, NewIdentity};
use crate::storage::identities::address_taken;
use crate::storage::{Identities, to_db};
use crate::wit::IdentityRef;

const IDENTITY_COLUMNS: &str = "id, pk, email, display_name, locale, active";

impl Identities for SqliteStorage {
    fn create_identity(&self, new: &NewIdentity, now: u64) -> Result<Identity> {
        new.check()?;
        let id = uuid::Uuid::new_v4().hyphenated().to_string();
        let new = new.clone();
        self.with_writer(move |conn| {
            let inserted = conn.execute(
                "INSERT INTO identities (id, email, display_name, locale, active, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                params![id, new.email, new.display_name, new.locale, new.active, to_db(now)],
            );
            match inserted {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    return Err(address_taken());
                }
                other => other.context("adding the identity")?,
            };
            identity_where(conn, "id = ?", &id)?.context("the new identity vanished")
        })
    }

    fn identity(&self, by: &IdentityRef) -> Result<Option<Identity>> {
        self.with_connection(|conn| match by {
            IdentityRef::Id(id) => identity_where(conn, "id = ?", id),
            IdentityRef::Pk(pk) => identity_where(conn, "pk = ?", pk),
        })
    }

    fn list_identities(&self) -> Result<Vec<Identity>> {
        self.with_connection(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {IDENTITY_COLUMNS} FROM identities ORDER BY pk"
            ))?;
            let rows = stmt.query_map([], identity_from_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn password_hash(&self, identity_id: &str) -> Result<Option<String>> {
        self.with_connection(|conn| {
            Ok(conn
                .query_row(
                    "SELECT password_hash FROM identities WHERE id = ?",
                    [identity_id],
                    |r| r.get(0),
                )
                .optional()?
                .flatten())
        })
    }
}

impl Directory for SqliteWork {
    fn get_by_id(&mut self, id: &str) -> Result<Option<Identity>> {
        identity_where(&*self.conn()?, "id = ?", &id)
    }

    fn get_by_pk(&mut self, pk: i64) -> Result<Option<Identity>> {
        identity_where(&*self.conn()?, "pk = ?", &pk)
    }

    fn find_by_email(&mut self, email: &str) -> Result<Option<Identity>> {
        identity_where(&*self.conn()?, "lower(email) = lower(?)", &email)
    }
}

/// Stores a new password hash (the session that allowed it has just ended).
pub(super) fn set_password_hash(conn: &Connection, identity_id: &str, hash: &str) -> Result<()> {
    conn.execute(
        "UPDATE identities SET password_hash = ? WHERE id = ?",
        params![hash, identity_id],
    )?;
    Ok(())
}

fn identity_where(
    conn: &Connection,
    condition: &str,
    value: &dyn rusqlite::ToSql,
) -> Result<Option<Identity>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {IDENTITY_COLUMNS} FROM identities WHERE {condition}"
        ))?
        .query_row([value], identity_from_row)
        .optional()?)
}

fn identity_from_row(r: &Row<'_>) -> rusqlite::Result<Identity> {
    Ok(Identity {
        id: r.get(0)?,
        pk: r.get(1)?,
        email: r.get(2)?,
        display_name: r.get(3)?,
        locale: r.get(4)?,
        active: r.get(5)?,
    })
}
