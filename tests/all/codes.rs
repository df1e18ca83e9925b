//! Recovery codes: six digits bound to a flow, single use, and a flow that
//! dies after the configured number of wrong codes.

use reclaim::{Error, ErrorKind, RecoveryError};
use reclaim_tests::{PUBLIC_URL, SECRET_A, TestEnv, by_id};

fn refusal<T: std::fmt::Debug>(result: Result<T, Error>) -> RecoveryError {
    match result {
        Err(Error::Refused(e)) => e,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A six-digit code that differs from `code`.
fn wrong(code: &str) -> String {
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 1) % 1_000_000)
}

#[test]
fn a_code_is_six_digits_and_its_link_carries_only_the_flow() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    let code = env
        .reclaim()
        .create_code(&by_id(&ann), None, None)
        .wait()
        .unwrap();
    assert!(code.code.len() == 6 && code.code.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(
        code.link,
        format!("{PUBLIC_URL}/self-service/recovery?flow={}", code.flow_id)
    );
    assert!(!code.link.contains(&code.code));
}

#[test]
fn a_code_redeems_once_for_its_own_flow() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    let reclaim = env.reclaim();
    let code = reclaim
        .create_code(&by_id(&ann), None, None)
        .wait()
        .unwrap();
    assert_eq!(
        reclaim
            .redeem_code(&code.flow_id, &code.code)
            .wait()
            .unwrap()
            .identity_id,
        ann.id
    );
    assert_eq!(
        refusal(reclaim.redeem_code(&code.flow_id, &code.code).wait()).kind,
        ErrorKind::CredentialUsed
    );
}

#[test]
fn five_wrong_codes_kill_the_flow_even_for_the_right_code() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    let reclaim = env.reclaim();
    let code = reclaim
        .create_code(&by_id(&ann), None, None)
        .wait()
        .unwrap();
    for left in (1..=4).rev() {
        let e = refusal(
            reclaim
                .redeem_code(&code.flow_id, &wrong(&code.code))
                .wait(),
        );
        assert_eq!((e.kind, e.code), (ErrorKind::CodeIncorrect, 400));
        assert!(
            e.message.contains(&format!("{left} attempt")),
            "{}",
            e.message
        );
    }
    let fifth = refusal(
        reclaim
            .redeem_code(&code.flow_id, &wrong(&code.code))
            .wait(),
    );
    assert_eq!(fifth.kind, ErrorKind::TooManyAttempts);
    assert_eq!(
        fifth.message,
        "The request was submitted too often. Please request another code."
    );
    let right = refusal(reclaim.redeem_code(&code.flow_id, &code.code).wait());
    assert_eq!(right.kind, ErrorKind::TooManyAttempts);
}

#[test]
fn the_attempt_limit_is_configurable() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    let mut settings = env.settings(SECRET_A);
    settings.max_code_attempts = Some(2);
    let reclaim = env.reclaim_with(settings);
    let code = reclaim
        .create_code(&by_id(&ann), None, None)
        .wait()
        .unwrap();
    assert_eq!(
        refusal(
            reclaim
                .redeem_code(&code.flow_id, &wrong(&code.code))
                .wait()
        )
        .kind,
        ErrorKind::CodeIncorrect
    );
    assert_eq!(
        refusal(
            reclaim
                .redeem_code(&code.flow_id, &wrong(&code.code))
                .wait()
        )
        .kind,
        ErrorKind::TooManyAttempts
    );
    assert_eq!(
        refusal(reclaim.redeem_code(&code.flow_id, &code.code).wait()).kind,
        ErrorKind::TooManyAttempts
    );
}

#[test]
fn wrong_attempts_before_the_limit_leave_the_right_code_working() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    let reclaim = env.reclaim();
    let code = reclaim
        .create_code(&by_id(&ann), None, None)
        .wait()
        .unwrap();
    for _ in 0..4 {
        refusal(
            reclaim
                .redeem_code(&code.flow_id, &wrong(&code.code))
                .wait(),
        );
    }
    assert!(
        reclaim
            .redeem_code(&code.flow_id, &code.code)
            .wait()
            .is_ok()
    );
}

#[test]
fn malformed_codes_and_flows_are_refused_without_counting() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    let reclaim = env.reclaim();
    let code = reclaim
        .create_code(&by_id(&ann), None, None)
        .wait()
        .unwrap();
    for bad in ["", "12345", "1234567", "12345a", " 123456"] {
        assert_eq!(
            refusal(reclaim.redeem_code(&code.flow_id, bad).wait()).kind,
            ErrorKind::InvalidArgument
        );
    }
    assert_eq!(
        refusal(reclaim.redeem_code("not-a-flow", &code.code).wait()).kind,
        ErrorKind::InvalidArgument
    );
    let unknown = refusal(
        reclaim
            .redeem_code("0e0e0e0e-0000-4000-8000-000000000000", &code.code)
            .wait(),
    );
    assert_eq!(
        (unknown.kind, unknown.code),
        (ErrorKind::CredentialUnknown, 404)
    );
    assert_eq!(env.count("SELECT failed_attempts FROM credentials"), 0);
    assert!(
        reclaim
            .redeem_code(&code.flow_id, &code.code)
            .wait()
            .is_ok()
    );
}

#[test]
fn a_code_cannot_be_redeemed_as_a_link_token() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    let reclaim = env.reclaim();
    let code = reclaim
        .create_code(&by_id(&ann), None, None)
        .wait()
        .unwrap();
    assert_eq!(
        refusal(reclaim.redeem_link(&code.code).wait()).kind,
        ErrorKind::CredentialUnknown
    );
}
