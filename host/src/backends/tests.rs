//! The memory backend through the component.

use std::sync::Arc;

use super::*;
use crate::directory::NewIdentity;
use crate::settings::{Settings, parse_secrets};
use crate::storage::outbox::QueuedMail;
use crate::storage::{Identities, NewRequest, Requests};
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
        .queue_request(
            &NewRequest {
                email: "ann@example.com",
                ..NewRequest::default()
            },
            0,
        )
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
fn a_queued_code_request_binds_its_code_to_the_flow_the_caller_drew_and_stores_nothing_for_strangers()
 {
    let (storage, ann, reclaim) = with_ann();
    let flow = "3d9e6f0c-7b8a-4c1d-9e2f-0a1b2c3d4e5f";
    let stranger_flow = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";
    for (email, code_flow) in [
        ("Ann@Example.com", flow),
        ("nobody@example.com", stranger_flow),
    ] {
        let request = NewRequest {
            email,
            return_to: None,
            code_flow: Some(code_flow),
        };
        storage.queue_request(&request, 0).wait().unwrap();
    }
    for request in storage.claim_requests(10, 0, 1).unwrap() {
        reclaim.serve_queued_request(request).wait().unwrap();
    }
    let outbox = storage.outbox();
    assert_eq!(outbox.len(), 1, "the stranger gets nothing: {outbox:?}");
    let mail = &outbox[0];
    assert_eq!(
        (mail.template.as_str(), mail.flow_id.as_deref()),
        ("recovery-code", Some(flow))
    );
    let code: String = mail
        .text_body
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .expect("a six-digit code in the mail")
        .into();
    assert!(matches!(
        reclaim.redeem_code(stranger_flow, &code).wait(),
        Err(Error::Refused(_))
    ));
    let redeemed = reclaim.redeem_code(flow, &code).wait().unwrap();
    assert_eq!(
        (redeemed.identity_id, redeemed.flow_id),
        (ann.id, flow.into())
    );
}

#[test]
fn a_redemption_whose_flow_moved_on_keeps_nothing_and_the_code_still_works() {
    use crate::storage::{FlowStep, Flows, NewSession, StoredFlow};
    let (storage, ann, reclaim) = with_ann();
    let code = reclaim
        .create_code(&IdentityRef::Id(ann.id.clone()), None, None)
        .wait()
        .unwrap();
    let flow = StoredFlow {
        id: "8e7d6c5b-4a39-4281-9706-f5e4d3c2b1a0".into(),
        expires_at: u64::MAX,
        version: 0,
        body: "{}".into(),
    };
    assert!(
        storage
            .save_flows(None, std::slice::from_ref(&flow), &[])
            .wait()
            .unwrap()
    );
    let session = || NewSession {
        key: "k".repeat(64),
        expires_at: u64::MAX,
    };
    let settings = StoredFlow {
        id: "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0".into(),
        ..flow.clone()
    };
    // Another request moved the flow on: its version is no longer 0 ... 1.
    let stale = StoredFlow {
        version: 1,
        ..flow.clone()
    };
    let ending = {
        let (stale, settings) = (stale.clone(), settings.clone());
        move |_: &crate::operations::Redeemed| FlowStep {
            replace: Some(stale),
            insert: vec![settings],
            put: Vec::new(),
        }
    };
    let lost = reclaim
        .redeem_code_into(&code.flow_id, &code.code, session(), ending)
        .wait();
    assert!(matches!(lost, Err(Error::Failed(_))), "{lost:?}");
    assert_eq!(
        storage.flow(&settings.id).unwrap(),
        None,
        "no settings flow"
    );
    // Nothing of the redemption was kept: the code redeems, now with the
    // flow at the version it was read.
    let current = StoredFlow {
        version: 0,
        ..flow.clone()
    };
    let ending = move |_: &crate::operations::Redeemed| FlowStep {
        replace: Some(current),
        insert: vec![settings],
        put: Vec::new(),
    };
    let won = reclaim
        .redeem_code_into(&code.flow_id, &code.code, session(), ending)
        .wait();
    assert_eq!(won.unwrap().redemption.identity_id, ann.id);
    assert_eq!(storage.flow(&flow.id).unwrap().unwrap().version, 1);
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
