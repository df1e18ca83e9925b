//! Warm instances (`Limits::reuse_instances`): each operation still sees its
//! own engine's clock, settings and storage, and an instance that trapped is
//! never used again.

use std::sync::Arc;
use std::time::Duration;

use reclaim::{
    Clock, EmailOptions, Error, ErrorKind, Limits, ManualClock, Reclaim, Runtime, Templates,
};
use reclaim_tests::{SECRET_A, SECRET_B, TestEnv, by_id, token_of};

fn warm_engine() -> Runtime {
    let limits = Limits {
        reuse_instances: 2,
        max_memory_bytes: 4 << 20,
        ..Limits::default()
    };
    Runtime::new(reclaim::runtime::EMBEDDED_COMPONENT, limits).unwrap()
}

#[test]
fn a_warm_instance_serves_each_engine_with_its_own_clock_and_secrets() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    let engine = warm_engine();
    let now = Reclaim::new(engine.clone(), env.storage.clone(), env.settings(SECRET_A))
        .with_clock(Arc::new(env.clock.clone()));
    let later_clock =
        ManualClock::new(Duration::from_nanos(env.clock.now_nanos()) + Duration::from_secs(7200));
    let later = Reclaim::new(engine.clone(), env.storage.clone(), env.settings(SECRET_A))
        .with_clock(Arc::new(later_clock));
    let other_secret = Reclaim::new(engine, env.storage.clone(), env.settings(SECRET_B))
        .with_clock(Arc::new(env.clock.clone()));

    let first = now
        .create_link(&by_id(&ann), Some("1h"), None)
        .wait()
        .unwrap();
    match later.redeem_link(&token_of(&first.link)).wait() {
        Err(Error::Refused(e)) => assert_eq!(
            e.kind,
            ErrorKind::CredentialExpired,
            "the later clock was used"
        ),
        other => panic!("{other:?}"),
    }
    match other_secret.redeem_link(&token_of(&first.link)).wait() {
        Err(Error::Refused(e)) => assert_eq!(
            e.kind,
            ErrorKind::CredentialUnknown,
            "the other secret was used"
        ),
        other => panic!("{other:?}"),
    }
    assert!(now.redeem_link(&token_of(&first.link)).wait().is_ok());
}

#[test]
fn an_instance_that_trapped_is_not_reused() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    let engine = warm_engine();
    let fine = Reclaim::new(engine.clone(), env.storage.clone(), env.settings(SECRET_A))
        .with_clock(Arc::new(env.clock.clone()));
    // Warm two instances.
    fine.create_link(&by_id(&ann), None, None).wait().unwrap();
    fine.create_link(&by_id(&ann), None, None).wait().unwrap();
    let before = env.snapshot();

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("recovery-link.subject"), "Recover").unwrap();
    std::fs::write(
        dir.path().join("recovery-link.txt"),
        "{% for i in range(20000) %}{% for j in range(10) %}{{ link }}{% endfor %}{% endfor %}",
    )
    .unwrap();
    std::fs::write(dir.path().join("recovery-link.html"), "<p>{{ link }}</p>").unwrap();
    let mut settings = env.settings(SECRET_A);
    settings.templates = Templates::load(dir.path()).unwrap();
    let bloated =
        Reclaim::new(engine, env.storage.clone(), settings).with_clock(Arc::new(env.clock.clone()));
    for _ in 0..3 {
        assert!(matches!(
            bloated
                .send_recovery_email(&by_id(&ann), &EmailOptions::default())
                .wait(),
            Err(Error::Failed(_))
        ));
    }
    assert_eq!(env.snapshot(), before, "the traps wrote nothing");
    for _ in 0..4 {
        let link = fine.create_link(&by_id(&ann), None, None).wait().unwrap();
        assert!(
            fine.redeem_link(&token_of(&link.link)).wait().is_ok(),
            "operations after the traps work"
        );
    }
}
