//! The platform's own user table as the identity directory: three queries
//! from the configuration (by id, by pk, by address), prepared and checked
//! when the backend opens, so a typo stops the start rather than a person's
//! recovery, and run on the unit of work's own connection, inside its
//! transaction.

use anyhow::{Context, Result, bail};
use postgres::types::{ToSql, Type};
use postgres::{Client, Row};

use super::Conn;
use crate::directory::DirectoryQueries;
use crate::directory::Identity;

/// What a user row gives besides the directory's identity.
#[derive(Clone, Debug)]
pub(crate) struct PlatformUser {
    pub identity: Identity,
    pub second_factor: bool,
}

/// The three checked queries.
pub(crate) struct Platform {
    by_id: Query,
    by_pk: Query,
    by_email: Query,
}

/// One query: its text, how its `$1` is passed, and where its columns are.
struct Query {
    /// Leaked once per backend: prepared statements are cached by a
    /// `&'static str` key (`Conn`), and these live as long as the process's
    /// configuration does.
    sql: &'static str,
    param: Param,
    columns: Columns,
}

#[derive(Clone, Copy)]
enum Param {
    Text,
    Uuid,
    Int2,
    Int4,
    Int8,
}

struct Columns {
    id: (usize, Type),
    pk: (usize, Type),
    email: usize,
    display_name: usize,
    locale: usize,
    active: usize,
    second_factor: Option<usize>,
}

const REQUIRED: [&str; 6] = ["id", "pk", "email", "display_name", "locale", "active"];

impl Platform {
    /// Prepares each query on `client` and checks its parameter and columns.
    pub(crate) fn check(client: &mut Client, queries: &DirectoryQueries) -> Result<Self> {
        let prepare = |client: &mut Client, name: &str, sql: &str, allowed: &[Type]| {
            Query::check(client, sql, allowed)
                .with_context(|| format!("the directory query {name} ({sql:?})"))
        };
        Ok(Self {
            by_id: prepare(
                client,
                "by_id",
                &queries.by_id,
                &[Type::TEXT, Type::VARCHAR, Type::UUID],
            )?,
            by_pk: prepare(
                client,
                "by_pk",
                &queries.by_pk,
                &[Type::INT2, Type::INT4, Type::INT8],
            )?,
            by_email: prepare(
                client,
                "by_email",
                &queries.by_email,
                &[Type::TEXT, Type::VARCHAR],
            )?,
        })
    }

    pub(crate) fn by_id(&self, conn: &mut Conn, id: &str) -> Result<Option<PlatformUser>> {
        self.by_id.one(conn, Key::Text(id))
    }

    pub(crate) fn by_pk(&self, conn: &mut Conn, pk: i64) -> Result<Option<PlatformUser>> {
        self.by_pk.one(conn, Key::Int(pk))
    }

    /// The user at `email`, asked for in its normal form
    /// (`reclaim_address::normal_form`: the README tells platforms to
    /// match it). Two users for one address name nobody: picking either
    /// could mail one person's link to another, so the lookup is refused
    /// and the log says which query to fix.
    pub(crate) fn by_email(&self, conn: &mut Conn, email: &str) -> Result<Option<PlatformUser>> {
        let normal = crate::storage::identities::email_normal(Some(email)).unwrap_or_default();
        match self.by_email.users(conn, Key::Text(&normal))?.as_slice() {
            [] => Ok(None),
            [row] => self.by_email.user(row).map(Some),
            rows => {
                tracing::error!(
                    users = rows.len(),
                    "the directory query by_email found several users for one address; \
                     none is used: make the platform's addresses unique in the normal form"
                );
                Ok(None)
            }
        }
    }
}

enum Key<'a> {
    Text(&'a str),
    Int(i64),
}

impl Query {
    fn check(client: &mut Client, sql: &str, allowed: &[Type]) -> Result<Self> {
        let statement = client.prepare(sql).context("PostgreSQL refused it")?;
        let [param_type] = statement.params() else {
            bail!(
                "it must take exactly one parameter, $1; it takes {}",
                statement.params().len()
            );
        };
        let param = match *param_type {
            Type::UUID => Param::Uuid,
            Type::INT2 => Param::Int2,
            Type::INT4 => Param::Int4,
            Type::INT8 => Param::Int8,
            _ if is_text(param_type) => Param::Text,
            _ => bail!("$1 is of type {param_type}"),
        };
        let accepted =
            allowed.contains(param_type) || (is_text(param_type) && allowed.contains(&Type::TEXT));
        if !accepted {
            bail!("$1 is of type {param_type}; cast it (for example $1::text)");
        }
        let find = |name: &str| {
            statement
                .columns()
                .iter()
                .position(|c| c.name() == name)
                .map(|i| (i, statement.columns()[i].type_().clone()))
        };
        for column in statement.columns() {
            if !REQUIRED.contains(&column.name()) && column.name() != "second_factor" {
                bail!(
                    "it yields a column {:?}; the columns are {} and optionally second_factor",
                    column.name(),
                    REQUIRED.join(", ")
                );
            }
        }
        let required = |name: &str, ok: &dyn Fn(&Type) -> bool, what: &str| {
            let (i, t) = find(name).with_context(|| format!("it yields no column {name:?}"))?;
            if !ok(&t) {
                bail!("its column {name:?} is of type {t}, not {what}");
            }
            anyhow::Ok((i, t))
        };
        let id = required("id", &|t| is_text(t) || *t == Type::UUID, "text or uuid")?;
        let pk = required(
            "pk",
            &|t| matches!(*t, Type::INT2 | Type::INT4 | Type::INT8),
            "an integer",
        )?;
        let email = required("email", &is_text, "text")?.0;
        let display_name = required("display_name", &is_text, "text")?.0;
        let locale = required("locale", &is_text, "text")?.0;
        let active = required("active", &|t| *t == Type::BOOL, "boolean")?.0;
        let second_factor = match find("second_factor") {
            None => None,
            Some((i, t)) if t == Type::BOOL => Some(i),
            Some((_, t)) => bail!("its column \"second_factor\" is of type {t}, not boolean"),
        };
        Ok(Self {
            sql: Box::leak(sql.to_owned().into_boxed_str()),
            param,
            columns: Columns {
                id,
                pk,
                email,
                display_name,
                locale,
                active,
                second_factor,
            },
        })
    }

    /// The one user `key` names (by id or pk: more than one is a broken
    /// query).
    fn one(&self, conn: &mut Conn, key: Key<'_>) -> Result<Option<PlatformUser>> {
        let rows = self.users(conn, key)?;
        if rows.len() > 1 {
            bail!(
                "the directory query {:?} found {} users for one key",
                self.sql,
                rows.len()
            );
        }
        rows.first().map(|row| self.user(row)).transpose()
    }

    /// Every row `key` finds; a key the parameter's type can't hold names
    /// nobody.
    fn users(&self, conn: &mut Conn, key: Key<'_>) -> Result<Vec<Row>> {
        Ok(match (self.param, key) {
            (Param::Text, Key::Text(text)) => self.run(conn, &text)?,
            (Param::Text, Key::Int(int)) => self.run(conn, &int.to_string())?,
            (Param::Uuid, Key::Text(text)) => match uuid::Uuid::try_parse(text) {
                Ok(id) => self.run(conn, &id)?,
                Err(_) => Vec::new(),
            },
            (Param::Int2, Key::Int(int)) => match i16::try_from(int) {
                Ok(int) => self.run(conn, &int)?,
                Err(_) => Vec::new(),
            },
            (Param::Int4, Key::Int(int)) => match i32::try_from(int) {
                Ok(int) => self.run(conn, &int)?,
                Err(_) => Vec::new(),
            },
            (Param::Int8, Key::Int(int)) => self.run(conn, &int)?,
            (_, _) => Vec::new(),
        })
    }

    fn run(&self, conn: &mut Conn, value: &(dyn ToSql + Sync)) -> Result<Vec<Row>> {
        conn.query(self.sql, &[value])
    }

    fn user(&self, row: &Row) -> Result<PlatformUser> {
        let c = &self.columns;
        let id = match c.id.1 {
            Type::UUID => row
                .try_get::<_, uuid::Uuid>(c.id.0)?
                .hyphenated()
                .to_string(),
            _ => row.try_get::<_, String>(c.id.0)?,
        };
        let pk = match c.pk.1 {
            Type::INT2 => i64::from(row.try_get::<_, i16>(c.pk.0)?),
            Type::INT4 => i64::from(row.try_get::<_, i32>(c.pk.0)?),
            _ => row.try_get::<_, i64>(c.pk.0)?,
        };
        Ok(PlatformUser {
            identity: Identity {
                id,
                pk,
                email: row.try_get(c.email)?,
                display_name: row.try_get(c.display_name)?,
                locale: row.try_get(c.locale)?,
                // A null `active` is no account to recover.
                active: row.try_get::<_, Option<bool>>(c.active)?.unwrap_or(false),
            },
            second_factor: match c.second_factor {
                Some(i) => row.try_get::<_, Option<bool>>(i)?.unwrap_or(false),
                None => false,
            },
        })
    }
}

/// The text types a `String` reads and writes.
fn is_text(t: &Type) -> bool {
    matches!(*t, Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME) || t.name() == "citext"
}
