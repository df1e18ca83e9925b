//! The recovery engine's imports on nothing but `wasi:filesystem`, as a
//! component of its own: `wac plug` composes it with the engine, and the
//! wasmtime CLI runs the result with `--dir ./data::/data`.
//!
//! Layout under `/data`:
//! - `identities.json`: the directory, an array of identities;
//! - `settings.json`: settings, created with a fresh secret when missing;
//! - `credentials/<key>.json`: an active credential; consuming renames it to
//!   `<key>.used` and revoking to `<key>.revoked`. A rename is atomic, so of
//!   many processes redeeming one link exactly one wins;
//! - `flows/<flow-id>`: the key of a code flow's credential, and
//!   `attempts/<flow-id>.<n>`: its n-th wrong code, created exclusively, so
//!   that concurrent instances count each wrong code once and stop at the
//!   limit;
//! - `by-identity/<identity-id>/<key>`: an empty file per credential that
//!   may still be live, so that revoking an identity's credentials reads
//!   theirs alone;
//! - `outbox/<id>.eml`: queued mail.
//!
//! Every failure to read or write traps: the engine then reports the
//! operation as failed.

// Only a wasm32-wasip2 build means anything; natively the crate is empty so
// that `cargo test --workspace` can pass over it.
#![cfg(target_arch = "wasm32")]

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "filesystem-provider",
    });
}

mod files;

use bindings::exports::reclaim::recovery::{directory, mailer, settings, storage};
use bindings::reclaim::recovery::types::Identity;
use files::{Data, Filed, StoredCredential};
use storage::{ConsumeOutcome, Credential, CredentialKind, CredentialState, CredentialStatus};

struct Provider;

impl directory::Guest for Provider {
    fn get_by_id(id: String) -> Option<Identity> {
        Data::open()
            .identities()
            .iter()
            .find(|i| i.id == id)
            .cloned()
    }

    fn get_by_pk(pk: i64) -> Option<Identity> {
        Data::open()
            .identities()
            .iter()
            .find(|i| i.pk == pk)
            .cloned()
    }

    /// In the one normal form of an address (`reclaim_address`); two
    /// identities at one address name nobody.
    fn find_by_email(email: String) -> Option<Identity> {
        let wanted = reclaim_address::normal_form(&email);
        let identities = Data::open().identities();
        let mut found = identities.iter().filter(|i| {
            reclaim_address::present(i.email.as_deref())
                .is_some_and(|e| reclaim_address::normal_form(e) == wanted)
        });
        let first = found.next().cloned();
        if found.next().is_some() { None } else { first }
    }
}

/// Where a filed credential stands at `now` (`reclaim_rules::standing`).
fn standing(filed: Filed, stored: &StoredCredential, now: u64) -> reclaim_rules::Standing {
    reclaim_rules::standing(
        filed == Filed::Used,
        filed == Filed::Revoked,
        stored.expires_at,
        now,
    )
}

fn state(standing: reclaim_rules::Standing) -> CredentialState {
    match standing {
        reclaim_rules::Standing::Active => CredentialState::Active,
        reclaim_rules::Standing::Used => CredentialState::Used,
        reclaim_rules::Standing::Revoked => CredentialState::Revoked,
        reclaim_rules::Standing::Expired => CredentialState::Expired,
    }
}

fn state_of(filed: Filed, stored: &StoredCredential, now: u64) -> CredentialState {
    state(standing(filed, stored, now))
}

impl storage::Guest for Provider {
    fn insert(credential: Credential) {
        let data = Data::open();
        if credential.kind == CredentialKind::Code {
            data.write(
                &format!("flows/{}", credential.flow_id),
                credential.key.as_bytes(),
            );
        }
        let (key, identity_id) = (credential.key.clone(), credential.identity_id.clone());
        let stored =
            serde_json::to_vec_pretty(&StoredCredential::from(credential)).expect("serialisable");
        data.insert_credential(&identity_id, &key, &stored);
    }

    fn consume(
        keys: Vec<String>,
        kind: CredentialKind,
        now: u64,
        max_failed_attempts: u32,
    ) -> ConsumeOutcome {
        let data = Data::open();
        for key in &keys {
            let Some((stored, filed)) = data.credential(key) else {
                continue;
            };
            if stored.kind() != kind {
                continue;
            }
            let standing = standing(filed, &stored, now);
            // Counting the attempts reads a directory: only for a live one.
            let failed = if standing == reclaim_rules::Standing::Active {
                data.attempts(&stored.flow_id)
            } else {
                0
            };
            if let Err(why) = reclaim_rules::consumable(standing, failed, max_failed_attempts) {
                return ConsumeOutcome::NotActive(state(why));
            }
            // The rename is the single-use guarantee: one process wins it.
            return if data.rename(
                &format!("credentials/{key}.json"),
                &format!("credentials/{key}.used"),
            ) {
                ConsumeOutcome::Consumed(stored.into_credential(key))
            } else {
                ConsumeOutcome::NotActive(CredentialState::Used)
            };
        }
        ConsumeOutcome::Unknown
    }

    fn find(keys: Vec<String>, kind: CredentialKind, now: u64) -> Option<CredentialStatus> {
        let data = Data::open();
        keys.iter().find_map(|key| {
            let (stored, filed) = data.credential(key).filter(|(s, _)| s.kind() == kind)?;
            Some(CredentialStatus {
                state: state_of(filed, &stored, now),
                failed_attempts: data.attempts(&stored.flow_id),
                credential: stored.into_credential(key),
            })
        })
    }

    fn code_for_flow(flow_id: String, now: u64) -> Option<CredentialStatus> {
        let data = Data::open();
        let key = data.read_string(&format!("flows/{flow_id}"))?;
        let (stored, filed) = data.credential(&key)?;
        Some(CredentialStatus {
            state: state_of(filed, &stored, now),
            failed_attempts: data.attempts(&flow_id),
            credential: stored.into_credential(&key),
        })
    }

    fn record_failed_attempt(flow_id: String, max_failed_attempts: u32, now: u64) -> u32 {
        let data = Data::open();
        let counted = data.count_failed_attempt(&flow_id, max_failed_attempts);
        let key = data.read_string(&format!("flows/{flow_id}"));
        // Only a wrong code the flow counted counts for the identity: one
        // that found every place taken was not judged.
        if counted.is_some()
            && let Some((stored, _)) = key.as_deref().and_then(|key| data.credential(key))
        {
            data.log_identity_failure(&stored.identity_id, now);
        }
        let count = counted.unwrap_or(max_failed_attempts);
        if count >= max_failed_attempts
            && let Some(key) = key
        {
            // Whoever else got here too finds it renamed already.
            data.rename(
                &format!("credentials/{key}.json"),
                &format!("credentials/{key}.revoked"),
            );
        }
        count
    }

    fn identity_failed_attempts(identity_id: String, since: u64) -> u32 {
        Data::open().identity_failures_since(&identity_id, since)
    }

    fn revoke_identity(identity_id: String, kind: Option<CredentialKind>, now: u64) -> u32 {
        let data = Data::open();
        let mut revoked = 0;
        for key in data.keys_of(&identity_id) {
            // Not written yet: its insert indexes before it writes.
            let Some((stored, filed)) = data.credential(&key) else {
                continue;
            };
            let live = stored.identity_id == identity_id
                && stored.expires_at > now
                && filed == Filed::Live;
            if !live {
                // Used, revoked or expired for good: nothing will ever
                // revoke it again, so its entry only slows the next call.
                data.unindex(&identity_id, &key);
                continue;
            }
            if kind.is_none_or(|k| k == stored.kind())
                && data.rename(
                    &format!("credentials/{key}.json"),
                    &format!("credentials/{key}.revoked"),
                )
            {
                data.unindex(&identity_id, &key);
                revoked += 1;
            }
        }
        revoked
    }
}

impl mailer::Guest for Provider {
    fn queue(message: mailer::Message) -> Result<(), String> {
        // The checks every host applies (`reclaim_wire::mail`): the courier
        // that reads this outbox must be able to send what it queues.
        let to_name = reclaim_wire::mail::check_headers(
            &message.to,
            message.to_name.as_deref(),
            &message.subject,
            message.sender.as_deref(),
        )
        .map_err(str::to_string)?;
        let message = mailer::Message { to_name, ..message };
        Data::open().queue_mail(&message);
        Ok(())
    }
}

impl settings::Guest for Provider {
    fn get() -> settings::Settings {
        Data::open().settings()
    }

    fn template(_name: String, _locale: String) -> Option<settings::MailTemplate> {
        None
    }
}

bindings::export!(Provider with_types_in bindings);
