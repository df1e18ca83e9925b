//! The recovery logic compiled natively, over in-memory imports: what each
//! operation costs without the sandbox. The host's `operations` bench runs
//! the same operations through wasmtime on in-memory storage
//! (`wasm/memory/*`); the ratio of the two is the cost of the sandbox.
//!
//! `cargo bench -p reclaim-component --bench native`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use reclaim_component::bindings::reclaim::recovery::mailer::Message;
use reclaim_component::bindings::reclaim::recovery::settings::{MailTemplate, Settings};
use reclaim_component::bindings::reclaim::recovery::storage::{
    ConsumeOutcome, Credential, CredentialKind, CredentialState, CredentialStatus,
};
use reclaim_component::bindings::reclaim::recovery::types::{Identity, IdentityRef};
use reclaim_component::capabilities::Capabilities;
use reclaim_component::recovery::Recovery;

struct Row {
    credential: Credential,
    used: bool,
    revoked: bool,
    failed: u32,
    last_failed_at: u64,
}

/// In-process imports, as plain as the host's in-memory storage.
#[derive(Default)]
struct InMemory {
    identities: Vec<Identity>,
    rows: RefCell<HashMap<String, Row>>,
    flows: RefCell<HashMap<String, String>>,
    /// Active credentials by identity, pruned as they stop being active.
    by_identity: RefCell<HashMap<String, Vec<String>>>,
    outbox: RefCell<Vec<Message>>,
}

impl InMemory {
    /// The rule every host applies (`reclaim_rules`).
    fn state(row: &Row, now: u64) -> CredentialState {
        Self::state_of(reclaim_rules::standing(
            row.used,
            row.revoked,
            row.credential.expires_at,
            now,
        ))
    }

    fn state_of(standing: reclaim_rules::Standing) -> CredentialState {
        match standing {
            reclaim_rules::Standing::Active => CredentialState::Active,
            reclaim_rules::Standing::Used => CredentialState::Used,
            reclaim_rules::Standing::Revoked => CredentialState::Revoked,
            reclaim_rules::Standing::Expired => CredentialState::Expired,
        }
    }
}

impl Capabilities for InMemory {
    fn identity(&self, by: &IdentityRef) -> Option<Identity> {
        self.identities
            .iter()
            .find(|i| match by {
                IdentityRef::Id(id) => i.id == *id,
                IdentityRef::Pk(pk) => i.pk == *pk,
            })
            .cloned()
    }
    fn identity_by_email(&self, email: &str) -> Option<Identity> {
        self.identities
            .iter()
            .find(|i| i.email.as_deref() == Some(email))
            .cloned()
    }
    fn insert(&self, credential: &Credential) {
        self.flows
            .borrow_mut()
            .insert(credential.flow_id.clone(), credential.key.clone());
        self.rows.borrow_mut().insert(
            credential.key.clone(),
            Row {
                credential: credential.clone(),
                used: false,
                revoked: false,
                failed: 0,
                last_failed_at: 0,
            },
        );
    }
    fn consume(
        &self,
        keys: &[String],
        kind: CredentialKind,
        now: u64,
        max_failed: u32,
    ) -> ConsumeOutcome {
        let mut rows = self.rows.borrow_mut();
        let Some(key) = keys.iter().find(|k| rows.contains_key(*k)) else {
            return ConsumeOutcome::Unknown;
        };
        let row = rows.get_mut(key).expect("found above");
        if row.credential.kind != kind {
            return ConsumeOutcome::Unknown;
        }
        let standing =
            reclaim_rules::standing(row.used, row.revoked, row.credential.expires_at, now);
        match reclaim_rules::consumable(standing, row.failed, max_failed) {
            Ok(()) => {
                row.used = true;
                ConsumeOutcome::Consumed(row.credential.clone())
            }
            Err(why) => ConsumeOutcome::NotActive(Self::state_of(why)),
        }
    }
    fn find(&self, keys: &[String], kind: CredentialKind, now: u64) -> Option<CredentialStatus> {
        let rows = self.rows.borrow();
        keys.iter()
            .filter_map(|key| rows.get(key))
            .find(|row| row.credential.kind == kind)
            .map(|row| CredentialStatus {
                credential: row.credential.clone(),
                state: Self::state(row, now),
                failed_attempts: row.failed,
            })
    }

    fn code_for_flow(&self, flow_id: &str, now: u64) -> Option<CredentialStatus> {
        let key = self.flows.borrow().get(flow_id).cloned()?;
        let rows = self.rows.borrow();
        let row = rows.get(&key)?;
        Some(CredentialStatus {
            credential: row.credential.clone(),
            state: Self::state(row, now),
            failed_attempts: row.failed,
        })
    }
    fn record_failed_attempt(&self, flow_id: &str, max_failed: u32, now: u64) -> u32 {
        let key = self.flows.borrow().get(flow_id).cloned();
        let mut rows = self.rows.borrow_mut();
        match key.and_then(|k| rows.get_mut(&k)) {
            Some(row) => {
                row.failed += 1;
                row.last_failed_at = now;
                row.revoked |= row.failed >= max_failed;
                row.failed
            }
            None => max_failed,
        }
    }
    fn identity_failed_attempts(&self, identity_id: &str, since: u64) -> u32 {
        self.rows
            .borrow()
            .values()
            .filter(|row| row.credential.identity_id == identity_id && row.last_failed_at > since)
            .map(|row| row.failed)
            .sum()
    }
    fn revoke_identity(&self, identity_id: &str, kind: Option<CredentialKind>, now: u64) -> u32 {
        let mut rows = self.rows.borrow_mut();
        let mut index = self.by_identity.borrow_mut();
        let keys = index.entry(identity_id.to_string()).or_default();
        let mut revoked = 0;
        keys.retain(|key| {
            let row = rows.get_mut(key).expect("indexed rows exist");
            if Self::state(row, now) != CredentialState::Active {
                return false;
            }
            if kind.is_none_or(|k| k == row.credential.kind) {
                row.revoked = true;
                revoked += 1;
                return false;
            }
            true
        });
        revoked
    }
    fn queue(&self, message: &Message) -> Result<(), String> {
        self.outbox.borrow_mut().push(message.clone());
        Ok(())
    }
    fn settings(&self) -> Settings {
        // The component's defaults, as in the host's in-memory benchmark.
        Settings {
            public_url: "https://id.example.test".into(),
            secrets: vec![b"benchmark-secret-0123456789abcdef0123456789".to_vec()],
            default_lifespan_ns: None,
            max_lifespan_ns: None,
            revoke_older_links: None,
            max_code_attempts: None,
            max_code_attempts_per_identity: None,
            code_attempt_window_ns: None,
            notify_unknown_recipients: None,
        }
    }
    fn mail_template(&self, _name: &str, _locale: &str) -> Option<MailTemplate> {
        None
    }
    fn now(&self) -> u64 {
        u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos(),
        )
        .unwrap()
    }
    fn fill_random(&self, buf: &mut [u8]) {
        getrandom::fill(buf).unwrap()
    }
}

fn native(c: &mut Criterion) {
    let caps = InMemory {
        identities: vec![Identity {
            id: "9b2c72de-a449-4444-a852-24a7583cf696".into(),
            pk: 1,
            email: Some("ann@example.com".into()),
            display_name: Some("Ann".into()),
            locale: None,
            active: true,
        }],
        ..Default::default()
    };
    let who = IdentityRef::Id("9b2c72de-a449-4444-a852-24a7583cf696".into());
    let mut g = c.benchmark_group("native/memory");
    g.bench_function("create_link", |b| {
        b.iter(|| {
            black_box(
                Recovery::new(&caps)
                    .unwrap()
                    .create_link(&who, None, None)
                    .unwrap(),
            )
        })
    });
    g.bench_function("create_code", |b| {
        b.iter(|| {
            black_box(
                Recovery::new(&caps)
                    .unwrap()
                    .create_code(&who, None, None)
                    .unwrap(),
            )
        })
    });
    g.bench_function("redeem_link", |b| {
        b.iter_batched(
            || {
                let link = Recovery::new(&caps)
                    .unwrap()
                    .create_link(&who, None, None)
                    .unwrap()
                    .link;
                link.split("token=").nth(1).unwrap().to_string()
            },
            |token| black_box(Recovery::new(&caps).unwrap().redeem_link(&token).unwrap()),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = native
}
criterion_main!(benches);
