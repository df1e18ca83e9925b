//! The built-in identity directory's administration (the component reads
//! it through [`crate::Directory`], inside a unit of work).

use anyhow::Result;

use crate::directory::{Identity, NewIdentity};
use crate::wit::IdentityRef;

/// Identities and their passwords, as `reclaim identity` and the
/// new-password form keep them.
pub trait Identities {
    /// Adds an identity that passes [`NewIdentity::check`]; refuses an
    /// address another identity has, compared case-insensitively.
    fn create_identity(&self, new: &NewIdentity, now: u64) -> Result<Identity>;

    /// The identity `by` names.
    fn identity(&self, by: &IdentityRef) -> Result<Option<Identity>>;

    /// Every identity, by pk.
    fn list_identities(&self) -> Result<Vec<Identity>>;

    /// The Argon2id hash of an identity's password, if one was set.
    fn password_hash(&self, identity_id: &str) -> Result<Option<String>>;
}

/// The error for an address that is taken, the same from every backend.
pub fn address_taken() -> anyhow::Error {
    anyhow::anyhow!("an identity with this email address already exists")
}
