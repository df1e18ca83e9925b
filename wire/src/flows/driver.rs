//! The recovery flow's requests, from start to ending, carried out over a
//! [`FlowHost`]: the one copy that `reclaim serve` (its backends, the paced
//! queue, sessions) and the edge (its files, the engine's imports) both
//! run. A host does the I/O and shapes a reply; every decision is made
//! here or in [`recovery`](super::recovery).
//!
//! The host's I/O is asynchronous for `reclaim serve`; the edge's answers
//! at once, so it runs these futures with one poll.

use std::future::Future;

use http::StatusCode;
use serde_json::{Value, json};

use super::recovery::{RecoveryFlow, State, Step, Submit};
use super::settings::Ending;
use super::{FlowType, Of, Record, errors, request_url, texts, ui_location};
use crate::answer::Answer;
use crate::refusal::Kind;

/// The method a fresh flow of the flow API offers (Kratos' default).
pub const METHOD: &str = "code";

/// The method of a flow the pages start: they mail links, whose
/// confirmation page a mail scanner can open without using them up.
pub const PAGES_METHOD: &str = "link";

/// How a flow is answered.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Face {
    /// As JSON: an SPA, a native app, Ory's SDKs.
    Json,
    /// A browser's form post to the flow: 303 to the recovery UI.
    ToUi,
    /// The pages' own form: the flow's page, at once.
    Page,
}

/// A flow as read: its id, the version a replacement names, its record.
pub struct Kept {
    pub id: String,
    pub version: u64,
    pub record: Record,
}

/// What the driver needs of a server's configuration.
pub struct FlowConfig<'a> {
    pub public_url: &'a str,
    /// Where a browser is sent with `?flow=`.
    pub recovery_ui_url: &'a str,
    pub lifespan_ns: u64,
    /// Wrong codes a flow survives.
    pub max_code_attempts: u32,
    /// Kratos' `use_continue_with_transitions`.
    pub continue_with: bool,
}

/// What a check of a code came to.
pub enum Checked {
    /// Redeemed (the host wrote `passed` with it): how the recovery ends.
    Passed(Ending),
    /// Refused for a reason [`Record::is_wrong_code`] admits.
    Wrong(Kind),
}

/// A server's side of a flow request: its reply type, the request's
/// headers and cookies, its store and its operations. Each error is the
/// reply that ends the request.
pub trait FlowHost: Send {
    type Reply: Send;

    fn config(&self) -> FlowConfig<'_>;
    fn now(&self) -> u64;
    fn request_id(&self) -> String;
    /// A request header, if it is text.
    fn header(&self, name: &str) -> Option<&str>;
    fn answer(&mut self, answer: Answer) -> Self::Reply;
    fn see_other(&mut self, location: &str) -> Self::Reply;
    /// The pages' `flow.html` drawing `flow` (a flow's view).
    fn page(&mut self, status: StatusCode, flow: Value, title: &str) -> Self::Reply;
    /// `return_to` as the allow-list admits it.
    fn allowed_return_to(&self, given: &str) -> Option<String>;
    /// The CSRF token of the request's cookie, if it carries one.
    fn cookie_token(&self) -> Option<String>;
    /// The CSRF token of the request's cookie, or a new one whose cookie
    /// the reply sets.
    fn issue_csrf(&mut self) -> Result<String, Self::Reply>;
    /// Whether a browser's submission carries the token of its cookie.
    fn csrf_verified(&self, token: Option<&str>) -> bool;
    /// Counts a flow about to be started against the client's allowance;
    /// over it, the refusal answered on `face`.
    fn admit_flow(&mut self, face: Face) -> impl Future<Output = Result<(), Self::Reply>> + Send;
    /// Whether the request carries a live session.
    fn has_session(&mut self) -> impl Future<Output = Result<bool, Self::Reply>> + Send;
    fn load(&mut self, id: &str) -> impl Future<Output = Result<Option<Kept>, Self::Reply>> + Send;
    /// Keeps a new flow under a fresh id; the id.
    fn insert(
        &mut self,
        record: &Record,
    ) -> impl Future<Output = Result<String, Self::Reply>> + Send;
    /// Replaces the flow as read; false when another request moved it first.
    fn replace(
        &mut self,
        kept: &Kept,
        record: &Record,
    ) -> impl Future<Output = Result<bool, Self::Reply>> + Send;
    /// Requests a code (bound to a flow id it draws, returned) or a link
    /// for `email`, known or not; a refusal (too many requests) answered
    /// on `face`.
    fn send(
        &mut self,
        email: &str,
        method: &str,
        return_to: Option<&str>,
        face: Face,
    ) -> impl Future<Output = Result<Option<String>, Self::Reply>> + Send;
    /// Redeems `code` against `code_flow`; once redeemed, `kept` becomes
    /// `passed` in the same step.
    fn check(
        &mut self,
        kept: &Kept,
        passed: &Record,
        code_flow: &str,
        code: &str,
        csrf: Option<&str>,
    ) -> impl Future<Output = Result<Checked, Self::Reply>> + Send;
}

/// `GET /self-service/recovery/browser`: JSON (with the CSRF cookie) for a
/// client that asks for it, else a 303 to the recovery UI.
pub async fn create_browser<H: FlowHost>(host: &mut H, return_to: Option<String>) -> H::Reply {
    let created = async {
        let return_to = allowed(host, return_to)?;
        if host.has_session().await? {
            let answer = errors::session_already_available(&host.request_id());
            return Err(host.answer(answer));
        }
        let token = host.issue_csrf()?;
        let (id, record) = start(host, FlowType::Browser, return_to, Some(&token), None).await?;
        let face = if json_asked(host) {
            Face::Json
        } else {
            Face::ToUi
        };
        Ok(shown(host, face, &id, &record, &token, StatusCode::OK))
    };
    created.await.unwrap_or_else(|reply| reply)
}

/// `GET /self-service/recovery/api`: a flow for a native app, with no
/// cookie and no CSRF token.
pub async fn create_api<H: FlowHost>(host: &mut H, return_to: Option<String>) -> H::Reply {
    let created = async {
        let return_to = allowed(host, return_to)?;
        let (id, record) = start(host, FlowType::Api, return_to, None, None).await?;
        Ok(flow_answer(host, &id, &record, "", StatusCode::OK))
    };
    created.await.unwrap_or_else(|reply| reply)
}

/// `GET /self-service/recovery/flows?id=`: a browser flow only to the
/// browser holding its cookie; an expired one names its successor.
pub async fn read<H: FlowHost>(host: &mut H, id: Option<&str>) -> H::Reply {
    let read = async {
        let Some(id) = id else {
            let answer =
                errors::bad_request("The flow id is missing: ?id=<flow id>.", &host.request_id());
            return Err(host.answer(answer));
        };
        let kept = known(host, id).await?;
        let token = host.cookie_token();
        if !kept.record.csrf_holds(token.as_deref()) {
            return Err(csrf_violation(
                host,
                "The anti-CSRF cookie of this browser flow is missing or belongs to another flow.",
            ));
        }
        if kept.record.is_expired(host.now()) {
            return Err(expired(host, &kept, token.as_deref()).await);
        }
        let token = token.unwrap_or_default();
        Ok(flow_answer(
            host,
            &kept.id,
            &kept.record,
            &token,
            StatusCode::OK,
        ))
    };
    read.await.unwrap_or_else(|reply| reply)
}

/// `POST /self-service/recovery?flow=`: a submission (JSON or a form).
pub async fn submit<H: FlowHost>(host: &mut H, id: &str, body: &[u8]) -> H::Reply {
    submitted(host, id, body)
        .await
        .unwrap_or_else(|reply| reply)
}

async fn submitted<H: FlowHost>(host: &mut H, id: &str, body: &[u8]) -> Result<H::Reply, H::Reply> {
    let kept = known(host, id).await?;
    let submission: Submit = read_body(host, body)?;
    let token = match kept.record.flow_type {
        FlowType::Browser => {
            let given = submission.csrf_token.as_deref();
            if !(host.csrf_verified(given) && kept.record.csrf_holds(given)) {
                return Err(csrf_violation(
                    host,
                    "The anti-CSRF token of the form does not match this browser's cookie.",
                ));
            }
            submission.csrf_token.clone()
        }
        // A browser never sends a native app's flow: one that does was led
        // there by another site.
        FlowType::Api if host.header("origin").is_some() => {
            return Err(csrf_violation(
                host,
                "An API flow was submitted by a browser.",
            ));
        }
        FlowType::Api => None,
    };
    if kept.record.is_expired(host.now()) {
        return Err(expired(host, &kept, token.as_deref()).await);
    }
    let face = if kept.record.flow_type == FlowType::Api || json_asked(host) {
        Face::Json
    } else {
        Face::ToUi
    };
    step(host, kept, &submission, token, face).await
}

/// The body of a submission, or the 400 refusing it.
fn read_body<H: FlowHost, T: serde::de::DeserializeOwned>(
    host: &mut H,
    body: &[u8],
) -> Result<T, H::Reply> {
    super::parse_body(host.header("content-type"), body).map_err(|reason| {
        let answer = errors::bad_request(&reason, &host.request_id());
        host.answer(answer)
    })
}

/// `submission`'s step on the flow as read, carried out and answered on
/// `face`.
async fn step<H: FlowHost>(
    host: &mut H,
    kept: Kept,
    submission: &Submit,
    token: Option<String>,
    face: Face,
) -> Result<H::Reply, H::Reply> {
    let mut record = kept.record.clone();
    if submission.transient_payload.is_some() {
        record.transient_payload = submission.transient_payload.clone();
    }
    let step = record.recovery_step(submission).expect("a recovery flow");
    let (status, next) = match step {
        Step::Invalid(invalid) => (StatusCode::BAD_REQUEST, *invalid),
        Step::Restart(message) => return restart(host, &record, face, token, message).await,
        Step::Send { email, method } => match send(host, &record, &email, &method, face).await? {
            Ok(sent) => (StatusCode::OK, sent),
            Err(refused) => (StatusCode::BAD_REQUEST, refused),
        },
        Step::Check { code_flow, code } => {
            let passed = record.passed();
            let checked = host
                .check(&kept, &passed, &code_flow, &code, token.as_deref())
                .await?;
            match checked {
                Checked::Passed(ending) => {
                    return Ok(ended(host, &kept.id, &passed, face, token, &ending));
                }
                Checked::Wrong(kind) => {
                    match record.wrong_code(kind, host.config().max_code_attempts) {
                        Ok(next) => (StatusCode::OK, next),
                        Err(message) => return restart(host, &record, face, token, message).await,
                    }
                }
            }
        }
    };
    let token = token.unwrap_or_default();
    if !host.replace(&kept, &next).await? {
        // Another submission moved the flow first: show it as it now is.
        let now = known(host, &kept.id).await?;
        return Ok(shown(
            host,
            face,
            &now.id,
            &now.record,
            &token,
            StatusCode::OK,
        ));
    }
    Ok(shown(host, face, &kept.id, &next, &token, status))
}

/// [`Step::Send`] carried out: the flow once its request is sent, or
/// `Err` with the flow refusing what is no address (nothing sent).
async fn send<H: FlowHost>(
    host: &mut H,
    record: &Record,
    email: &str,
    method: &str,
    face: Face,
) -> Result<Result<Record, Record>, H::Reply> {
    if crate::checks::check_address(email).is_err() {
        return Ok(Err(record.not_an_address(email)));
    }
    let return_to = record.return_to.as_deref();
    let code_flow = host.send(email, method, return_to, face).await?;
    Ok(Ok(record.sent(email, method, code_flow)))
}

/// `GET` of the pages' recovery path with no flow: the pages' request
/// form, a fresh flow of theirs (mailing links) drawn but not kept, so a
/// visit writes nothing; its form posts to [`request_on_page`].
pub async fn start_on_page<H: FlowHost>(host: &mut H, return_to: Option<String>) -> H::Reply {
    let return_to = return_to.and_then(|r| host.allowed_return_to(&r));
    match host.issue_csrf() {
        Ok(token) => {
            let record = fresh(host, PAGES_METHOD, return_to, &token);
            unkept_page(host, &record, &token, StatusCode::OK)
        }
        Err(reply) => reply,
    }
}

/// `POST` of the pages' request form (`email`; `return_to` in the query or
/// the form), after the pages' own CSRF check: the flow is kept only once
/// its request is sent, and drawn as its page (the same page for every
/// address).
pub async fn request_on_page<H: FlowHost>(
    host: &mut H,
    return_to: Option<String>,
    body: &[u8],
) -> H::Reply {
    let requested = async {
        let posted: PageRequest = read_body(host, body)?;
        let Some(token) = host.cookie_token() else {
            return Err(csrf_violation(host, "The anti-CSRF cookie is missing."));
        };
        let return_to = return_to
            .or(posted.return_to)
            .and_then(|r| host.allowed_return_to(&r));
        let record = fresh(host, PAGES_METHOD, return_to, &token);
        match record.recovery_step(&posted.submit) {
            Some(Step::Send { email, method }) => {
                match send(host, &record, &email, &method, Face::Page).await? {
                    Ok(sent) => {
                        let id = host.insert(&sent).await?;
                        Ok(drawn(host, &id, &sent, &token, StatusCode::OK))
                    }
                    Err(refused) => {
                        Ok(unkept_page(host, &refused, &token, StatusCode::BAD_REQUEST))
                    }
                }
            }
            Some(Step::Invalid(invalid)) => {
                Ok(unkept_page(host, &invalid, &token, StatusCode::BAD_REQUEST))
            }
            // A fresh flow has no code to check and nothing to restart.
            _ => Ok(unkept_page(host, &record, &token, StatusCode::BAD_REQUEST)),
        }
    };
    requested.await.unwrap_or_else(|reply| reply)
}

/// A new browser flow offering `method`, not yet kept.
fn fresh<H: FlowHost>(host: &H, method: &str, return_to: Option<String>, token: &str) -> Record {
    let url = request_url(
        host.config().public_url,
        super::RECOVERY_PATH,
        return_to.as_deref(),
    );
    let flow = RecoveryFlow::new(method, None);
    Record::recovery(
        FlowType::Browser,
        host.now(),
        &url,
        return_to,
        Some(token),
        flow,
    )
    .lasting(host.config().lifespan_ns)
}

/// The page of a flow not kept: its form posts to the pages' path, with
/// the flow's `return_to`.
fn unkept_page<H: FlowHost>(
    host: &mut H,
    record: &Record,
    token: &str,
    status: StatusCode,
) -> H::Reply {
    let mut reply_view = record.view("", host.config().public_url, token);
    reply_view["ui"]["action"] = json!(record.request_url);
    if let Some(object) = reply_view.as_object_mut() {
        object.remove("id");
    }
    host.page(status, reply_view, title(record))
}

/// The pages' form: a submission and where to go once recovered.
#[derive(serde::Deserialize)]
struct PageRequest {
    #[serde(flatten)]
    submit: Submit,
    return_to: Option<String>,
}

/// The pages' face of a recovery flow (`GET` of the recovery UI with
/// `?flow=`): its nodes as a form that posts to `ui.action`. `None` when
/// `id` is no recovery flow; a flow this browser can't read, or one that
/// expired, starts over.
pub async fn page<H: FlowHost>(host: &mut H, id: &str) -> Option<H::Reply> {
    let kept = match host.load(id).await {
        Ok(Some(kept)) => kept,
        Ok(None) => return None,
        Err(reply) => return Some(reply),
    };
    if !matches!(kept.record.of, Of::Recovery(_)) {
        return None;
    }
    let token = host.cookie_token();
    if !kept.record.csrf_holds(token.as_deref()) || kept.record.is_expired(host.now()) {
        // Where a flow of its method starts: the pages' own, or the flow API's.
        let start = if method_of(&kept.record) == PAGES_METHOD {
            "/self-service/recovery"
        } else {
            "/self-service/recovery/browser"
        };
        return Some(host.see_other(start));
    }
    let token = token.unwrap_or_default();
    Some(drawn(host, &kept.id, &kept.record, &token, StatusCode::OK))
}

/// A recovery flow's page.
fn drawn<H: FlowHost>(
    host: &mut H,
    id: &str,
    record: &Record,
    token: &str,
    status: StatusCode,
) -> H::Reply {
    let view = record.view(id, host.config().public_url, token);
    host.page(status, view, title(record))
}

/// A recovery flow's page title.
fn title(record: &Record) -> &'static str {
    let Of::Recovery(flow) = &record.of else {
        unreachable!("a recovery flow's page")
    };
    match (flow.state, flow.active.as_str()) {
        (State::ChooseMethod, _) => "Recover your account",
        (State::SentEmail, "code") => "Enter your recovery code",
        (State::SentEmail, _) => "Check your email",
        (State::PassedChallenge, _) => "Account recovered",
    }
}

/// Whether the client wants JSON rather than a redirect.
fn json_asked<H: FlowHost>(host: &H) -> bool {
    super::wants_json(host.header("accept"), host.header("content-type"))
}

/// `return_to` as allowed, or the 400 that refuses it.
fn allowed<H: FlowHost>(
    host: &mut H,
    return_to: Option<String>,
) -> Result<Option<String>, H::Reply> {
    match return_to.filter(|r| !r.is_empty()) {
        None => Ok(None),
        Some(given) => match host.allowed_return_to(&given) {
            Some(allowed) => Ok(Some(allowed)),
            None => {
                let answer = errors::return_to_forbidden(&given, &host.request_id());
                Err(host.answer(answer))
            }
        },
    }
}

/// The method a recovery flow offers.
fn method_of(record: &Record) -> String {
    match &record.of {
        Of::Recovery(flow) => flow.active.clone(),
        _ => METHOD.to_string(),
    }
}

/// A new flow of `flow_type`, kept.
async fn start<H: FlowHost>(
    host: &mut H,
    flow_type: FlowType,
    return_to: Option<String>,
    csrf: Option<&str>,
    message: Option<texts::Text>,
) -> Result<(String, Record), H::Reply> {
    start_with(host, METHOD, flow_type, return_to, csrf, message).await
}

/// A new flow offering `method`, kept.
async fn start_with<H: FlowHost>(
    host: &mut H,
    method: &str,
    flow_type: FlowType,
    return_to: Option<String>,
    csrf: Option<&str>,
    message: Option<texts::Text>,
) -> Result<(String, Record), H::Reply> {
    let face = match flow_type {
        FlowType::Api => Face::Json,
        FlowType::Browser if json_asked(host) => Face::Json,
        FlowType::Browser => Face::Page,
    };
    host.admit_flow(face).await?;
    let mut flow = RecoveryFlow::new(method, None);
    flow.messages.extend(message);
    let url = start_url(host, flow_type, return_to.as_deref());
    let lifespan = host.config().lifespan_ns;
    let record =
        Record::recovery(flow_type, host.now(), &url, return_to, csrf, flow).lasting(lifespan);
    let id = host.insert(&record).await?;
    Ok((id, record))
}

/// The URL a flow of `flow_type` starts at: its `request_url`.
fn start_url<H: FlowHost>(host: &H, flow_type: FlowType, return_to: Option<&str>) -> String {
    let path = match flow_type {
        FlowType::Api => "/self-service/recovery/api",
        FlowType::Browser => "/self-service/recovery/browser",
    };
    request_url(host.config().public_url, path, return_to)
}

/// The recovery flow with `id`, or 404.
async fn known<H: FlowHost>(host: &mut H, id: &str) -> Result<Kept, H::Reply> {
    match host.load(id).await? {
        Some(kept) if matches!(kept.record.of, Of::Recovery(_)) => Ok(kept),
        _ => {
            let answer = errors::not_found("recovery flow", &host.request_id());
            Err(host.answer(answer))
        }
    }
}

fn csrf_violation<H: FlowHost>(host: &mut H, reason: &str) -> H::Reply {
    let answer = errors::csrf_violation(reason, &host.request_id());
    host.answer(answer)
}

/// 410 for an expired flow, naming the new flow made in its place.
async fn expired<H: FlowHost>(host: &mut H, kept: &Kept, token: Option<&str>) -> H::Reply {
    let now = host.now();
    let minutes = now.saturating_sub(kept.record.expires_at) as f64 / 60e9;
    let message = texts::flow_expired(minutes, kept.record.expires_at / 1_000_000_000);
    let restart = match kept.record.flow_type {
        FlowType::Api => None,
        FlowType::Browser => Some(start_url(host, FlowType::Browser, None)),
    };
    let (flow_type, return_to) = (kept.record.flow_type, kept.record.return_to.clone());
    let method = method_of(&kept.record);
    match start_with(host, &method, flow_type, return_to, token, Some(message)).await {
        Ok((id, _)) => {
            let request = host.request_id();
            let expires_at = kept.record.expires_at;
            let answer = errors::expired(expires_at, now, &id, restart.as_deref(), &request);
            host.answer(answer)
        }
        Err(reply) => reply,
    }
}

/// A flow that can't go on: a new one of its type carrying `message`, shown
/// in its place.
async fn restart<H: FlowHost>(
    host: &mut H,
    record: &Record,
    face: Face,
    token: Option<String>,
    message: texts::Text,
) -> Result<H::Reply, H::Reply> {
    let return_to = record.return_to.clone();
    let csrf = token.as_deref();
    let method = method_of(record);
    let (id, fresh) = start_with(
        host,
        &method,
        record.flow_type,
        return_to,
        csrf,
        Some(message),
    )
    .await?;
    let token = token.unwrap_or_default();
    Ok(shown(host, face, &id, &fresh, &token, StatusCode::OK))
}

/// A flow as JSON, with `status`.
fn flow_answer<H: FlowHost>(
    host: &mut H,
    id: &str,
    record: &Record,
    csrf: &str,
    status: StatusCode,
) -> H::Reply {
    let view = record.view(id, host.config().public_url, csrf);
    host.answer(Answer::json(status, &view))
}

/// The flow on `face`.
fn shown<H: FlowHost>(
    host: &mut H,
    face: Face,
    id: &str,
    record: &Record,
    token: &str,
    status: StatusCode,
) -> H::Reply {
    match face {
        Face::Json => flow_answer(host, id, record, token, status),
        Face::ToUi => {
            let location = ui_location(host.config().recovery_ui_url, id);
            host.see_other(&location)
        }
        Face::Page => drawn(host, id, record, token, status),
    }
}

/// A recovery that passed its challenge, answered as configured: a
/// browser's form post goes where the ending leads; a JSON client gets
/// Kratos' 422 or, with `continue_with`, the flow and its actions.
fn ended<H: FlowHost>(
    host: &mut H,
    id: &str,
    passed: &Record,
    face: Face,
    token: Option<String>,
    ending: &Ending,
) -> H::Reply {
    if face != Face::Json {
        return host.see_other(ending.location());
    }
    if host.config().continue_with {
        let token = token.unwrap_or_default();
        let mut view = passed.view(id, host.config().public_url, &token);
        view["continue_with"] = json!(ending.continue_with());
        return host.answer(Answer::json(StatusCode::OK, &view));
    }
    let answer = errors::location_change(ending.location(), &host.request_id());
    host.answer(answer)
}

#[cfg(test)]
mod tests;
