//! The tables of every Reclaim store on SQL and the numbered steps that
//! reach them, for SQLite and PostgreSQL, written once: the Rust host's
//! SQLite and PostgreSQL backends and the SQL provider (the storage of the
//! Python and Node.js packages) all migrate from here, so a database that
//! one of them made is the others' schema too. Each runner only executes
//! what this crate says, in one transaction:
//!
//! ```
//! use reclaim_schema::Dialect;
//!
//! let dialect = Dialect::Sqlite;
//! let mut run = Vec::new();
//! // BEGIN IMMEDIATE (SQLite) or BEGIN (PostgreSQL), then:
//! run.extend(dialect.prepare().iter().map(|s| s.to_string()));
//! let had = 0; // the one integer `dialect.version()` answers
//! for (step, statements) in dialect.steps().iter().enumerate().skip(had) {
//!     run.extend(statements.iter().map(|s| s.to_string()));
//!     run.push(dialect.record(step + 1));
//! }
//! // COMMIT
//! assert!(run.iter().any(|s| s.starts_with("CREATE TABLE IF NOT EXISTS credentials")));
//! assert_eq!(run.last().unwrap(), "PRAGMA user_version = 7");
//! ```
//!
//! The dialects keep their own step numbers (PostgreSQL's first step holds
//! what SQLite reached in two), because databases of both already record
//! them. Times are nanoseconds since the Unix epoch in 64-bit integers.
//! No dependencies, so that every target (native, wasm32-wasip2) can use it.

/// One step: statements run one at a time, in order (one each, because
/// not every driver runs several in one call).
pub type Step = &'static [&'static str];

/// The SQL dialect of a database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgresql,
}

/// The advisory lock that serialises PostgreSQL migrations ("reclaim" in
/// ASCII), taken in the migrating transaction.
pub const POSTGRESQL_MIGRATION_LOCK: i64 = 0x0072_6563_6c61_696d;

impl Dialect {
    /// Every step, in order: a database that has had `n` runs the rest.
    pub fn steps(self) -> &'static [Step] {
        match self {
            Dialect::Sqlite => SQLITE,
            Dialect::Postgresql => POSTGRESQL,
        }
    }

    /// What runs first in the migrating transaction. SQLite needs nothing:
    /// the runner opens the transaction with `BEGIN IMMEDIATE`, so other
    /// processes wait for the write lock. PostgreSQL takes an advisory lock
    /// (`CREATE TABLE` is not atomic with the check that the table is
    /// missing) and keeps the steps it has had in a table of their own.
    pub fn prepare(self) -> &'static [&'static str] {
        match self {
            Dialect::Sqlite => &[],
            Dialect::Postgresql => &[
                // POSTGRESQL_MIGRATION_LOCK, written out for the runners
                // that bind no parameters here.
                "SELECT pg_advisory_xact_lock(32199625039505773)",
                "CREATE TABLE IF NOT EXISTS reclaim_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
            ],
        }
    }

    /// A query whose one row and column is how many steps the database has
    /// had (after [`prepare`](Self::prepare)).
    pub fn version(self) -> &'static str {
        match self {
            Dialect::Sqlite => "PRAGMA user_version",
            Dialect::Postgresql => {
                "SELECT CAST(coalesce(max(version), 0) AS BIGINT) FROM reclaim_migrations"
            }
        }
    }

    /// The statement that records step `step` (counted from 1) as had.
    pub fn record(self, step: usize) -> String {
        match self {
            Dialect::Sqlite => format!("PRAGMA user_version = {step}"),
            Dialect::Postgresql => {
                format!("INSERT INTO reclaim_migrations (version) VALUES ({step})")
            }
        }
    }
}

pub mod earlier;

const SQLITE: &[Step] = &[
    // 1: the tables, as the first release made them (hence `IF NOT EXISTS`:
    // a database of that release records no step), then the flow whose
    // credential a message carries (revoked if the message is abandoned),
    // and self-service requests waiting for their turn.
    &[
        "CREATE TABLE IF NOT EXISTS identities (
    pk           INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    email        TEXT,
    display_name TEXT,
    locale       TEXT,
    active       INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    -- Argon2id PHC string, set by a completed recovery.
    password_hash TEXT
)",
        "CREATE UNIQUE INDEX IF NOT EXISTS identities_by_email ON identities (lower(email)) WHERE email IS NOT NULL",
        "CREATE TABLE IF NOT EXISTS credentials (
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
) WITHOUT ROWID",
        "CREATE INDEX IF NOT EXISTS outstanding_credentials ON credentials (identity_id)
    WHERE used_at IS NULL AND revoked_at IS NULL",
        "CREATE TABLE IF NOT EXISTS outbox (
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
    -- When a queued message is next due (its retry time), NULL for now.
    next_attempt_at INTEGER,
    -- The courier holding a processing message, and until when.
    claimed_by  TEXT,
    lease_until INTEGER,
    sent_at    INTEGER,
    updated_at INTEGER
)",
        // Every delivery attempt, as Kratos' courier keeps them. `attempt`
        // counts within the message's current round: `courier retry`
        // starts a new round from 1, so the log keeps rows of both.
        "CREATE TABLE IF NOT EXISTS outbox_attempts (
    id       INTEGER PRIMARY KEY,
    mail_id  TEXT NOT NULL REFERENCES outbox (id),
    attempt  INTEGER NOT NULL,
    at       INTEGER NOT NULL,
    courier  TEXT NOT NULL,
    outcome  TEXT NOT NULL,
    error    TEXT
)",
        "CREATE INDEX IF NOT EXISTS attempts_by_mail ON outbox_attempts (mail_id)",
        "CREATE INDEX IF NOT EXISTS due_mail ON outbox (queued_at) WHERE status IN ('queued', 'processing')",
        "ALTER TABLE outbox ADD COLUMN flow_id TEXT",
        "CREATE TABLE recovery_requests (
         id        INTEGER PRIMARY KEY,
         email     TEXT NOT NULL,
         return_to TEXT,
         queued_at INTEGER NOT NULL
     )",
        // The session that carries a person from a redeemed credential to
        // the new-password form: at most one per identity (a newer
        // redemption replaces it, and everything that ends a recovery
        // deletes it), found by the identity named in the cookie and
        // checked against SHA-256 of the cookie's secret, so the store
        // never holds a usable cookie. Sessions of the first release (keyed
        // by cookie alone, 15 minutes at most) end with the upgrade.
        "DROP TABLE IF EXISTS recovery_sessions",
        "CREATE TABLE recovery_sessions (
         identity_id TEXT PRIMARY KEY,
         key         TEXT NOT NULL,
         return_to   TEXT,
         expires_at  INTEGER NOT NULL
     ) WITHOUT ROWID",
    ],
    // 2: rate-limit counters, so that every process sharing the file counts
    // against the same limits: one theoretical arrival time per key (GCRA).
    &["CREATE TABLE rate_limits (
         key TEXT PRIMARY KEY,
         tat INTEGER NOT NULL
     ) WITHOUT ROWID"],
    // 3: a queued request's claim, so that processes sharing the file take
    // different requests.
    &["ALTER TABLE recovery_requests ADD COLUMN claimed_until INTEGER"],
    // 4: the address a credential was issued for (a keyed hash; credentials
    // issued before have none, so they stop working for identities with an
    // address), each code's latest wrong code (for the per-identity cap),
    // and what the identity admin API keeps of an identity.
    &[
        "ALTER TABLE credentials ADD COLUMN address_key TEXT",
        "ALTER TABLE credentials ADD COLUMN last_failed_at INTEGER",
        "CREATE INDEX credentials_failing ON credentials (identity_id, last_failed_at)
         WHERE last_failed_at IS NOT NULL",
        "ALTER TABLE identities ADD COLUMN external_id TEXT",
        "CREATE UNIQUE INDEX identities_by_external_id ON identities (external_id)
         WHERE external_id IS NOT NULL",
        "ALTER TABLE identities ADD COLUMN second_factor INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE identities ADD COLUMN metadata_public TEXT",
        "ALTER TABLE identities ADD COLUMN metadata_admin TEXT",
        "ALTER TABLE identities ADD COLUMN updated_at INTEGER",
        "ALTER TABLE identities ADD COLUMN state_changed_at INTEGER",
    ],
    // 5: the hand-off, the audit trail and webhook deliveries (PostgreSQL's
    // step 4 has the same tables), and the identity a message is about.
    &[
        // HMAC-SHA256 of the assertion under the hashing secret: the
        // database never holds a usable one.
        "CREATE TABLE recovery_assertions (
         key         TEXT PRIMARY KEY,
         identity_id TEXT NOT NULL,
         method      TEXT NOT NULL CHECK (method IN ('link', 'code')),
         flow_id     TEXT NOT NULL,
         redeemed_at INTEGER NOT NULL,
         expires_at  INTEGER NOT NULL,
         used_at     INTEGER
     ) WITHOUT ROWID",
        // `id` is msg_ and a UUIDv7: time-ordered, so every index on it
        // grows at one end.
        "CREATE TABLE events (
         seq         INTEGER PRIMARY KEY AUTOINCREMENT,
         id          TEXT NOT NULL,
         type        TEXT NOT NULL,
         identity_id TEXT,
         occurred_at INTEGER NOT NULL,
         request_id  TEXT,
         body        TEXT NOT NULL
     )",
        "CREATE INDEX events_by_identity ON events (identity_id, seq)",
        "CREATE INDEX events_by_time ON events (occurred_at)",
        // One per event and endpoint; the body is blanked once delivered or
        // abandoned (it may carry a password hash).
        "CREATE TABLE webhook_deliveries (
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
     ) WITHOUT ROWID",
        "CREATE INDEX due_deliveries ON webhook_deliveries (queued_at)
         WHERE status IN ('queued', 'processing')",
        // Endpoints that answered 410 Gone.
        "CREATE TABLE webhook_endpoints (
         url         TEXT PRIMARY KEY,
         disabled_at INTEGER NOT NULL,
         reason      TEXT NOT NULL
     ) WITHOUT ROWID",
        "ALTER TABLE outbox ADD COLUMN identity_id TEXT",
        "ALTER TABLE outbox ADD COLUMN external_id TEXT",
    ],
    // 6: one normal form of an address: the identities' own, stored and
    // indexed beside the address as given (the runners fill it for rows
    // from before, see `NORMAL_FORMS_TO_FILL`); a session and an assertion
    // remember the address key of the credential that opened them, and
    // stand only while the identity is at that address (sessions and
    // assertions opened before have none, so they end for identities with
    // an address); ending a session expires the identity's unredeemed
    // assertions, found by identity.
    ADDRESSES,
    // 7: the self-service flows of the flow API.
    FLOWS,
];

/// SQLite's step 6 and PostgreSQL's step 5: the same in both dialects.
/// `lower(email)`'s index stays for the hosts that write no normal form
/// yet (the SQL provider's Python and Node.js packages).
const ADDRESSES: Step = &[
    "ALTER TABLE identities ADD COLUMN email_normal TEXT",
    "CREATE UNIQUE INDEX identities_by_normal_email ON identities (email_normal)
     WHERE email_normal IS NOT NULL",
    // The rows still to fill (`NORMAL_FORMS_TO_FILL`): usually none, so an
    // open looks at an empty index rather than the whole table.
    "CREATE INDEX identities_without_normal_email ON identities (pk)
     WHERE email_normal IS NULL AND email IS NOT NULL",
    "ALTER TABLE recovery_sessions ADD COLUMN address_key TEXT",
    "ALTER TABLE recovery_assertions ADD COLUMN address_key TEXT",
    "CREATE INDEX unredeemed_assertions ON recovery_assertions (identity_id)
     WHERE used_at IS NULL",
];

/// SQLite's step 7 and PostgreSQL's step 6: the same in both dialects.
/// A flow's body is the flow API's to read (`reclaim_wire::flows`); a
/// queued request for a code names the flow its code is bound to.
const FLOWS: Step = &[
    "CREATE TABLE self_service_flows (
    id         TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL,
    version    BIGINT NOT NULL,
    body       TEXT NOT NULL
)",
    "CREATE INDEX self_service_flows_by_expiry ON self_service_flows (expires_at)",
    "ALTER TABLE recovery_requests ADD COLUMN code_flow TEXT",
];

/// The identities whose address has no normal form yet (made before step
/// 6, or by a host that writes none): `pk` and `email`, lowest pk first.
/// A runner computes each normal form and stores it with
/// [`fill_normal_form`].
pub const NORMAL_FORMS_TO_FILL: &str = "SELECT pk, email FROM identities
     WHERE email_normal IS NULL AND email IS NOT NULL ORDER BY pk";

/// Stores the normal form (the first and third parameters, the same value)
/// of the identity with the pk of the second, unless another identity has
/// it: it changes no row then. Plain `?` on SQLite, as every SQLite driver
/// binds them.
pub fn fill_normal_form(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => {
            "UPDATE identities SET email_normal = ? WHERE pk = ?
             AND NOT EXISTS (SELECT 1 FROM identities WHERE email_normal = ?)"
        }
        Dialect::Postgresql => {
            "UPDATE identities SET email_normal = $1 WHERE pk = $2
             AND NOT EXISTS (SELECT 1 FROM identities WHERE email_normal = $3)"
        }
    }
}

const POSTGRESQL: &[Step] = &[
    // 1: SQLite's steps 1 and 2.
    &[
        "CREATE TABLE identities (
    pk            BIGSERIAL PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    email         TEXT,
    display_name  TEXT,
    locale        TEXT,
    active        BOOLEAN NOT NULL,
    created_at    BIGINT NOT NULL,
    -- Argon2id PHC string, set by a completed recovery.
    password_hash TEXT
)",
        "CREATE UNIQUE INDEX identities_by_email ON identities (lower(email)) WHERE email IS NOT NULL",
        "CREATE TABLE credentials (
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
)",
        // Not partial, unlike SQLite's: a partial index whose predicate
        // matches the consume guard is planned as a scan of every
        // outstanding credential before the table has statistics, instead
        // of the primary key.
        "CREATE INDEX credentials_by_identity ON credentials (identity_id)",
        "CREATE TABLE outbox (
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
)",
        "CREATE INDEX due_mail ON outbox (queued_at) WHERE status IN ('queued', 'processing')",
        "CREATE TABLE outbox_attempts (
    id      BIGSERIAL PRIMARY KEY,
    mail_id TEXT NOT NULL REFERENCES outbox (id),
    attempt INTEGER NOT NULL,
    at      BIGINT NOT NULL,
    courier TEXT NOT NULL,
    outcome TEXT NOT NULL,
    error   TEXT
)",
        "CREATE INDEX attempts_by_mail ON outbox_attempts (mail_id)",
        "CREATE TABLE recovery_requests (
    id        BIGSERIAL PRIMARY KEY,
    email     TEXT NOT NULL,
    return_to TEXT,
    queued_at BIGINT NOT NULL
)",
        // At most one per identity, checked against SHA-256 of the cookie's
        // secret.
        "CREATE TABLE recovery_sessions (
    identity_id TEXT PRIMARY KEY,
    key         TEXT NOT NULL,
    return_to   TEXT,
    expires_at  BIGINT NOT NULL
)",
        // One theoretical arrival time per key (GCRA), shared by every
        // replica.
        "CREATE TABLE rate_limits (
    key TEXT PRIMARY KEY,
    tat BIGINT NOT NULL
)",
    ],
    // 2: SQLite's step 3: a queued request's claim, so that replicas take
    // different requests.
    &["ALTER TABLE recovery_requests ADD COLUMN claimed_until BIGINT"],
    // 3: SQLite's step 4, and the new passwords of the users of a
    // platform's own table (the [directory] queries), which Reclaim never
    // writes.
    &[
        "ALTER TABLE credentials ADD COLUMN address_key TEXT",
        "ALTER TABLE credentials ADD COLUMN last_failed_at BIGINT",
        "CREATE INDEX credentials_failing ON credentials (identity_id, last_failed_at)
         WHERE last_failed_at IS NOT NULL",
        "ALTER TABLE identities ADD COLUMN external_id TEXT",
        "CREATE UNIQUE INDEX identities_by_external_id ON identities (external_id)
         WHERE external_id IS NOT NULL",
        "ALTER TABLE identities ADD COLUMN second_factor BOOLEAN NOT NULL DEFAULT false",
        "ALTER TABLE identities ADD COLUMN metadata_public TEXT",
        "ALTER TABLE identities ADD COLUMN metadata_admin TEXT",
        "ALTER TABLE identities ADD COLUMN updated_at BIGINT",
        "ALTER TABLE identities ADD COLUMN state_changed_at BIGINT",
        "CREATE TABLE platform_passwords (
         identity_id   TEXT PRIMARY KEY,
         password_hash TEXT NOT NULL,
         set_at        BIGINT NOT NULL
     )",
    ],
    // 4: SQLite's step 5.
    &[
        "CREATE TABLE recovery_assertions (
         key         TEXT PRIMARY KEY,
         identity_id TEXT NOT NULL,
         method      TEXT NOT NULL CHECK (method IN ('link', 'code')),
         flow_id     TEXT NOT NULL,
         redeemed_at BIGINT NOT NULL,
         expires_at  BIGINT NOT NULL,
         used_at     BIGINT
     )",
        "CREATE TABLE events (
         seq         BIGSERIAL PRIMARY KEY,
         id          TEXT NOT NULL,
         type        TEXT NOT NULL,
         identity_id TEXT,
         occurred_at BIGINT NOT NULL,
         request_id  TEXT,
         body        TEXT NOT NULL
     )",
        "CREATE INDEX events_by_identity ON events (identity_id, seq)",
        "CREATE INDEX events_by_time ON events (occurred_at)",
        "CREATE TABLE webhook_deliveries (
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
     )",
        "CREATE INDEX due_deliveries ON webhook_deliveries (queued_at)
         WHERE status IN ('queued', 'processing')",
        "CREATE TABLE webhook_endpoints (
         url         TEXT PRIMARY KEY,
         disabled_at BIGINT NOT NULL,
         reason      TEXT NOT NULL
     )",
        "ALTER TABLE outbox ADD COLUMN identity_id TEXT",
        "ALTER TABLE outbox ADD COLUMN external_id TEXT",
    ],
    // 5: SQLite's step 6.
    ADDRESSES,
    // 6: SQLite's step 7.
    FLOWS,
];

#[cfg(test)]
mod tests;
