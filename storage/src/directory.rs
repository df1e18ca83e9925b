//! The identity directory: who can recover, and where their mail goes.
//! Backends look identities up in their own tables ([`Directory`], inside
//! each unit of work); an embedder's own user store comes in as a
//! [`UserDirectory`] through [`crate::Reclaim::with_directory`], which is
//! the one place that puts it in front of the backend's.

use std::sync::Arc;

use anyhow::Result;

pub use crate::wit::Identity;
use crate::wit::IdentityRef;

/// Looks identities up for the component's `directory` import, inside a
/// unit of work: each backend implements it over its own tables.
pub trait Directory {
    /// The identity with this UUID.
    fn get_by_id(&mut self, id: &str) -> Result<Option<Identity>>;
    /// The identity with this integer key.
    fn get_by_pk(&mut self, pk: i64) -> Result<Option<Identity>>;
    /// The identity with this address, compared case-insensitively.
    fn find_by_email(&mut self, email: &str) -> Result<Option<Identity>>;

    /// The identity `by` names, by id or by pk.
    fn get(&mut self, by: &IdentityRef) -> Result<Option<Identity>> {
        match by {
            IdentityRef::Id(id) => self.get_by_id(id),
            IdentityRef::Pk(pk) => self.get_by_pk(*pk),
        }
    }
}

/// An embedder's own user store as the directory: consulted inside every
/// operation's unit of work (the backend keeps credentials, sessions and
/// mail; the users are the embedder's). A lookup that fails traps the
/// operation, which then writes nothing.
///
/// ```
/// use reclaim_storage::directory::{Identity, UserDirectory};
///
/// struct Users(Vec<Identity>);
///
/// impl UserDirectory for Users {
///     fn get_by_id(&self, id: &str) -> anyhow::Result<Option<Identity>> {
///         Ok(self.0.iter().find(|u| u.id == id).cloned())
///     }
///     fn get_by_pk(&self, pk: i64) -> anyhow::Result<Option<Identity>> {
///         Ok(self.0.iter().find(|u| u.pk == pk).cloned())
///     }
///     fn find_by_email(&self, email: &str) -> anyhow::Result<Option<Identity>> {
///         Ok(self.0.iter().find(|u| u.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(email))).cloned())
///     }
/// }
/// ```
pub trait UserDirectory: Send + Sync {
    /// The user with this UUID.
    fn get_by_id(&self, id: &str) -> Result<Option<Identity>>;
    /// The user with this integer key.
    fn get_by_pk(&self, pk: i64) -> Result<Option<Identity>>;
    /// The user with this address, compared case-insensitively.
    fn find_by_email(&self, email: &str) -> Result<Option<Identity>>;
}

impl<T: UserDirectory + ?Sized> UserDirectory for Arc<T> {
    fn get_by_id(&self, id: &str) -> Result<Option<Identity>> {
        (**self).get_by_id(id)
    }
    fn get_by_pk(&self, pk: i64) -> Result<Option<Identity>> {
        (**self).get_by_pk(pk)
    }
    fn find_by_email(&self, email: &str) -> Result<Option<Identity>> {
        (**self).find_by_email(email)
    }
}

/// A new identity for the built-in directory, or every field of one that
/// replaces it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewIdentity {
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub locale: Option<String>,
    pub active: bool,
    /// The platform's own id for this person, unique when set.
    pub external_id: Option<String>,
    /// Whether the account has a second factor.
    pub second_factor: bool,
    /// Kratos' `metadata_public`, kept as given.
    pub metadata_public: Option<serde_json::Value>,
    /// Kratos' `metadata_admin`, without the keys Reclaim owns.
    pub metadata_admin: Option<serde_json::Value>,
}

/// Checked wire fields as the directory keeps them.
impl From<reclaim_wire::identities::IdentityFields> for NewIdentity {
    fn from(fields: reclaim_wire::identities::IdentityFields) -> Self {
        Self {
            email: Some(fields.email),
            display_name: fields.name,
            locale: fields.locale,
            active: fields.active,
            external_id: fields.external_id,
            second_factor: fields.second_factor,
            metadata_public: fields.metadata_public,
            metadata_admin: fields.metadata_admin,
        }
    }
}

/// Longest external id accepted.
const MAX_EXTERNAL_ID_CHARS: usize = 256;

/// Longest display name accepted: a name, not a document.
const MAX_NAME_CHARS: usize = 256;

impl NewIdentity {
    /// Why this identity can't be created, if it can't: an address the
    /// courier could not deliver to, or a name or locale that could not be
    /// put in a mail header. The same address check runs when mail is
    /// queued, so an identity that is created can be mailed.
    pub fn check(&self) -> Result<()> {
        if let Some(email) = &self.email {
            reclaim_wire::checks::check_address(email)
                .map_err(|e| anyhow::anyhow!("the email address {email:?} is {e}"))?;
        }
        if let Some(name) = &self.display_name {
            reclaim_wire::mail::check_name(name).map_err(|e| anyhow::anyhow!("{e}"))?;
            if name.chars().count() > MAX_NAME_CHARS {
                anyhow::bail!("the name is longer than {MAX_NAME_CHARS} characters");
            }
        }
        if let Some(locale) = &self.locale
            && (locale.is_empty()
                || locale.len() > 35
                || !locale
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-'))
        {
            anyhow::bail!("the locale {locale:?} is not a BCP 47 language tag");
        }
        if let Some(external_id) = &self.external_id
            && (external_id.is_empty()
                || external_id.chars().count() > MAX_EXTERNAL_ID_CHARS
                || external_id.chars().any(char::is_control))
        {
            anyhow::bail!(
                "the external id must be 1 to {MAX_EXTERNAL_ID_CHARS} characters without control characters"
            );
        }
        Ok(())
    }
}

/// The platform's queries of one user, each taking its value as `$1` and
/// yielding the columns `id`, `pk`, `email`, `display_name`, `locale`,
/// `active` and optionally `second_factor`; run inside each operation's own
/// transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryQueries {
    pub by_id: String,
    pub by_pk: String,
    pub by_email: String,
}
