//! Credentials in memory.

use anyhow::Result;

use super::{MemoryWork, Tables, Undo};
use crate::storage::{CredentialRecord, CredentialStore};
use crate::wit::{ConsumeOutcome, Credential, CredentialKind, CredentialState, CredentialStatus};

impl CredentialStore for MemoryWork {
    fn insert(&mut self, credential: &Credential) -> Result<()> {
        let mut tables = self.tables();
        let key = credential.key.clone();
        if tables.credentials.contains_key(&key) || tables.flows.contains_key(&credential.flow_id) {
            anyhow::bail!("storing the credential: its key or flow is taken");
        }
        tables.flows.insert(credential.flow_id.clone(), key.clone());
        tables
            .by_identity
            .entry(credential.identity_id.clone())
            .or_default()
            .push(key.clone());
        tables
            .credentials
            .insert(key.clone(), CredentialRecord::issued(credential.clone()));
        drop(tables);
        self.undo.push(Undo::Credential(key, None));
        Ok(())
    }

    fn consume(
        &mut self,
        keys: &[String],
        kind: CredentialKind,
        now: u64,
        max_failed: u32,
    ) -> Result<ConsumeOutcome> {
        let Some((key, record)) = find(&self.tables(), keys, kind) else {
            return Ok(ConsumeOutcome::Unknown);
        };
        if record.consumable_at(now, max_failed).is_err() {
            return Ok(record.not_consumed(now, max_failed));
        }
        self.update(&key, |r| r.used = true);
        Ok(ConsumeOutcome::Consumed(record.credential))
    }

    fn find(
        &mut self,
        keys: &[String],
        kind: CredentialKind,
        now: u64,
    ) -> Result<Option<CredentialStatus>> {
        Ok(find(&self.tables(), keys, kind).map(|(_, record)| record.status_at(now)))
    }

    fn code_for_flow(&mut self, flow_id: &str, now: u64) -> Result<Option<CredentialStatus>> {
        let tables = self.tables();
        Ok(tables
            .flows
            .get(flow_id)
            .and_then(|key| tables.credentials.get(key))
            .filter(|record| record.credential.kind == CredentialKind::Code)
            .map(|record| record.clone().status_at(now)))
    }

    fn record_failed_attempt(&mut self, flow_id: &str, max_failed: u32, now: u64) -> Result<u32> {
        let key = self.tables().flows.get(flow_id).cloned();
        let Some(key) = key else {
            return Ok(max_failed);
        };
        let mut count = max_failed;
        self.update(&key, |record| {
            if record.credential.kind != CredentialKind::Code {
                return;
            }
            record.failed_attempts += 1;
            record.last_failed_at = now;
            if record.failed_attempts >= max_failed && !record.used {
                record.revoked = true;
            }
            count = record.failed_attempts;
        });
        Ok(count)
    }

    fn identity_failed_attempts(&mut self, identity_id: &str, since: u64) -> Result<u32> {
        Ok(self
            .tables()
            .credentials
            .values()
            .filter(|r| r.credential.identity_id == identity_id && r.last_failed_at > since)
            .map(|r| r.failed_attempts)
            .sum())
    }

    fn revoke_identity(
        &mut self,
        identity_id: &str,
        kind: Option<CredentialKind>,
        now: u64,
    ) -> Result<u32> {
        // The index keeps only active credentials: inactive ones are pruned
        // here, so revoking costs what the identity has outstanding, not
        // everything it ever had.
        let (revoke, pruned) = {
            let mut tables = self.tables();
            let Tables {
                by_identity,
                credentials,
                ..
            } = &mut *tables;
            let keys = by_identity.entry(identity_id.to_string()).or_default();
            let mut revoke = Vec::new();
            let mut pruned = Vec::new();
            keys.retain(|key| match credentials.get(key) {
                Some(record) if record.state_at(now) == CredentialState::Active => {
                    if kind.is_none_or(|kind| kind == record.credential.kind) {
                        revoke.push(key.clone());
                    }
                    true
                }
                _ => {
                    pruned.push(key.clone());
                    false
                }
            });
            (revoke, pruned)
        };
        self.undo.extend(
            pruned
                .into_iter()
                .map(|key| Undo::Indexed(identity_id.to_string(), key)),
        );
        for key in &revoke {
            self.update(key, |record| record.revoked = true);
        }
        Ok(revoke.len() as u32)
    }
}

fn find(
    tables: &Tables,
    keys: &[String],
    kind: CredentialKind,
) -> Option<(String, CredentialRecord)> {
    keys.iter().find_map(|key| {
        tables
            .credentials
            .get(key)
            .filter(|record| record.credential.kind == kind)
            .map(|record| (key.clone(), record.clone()))
    })
}

/// Revokes the credential of a flow that is still unused (its message was
/// abandoned).
pub(super) fn revoke_flow(tables: &mut Tables, flow_id: &str) {
    let Tables {
        flows, credentials, ..
    } = tables;
    if let Some(record) = flows.get(flow_id).and_then(|key| credentials.get_mut(key))
        && !record.used
    {
        record.revoked = true;
    }
}
