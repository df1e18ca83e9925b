//! An embedder's own users as the directory (`Reclaim::with_directory`):
//! consulted inside each operation, its changes ending recovery at the next
//! redemption, its failures writing nothing.

use std::sync::{Arc, Mutex};

use reclaim::{Error, ErrorKind, Identity, IdentityRef, NewIdentity, UserDirectory};
use reclaim_tests::{TestEnv, token_of};

/// An in-process user store, as an embedder keeps one.
#[derive(Clone, Default)]
struct Users {
    users: Arc<Mutex<Vec<Identity>>>,
    broken: Arc<Mutex<bool>>,
}

impl Users {
    fn edit(&self, id: &str, change: impl FnOnce(&mut Identity)) {
        let mut users = self.users.lock().unwrap();
        change(users.iter_mut().find(|u| u.id == id).unwrap());
    }

    fn lookup(&self, found: impl Fn(&Identity) -> bool) -> anyhow::Result<Option<Identity>> {
        if *self.broken.lock().unwrap() {
            anyhow::bail!("the user store is down");
        }
        Ok(self
            .users
            .lock()
            .unwrap()
            .iter()
            .find(|u| found(u))
            .cloned())
    }
}

impl UserDirectory for Users {
    fn get_by_id(&self, id: &str) -> anyhow::Result<Option<Identity>> {
        self.lookup(|u| u.id == id)
    }
    fn get_by_pk(&self, pk: i64) -> anyhow::Result<Option<Identity>> {
        self.lookup(|u| u.pk == pk)
    }
    fn find_by_email(&self, email: &str) -> anyhow::Result<Option<Identity>> {
        self.lookup(|u| {
            u.email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
        })
    }
}

fn ann() -> Identity {
    Identity {
        id: "5b0f7e84-2c1a-4d55-9c3e-6a4a1f0d2b77".into(),
        pk: 41,
        email: Some("ann@embedder.example".into()),
        display_name: Some("Ann".into()),
        locale: None,
        active: true,
    }
}

#[test]
fn an_embedders_users_recover_and_their_changes_end_recovery() {
    let env = TestEnv::new();
    let users = Users::default();
    users.users.lock().unwrap().push(ann());
    let reclaim = env.reclaim().with_directory(users.clone());
    let by_pk = IdentityRef::Pk(41);
    let link = reclaim.create_link(&by_pk, None, None).wait().unwrap();
    assert_eq!(
        reclaim
            .redeem_link(&token_of(&link.link))
            .wait()
            .unwrap()
            .identity_id,
        ann().id
    );
    // Mailed by address, to the store's address.
    reclaim
        .request_recovery("ANN@embedder.example", None)
        .wait()
        .unwrap();
    assert_eq!(
        env.count("SELECT count(*) FROM outbox WHERE recipient = 'ann@embedder.example'"),
        1
    );
    // The store changes the address: the link issued before is refused.
    let before = reclaim.create_link(&by_pk, None, None).wait().unwrap();
    users.edit(&ann().id, |u| u.email = Some("ann@moved.example".into()));
    match reclaim.redeem_link(&token_of(&before.link)).wait() {
        Err(Error::Refused(e)) => assert_eq!(e.kind, ErrorKind::CredentialRevoked),
        other => panic!("{other:?}"),
    }
    // Disabled there, the next link is refused too.
    let next = reclaim.create_link(&by_pk, None, None).wait().unwrap();
    users.edit(&ann().id, |u| u.active = false);
    match reclaim.redeem_link(&token_of(&next.link)).wait() {
        Err(Error::Refused(e)) => assert_eq!(e.kind, ErrorKind::IdentityInactive),
        other => panic!("{other:?}"),
    }
    // The backend's own table never saw Ann.
    assert_eq!(env.count("SELECT count(*) FROM identities"), 0);
}

#[test]
fn a_failing_user_store_writes_nothing_and_its_users_are_not_writable() {
    let env = TestEnv::new();
    let users = Users::default();
    users.users.lock().unwrap().push(ann());
    let reclaim = env.reclaim().with_directory(users.clone());
    *users.broken.lock().unwrap() = true;
    assert!(matches!(
        reclaim.create_link(&IdentityRef::Pk(41), None, None).wait(),
        Err(Error::Failed(_))
    ));
    assert_eq!(env.count("SELECT count(*) FROM credentials"), 0);
    *users.broken.lock().unwrap() = false;
    let refused = reclaim
        .create_identity(NewIdentity {
            email: Some("bob@embedder.example".into()),
            active: true,
            ..Default::default()
        })
        .wait();
    match refused {
        Err(Error::Refused(e)) => assert_eq!(e.code, 409),
        other => panic!("{other:?}"),
    }
}
