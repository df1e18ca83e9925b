//! Credentials in SQLite: the component's `storage` import.

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use super::writer::SqliteWork;
use crate::storage::credentials::kind_name;
use crate::storage::{CredentialRecord, CredentialStore, from_db, to_db};
use crate::wit::{ConsumeOutcome, Credential, CredentialKind, CredentialStatus};

const CREDENTIAL_COLUMNS: &str = "key, kind, identity_id, flow_id, issued_at, expires_at, return_to, used_at, revoked_at, failed_attempts, address_key, last_failed_at";

impl CredentialStore for SqliteWork {
    fn insert(&mut self, c: &Credential) -> Result<()> {
        self.conn()?
            .prepare_cached(
                "INSERT INTO credentials (key, kind, identity_id, flow_id, issued_at, expires_at, return_to, address_key)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )?
            .execute(params![
                c.key,
                kind_name(c.kind),
                c.identity_id,
                c.flow_id,
                to_db(c.issued_at),
                to_db(c.expires_at),
                c.return_to,
                c.address_key
            ])
            .context("storing the credential")?;
        Ok(())
    }

    fn consume(
        &mut self,
        keys: &[String],
        kind: CredentialKind,
        now: u64,
        max_failed_attempts: u32,
    ) -> Result<ConsumeOutcome> {
        if keys.is_empty() {
            return Ok(ConsumeOutcome::Unknown);
        }
        let placeholders = vec!["?"; keys.len()].join(", ");
        let at = to_db(now);
        let mut args: Vec<rusqlite::types::Value> = vec![
            at.into(),
            kind_name(kind).to_string().into(),
            at.into(),
            i64::from(max_failed_attempts).into(),
        ];
        args.extend(keys.iter().map(|k| k.clone().into()));
        // The guard is in the UPDATE itself: SQLite runs it under the write
        // lock, so of many concurrent callers exactly one changes the row.
        let consumed = self
            .conn()?
            .prepare_cached(&format!(
                "UPDATE credentials SET used_at = ?
                 WHERE kind = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?
                   AND failed_attempts < ? AND key IN ({placeholders})
                 RETURNING {CREDENTIAL_COLUMNS}"
            ))?
            .query_row(params_from_iter(args.iter()), record_from_row)
            .optional()?;
        if let Some(record) = consumed {
            return Ok(ConsumeOutcome::Consumed(record.credential));
        }
        Ok(match find_record(&*self.conn()?, keys, kind)? {
            None => ConsumeOutcome::Unknown,
            Some(record) => record.not_consumed(now, max_failed_attempts),
        })
    }

    fn find(
        &mut self,
        keys: &[String],
        kind: CredentialKind,
        now: u64,
    ) -> Result<Option<CredentialStatus>> {
        Ok(find_record(&*self.conn()?, keys, kind)?.map(|record| record.status_at(now)))
    }

    fn code_for_flow(&mut self, flow_id: &str, now: u64) -> Result<Option<CredentialStatus>> {
        let found = self
            .conn()?
            .prepare_cached(&format!(
                "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE flow_id = ? AND kind = 'code'"
            ))?
            .query_row([flow_id], record_from_row)
            .optional()?;
        Ok(found.map(|record| record.status_at(now)))
    }

    fn record_failed_attempt(
        &mut self,
        flow_id: &str,
        max_failed_attempts: u32,
        now: u64,
    ) -> Result<u32> {
        let count: Option<i64> = self
            .conn()?
            .prepare_cached(
                "UPDATE credentials SET failed_attempts = failed_attempts + 1, last_failed_at = ?2,
                    revoked_at = CASE WHEN failed_attempts + 1 >= ?1 AND revoked_at IS NULL AND used_at IS NULL
                                      THEN ?2 ELSE revoked_at END
                 WHERE flow_id = ?3 AND kind = 'code'
                 RETURNING failed_attempts",
            )?
            .query_row(params![i64::from(max_failed_attempts), to_db(now), flow_id], |r| r.get(0))
            .optional()?;
        // A flow that vanished meanwhile counts as spent.
        Ok(count.map_or(max_failed_attempts, |c| {
            u32::try_from(c).unwrap_or(u32::MAX)
        }))
    }

    fn identity_failed_attempts(&mut self, identity_id: &str, since: u64) -> Result<u32> {
        // Every unit of work holds the write lock already: nothing else
        // counts for the identity until this one commits.
        let count: i64 = self
            .conn()?
            .prepare_cached(
                "SELECT coalesce(sum(failed_attempts), 0) FROM credentials
                 WHERE identity_id = ? AND kind = 'code' AND last_failed_at > ?",
            )?
            .query_row(params![identity_id, to_db(since)], |r| r.get(0))?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    fn revoke_identity(
        &mut self,
        identity_id: &str,
        kind: Option<CredentialKind>,
        now: u64,
    ) -> Result<u32> {
        revoke_credentials(&*self.conn()?, identity_id, kind, now)
    }
}

fn find_record(
    conn: &Connection,
    keys: &[String],
    kind: CredentialKind,
) -> Result<Option<CredentialRecord>> {
    if keys.is_empty() {
        return Ok(None);
    }
    let placeholders = vec!["?"; keys.len()].join(", ");
    let mut args: Vec<rusqlite::types::Value> = vec![kind_name(kind).to_string().into()];
    args.extend(keys.iter().map(|k| k.clone().into()));
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE kind = ? AND key IN ({placeholders})"
        ))?
        .query_row(params_from_iter(args.iter()), record_from_row)
        .optional()?)
}

/// Revokes the identity's active credentials (of one kind, or all).
pub(super) fn revoke_credentials(
    conn: &Connection,
    identity_id: &str,
    kind: Option<CredentialKind>,
    now: u64,
) -> Result<u32> {
    let revoked = conn
        .prepare_cached(
            "UPDATE credentials SET revoked_at = ?1
             WHERE identity_id = ?2 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?1
               AND (?3 IS NULL OR kind = ?3)",
        )?
        .execute(params![to_db(now), identity_id, kind.map(kind_name)])?;
    Ok(u32::try_from(revoked).unwrap_or(u32::MAX))
}

fn record_from_row(r: &Row<'_>) -> rusqlite::Result<CredentialRecord> {
    let kind: String = r.get(1)?;
    Ok(CredentialRecord {
        credential: Credential {
            key: r.get(0)?,
            kind: if kind == "code" {
                CredentialKind::Code
            } else {
                CredentialKind::Link
            },
            identity_id: r.get(2)?,
            flow_id: r.get(3)?,
            issued_at: from_db(r.get(4)?),
            expires_at: from_db(r.get(5)?),
            return_to: r.get(6)?,
            address_key: r.get(10)?,
        },
        used: r.get::<_, Option<i64>>(7)?.is_some(),
        revoked: r.get::<_, Option<i64>>(8)?.is_some(),
        failed_attempts: u32::try_from(r.get::<_, i64>(9)?).unwrap_or(u32::MAX),
        last_failed_at: r.get::<_, Option<i64>>(11)?.map_or(0, from_db),
    })
}
