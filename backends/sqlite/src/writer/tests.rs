use super::load::LONE_STREAK;
use super::*;
use crate::SqliteStorage;
use crate::directory::NewIdentity;
use crate::storage::{Backend, Identities};

#[test]
fn a_panic_on_the_writer_outside_a_unit_leaves_it_writing() {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open(dir.path().join("reclaim.db")).unwrap();
    storage
        .create_identity(&active("ann@example.com"), 0)
        .unwrap();
    storage.writer.send(Task::Alone(Box::new(|_| {
        panic!("injected into the writer")
    })));
    storage.ping().expect("the writer still answers");
    storage
        .create_identity(&active("bob@example.com"), 0)
        .unwrap();
    assert_eq!(storage.list_identities().unwrap().len(), 2);
}

fn active(email: &str) -> NewIdentity {
    NewIdentity {
        email: Some(email.into()),
        active: true,
        ..Default::default()
    }
}

/// Where each of `n` units, submitted one after another, ran.
fn threads_of_units(storage: &SqliteStorage, n: u32) -> Vec<ThreadId> {
    (0..n)
        .map(|_| {
            storage
                .with_writer(|_| Ok(std::thread::current().id()))
                .unwrap()
        })
        .collect()
}

#[test]
fn a_caller_alone_for_a_streak_runs_its_units_on_its_own_thread() {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open(dir.path().join("reclaim.db")).unwrap();
    let ran = threads_of_units(&storage, LONE_STREAK + 2);
    let (writer, here) = (storage.writer.thread_id, std::thread::current().id());
    // Until the streak is long enough, the writer thread runs them.
    assert!(ran[..LONE_STREAK as usize - 1].iter().all(|t| *t == writer));
    assert!(ran[LONE_STREAK as usize..].iter().all(|t| *t == here));
    storage
        .create_identity(&active("ann@example.com"), 0)
        .unwrap();
    assert_eq!(
        storage.list_identities().unwrap().len(),
        1,
        "its writes are committed"
    );
}

#[test]
fn a_unit_run_by_a_lone_caller_may_not_start_another() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(SqliteStorage::open(dir.path().join("reclaim.db")).unwrap());
    threads_of_units(&storage, LONE_STREAK);
    let inner = Arc::clone(&storage);
    let nested = storage
        .with_writer(move |_| {
            assert_eq!(
                RUNNING_BATCH_OF.get(),
                inner.writer.id,
                "runs as a lone caller"
            );
            Ok(inner.with_writer(|_| Ok(())).map_err(|e| e.to_string()))
        })
        .unwrap();
    let refused = nested.expect_err("a nested unit is refused, not waited for");
    assert!(refused.contains("may not start another"), "{refused}");
    storage.ping().expect("the writer goes on");
}

#[test]
fn units_from_many_threads_are_all_committed() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(SqliteStorage::open(dir.path().join("reclaim.db")).unwrap());
    threads_of_units(&storage, LONE_STREAK);
    let writers: Vec<_> = (0..8)
        .map(|t| {
            let storage = Arc::clone(&storage);
            std::thread::spawn(move || {
                for i in 0..50 {
                    let email = format!("u{t}-{i}@example.com");
                    storage.create_identity(&active(&email), 0).unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    assert_eq!(storage.list_identities().unwrap().len(), 400);
}
