//! Expiry is judged against the clock the host gives the component through
//! WASI: frozen, then advanced past the lifespan.

use std::time::Duration;

use reclaim::{Clock, Error, ErrorKind};
use reclaim_tests::{TestEnv, by_id, token_of};

#[test]
fn a_link_works_until_its_lifespan_ends_by_the_hosts_clock() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    let reclaim = env.reclaim();
    let before = reclaim
        .create_link(&by_id(&ann), Some("10m"), None)
        .wait()
        .unwrap();
    assert_eq!(before.expires_at, env.clock.now_nanos() + 600_000_000_000);

    let mut settings = env.settings(reclaim_tests::SECRET_A);
    settings.revoke_older_links = Some(false);
    let reclaim = env.reclaim_with(settings);
    let early = reclaim
        .create_link(&by_id(&ann), Some("10m"), None)
        .wait()
        .unwrap();
    let late = reclaim
        .create_link(&by_id(&ann), Some("10m"), None)
        .wait()
        .unwrap();

    env.clock.advance(Duration::from_secs(599));
    assert!(
        reclaim.redeem_link(&token_of(&early.link)).wait().is_ok(),
        "one second before expiry"
    );

    env.clock.advance(Duration::from_secs(1));
    match reclaim.redeem_link(&token_of(&late.link)).wait() {
        Err(Error::Refused(e)) => assert_eq!((e.kind, e.code), (ErrorKind::CredentialRevoked, 410)),
        other => panic!("redeeming one link revokes the others: {other:?}"),
    }
    match reclaim.redeem_link(&token_of(&before.link)).wait() {
        Err(Error::Refused(e)) => assert!(matches!(
            e.kind,
            ErrorKind::CredentialExpired | ErrorKind::CredentialRevoked
        )),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_expired_link_says_it_expired() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    let reclaim = env.reclaim();
    let link = reclaim
        .create_link(&by_id(&ann), Some("1h"), None)
        .wait()
        .unwrap();
    env.clock.advance(Duration::from_secs(3600));
    match reclaim.redeem_link(&token_of(&link.link)).wait() {
        Err(Error::Refused(e)) => {
            assert_eq!((e.kind, e.code), (ErrorKind::CredentialExpired, 410));
            assert!(e.message.contains("expired"));
        }
        other => panic!("{other:?}"),
    }
    env.clock.set(Duration::from_secs(1_800_000_000));
    assert!(
        reclaim.redeem_link(&token_of(&link.link)).wait().is_ok(),
        "the clock, not the wall, decides"
    );
}

#[test]
fn an_expired_code_says_it_expired() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    let reclaim = env.reclaim();
    let code = reclaim
        .create_code(&by_id(&ann), Some("90s"), None)
        .wait()
        .unwrap();
    env.clock.advance(Duration::from_secs(91));
    match reclaim.redeem_code(&code.flow_id, &code.code).wait() {
        Err(Error::Refused(e)) => assert_eq!(e.kind, ErrorKind::CredentialExpired),
        other => panic!("{other:?}"),
    }
}
