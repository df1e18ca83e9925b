//! The built-in identity directory in PostgreSQL.

use anyhow::{Context, Result};
use postgres::Row;
use postgres::error::SqlState;

use super::platform::Platform;
use super::{Conn, PgWork, PostgresStorage};
use crate::directory::{Directory, Identity, NewIdentity};
use crate::storage::identities::{
    IdentityFilter, IdentityKey, IdentityRecord, IdentityStore, ManagedByPlatform,
    conflict_from_index, email_normal, json_text, json_value,
};
use crate::storage::{Identities, from_db, to_db};
use crate::wit::IdentityRef;

impl PostgresStorage {
    /// Runs `f` with the platform's queries on a worker's connection.
    fn on_platform<T: Send + 'static>(
        &self,
        platform: &std::sync::Arc<Platform>,
        f: impl FnOnce(&Platform, &mut Conn) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let platform = std::sync::Arc::clone(platform);
        self.call(move |conn| f(&platform, conn)).wait()
    }
}

impl Identities for PostgresStorage {
    fn create_identity(&self, new: &NewIdentity, now: u64) -> Result<Identity> {
        if self.platform.is_some() {
            return Err(ManagedByPlatform.into());
        }
        new.check()?;
        let new = new.clone();
        self.call(move |conn| {
            let id = uuid::Uuid::new_v4().hyphenated().to_string();
            Ok(insert(conn, &id, &new, now)?.identity)
        })
        .wait()
    }

    fn identity(&self, by: &IdentityRef) -> Result<Option<Identity>> {
        let by = by.clone();
        if let Some(platform) = &self.platform {
            return self.on_platform(platform, move |platform, conn| {
                let user = match &by {
                    IdentityRef::Id(id) => platform.by_id(conn, id)?,
                    IdentityRef::Pk(pk) => platform.by_pk(conn, *pk)?,
                };
                Ok(user.map(|u| u.identity))
            });
        }
        self.call(move |conn| {
            let row = match &by {
                IdentityRef::Id(id) => conn.query_opt(
                    "SELECT id, pk, email, display_name, locale, active FROM identities WHERE id = $1",
                    &[id],
                )?,
                IdentityRef::Pk(pk) => conn.query_opt(
                    "SELECT id, pk, email, display_name, locale, active FROM identities WHERE pk = $1",
                    &[pk],
                )?,
            };
            Ok(row.as_ref().map(identity))
        })
        .wait()
    }

    fn identity_record(&self, key: &IdentityKey) -> Result<Option<IdentityRecord>> {
        let key = key.clone();
        if let Some(platform) = &self.platform {
            let IdentityKey::Id(id) = key else {
                return Err(ManagedByPlatform.into());
            };
            return self.on_platform(platform, move |platform, conn| {
                Ok(platform
                    .by_id(conn, &id)?
                    .map(|u| IdentityRecord::of_directory(u.identity, u.second_factor)))
            });
        }
        self.call(move |conn| {
            let row = match &key {
                IdentityKey::Id(id) => conn.query_opt(record_select!("WHERE id = $1"), &[id])?,
                IdentityKey::ExternalId(external) => {
                    conn.query_opt(record_select!("WHERE external_id = $1"), &[external])?
                }
            };
            Ok(row.as_ref().map(record))
        })
        .wait()
    }

    fn list_identity_records(&self, filter: &IdentityFilter) -> Result<Vec<IdentityRecord>> {
        let filter = filter.clone();
        if let Some(platform) = &self.platform {
            // One user per address, and no way to list the platform's table.
            let (Some(email), None) = (filter.email, filter.after_pk) else {
                return Err(ManagedByPlatform.into());
            };
            return self.on_platform(platform, move |platform, conn| {
                Ok(platform
                    .by_email(conn, &email)?
                    .map(|u| IdentityRecord::of_directory(u.identity, u.second_factor))
                    .into_iter()
                    .collect())
            });
        }
        self.call(move |conn| {
            let rows = conn.query(
                record_select!(
                    "WHERE pk > $3 AND ($1::TEXT IS NULL OR email_normal = $1
                         OR (email_normal IS NULL AND email IS NOT NULL AND lower(email) = lower($2)))
                     ORDER BY pk LIMIT $4"
                ),
                &[
                    &email_normal(filter.email.as_deref()),
                    &filter.email,
                    &filter.after_pk.unwrap_or(0),
                    &i64::try_from(filter.limit).unwrap_or(i64::MAX),
                ],
            )?;
            Ok(rows.iter().map(record).collect())
        })
        .wait()
    }

    fn list_identities(&self) -> Result<Vec<Identity>> {
        if self.platform.is_some() {
            return Err(ManagedByPlatform.into());
        }
        self.call(|conn| {
            let rows = conn.query(
                "SELECT id, pk, email, display_name, locale, active FROM identities ORDER BY pk",
                &[],
            )?;
            Ok(rows.iter().map(identity).collect())
        })
        .wait()
    }

    fn password_hash(&self, identity_id: &str) -> Result<Option<String>> {
        let identity_id = identity_id.to_owned();
        let platform = self.platform.is_some();
        self.call(move |conn| {
            let row = if platform {
                conn.query_opt(
                    "SELECT password_hash FROM platform_passwords WHERE identity_id = $1",
                    &[&identity_id],
                )?
            } else {
                conn.query_opt(
                    "SELECT password_hash FROM identities WHERE id = $1",
                    &[&identity_id],
                )?
            };
            Ok(row.and_then(|r| r.get(0)))
        })
        .wait()
    }
}

impl Directory for PgWork {
    fn get_by_id(&mut self, id: &str) -> Result<Option<Identity>> {
        if let Some(platform) = &self.platform {
            return Ok(platform.by_id(&mut *self.conn()?, id)?.map(|u| u.identity));
        }
        let row = self.conn()?.query_opt(
            "SELECT id, pk, email, display_name, locale, active FROM identities WHERE id = $1",
            &[&id],
        )?;
        Ok(row.as_ref().map(identity))
    }

    fn get_by_pk(&mut self, pk: i64) -> Result<Option<Identity>> {
        if let Some(platform) = &self.platform {
            return Ok(platform.by_pk(&mut *self.conn()?, pk)?.map(|u| u.identity));
        }
        let row = self.conn()?.query_opt(
            "SELECT id, pk, email, display_name, locale, active FROM identities WHERE pk = $1",
            &[&pk],
        )?;
        Ok(row.as_ref().map(identity))
    }

    fn find_by_email(&mut self, email: &str) -> Result<Option<Identity>> {
        if let Some(platform) = &self.platform {
            return Ok(platform
                .by_email(&mut *self.conn()?, email)?
                .map(|u| u.identity));
        }
        let row = self.conn()?.query_opt(
            // Or, for a row written by a host that stores no normal form
            // (the SQL provider's packages) until it is filled at the next
            // open, by `lower()` as before. The stored normal form wins
            // where both match.
            "SELECT id, pk, email, display_name, locale, active FROM identities
             WHERE email_normal = $1 OR (email_normal IS NULL AND email IS NOT NULL AND lower(email) = lower($2))
             ORDER BY email_normal IS NULL LIMIT 1",
            &[&email_normal(Some(email)), &email],
        )?;
        Ok(row.as_ref().map(identity))
    }
}

impl IdentityStore for PgWork {
    fn identity_record_in(&mut self, id: &str) -> Result<Option<IdentityRecord>> {
        if let Some(platform) = &self.platform {
            return Ok(platform
                .by_id(&mut *self.conn()?, id)?
                .map(|u| IdentityRecord::of_directory(u.identity, u.second_factor)));
        }
        // Read with the credential the unit consumed, a statement ago.
        if let Some((read, record)) = self.prefetched.take()
            && read == id
        {
            return Ok(record);
        }
        let row = self
            .conn()?
            .query_opt(record_select!("WHERE id = $1"), &[&id])?;
        Ok(row.as_ref().map(record))
    }

    fn insert_identity(&mut self, id: &str, new: &NewIdentity, now: u64) -> Result<IdentityRecord> {
        self.built_in()?;
        self.prefetched = None;
        insert(&mut *self.conn()?, id, new, now)
    }

    fn replace_identity(
        &mut self,
        id: &str,
        new: &NewIdentity,
        now: u64,
    ) -> Result<Option<IdentityRecord>> {
        self.built_in()?;
        self.prefetched = None;
        let mut conn = self.conn()?;
        super::credentials::lock_identity(&mut conn, id)?;
        // A conflict aborts the transaction: the operation answers it and
        // drops the unit.
        let updated = conn.execute(
            "UPDATE identities SET email = $2, display_name = $3, locale = $4,
                state_changed_at = CASE WHEN active = $5 THEN state_changed_at ELSE $10 END,
                active = $5, external_id = $6, second_factor = $7,
                metadata_public = $8, metadata_admin = $9, updated_at = $10,
                email_normal = $11
             WHERE id = $1",
            &Columns::of(id, new, now).refs(),
        );
        match updated {
            Err(e) => Err(unique_violation(e.context("changing the identity"))),
            Ok(0) => Ok(None),
            Ok(_) => Ok(conn
                .query_opt(record_select!("WHERE id = $1"), &[&id])?
                .as_ref()
                .map(record)),
        }
    }

    fn delete_identity(&mut self, id: &str) -> Result<bool> {
        self.built_in()?;
        self.prefetched = None;
        let mut conn = self.conn()?;
        super::credentials::lock_identity(&mut conn, id)?;
        Ok(conn.execute("DELETE FROM identities WHERE id = $1", &[&id])? > 0)
    }
}

fn insert(conn: &mut Conn, id: &str, new: &NewIdentity, now: u64) -> Result<IdentityRecord> {
    let inserted = conn.query_opt(
        "INSERT INTO identities (id, email, display_name, locale, active, external_id,
             second_factor, metadata_public, metadata_admin, created_at, updated_at,
             state_changed_at, email_normal)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $10, $11)
         RETURNING id, pk, email, display_name, locale, active, external_id, second_factor,
                   metadata_public, metadata_admin, created_at, updated_at, state_changed_at",
        &Columns::of(id, new, now).refs(),
    );
    match inserted {
        Err(e) => Err(unique_violation(e.context("adding the identity"))),
        Ok(row) => Ok(record(&row.context("no row")?)),
    }
}

/// `$1` to `$11` of the insert and the replacement: the id, the fields,
/// the time of the write and the address's normal form.
struct Columns<'a> {
    id: &'a str,
    new: &'a NewIdentity,
    metadata_public: Option<String>,
    metadata_admin: Option<String>,
    now: i64,
    email_normal: Option<String>,
}

impl<'a> Columns<'a> {
    fn of(id: &'a str, new: &'a NewIdentity, now: u64) -> Self {
        Self {
            id,
            new,
            metadata_public: json_text(&new.metadata_public),
            metadata_admin: json_text(&new.metadata_admin),
            now: to_db(now),
            email_normal: email_normal(new.email.as_deref()),
        }
    }

    fn refs(&self) -> [&(dyn postgres::types::ToSql + Sync); 11] {
        [
            &self.id,
            &self.new.email,
            &self.new.display_name,
            &self.new.locale,
            &self.new.active,
            &self.new.external_id,
            &self.new.second_factor,
            &self.metadata_public,
            &self.metadata_admin,
            &self.now,
            &self.email_normal,
        ]
    }
}

/// A unique index's refusal as the conflict it is; other errors as they are.
fn unique_violation(e: anyhow::Error) -> anyhow::Error {
    let index = e
        .downcast_ref::<postgres::Error>()
        .and_then(postgres::Error::as_db_error)
        .filter(|db| db.code() == &SqlState::UNIQUE_VIOLATION)
        .map(|db| db.constraint().unwrap_or_default().to_owned());
    match index {
        Some(index) => conflict_from_index(&index),
        None => e,
    }
}

fn identity(r: &Row) -> Identity {
    identity_at(r, 0)
}

fn identity_at(r: &Row, at: usize) -> Identity {
    Identity {
        id: r.get(at),
        pk: r.get(at + 1),
        email: r.get(at + 2),
        display_name: r.get(at + 3),
        locale: r.get(at + 4),
        active: r.get(at + 5),
    }
}

fn record(r: &Row) -> IdentityRecord {
    record_at(r, 0)
}

/// The record in `r`'s columns from `at` on, in `record_select!`'s order.
pub(super) fn record_at(r: &Row, at: usize) -> IdentityRecord {
    let created_at = from_db(r.get(at + 10));
    IdentityRecord {
        identity: identity_at(r, at),
        external_id: r.get(at + 6),
        second_factor: r.get(at + 7),
        metadata_public: json_value(r.get(at + 8)),
        metadata_admin: json_value(r.get(at + 9)),
        created_at,
        updated_at: r.get::<_, Option<i64>>(at + 11).map_or(created_at, from_db),
        state_changed_at: r.get::<_, Option<i64>>(at + 12).map_or(created_at, from_db),
    }
}

impl PgWork {
    /// Refuses a write to the directory when it is the platform's.
    fn built_in(&self) -> Result<()> {
        match self.platform {
            Some(_) => Err(ManagedByPlatform.into()),
            None => Ok(()),
        }
    }

    /// Whether the directory is the platform's own table.
    pub(super) fn on_platform(&self) -> bool {
        self.platform.is_some()
    }
}
