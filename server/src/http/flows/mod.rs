//! Kratos' self-service flow API on `reclaim serve`, for SPAs, native apps
//! and Ory's own SDKs and UI: adapters of `reclaim_wire::flows`, which
//! decides every state, message and limit. This file holds what the
//! recovery flows, the settings flows and `whoami` share: keeping a flow,
//! the session a request carries, and how a body and an answer travel.

// Every step here may end the request early with its answer, so helpers
// return `Result<_, Response>` as axum's own handlers do; boxing the
// response would only add an allocation to the refusals.
#![allow(clippy::result_large_err)]

pub mod recovery;
pub mod sessions;
pub mod settings;

use axum::http::header::{ACCEPT, CONTENT_TYPE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use reclaim_wire::answer::Answer;
use reclaim_wire::flows::{Record, errors};
use reclaim_wire::routes::{Route, Verb};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AppState, csrf, request_id, respond};
use crate::operations::Error;
use crate::storage::StoredFlow;

/// A flow as read: its id, the version a replacement names, its record.
pub(crate) struct Kept {
    pub id: String,
    pub version: u64,
    pub record: Record,
}

/// A fresh UUID (v4), for a flow or the code a flow binds.
pub(super) fn draw_id() -> Result<String, Response> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|_| failed(anyhow::anyhow!("no randomness")))?;
    Ok(uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string())
}

/// The answer to a failure of ours: 503 when the store is out of reach, else 500.
pub(super) fn failed(e: impl Into<anyhow::Error>) -> Response {
    refused(&Error::Failed(e.into()))
}

/// An operation's error, in the same shape.
pub(super) fn refused(e: &Error) -> Response {
    let outcome = super::outcome::outcome(e);
    respond(Answer::from(
        &reclaim_wire::kratos::ErrorGeneric::from_outcome(&outcome, &request_id()),
    ))
}

/// The flow with `id`, if it is one.
pub(super) async fn load(app: &AppState, id: &str) -> Result<Option<Kept>, Response> {
    let (backend, id) = (app.backend.clone(), id.to_owned());
    let stored = tokio::task::spawn_blocking(move || backend.flow(&id))
        .await
        .map_err(failed)?
        .map_err(failed)?;
    Ok(stored.and_then(|s| {
        Record::from_json(&s.body).map(|record| Kept {
            id: s.id,
            version: s.version,
            record,
        })
    }))
}

/// Keeps a new flow under a fresh id; the id.
pub(super) async fn insert(app: &AppState, record: &Record) -> Result<String, Response> {
    let id = draw_id()?;
    let stored = StoredFlow {
        id: id.clone(),
        expires_at: record.expires_at,
        version: 0,
        body: record.to_json(),
    };
    app.backend
        .save_flows(None, &[stored], &[])
        .await
        .map_err(failed)?;
    Ok(id)
}

/// Replaces the flow as read; false when another request moved it first.
pub(super) async fn replace(
    app: &AppState,
    kept: &Kept,
    record: &Record,
) -> Result<bool, Response> {
    let stored = StoredFlow {
        id: kept.id.clone(),
        expires_at: record.expires_at,
        version: kept.version,
        body: record.to_json(),
    };
    app.backend
        .save_flows(Some(&stored), &[], &[])
        .await
        .map_err(failed)
}

/// `path` of the public URL, with `return_to` when the flow has one: a
/// flow's `request_url`.
pub(super) fn request_url(app: &AppState, path: &str, return_to: Option<&str>) -> String {
    let base = app.config.settings.public_url.trim_end_matches('/');
    match return_to {
        Some(r) => format!(
            "{base}{path}?{}",
            serde_urlencoded::to_string([("return_to", r)]).unwrap_or_default()
        ),
        None => format!("{base}{path}"),
    }
}

/// Whether the client wants JSON rather than a redirect (an SPA's fetch,
/// Ory's SDKs), as Kratos negotiates it.
pub(super) fn wants_json(headers: &HeaderMap) -> bool {
    let says_json = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .is_some_and(|v| v.contains("application/json"))
    };
    says_json(ACCEPT) || says_json(CONTENT_TYPE)
}

/// A JSON or urlencoded body (Kratos takes both).
pub(super) fn body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    bytes: &[u8],
) -> Result<T, Response> {
    let is_json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let parsed = if is_json {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    } else {
        // A form names `method` twice (the hidden node and the button, as
        // Kratos' own UI posts it): the first of each name counts.
        let mut fields = serde_json::Map::new();
        for (name, value) in url::form_urlencoded::parse(bytes) {
            fields
                .entry(name.into_owned())
                .or_insert_with(|| serde_json::Value::String(value.into_owned()));
        }
        serde_json::from_value(serde_json::Value::Object(fields)).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| {
        respond(errors::bad_request(
            &format!("The request body could not be read: {e}"),
            &request_id(),
        ))
    })
}

/// The CSRF token of the request's cookie, and the cookie to set when it
/// had none (`Set-Cookie`, for `/self-service`).
pub(super) fn csrf_token(
    app: &AppState,
    headers: &HeaderMap,
) -> Result<(String, Option<HeaderValue>), Response> {
    let (token, cookie) = app
        .csrf
        .issue(headers)
        .map_err(|_| failed(anyhow::anyhow!("no randomness for a CSRF cookie")))?;
    let cookie = cookie.map(|c| app.private_cookie(csrf::COOKIE_NAME, &c, CSRF_PATH, None));
    Ok((token, cookie))
}

/// The CSRF token a request's cookie stands for, if it carries one.
pub(crate) fn cookie_token(app: &AppState, headers: &HeaderMap) -> Option<String> {
    // With a cookie, `issue` signs it and sets none.
    app.csrf
        .issue(headers)
        .ok()
        .filter(|(_, new_cookie)| new_cookie.is_none())
        .map(|(token, _)| token)
}

/// The page of a recovery flow of the flow API (the pages' face of the
/// same state machine): its nodes as a form that posts to `ui.action`.
/// `None` when `id` is no such flow (the pages' own code flows); a flow
/// this browser can't read, or one that expired, starts over.
pub(crate) async fn recovery_page(
    app: &AppState,
    headers: &HeaderMap,
    id: &str,
) -> Option<Response> {
    let kept = match load(app, id).await {
        Ok(Some(kept)) => kept,
        Ok(None) => return None,
        Err(refusal) => return Some(refusal),
    };
    let reclaim_wire::flows::Of::Recovery(flow) = &kept.record.of else {
        return None;
    };
    let token = cookie_token(app, headers);
    if !kept.record.csrf_holds(token.as_deref()) || kept.record.is_expired(app.now_nanos()) {
        return Some(see_other("/self-service/recovery/browser"));
    }
    let title = match (flow.state, flow.active.as_str()) {
        (reclaim_wire::flows::recovery::State::ChooseMethod, _) => "Recover your account",
        (reclaim_wire::flows::recovery::State::SentEmail, "code") => "Enter your recovery code",
        (reclaim_wire::flows::recovery::State::SentEmail, _) => "Check your email",
        (reclaim_wire::flows::recovery::State::PassedChallenge, _) => "Account recovered",
    };
    let view = kept.record.view(
        &kept.id,
        &app.config.settings.public_url,
        token.as_deref().unwrap_or(""),
    );
    Some(app.pages.render(
        StatusCode::OK,
        "flow.html",
        minijinja::context! { flow => view, title },
    ))
}

/// Where the CSRF cookie is sent: the pages and both flows.
pub const CSRF_PATH: &str = "/self-service";

/// A flow as JSON, with status `status`.
pub(super) fn flow_answer(
    app: &AppState,
    kept_id: &str,
    record: &Record,
    csrf: &str,
    status: StatusCode,
) -> Response {
    respond(Answer::json(
        status,
        &record.view(kept_id, &app.config.settings.public_url, csrf),
    ))
}

/// A 303 to `location`.
pub(crate) fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(location) => {
            let mut response = StatusCode::SEE_OTHER.into_response();
            response.headers_mut().insert(LOCATION, location);
            response
        }
        Err(e) => failed(anyhow::anyhow!("a location that is no header value: {e}")),
    }
}

/// `response` with `cookie` set, if there is one.
pub(super) fn with_cookie(mut response: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(cookie) = cookie {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}

/// This area's handler of one method of a route (`http::endpoint`).
pub(super) fn endpoint(route: Route, verb: Verb) -> Option<axum::routing::MethodRouter<AppState>> {
    use axum::routing::{get, post};
    Some(match (route, verb) {
        (Route::RecoveryFlowBrowser, Verb::Get) => get(recovery::create_browser),
        (Route::RecoveryFlowApi, Verb::Get) => get(recovery::create_api),
        (Route::RecoveryFlows, Verb::Get) => get(recovery::get_flow),
        (Route::SettingsFlowBrowser, Verb::Get) => get(settings::create_browser),
        (Route::SettingsFlowApi, Verb::Get) => get(settings::create_api),
        (Route::SettingsFlows, Verb::Get) => get(settings::get_flow),
        (Route::Settings, Verb::Post) => post(settings::submit),
        (Route::Whoami, Verb::Get) => get(sessions::whoami),
        _ => return None,
    })
}

/// This area's routes in the OpenAPI document.
pub(super) fn openapi() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(recovery::create_browser))
        .routes(routes!(recovery::create_api))
        .routes(routes!(recovery::get_flow))
        .routes(routes!(settings::create_browser))
        .routes(routes!(settings::create_api))
        .routes(routes!(settings::get_flow))
        .routes(routes!(settings::submit))
        .routes(routes!(sessions::whoami))
}
