//! Kratos' recovery flows: start one (browser or API), read one, submit to
//! one. The step each submission takes is `reclaim_wire::flows`'; here it
//! is carried out (a request queued, a code redeemed, a session opened).

use std::net::SocketAddr;

use axum::extract::{Query, State};
use axum::http::header::{HeaderValue, ORIGIN, RETRY_AFTER};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use reclaim_wire::answer::Answer;
use reclaim_wire::flows::recovery::{RecoveryFlow, Step, Submit};
use reclaim_wire::flows::settings::Ending as Answered;
use reclaim_wire::flows::{FlowType, Record, errors, texts, ui_location};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

use super::{
    AppState, Kept, body, cookie_token, csrf_token, draw_id, failed, flow_answer, insert, load,
    replace, request_url, see_other, sessions, wants_json, with_cookie,
};
use crate::http::self_service::password::{SESSION_LIFESPAN, SessionCookie, session_cookie};
use crate::http::self_service::redeem::new_session;
use crate::http::{rate_limit, request_id, respond};
use crate::operations::{Error, Redeemed, Step as Redemption};
use crate::storage::{FlowStep, NewRequest, StoredFlow};
use crate::wit::{ErrorKind, IdentityRef, RecoveryError};

/// The method a fresh flow offers.
const METHOD: &str = "code";

#[derive(Deserialize, IntoParams)]
pub struct Start {
    /// Where to send the person once recovered (checked against the allow-list).
    return_to: Option<String>,
}

/// `return_to` as allowed, or the 400 that refuses it.
fn allowed(app: &AppState, return_to: Option<String>) -> Result<Option<String>, Response> {
    match return_to.filter(|r| !r.is_empty()) {
        None => Ok(None),
        Some(given) => app
            .config
            .allowed_return_to(&given)
            .map(Some)
            .ok_or_else(|| respond(errors::return_to_forbidden(&given, &request_id()))),
    }
}

/// A new flow of `flow_type`, kept.
async fn start(
    app: &AppState,
    flow_type: FlowType,
    return_to: Option<String>,
    csrf: Option<&str>,
    message: Option<texts::Text>,
) -> Result<(String, Record), Response> {
    let mut flow = RecoveryFlow::new(METHOD, None);
    flow.messages.extend(message);
    let path = match flow_type {
        FlowType::Api => "/self-service/recovery/api",
        FlowType::Browser => "/self-service/recovery/browser",
    };
    let url = request_url(app, path, return_to.as_deref());
    let lifespan = crate::clock::duration_nanos(app.config.flow_lifespan);
    let record =
        Record::recovery(flow_type, app.now_nanos(), &url, return_to, csrf, flow).lasting(lifespan);
    let id = insert(app, &record).await?;
    Ok((id, record))
}

/// Starts a recovery flow for a browser: JSON (with the CSRF cookie) for a
/// client that asks for it, else a 303 to the recovery UI.
#[utoipa::path(get, path = "/self-service/recovery/browser", tag = "self-service-flows",
    params(Start),
    responses(
        (status = 200, description = "The flow (Kratos' `recoveryFlow`), for a client asking for JSON", body = Object),
        (status = 303, description = "To the recovery UI with `?flow=`"),
        (status = 400, description = "`return_to` not allowed, or a session already live", body = Object),
    ))]
pub async fn create_browser(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Start>,
) -> Response {
    match create_browser_flow(&app, &headers, q).await {
        Ok(response) | Err(response) => response,
    }
}

async fn create_browser_flow(
    app: &AppState,
    headers: &HeaderMap,
    q: Start,
) -> Result<Response, Response> {
    let return_to = allowed(app, q.return_to)?;
    if sessions::live(app, headers).await?.is_some() {
        return Err(respond(errors::session_already_available(&request_id())));
    }
    let (token, cookie) = csrf_token(app, headers)?;
    let (id, record) = start(app, FlowType::Browser, return_to, Some(&token), None).await?;
    let answer = if wants_json(headers) {
        flow_answer(app, &id, &record, &token, StatusCode::OK)
    } else {
        see_other(&ui_location(&app.config.recovery_ui_url, &id))
    };
    Ok(with_cookie(answer, cookie))
}

/// Starts a recovery flow for a native app: no cookies, no CSRF token.
#[utoipa::path(get, path = "/self-service/recovery/api", tag = "self-service-flows",
    params(Start),
    responses(
        (status = 200, description = "The flow, `type: \"api\"`", body = Object),
        (status = 400, description = "`return_to` not allowed", body = Object),
    ))]
pub async fn create_api(State(app): State<AppState>, Query(q): Query<Start>) -> Response {
    let flow = async {
        let return_to = allowed(&app, q.return_to)?;
        let (id, record) = start(&app, FlowType::Api, return_to, None, None).await?;
        Ok::<_, Response>(flow_answer(&app, &id, &record, "", StatusCode::OK))
    };
    match flow.await {
        Ok(response) | Err(response) => response,
    }
}

#[derive(Deserialize, IntoParams)]
pub struct FlowId {
    /// The flow's id.
    id: Option<String>,
}

/// A recovery flow; a browser flow only to the browser holding its cookie.
#[utoipa::path(get, path = "/self-service/recovery/flows", tag = "self-service-flows",
    params(FlowId),
    responses(
        (status = 200, description = "The flow", body = Object),
        (status = 400, description = "No `id`", body = Object),
        (status = 403, description = "`security_csrf_violation`: a browser flow without its cookie", body = Object),
        (status = 404, description = "No such flow", body = Object),
        (status = 410, description = "`self_service_flow_expired`, with `use_flow_id`", body = Object),
    ))]
pub async fn get_flow(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<FlowId>,
) -> Response {
    let read = async {
        let Some(id) = q.id else {
            return Err(respond(errors::bad_request(
                "The flow id is missing: ?id=<flow id>.",
                &request_id(),
            )));
        };
        let kept = known(&app, &id).await?;
        let token = cookie_token(&app, &headers);
        if !kept.record.csrf_holds(token.as_deref()) {
            return Err(respond(errors::csrf_violation(
                "The anti-CSRF cookie of this browser flow is missing or belongs to another flow.",
                &request_id(),
            )));
        }
        if kept.record.is_expired(app.now_nanos()) {
            return Err(expired(&app, &kept, token.as_deref()).await);
        }
        Ok(flow_answer(
            &app,
            &kept.id,
            &kept.record,
            token.as_deref().unwrap_or(""),
            StatusCode::OK,
        ))
    };
    match read.await {
        Ok(response) | Err(response) => response,
    }
}

/// The recovery flow with `id`, or 404.
async fn known(app: &AppState, id: &str) -> Result<Kept, Response> {
    match load(app, id).await? {
        Some(kept) if matches!(kept.record.of, reclaim_wire::flows::Of::Recovery(_)) => Ok(kept),
        _ => Err(respond(errors::not_found("recovery flow", &request_id()))),
    }
}

/// 410 for an expired flow, naming the new flow made in its place.
async fn expired(app: &AppState, kept: &Kept, token: Option<&str>) -> Response {
    let now = app.now_nanos();
    let minutes = now.saturating_sub(kept.record.expires_at) as f64 / 60e9;
    let message = texts::flow_expired(minutes, kept.record.expires_at / 1_000_000_000);
    let restart = match kept.record.flow_type {
        FlowType::Api => None,
        FlowType::Browser => Some(request_url(app, "/self-service/recovery/browser", None)),
    };
    match start(
        app,
        kept.record.flow_type,
        kept.record.return_to.clone(),
        token,
        Some(message),
    )
    .await
    {
        Ok((id, _)) => respond(errors::expired(
            kept.record.expires_at,
            now,
            &id,
            restart.as_deref(),
            &request_id(),
        )),
        Err(refusal) => refusal,
    }
}

/// `POST /self-service/recovery?flow=`: a submission to a flow (JSON or a
/// form). Called by the pages' handler of the path when `flow` is given.
pub async fn submit(
    app: AppState,
    peer: SocketAddr,
    headers: HeaderMap,
    id: String,
    bytes: axum::body::Bytes,
) -> Response {
    match submit_flow(&app, peer, &headers, &id, &bytes).await {
        Ok(response) | Err(response) => response,
    }
}

async fn submit_flow(
    app: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    id: &str,
    bytes: &[u8],
) -> Result<Response, Response> {
    let kept = known(app, id).await?;
    let submission: Submit = body(headers, bytes)?;
    let token = match kept.record.flow_type {
        FlowType::Browser => {
            let holds = app.csrf.verify(headers, submission.csrf_token.as_deref())
                && kept.record.csrf_holds(submission.csrf_token.as_deref());
            if !holds {
                return Err(respond(errors::csrf_violation(
                    "The anti-CSRF token of the form does not match this browser's cookie.",
                    &request_id(),
                )));
            }
            submission.csrf_token.clone().unwrap_or_default()
        }
        // A browser never sends a native app's flow: one that does was led
        // there by another site.
        FlowType::Api if headers.contains_key(ORIGIN) => {
            return Err(respond(errors::csrf_violation(
                "An API flow was submitted by a browser.",
                &request_id(),
            )));
        }
        FlowType::Api => String::new(),
    };
    if kept.record.is_expired(app.now_nanos()) {
        return Err(expired(
            app,
            &kept,
            Some(&token).filter(|t| !t.is_empty()).map(String::as_str),
        )
        .await);
    }
    let json = kept.record.flow_type == FlowType::Api || wants_json(headers);
    let mut record = kept.record.clone();
    if submission.transient_payload.is_some() {
        record.transient_payload = submission.transient_payload.clone();
    }
    let step = record.recovery_step(&submission).expect("a recovery flow");
    let (status, next) = match step {
        Step::Invalid(invalid) => (StatusCode::BAD_REQUEST, *invalid),
        Step::Restart(message) => return restart(app, &record, json, &token, message).await,
        Step::Send { email, method } => {
            if reclaim_wire::checks::check_address(&email).is_err() {
                let mut invalid = record.clone();
                if let reclaim_wire::flows::Of::Recovery(f) = &mut invalid.of {
                    f.email = Some(email.clone());
                    f.email_messages =
                        vec![texts::invalid(&format!("{email:?} is not valid \"email\""))];
                }
                (StatusCode::BAD_REQUEST, invalid)
            } else {
                admit(app, peer, headers, &email).await?;
                let code_flow = (method == "code").then(draw_id).transpose()?;
                let request = NewRequest {
                    email: &email,
                    return_to: record.return_to.as_deref(),
                    code_flow: code_flow.as_deref(),
                };
                app.backend
                    .queue_request(&request, app.now_nanos())
                    .await
                    .map_err(failed)?;
                (StatusCode::OK, record.sent(&email, &method, code_flow))
            }
        }
        Step::Check { code_flow, code } => {
            let (secret, session) = new_session(app).map_err(|e| super::refused(&e))?;
            let passed = record.passed();
            let ending = Ending::prepare(
                app,
                record.flow_type,
                record.return_to.clone(),
                Some(token.as_str()).filter(|t| !t.is_empty()),
                session.key.clone(),
                "code_recovery",
                Some((&kept, &passed)),
            )?;
            let settings_id = ending.settings_id.clone();
            match app
                .reclaim
                .redeem_code_into(&code_flow, &code, session, ending.step())
                .await
            {
                Ok(redeemed) => {
                    return ended(
                        app,
                        &kept,
                        &passed,
                        json,
                        &token,
                        redeemed,
                        secret,
                        settings_id,
                    )
                    .await;
                }
                Err(Error::Refused(r)) if Record::is_wrong_code(kind_of(&r)) => {
                    let max = app
                        .config
                        .settings
                        .max_code_attempts
                        .unwrap_or(reclaim_wire::flows::DEFAULT_MAX_CODE_ATTEMPTS);
                    match record.wrong_code(kind_of(&r), max) {
                        Ok(next) => (StatusCode::OK, next),
                        Err(message) => return restart(app, &record, json, &token, message).await,
                    }
                }
                Err(e) => return Err(super::refused(&e)),
            }
        }
    };
    if !replace(app, &kept, &next).await? {
        // Another submission moved the flow first: show it as it now is.
        let now = known(app, id).await?;
        return Ok(shown(
            app,
            json,
            &now.id,
            &now.record,
            &token,
            StatusCode::OK,
        ));
    }
    Ok(shown(app, json, &kept.id, &next, &token, status))
}

/// A flow that can't go on: a new one of its type carrying `message`, shown
/// in its place.
async fn restart(
    app: &AppState,
    record: &Record,
    json: bool,
    token: &str,
    message: texts::Text,
) -> Result<Response, Response> {
    let csrf = Some(token).filter(|t| !t.is_empty());
    let (id, fresh) = start(
        app,
        record.flow_type,
        record.return_to.clone(),
        csrf,
        Some(message),
    )
    .await?;
    Ok(shown(app, json, &id, &fresh, token, StatusCode::OK))
}

/// The flow to a JSON client; a browser's form post goes back to the UI.
fn shown(
    app: &AppState,
    json: bool,
    id: &str,
    record: &Record,
    token: &str,
    status: StatusCode,
) -> Response {
    if json {
        flow_answer(app, id, record, token, status)
    } else {
        see_other(&ui_location(&app.config.recovery_ui_url, id))
    }
}

fn kind_of(refusal: &RecoveryError) -> reclaim_wire::refusal::Kind {
    reclaim_wire::kind_of!(ErrorKind, refusal.kind)
}

/// The pages' rate limit on requests by address, for the flows too: a
/// flow can't mail an address more often than the form can.
async fn admit(
    app: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    email: &str,
) -> Result<(), Response> {
    match rate_limit::count_request(app, peer, headers, email).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(wait)) => {
            let body = json!({"error": {
                "code": 429, "status": "Too Many Requests",
                "reason": "Too many account recovery attempts.",
                "message": format!("Please try again in {} seconds. Codes and links already sent stay valid.", wait.as_secs().max(1)),
                "request": request_id(),
            }});
            let mut response = respond(Answer::json(StatusCode::TOO_MANY_REQUESTS, &body));
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(wait.as_secs().max(1)));
            Err(response)
        }
        Err(e) => Err(failed(e)),
    }
}

/// What a redemption writes of the self-service flows, on either face,
/// in its own unit of work (`Reclaim::redeem_code_into`): the recovery
/// flow's new state (`passed`, when a flow of the flow API is redeemed)
/// and, when it opened a session, a settings flow carrying 1060001 and the
/// record of how the session began (for `whoami`). The settings flow's id
/// is drawn now, so that the answer can name it.
pub(crate) struct Ending {
    pub settings_id: String,
    step: Box<dyn FnOnce(&Redeemed) -> FlowStep + Send>,
}

impl Ending {
    pub(crate) fn prepare(
        app: &AppState,
        flow_type: FlowType,
        return_to: Option<String>,
        csrf: Option<&str>,
        session_key: String,
        method: &'static str,
        passed: Option<(&Kept, &Record)>,
    ) -> Result<Self, Response> {
        let now = app.now_nanos();
        let until = now.saturating_add(crate::clock::duration_nanos(SESSION_LIFESPAN));
        let url = request_url(app, "/self-service/settings/browser", None);
        let settings_id = draw_id()?;
        let replace = passed.map(|(kept, record)| StoredFlow {
            id: kept.id.clone(),
            expires_at: record.expires_at,
            version: kept.version,
            body: record.to_json(),
        });
        let (id, csrf) = (settings_id.clone(), csrf.map(str::to_string));
        let step = move |redeemed: &Redeemed| {
            let Redemption::Session = redeemed.step else {
                // Handed off: no session, so no settings flow.
                return FlowStep {
                    replace,
                    ..FlowStep::default()
                };
            };
            let identity_id = &redeemed.redemption.identity_id;
            let settings = Record::settings(
                flow_type,
                now,
                &url,
                return_to,
                csrf.as_deref(),
                identity_id,
                Some(until),
            );
            let session = Record::session(identity_id, &session_key, method, now, until);
            FlowStep {
                replace,
                insert: vec![stored(id, &settings)],
                put: vec![stored(sessions::record_id(identity_id), &session)],
            }
        };
        Ok(Self {
            settings_id,
            step: Box::new(step),
        })
    }

    /// The ending of a redemption on the pages' forms (a link's
    /// confirmation, the code form): a browser's settings flow.
    pub(crate) fn on_pages(
        app: &AppState,
        headers: &HeaderMap,
        session_key: &str,
        method: &'static str,
    ) -> Result<Self, Response> {
        let csrf = cookie_token(app, headers);
        let key = session_key.to_string();
        Self::prepare(
            app,
            FlowType::Browser,
            None,
            csrf.as_deref(),
            key,
            method,
            None,
        )
    }

    /// The step, for the redemption to write.
    pub(crate) fn step(self) -> impl FnOnce(&Redeemed) -> FlowStep + Send + 'static {
        self.step
    }
}

fn stored(id: String, record: &Record) -> StoredFlow {
    StoredFlow {
        id,
        expires_at: record.expires_at,
        version: 0,
        body: record.to_json(),
    }
}

/// A recovery that passed its challenge: a session and a settings flow,
/// or the platform's hand-off; answered as configured.
#[allow(clippy::too_many_arguments)]
async fn ended(
    app: &AppState,
    kept: &Kept,
    passed: &Record,
    json: bool,
    token: &str,
    redeemed: Redeemed,
    secret: String,
    settings_id: String,
) -> Result<Response, Response> {
    let identity_id = redeemed.redemption.identity_id.clone();
    let (ending, cookie) = match redeemed.step {
        Redemption::HandedOff { assertion } => {
            match app
                .reclaim
                .notify_account_recovered(&IdentityRef::Id(identity_id.clone()))
                .await
            {
                Ok(()) => app.courier.notify_one(),
                Err(e) => tracing::warn!(error = %e, "account-recovered notice not queued"),
            }
            let target = passed
                .return_to
                .as_deref()
                .and_then(|r| app.config.allowed_return_to(r))
                .or_else(|| app.config.handoff_url.clone())
                .and_then(|t| reclaim_wire::checks::handoff_location(&t, &assertion));
            let Some(location) = target else {
                return Err(failed(anyhow::anyhow!(
                    "no hand-off URL for an identity with a second factor"
                )));
            };
            (Answered::HandOff { location }, None)
        }
        Redemption::Session => {
            let cookie = SessionCookie {
                identity_id: identity_id.clone(),
                secret,
            };
            let location = ui_location(&app.config.settings_ui_url, &settings_id);
            let ending = if app.config.use_continue_with_transitions {
                Answered::ContinueWith {
                    session_token: (passed.flow_type == FlowType::Api).then(|| cookie.value()),
                    settings_flow: settings_id,
                    location,
                }
            } else {
                Answered::RedirectToSettings { location }
            };
            let set = (passed.flow_type == FlowType::Browser)
                .then(|| session_cookie(app, &cookie.value(), SESSION_LIFESPAN.as_secs()));
            (ending, set)
        }
    };
    let response = if !json {
        see_other(ending.location())
    } else if app.config.use_continue_with_transitions {
        let mut view = passed.view(&kept.id, &app.config.settings.public_url, token);
        view["continue_with"] = json!(ending.continue_with());
        respond(Answer::json(StatusCode::OK, &view))
    } else {
        respond(errors::location_change(ending.location(), &request_id()))
    };
    Ok(with_cookie(response, cookie))
}
