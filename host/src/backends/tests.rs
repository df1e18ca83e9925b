//! The memory backend through the component.

use std::sync::Arc;

use super::*;
use crate::directory::NewIdentity;
use crate::settings::{Settings, parse_secrets};
use crate::storage::outbox::QueuedMail;
use crate::storage::{Identities, Requests};
use crate::{Error, Identity, IdentityRef, Reclaim, Runtime};

fn reclaim(storage: &MemoryStorage) -> Reclaim {
    let secrets = parse_secrets("memory-test-secret-0123456789abcdef0123").unwrap();
    Reclaim::new(
        Runtime::embedded().unwrap(),
        Arc::new(storage.clone()),
        Settings::new("https://id.test", secrets),
    )
}

/// Storage holding one identity, and the operations over it.
fn with_ann() -> (MemoryStorage, Identity, Reclaim) {
    let storage = MemoryStorage::new();
    let ann = storage
        .create_identity(
            &NewIdentity {
                email: Some("ann@example.com".into()),
                active: true,
                ..Default::default()
            },
            0,
        )
        .unwrap();
    let reclaim = reclaim(&storage);
    (storage, ann, reclaim)
}

#[test]
fn links_redeem_once_through_the_component() {
    let (_, ann, reclaim) = with_ann();
    let link = reclaim
        .create_link(&IdentityRef::Pk(ann.pk), None, None)
        .wait()
        .unwrap();
    let token = link.link.split("token=").nth(1).unwrap();
    assert_eq!(
        reclaim.redeem_link(token).wait().unwrap().identity_id,
        ann.id
    );
    assert!(matches!(
        reclaim.redeem_link(token).wait(),
        Err(Error::Refused(_))
    ));
}

#[test]
fn a_queued_request_is_served_once_even_when_two_servers_take_it() {
    let (storage, _, reclaim) = with_ann();
    storage
        .queue_request("ann@example.com", None, 0)
        .wait()
        .unwrap();
    let request = storage.claim_requests(1, 0, 1).unwrap().remove(0);
    reclaim
        .serve_queued_request(request.clone())
        .wait()
        .unwrap();
    let again = reclaim.serve_queued_request(request).wait();
    assert!(matches!(again, Err(Error::Failed(_))), "{again:?}");
    assert_eq!(storage.outbox().len(), 1, "the second serving was undone");
    assert!(storage.claim_requests(10, 1, 2).unwrap().is_empty());
}

#[test]
fn uncommitted_work_is_undone() {
    let (storage, ann, reclaim) = with_ann();
    let link = reclaim
        .create_link(&IdentityRef::Id(ann.id.clone()), None, None)
        .wait()
        .unwrap();
    let token = link.link.split("token=").nth(1).unwrap().to_string();
    {
        let mut work = storage.begin().unwrap();
        work.revoke_identity(&ann.id, None, 0).unwrap();
        work.enqueue(&QueuedMail {
            id: "m".into(),
            to: "ann@example.com".into(),
            to_name: None,
            subject: "s".into(),
            text_body: "t".into(),
            html_body: "h".into(),
            template: "recovery-link".into(),
            sender: None,
            queued_at: 0,
            attempts: 0,
            flow_id: None,
            identity_id: None,
            external_id: None,
        })
        .unwrap();
    }
    assert!(storage.outbox().is_empty());
    assert!(
        reclaim.redeem_link(&token).wait().is_ok(),
        "the revocation was undone"
    );
}
