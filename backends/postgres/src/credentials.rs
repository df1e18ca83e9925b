//! Credentials in PostgreSQL: the component's `storage` import.

use anyhow::Result;
use postgres::Row;
use postgres::types::ToSql;

use super::{Conn, PgWork};
use crate::storage::credentials::kind_name;
use crate::storage::{CredentialRecord, CredentialStore, from_db, to_db};
use crate::wit::{ConsumeOutcome, Credential, CredentialKind, CredentialStatus};

impl CredentialStore for PgWork {
    fn insert(&mut self, c: &Credential) -> Result<()> {
        // Nothing reads its answer: it goes with the next round trip.
        self.conn()?.defer(
            "storing the credential",
            "INSERT INTO credentials (key, kind, identity_id, flow_id, issued_at, expires_at, return_to, address_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            vec![
                Box::new(c.key.clone()),
                Box::new(kind_name(c.kind)),
                Box::new(c.identity_id.clone()),
                Box::new(c.flow_id.clone()),
                Box::new(to_db(c.issued_at)),
                Box::new(to_db(c.expires_at)),
                Box::new(c.return_to.clone()),
                Box::new(c.address_key.clone()),
            ],
        )
    }

    fn consume(
        &mut self,
        keys: &[String],
        kind: CredentialKind,
        now: u64,
        max_failed_attempts: u32,
    ) -> Result<ConsumeOutcome> {
        let max = i32::try_from(max_failed_attempts).unwrap_or(i32::MAX);
        let on_platform = self.on_platform();
        let mut conn = self.conn()?;
        lock_identity_of(&mut conn, keys, kind)?;
        // One guarded statement: of concurrent consumers in any process,
        // the one whose UPDATE reaches the row first wins; the others wait
        // for its commit, re-check the guard on the new row and match
        // nothing.
        // One key at a time (one per hashing secret, newest first, so
        // usually one statement): an equality on the primary key, the plan
        // PostgreSQL picks even before it has statistics on the table.
        // The built-in directory's record of the credential's identity
        // comes in the same statement, for the component's next question
        // (on the platform's table the join finds nothing and is not read).
        let (now_db, kind_db) = (to_db(now), kind_name(kind));
        let params = |key| [&now_db as &(dyn ToSql + Sync), &kind_db, &max, key];
        for key in keys {
            let consumed = conn.query_opt(
                concat!(
                    "WITH consumed AS (
                         UPDATE credentials SET used_at = $1
                         WHERE key = $4 AND kind = $2 AND used_at IS NULL AND revoked_at IS NULL
                           AND expires_at > $1 AND failed_attempts < $3
                         RETURNING key, kind, identity_id, flow_id, issued_at, expires_at,
                                   return_to, used_at, revoked_at, failed_attempts, address_key,
                                   last_failed_at)
                     SELECT c.*, i.* FROM consumed c LEFT JOIN LATERAL (",
                    record_select!("WHERE id = c.identity_id"),
                    ") i ON TRUE"
                ),
                &params(key),
            )?;
            if let Some(row) = consumed {
                let credential = record(&row).credential;
                if !on_platform {
                    let identity = row
                        .get::<_, Option<String>>(IDENTITY_AT)
                        .map(|_| super::identities::record_at(&row, IDENTITY_AT));
                    drop(conn);
                    self.prefetched = Some((credential.identity_id.clone(), identity));
                }
                return Ok(ConsumeOutcome::Consumed(credential));
            }
        }
        Ok(match find_record(&mut conn, keys, kind)? {
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
        Ok(find_record(&mut *self.conn()?, keys, kind)?.map(|r| r.status_at(now)))
    }

    fn code_for_flow(&mut self, flow_id: &str, now: u64) -> Result<Option<CredentialStatus>> {
        let found = self.conn()?.query_opt(
            "SELECT key, kind, identity_id, flow_id, issued_at, expires_at, return_to,
                    used_at, revoked_at, failed_attempts, address_key, last_failed_at
             FROM credentials WHERE flow_id = $1 AND kind = 'code'",
            &[&flow_id],
        )?;
        Ok(found.map(|row| record(&row).status_at(now)))
    }

    fn record_failed_attempt(
        &mut self,
        flow_id: &str,
        max_failed_attempts: u32,
        now: u64,
    ) -> Result<u32> {
        let max = i32::try_from(max_failed_attempts).unwrap_or(i32::MAX);
        // One atomic UPDATE: concurrent wrong codes each add one, and the
        // one that reaches the limit revokes the flow.
        let count = self.conn()?.query_opt(
            "UPDATE credentials SET failed_attempts = failed_attempts + 1, last_failed_at = $2,
                 revoked_at = CASE WHEN failed_attempts + 1 >= $1 AND revoked_at IS NULL AND used_at IS NULL
                                   THEN $2 ELSE revoked_at END
             WHERE flow_id = $3 AND kind = 'code'
             RETURNING failed_attempts",
            &[&max, &to_db(now), &flow_id],
        )?;
        // A flow that vanished meanwhile counts as spent.
        Ok(count.map_or(max_failed_attempts, |row| {
            u32::try_from(row.get::<_, i32>(0)).unwrap_or(u32::MAX)
        }))
    }

    fn identity_failed_attempts(&mut self, identity_id: &str, since: u64) -> Result<u32> {
        let mut conn = self.conn()?;
        // Units on other connections that count for the same identity wait
        // here until this one commits, so concurrent guesses on any replica
        // see each other's wrong codes.
        lock_identity(&mut conn, identity_id)?;
        let count: i64 = conn
            .query_opt(
                "SELECT coalesce(sum(failed_attempts), 0)::BIGINT FROM credentials
                 WHERE identity_id = $1 AND kind = 'code' AND last_failed_at > $2",
                &[&identity_id, &to_db(since)],
            )?
            .map_or(0, |row| row.get(0));
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    fn revoke_identity(
        &mut self,
        identity_id: &str,
        kind: Option<CredentialKind>,
        now: u64,
    ) -> Result<u32> {
        revoke_credentials(&mut *self.conn()?, identity_id, kind, now)
    }
}

/// Where the identity's columns start in the consuming statement's row.
const IDENTITY_AT: usize = 12;

fn find_record(
    conn: &mut Conn,
    keys: &[String],
    kind: CredentialKind,
) -> Result<Option<CredentialRecord>> {
    for key in keys {
        let found = conn.query_opt(
            "SELECT key, kind, identity_id, flow_id, issued_at, expires_at, return_to,
                    used_at, revoked_at, failed_attempts, address_key, last_failed_at
             FROM credentials WHERE key = $1 AND kind = $2",
            &[key, &kind_name(kind)],
        )?;
        if let Some(row) = found {
            return Ok(Some(record(&row)));
        }
    }
    Ok(None)
}

/// The order in which units of work take an identity's rows: a unit that
/// consumes or revokes its credentials, completes its session or changes
/// its record first takes the identity's transaction lock. Without it a
/// redemption (which holds its credential's row, then revokes the others)
/// and a second redemption, a new admin link or a new password would each
/// hold a row the other waits for, and PostgreSQL would end the deadlock
/// after a second by failing one of them with a 500. Sent with the unit's
/// next statement: nothing reads its answer. The key is the one the
/// per-identity count of wrong codes has always taken, so replicas of the
/// release before keep counting under it.
pub(super) fn lock_identity(conn: &mut Conn, identity_id: &str) -> Result<()> {
    conn.defer(
        "ordering the identity's units",
        "SELECT pg_advisory_xact_lock(hashtextextended('reclaim/code-attempts/' || $1, 0))",
        vec![Box::new(identity_id.to_owned())],
    )
}

/// [`lock_identity`] for the identity a credential key belongs to, known
/// only to the database.
fn lock_identity_of(conn: &mut Conn, keys: &[String], kind: CredentialKind) -> Result<()> {
    conn.defer(
        "ordering the identity's units",
        "SELECT pg_advisory_xact_lock(hashtextextended('reclaim/code-attempts/' || identity_id, 0))
         FROM credentials WHERE key = ANY($1) AND kind = $2",
        vec![Box::new(keys.to_vec()), Box::new(kind_name(kind))],
    )
}

/// Revokes the identity's active credentials (of one kind, or all).
pub(super) fn revoke_credentials(
    conn: &mut Conn,
    identity_id: &str,
    kind: Option<CredentialKind>,
    now: u64,
) -> Result<u32> {
    lock_identity(conn, identity_id)?;
    let revoked = conn.execute(
        "UPDATE credentials SET revoked_at = $1
         WHERE identity_id = $2 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1
           AND ($3::TEXT IS NULL OR kind = $3)",
        &[&to_db(now), &identity_id, &kind.map(kind_name)],
    )?;
    Ok(u32::try_from(revoked).unwrap_or(u32::MAX))
}

fn record(r: &Row) -> CredentialRecord {
    let kind: String = r.get(1);
    CredentialRecord {
        credential: Credential {
            key: r.get(0),
            kind: if kind == "code" {
                CredentialKind::Code
            } else {
                CredentialKind::Link
            },
            identity_id: r.get(2),
            flow_id: r.get(3),
            issued_at: from_db(r.get(4)),
            expires_at: from_db(r.get(5)),
            return_to: r.get(6),
            address_key: r.get(10),
        },
        used: r.get::<_, Option<i64>>(7).is_some(),
        revoked: r.get::<_, Option<i64>>(8).is_some(),
        failed_attempts: u32::try_from(r.get::<_, i32>(9)).unwrap_or(u32::MAX),
        last_failed_at: r.get::<_, Option<i64>>(11).map_or(0, from_db),
    }
}
