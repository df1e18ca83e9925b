//! The driver over a host kept in memory: the branches the servers' tests
//! can't steer (a step that loses its race, a restart's method, where an
//! unreadable page starts over, what the pages' form keeps).

use std::collections::HashMap;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use super::*;
use crate::flows::message_ids;

const NOW: u64 = 1_700_000_000_000_000_000;
const TOKEN: &str = "a-csrf-token";

#[derive(Debug)]
enum Reply {
    Answer(StatusCode, Value),
    SeeOther(String),
    Page(StatusCode, Value, String),
}

#[derive(Default)]
struct Host {
    now: u64,
    flows: HashMap<String, (u64, Record)>,
    headers: Vec<(&'static str, String)>,
    /// The CSRF token of the request's cookie.
    cookie: Option<String>,
    sent: Vec<String>,
    /// A step another request writes first, just before the next replace.
    winner: Option<Record>,
    next_id: u32,
}

impl Host {
    fn new() -> Self {
        Self {
            now: NOW,
            ..Self::default()
        }
    }

    fn browser() -> Self {
        Self {
            cookie: Some(TOKEN.into()),
            headers: vec![("content-type", "application/json".into())],
            ..Self::new()
        }
    }

    fn keep(&mut self, record: Record) -> String {
        let id = format!("flow-{}", self.flows.len());
        self.flows.insert(id.clone(), (0, record));
        id
    }
}

impl FlowHost for Host {
    type Reply = Reply;

    fn config(&self) -> FlowConfig<'_> {
        FlowConfig {
            public_url: "https://id.example",
            recovery_ui_url: "https://id.example/self-service/recovery",
            lifespan_ns: 60 * 1_000_000_000,
            max_code_attempts: 5,
            continue_with: false,
        }
    }

    fn now(&self) -> u64 {
        self.now
    }

    fn request_id(&self) -> String {
        "request".into()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    fn answer(&mut self, answer: Answer) -> Reply {
        let body = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        Reply::Answer(answer.status, body)
    }

    fn see_other(&mut self, location: &str) -> Reply {
        Reply::SeeOther(location.into())
    }

    fn page(&mut self, status: StatusCode, flow: Value, title: &str) -> Reply {
        Reply::Page(status, flow, title.into())
    }

    fn allowed_return_to(&self, given: &str) -> Option<String> {
        given
            .starts_with("https://app.example/")
            .then(|| given.into())
    }

    fn cookie_token(&self) -> Option<String> {
        self.cookie.clone()
    }

    fn issue_csrf(&mut self) -> Result<String, Reply> {
        Ok(self.cookie.get_or_insert_with(|| TOKEN.into()).clone())
    }

    fn csrf_verified(&self, token: Option<&str>) -> bool {
        token.is_some() && token == self.cookie.as_deref()
    }

    async fn admit_flow(&mut self, _face: Face) -> Result<(), Reply> {
        Ok(())
    }

    async fn has_session(&mut self) -> Result<bool, Reply> {
        Ok(false)
    }

    async fn load(&mut self, id: &str) -> Result<Option<Kept>, Reply> {
        Ok(self.flows.get(id).map(|(version, record)| Kept {
            id: id.into(),
            version: *version,
            record: record.clone(),
        }))
    }

    async fn insert(&mut self, record: &Record) -> Result<String, Reply> {
        self.next_id += 1;
        let id = format!("new-{}", self.next_id);
        self.flows.insert(id.clone(), (0, record.clone()));
        Ok(id)
    }

    async fn replace(&mut self, kept: &Kept, record: &Record) -> Result<bool, Reply> {
        let (version, stored) = self.flows.get_mut(&kept.id).expect("a kept flow");
        if let Some(winner) = self.winner.take() {
            (*version, *stored) = (*version + 1, winner);
        }
        if *version != kept.version {
            return Ok(false);
        }
        (*version, *stored) = (*version + 1, record.clone());
        Ok(true)
    }

    async fn send(
        &mut self,
        email: &str,
        method: &str,
        _return_to: Option<&str>,
        _face: Face,
    ) -> Result<Option<String>, Reply> {
        self.sent.push(email.into());
        Ok((method == "code").then(|| "code-flow".into()))
    }

    async fn check(
        &mut self,
        _kept: &Kept,
        _passed: &Record,
        _code_flow: &str,
        _code: &str,
        _csrf: Option<&str>,
    ) -> Result<Checked, Reply> {
        Ok(Checked::Wrong(Kind::CodeIncorrect))
    }
}

/// Every future of this host is ready when first polled.
fn run<T>(future: impl Future<Output = T>) -> T {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => value,
        Poll::Pending => unreachable!("the test host never waits"),
    }
}

fn api_flow(method: &str) -> Record {
    let flow = RecoveryFlow::new(method, None);
    Record::recovery(FlowType::Api, NOW, "https://id.example/x", None, None, flow)
}

#[test]
fn a_step_that_loses_its_race_shows_the_flow_as_the_winner_left_it() {
    let mut host = Host::new();
    host.headers
        .push(("content-type", "application/json".into()));
    let id = host.keep(api_flow("code"));
    let winner = api_flow("code").sent("bo@example.com", "code", Some("theirs".into()));
    host.winner = Some(winner);
    let body = br#"{"method": "code", "email": "ann@example.com"}"#;
    let Reply::Answer(status, view) = run(submit(&mut host, &id, body)) else {
        panic!("JSON for an API flow")
    };
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["state"], "sent_email");
    let email = &view["ui"]["nodes"].as_array().unwrap().last().unwrap()["attributes"]["value"];
    assert_eq!(
        email, "bo@example.com",
        "the winner's step, not ours: {view}"
    );
    assert_eq!(host.sent, ["ann@example.com"], "our step was carried out");
    assert_eq!(host.flows[&id].0, 1, "but only the winner's written");
}

#[test]
fn reading_an_expired_flow_answers_410_and_keeps_a_successor_saying_so() {
    let mut host = Host::new();
    let id = host.keep(api_flow("code").lasting(1));
    host.now = NOW + 60 * 1_000_000_000;
    let Reply::Answer(status, body) = run(read(&mut host, Some(&id))) else {
        panic!("JSON")
    };
    assert_eq!(status, StatusCode::GONE);
    let successor = body["use_flow_id"].as_str().unwrap();
    let (_, kept) = &host.flows[successor];
    assert!(!kept.is_expired(host.now));
    let view = kept.view(successor, "https://id.example", "");
    assert_eq!(message_ids(&view), [4060005]);
}

#[test]
fn a_flow_that_passed_starts_over_with_the_same_method() {
    let mut host = Host::browser();
    let passed = Record::recovery(
        FlowType::Browser,
        NOW,
        "https://id.example/self-service/recovery",
        None,
        Some(TOKEN),
        RecoveryFlow::new(PAGES_METHOD, None),
    )
    .passed();
    let id = host.keep(passed);
    let body = format!(r#"{{"email": "ann@example.com", "csrf_token": "{TOKEN}"}}"#);
    let Reply::Answer(_, view) = run(submit(&mut host, &id, body.as_bytes())) else {
        panic!("JSON")
    };
    assert_ne!(view["id"], id.as_str());
    assert_eq!(view["active"], PAGES_METHOD, "{view}");
    assert_eq!(message_ids(&view), [4060001]);
    assert!(host.sent.is_empty());
}

#[test]
fn a_page_this_browser_cannot_read_starts_over_where_its_method_starts() {
    let mut host = Host::new();
    let link = Record::recovery(
        FlowType::Browser,
        NOW,
        "u",
        None,
        Some("another browser's token"),
        RecoveryFlow::new(PAGES_METHOD, None),
    );
    let code = Record::recovery(
        FlowType::Browser,
        NOW,
        "u",
        None,
        Some("another browser's token"),
        RecoveryFlow::new(METHOD, None),
    );
    let (link, code) = (host.keep(link), host.keep(code));
    host.cookie = Some(TOKEN.into());
    let started_at = |host: &mut Host, id: &str| match run(page(host, id)) {
        Some(Reply::SeeOther(location)) => location,
        other => panic!("{other:?}"),
    };
    assert_eq!(started_at(&mut host, &link), "/self-service/recovery");
    assert_eq!(
        started_at(&mut host, &code),
        "/self-service/recovery/browser"
    );
    assert!(run(page(&mut host, "no such flow")).is_none());
}

#[test]
fn the_pages_form_keeps_a_flow_only_once_it_sends() {
    let mut host = Host::browser();
    host.headers.clear();
    host.headers
        .push(("content-type", "application/x-www-form-urlencoded".into()));
    let Reply::Page(status, view, title) = run(start_on_page(&mut host, None)) else {
        panic!("a page")
    };
    assert_eq!(
        (status, title.as_str()),
        (StatusCode::OK, "Recover your account")
    );
    assert_eq!(
        view["ui"]["action"],
        "https://id.example/self-service/recovery"
    );
    assert!(host.flows.is_empty(), "a visit keeps nothing");

    let refused = run(request_on_page(&mut host, None, b"email=not+an+address"));
    assert!(
        matches!(refused, Reply::Page(StatusCode::BAD_REQUEST, ..)),
        "{refused:?}"
    );
    assert!(host.flows.is_empty() && host.sent.is_empty());

    let return_to = Some("https://app.example/done".to_string());
    let Reply::Page(status, view, title) = run(request_on_page(
        &mut host,
        return_to,
        b"email=ann%40example.com",
    )) else {
        panic!("a page")
    };
    assert_eq!(
        (status, title.as_str()),
        (StatusCode::OK, "Check your email")
    );
    assert_eq!(host.sent, ["ann@example.com"]);
    let (id, (_, kept)) = host.flows.iter().next().unwrap();
    assert_eq!(view["id"], id.as_str());
    assert_eq!(kept.return_to.as_deref(), Some("https://app.example/done"));
    assert!(
        kept.csrf_holds(Some(TOKEN)),
        "bound to the browser that sent it"
    );
}

#[test]
fn a_browser_flow_refuses_a_submission_without_its_cookies_token() {
    let mut host = Host::browser();
    let flow = Record::recovery(
        FlowType::Browser,
        NOW,
        "u",
        None,
        Some(TOKEN),
        RecoveryFlow::new(METHOD, None),
    );
    let id = host.keep(flow);
    let body = br#"{"method": "code", "email": "ann@example.com", "csrf_token": "forged"}"#;
    let Reply::Answer(status, body) = run(submit(&mut host, &id, body)) else {
        panic!("JSON")
    };
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["id"], "security_csrf_violation");
    assert!(host.sent.is_empty());
}
