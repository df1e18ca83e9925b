//! The identity directory: who can recover, and where their mail goes.

use anyhow::Result;

pub use crate::wit::Identity;

/// Looks identities up for the component's `directory` import. An embedder
/// with its own user store implements this over it.
pub trait Directory {
    /// The identity with this UUID.
    fn get_by_id(&mut self, id: &str) -> Result<Option<Identity>>;
    /// The identity with this integer key.
    fn get_by_pk(&mut self, pk: i64) -> Result<Option<Identity>>;
    /// The identity with this address, compared case-insensitively.
    fn find_by_email(&mut self, email: &str) -> Result<Option<Identity>>;
}

/// A new identity for the built-in directory.
#[derive(Clone, Debug, Default)]
pub struct NewIdentity {
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub locale: Option<String>,
    pub active: bool,
}
