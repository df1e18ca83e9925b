//! Single use under a race: many redeemers, each with its own connection to
//! the same SQLite file, and exactly one wins.

use std::sync::{Arc, Barrier};

use reclaim::backends::SqliteStorage;
use reclaim::{Error, ErrorKind};
use reclaim_tests::{TestEnv, by_id, token_of};

const REDEEMERS: usize = 32;

#[test]
fn of_32_concurrent_redeemers_of_one_link_exactly_one_wins() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    let link = env
        .reclaim()
        .create_link(&by_id(&ann), None, None)
        .wait()
        .unwrap();
    let token = token_of(&link.link);
    let barrier = Arc::new(Barrier::new(REDEEMERS));
    let outcomes: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..REDEEMERS)
            .map(|_| {
                // A storage of its own per redeemer: separate connections, as
                // separate processes would have.
                let storage = Arc::new(SqliteStorage::open(env.db_path()).unwrap());
                let reclaim = env.reclaim_on(storage, env.settings(reclaim_tests::SECRET_A));
                let (barrier, token) = (Arc::clone(&barrier), token.clone());
                scope.spawn(move || {
                    barrier.wait();
                    reclaim.redeem_link(&token).wait()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(winners, 1, "{outcomes:?}");
    for outcome in outcomes.iter().filter(|o| o.is_err()) {
        match outcome {
            Err(Error::Refused(e)) => assert_eq!(e.kind, ErrorKind::CredentialUsed),
            other => panic!("losers are told the link was used: {other:?}"),
        }
    }
}

#[test]
fn of_32_concurrent_wrong_codes_no_more_than_the_limit_count() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    let code = env
        .reclaim()
        .create_code(&by_id(&ann), None, None)
        .wait()
        .unwrap();
    let wrong = format!("{:06}", (code.code.parse::<u32>().unwrap() + 1) % 1_000_000);
    let reclaim = env.reclaim();
    std::thread::scope(|scope| {
        for _ in 0..REDEEMERS {
            let (reclaim, flow, wrong) = (reclaim.clone(), code.flow_id.clone(), wrong.clone());
            scope.spawn(move || reclaim.redeem_code(&flow, &wrong).wait());
        }
    });
    assert!(matches!(
        reclaim.redeem_code(&code.flow_id, &code.code).wait(),
        Err(Error::Refused(e)) if e.kind == ErrorKind::TooManyAttempts
    ));
    assert_eq!(
        env.count("SELECT count(*) FROM credentials WHERE revoked_at IS NOT NULL"),
        1
    );
    // Attempts are counted under the write lock: none slips past the limit.
    assert_eq!(env.count("SELECT failed_attempts FROM credentials"), 5);
}
