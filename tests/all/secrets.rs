//! Keyed hashing: secrets rotate without breaking outstanding links, and no
//! usable token or code ever reaches the database file.

use reclaim::{Error, ErrorKind};
use reclaim_tests::{SECRET_A, SECRET_B, TestEnv, by_id, contains, database_bytes, token_of};

#[test]
fn rotating_in_a_new_secret_keeps_old_links_valid() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    let bob = env.identity(Some("bob@example.com"), None);
    let old = env.reclaim_with(env.settings(SECRET_A));
    let old_link = old.create_link(&by_id(&ann), None, None).wait().unwrap();
    let old_code = old.create_code(&by_id(&bob), None, None).wait().unwrap();

    // The new secret goes first; the old one stays for lookups.
    let rotated = env.reclaim_with(env.settings(&format!("{SECRET_B},{SECRET_A}")));
    assert_eq!(
        rotated
            .redeem_link(&token_of(&old_link.link))
            .wait()
            .unwrap()
            .identity_id,
        ann.id
    );
    assert_eq!(
        rotated
            .redeem_code(&old_code.flow_id, &old_code.code)
            .wait()
            .unwrap()
            .identity_id,
        bob.id
    );

    // New links are keyed by the new secret alone.
    let new_link = rotated
        .create_link(&by_id(&ann), None, None)
        .wait()
        .unwrap();
    let only_new = env.reclaim_with(env.settings(SECRET_B));
    assert!(
        only_new
            .redeem_link(&token_of(&new_link.link))
            .wait()
            .is_ok()
    );
}

#[test]
fn dropping_a_secret_retires_the_links_it_keyed() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    let link = env
        .reclaim_with(env.settings(SECRET_A))
        .create_link(&by_id(&ann), None, None)
        .wait()
        .unwrap();
    match env
        .reclaim_with(env.settings(SECRET_B))
        .redeem_link(&token_of(&link.link))
        .wait()
    {
        Err(Error::Refused(e)) => assert_eq!(e.kind, ErrorKind::CredentialUnknown),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_database_file_never_holds_a_raw_token_code_or_secret() {
    let env = TestEnv::new();
    let ann = env.identity(Some("ann@example.com"), None);
    let reclaim = env.reclaim();
    let mut secrets_shown = Vec::new();
    for _ in 0..5 {
        let link = reclaim
            .create_link(&by_id(&ann), None, None)
            .wait()
            .unwrap();
        let code = reclaim
            .create_code(&by_id(&ann), None, None)
            .wait()
            .unwrap();
        secrets_shown.push(token_of(&link.link));
        secrets_shown.push(code.code);
    }
    let bytes = database_bytes(&env.db_path());
    assert!(
        contains(&bytes, &ann.id),
        "the scan reads the data that is there"
    );
    for shown in &secrets_shown {
        assert!(!contains(&bytes, shown), "{shown} is in the database");
    }
    assert!(!contains(&bytes, SECRET_A));
}
