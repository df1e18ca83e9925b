//! The SQLite schema, and the migrations that bring an older database to
//! it in place.

use anyhow::{Context, Result};
use rusqlite::Connection;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS identities (
    pk           INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    email        TEXT,
    display_name TEXT,
    locale       TEXT,
    active       INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    -- Argon2id PHC string, set by a completed recovery.
    password_hash TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS identities_by_email ON identities (lower(email)) WHERE email IS NOT NULL;

CREATE TABLE IF NOT EXISTS credentials (
    key             TEXT PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('link', 'code')),
    identity_id     TEXT NOT NULL,
    flow_id         TEXT NOT NULL UNIQUE,
    issued_at       INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    return_to       TEXT,
    used_at         INTEGER,
    revoked_at      INTEGER,
    failed_attempts INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS outstanding_credentials ON credentials (identity_id)
    WHERE used_at IS NULL AND revoked_at IS NULL;

CREATE TABLE IF NOT EXISTS outbox (
    id         TEXT PRIMARY KEY,
    recipient  TEXT NOT NULL,
    to_name    TEXT,
    subject    TEXT NOT NULL,
    text_body  TEXT NOT NULL,
    html_body  TEXT NOT NULL,
    template   TEXT NOT NULL,
    sender     TEXT,
    status     TEXT NOT NULL DEFAULT 'queued'
               CHECK (status IN ('queued', 'processing', 'sent', 'abandoned')),
    queued_at  INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    -- When a queued message is next due (its retry time); NULL: now.
    next_attempt_at INTEGER,
    -- The courier holding a processing message, and until when.
    claimed_by  TEXT,
    lease_until INTEGER,
    sent_at    INTEGER,
    updated_at INTEGER
);
-- Every delivery attempt, as Kratos' courier keeps them.
-- `attempt` counts within the message's current round: `courier retry`
-- starts a new round from 1, so the log keeps rows of both.
CREATE TABLE IF NOT EXISTS outbox_attempts (
    id       INTEGER PRIMARY KEY,
    mail_id  TEXT NOT NULL REFERENCES outbox (id),
    attempt  INTEGER NOT NULL,
    at       INTEGER NOT NULL,
    courier  TEXT NOT NULL,
    outcome  TEXT NOT NULL,
    error    TEXT
);
CREATE INDEX IF NOT EXISTS attempts_by_mail ON outbox_attempts (mail_id);
CREATE INDEX IF NOT EXISTS due_mail ON outbox (queued_at) WHERE status IN ('queued', 'processing');
";

/// Changes to the schema since the first release, in order: `PRAGMA
/// user_version` counts those a database has had, so an existing data
/// directory upgrades in place and a new one passes through the same steps.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the flow whose credential a message carries (revoked if the message
    // is abandoned), and self-service requests waiting for their turn.
    "ALTER TABLE outbox ADD COLUMN flow_id TEXT;
     CREATE TABLE recovery_requests (
         id        INTEGER PRIMARY KEY,
         email     TEXT NOT NULL,
         return_to TEXT,
         queued_at INTEGER NOT NULL
     );
     -- The session that carries a person from a redeemed credential to the
     -- new-password form: at most one per identity (a newer redemption
     -- replaces it, and everything that ends a recovery deletes it), found
     -- by the identity named in the cookie and checked against SHA-256 of
     -- the cookie's secret, so the store never holds a usable cookie.
     -- Sessions of the first release (keyed by cookie alone, 15 minutes at
     -- most) end with the upgrade.
     DROP TABLE IF EXISTS recovery_sessions;
     CREATE TABLE recovery_sessions (
         identity_id TEXT PRIMARY KEY,
         key         TEXT NOT NULL,
         return_to   TEXT,
         expires_at  INTEGER NOT NULL
     ) WITHOUT ROWID;",
    // 2: rate-limit counters, so that every process sharing the file counts
    // against the same limits: one theoretical arrival time per key (GCRA).
    "CREATE TABLE rate_limits (
         key TEXT PRIMARY KEY,
         tat INTEGER NOT NULL
     ) WITHOUT ROWID;",
    // 3: a queued request's claim, so that processes sharing the file take
    // different requests.
    "ALTER TABLE recovery_requests ADD COLUMN claimed_until INTEGER;",
    // 4: the address a credential was issued for (a keyed hash; credentials
    // issued before have none, so they stop working for identities with an
    // address), each code's latest wrong code (for the per-identity cap),
    // and what the identity admin API keeps of an identity.
    "ALTER TABLE credentials ADD COLUMN address_key TEXT;
     ALTER TABLE credentials ADD COLUMN last_failed_at INTEGER;
     CREATE INDEX credentials_failing ON credentials (identity_id, last_failed_at)
         WHERE last_failed_at IS NOT NULL;
     ALTER TABLE identities ADD COLUMN external_id TEXT;
     CREATE UNIQUE INDEX identities_by_external_id ON identities (external_id)
         WHERE external_id IS NOT NULL;
     ALTER TABLE identities ADD COLUMN second_factor INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE identities ADD COLUMN metadata_public TEXT;
     ALTER TABLE identities ADD COLUMN metadata_admin TEXT;
     ALTER TABLE identities ADD COLUMN updated_at INTEGER;
     ALTER TABLE identities ADD COLUMN state_changed_at INTEGER;",
    // 5: the hand-off, the audit trail and webhook deliveries (the
    // PostgreSQL schema's migration 4 has the same tables), and the
    // identity a message is about.
    "CREATE TABLE recovery_assertions (
         -- HMAC-SHA256 of the assertion under the hashing secret: the
         -- database never holds a usable one.
         key         TEXT PRIMARY KEY,
         identity_id TEXT NOT NULL,
         method      TEXT NOT NULL CHECK (method IN ('link', 'code')),
         flow_id     TEXT NOT NULL,
         redeemed_at INTEGER NOT NULL,
         expires_at  INTEGER NOT NULL,
         used_at     INTEGER
     ) WITHOUT ROWID;
     CREATE TABLE events (
         seq         INTEGER PRIMARY KEY AUTOINCREMENT,
         -- msg_ and a UUIDv7: time-ordered, so every index on it grows
         -- at one end.
         id          TEXT NOT NULL,
         type        TEXT NOT NULL,
         identity_id TEXT,
         occurred_at INTEGER NOT NULL,
         request_id  TEXT,
         body        TEXT NOT NULL
     );
     CREATE INDEX events_by_identity ON events (identity_id, seq);
     CREATE INDEX events_by_time ON events (occurred_at);
     -- One per event and endpoint; the body is blanked once delivered or
     -- abandoned (it may carry a password hash).
     CREATE TABLE webhook_deliveries (
         event_id        TEXT NOT NULL,
         endpoint        TEXT NOT NULL,
         body            TEXT NOT NULL,
         status          TEXT NOT NULL DEFAULT 'queued'
                         CHECK (status IN ('queued', 'processing', 'delivered', 'abandoned')),
         queued_at       INTEGER NOT NULL,
         attempts        INTEGER NOT NULL DEFAULT 0,
         last_error      TEXT,
         next_attempt_at INTEGER,
         claimed_by      TEXT,
         lease_until     INTEGER,
         delivered_at    INTEGER,
         PRIMARY KEY (event_id, endpoint)
     ) WITHOUT ROWID;
     CREATE INDEX due_deliveries ON webhook_deliveries (queued_at)
         WHERE status IN ('queued', 'processing');
     -- Endpoints that answered 410 Gone.
     CREATE TABLE webhook_endpoints (
         url         TEXT PRIMARY KEY,
         disabled_at INTEGER NOT NULL,
         reason      TEXT NOT NULL
     ) WITHOUT ROWID;
     ALTER TABLE outbox ADD COLUMN identity_id TEXT;
     ALTER TABLE outbox ADD COLUMN external_id TEXT;",
];

/// Applies the migrations the database has not had, in one transaction:
/// several processes opening it at once apply each step once.
pub(super) fn migrate(conn: &Connection) -> Result<()> {
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let version = usize::try_from(version).unwrap_or(0);
    for (step, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        tx.execute_batch(sql)
            .with_context(|| format!("migrating the schema to version {}", step + 1))?;
    }
    tx.execute_batch(&format!("PRAGMA user_version = {}", MIGRATIONS.len()))?;
    Ok(tx.commit()?)
}
