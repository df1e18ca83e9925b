//! The storage contract's scenarios, run inside a host through its imports
//! (`wit/world.wit`): each step is what `wit/recovery.wit` promises of
//! `storage`, `mailer` and `directory`, checked against what the host
//! answers. The Rust host runs it over each of its backends, the Python
//! and Node.js packages over the SQL provider, and the wasmtime CLI over
//! the filesystem provider.

// Only a wasm32-wasip2 build means anything; natively the crate is empty.
#![cfg(target_arch = "wasm32")]

mod bindings {
    wit_bindgen::generate!({
        path: ["../../../wit", "wit"],
        world: "reclaim:storage-contract/guest",
        generate_all,
        additional_derives: [PartialEq],
    });
}

use bindings::reclaim::recovery::{directory, mailer, storage};
use storage::{ConsumeOutcome, Credential, CredentialKind, CredentialState};

/// The scenarios' "now": any time will do, as long as every host takes the
/// one it is given.
const NOW: u64 = 1_800_000_000_000_000_000;
const HOUR: u64 = 3_600_000_000_000;

type Step = Result<(), String>;

/// `Err` naming the step unless `holds`.
fn expect(holds: bool, step: &str) -> Step {
    if holds { Ok(()) } else { Err(step.to_string()) }
}

/// 64 hex digits of fresh randomness: a key or id no other scenario uses.
fn fresh() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A UUID-shaped fresh id.
fn fresh_uuid() -> String {
    let hex = fresh();
    format!(
        "{}-{}-4{}-8{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

fn credential(identity: &str, kind: CredentialKind, expires_at: u64) -> Credential {
    Credential {
        key: fresh(),
        kind,
        identity_id: identity.to_string(),
        flow_id: fresh_uuid(),
        issued_at: NOW,
        expires_at,
        return_to: Some("https://app.example.com/after".into()),
        address_key: Some(fresh()[..32].to_string()),
    }
}

fn stored(identity: &str, kind: CredentialKind) -> Credential {
    let c = credential(identity, kind, NOW + HOUR);
    storage::insert(&c);
    c
}

fn consume(c: &Credential, now: u64, max: u32) -> ConsumeOutcome {
    storage::consume(std::slice::from_ref(&c.key), c.kind, now, max)
}

fn state_of(c: &Credential, now: u64) -> Option<CredentialState> {
    storage::find(std::slice::from_ref(&c.key), c.kind, now).map(|s| s.state)
}

fn is_not_active(outcome: &ConsumeOutcome, state: CredentialState) -> bool {
    matches!(outcome, ConsumeOutcome::NotActive(s) if *s == state)
}

type Scenario = (&'static str, fn(&str) -> Step);

const SCENARIOS: &[Scenario] = &[
    ("single-use", single_use),
    ("unknown-key", unknown_key),
    ("kinds-apart", kinds_apart),
    ("expiry-boundary", expiry_boundary),
    ("rotated-keys", rotated_keys),
    ("find-changes-nothing", find_changes_nothing),
    (
        "wrong-codes-revoke-at-the-limit",
        wrong_codes_revoke_at_the_limit,
    ),
    (
        "out-of-attempts-counts-as-revoked",
        out_of_attempts_counts_as_revoked,
    ),
    ("identity-wrong-codes", identity_wrong_codes),
    ("revoke-by-kind", revoke_by_kind),
    (
        "revoke-spares-used-and-expired",
        revoke_spares_used_and_expired,
    ),
    ("directory-lookups", directory_lookups),
    (
        "mailer-refuses-header-injection",
        mailer_refuses_header_injection,
    ),
];

fn single_use(id: &str) -> Step {
    let c = stored(id, CredentialKind::Link);
    match consume(&c, NOW, 5) {
        ConsumeOutcome::Consumed(got) => {
            expect(got == c, "consume answers the credential as stored")?
        }
        _ => return Err("the first consume wins".into()),
    }
    expect(
        is_not_active(&consume(&c, NOW, 5), CredentialState::Used),
        "a second consume finds it used",
    )?;
    expect(
        state_of(&c, NOW) == Some(CredentialState::Used),
        "find says used",
    )
}

fn unknown_key(_: &str) -> Step {
    let keys = [fresh()];
    expect(
        matches!(
            storage::consume(&keys, CredentialKind::Link, NOW, 5),
            ConsumeOutcome::Unknown
        ),
        "an unknown key is unknown",
    )?;
    expect(
        storage::find(&keys, CredentialKind::Link, NOW).is_none(),
        "find finds nothing",
    )
}

fn kinds_apart(id: &str) -> Step {
    let c = stored(id, CredentialKind::Link);
    expect(
        matches!(
            storage::consume(std::slice::from_ref(&c.key), CredentialKind::Code, NOW, 5),
            ConsumeOutcome::Unknown
        ),
        "a link's key is no code",
    )?;
    expect(
        state_of(&c, NOW) == Some(CredentialState::Active),
        "and the link lives on",
    )
}

fn expiry_boundary(id: &str) -> Step {
    let c = credential(id, CredentialKind::Link, NOW + 10);
    storage::insert(&c);
    expect(
        state_of(&c, NOW + 9) == Some(CredentialState::Active),
        "active before expires-at",
    )?;
    expect(
        state_of(&c, NOW + 10) == Some(CredentialState::Expired),
        "expired at expires-at",
    )?;
    expect(
        is_not_active(&consume(&c, NOW + 10, 5), CredentialState::Expired),
        "consume at expires-at finds it expired",
    )
}

fn rotated_keys(id: &str) -> Step {
    let c = stored(id, CredentialKind::Link);
    let keys = [fresh(), c.key.clone()];
    expect(
        matches!(
            storage::consume(&keys, CredentialKind::Link, NOW, 5),
            ConsumeOutcome::Consumed(_)
        ),
        "any of the keys finds it",
    )
}

fn find_changes_nothing(id: &str) -> Step {
    let c = stored(id, CredentialKind::Link);
    expect(
        state_of(&c, NOW) == Some(CredentialState::Active),
        "find once",
    )?;
    expect(
        state_of(&c, NOW) == Some(CredentialState::Active),
        "find twice",
    )?;
    expect(
        matches!(consume(&c, NOW, 5), ConsumeOutcome::Consumed(_)),
        "then consume wins",
    )
}

fn wrong_codes_revoke_at_the_limit(id: &str) -> Step {
    let c = stored(id, CredentialKind::Code);
    for n in 1..=3 {
        expect(
            storage::record_failed_attempt(&c.flow_id, 3, NOW + u64::from(n)) == n,
            &format!("wrong code {n} is counted"),
        )?;
    }
    let status = storage::code_for_flow(&c.flow_id, NOW + 4).ok_or("the flow is there")?;
    expect(
        status.state == CredentialState::Revoked,
        "the third wrong code revokes it",
    )?;
    expect(status.failed_attempts == 3, "three wrong codes")?;
    expect(
        is_not_active(&consume(&c, NOW + 5, 3), CredentialState::Revoked),
        "the right code then finds it revoked",
    )
}

fn out_of_attempts_counts_as_revoked(id: &str) -> Step {
    let c = stored(id, CredentialKind::Code);
    storage::record_failed_attempt(&c.flow_id, 10, NOW + 1);
    storage::record_failed_attempt(&c.flow_id, 10, NOW + 2);
    expect(
        is_not_active(&consume(&c, NOW + 3, 2), CredentialState::Revoked),
        "a code with max-failed-attempts wrong codes is not consumed, and counts as revoked",
    )
}

fn identity_wrong_codes(id: &str) -> Step {
    let (early, late) = (
        stored(id, CredentialKind::Code),
        stored(id, CredentialKind::Code),
    );
    storage::record_failed_attempt(&early.flow_id, 5, NOW + 1);
    storage::record_failed_attempt(&early.flow_id, 5, NOW + 2);
    storage::record_failed_attempt(&late.flow_id, 5, NOW + 20);
    let counted = storage::identity_failed_attempts(id, NOW + 10);
    expect(
        (1..=3).contains(&counted),
        &format!("the late flow's wrong code counts, never fewer (got {counted})"),
    )?;
    expect(
        storage::identity_failed_attempts(id, NOW) == 3,
        "all three after the first",
    )?;
    expect(
        storage::identity_failed_attempts(&fresh_uuid(), NOW) == 0,
        "another identity has none",
    )
}

fn revoke_by_kind(id: &str) -> Step {
    let (a, b, code) = (
        stored(id, CredentialKind::Link),
        stored(id, CredentialKind::Link),
        stored(id, CredentialKind::Code),
    );
    expect(
        storage::revoke_identity(id, Some(CredentialKind::Link), NOW + 1) == 2,
        "both links",
    )?;
    expect(
        is_not_active(&consume(&a, NOW + 2, 5), CredentialState::Revoked),
        "a revoked link is refused",
    )?;
    expect(
        state_of(&b, NOW + 2) == Some(CredentialState::Revoked),
        "the other too",
    )?;
    expect(
        state_of(&code, NOW + 2) == Some(CredentialState::Active),
        "the code lives on",
    )?;
    expect(
        storage::revoke_identity(id, None, NOW + 3) == 1,
        "then the code",
    )?;
    expect(
        state_of(&code, NOW + 4) == Some(CredentialState::Revoked),
        "revoked",
    )?;
    expect(
        storage::revoke_identity(id, None, NOW + 5) == 0,
        "nothing is left",
    )
}

fn revoke_spares_used_and_expired(id: &str) -> Step {
    let used = stored(id, CredentialKind::Link);
    expect(
        matches!(consume(&used, NOW, 5), ConsumeOutcome::Consumed(_)),
        "one is used",
    )?;
    let expired = credential(id, CredentialKind::Link, NOW + 1);
    storage::insert(&expired);
    let live = stored(id, CredentialKind::Link);
    expect(
        storage::revoke_identity(id, None, NOW + 5) == 1,
        "only the live one is revoked",
    )?;
    expect(
        state_of(&used, NOW + 6) == Some(CredentialState::Used),
        "the used one stays used",
    )?;
    expect(
        state_of(&expired, NOW + 6) == Some(CredentialState::Expired),
        "the expired one stays expired",
    )?;
    expect(
        state_of(&live, NOW + 6) == Some(CredentialState::Revoked),
        "the live one is revoked",
    )
}

fn directory_lookups(id: &str) -> Step {
    let found = directory::get_by_id(id).ok_or("the identity is found by id")?;
    expect(found.id == id && found.active, "as it is")?;
    let email = found.email.clone().ok_or("it has an address")?;
    let by_email = directory::find_by_email(&email.to_uppercase())
        .ok_or("found by address in another case")?;
    expect(by_email.id == id, "the same identity by address")?;
    let by_pk = directory::get_by_pk(found.pk).ok_or("found by pk")?;
    expect(by_pk.id == id, "the same identity by pk")?;
    expect(
        directory::get_by_id(&fresh_uuid()).is_none(),
        "an unknown id is nobody",
    )
}

fn mailer_refuses_header_injection(id: &str) -> Step {
    let to = directory::get_by_id(id)
        .and_then(|i| i.email)
        .ok_or("an address")?;
    let message = |subject: &str, to_name: Option<&str>| mailer::Message {
        to: to.clone(),
        to_name: to_name.map(str::to_string),
        subject: subject.to_string(),
        text_body: "text".into(),
        html_body: "<p>html</p>".into(),
        template: "recovery-link".into(),
        flow_id: None,
        sender: None,
    };
    expect(
        mailer::queue(&message("Reset\r\nBcc: x@example.com", None)).is_err(),
        "a subject with a line break",
    )?;
    expect(
        mailer::queue(&message("Reset", Some("Ann\nBcc: x"))).is_err(),
        "a name with a line break",
    )?;
    expect(
        mailer::queue(&mailer::Message {
            to: "a@[127.0.0.1]".into(),
            ..message("Reset", None)
        })
        .is_err(),
        "an address literal",
    )?;
    expect(
        mailer::queue(&mailer::Message {
            sender: Some("Acme\r\nBcc: x@example.com <help@acme.example>".into()),
            ..message("Reset", None)
        })
        .is_err(),
        "a sender that injects a header",
    )?;
    expect(
        mailer::queue(&message("Reset", Some("Ann"))).is_ok(),
        "a plain message is queued",
    )?;
    expect(
        mailer::queue(&mailer::Message {
            sender: Some("Acme Support <help@acme.example>".into()),
            ..message("Reset", None)
        })
        .is_ok(),
        "a message from a sender of its own is queued",
    )
}

struct Guest;

impl bindings::Guest for Guest {
    fn scenarios() -> Vec<String> {
        SCENARIOS.iter().map(|(name, _)| name.to_string()).collect()
    }

    fn run(name: String, identity_id: String) -> Result<(), String> {
        let (_, scenario) = SCENARIOS
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| format!("no scenario {name}"))?;
        scenario(&identity_id).map_err(|step| format!("{name}: {step}"))
    }
}

bindings::export!(Guest with_types_in bindings);
