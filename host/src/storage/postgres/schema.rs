//! The PostgreSQL schema, as numbered migrations. Every process applies
//! the ones its database lacks at start, under an advisory lock, so that
//! replicas starting together apply each step once.

use anyhow::{Context, Result};
use postgres::Client;

/// The advisory lock that serialises migrations ("reclaim" in ASCII).
const MIGRATION_LOCK: i64 = 0x0072_6563_6c61_696d;

/// The same tables as the SQLite backend's; times are nanoseconds since
/// the Unix epoch in BIGINT.
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE identities (
    pk            BIGSERIAL PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    email         TEXT,
    display_name  TEXT,
    locale        TEXT,
    active        BOOLEAN NOT NULL,
    created_at    BIGINT NOT NULL,
    -- Argon2id PHC string, set by a completed recovery.
    password_hash TEXT
);
CREATE UNIQUE INDEX identities_by_email ON identities (lower(email)) WHERE email IS NOT NULL;

CREATE TABLE credentials (
    key             TEXT PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('link', 'code')),
    identity_id     TEXT NOT NULL,
    flow_id         TEXT NOT NULL UNIQUE,
    issued_at       BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    return_to       TEXT,
    used_at         BIGINT,
    revoked_at      BIGINT,
    failed_attempts INTEGER NOT NULL DEFAULT 0
);
-- Not partial, unlike SQLite's: a partial index whose predicate matches
-- the consume guard is planned as a scan of every outstanding credential
-- before the table has statistics, instead of the primary key.
CREATE INDEX credentials_by_identity ON credentials (identity_id);

CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    recipient       TEXT NOT NULL,
    to_name         TEXT,
    subject         TEXT NOT NULL,
    text_body       TEXT NOT NULL,
    html_body       TEXT NOT NULL,
    template        TEXT NOT NULL,
    sender          TEXT,
    status          TEXT NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'processing', 'sent', 'abandoned')),
    queued_at       BIGINT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_at BIGINT,
    claimed_by      TEXT,
    lease_until     BIGINT,
    sent_at         BIGINT,
    updated_at      BIGINT,
    -- The flow whose credential the message carries (revoked if abandoned).
    flow_id         TEXT
);
CREATE INDEX due_mail ON outbox (queued_at) WHERE status IN ('queued', 'processing');
CREATE TABLE outbox_attempts (
    id      BIGSERIAL PRIMARY KEY,
    mail_id TEXT NOT NULL REFERENCES outbox (id),
    attempt INTEGER NOT NULL,
    at      BIGINT NOT NULL,
    courier TEXT NOT NULL,
    outcome TEXT NOT NULL,
    error   TEXT
);
CREATE INDEX attempts_by_mail ON outbox_attempts (mail_id);

CREATE TABLE recovery_requests (
    id        BIGSERIAL PRIMARY KEY,
    email     TEXT NOT NULL,
    return_to TEXT,
    queued_at BIGINT NOT NULL
);

-- At most one per identity, checked against SHA-256 of the cookie's secret.
CREATE TABLE recovery_sessions (
    identity_id TEXT PRIMARY KEY,
    key         TEXT NOT NULL,
    return_to   TEXT,
    expires_at  BIGINT NOT NULL
);

-- One theoretical arrival time per key (GCRA), shared by every replica.
CREATE TABLE rate_limits (
    key TEXT PRIMARY KEY,
    tat BIGINT NOT NULL
);
",
    // 2: a queued request's claim, so that replicas take different requests.
    "ALTER TABLE recovery_requests ADD COLUMN claimed_until BIGINT;",
    // 3: as the SQLite backend's migration 4: the address a credential was
    // issued for, each code's latest wrong code, and what the identity
    // admin API keeps.
    "ALTER TABLE credentials ADD COLUMN address_key TEXT;
     ALTER TABLE credentials ADD COLUMN last_failed_at BIGINT;
     CREATE INDEX credentials_failing ON credentials (identity_id, last_failed_at)
         WHERE last_failed_at IS NOT NULL;
     ALTER TABLE identities ADD COLUMN external_id TEXT;
     CREATE UNIQUE INDEX identities_by_external_id ON identities (external_id)
         WHERE external_id IS NOT NULL;
     ALTER TABLE identities ADD COLUMN second_factor BOOLEAN NOT NULL DEFAULT false;
     ALTER TABLE identities ADD COLUMN metadata_public TEXT;
     ALTER TABLE identities ADD COLUMN metadata_admin TEXT;
     ALTER TABLE identities ADD COLUMN updated_at BIGINT;
     ALTER TABLE identities ADD COLUMN state_changed_at BIGINT;
     -- New passwords of the users of a platform's own table (the
     -- [directory] queries), which Reclaim never writes.
     CREATE TABLE platform_passwords (
         identity_id   TEXT PRIMARY KEY,
         password_hash TEXT NOT NULL,
         set_at        BIGINT NOT NULL
     );",
    // 4: as the SQLite backend's migration 5: the hand-off, the audit trail
    // and webhook deliveries, and the identity a message is about.
    "CREATE TABLE recovery_assertions (
         key         TEXT PRIMARY KEY,
         identity_id TEXT NOT NULL,
         method      TEXT NOT NULL CHECK (method IN ('link', 'code')),
         flow_id     TEXT NOT NULL,
         redeemed_at BIGINT NOT NULL,
         expires_at  BIGINT NOT NULL,
         used_at     BIGINT
     );
     CREATE TABLE events (
         seq         BIGSERIAL PRIMARY KEY,
         -- msg_ and a UUIDv7: time-ordered, so every index on it grows
         -- at one end.
         id          TEXT NOT NULL,
         type        TEXT NOT NULL,
         identity_id TEXT,
         occurred_at BIGINT NOT NULL,
         request_id  TEXT,
         body        TEXT NOT NULL
     );
     CREATE INDEX events_by_identity ON events (identity_id, seq);
     CREATE INDEX events_by_time ON events (occurred_at);
     CREATE TABLE webhook_deliveries (
         event_id        TEXT NOT NULL,
         endpoint        TEXT NOT NULL,
         body            TEXT NOT NULL,
         status          TEXT NOT NULL DEFAULT 'queued'
                         CHECK (status IN ('queued', 'processing', 'delivered', 'abandoned')),
         queued_at       BIGINT NOT NULL,
         attempts        INTEGER NOT NULL DEFAULT 0,
         last_error      TEXT,
         next_attempt_at BIGINT,
         claimed_by      TEXT,
         lease_until     BIGINT,
         delivered_at    BIGINT,
         PRIMARY KEY (event_id, endpoint)
     );
     CREATE INDEX due_deliveries ON webhook_deliveries (queued_at)
         WHERE status IN ('queued', 'processing');
     CREATE TABLE webhook_endpoints (
         url         TEXT PRIMARY KEY,
         disabled_at BIGINT NOT NULL,
         reason      TEXT NOT NULL
     );
     ALTER TABLE outbox ADD COLUMN identity_id TEXT;
     ALTER TABLE outbox ADD COLUMN external_id TEXT;",
];

/// Applies the migrations the database has not had, in one transaction.
pub(super) fn migrate(client: &mut Client) -> Result<()> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS reclaim_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )?;
    let applied: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM reclaim_migrations",
            &[],
        )?
        .get(0);
    for (step, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(applied).unwrap_or(0))
    {
        let version = i32::try_from(step + 1)?;
        tx.batch_execute(sql)
            .with_context(|| format!("migrating the schema to version {version}"))?;
        tx.execute(
            "INSERT INTO reclaim_migrations (version) VALUES ($1)",
            &[&version],
        )?;
    }
    Ok(tx.commit()?)
}
