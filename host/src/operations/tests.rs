use super::*;
use crate::backends::{Location, open};
use crate::settings::parse_secrets;
use crate::{IdentityRef, NewIdentity};

/// Embedders wait for answers from async code too: waiting must block
/// that thread, not panic, and the awaited form must agree with it.
#[tokio::test(flavor = "current_thread")]
async fn waiting_also_works_inside_an_async_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let backend = open(&Location::Sqlite {
        path: dir.path().join("reclaim.db"),
        durability: crate::backends::Durability::Full,
    })
    .unwrap();
    let ann = backend
        .create_identity(
            &NewIdentity {
                email: Some("ann@example.com".into()),
                active: true,
                ..Default::default()
            },
            0,
        )
        .unwrap();
    let secrets = parse_secrets("a-hashing-secret-of-at-least-32-bytes").unwrap();
    let reclaim = Reclaim::new(
        Runtime::embedded().unwrap(),
        backend,
        Settings::new("https://id.example.test", secrets),
    );
    let link = reclaim
        .create_link(&IdentityRef::Id(ann.id.clone()), None, None)
        .wait()
        .unwrap();
    let token = link.link.rsplit("token=").next().unwrap();
    let redeemed = reclaim.redeem_link(token).await.unwrap();
    assert_eq!(redeemed.identity_id, ann.id);
    assert!(matches!(
        reclaim.redeem_link(token).wait(),
        Err(Error::Refused(_))
    ));
}
