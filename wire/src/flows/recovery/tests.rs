use serde_json::Value;

use super::*;
use crate::flows::FlowType;
use crate::flows::message_ids;

const NOW: u64 = 1_700_000_000_000_000_000;

fn fresh() -> Record {
    Record::recovery(
        FlowType::Api,
        NOW,
        "https://id.example/self-service/recovery/api",
        None,
        None,
        RecoveryFlow::new("code", None),
    )
}

fn submit(email: Option<&str>, code: Option<&str>) -> Submit {
    Submit {
        method: Some("code".into()),
        email: email.map(str::to_string),
        code: code.map(str::to_string),
        ..Submit::default()
    }
}

fn node_names(view: &Value) -> Vec<(String, Option<u64>)> {
    view["ui"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["attributes"]["name"].as_str().unwrap().to_string(),
                n["meta"]["label"]["id"].as_u64(),
            )
        })
        .collect()
}

#[test]
fn a_fresh_code_flow_asks_for_the_address_as_kratos_does() {
    let view = fresh().view("f1", "https://id.example/", "");
    assert_eq!(view["state"], "choose_method");
    assert_eq!(view["active"], "code");
    assert_eq!(view["type"], "api");
    assert_eq!(
        view["ui"]["action"],
        "https://id.example/self-service/recovery?flow=f1"
    );
    assert_eq!(
        node_names(&view),
        [
            ("csrf_token".into(), None),
            ("email".into(), Some(1070007)),
            ("method".into(), Some(1070009)),
        ]
    );
    assert_eq!(view["ui"]["nodes"][1]["group"], "code");
    assert_eq!(view["ui"]["nodes"][1]["attributes"]["node_type"], "input");
}

#[test]
fn an_address_sends_a_code_and_the_flow_then_asks_for_it_with_a_resend_button() {
    let flow = fresh();
    let Some(Step::Send { email, method }) =
        flow.recovery_step(&submit(Some(" ann@example.com "), None))
    else {
        panic!("an address sends");
    };
    assert_eq!(
        (email.as_str(), method.as_str()),
        ("ann@example.com", "code")
    );
    let sent = flow.sent(&email, &method, Some("c1".into()));
    let view = sent.view("f1", "https://id.example", "");
    assert_eq!(view["state"], "sent_email");
    assert_eq!(message_ids(&view), [1060003]);
    assert_eq!(
        node_names(&view),
        [
            ("csrf_token".into(), None),
            ("code".into(), Some(1070010)),
            ("method".into(), None),
            ("method".into(), Some(1070009)),
            ("email".into(), Some(1070008)),
        ]
    );
    assert_eq!(
        view["ui"]["nodes"][4]["attributes"]["value"],
        "ann@example.com"
    );
    assert_eq!(view["ui"]["nodes"][1]["attributes"]["maxlength"], 6);
}

#[test]
fn an_empty_address_beside_a_code_checks_the_code_as_ory_elements_sends_it() {
    let sent = fresh().sent("ann@example.com", "code", Some("c1".into()));
    let step = sent.recovery_step(&submit(Some(""), Some("123456")));
    assert!(
        matches!(step, Some(Step::Check { code_flow, code }) if code_flow == "c1" && code == "123456")
    );
}

#[test]
fn no_address_on_a_fresh_flow_is_400_with_4000002_on_the_address() {
    let Some(Step::Invalid(flow)) = fresh().recovery_step(&submit(None, None)) else {
        panic!("invalid");
    };
    let view = flow.view("f1", "https://id.example", "");
    assert_eq!(view["ui"]["nodes"][1]["messages"][0]["id"], 4000002);
    assert_eq!(
        view["ui"]["nodes"][1]["messages"][0]["context"]["property"],
        "email"
    );
}

#[test]
fn wrong_codes_answer_4060006_until_the_limit_then_a_new_flow_says_4000001() {
    let mut flow = fresh().sent("ann@example.com", "code", Some("c1".into()));
    for _ in 0..4 {
        flow = flow.wrong_code(Kind::CodeIncorrect, 5).unwrap();
        assert_eq!(
            message_ids(&flow.view("f", "https://id.example", "")),
            [4060006]
        );
    }
    // A re-send keeps the count: a flow does not earn new guesses by asking.
    flow = flow.sent("ann@example.com", "code", Some("c2".into()));
    assert_eq!(
        flow.wrong_code(Kind::CodeIncorrect, 5).unwrap_err().id,
        4000001
    );
    let fresh_flow = fresh().sent("ann@example.com", "code", Some("c1".into()));
    assert_eq!(
        fresh_flow
            .wrong_code(Kind::TooManyAttempts, 5)
            .unwrap_err()
            .id,
        4000001,
        "the identity's cap across flows"
    );
}

#[test]
fn a_flow_that_passed_its_challenge_restarts_with_4060001() {
    let passed = fresh().sent("a@b.c", "code", Some("c1".into())).passed();
    assert!(matches!(
        passed.recovery_step(&submit(None, Some("123456"))),
        Some(Step::Restart(t)) if t.id == 4060001
    ));
}

#[test]
fn a_browser_flow_is_read_only_with_the_token_it_was_issued_with() {
    let flow = Record::recovery(
        FlowType::Browser,
        NOW,
        "https://id.example/self-service/recovery/browser",
        None,
        Some("tok"),
        RecoveryFlow::new("code", None),
    );
    assert!(flow.csrf_holds(Some("tok")));
    assert!(!flow.csrf_holds(Some("other")));
    assert!(!flow.csrf_holds(None));
    assert!(fresh().csrf_holds(None), "API flows carry none");
    assert!(!flow.to_json().contains("tok\""), "only its hash is kept");
}
