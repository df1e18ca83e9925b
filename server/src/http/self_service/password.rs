//! The new-password form, behind a live recovery session, and the session
//! cookie that carries it.

use std::time::Duration;

use axum::extract::State;
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::{AppState, PageForm, forged, form_page, problem_page};
use crate::operations::Error;
use crate::passwords;
use crate::wit::IdentityRef;

const SESSION_COOKIE: &str = "reclaim_recovery_session";
/// How long a redeemed credential's session may take to set a password.
pub(crate) const SESSION_LIFESPAN: Duration = Duration::from_secs(15 * 60);

/// The new-password form, for a live session only.
#[utoipa::path(get, path = "/self-service/recovery/password", tag = "self-service",
    responses(
        (status = 200, content_type = "text/html", description = "The new-password form"),
        (status = 401, content_type = "text/html", description = "No live recovery session"),
    ))]
pub async fn password_form(State(app): State<AppState>, headers: HeaderMap) -> Response {
    match live_session(&app, &headers).await {
        Ok(Some(_)) => form_page(&app, &headers, StatusCode::OK, "password.html", context! {}),
        Ok(None) => expired_session(&app),
        Err(e) => problem_page(&app, &e),
    }
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordForm {
    password: String,
    password_confirm: String,
    csrf_token: Option<String>,
}

/// Stores the new password (Argon2id), ends the session, queues the
/// "password changed" notice, and sends the person on.
#[utoipa::path(post, path = "/self-service/recovery/password", tag = "self-service",
    request_body(content = PasswordForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, content_type = "text/html", description = "Password changed"),
        (status = 303, description = "Password changed: on to the allowed return_to"),
        (status = 400, content_type = "text/html", description = "Passwords differ or are too short"),
        (status = 401, content_type = "text/html", description = "No live recovery session"),
        (status = 403, content_type = "text/html", description = "No valid CSRF token, or posted from another site"),
    ))]
pub async fn set_password(
    State(app): State<AppState>,
    headers: HeaderMap,
    PageForm(form): PageForm<PasswordForm>,
) -> Response {
    if let Some(refusal) = forged(&app, &headers, form.csrf_token.as_deref()) {
        return refusal;
    }
    // Hashing costs ~19 MiB and ~20 ms: only a live session earns it, and
    // only a few hash at once, however many sessions ask.
    let cookie = match live_session(&app, &headers).await {
        Ok(Some(cookie)) => cookie,
        Ok(None) => return expired_session(&app),
        Err(e) => return problem_page(&app, &e),
    };
    if let Err(message) = passwords::check_new(&form.password, &form.password_confirm) {
        return form_page(
            &app,
            &headers,
            StatusCode::BAD_REQUEST,
            "password.html",
            context! { error => message },
        );
    }
    let Ok(_permit) = app.hashing.acquire().await else {
        return problem_page(
            &app,
            &Error::Failed(anyhow::anyhow!("hashing is shut down")),
        );
    };
    let identity_id = cookie.identity_id.clone();
    let hashed = tokio::task::spawn_blocking(move || passwords::hash(&form.password))
        .await
        .map_err(anyhow::Error::from)
        .and_then(|r| r);
    let hash = match hashed {
        Ok(hash) => hash,
        Err(e) => return problem_page(&app, &Error::Failed(e)),
    };
    // The identity is checked again in the unit that writes the password:
    // one disabled or deleted since the session opened gets no password.
    let completed = app
        .reclaim
        .complete_recovery(&identity_id, &cookie.key(), &hash)
        .await;
    let return_to = match completed {
        Ok(Some(completed)) => completed.return_to,
        Ok(None) => return expired_session(&app),
        Err(e) => return problem_page(&app, &e),
    };
    let notice = app
        .reclaim
        .notify_password_changed(&IdentityRef::Id(identity_id))
        .await;
    match notice {
        Ok(()) => app.courier.notify_one(),
        // The password is changed either way; the person must not be told otherwise.
        Err(e) => tracing::warn!(error = %e, "password-changed notice not queued"),
    }
    let mut response = match return_to.and_then(|r| app.config.allowed_return_to(&r)) {
        Some(url) => match HeaderValue::from_str(&url) {
            Ok(location) => {
                let mut redirect = StatusCode::SEE_OTHER.into_response();
                redirect.headers_mut().insert(LOCATION, location);
                redirect
            }
            Err(_) => app.pages.render(StatusCode::OK, "done.html", context! {}),
        },
        None => app.pages.render(StatusCode::OK, "done.html", context! {}),
    };
    response
        .headers_mut()
        .insert(SET_COOKIE, session_cookie(&app, "", 0));
    response
}

/// The request's session cookie, if its session is live.
async fn live_session(app: &AppState, headers: &HeaderMap) -> Result<Option<SessionCookie>, Error> {
    let Some(cookie) = SessionCookie::of(headers) else {
        return Ok(None);
    };
    let live = app
        .reclaim
        .recovery_session(&cookie.identity_id, &cookie.key())
        .await?;
    Ok(live.then_some(cookie))
}

fn expired_session(app: &AppState) -> Response {
    app.pages.problem(
        StatusCode::UNAUTHORIZED,
        "Your recovery session has ended",
        "Recovery sessions last 15 minutes and end once a new password is saved. Request a new link to start again.",
    )
}

/// The session cookie, `<identity id>.<secret>`: the identity names the
/// session's row (an identity has one at most), the secret proves it.
pub(crate) struct SessionCookie {
    pub(crate) identity_id: String,
    pub(crate) secret: String,
}

impl SessionCookie {
    pub(crate) fn of(headers: &HeaderMap) -> Option<Self> {
        Self::parse(&crate::http::cookie(headers, SESSION_COOKIE)?)
    }

    /// A cookie's value or a session token (`X-Session-Token`): the same.
    pub(crate) fn parse(value: &str) -> Option<Self> {
        let (identity_id, secret) = value.split_once('.')?;
        let identity = uuid::Uuid::try_parse(identity_id).ok()?;
        crate::http::is_hex_256(secret).then(|| Self {
            identity_id: identity.hyphenated().to_string(),
            secret: secret.to_string(),
        })
    }

    pub(crate) fn value(&self) -> String {
        format!("{}.{}", self.identity_id, self.secret)
    }

    pub(crate) fn key(&self) -> String {
        session_key(&self.secret)
    }
}

/// For every path: `whoami` and the settings flows read it too.
pub(crate) fn session_cookie(app: &AppState, value: &str, max_age: u64) -> HeaderValue {
    app.private_cookie(SESSION_COOKIE, value, "/", Some(max_age))
}

/// Sessions are stored under a hash of the cookie's secret, so the database
/// never holds a usable cookie.
pub(crate) fn session_key(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}
