//! The backend contract: what every storage backend must do, written once
//! against `dyn Backend` and run on each (memory, SQLite, and PostgreSQL
//! on a real server; a new backend adds itself to `contract!` at the
//! bottom).

use std::sync::{Arc, Barrier};
use std::time::Duration;

use anyhow::Result;
use reclaim::backends::{self, Location};
use reclaim::events::Method;
use reclaim::mail::{Attempt, MailStatus, QueuedMail};
use reclaim::storage::events::{EventFilter, NewDelivery};
use reclaim::storage::{
    self, Backend, LiveSession, NewAssertion, NewEvent, NewRequest, NewSession, Quota, StoredFlow,
    Taken, UnitOfWork, transact,
};
use reclaim::wit::{ConsumeOutcome, Credential, CredentialKind, CredentialState};
use reclaim::{IdentityRef, NewIdentity};

const SECOND: u64 = 1_000_000_000;
const T0: u64 = 1_800_000_000 * SECOND;

/// A backend under test, and what keeps its data alive.
pub struct Fixture {
    backend: Arc<dyn Backend>,
    _dir: Option<tempfile::TempDir>,
}

fn memory() -> Fixture {
    Fixture {
        backend: backends::open(&Location::Memory).unwrap(),
        _dir: None,
    }
}

fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let backend = backends::open(&Location::Sqlite {
        path: dir.path().join("reclaim.db"),
        durability: backends::Durability::Normal,
    })
    .unwrap();
    Fixture {
        backend,
        _dir: Some(dir),
    }
}

fn postgres() -> Fixture {
    let url = crate::common::postgres::server().fresh_database();
    Fixture {
        backend: backends::open(&Location::Postgres {
            url,
            ca: None,
            directory: None,
        })
        .unwrap(),
        _dir: None,
    }
}

fn identity(backend: &dyn Backend, email: &str) -> reclaim::Identity {
    backend
        .create_identity(
            &NewIdentity {
                email: Some(email.into()),
                active: true,
                ..Default::default()
            },
            T0,
        )
        .unwrap()
}

fn credential(identity_id: &str, key: &str, kind: CredentialKind, expires_at: u64) -> Credential {
    Credential {
        key: key.into(),
        kind,
        identity_id: identity_id.into(),
        flow_id: format!("flow-{key}"),
        issued_at: T0,
        expires_at,
        return_to: Some("https://app.example/done".into()),
        address_key: None,
    }
}

/// Runs `f` in a unit of work of its own and keeps what it wrote.
fn write<T: Send + 'static>(
    backend: &dyn Backend,
    f: impl FnOnce(&mut dyn UnitOfWork) -> anyhow::Result<T> + Send + 'static,
) -> T {
    try_write(backend, f).unwrap()
}

/// [`write`], answering the unit's error rather than failing on it.
fn try_write<T: Send + 'static>(
    backend: &dyn Backend,
    f: impl FnOnce(&mut dyn UnitOfWork) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    transact(backend, move |mut work| {
        let out = f(&mut *work)?;
        work.commit()?;
        Ok(out)
    })
}

fn insert(backend: &dyn Backend, credentials: Vec<Credential>) {
    transact(backend, move |mut work| {
        for c in &credentials {
            work.insert(c)?;
        }
        work.commit()
    })
    .unwrap();
}

fn keys(key: &str) -> Vec<String> {
    vec!["no-such-key".into(), key.into()]
}

fn consume(backend: &dyn Backend, key: &str, kind: CredentialKind, now: u64) -> ConsumeOutcome {
    let keys = keys(key);
    write(backend, move |work| work.consume(&keys, kind, now, 5))
}

fn state(backend: &dyn Backend, key: &str, kind: CredentialKind, now: u64) -> CredentialState {
    let keys = keys(key);
    transact(backend, move |mut work| work.find(&keys, kind, now))
        .unwrap()
        .expect("the credential is stored")
        .state
}

fn mail(id: &str, queued_at: u64, flow_id: Option<&str>) -> QueuedMail {
    QueuedMail {
        id: id.into(),
        to: "ann@example.com".into(),
        to_name: None,
        subject: "Recover your account".into(),
        text_body: "https://id.example/recover?token=secret".into(),
        html_body: "<a href=\"https://id.example/recover?token=secret\">".into(),
        template: "recovery-link".into(),
        sender: None,
        queued_at,
        attempts: 0,
        flow_id: flow_id.map(Into::into),
        identity_id: None,
        external_id: None,
    }
}

fn enqueue(backend: &dyn Backend, mail: QueuedMail) {
    transact(backend, move |mut work| {
        work.enqueue(&mail)?;
        work.commit()
    })
    .unwrap();
}

pub fn a_credential_is_consumed_once_under_concurrent_consumers(f: Fixture) {
    let ann = identity(&*f.backend, "ann@example.com");
    insert(
        &*f.backend,
        vec![credential(
            &ann.id,
            "k",
            CredentialKind::Link,
            T0 + 60 * SECOND,
        )],
    );
    let start = Arc::new(Barrier::new(8));
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let (backend, start) = (f.backend.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                consume(&*backend, "k", CredentialKind::Link, T0 + SECOND)
            })
        })
        .collect();
    let outcomes: Vec<_> = racers.into_iter().map(|r| r.join().unwrap()).collect();
    let consumed = outcomes
        .iter()
        .filter(|o| matches!(o, ConsumeOutcome::Consumed(_)))
        .count();
    assert_eq!(consumed, 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| matches!(
        o,
        ConsumeOutcome::Consumed(_) | ConsumeOutcome::NotActive(CredentialState::Used)
    )));
    assert!(matches!(
        consume(&*f.backend, "k", CredentialKind::Code, T0),
        ConsumeOutcome::Unknown
    ));
}

pub fn expiry_is_exclusive_at_now_and_the_first_thing_that_happened_wins(f: Fixture) {
    let ann = identity(&*f.backend, "ann@example.com");
    let expires = T0 + 60 * SECOND;
    insert(
        &*f.backend,
        vec![
            credential(&ann.id, "a", CredentialKind::Link, expires),
            credential(&ann.id, "b", CredentialKind::Link, expires),
        ],
    );
    let b = &*f.backend;
    assert_eq!(
        state(b, "a", CredentialKind::Link, expires - 1),
        CredentialState::Active
    );
    assert_eq!(
        state(b, "a", CredentialKind::Link, expires),
        CredentialState::Expired
    );
    assert!(matches!(
        consume(b, "a", CredentialKind::Link, expires),
        ConsumeOutcome::NotActive(CredentialState::Expired)
    ));
    // Used, then revoked: still used. Revoked, then expired: still revoked.
    assert!(matches!(
        consume(b, "b", CredentialKind::Link, T0),
        ConsumeOutcome::Consumed(_)
    ));
    let id = ann.id.clone();
    let revoked = write(b, move |work| work.revoke_identity(&id, None, T0 + SECOND));
    assert_eq!(revoked, 1, "only the unused one is revoked");
    assert_eq!(
        state(b, "b", CredentialKind::Link, expires + 1),
        CredentialState::Used
    );
    assert_eq!(
        state(b, "a", CredentialKind::Link, expires + 1),
        CredentialState::Revoked
    );
}

pub fn revocation_ends_an_identitys_active_credentials_of_a_kind(f: Fixture) {
    let b = &*f.backend;
    let (ann, bob) = (
        identity(b, "ann@example.com"),
        identity(b, "bob@example.com"),
    );
    let later = T0 + 60 * SECOND;
    insert(
        b,
        vec![
            credential(&ann.id, "l1", CredentialKind::Link, later),
            credential(&ann.id, "l2", CredentialKind::Link, later),
            credential(&ann.id, "c1", CredentialKind::Code, later),
            credential(&ann.id, "old", CredentialKind::Link, T0),
            credential(&bob.id, "bob", CredentialKind::Link, later),
        ],
    );
    let revoke = |kind| {
        let id = ann.id.clone();
        write(b, move |work| work.revoke_identity(&id, kind, T0 + SECOND))
    };
    assert_eq!(
        revoke(Some(CredentialKind::Link)),
        2,
        "the expired one is not counted"
    );
    assert_eq!(
        state(b, "l1", CredentialKind::Link, T0),
        CredentialState::Revoked
    );
    assert_eq!(
        state(b, "c1", CredentialKind::Code, T0),
        CredentialState::Active
    );
    assert_eq!(revoke(None), 1);
    assert_eq!(revoke(None), 0);
    assert_eq!(
        state(b, "bob", CredentialKind::Link, T0),
        CredentialState::Active
    );
}

pub fn wrong_codes_count_and_the_limit_ends_the_flow(f: Fixture) {
    let b = &*f.backend;
    let ann = identity(b, "ann@example.com");
    insert(
        b,
        vec![credential(
            &ann.id,
            "c",
            CredentialKind::Code,
            T0 + 60 * SECOND,
        )],
    );
    let fail = || write(b, |work| work.record_failed_attempt("flow-c", 3, T0));
    assert_eq!(fail(), 1);
    assert_eq!(fail(), 2);
    let status = transact(b, |mut work| work.code_for_flow("flow-c", T0))
        .unwrap()
        .unwrap();
    assert_eq!(
        (status.state, status.failed_attempts),
        (CredentialState::Active, 2)
    );
    assert_eq!(fail(), 3);
    assert_eq!(
        state(b, "c", CredentialKind::Code, T0),
        CredentialState::Revoked
    );
    assert!(matches!(
        consume(b, "c", CredentialKind::Code, T0),
        ConsumeOutcome::NotActive(CredentialState::Revoked)
    ));
    let gone = transact(b, |mut work| work.record_failed_attempt("no-flow", 3, T0)).unwrap();
    assert_eq!(gone, 3, "a flow that is not there counts as spent");
}

pub fn an_uncommitted_unit_of_work_leaves_nothing(f: Fixture) {
    let b = &*f.backend;
    let ann = identity(b, "ann@example.com");
    let id = ann.id.clone();
    transact(b, move |mut work| {
        work.insert(&credential(&id, "k", CredentialKind::Link, T0 + SECOND))?;
        work.enqueue(&mail("m", T0, None))?;
        work.open_session(
            &NewSession {
                key: "s".into(),
                expires_at: T0 + SECOND,
            },
            &id,
            None,
            None,
        )?;
        Ok(()) // dropped without commit
    })
    .unwrap();
    let none = transact(b, |mut work| {
        work.find(&keys("k"), CredentialKind::Link, T0)
    })
    .unwrap();
    assert!(none.is_none());
    assert_eq!(b.status(T0).unwrap().queued, 0);
    assert!(!session_is_live(b, &ann.id, "s", T0));
}

fn session_is_live(b: &dyn Backend, id: &str, key: &str, now: u64) -> bool {
    live_session(b, id, key, now).is_some()
}

fn live_session(b: &dyn Backend, id: &str, key: &str, now: u64) -> Option<LiveSession> {
    let (id, key) = (id.to_string(), key.to_string());
    transact(b, move |mut work| work.live_session(&id, &key, now)).unwrap()
}

/// Completes a session as the new-password step does: kept only when it
/// completed.
fn complete_session(
    b: &dyn Backend,
    id: &str,
    key: &str,
    hash: &str,
    now: u64,
) -> Result<Option<reclaim::storage::Completed>> {
    let (id, key, hash) = (id.to_string(), key.to_string(), hash.to_string());
    transact(b, move |mut work| {
        let done = work.complete_session(&id, &key, &hash, now)?;
        if done.is_some() {
            work.commit()?;
        }
        Ok(done)
    })
}

pub fn identities_are_found_by_id_pk_and_address_in_any_case(f: Fixture) {
    let b = &*f.backend;
    let ann = identity(b, "Ann@Example.com");
    let bob = identity(b, "bob@example.com");
    assert_ne!(ann.pk, bob.pk);
    let id_of = |found: Option<reclaim::Identity>| found.map(|i| (i.id, i.pk));
    let by_id = b.identity(&IdentityRef::Id(ann.id.clone())).unwrap();
    assert_eq!(id_of(by_id), Some((ann.id.clone(), ann.pk)));
    let by_pk = b.identity(&IdentityRef::Pk(bob.pk)).unwrap();
    assert_eq!(id_of(by_pk), Some((bob.id.clone(), bob.pk)));
    assert!(b.identity(&IdentityRef::Pk(-1)).unwrap().is_none());
    let found = transact(b, |mut work| work.find_by_email("aNN@example.COM")).unwrap();
    assert_eq!(id_of(found), Some((ann.id.clone(), ann.pk)));
    let taken = b.create_identity(
        &NewIdentity {
            email: Some("ANN@example.com".into()),
            active: true,
            ..Default::default()
        },
        T0,
    );
    assert!(taken.unwrap_err().to_string().contains("already exists"));
    let invalid = b.create_identity(
        &NewIdentity {
            email: Some("not an address".into()),
            ..Default::default()
        },
        T0,
    );
    assert!(invalid.is_err());
    let listed: Vec<_> = b
        .list_identities()
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(listed, vec![ann.id, bob.id]);
}

pub fn every_spelling_of_one_mailbox_is_one_identity(f: Fixture) {
    let b = &*f.backend;
    let new = |email: &str| NewIdentity {
        email: Some(email.into()),
        active: true,
        ..Default::default()
    };
    let find = |email: &str| {
        let email = email.to_string();
        transact(b, move |mut work| work.find_by_email(&email))
            .unwrap()
            .map(|i| i.id)
    };
    // The Kelvin sign, a fullwidth letter, an IDN and its ASCII form, the
    // dotted capital I: each pair is one mailbox, on every backend alike.
    for (stored, spelling) in [
        ("u@kexample.com", "u@\u{212A}example.com"),
        ("v@\u{FF45}xample.com", "v@example.com"),
        ("w@bücher.example", "w@xn--bcher-kva.example"),
        ("X.Y@Example.COM", "x.y@example.com"),
    ] {
        let made = b.create_identity(&new(stored), T0).unwrap();
        assert_eq!(find(spelling), Some(made.id.clone()), "{spelling}");
        assert_eq!(find(stored), Some(made.id.clone()), "{stored}");
        let taken = b.create_identity(&new(spelling), T0);
        assert!(
            taken.is_err_and(|e| e.to_string().contains("already exists")),
            "{spelling} is {stored}'s mailbox"
        );
        let listed = b
            .list_identity_records(&reclaim::storage::IdentityFilter {
                email: Some(spelling.into()),
                after_pk: None,
                limit: 10,
            })
            .unwrap();
        assert_eq!(listed.len(), 1, "{spelling}");
        // What the identity has is kept as given.
        assert_eq!(listed[0].identity.email.as_deref(), Some(stored));
    }
    // Different mailboxes stay different.
    assert!(find("u@example.com").is_none());
    assert!(b.create_identity(&new("u.v@kexample.com"), T0).is_ok());
}

pub fn a_session_completes_once_with_a_new_password_that_ends_every_credential(f: Fixture) {
    let b = &*f.backend;
    let ann = identity(b, "ann@example.com");
    insert(
        b,
        vec![credential(
            &ann.id,
            "k",
            CredentialKind::Link,
            T0 + 60 * SECOND,
        )],
    );
    let id = ann.id.clone();
    let open = move |key: &str, expires_at| {
        let (id, key) = (id.clone(), key.to_string());
        transact(b, move |mut work| {
            let session = NewSession { key, expires_at };
            work.open_session(
                &session,
                &id,
                Some("https://app.example/done"),
                Some(&format!("address-of-{id}")),
            )?;
            work.commit()
        })
        .unwrap()
    };
    open("old", T0 + 10 * SECOND);
    open("new", T0 + 10 * SECOND);
    assert!(
        !session_is_live(b, &ann.id, "old", T0),
        "a newer session replaces it"
    );
    assert_eq!(
        live_session(b, &ann.id, "new", T0),
        Some(LiveSession {
            address_key: Some(format!("address-of-{}", ann.id))
        }),
        "a session remembers the address it was opened for"
    );
    assert!(
        !session_is_live(b, &ann.id, "new", T0 + 10 * SECOND),
        "expired at now"
    );
    assert_eq!(
        complete_session(b, &ann.id, "wrong", "hash", T0).unwrap(),
        None
    );
    let done = complete_session(b, &ann.id, "new", "$argon2id$hash", T0).unwrap();
    assert_eq!(
        done.unwrap().return_to.as_deref(),
        Some("https://app.example/done")
    );
    assert_eq!(
        b.password_hash(&ann.id).unwrap().as_deref(),
        Some("$argon2id$hash")
    );
    assert_eq!(
        state(b, "k", CredentialKind::Link, T0),
        CredentialState::Revoked
    );
    assert_eq!(
        complete_session(b, &ann.id, "new", "again", T0).unwrap(),
        None,
        "single use"
    );

    open("third", T0 + 10 * SECOND);
    let id = ann.id.clone();
    let ended = transact(b, move |mut work| {
        let n = work.end_sessions(&id, T0)?;
        work.commit()?;
        Ok(n)
    });
    assert_eq!(ended.unwrap(), 1);
    assert!(!session_is_live(b, &ann.id, "third", T0));
}

pub fn a_flow_is_replaced_only_at_the_version_it_was_read_and_purged_once_expired(f: Fixture) {
    let b = &*f.backend;
    let replace_flow = |flow: &StoredFlow| b.save_flows(Some(flow), &[], &[]);
    let id = "0b5e7a36-52b4-4a1e-9a57-0e7f3c1d2a90";
    let fresh = StoredFlow {
        id: id.into(),
        expires_at: T0 + 60 * SECOND,
        version: 0,
        body: r#"{"state":"choose_method"}"#.into(),
    };
    assert!(
        b.save_flows(None, std::slice::from_ref(&fresh), &[])
            .wait()
            .unwrap()
    );
    assert_eq!(b.flow(id).unwrap(), Some(fresh.clone()));
    assert_eq!(
        b.flow("a2b6c5b4-0000-4000-8000-000000000000").unwrap(),
        None
    );
    let sent = StoredFlow {
        body: r#"{"state":"sent_email"}"#.into(),
        expires_at: T0 + 120 * SECOND,
        ..fresh.clone()
    };
    assert!(replace_flow(&sent).wait().unwrap());
    let stored = b.flow(id).unwrap().unwrap();
    assert_eq!(
        (stored.version, stored.body.as_str()),
        (1, sent.body.as_str())
    );
    assert_eq!(stored.expires_at, T0 + 120 * SECOND);
    // A writer that read version 0 too lost the race: nothing of it is kept.
    let stale = StoredFlow {
        body: r#"{"state":"passed_challenge"}"#.into(),
        ..fresh.clone()
    };
    assert!(!replace_flow(&stale).wait().unwrap());
    assert_eq!(b.flow(id).unwrap().unwrap().body, sent.body);
    // Racing writers of one version: exactly one wins.
    let read = b.flow(id).unwrap().unwrap();
    let wins = std::thread::scope(|s| {
        let racers: Vec<_> = (0..8)
            .map(|i| {
                let mine = StoredFlow {
                    body: format!("{{\"racer\":{i}}}"),
                    ..read.clone()
                };
                s.spawn(move || replace_flow(&mine).wait().unwrap())
            })
            .collect();
        racers
            .into_iter()
            .filter_map(|r| r.join().unwrap().then_some(()))
            .count()
    });
    assert_eq!(wins, 1);
    assert!(
        !replace_flow(&StoredFlow {
            id: "gone".into(),
            ..fresh.clone()
        })
        .wait()
        .unwrap()
    );

    // A step written at once: the replace, a new flow and a record put
    // (overwritten the second time); a lost replace writes nothing.
    let now = b.flow(id).unwrap().unwrap();
    let named = |id: &str| StoredFlow {
        id: id.into(),
        ..fresh.clone()
    };
    let settings = named("5c3c4c8e-1b0f-4b8e-9a51-7e3f0d2c1a01");
    let record = named("1d2e3f40-5a6b-4c7d-8e9f-0a1b2c3d4e5f");
    let passed = StoredFlow {
        body: r#"{"state":"passed_challenge"}"#.into(),
        ..now.clone()
    };
    let saved = b.save_flows(
        Some(&passed),
        std::slice::from_ref(&settings),
        std::slice::from_ref(&record),
    );
    assert!(saved.wait().unwrap());
    assert_eq!(b.flow(id).unwrap().unwrap().body, passed.body);
    assert_eq!(b.flow(&settings.id).unwrap().unwrap().body, settings.body);
    let newer = StoredFlow {
        body: r#"{"newer":true}"#.into(),
        ..record.clone()
    };
    assert!(
        b.save_flows(None, &[], std::slice::from_ref(&newer))
            .wait()
            .unwrap()
    );
    assert_eq!(b.flow(&record.id).unwrap().unwrap().body, newer.body);
    let other = named("7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d");
    let stale = b.save_flows(Some(&passed), std::slice::from_ref(&other), &[]);
    assert!(!stale.wait().unwrap(), "a stale version");
    assert_eq!(
        b.flow(&other.id).unwrap(),
        None,
        "nothing of a lost step is written"
    );

    // In a unit of work: kept with the unit, gone with it.
    let in_unit = named("2b3c4d5e-6f70-4812-9a3b-4c5d6e7f8091");
    let discarded = in_unit.clone();
    let written = write(b, move |work| work.save_flow_step(None, &[discarded], &[]));
    assert!(written);
    assert!(
        b.flow(&in_unit.id).unwrap().is_some(),
        "committed with its unit"
    );
    let gone = named("3c4d5e6f-7081-4923-8b4c-5d6e7f809102");
    let dropped = gone.clone();
    let unit = transact(b, move |mut work| {
        assert!(work.save_flow_step(None, &[dropped], &[])?);
        Ok(()) // no commit: the unit's writes go with it
    });
    unit.unwrap();
    assert_eq!(b.flow(&gone.id).unwrap(), None, "undone with its unit");

    // The records above expire at T0 + 60 s, the replaced flow at T0 + 120 s.
    assert_eq!(
        b.purge_flows(T0 + 60 * SECOND).unwrap(),
        0,
        "not yet expired"
    );
    assert_eq!(b.purge_flows(T0 + 61 * SECOND).unwrap(), 3);
    assert_eq!(b.purge_flows(T0 + 121 * SECOND).unwrap(), 1);
    assert_eq!(b.flow(id).unwrap(), None);
}

const BOB_CODE_FLOW: &str = "6f1f4ad4-8a9c-4b47-9c55-2f0b0d0c9f11";

pub fn queued_requests_are_claimed_by_one_server_and_served_once_in_order(f: Fixture) {
    let b = &*f.backend;
    for email in ["ann@example.com", "bob@example.com", "cy@example.com"] {
        let code_flow = (email == "bob@example.com").then_some(BOB_CODE_FLOW);
        let request = NewRequest {
            email,
            return_to: Some("https://app.example/"),
            code_flow,
        };
        b.queue_request(&request, T0).wait().unwrap();
    }
    let lease = T0 + 60 * SECOND;
    let first = b.claim_requests(2, T0, lease).unwrap();
    assert_eq!(
        first.iter().map(|r| r.email.as_str()).collect::<Vec<_>>(),
        ["ann@example.com", "bob@example.com"]
    );
    assert_eq!(first[0].return_to.as_deref(), Some("https://app.example/"));
    assert_eq!(first[0].code_flow, None, "a link");
    assert_eq!(first[1].code_flow.as_deref(), Some(BOB_CODE_FLOW));
    let second = b.claim_requests(10, T0, lease).unwrap();
    assert_eq!(second.len(), 1, "the claimed ones are skipped");
    assert_eq!(second[0].email, "cy@example.com");
    assert!(b.claim_requests(10, T0 + SECOND, lease).unwrap().is_empty());
    let ann = first[0].id;
    let dequeue = || write(b, move |work| work.dequeue_request(ann));
    assert!(dequeue());
    assert!(!dequeue(), "served once");
    b.drop_request(second[0].id).unwrap();
    // Bob's server died holding him: once the lease runs out he is claimed again.
    let again = b.claim_requests(10, lease, lease + 60 * SECOND).unwrap();
    assert_eq!(
        again.iter().map(|r| r.id).collect::<Vec<_>>(),
        [first[1].id]
    );
}

pub fn mail_is_claimed_by_one_courier_at_a_time_under_a_lease(f: Fixture) {
    let b = &*f.backend;
    enqueue(b, mail("m1", T0, None));
    enqueue(b, mail("m2", T0 + 1, None));
    let lease = T0 + 30 * SECOND;
    let claimed = b.claim("c1", 10, T0, lease).unwrap();
    assert_eq!(
        claimed.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        ["m1", "m2"]
    );
    assert!(
        b.claim("c2", 10, T0, lease).unwrap().is_empty(),
        "claimed by c1"
    );
    assert_eq!(b.status(T0).unwrap().processing, 2);
    // c1 dies; its lease runs out and c2 takes over.
    let taken = b.claim("c2", 1, lease, lease + 30 * SECOND).unwrap();
    assert_eq!(taken[0].id, "m1");
    assert!(!b.renew("m1", "c1", lease, lease + SECOND).unwrap());
    assert!(
        !b.record_attempt("m1", "c1", lease, &Attempt::Sent, None)
            .unwrap()
    );
    assert!(b.renew("m1", "c2", lease, lease + 60 * SECOND).unwrap());
    assert!(
        b.record_attempt("m1", "c2", lease, &Attempt::Sent, None)
            .unwrap()
    );
    let status = b.status(lease).unwrap();
    assert_eq!((status.sent, status.processing), (1, 1));
    let sent = b.list(Some(MailStatus::Sent), 10).unwrap();
    assert_eq!((sent[0].id.as_str(), sent[0].attempts), ("m1", 1));
    assert!(sent[0].sent_at.is_some());
}

pub fn failed_mail_waits_for_its_retry_and_abandoned_mail_ends_its_credential(f: Fixture) {
    let b = &*f.backend;
    let ann = identity(b, "ann@example.com");
    insert(
        b,
        vec![credential(
            &ann.id,
            "k",
            CredentialKind::Link,
            T0 + 3600 * SECOND,
        )],
    );
    enqueue(b, mail("plain", T0, None));
    enqueue(b, mail("link", T0 + 1, Some("flow-k")));
    let lease = T0 + 30 * SECOND;
    assert_eq!(b.claim("c", 10, T0, lease).unwrap().len(), 2);
    let retry = Attempt::Retry {
        error: "421 busy".into(),
        retry_at: T0 + 60 * SECOND,
    };
    assert!(b.record_attempt("plain", "c", T0, &retry, None).unwrap());
    let abandon = Attempt::Abandon {
        error: "550 no such user".into(),
    };
    assert!(b.record_attempt("link", "c", T0, &abandon, None).unwrap());
    assert!(
        b.claim("c", 10, T0 + 59 * SECOND, lease)
            .unwrap()
            .is_empty(),
        "not due yet"
    );
    let again = b
        .claim("c", 10, T0 + 60 * SECOND, T0 + 90 * SECOND)
        .unwrap();
    assert_eq!((again[0].id.as_str(), again[0].attempts), ("plain", 1));
    assert_eq!(
        state(b, "k", CredentialKind::Link, T0),
        CredentialState::Revoked
    );
    assert!(
        !b.retry("link", T0).unwrap(),
        "its link is gone: it can't be sent again"
    );
    let abandoned = b.list(Some(MailStatus::Abandoned), 10).unwrap();
    assert_eq!(abandoned[0].last_error.as_deref(), Some("550 no such user"));
    assert!(b.record_attempt("plain", "c", T0, &abandon, None).unwrap());
    assert!(b.retry("plain", T0).unwrap());
    assert_eq!(b.status(T0).unwrap().queued, 1);
    assert_eq!(
        b.status(T0 + 5 * SECOND).unwrap().oldest_queued_age_seconds,
        Some(5)
    );
}

pub fn rate_limits_allow_a_burst_then_one_per_share_of_the_window(f: Fixture) {
    let b = &*f.backend;
    let quota = Quota {
        limit: 3,
        window: Duration::from_secs(30),
    };
    let admit = |keys: &[&str], now| {
        let keys: Vec<_> = keys.iter().map(|k| (k.to_string(), quota)).collect();
        b.admit(&keys, now).wait().unwrap()
    };
    for _ in 0..3 {
        assert_eq!(admit(&["a"], T0), Ok(()));
    }
    assert_eq!(admit(&["a"], T0), Err(Duration::from_secs(10)));
    assert_eq!(
        admit(&["a"], T0 + 10 * SECOND),
        Ok(()),
        "one more after a share"
    );
    assert!(admit(&["a"], T0 + 10 * SECOND).is_err());
    // A refused key stops the rest: "b" is not counted.
    assert!(admit(&["a", "b"], T0 + 10 * SECOND).is_err());
    for _ in 0..3 {
        assert_eq!(admit(&["b"], T0 + 10 * SECOND), Ok(()));
    }
    assert_eq!(b.forget_idle(T0 + 10 * SECOND).unwrap(), 2);
    assert_eq!(
        b.forget_idle(T0 + 40 * SECOND).unwrap(),
        0,
        "both have their allowance back"
    );
    assert_eq!(admit(&["a"], T0 + 40 * SECOND), Ok(()));
}

pub fn a_healthy_backend_answers_a_ping(f: Fixture) {
    f.backend.ping().unwrap();
}

pub fn identity_writes_keep_addresses_and_external_ids_unique_and_undo_with_their_unit(f: Fixture) {
    let b = &*f.backend;
    let new = |email: &str, external: Option<&str>| NewIdentity {
        email: Some(email.into()),
        active: true,
        external_id: external.map(Into::into),
        metadata_admin: Some(serde_json::json!({ "team": "blue" })),
        ..Default::default()
    };
    let id = uuid::Uuid::new_v4().to_string();
    let (ann, n) = (id.clone(), new("ann@example.com", Some("ext-1")));
    let created = write(b, move |work| work.insert_identity(&ann, &n, T0));
    assert_eq!(created.identity.id, id);
    assert_eq!(created.external_id.as_deref(), Some("ext-1"));
    assert_eq!(
        created.metadata_admin,
        Some(serde_json::json!({ "team": "blue" }))
    );
    for (email, external, taken) in [
        ("ANN@example.com", None, "email address"),
        ("bob@example.com", Some("ext-1"), "external id"),
    ] {
        let other = uuid::Uuid::new_v4().to_string();
        let n = new(email, external);
        let refused = try_write(b, move |work| work.insert_identity(&other, &n, T0)).unwrap_err();
        let conflict = refused
            .downcast_ref::<reclaim::storage::Conflict>()
            .unwrap_or_else(|| panic!("{refused:#}"));
        assert_eq!(conflict.0, taken);
    }
    // A replacement changes every field but id and pk, and its state's time
    // only when the state changes.
    let (ann, mut n) = (id.clone(), new("ann@new.example", None));
    n.active = false;
    n.second_factor = true;
    let replaced = write(b, move |work| work.replace_identity(&ann, &n, T0 + SECOND)).unwrap();
    assert_eq!(replaced.identity.pk, created.identity.pk);
    assert_eq!(replaced.identity.email.as_deref(), Some("ann@new.example"));
    assert!(!replaced.identity.active && replaced.second_factor);
    assert_eq!(replaced.external_id, None);
    assert_eq!(
        (replaced.created_at, replaced.updated_at),
        (T0, T0 + SECOND)
    );
    assert_eq!(replaced.state_changed_at, T0 + SECOND);
    let read = b
        .identity_record(&reclaim::storage::IdentityKey::Id(id.clone()))
        .unwrap()
        .unwrap();
    assert_eq!(read.identity.email.as_deref(), Some("ann@new.example"));
    // The old external id is free again.
    let (bob, n) = (
        uuid::Uuid::new_v4().to_string(),
        new("bob@example.com", Some("ext-1")),
    );
    write(b, move |work| work.insert_identity(&bob, &n, T0));
    let found = b
        .identity_record(&reclaim::storage::IdentityKey::ExternalId("ext-1".into()))
        .unwrap()
        .unwrap();
    assert_eq!(found.identity.email.as_deref(), Some("bob@example.com"));
    // Dropped uncommitted, a unit's identity writes are undone.
    let ann = id.clone();
    transact(b, move |mut work| {
        work.delete_identity(&ann)?;
        let n = NewIdentity {
            email: Some("carol@example.com".into()),
            ..Default::default()
        };
        work.insert_identity(&uuid::Uuid::new_v4().to_string(), &n, T0)?;
        Ok(())
    })
    .unwrap();
    assert!(b.identity(&IdentityRef::Id(id.clone())).unwrap().is_some());
    assert_eq!(b.list_identities().unwrap().len(), 2);
    let ann = id.clone();
    assert!(write(b, move |work| work.delete_identity(&ann)));
    let ann = id.clone();
    assert!(!write(b, move |work| work.delete_identity(&ann)));
    assert!(b.identity(&IdentityRef::Id(id)).unwrap().is_none());
}

pub fn identities_are_listed_a_page_at_a_time_and_by_address(f: Fixture) {
    let b = &*f.backend;
    let all: Vec<_> = (0..5)
        .map(|i| identity(b, &format!("user{i}@example.com")))
        .collect();
    let page = |after_pk, limit| {
        b.list_identity_records(&reclaim::storage::IdentityFilter {
            email: None,
            after_pk,
            limit,
        })
        .unwrap()
        .into_iter()
        .map(|r| r.identity.id)
        .collect::<Vec<_>>()
    };
    let first = page(None, 2);
    assert_eq!(first, vec![all[0].id.clone(), all[1].id.clone()]);
    assert_eq!(page(Some(all[1].pk), 10).len(), 3);
    let by_address = b
        .list_identity_records(&reclaim::storage::IdentityFilter {
            email: Some("USER3@example.com".into()),
            after_pk: None,
            limit: 10,
        })
        .unwrap();
    assert_eq!(by_address.len(), 1);
    assert_eq!(by_address[0].identity.id, all[3].id);
}

pub fn wrong_codes_count_per_identity_across_flows_within_the_window(f: Fixture) {
    let b = &*f.backend;
    let ann = identity(b, "ann@example.com");
    insert(
        b,
        vec![
            credential(&ann.id, "c1", CredentialKind::Code, T0 + 600 * SECOND),
            credential(&ann.id, "c2", CredentialKind::Code, T0 + 600 * SECOND),
        ],
    );
    let fail = |flow: &str, at: u64| {
        let flow = flow.to_string();
        write(b, move |work| work.record_failed_attempt(&flow, 5, at))
    };
    let count = |since: u64| {
        let id = ann.id.clone();
        write(b, move |work| work.identity_failed_attempts(&id, since))
    };
    fail("flow-c1", T0 + SECOND);
    fail("flow-c1", T0 + 2 * SECOND);
    fail("flow-c2", T0 + 3 * SECOND);
    assert_eq!(count(T0), 3, "across flows");
    // A flow whose latest wrong code is older than the window counts no more.
    assert_eq!(count(T0 + 2 * SECOND), 1);
    assert_eq!(
        count(T0 + 3 * SECOND),
        0,
        "the window is exclusive at its start"
    );
    let other = identity(b, "bob@example.com");
    let id = other.id.clone();
    assert_eq!(
        write(b, move |work| work.identity_failed_attempts(&id, 0)),
        0
    );
}

fn assertion(key: &str, identity_id: &str, expires_at: u64) -> NewAssertion {
    NewAssertion {
        key: key.into(),
        identity_id: identity_id.into(),
        method: Method::Code,
        flow_id: format!("flow-{key}"),
        redeemed_at: T0,
        expires_at,
        address_key: Some(format!("address-of-{identity_id}")),
    }
}

fn take(b: &dyn Backend, key: &str, now: u64) -> Taken {
    let keys = vec!["no-such-key".to_string(), key.to_string()];
    write(b, move |work| storage::assertions::take(work, &keys, now))
}

pub fn an_assertion_is_redeemed_once_under_concurrent_redeemers_then_used_or_expired(f: Fixture) {
    let b = &f.backend;
    write(&**b, |work| {
        work.open_assertion(&assertion("a", "ann", T0 + 300 * SECOND))?;
        work.open_assertion(&assertion("late", "ann", T0 + 300 * SECOND))
    });
    let barrier = Arc::new(Barrier::new(8));
    let winners: usize = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..8)
            .map(|_| {
                let (b, barrier) = (Arc::clone(b), Arc::clone(&barrier));
                scope.spawn(move || {
                    barrier.wait();
                    matches!(take(&*b, "a", T0 + SECOND), Taken::Redeemed(_))
                })
            })
            .collect();
        racers
            .into_iter()
            .map(|r| usize::from(r.join().unwrap()))
            .sum()
    });
    assert_eq!(winners, 1);
    assert_eq!(take(&**b, "a", T0 + 2 * SECOND), Taken::Used);
    assert_eq!(
        take(&**b, "late", T0 + 300 * SECOND),
        Taken::Expired,
        "expiry is exclusive"
    );
    assert_eq!(take(&**b, "nothing", T0), Taken::Unknown);
    match take(&**b, "late", T0) {
        Taken::Redeemed(row) => {
            assert_eq!(
                (row.identity_id.as_str(), row.method),
                ("ann", Method::Code)
            );
            assert_eq!((row.flow_id.as_str(), row.redeemed_at), ("flow-late", T0));
            assert_eq!(row.address_key.as_deref(), Some("address-of-ann"));
        }
        other => panic!("{other:?}"),
    }
    // An uncommitted unit's assertion is gone with it.
    let _ = transact(&**b, |mut work| {
        work.open_assertion(&assertion("dropped", "ann", T0 + 300 * SECOND))
    });
    assert_eq!(take(&**b, "dropped", T0), Taken::Unknown);
    assert_eq!(
        write(&**b, |work| work.purge_assertions(T0 + 301 * SECOND)),
        2
    );
}

pub fn ending_an_identitys_sessions_ends_its_unredeemed_assertions(f: Fixture) {
    let b = &*f.backend;
    write(b, |work| {
        work.open_assertion(&assertion("ann-1", "ann", T0 + 300 * SECOND))?;
        work.open_assertion(&assertion("ann-2", "ann", T0 + 300 * SECOND))?;
        work.open_assertion(&assertion("bob-1", "bob", T0 + 300 * SECOND))
    });
    assert!(matches!(take(b, "ann-1", T0), Taken::Redeemed(_)));
    write(b, |work| work.end_sessions("ann", T0 + SECOND));
    assert_eq!(
        take(b, "ann-1", T0 + 2 * SECOND),
        Taken::Used,
        "used stays used"
    );
    assert_eq!(take(b, "ann-2", T0 + 2 * SECOND), Taken::Expired);
    assert!(
        matches!(take(b, "bob-1", T0 + 2 * SECOND), Taken::Redeemed(_)),
        "another identity's assertion stands"
    );
    // The quiet form (what a redemption's revocation calls) ends them too.
    write(b, |work| {
        work.open_assertion(&assertion("ann-3", "ann", T0 + 300 * SECOND))
    });
    write(b, |work| work.end_sessions_quietly("ann", T0 + 3 * SECOND));
    assert_eq!(take(b, "ann-3", T0 + 4 * SECOND), Taken::Expired);
    // Undone with a unit that is not committed.
    write(b, |work| {
        work.open_assertion(&assertion("ann-4", "ann", T0 + 300 * SECOND))
    });
    let _ = transact(b, |mut work| work.end_sessions("ann", T0 + 5 * SECOND));
    assert!(matches!(
        take(b, "ann-4", T0 + 6 * SECOND),
        Taken::Redeemed(_)
    ));
}

fn event(id: &str, identity: &str, at: u64, endpoints: &[&str]) -> NewEvent {
    NewEvent {
        id: id.into(),
        kind: "recovery.link.created".into(),
        identity_id: Some(identity.into()),
        occurred_at: at,
        request_id: Some(format!("req-{id}")),
        body: format!("{{\"type\":\"recovery.link.created\",\"n\":\"{id}\"}}"),
        deliveries: endpoints
            .iter()
            .map(|e| NewDelivery {
                endpoint: (*e).into(),
                body: format!("body-{id}-{e}"),
            })
            .collect(),
    }
}

pub fn events_commit_with_their_unit_and_are_listed_by_identity_and_time(f: Fixture) {
    let b = &*f.backend;
    write(b, |work| {
        work.record_event(&event("e1", "ann", T0, &["https://a.test/"]))?;
        work.record_event(&event("e2", "bob", T0 + SECOND, &[]))?;
        work.record_event(&event("e3", "ann", T0 + 2 * SECOND, &[]))
    });
    let _ = transact(b, |mut work| {
        work.record_event(&event("rolled-back", "ann", T0, &["https://a.test/"]))
    });
    let all = b
        .list_events(&EventFilter {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        all.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["e1", "e2", "e3"]
    );
    assert_eq!(all[0].request_id.as_deref(), Some("req-e1"));
    assert!(all[0].body.contains("\"n\":\"e1\""));
    let anns = b
        .list_events(&EventFilter {
            identity_id: Some("ann".into()),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        anns.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["e1", "e3"]
    );
    let page = b
        .list_events(&EventFilter {
            after_seq: Some(all[0].seq),
            since: Some(T0 + 2 * SECOND),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        page.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["e3"]
    );
    // One delivery, of the committed event only.
    let claimed = b.claim_deliveries("c", 10, T0, T0 + 30 * SECOND).unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].body, "body-e1-https://a.test/");
}

pub fn deliveries_are_claimed_under_a_lease_retried_when_due_and_stop_at_a_disabled_endpoint(
    f: Fixture,
) {
    let b = &*f.backend;
    let (a, z) = ("https://a.test/", "https://z.test/");
    write(b, move |work| {
        work.record_event(&event("e1", "ann", T0, &[a, z]))?;
        work.record_event(&event("e2", "ann", T0 + 1, &[a]))
    });
    let lease = T0 + 30 * SECOND;
    assert_eq!(b.claim_deliveries("c1", 10, T0, lease).unwrap().len(), 3);
    assert!(
        b.claim_deliveries("c2", 10, T0, lease).unwrap().is_empty(),
        "claimed by c1"
    );
    // c1 dies; c2 takes over one once the lease runs out.
    let taken = b
        .claim_deliveries("c2", 1, lease, lease + 30 * SECOND)
        .unwrap();
    assert_eq!(taken.len(), 1);
    let (id, endpoint) = (taken[0].event_id.clone(), taken[0].endpoint.clone());
    assert!(
        !b.renew_delivery(&id, &endpoint, "c1", lease, lease + SECOND)
            .unwrap()
    );
    assert!(
        !b.record_delivery(&id, &endpoint, "c1", lease, &Attempt::Sent)
            .unwrap()
    );
    assert!(
        b.renew_delivery(&id, &endpoint, "c2", lease, lease + 60 * SECOND)
            .unwrap()
    );
    let retry = Attempt::Retry {
        error: "503 Service Unavailable".into(),
        retry_at: lease + 5 * SECOND,
    };
    assert!(
        b.record_delivery(&id, &endpoint, "c2", lease, &retry)
            .unwrap()
    );
    let others = b
        .claim_deliveries("c2", 10, lease + 4 * SECOND, lease + 60 * SECOND)
        .unwrap();
    assert_eq!(
        others.len(),
        2,
        "c1's other claims ran out; the retry is not due yet"
    );
    assert!(
        others
            .iter()
            .all(|d| !(d.event_id == id && d.endpoint == endpoint))
    );
    let later = lease + 90 * SECOND;
    let again = b
        .claim_deliveries("c3", 10, later, later + 30 * SECOND)
        .unwrap();
    let retried = again
        .iter()
        .find(|d| d.event_id == id && d.endpoint == endpoint)
        .unwrap();
    assert_eq!(retried.attempts, 1);
    assert!(!retried.body.is_empty(), "kept for the retry");
    for d in &again {
        assert!(
            b.record_delivery(&d.event_id, &d.endpoint, "c3", later, &Attempt::Sent)
                .unwrap()
        );
    }
    let status = b.webhook_status().unwrap();
    let delivered: u64 = status.iter().map(|s| s.delivered).sum();
    assert_eq!(delivered, 3);
    // A 410 stops the endpoint's deliveries until it is enabled again.
    write(b, move |work| {
        work.record_event(&event("e3", "ann", later, &[a, z]))
    });
    b.disable_endpoint(a, later, "the endpoint answered 410 Gone")
        .unwrap();
    let due = b
        .claim_deliveries("c4", 10, later, later + 30 * SECOND)
        .unwrap();
    assert_eq!(
        due.iter().map(|d| d.endpoint.as_str()).collect::<Vec<_>>(),
        [z]
    );
    let status = b.webhook_status().unwrap();
    let disabled = status.iter().find(|s| s.url == a).unwrap();
    assert!(disabled.disabled_at.is_some());
    assert_eq!(disabled.queued, 1);
    assert!(b.enable_endpoint(a).unwrap());
    assert!(!b.enable_endpoint(a).unwrap());
    let resumed = b
        .claim_deliveries("c4", 10, later, later + 30 * SECOND)
        .unwrap();
    assert_eq!(
        resumed
            .iter()
            .map(|d| d.endpoint.as_str())
            .collect::<Vec<_>>(),
        [a]
    );
    // Retention forgets old events whose deliveries are finished.
    let abandon = Attempt::Abandon {
        error: "gone".into(),
    };
    assert!(b.record_delivery("e3", a, "c4", later, &abandon).unwrap());
    assert!(b.purge_events(later + SECOND).unwrap() >= 2);
    let left = b
        .list_events(&EventFilter {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        left.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["e3"],
        "e3's delivery to z is pending"
    );
}

/// The guest's store: its WASI and Reclaim's imports.
struct Guest {
    wasi: wasmtime_wasi::WasiCtx,
    table: wasmtime::component::ResourceTable,
    imports: reclaim::runtime::Imports,
}

impl wasmtime_wasi::WasiView for Guest {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        wasmtime_wasi::WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The storage contract as the test guest states it (the one every host
/// runs: Python and Node.js over the SQL provider, the wasmtime CLI over
/// the filesystem provider), each scenario in a unit of work of its own
/// through this host's imports, for an identity of its own.
fn the_storage_guest_finds_the_contract_kept_through_the_imports(f: Fixture) {
    use wasmtime::component::{Component, Linker};
    let engine = wasmtime::Engine::default();
    let component = Component::new(&engine, crate::common::storage_guest()).unwrap();
    let mut linker = Linker::<Guest>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
    reclaim::runtime::add_to_linker(&mut linker, |guest| &mut guest.imports).unwrap();
    let linker = Arc::new(linker);
    let settings = Arc::new(reclaim::Settings::new(
        "https://id.example.test",
        Vec::new(),
    ));
    let store = || {
        wasmtime::Store::new(
            &engine,
            Guest {
                wasi: wasmtime_wasi::WasiCtxBuilder::new().build(),
                table: Default::default(),
                imports: Default::default(),
            },
        )
    };
    let mut scratch = store();
    let instance = linker.instantiate(&mut scratch, &component).unwrap();
    let list = instance
        .get_typed_func::<(), (Vec<String>,)>(&mut scratch, "scenarios")
        .unwrap();
    let (scenarios,) = list.call(&mut scratch, ()).unwrap();
    assert!(scenarios.len() >= 13, "{scenarios:?}");
    for (n, scenario) in scenarios.into_iter().enumerate() {
        let id = identity(&*f.backend, &format!("guest{n}@example.com")).id;
        let (linker, component, settings) = (
            Arc::clone(&linker),
            component.clone(),
            Arc::clone(&settings),
        );
        let mut store = store();
        let verdict = transact(&*f.backend, move |work| {
            let data = store.data_mut();
            data.imports
                .begin(work, settings, Arc::new(reclaim::SystemClock));
            let instance = linker.instantiate(&mut store, &component)?;
            let run = instance
                .get_typed_func::<(&str, &str), (Result<(), String>,)>(&mut store, "run")?;
            let verdict = run.call(&mut store, (&scenario, &id));
            let work = store.data_mut().imports.end().expect("the unit of work");
            let (verdict,) = verdict?;
            work.commit()?;
            Ok(verdict)
        })
        .unwrap();
        verdict.unwrap_or_else(|step| panic!("the contract was broken: {step}"));
    }
}

macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(#[test] fn $test() { super::$test(super::memory()) })*
        }
        mod sqlite {
            $(#[test] fn $test() { super::$test(super::sqlite()) })*
        }
        mod postgres {
            $(#[test] fn $test() { super::$test(super::postgres()) })*
        }
    };
}

contract!(
    a_credential_is_consumed_once_under_concurrent_consumers,
    expiry_is_exclusive_at_now_and_the_first_thing_that_happened_wins,
    revocation_ends_an_identitys_active_credentials_of_a_kind,
    wrong_codes_count_and_the_limit_ends_the_flow,
    an_uncommitted_unit_of_work_leaves_nothing,
    identities_are_found_by_id_pk_and_address_in_any_case,
    every_spelling_of_one_mailbox_is_one_identity,
    a_session_completes_once_with_a_new_password_that_ends_every_credential,
    queued_requests_are_claimed_by_one_server_and_served_once_in_order,
    a_flow_is_replaced_only_at_the_version_it_was_read_and_purged_once_expired,
    mail_is_claimed_by_one_courier_at_a_time_under_a_lease,
    failed_mail_waits_for_its_retry_and_abandoned_mail_ends_its_credential,
    rate_limits_allow_a_burst_then_one_per_share_of_the_window,
    a_healthy_backend_answers_a_ping,
    identity_writes_keep_addresses_and_external_ids_unique_and_undo_with_their_unit,
    identities_are_listed_a_page_at_a_time_and_by_address,
    wrong_codes_count_per_identity_across_flows_within_the_window,
    an_assertion_is_redeemed_once_under_concurrent_redeemers_then_used_or_expired,
    ending_an_identitys_sessions_ends_its_unredeemed_assertions,
    events_commit_with_their_unit_and_are_listed_by_identity_and_time,
    deliveries_are_claimed_under_a_lease_retried_when_due_and_stop_at_a_disabled_endpoint,
    the_storage_guest_finds_the_contract_kept_through_the_imports,
);

/// PostgreSQL fills the normal forms of rows from before (or from a host
/// that writes none) a chunk per statement: more than one chunk here.
#[test]
fn postgresql_gives_rows_from_before_their_normal_form_and_a_twin_none() {
    let url = crate::common::postgres::server().fresh_database();
    let location = Location::Postgres {
        url: url.clone(),
        ca: None,
        directory: None,
    };
    drop(backends::open(&location).unwrap());
    let mut db = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
    db.batch_execute(
        "INSERT INTO identities (id, email, active, created_at)
         SELECT 'seed-' || n, 'user' || n || '@bench.test', true, 0
         FROM generate_series(1, 12000) AS n;
         INSERT INTO identities (id, email, active, created_at) VALUES
             ('first', 'V@Example.com', true, 0),
             ('twin', 'v@\u{FF45}xample.com', true, 0),
             ('idn', 'w@bücher.example', true, 0);",
    )
    .unwrap();
    let b = backends::open(&location).unwrap();
    let find = |email: &'static str| {
        transact(&*b, move |mut work| work.find_by_email(email))
            .unwrap()
            .map(|i| i.id)
    };
    assert_eq!(find("v@example.com").as_deref(), Some("first"));
    assert_eq!(find("v@\u{FF45}xample.com").as_deref(), Some("first"));
    assert_eq!(find("w@xn--bcher-kva.example").as_deref(), Some("idn"));
    assert_eq!(find("USER11999@bench.test").as_deref(), Some("seed-11999"));
    let unfilled: Vec<String> = db
        .query("SELECT id FROM identities WHERE email_normal IS NULL", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(unfilled, ["twin"]);
}
