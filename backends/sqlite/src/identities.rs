//! The built-in identity directory in SQLite: the component's `directory`
//! import, and its administration.

use anyhow::{Context, Result};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use super::SqliteStorage;
use super::writer::SqliteWork;
use crate::directory::{Directory, Identity, NewIdentity};
use crate::storage::identities::{
    IdentityFilter, IdentityKey, IdentityRecord, IdentityStore, conflict_from_index, email_normal,
    json_text, json_value,
};
use crate::storage::{Identities, from_db, to_db};
use crate::wit::IdentityRef;

const IDENTITY_COLUMNS: &str = "id, pk, email, display_name, locale, active";
/// An identity at the address whose normal form is `?1` (`?2` as given):
/// by the stored normal form, or, for a row written by a host that stores
/// none (the SQL provider's packages) until it is filled at the next open,
/// by `lower()` as before. The stored normal form wins where both match.
/// `email IS NOT NULL` lets SQLite use the partial index on `lower(email)`
/// (without it, it scanned the table), so both halves are index searches.
const BY_ADDRESS: &str = "(email_normal = ?1 OR (email_normal IS NULL AND email IS NOT NULL AND lower(email) = lower(?2)))";
const RECORD_COLUMNS: &str = "id, pk, email, display_name, locale, active, external_id, second_factor, metadata_public, metadata_admin, created_at, updated_at, state_changed_at";

impl Identities for SqliteStorage {
    fn create_identity(&self, new: &NewIdentity, now: u64) -> Result<Identity> {
        new.check()?;
        let id = uuid::Uuid::new_v4().hyphenated().to_string();
        let new = new.clone();
        self.with_writer(move |conn| Ok(insert(conn, &id, &new, now)?.identity))
    }

    fn identity(&self, by: &IdentityRef) -> Result<Option<Identity>> {
        self.with_connection(|conn| match by {
            IdentityRef::Id(id) => identity_where(conn, "id = ?", id),
            IdentityRef::Pk(pk) => identity_where(conn, "pk = ?", pk),
        })
    }

    fn identity_record(&self, key: &IdentityKey) -> Result<Option<IdentityRecord>> {
        self.with_connection(|conn| match key {
            IdentityKey::Id(id) => record_where(conn, "id = ?", id),
            IdentityKey::ExternalId(external) => record_where(conn, "external_id = ?", external),
        })
    }

    fn list_identity_records(&self, filter: &IdentityFilter) -> Result<Vec<IdentityRecord>> {
        self.with_connection(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM identities
                 WHERE pk > ?3 AND (?1 IS NULL OR {BY_ADDRESS})
                 ORDER BY pk LIMIT ?4"
            ))?;
            let rows = stmt.query_map(
                params![
                    email_normal(filter.email.as_deref()),
                    filter.email,
                    filter.after_pk.unwrap_or(0),
                    i64::try_from(filter.limit).unwrap_or(i64::MAX)
                ],
                record_from_row,
            )?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
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
        Ok(self
            .conn()?
            .prepare_cached(&format!(
                "SELECT {IDENTITY_COLUMNS} FROM identities WHERE {BY_ADDRESS}
                 ORDER BY email_normal IS NULL LIMIT 1"
            ))?
            .query_row(params![email_normal(Some(email)), email], identity_from_row)
            .optional()?)
    }
}

impl IdentityStore for SqliteWork {
    fn identity_record_in(&mut self, id: &str) -> Result<Option<IdentityRecord>> {
        record_where(&*self.conn()?, "id = ?", &id)
    }

    fn insert_identity(&mut self, id: &str, new: &NewIdentity, now: u64) -> Result<IdentityRecord> {
        insert(&*self.conn()?, id, new, now)
    }

    fn replace_identity(
        &mut self,
        id: &str,
        new: &NewIdentity,
        now: u64,
    ) -> Result<Option<IdentityRecord>> {
        let conn = self.conn()?;
        let updated = conn
            .prepare_cached(
                "UPDATE identities SET email = ?2, display_name = ?3, locale = ?4,
                    state_changed_at = CASE WHEN active = ?5 THEN state_changed_at ELSE ?10 END,
                    active = ?5, external_id = ?6, second_factor = ?7,
                    metadata_public = ?8, metadata_admin = ?9, updated_at = ?10,
                    email_normal = ?11
                 WHERE id = ?1",
            )?
            .execute(params_from_iter(columns(id, new, now)));
        match updated {
            Err(e) => Err(unique_violation(e).context("changing the identity")?),
            Ok(0) => Ok(None),
            Ok(_) => record_where(&conn, "id = ?", &id),
        }
    }

    fn delete_identity(&mut self, id: &str) -> Result<bool> {
        Ok(self
            .conn()?
            .prepare_cached("DELETE FROM identities WHERE id = ?")?
            .execute([id])?
            > 0)
    }
}

fn insert(conn: &Connection, id: &str, new: &NewIdentity, now: u64) -> Result<IdentityRecord> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO identities (id, email, display_name, locale, active, external_id,
                 second_factor, metadata_public, metadata_admin, created_at, updated_at,
                 state_changed_at, email_normal)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?10, ?11)",
        )?
        .execute(params_from_iter(columns(id, new, now)));
    if let Err(e) = inserted {
        return Err(unique_violation(e).context("adding the identity")?);
    }
    record_where(conn, "id = ?", &id)?.context("the new identity vanished")
}

/// `?1` to `?11` of the insert and the replacement: the id, the fields,
/// the time of the write and the address's normal form.
fn columns(id: &str, new: &NewIdentity, now: u64) -> [Value; 11] {
    let text = |v: &Option<String>| v.clone().map_or(Value::Null, Value::Text);
    [
        Value::Text(id.to_owned()),
        text(&new.email),
        text(&new.display_name),
        text(&new.locale),
        Value::Integer(new.active.into()),
        text(&new.external_id),
        Value::Integer(new.second_factor.into()),
        text(&json_text(&new.metadata_public)),
        text(&json_text(&new.metadata_admin)),
        Value::Integer(to_db(now)),
        text(&email_normal(new.email.as_deref())),
    ]
}

/// A unique index's refusal as the conflict it is; other errors as they are.
fn unique_violation(e: rusqlite::Error) -> Result<anyhow::Error> {
    match &e {
        rusqlite::Error::SqliteFailure(failure, message)
            if failure.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Ok(conflict_from_index(message.as_deref().unwrap_or_default()))
        }
        _ => Err(e.into()),
    }
}

/// Stores a new password hash (the session that allowed it has just ended);
/// whether the identity was there to take it.
pub(super) fn set_password_hash(conn: &Connection, identity_id: &str, hash: &str) -> Result<bool> {
    Ok(conn.execute(
        "UPDATE identities SET password_hash = ? WHERE id = ?",
        params![hash, identity_id],
    )? > 0)
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

fn record_where(
    conn: &Connection,
    condition: &str,
    value: &dyn rusqlite::ToSql,
) -> Result<Option<IdentityRecord>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {RECORD_COLUMNS} FROM identities WHERE {condition}"
        ))?
        .query_row([value], record_from_row)
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

fn record_from_row(r: &Row<'_>) -> rusqlite::Result<IdentityRecord> {
    let created_at = from_db(r.get(10)?);
    Ok(IdentityRecord {
        identity: identity_from_row(r)?,
        external_id: r.get(6)?,
        second_factor: r.get(7)?,
        metadata_public: json_value(r.get(8)?),
        metadata_admin: json_value(r.get(9)?),
        created_at,
        updated_at: r.get::<_, Option<i64>>(11)?.map_or(created_at, from_db),
        state_changed_at: r.get::<_, Option<i64>>(12)?.map_or(created_at, from_db),
    })
}
