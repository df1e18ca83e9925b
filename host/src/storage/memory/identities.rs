//! The built-in identity directory in memory.

use anyhow::Result;

use super::{MemoryStorage, MemoryWork};
use crate::directory::{Directory, Identity, NewIdentity};
use crate::storage::Identities;
use crate::storage::identities::address_taken;
use crate::wit::IdentityRef;

impl Identities for MemoryStorage {
    fn create_identity(&self, new: &NewIdentity, _now: u64) -> Result<Identity> {
        new.check()?;
        self.write(|tables| {
            if let Some(email) = &new.email
                && tables.identities.iter().any(|i| same_address(i, email))
            {
                return Err(address_taken());
            }
            let identity = Identity {
                id: uuid::Uuid::new_v4().hyphenated().to_string(),
                pk: tables.identities.len() as i64 + 1,
                email: new.email.clone(),
                display_name: new.display_name.clone(),
                locale: new.locale.clone(),
                active: new.active,
            };
            tables.identities.push(identity.clone());
            Ok(identity)
        })
    }

    fn identity(&self, by: &IdentityRef) -> Result<Option<Identity>> {
        Ok(self
            .tables()
            .identities
            .iter()
            .find(|i| match by {
                IdentityRef::Id(id) => i.id == *id,
                IdentityRef::Pk(pk) => i.pk == *pk,
            })
            .cloned())
    }

    fn list_identities(&self) -> Result<Vec<Identity>> {
        Ok(self.tables().identities.clone())
    }

    fn password_hash(&self, identity_id: &str) -> Result<Option<String>> {
        Ok(self.tables().passwords.get(identity_id).cloned())
    }
}

impl Directory for MemoryWork {
    fn get_by_id(&mut self, id: &str) -> Result<Option<Identity>> {
        self.storage.identity(&IdentityRef::Id(id.to_string()))
    }

    fn get_by_pk(&mut self, pk: i64) -> Result<Option<Identity>> {
        self.storage.identity(&IdentityRef::Pk(pk))
    }

    fn find_by_email(&mut self, email: &str) -> Result<Option<Identity>> {
        Ok(self
            .tables()
            .identities
            .iter()
            .find(|i| same_address(i, email))
            .cloned())
    }
}

/// Addresses compare case-insensitively, as SQLite's `lower()` does (ASCII).
fn same_address(identity: &Identity, email: &str) -> bool {
    identity
        .email
        .as_deref()
        .is_some_and(|e| e.eq_ignore_ascii_case(email))
}
