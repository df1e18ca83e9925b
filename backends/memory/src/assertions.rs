//! Hand-off assertions in memory, as the SQLite backend keeps them.

use anyhow::Result;

use super::{MemoryWork, Undo};
use crate::storage::{AssertionRow, AssertionStore, NewAssertion};

impl MemoryWork {
    /// Expires the identity's unredeemed assertions at `now`, with its
    /// session.
    pub(super) fn end_assertions(&mut self, identity_id: &str, now: u64) {
        let mut tables = self.tables();
        let mut ended = Vec::new();
        for (key, row) in tables.assertions.iter_mut() {
            if row.identity_id == identity_id && row.used_at.is_none() && row.expires_at > now {
                ended.push(Undo::Assertion(key.clone(), Some(row.clone())));
                row.expires_at = now;
            }
        }
        drop(tables);
        self.undo.extend(ended);
    }
}

impl AssertionStore for MemoryWork {
    fn open_assertion(&mut self, a: &NewAssertion) -> Result<()> {
        let row = AssertionRow {
            identity_id: a.identity_id.clone(),
            method: a.method,
            flow_id: a.flow_id.clone(),
            redeemed_at: a.redeemed_at,
            expires_at: a.expires_at,
            used_at: None,
            address_key: a.address_key.clone(),
        };
        let before = self.tables().assertions.insert(a.key.clone(), row);
        self.undo.push(Undo::Assertion(a.key.clone(), before));
        Ok(())
    }

    fn use_assertion(&mut self, key: &str, now: u64) -> Result<Option<AssertionRow>> {
        let mut tables = self.tables();
        let Some(row) = tables.assertions.get_mut(key) else {
            return Ok(None);
        };
        if row.used_at.is_some() || row.expires_at <= now {
            return Ok(None);
        }
        let before = row.clone();
        row.used_at = Some(now);
        let used = row.clone();
        drop(tables);
        self.undo
            .push(Undo::Assertion(key.to_string(), Some(before)));
        Ok(Some(used))
    }

    fn assertion(&mut self, key: &str) -> Result<Option<AssertionRow>> {
        Ok(self.tables().assertions.get(key).cloned())
    }

    fn purge_assertions(&mut self, before: u64) -> Result<u64> {
        let mut tables = self.tables();
        let expired: Vec<String> = tables
            .assertions
            .iter()
            .filter(|(_, a)| a.expires_at < before)
            .map(|(k, _)| k.clone())
            .collect();
        let removed: Vec<Undo> = expired
            .iter()
            .map(|key| Undo::Assertion(key.clone(), tables.assertions.remove(key)))
            .collect();
        drop(tables);
        let count = removed.len() as u64;
        self.undo.extend(removed);
        Ok(count)
    }
}
