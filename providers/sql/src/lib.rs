//! The recovery engine's `storage`, `mailer` (the outbox) and default
//! `directory` over the host's own SQL connection (the `sql` import), as a
//! component of its own: `reclaim component --sql` composes it with the
//! engine, and the Python and Node.js packages only run its statements on
//! their driver and open and close each operation's transaction. Every
//! statement is written once for SQLite and PostgreSQL (`db`); the tables
//! and their migrations are in `schema`. An embedder's own directory or
//! mailer is the host's import of that name, which the provider hands the
//! calls to (`host-options`).

// Only a wasm32-wasip2 build means anything; natively the crate is empty so
// that `cargo test --workspace` can pass over it.
#![cfg(target_arch = "wasm32")]

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "sql-provider",
    });
}

mod db;
mod schema;

use bindings::exports::reclaim::recovery::{directory, mailer, schema as tables, storage};
use bindings::reclaim::recovery::directory as own_directory;
use bindings::reclaim::recovery::host_options::{self, Options};
use bindings::reclaim::recovery::mailer as own_mailer;
use bindings::reclaim::recovery::sql::Value;
use bindings::reclaim::recovery::types::Identity;
use db::{Row, int, marks, opt_text, text, unsigned};
use storage::{ConsumeOutcome, Credential, CredentialKind, CredentialState, CredentialStatus};

struct Provider;

/// What the host plugs in, asked once per instance.
fn options() -> Options {
    static OPTIONS: std::sync::OnceLock<Options> = std::sync::OnceLock::new();
    *OPTIONS.get_or_init(host_options::get)
}

const IDENTITY: &str = "SELECT id, pk, email, display_name, locale, active FROM identities";

fn identity(row: Row) -> Identity {
    Identity {
        id: row.text(0),
        pk: row.int(1),
        email: row.opt_text(2),
        display_name: row.opt_text(3),
        locale: row.opt_text(4),
        active: row.int(5) != 0,
    }
}

impl directory::Guest for Provider {
    fn get_by_id(id: String) -> Option<Identity> {
        if options().own_directory {
            return own_directory::get_by_id(&id);
        }
        db::query_one(&format!("{IDENTITY} WHERE id = ?"), &[text(&id)]).map(identity)
    }

    fn get_by_pk(pk: i64) -> Option<Identity> {
        if options().own_directory {
            return own_directory::get_by_pk(pk);
        }
        db::query_one(&format!("{IDENTITY} WHERE pk = ?"), &[int(pk)]).map(identity)
    }

    fn find_by_email(email: String) -> Option<Identity> {
        if options().own_directory {
            return own_directory::find_by_email(&email);
        }
        // By the stored normal form (`reclaim_address`), or, for a row
        // this package's `create` wrote until `migrate` fills it, by
        // `lower()`; the normal form wins where both match.
        let normal = reclaim_address::normal_form(&email);
        db::query_one(
            &format!(
                "{IDENTITY} WHERE email_normal = ? OR (email_normal IS NULL AND email IS NOT NULL AND lower(email) = lower(?))
                 ORDER BY email_normal IS NULL LIMIT 1"
            ),
            &[text(&normal), text(&email)],
        )
        .map(identity)
    }
}

/// A credential's columns, in the order `credential` and `status` read.
const COLUMNS: &str = "key, kind, identity_id, flow_id, issued_at, expires_at, return_to, \
                       address_key, used_at, revoked_at, failed_attempts";

fn kind_name(kind: CredentialKind) -> &'static str {
    match kind {
        CredentialKind::Link => "link",
        CredentialKind::Code => "code",
    }
}

fn credential(row: &Row) -> Credential {
    Credential {
        key: row.text(0),
        kind: match row.text(1).as_str() {
            "code" => CredentialKind::Code,
            _ => CredentialKind::Link,
        },
        identity_id: row.text(2),
        flow_id: row.text(3),
        issued_at: row.unsigned(4),
        expires_at: row.unsigned(5),
        return_to: row.opt_text(6),
        address_key: row.opt_text(7),
    }
}

/// Where a stored credential stands at `now` (`reclaim_rules::standing`).
fn standing(row: &Row, now: u64) -> reclaim_rules::Standing {
    reclaim_rules::standing(
        row.opt_int(8).is_some(),
        row.opt_int(9).is_some(),
        row.unsigned(5),
        now,
    )
}

fn state(row: &Row, now: u64) -> CredentialState {
    state_of(standing(row, now))
}

fn state_of(standing: reclaim_rules::Standing) -> CredentialState {
    match standing {
        reclaim_rules::Standing::Active => CredentialState::Active,
        reclaim_rules::Standing::Used => CredentialState::Used,
        reclaim_rules::Standing::Revoked => CredentialState::Revoked,
        reclaim_rules::Standing::Expired => CredentialState::Expired,
    }
}

fn status(row: Row, now: u64) -> CredentialStatus {
    CredentialStatus {
        state: state(&row, now),
        failed_attempts: u32::try_from(row.int(10)).unwrap_or(u32::MAX),
        credential: credential(&row),
    }
}

/// The credential of `kind` under one of `keys`.
fn by_keys(keys: &[String], kind: CredentialKind) -> Option<Row> {
    let mut params = vec![text(kind_name(kind))];
    params.extend(keys.iter().map(|k| text(k)));
    db::query_one(
        &format!(
            "SELECT {COLUMNS} FROM credentials WHERE kind = ? AND key IN ({})",
            marks(keys.len())
        ),
        &params,
    )
}

/// On PostgreSQL, makes the rest of the transaction exclusive per identity
/// (the WIT's `identity-failed-attempts`), and puts every unit that consumes
/// or revokes an identity's credentials in one order, so two redemptions of
/// one identity's links can't deadlock. SQLite's write lock already does
/// both. `whose` selects the identity's id.
fn lock_identity(whose: &str, params: &[Value]) {
    if db::is_postgresql() {
        db::query(
            &format!(
                "SELECT pg_advisory_xact_lock(hashtextextended('reclaim/code-attempts/' || ({whose}), 0))"
            ),
            params,
        );
    }
}

impl storage::Guest for Provider {
    fn insert(c: Credential) {
        db::execute(
            "INSERT INTO credentials (key, kind, identity_id, flow_id, issued_at, expires_at, return_to, address_key)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            &[
                text(&c.key),
                text(kind_name(c.kind)),
                text(&c.identity_id),
                text(&c.flow_id),
                unsigned(c.issued_at),
                unsigned(c.expires_at),
                opt_text(c.return_to.as_deref()),
                opt_text(c.address_key.as_deref()),
            ],
        );
    }

    fn consume(
        keys: Vec<String>,
        kind: CredentialKind,
        now: u64,
        max_failed_attempts: u32,
    ) -> ConsumeOutcome {
        let mut keyed = vec![text(kind_name(kind))];
        keyed.extend(keys.iter().map(|k| text(k)));
        let list = marks(keys.len());
        lock_identity(
            &format!(
                "SELECT identity_id FROM credentials WHERE kind = ? AND key IN ({list}) LIMIT 1"
            ),
            &keyed,
        );
        // The guard is in the UPDATE: of concurrent callers, one changes the
        // row and the others find it used.
        let mut params = vec![
            unsigned(now),
            unsigned(now),
            int(max_failed_attempts.into()),
        ];
        params.extend(keyed);
        let won = db::query_one(
            &format!(
                "UPDATE credentials SET used_at = ?
                 WHERE used_at IS NULL AND revoked_at IS NULL AND expires_at > ?
                   AND failed_attempts < CAST(? AS BIGINT)
                   AND kind = ? AND key IN ({list})
                 RETURNING {COLUMNS}"
            ),
            &params,
        );
        if let Some(row) = won {
            return ConsumeOutcome::Consumed(credential(&row));
        }
        match by_keys(&keys, kind) {
            None => ConsumeOutcome::Unknown,
            // Not consumed though there: used, revoked, expired, or (active)
            // out of attempts, which counts as revoked.
            Some(row) => {
                let failed = u32::try_from(row.int(10)).unwrap_or(u32::MAX);
                let why =
                    reclaim_rules::consumable(standing(&row, now), failed, max_failed_attempts)
                        .err()
                        .unwrap_or(reclaim_rules::Standing::Revoked);
                ConsumeOutcome::NotActive(state_of(why))
            }
        }
    }

    fn find(keys: Vec<String>, kind: CredentialKind, now: u64) -> Option<CredentialStatus> {
        by_keys(&keys, kind).map(|row| status(row, now))
    }

    fn code_for_flow(flow_id: String, now: u64) -> Option<CredentialStatus> {
        db::query_one(
            &format!("SELECT {COLUMNS} FROM credentials WHERE flow_id = ? AND kind = 'code'"),
            &[text(&flow_id)],
        )
        .map(|row| status(row, now))
    }

    fn record_failed_attempt(flow_id: String, max_failed_attempts: u32, now: u64) -> u32 {
        // The limits are cast because `failed_attempts` is an INTEGER on
        // PostgreSQL: a driver that infers its parameters' types (`pg`)
        // would refuse a limit past 2^31 as that column's type.
        let counted = db::query_one(
            "UPDATE credentials SET failed_attempts = failed_attempts + 1, last_failed_at = ?,
                 revoked_at = CASE WHEN failed_attempts + 1 >= CAST(? AS BIGINT) AND revoked_at IS NULL AND used_at IS NULL
                                   THEN ? ELSE revoked_at END
             WHERE flow_id = ? AND kind = 'code'
             RETURNING failed_attempts",
            &[
                unsigned(now),
                int(max_failed_attempts.into()),
                unsigned(now),
                text(&flow_id),
            ],
        );
        counted.map_or(max_failed_attempts, |row| {
            u32::try_from(row.int(0)).unwrap_or(u32::MAX)
        })
    }

    fn identity_failed_attempts(identity_id: String, since: u64) -> u32 {
        lock_identity("?", &[text(&identity_id)]);
        let row = db::query_one(
            "SELECT CAST(coalesce(sum(failed_attempts), 0) AS BIGINT) FROM credentials
             WHERE identity_id = ? AND kind = 'code' AND last_failed_at > ?",
            &[text(&identity_id), unsigned(since)],
        );
        row.map_or(0, |row| u32::try_from(row.int(0)).unwrap_or(u32::MAX))
    }

    fn revoke_identity(identity_id: String, kind: Option<CredentialKind>, now: u64) -> u32 {
        lock_identity("?", &[text(&identity_id)]);
        let kind = kind.map(kind_name);
        let revoked = db::execute(
            "UPDATE credentials SET revoked_at = ?
             WHERE identity_id = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?
               AND (CAST(? AS TEXT) IS NULL OR kind = ?)",
            &[
                unsigned(now),
                text(&identity_id),
                unsigned(now),
                opt_text(kind),
                opt_text(kind),
            ],
        );
        u32::try_from(revoked).unwrap_or(u32::MAX)
    }
}

impl mailer::Guest for Provider {
    fn queue(message: mailer::Message) -> Result<(), String> {
        let to_name = reclaim_wire::mail::check_headers(
            &message.to,
            message.to_name.as_deref(),
            &message.subject,
            message.sender.as_deref(),
        )
        .map_err(str::to_string)?;
        if options().own_mailer {
            return own_mailer::queue(&own_mailer::Message {
                to: message.to,
                to_name,
                subject: message.subject,
                text_body: message.text_body,
                html_body: message.html_body,
                template: message.template,
                flow_id: message.flow_id,
                sender: message.sender,
            });
        }
        let queued_at = now();
        db::execute(
            "INSERT INTO outbox (id, recipient, to_name, subject, text_body, html_body, template, flow_id, sender, queued_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            &[
                text(&uuid::Uuid::new_v4().hyphenated().to_string()),
                text(&message.to),
                opt_text(to_name.as_deref()),
                text(&message.subject),
                text(&message.text_body),
                text(&message.html_body),
                text(&message.template),
                opt_text(message.flow_id.as_deref()),
                opt_text(message.sender.as_deref()),
                unsigned(queued_at),
            ],
        );
        Ok(())
    }
}

/// The wall clock in nanoseconds (the host's, through WASI).
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl tables::Guest for Provider {
    fn migrate() {
        schema::migrate();
    }
}

bindings::export!(Provider with_types_in bindings);
