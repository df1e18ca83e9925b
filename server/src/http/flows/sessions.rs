//! The recovery session a request carries (the cookie the pages set, or
//! `X-Session-Token`: both `<identity id>.<secret>`), what `whoami` tells
//! of it, and the record of how it began.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use reclaim_wire::answer::Answer;
use reclaim_wire::flows::settings::{SessionRecord, whoami as whoami_body};
use reclaim_wire::flows::{Of, errors};
use serde_json::{Value, json};

use super::{AppState, failed, load};
use crate::http::self_service::password::SessionCookie;
use crate::http::{request_id, respond};
use crate::storage::IdentityKey;

/// A live session of the request.
pub(crate) struct Live {
    pub cookie: SessionCookie,
}

/// The request's live session, from `X-Session-Token` or the cookie.
pub(crate) async fn live(app: &AppState, headers: &HeaderMap) -> Result<Option<Live>, Response> {
    let token = headers
        .get("x-session-token")
        .and_then(|v| v.to_str().ok())
        .and_then(SessionCookie::parse);
    let Some(cookie) = token.or_else(|| SessionCookie::of(headers)) else {
        return Ok(None);
    };
    let live = app
        .reclaim
        .recovery_session(&cookie.identity_id, &cookie.key())
        .await
        .map_err(|e| super::refused(&e))?;
    Ok(live.then_some(Live { cookie }))
}

/// The id the record of an identity's session is kept under: an identity
/// has one session at most, so its record has one name.
pub(crate) fn record_id(identity_id: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("reclaim:session:{identity_id}").as_bytes(),
    )
    .hyphenated()
    .to_string()
}

/// How the session began, when its record is of this very session.
async fn began(app: &AppState, cookie: &SessionCookie) -> Result<Option<SessionRecord>, Response> {
    let kept = load(app, &record_id(&cookie.identity_id)).await?;
    Ok(kept.and_then(|k| match k.record.of {
        Of::Session(s) if s.key == cookie.key() => Some(s),
        _ => None,
    }))
}

/// The identity as Kratos shows it in a session or a settings flow.
pub(crate) async fn identity(app: &AppState, identity_id: &str) -> Result<Value, Response> {
    let (backend, key) = (app.backend.clone(), IdentityKey::Id(identity_id.to_owned()));
    let found = tokio::task::spawn_blocking(move || backend.identity_record(&key))
        .await
        .map_err(failed)?
        .map_err(failed)?;
    let public_url = &app.config.settings.public_url;
    Ok(match found {
        Some(record) => serde_json::to_value(crate::http::identities::shape::wire_identity(
            &record, public_url,
        ))
        .map_err(failed)?,
        // The platform's own table: the id is all Reclaim may show.
        None => json!({
            "id": identity_id,
            "schema_id": reclaim_wire::identities::SCHEMA_ID,
            "schema_url": format!("{public_url}/schemas/{}", reclaim_wire::identities::SCHEMA_ID),
            "traits": {},
        }),
    })
}

/// Kratos' `toSession`: the request's recovery session, or 401.
#[utoipa::path(get, path = "/sessions/whoami", tag = "self-service-flows",
    params(("X-Session-Token" = Option<String>, Header, description = "The session token a native recovery flow gave")),
    responses(
        (status = 200, description = "The session (Kratos' `session`)", body = Object),
        (status = 401, description = "No live session", body = Object),
    ))]
pub async fn whoami(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let live = match live(&app, &headers).await {
        Ok(Some(live)) => live,
        Ok(None) => return respond(errors::no_session(&request_id())),
        Err(refusal) => return refusal,
    };
    let cookie = &live.cookie;
    let began = match began(&app, cookie).await {
        Ok(began) => began,
        Err(refusal) => return refusal,
    };
    // A session the pages opened before records existed: its start is unknown
    // beyond that it is live now.
    let record = began.unwrap_or_else(|| SessionRecord {
        identity_id: cookie.identity_id.clone(),
        key: cookie.key(),
        method: "link_recovery".into(),
        authenticated_at: app.now_nanos(),
        expires_at: app.now_nanos(),
    });
    let identity = match identity(&app, &cookie.identity_id).await {
        Ok(identity) => identity,
        Err(refusal) => return refusal,
    };
    let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, cookie.key().as_bytes())
        .hyphenated()
        .to_string();
    respond(Answer::json(
        axum::http::StatusCode::OK,
        &whoami_body(&id, &record, identity),
    ))
}
