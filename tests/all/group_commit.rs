//! Group commit in the SQLite backend: units of work queued behind one
//! another share one transaction, each keeps or undoes only its own writes,
//! and no caller hears back before the batch is on disk.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use reclaim::Storage;
use reclaim::backends::SqliteStorage;
use reclaim::storage::{OnDurable, UnitOfWork, transact};
use reclaim::wit::{Credential, CredentialKind};

fn credential(n: u64) -> Credential {
    Credential {
        key: format!("{n:064x}"),
        kind: CredentialKind::Code,
        identity_id: "identity".into(),
        flow_id: flow(n),
        issued_at: 0,
        expires_at: u64::MAX / 2,
        return_to: None,
        address_key: None,
    }
}

fn flow(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

/// Which of `flows` a fresh connection to the file finds: what was
/// committed, not what one connection sees of its own writes.
fn stored(path: &std::path::Path, flows: &[u64]) -> Vec<u64> {
    let conn = rusqlite::Connection::open(path).unwrap();
    flows
        .iter()
        .copied()
        .filter(|&n| {
            conn.query_row(
                "SELECT count(*) FROM credentials WHERE flow_id = ?",
                [flow(n)],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
                == 1
        })
        .collect()
}

/// A new database file and its storage (the directory lives as long as
/// the first element).
fn database() -> (tempfile::TempDir, PathBuf, SqliteStorage) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reclaim.db");
    let storage = SqliteStorage::open(&path).unwrap();
    (dir, path, storage)
}

type Log = Arc<Mutex<Vec<String>>>;

/// A job that inserts credential `n`, then keeps or drops its unit, logs
/// when it ran and when it was settled, and reports the settlement.
fn job(
    n: u64,
    keep: bool,
    log: &Log,
    settled: &Sender<(u64, Result<()>)>,
    before: Option<Receiver<()>>,
) -> reclaim::storage::Job {
    let (log, settled) = (Arc::clone(log), settled.clone());
    Box::new(move |work: Result<Box<dyn UnitOfWork>>| -> OnDurable {
        if let Some(gate) = before {
            gate.recv().unwrap();
        }
        let mut work = work.unwrap();
        work.insert(&credential(n)).unwrap();
        if keep {
            work.commit().unwrap();
        } else {
            drop(work);
        }
        log.lock().unwrap().push(format!("ran {n}"));
        Box::new(move |durable| {
            log.lock().unwrap().push(format!("settled {n}"));
            settled.send((n, durable)).unwrap();
        })
    })
}

#[test]
fn units_queued_behind_one_commit_with_it_and_a_dropped_one_undoes_only_its_own_writes() {
    let (_dir, path, storage) = database();
    let log = Log::default();
    let (settled, outcomes) = channel();
    let (open_gate, gate) = channel();
    // The first job holds the writer until the others are queued behind it.
    storage.submit(job(1, true, &log, &settled, Some(gate)));
    storage.submit(job(2, false, &log, &settled, None));
    storage.submit(job(3, true, &log, &settled, None));
    storage.submit(job(4, true, &log, &settled, None));
    open_gate.send(()).unwrap();

    let mut results: Vec<(u64, bool)> = (0..4)
        .map(|_| {
            let (n, durable) = outcomes.recv().unwrap();
            (n, durable.is_ok())
        })
        .collect();
    results.sort_unstable();
    assert_eq!(results, [(1, true), (2, true), (3, true), (4, true)]);
    assert_eq!(
        log.lock().unwrap()[..4],
        ["ran 1", "ran 2", "ran 3", "ran 4"],
        "all four ran before any was settled: one transaction"
    );
    assert_eq!(stored(&path, &[1, 2, 3, 4]), [1, 3, 4]);
}

#[test]
fn a_caller_hears_back_only_once_its_writes_are_committed() {
    let (_dir, path, storage) = database();
    let (seen, seen_by_settle) = channel();
    let check_path = path.clone();
    storage.submit(Box::new(
        move |work: Result<Box<dyn UnitOfWork>>| -> OnDurable {
            let mut work = work.unwrap();
            work.insert(&credential(7)).unwrap();
            work.commit().unwrap();
            Box::new(move |durable| {
                durable.unwrap();
                seen.send(stored(&check_path, &[7])).unwrap();
            })
        },
    ));
    assert_eq!(seen_by_settle.recv().unwrap(), [7]);
}

#[test]
fn a_unit_kept_past_its_job_is_refused_and_undone() {
    let (_dir, path, storage) = database();
    let (escape, escaped) = channel();
    let (settled, outcome) = channel();
    storage.submit(Box::new(
        move |work: Result<Box<dyn UnitOfWork>>| -> OnDurable {
            let mut work = work.unwrap();
            work.insert(&credential(5)).unwrap();
            escape.send(work).unwrap();
            Box::new(move |durable| settled.send(durable.is_ok()).unwrap())
        },
    ));
    assert!(outcome.recv().unwrap());
    let mut work = escaped.recv().unwrap();
    let refused = work.insert(&credential(6)).unwrap_err();
    assert!(refused.to_string().contains("ended"), "{refused:#}");
    assert!(work.commit().is_err());
    assert_eq!(stored(&path, &[5, 6]), Vec::<u64>::new());
}

#[test]
fn a_panicking_unit_leaves_its_batchmates_and_the_writer_working() {
    let (_dir, path, storage) = database();
    let log = Log::default();
    let (settled, outcomes) = channel();
    let (open_gate, gate) = channel();
    storage.submit(job(1, true, &log, &settled, Some(gate)));
    storage.submit(Box::new(|work: Result<Box<dyn UnitOfWork>>| -> OnDurable {
        work.unwrap().insert(&credential(2)).unwrap();
        panic!("a bug in a unit of work");
    }));
    storage.submit(job(3, true, &log, &settled, None));
    open_gate.send(()).unwrap();
    let mut settled_flows: Vec<u64> = (0..2).map(|_| outcomes.recv().unwrap().0).collect();
    settled_flows.sort_unstable();
    assert_eq!(settled_flows, [1, 3]);
    assert_eq!(stored(&path, &[1, 2, 3]), [1, 3]);

    // The writer still takes work.
    transact(&storage, |mut work| {
        work.insert(&credential(4))?;
        work.commit()
    })
    .unwrap();
    assert_eq!(stored(&path, &[4]), [4]);
}

#[test]
fn the_log_is_copied_back_and_started_over_under_steady_writes() {
    let (_dir, path, storage) = database();
    // One commit each: without checkpoints the log would pass 100 MiB.
    for n in 0..12_000 {
        transact(&storage, move |mut work| {
            work.insert(&credential(n))?;
            work.commit()
        })
        .unwrap();
    }
    let log = std::fs::metadata(path.with_extension("db-wal"))
        .unwrap()
        .len();
    assert!(log < 40 << 20, "the log grew to {log} bytes");
    assert_eq!(stored(&path, &[0, 11_999]), [0, 11_999]);
}
