//! Recovery links through the compiled component: shape, single use,
//! revocation, and the identities they may be issued for.

use reclaim::{Clock, Error, ErrorKind, IdentityRef, NewIdentity};
use reclaim_tests::{PUBLIC_URL, TestEnv, by_id, token_of};

fn refusal<T: std::fmt::Debug>(result: Result<T, Error>) -> reclaim::RecoveryError {
    match result {
        Err(Error::Refused(e)) => e,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn link_has_kratos_shape_and_redeems_exactly_once() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    let reclaim = env.reclaim();
    let link = reclaim
        .create_link(&by_id(&ann), None, None)
        .wait()
        .unwrap();
    let prefix = format!(
        "{PUBLIC_URL}/self-service/recovery?flow={}&token=",
        link.flow_id
    );
    assert!(link.link.starts_with(&prefix), "{}", link.link);
    let token = token_of(&link.link);
    assert_eq!(token.len(), 43, "256 bits in unpadded base64url");

    let redeemed = reclaim.redeem_link(&token).wait().unwrap();
    assert_eq!(redeemed.identity_id, ann.id);
    assert_eq!(redeemed.flow_id, link.flow_id);
    let again = refusal(reclaim.redeem_link(&token).wait());
    assert_eq!((again.kind, again.code), (ErrorKind::CredentialUsed, 410));
}

#[test]
fn default_lifespan_is_one_hour() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    let link = env
        .reclaim()
        .create_link(&by_id(&ann), None, None)
        .wait()
        .unwrap();
    let now = env.clock.now_nanos();
    assert_eq!(link.expires_at - now, 3_600_000_000_000);
}

#[test]
fn identities_are_found_by_pk_as_authentik_addresses_them() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    let link = env
        .reclaim()
        .create_link(&IdentityRef::Pk(ann.pk), Some("5m"), None)
        .wait()
        .unwrap();
    assert_eq!(
        env.reclaim()
            .redeem_link(&token_of(&link.link))
            .wait()
            .unwrap()
            .identity_id,
        ann.id
    );
}

#[test]
fn a_new_link_revokes_the_older_unused_ones() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    let reclaim = env.reclaim();
    let first = reclaim
        .create_link(&by_id(&ann), None, None)
        .wait()
        .unwrap();
    let second = reclaim
        .create_link(&by_id(&ann), None, None)
        .wait()
        .unwrap();
    let old = refusal(reclaim.redeem_link(&token_of(&first.link)).wait());
    assert_eq!(old.kind, ErrorKind::CredentialRevoked);
    assert!(reclaim.redeem_link(&token_of(&second.link)).wait().is_ok());
}

#[test]
fn older_links_survive_when_the_setting_is_off() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    let mut settings = env.settings(reclaim_tests::SECRET_A);
    settings.revoke_older_links = Some(false);
    let reclaim = env.reclaim_with(settings);
    let first = reclaim
        .create_link(&by_id(&ann), None, None)
        .wait()
        .unwrap();
    let _second = reclaim
        .create_link(&by_id(&ann), None, None)
        .wait()
        .unwrap();
    assert!(reclaim.redeem_link(&token_of(&first.link)).wait().is_ok());
}

#[test]
fn redemption_revokes_every_other_link_and_code_of_the_identity() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    let bob = env.identity(Some("bob@example.com"), None);
    let mut settings = env.settings(reclaim_tests::SECRET_A);
    settings.revoke_older_links = Some(false);
    let reclaim = env.reclaim_with(settings);
    let link = reclaim
        .create_link(&by_id(&ann), None, None)
        .wait()
        .unwrap();
    let other_link = reclaim
        .create_link(&by_id(&ann), None, None)
        .wait()
        .unwrap();
    let code = reclaim
        .create_code(&by_id(&ann), None, None)
        .wait()
        .unwrap();
    let bobs = reclaim
        .create_link(&by_id(&bob), None, None)
        .wait()
        .unwrap();

    reclaim.redeem_link(&token_of(&link.link)).wait().unwrap();
    let revoked = refusal(reclaim.redeem_link(&token_of(&other_link.link)).wait());
    assert_eq!(revoked.kind, ErrorKind::CredentialRevoked);
    let code_refusal = refusal(reclaim.redeem_code(&code.flow_id, &code.code).wait());
    assert_eq!(code_refusal.kind, ErrorKind::CredentialRevoked);
    assert!(
        reclaim.redeem_link(&token_of(&bobs.link)).wait().is_ok(),
        "other identities keep theirs"
    );
}

#[test]
fn revoke_ends_every_outstanding_credential() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    let reclaim = env.reclaim();
    let link = reclaim
        .create_link(&by_id(&ann), None, None)
        .wait()
        .unwrap();
    assert_eq!(reclaim.revoke(&by_id(&ann)).wait().unwrap().credentials, 1);
    assert_eq!(
        refusal(reclaim.redeem_link(&token_of(&link.link)).wait()).kind,
        ErrorKind::CredentialRevoked
    );
    assert_eq!(reclaim.revoke(&by_id(&ann)).wait().unwrap().credentials, 0);
}

#[test]
fn return_to_comes_back_on_redemption() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    let reclaim = env.reclaim();
    let link = reclaim
        .create_link(&by_id(&ann), None, Some("https://app.example.test/welcome"))
        .wait()
        .unwrap();
    let redeemed = reclaim.redeem_link(&token_of(&link.link)).wait().unwrap();
    assert_eq!(
        redeemed.return_to.as_deref(),
        Some("https://app.example.test/welcome")
    );
}

#[test]
fn unknown_malformed_and_inactive_identities_are_refused_and_nothing_is_stored() {
    let env = TestEnv::new();
    let off = env.identity_with(NewIdentity {
        email: Some("off@example.com".into()),
        active: false,
        ..Default::default()
    });
    let reclaim = env.reclaim();
    let unknown = refusal(
        reclaim
            .create_link(
                &IdentityRef::Id("6f1c1c8e-2b54-4c43-9f0e-6a8a9d1f7b10".into()),
                None,
                None,
            )
            .wait(),
    );
    assert_eq!(
        (unknown.kind, unknown.code),
        (ErrorKind::IdentityNotFound, 404)
    );
    let malformed = refusal(
        reclaim
            .create_link(&IdentityRef::Id("not-a-uuid".into()), None, None)
            .wait(),
    );
    assert_eq!(
        (malformed.kind, malformed.code),
        (ErrorKind::InvalidArgument, 400)
    );
    let inactive = refusal(reclaim.create_link(&by_id(&off), None, None).wait());
    assert_eq!(inactive.kind, ErrorKind::IdentityInactive);
    let inactive_code = refusal(reclaim.create_code(&by_id(&off), None, None).wait());
    assert_eq!(inactive_code.kind, ErrorKind::IdentityInactive);
    assert_eq!(env.count("SELECT count(*) FROM credentials"), 0);
}

#[test]
fn tokens_that_are_not_ours_are_unknown() {
    let env = TestEnv::new();
    let reclaim = env.reclaim();
    for token in ["", "short", &"A".repeat(43), &"!".repeat(43)] {
        let e = refusal(reclaim.redeem_link(token).wait());
        assert_eq!(
            (e.kind, e.code),
            (ErrorKind::CredentialUnknown, 404),
            "{token:?}"
        );
    }
}

#[test]
fn checking_a_link_consumes_nothing_and_names_why_a_dead_one_is_dead() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    let reclaim = env.reclaim();
    let first = token_of(
        &reclaim
            .create_link(&by_id(&ann), Some("10m"), None)
            .wait()
            .unwrap()
            .link,
    );
    let second = token_of(
        &reclaim
            .create_link(&by_id(&ann), Some("10m"), None)
            .wait()
            .unwrap()
            .link,
    );
    for _ in 0..3 {
        reclaim
            .check_link(&second)
            .wait()
            .expect("a live link checks out, again and again");
    }
    let revoked = refusal(reclaim.check_link(&first).wait());
    assert_eq!(revoked.kind, ErrorKind::CredentialRevoked);
    let unknown = refusal(reclaim.check_link(&"A".repeat(43)).wait());
    assert_eq!(unknown.kind, ErrorKind::CredentialUnknown);

    reclaim
        .redeem_link(&second)
        .wait()
        .expect("checking spent nothing");
    assert_eq!(
        refusal(reclaim.check_link(&second).wait()).kind,
        ErrorKind::CredentialUsed
    );

    let third = token_of(
        &reclaim
            .create_link(&by_id(&ann), Some("10m"), None)
            .wait()
            .unwrap()
            .link,
    );
    env.clock.advance(std::time::Duration::from_secs(601));
    assert_eq!(
        refusal(reclaim.check_link(&third).wait()).kind,
        ErrorKind::CredentialExpired
    );
}
