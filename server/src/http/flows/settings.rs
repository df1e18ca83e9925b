//! Kratos' settings flows, for the password a recovery ends in: only the
//! recovery's session may use them, and only while it lives (the
//! privileged window); saving a password ends the session.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use reclaim_wire::answer::Answer;
use reclaim_wire::flows::settings::SettingsSubmit;
use reclaim_wire::flows::{FlowType, Record, errors, ui_location};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

use super::sessions::{self, Live};
use super::{
    AppState, Kept, body, cookie_token, csrf_token, failed, insert, load, replace, request_url,
    see_other, wants_json, with_cookie,
};
use crate::http::self_service::password::session_cookie;
use crate::http::{request_id, respond};
use crate::passwords;
use crate::wit::IdentityRef;

/// A settings flow as Kratos shows it: with the identity as it now is.
async fn view(
    app: &AppState,
    id: &str,
    record: &Record,
    csrf: &str,
) -> Result<serde_json::Value, Response> {
    let identity_id = &record.settings_flow().expect("a settings flow").identity_id;
    let mut view = record.view(id, &app.config.settings.public_url, csrf);
    view["identity"] = sessions::identity(app, identity_id).await?;
    Ok(view)
}

/// A settings flow, as JSON with `status`.
async fn shown(
    app: &AppState,
    id: &str,
    record: &Record,
    csrf: &str,
    status: StatusCode,
) -> Response {
    match view(app, id, record, csrf).await {
        Ok(view) => respond(Answer::json(status, &view)),
        Err(refusal) => refusal,
    }
}

async fn session(app: &AppState, headers: &HeaderMap) -> Result<Live, Response> {
    sessions::live(app, headers)
        .await?
        .ok_or_else(|| respond(errors::no_session(&request_id())))
}

async fn start(
    app: &AppState,
    headers: &HeaderMap,
    flow_type: FlowType,
) -> Result<Response, Response> {
    let live = session(app, headers).await?;
    let (token, cookie) = match flow_type {
        FlowType::Browser => {
            let (token, cookie) = csrf_token(app, headers)?;
            (Some(token), cookie)
        }
        FlowType::Api => (None, None),
    };
    let identity_id = &live.cookie.identity_id;
    let path = match flow_type {
        FlowType::Api => "/self-service/settings/api",
        FlowType::Browser => "/self-service/settings/browser",
    };
    let url = request_url(app, path, None);
    let record = Record::settings(
        flow_type,
        app.now_nanos(),
        &url,
        None,
        token.as_deref(),
        identity_id,
        None,
    );
    let id = insert(app, &record).await?;
    let answer = if flow_type == FlowType::Api || wants_json(headers) {
        shown(
            app,
            &id,
            &record,
            token.as_deref().unwrap_or(""),
            StatusCode::OK,
        )
        .await
    } else {
        see_other(&ui_location(&app.config.settings_ui_url, &id))
    };
    Ok(with_cookie(answer, cookie))
}

/// Starts a settings flow for the browser's recovery session.
#[utoipa::path(get, path = "/self-service/settings/browser", tag = "self-service-flows",
    responses(
        (status = 200, description = "The flow (Kratos' `settingsFlow`), for a client asking for JSON", body = Object),
        (status = 303, description = "To the settings UI with `?flow=`"),
        (status = 401, description = "No live session", body = Object),
    ))]
pub async fn create_browser(State(app): State<AppState>, headers: HeaderMap) -> Response {
    match start(&app, &headers, FlowType::Browser).await {
        Ok(response) | Err(response) => response,
    }
}

/// Starts a settings flow for a native app's session token.
#[utoipa::path(get, path = "/self-service/settings/api", tag = "self-service-flows",
    params(("X-Session-Token" = String, Header, description = "The session token")),
    responses(
        (status = 200, description = "The flow, `type: \"api\"`", body = Object),
        (status = 401, description = "No live session", body = Object),
    ))]
pub async fn create_api(State(app): State<AppState>, headers: HeaderMap) -> Response {
    match start(&app, &headers, FlowType::Api).await {
        Ok(response) | Err(response) => response,
    }
}

#[derive(Deserialize, IntoParams)]
pub struct FlowId {
    /// The flow's id.
    id: Option<String>,
    /// The flow's id, as the submission names it.
    flow: Option<String>,
}

/// The settings flow `id` of the request's session, or the refusal.
async fn owned(
    app: &AppState,
    headers: &HeaderMap,
    id: &str,
    csrf: Option<&str>,
) -> Result<(Live, Kept), Response> {
    let live = session(app, headers).await?;
    let kept = match load(app, id).await? {
        Some(kept) if kept.record.settings_flow().is_some() => kept,
        _ => return Err(respond(errors::not_found("settings flow", &request_id()))),
    };
    let flow = kept.record.settings_flow().expect("a settings flow");
    if flow.identity_id != live.cookie.identity_id {
        return Err(respond(errors::identity_mismatch(&request_id())));
    }
    if !kept.record.csrf_holds(csrf) {
        return Err(respond(errors::csrf_violation(
            "The anti-CSRF cookie or token of this browser flow is missing or wrong.",
            &request_id(),
        )));
    }
    if kept.record.is_expired(app.now_nanos()) {
        let now = app.now_nanos();
        return Err(respond(errors::expired(
            kept.record.expires_at,
            now,
            &kept.id,
            None,
            &request_id(),
        )));
    }
    Ok((live, kept))
}

/// A settings flow of the request's session.
#[utoipa::path(get, path = "/self-service/settings/flows", tag = "self-service-flows",
    params(FlowId),
    responses(
        (status = 200, description = "The flow", body = Object),
        (status = 400, description = "No `id`", body = Object),
        (status = 401, description = "No live session", body = Object),
        (status = 403, description = "Another session's flow, or a browser flow without its cookie", body = Object),
        (status = 404, description = "No such flow", body = Object),
        (status = 410, description = "Expired", body = Object),
    ))]
pub async fn get_flow(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<FlowId>,
) -> Response {
    let Some(id) = q.id.or(q.flow) else {
        return respond(errors::bad_request(
            "The flow id is missing: ?id=<flow id>.",
            &request_id(),
        ));
    };
    let token = cookie_token(&app, &headers);
    match owned(&app, &headers, &id, token.as_deref()).await {
        Ok((_, kept)) => {
            let csrf = token.as_deref().unwrap_or("");
            shown(&app, &kept.id, &kept.record, csrf, StatusCode::OK).await
        }
        Err(refusal) => refusal,
    }
}

/// Saves the new password (the pages' rules, Argon2id) and ends the session.
#[utoipa::path(post, path = "/self-service/settings", tag = "self-service-flows",
    params(FlowId),
    request_body(content = Object, description = "`{\"method\": \"password\", \"password\": \"...\", \"csrf_token\": \"...\"}`, JSON or a form"),
    responses(
        (status = 200, description = "`state: \"success\"` and 1050001 (and `continue_with` to the recovery's `return_to`)", body = Object),
        (status = 303, description = "A browser's form post: to `return_to` or the settings UI"),
        (status = 400, description = "The password is refused (the flow says why), or the body can't be read", body = Object),
        (status = 401, description = "No live session", body = Object),
        (status = 403, description = "Another session's flow, or CSRF", body = Object),
    ))]
pub async fn submit(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<FlowId>,
    bytes: axum::body::Bytes,
) -> Response {
    match save(&app, &headers, q.flow.or(q.id).unwrap_or_default(), &bytes).await {
        Ok(response) | Err(response) => response,
    }
}

async fn save(
    app: &AppState,
    headers: &HeaderMap,
    id: String,
    bytes: &[u8],
) -> Result<Response, Response> {
    let submission: SettingsSubmit = body(headers, bytes)?;
    let (live, kept) = owned(app, headers, &id, submission.csrf_token.as_deref()).await?;
    if kept.record.flow_type == FlowType::Browser
        && !app.csrf.verify(headers, submission.csrf_token.as_deref())
    {
        return Err(respond(errors::csrf_violation(
            "The anti-CSRF token does not match this browser's cookie.",
            &request_id(),
        )));
    }
    let json = kept.record.flow_type == FlowType::Api || wants_json(headers);
    let token = submission.csrf_token.clone().unwrap_or_default();
    let password = match kept.record.password_of(&submission, |p| {
        passwords::check_new(p, p).map_err(str::to_string)
    }) {
        Ok(password) => password.to_string(),
        Err(refused) => {
            return Ok(shown(app, &kept.id, &refused, &token, StatusCode::BAD_REQUEST).await);
        }
    };
    let _permit = app.hashing.acquire().await.map_err(failed)?;
    let hash = tokio::task::spawn_blocking(move || passwords::hash(&password))
        .await
        .map_err(failed)?
        .map_err(failed)?;
    let cookie = &live.cookie;
    let completed = app
        .reclaim
        .complete_recovery(&cookie.identity_id, &cookie.key(), &hash)
        .await
        .map_err(|e| super::refused(&e))?;
    let Some(completed) = completed else {
        return Err(respond(errors::no_session(&request_id())));
    };
    match app
        .reclaim
        .notify_password_changed(&IdentityRef::Id(cookie.identity_id.clone()))
        .await
    {
        Ok(()) => app.courier.notify_one(),
        Err(e) => tracing::warn!(error = %e, "password-changed notice not queued"),
    }
    let saved = kept.record.saved();
    replace(app, &kept, &saved).await?;
    let return_to = completed
        .return_to
        .or_else(|| kept.record.return_to.clone())
        .and_then(|r| app.config.allowed_return_to(&r));
    let response = if json {
        match view(app, &kept.id, &saved, &token).await {
            Ok(mut view) => {
                if let Some(url) = &return_to {
                    view["continue_with"] =
                        json!([{"action": "redirect_browser_to", "redirect_browser_to": url}]);
                }
                respond(Answer::json(StatusCode::OK, &view))
            }
            Err(refusal) => refusal,
        }
    } else {
        see_other(&return_to.unwrap_or_else(|| ui_location(&app.config.settings_ui_url, &kept.id)))
    };
    // The session ended with the password: the browser forgets it too.
    Ok(with_cookie(response, Some(session_cookie(app, "", 0))))
}
