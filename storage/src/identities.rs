//! The built-in identity directory's administration: what the identity
//! admin API and `reclaim identity` read and write. Reads stand alone
//! ([`Identities`]); writes go through a unit of work ([`IdentityStore`]),
//! so that what a change ends (credentials, sessions) and the notice it
//! queues commit with it. The rule of what a change ends is
//! `operations/identities.rs`; backends only read and write rows.

use anyhow::Result;

use crate::directory::{Identity, NewIdentity};
use crate::wit::IdentityRef;

/// An identity as the admin API shows it: the directory's view plus what
/// only administrators see.
#[derive(Clone, Debug)]
pub struct IdentityRecord {
    pub identity: Identity,
    /// The platform's own id for this person, unique when set.
    pub external_id: Option<String>,
    /// Whether the account has a second factor (the hand-off acts on it).
    pub second_factor: bool,
    /// Kratos' `metadata_public`, kept as given.
    pub metadata_public: Option<serde_json::Value>,
    /// Kratos' `metadata_admin` without the keys Reclaim owns
    /// (`second_factor`, `pk`), kept as given.
    pub metadata_admin: Option<serde_json::Value>,
    pub created_at: u64,
    pub updated_at: u64,
    pub state_changed_at: u64,
}

impl IdentityRecord {
    /// An identity that only a directory outside Reclaim's table knows (a
    /// platform's table, an embedder's store): what it says, and nothing
    /// Reclaim would keep itself.
    pub fn of_directory(identity: Identity, second_factor: bool) -> Self {
        Self {
            identity,
            external_id: None,
            second_factor,
            metadata_public: None,
            metadata_admin: None,
            created_at: 0,
            updated_at: 0,
            state_changed_at: 0,
        }
    }
}

/// How the admin API names one identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityKey {
    Id(String),
    ExternalId(String),
}

/// A page of the identity list: identities after `after_pk` in pk order,
/// at most `limit`, those with `email` only when it is set.
#[derive(Clone, Debug, Default)]
pub struct IdentityFilter {
    pub email: Option<String>,
    pub after_pk: Option<i64>,
    pub limit: usize,
}

/// Identity reads, and the operations the CLI and tests use outside the
/// recovery operations.
pub trait Identities {
    /// Adds an identity that passes [`NewIdentity::check`], in a
    /// transaction of its own; refuses an address or external id another
    /// identity has with [`Conflict`].
    fn create_identity(&self, new: &NewIdentity, now: u64) -> Result<Identity>;

    /// The identity `by` names.
    fn identity(&self, by: &IdentityRef) -> Result<Option<Identity>>;

    /// The admin record of the identity `key` names.
    fn identity_record(&self, key: &IdentityKey) -> Result<Option<IdentityRecord>>;

    /// One page of identities, by pk.
    fn list_identity_records(&self, filter: &IdentityFilter) -> Result<Vec<IdentityRecord>>;

    /// Every identity, by pk.
    fn list_identities(&self) -> Result<Vec<Identity>>;

    /// The Argon2id hash of an identity's password, if one was set.
    fn password_hash(&self, identity_id: &str) -> Result<Option<String>>;
}

/// Identity writes inside a unit of work.
pub trait IdentityStore {
    /// The admin record of the identity with this id, as this unit sees it.
    fn identity_record_in(&mut self, id: &str) -> Result<Option<IdentityRecord>>;
    /// Adds a checked identity under `id`; [`Conflict`] for a taken address
    /// or external id.
    fn insert_identity(&mut self, id: &str, new: &NewIdentity, now: u64) -> Result<IdentityRecord>;
    /// Replaces every field of the identity but its id, pk and creation
    /// time; none when it does not exist; [`Conflict`] as for insert.
    fn replace_identity(
        &mut self,
        id: &str,
        new: &NewIdentity,
        now: u64,
    ) -> Result<Option<IdentityRecord>>;
    /// Deletes the identity and its password; whether it existed.
    fn delete_identity(&mut self, id: &str) -> Result<bool>;
}

/// Another identity already has the address or external id: the same
/// error from every backend, so the API can answer 409.
#[derive(Debug, thiserror::Error)]
#[error("an identity with this {0} already exists")]
pub struct Conflict(pub &'static str);

/// The directory is the platform's own table: Reclaim reads it and never
/// writes it. The API answers 409.
#[derive(Debug, thiserror::Error)]
#[error("identities are managed by the platform: change them in its own user table")]
pub struct ManagedByPlatform;

/// The form of `email` that lookups, uniqueness and change notices compare
/// (`reclaim_address::normal_form`), as every backend stores and indexes it
/// beside the address as given; none for no address.
pub fn email_normal(email: Option<&str>) -> Option<String> {
    reclaim_address::present(email).map(reclaim_address::normal_form)
}

/// Fills the normal forms of the identities in `pending` through `store`
/// (`reclaim_address::fill_normal_forms` holds the rule and what `store`
/// does) and logs each twin that keeps none.
pub fn fill_normal_forms(
    pending: Vec<(i64, String)>,
    store: impl FnOnce(&[(i64, String)]) -> Result<Vec<i64>>,
) -> Result<()> {
    for pk in reclaim_address::fill_normal_forms(pending, store)? {
        tracing::warn!(
            pk,
            "an identity's address is another's in the normal form; it is not found by \
             address until one of them changes"
        );
    }
    Ok(())
}

/// The conflict for a taken address.
pub fn address_taken() -> anyhow::Error {
    Conflict("email address").into()
}

/// The conflict for a taken external id.
pub fn external_id_taken() -> anyhow::Error {
    Conflict("external id").into()
}

/// Which of the two unique fields a database's unique violation is about,
/// by the name of the index it names.
pub fn conflict_from_index(index: &str) -> anyhow::Error {
    if index.contains("external") {
        external_id_taken()
    } else {
        address_taken()
    }
}

/// What a record's new fields are when `new` replaces `old` at `now`.
pub fn replaced(old: &IdentityRecord, new: &NewIdentity, now: u64) -> IdentityRecord {
    IdentityRecord {
        identity: Identity {
            id: old.identity.id.clone(),
            pk: old.identity.pk,
            email: new.email.clone(),
            display_name: new.display_name.clone(),
            locale: new.locale.clone(),
            active: new.active,
        },
        external_id: new.external_id.clone(),
        second_factor: new.second_factor,
        metadata_public: new.metadata_public.clone(),
        metadata_admin: new.metadata_admin.clone(),
        created_at: old.created_at,
        updated_at: now,
        state_changed_at: if old.identity.active == new.active {
            old.state_changed_at
        } else {
            now
        },
    }
}

/// A JSON column's text, or none.
pub fn json_text(value: &Option<serde_json::Value>) -> Option<String> {
    value
        .as_ref()
        .filter(|v| !v.is_null())
        .map(serde_json::Value::to_string)
}

/// A JSON column read back; a value that no longer parses reads as none.
pub fn json_value(text: Option<String>) -> Option<serde_json::Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}
