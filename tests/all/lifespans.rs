//! `expires_in` follows Kratos' grammar exactly, with a maximum.

use reclaim::{Clock, EmailOptions, Error, ErrorKind};
use reclaim_tests::{SECRET_A, TestEnv, by_id};

const ACCEPTED_FORMAT: &str = "^[0-9]+(ns|us|ms|s|m|h)$";

#[test]
fn every_lifespan_outside_the_grammar_is_refused_with_the_format() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    let reclaim = env.reclaim();
    for bad in [
        "1d", "1h30m", "-1h", "0s", " 1h", "", "1H", "1.5h", "h", "10",
    ] {
        for result in [
            reclaim
                .create_link(&by_id(&ann), Some(bad), None)
                .wait()
                .map(|_| ()),
            reclaim
                .create_code(&by_id(&ann), Some(bad), None)
                .wait()
                .map(|_| ()),
            reclaim
                .send_recovery_email(
                    &by_id(&ann),
                    &EmailOptions {
                        expires_in: Some(bad),
                        ..Default::default()
                    },
                )
                .wait()
                .map(|_| ()),
        ] {
            match result {
                Err(Error::Refused(e)) => {
                    assert_eq!(
                        (e.kind, e.code, e.status.as_str()),
                        (ErrorKind::InvalidArgument, 400, "Bad Request"),
                        "{bad:?}"
                    );
                    if bad == "0s" {
                        assert!(e.message.contains("greater than zero"), "{}", e.message);
                    } else {
                        assert!(
                            e.message.contains(ACCEPTED_FORMAT),
                            "{bad:?}: {}",
                            e.message
                        );
                    }
                }
                other => panic!("{bad:?} was accepted: {other:?}"),
            }
        }
    }
    assert_eq!(env.count("SELECT count(*) FROM credentials"), 0);
    assert_eq!(env.count("SELECT count(*) FROM outbox"), 0);
}

#[test]
fn lifespans_over_the_maximum_are_refused() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    let mut settings = env.settings(SECRET_A);
    settings.max_lifespan = Some(std::time::Duration::from_secs(2 * 3600));
    let reclaim = env.reclaim_with(settings);
    assert!(
        reclaim
            .create_link(&by_id(&ann), Some("120m"), None)
            .wait()
            .is_ok()
    );
    match reclaim.create_link(&by_id(&ann), Some("121m"), None).wait() {
        Err(Error::Refused(e)) => {
            assert_eq!(e.kind, ErrorKind::InvalidArgument);
            assert!(
                e.message.contains("maximum lifespan of 2h"),
                "{}",
                e.message
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        reclaim
            .create_link(&by_id(&ann), Some(&format!("{}h", u64::MAX)), None)
            .wait()
            .is_err()
    );
}

#[test]
fn every_unit_of_the_grammar_is_accepted() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    let reclaim = env.reclaim();
    let now = env.clock.now_nanos();
    for (text, nanos) in [
        ("900000000000ns", 900_000_000_000u64),
        ("900000000us", 900_000_000_000),
        ("900000ms", 900_000_000_000),
        ("900s", 900_000_000_000),
        ("15m", 900_000_000_000),
        ("1h", 3_600_000_000_000),
    ] {
        let link = reclaim
            .create_link(&by_id(&ann), Some(text), None)
            .wait()
            .unwrap();
        assert_eq!(link.expires_at - now, nanos, "{text}");
    }
}
