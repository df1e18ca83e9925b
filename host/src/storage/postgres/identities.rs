//! The built-in identity directory in PostgreSQL.

use anyhow::{Context, Result};
use postgres::Row;
use postgres::error::SqlState;

use super::{PgWork, PostgresStorage};
use crate::directory::{Directory, Identity, NewIdentity};
use crate::storage::identities::address_taken;
use crate::storage::{Identities, to_db};
use crate::wit::IdentityRef;

impl Identities for PostgresStorage {
    fn create_identity(&self, new: &NewIdentity, now: u64) -> Result<Identity> {
        new.check()?;
        let new = new.clone();
        self.call(move |conn| {
            let id = uuid::Uuid::new_v4().hyphenated().to_string();
            let inserted = conn.query_opt(
                "INSERT INTO identities (id, email, display_name, locale, active, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 RETURNING id, pk, email, display_name, locale, active",
                &[
                    &id,
                    &new.email,
                    &new.display_name,
                    &new.locale,
                    &new.active,
                    &to_db(now),
                ],
            );
            match inserted {
                Err(e)
                    if e.downcast_ref::<postgres::Error>()
                        .and_then(postgres::Error::code)
                        == Some(&SqlState::UNIQUE_VIOLATION) =>
                {
                    Err(address_taken())
                }
                other => Ok(identity(
                    &other.context("adding the identity")?.context("no row")?,
                )),
            }
        })
        .wait()
    }

    fn identity(&self, by: &IdentityRef) -> Result<Option<Identity>> {
        let by = by.clone();
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

    fn list_identities(&self) -> Result<Vec<Identity>> {
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
        self.call(move |conn| {
            let row = conn.query_opt(
                "SELECT password_hash FROM identities WHERE id = $1",
                &[&identity_id],
            )?;
            Ok(row.and_then(|r| r.get(0)))
        })
        .wait()
    }
}

impl Directory for PgWork {
    fn get_by_id(&mut self, id: &str) -> Result<Option<Identity>> {
        let row = self.conn()?.query_opt(
            "SELECT id, pk, email, display_name, locale, active FROM identities WHERE id = $1",
            &[&id],
        )?;
        Ok(row.as_ref().map(identity))
    }

    fn get_by_pk(&mut self, pk: i64) -> Result<Option<Identity>> {
        let row = self.conn()?.query_opt(
            "SELECT id, pk, email, display_name, locale, active FROM identities WHERE pk = $1",
            &[&pk],
        )?;
        Ok(row.as_ref().map(identity))
    }

    fn find_by_email(&mut self, email: &str) -> Result<Option<Identity>> {
        let row = self.conn()?.query_opt(
            "SELECT id, pk, email, display_name, locale, active FROM identities
             WHERE lower(email) = lower($1)",
            &[&email],
        )?;
        Ok(row.as_ref().map(identity))
    }
}

fn identity(r: &Row) -> Identity {
    Identity {
        id: r.get(0),
        pk: r.get(1),
        email: r.get(2),
        display_name: r.get(3),
        locale: r.get(4),
        active: r.get(5),
    }
}
