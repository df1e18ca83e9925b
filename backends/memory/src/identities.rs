//! The built-in identity directory in memory.

use anyhow::Result;

use super::{MemoryStorage, MemoryWork, Tables};
use crate::directory::{Directory, Identity, NewIdentity};
use crate::storage::Identities;
use crate::storage::identities::{
    IdentityFilter, IdentityKey, IdentityRecord, IdentityStore, address_taken, email_normal,
    external_id_taken, replaced,
};
use crate::wit::IdentityRef;

impl Identities for MemoryStorage {
    fn create_identity(&self, new: &NewIdentity, now: u64) -> Result<Identity> {
        new.check()?;
        let id = uuid::Uuid::new_v4().hyphenated().to_string();
        self.write(|tables| insert(tables, &id, new, now).map(|r| r.identity))
    }

    fn identity(&self, by: &IdentityRef) -> Result<Option<Identity>> {
        Ok(self
            .tables()
            .identities
            .iter()
            .find(|r| match by {
                IdentityRef::Id(id) => r.identity.id == *id,
                IdentityRef::Pk(pk) => r.identity.pk == *pk,
            })
            .map(|r| r.identity.clone()))
    }

    fn identity_record(&self, key: &IdentityKey) -> Result<Option<IdentityRecord>> {
        Ok(self
            .tables()
            .identities
            .iter()
            .find(|r| match key {
                IdentityKey::Id(id) => r.identity.id == *id,
                IdentityKey::ExternalId(external) => r.external_id.as_ref() == Some(external),
            })
            .cloned())
    }

    fn list_identity_records(&self, filter: &IdentityFilter) -> Result<Vec<IdentityRecord>> {
        Ok(self
            .tables()
            .identities
            .iter()
            .filter(|r| r.identity.pk > filter.after_pk.unwrap_or(0))
            .filter(|r| {
                filter
                    .email
                    .as_deref()
                    .is_none_or(|email| same_address(&r.identity, email))
            })
            .take(filter.limit)
            .cloned()
            .collect())
    }

    fn list_identities(&self) -> Result<Vec<Identity>> {
        Ok(self
            .tables()
            .identities
            .iter()
            .map(|r| r.identity.clone())
            .collect())
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
            .find(|r| same_address(&r.identity, email))
            .map(|r| r.identity.clone()))
    }
}

impl IdentityStore for MemoryWork {
    fn identity_record_in(&mut self, id: &str) -> Result<Option<IdentityRecord>> {
        self.storage
            .identity_record(&IdentityKey::Id(id.to_string()))
    }

    fn insert_identity(&mut self, id: &str, new: &NewIdentity, now: u64) -> Result<IdentityRecord> {
        self.snapshot_identities();
        insert(&mut self.tables(), id, new, now)
    }

    fn replace_identity(
        &mut self,
        id: &str,
        new: &NewIdentity,
        now: u64,
    ) -> Result<Option<IdentityRecord>> {
        self.snapshot_identities();
        let mut tables = self.tables();
        unique(&tables, Some(id), new)?;
        let Some(record) = tables.identities.iter_mut().find(|r| r.identity.id == id) else {
            return Ok(None);
        };
        *record = replaced(record, new, now);
        Ok(Some(record.clone()))
    }

    fn delete_identity(&mut self, id: &str) -> Result<bool> {
        self.snapshot_identities();
        let mut tables = self.tables();
        let before = tables.identities.len();
        tables.identities.retain(|r| r.identity.id != id);
        tables.passwords.remove(id);
        Ok(tables.identities.len() < before)
    }
}

fn insert(tables: &mut Tables, id: &str, new: &NewIdentity, now: u64) -> Result<IdentityRecord> {
    unique(tables, None, new)?;
    tables.next_pk += 1;
    let record = IdentityRecord {
        identity: Identity {
            id: id.to_string(),
            pk: tables.next_pk,
            email: new.email.clone(),
            display_name: new.display_name.clone(),
            locale: new.locale.clone(),
            active: new.active,
        },
        external_id: new.external_id.clone(),
        second_factor: new.second_factor,
        metadata_public: new.metadata_public.clone(),
        metadata_admin: new.metadata_admin.clone(),
        created_at: now,
        updated_at: now,
        state_changed_at: now,
    };
    tables.identities.push(record.clone());
    Ok(record)
}

/// Refuses an address or external id that an identity other than `except`
/// has, as the SQL backends' unique indexes do.
fn unique(tables: &Tables, except: Option<&str>, new: &NewIdentity) -> Result<()> {
    let others = || {
        tables
            .identities
            .iter()
            .filter(move |r| Some(r.identity.id.as_str()) != except)
    };
    if let Some(email) = &new.email
        && others().any(|r| same_address(&r.identity, email))
    {
        return Err(address_taken());
    }
    if new.external_id.is_some() && others().any(|r| r.external_id == new.external_id) {
        return Err(external_id_taken());
    }
    Ok(())
}

/// Addresses compare in their normal form, as the SQL backends index them.
fn same_address(identity: &Identity, email: &str) -> bool {
    let stored = email_normal(identity.email.as_deref());
    stored.is_some() && stored == email_normal(Some(email))
}
