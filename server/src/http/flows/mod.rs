//! Kratos' self-service flow API on `reclaim serve`, for SPAs, native apps
//! and Ory's own SDKs and UI: adapters of `reclaim_wire::flows`, which
//! decides every state, message and limit. This file holds what the
//! recovery flows, the settings flows and `whoami` share: keeping a flow,
//! the session a request carries, and how a body and an answer travel.

// Every step here may end the request early with its answer, so helpers
// return `Result<_, Response>` as axum's own handlers do; boxing the
// response would only add an allocation to the refusals.
#![allow(clippy::result_large_err)]

mod host;
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

pub(crate) use reclaim_wire::flows::driver::Kept;

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
    reclaim_wire::flows::request_url(&app.config.settings.public_url, path, return_to)
}

/// Whether the client wants JSON rather than a redirect.
pub(super) fn wants_json(headers: &HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    reclaim_wire::flows::wants_json(text(ACCEPT), text(CONTENT_TYPE))
}

/// A JSON or urlencoded body (Kratos takes both), or the 400 refusing it.
pub(super) fn body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    bytes: &[u8],
) -> Result<T, Response> {
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    reclaim_wire::flows::parse_body(content_type, bytes)
        .map_err(|reason| respond(errors::bad_request(&reason, &request_id())))
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
    app.csrf.cookie_token(headers)
}

pub use reclaim_wire::CSRF_PATH;

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
