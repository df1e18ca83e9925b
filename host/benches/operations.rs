//! In-process costs of the recovery engine, through the wasmtime host:
//! instantiation, each operation on in-memory and on SQLite storage, the
//! SQLite commit alone, and how cost grows with outstanding tokens.
//!
//! `cargo bench -p reclaim --bench operations` (release). Under `cargo test
//! --benches` each benchmark runs once, as a smoke test.
//! `RECLAIM_BENCH_SCALES` (comma-separated, default `1000,100000,1000000`)
//! sets the outstanding-token counts of the scaling group.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use reclaim::backends::SqliteStorage;
use reclaim::backends::{Durability, MemoryStorage};
use reclaim::directory::NewIdentity;
use reclaim::settings::parse_secrets;
use reclaim::storage::{Identities, transact};
use reclaim::wit::{Credential, CredentialKind};
use reclaim::{IdentityRef, Limits, Reclaim, Runtime, Settings};

const SECRET: &str = "benchmark-secret-0123456789abcdef0123456789";

fn settings() -> Settings {
    Settings::new("https://id.example.test", parse_secrets(SECRET).unwrap())
}

fn ann() -> NewIdentity {
    NewIdentity {
        email: Some("ann@example.com".into()),
        display_name: Some("Ann".into()),
        active: true,
        ..Default::default()
    }
}

fn token(link: &str) -> String {
    link.split("token=").nth(1).unwrap().to_string()
}

/// The three operations on one storage, under `group`.
fn operations(c: &mut Criterion, group: &str, reclaim: &Reclaim, who: &IdentityRef) {
    let mut g = c.benchmark_group(group);
    g.bench_function("create_link", |b| {
        b.iter(|| black_box(reclaim.create_link(who, None, None).wait().unwrap()))
    });
    g.bench_function("create_code", |b| {
        b.iter(|| black_box(reclaim.create_code(who, None, None).wait().unwrap()))
    });
    g.bench_function("redeem_link", |b| {
        b.iter_batched(
            || token(&reclaim.create_link(who, None, None).wait().unwrap().link),
            |token| black_box(reclaim.redeem_link(&token).wait().unwrap()),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn instantiation(c: &mut Criterion) {
    let engine = Runtime::embedded().unwrap();
    c.bench_function("instantiate/pooling+pre", |b| {
        b.iter(|| engine.warm_up().unwrap())
    });
}

fn on_memory(c: &mut Criterion) {
    let storage = MemoryStorage::new();
    let who = IdentityRef::Id(storage.create_identity(&ann(), 0).unwrap().id);
    let reclaim = Reclaim::new(Runtime::embedded().unwrap(), Arc::new(storage), settings());
    operations(c, "wasm/memory", &reclaim, &who);
}

/// The same with warm instances (`Limits::reuse_instances`).
fn on_memory_warm(c: &mut Criterion) {
    let storage = MemoryStorage::new();
    let who = IdentityRef::Id(storage.create_identity(&ann(), 0).unwrap().id);
    let limits = Limits {
        reuse_instances: 4,
        ..Limits::default()
    };
    let engine = Runtime::new(reclaim::runtime::EMBEDDED_COMPONENT, limits).unwrap();
    let reclaim = Reclaim::new(engine, Arc::new(storage), settings());
    operations(c, "wasm-warm/memory", &reclaim, &who);
}

fn on_sqlite(c: &mut Criterion) {
    for (name, durability) in [
        ("wasm/sqlite-normal", Durability::Normal),
        ("wasm/sqlite-full", Durability::Full),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let storage =
            Arc::new(SqliteStorage::open_with(dir.path().join("bench.db"), durability).unwrap());
        let who = IdentityRef::Id(storage.create_identity(&ann(), 0).unwrap().id);
        let reclaim = Reclaim::new(Runtime::embedded().unwrap(), storage, settings());
        operations(c, name, &reclaim, &who);
    }
}

fn credential(i: u64, identity: &str) -> Credential {
    Credential {
        key: format!("{i:064x}"),
        kind: CredentialKind::Link,
        identity_id: identity.to_string(),
        flow_id: format!("00000000-0000-4000-8000-{i:012x}"),
        issued_at: 0,
        expires_at: u64::MAX / 2,
        return_to: None,
        address_key: None,
    }
}

fn commit_path(c: &mut Criterion) {
    let mut g = c.benchmark_group("sqlite-commit");
    for (name, durability) in [("normal", Durability::Normal), ("full", Durability::Full)] {
        let dir = tempfile::tempdir().unwrap();
        let storage = SqliteStorage::open_with(dir.path().join("bench.db"), durability).unwrap();
        let mut i = 0u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                let credential = credential(i, "bench");
                transact(&storage, move |mut work| {
                    work.insert(&credential)?;
                    work.commit()
                })
                .unwrap();
            })
        });
    }
    g.finish();
}

fn scaling(c: &mut Criterion) {
    let scales: Vec<u64> = std::env::var("RECLAIM_BENCH_SCALES")
        .unwrap_or_else(|_| "1000,100000,1000000".into())
        .split(',')
        .map(|n| n.trim().parse().expect("scales are numbers"))
        .collect();
    let mut g = c.benchmark_group("scaling/sqlite-normal");
    for n in scales {
        let dir = tempfile::tempdir().unwrap();
        let storage = Arc::new(
            SqliteStorage::open_with(dir.path().join("bench.db"), Durability::Normal).unwrap(),
        );
        // Outstanding tokens of other identities, written in one transaction.
        transact(&*storage, move |mut work| {
            for i in 0..n {
                work.insert(&credential(i, &format!("other-{}", i % 10_000)))?;
            }
            work.commit()
        })
        .unwrap();
        let who = IdentityRef::Id(storage.create_identity(&ann(), 0).unwrap().id);
        let reclaim = Reclaim::new(Runtime::embedded().unwrap(), storage, settings());
        g.bench_function(format!("create+redeem/{n}"), |b| {
            b.iter(|| {
                let link = reclaim.create_link(&who, None, None).wait().unwrap();
                black_box(reclaim.redeem_link(&token(&link.link)).wait().unwrap())
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = instantiation, on_memory, on_memory_warm, on_sqlite, commit_path, scaling
}
criterion_main!(benches);
