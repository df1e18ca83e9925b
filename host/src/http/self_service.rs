//! The self-service recovery pages, as in Kratos under
//! `/self-service/recovery`: request by address, confirm a link (opening it
//! consumes nothing), enter a code, choose a new password.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Form;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::header::{COOKIE, LOCATION, ORIGIN, RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use crate::operations::Error;
use crate::passwords;
use crate::wit::{ErrorKind, IdentityRef, Redemption};

const SESSION_COOKIE: &str = "reclaim_recovery_session";
const SESSION_PATH: &str = "/self-service/recovery";
/// How long a redeemed credential's session may take to set a password.
const SESSION_LIFESPAN: Duration = Duration::from_secs(15 * 60);

/// `GET /self-service/recovery` parameters: none (the request form), a flow
/// (the code form) or a flow and token (the link's confirmation page).
#[derive(Deserialize, IntoParams)]
pub struct RecoveryQuery {
    flow: Option<String>,
    token: Option<String>,
    return_to: Option<String>,
}

/// The page a link, a code flow or a bare visit leads to. Consumes nothing:
/// a mail scanner that fetches the link leaves it working.
#[utoipa::path(get, path = "/self-service/recovery", tag = "self-service",
    params(RecoveryQuery),
    responses((status = 200, content_type = "text/html", description = "The request form, the link's confirmation page, or the code form")))]
pub async fn show(State(app): State<AppState>, Query(q): Query<RecoveryQuery>) -> Response {
    match (q.flow, q.token) {
        (Some(flow), Some(token)) => {
            app.pages
                .render(StatusCode::OK, "confirm.html", context! { flow, token })
        }
        (Some(flow), None) => app
            .pages
            .render(StatusCode::OK, "code.html", context! { flow }),
        _ => {
            let return_to = q.return_to.filter(|r| app.config.return_to_allowed(r));
            app.pages
                .render(StatusCode::OK, "request.html", context! { return_to })
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct RequestForm {
    email: String,
    return_to: Option<String>,
}

/// A request by address. The answer is the same page, status and timing for
/// known and unknown addresses: the work happens after the response.
#[utoipa::path(post, path = "/self-service/recovery", tag = "self-service",
    request_body(content = RequestForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, content_type = "text/html", description = "Check your email (for every address)"),
        (status = 400, content_type = "text/html", description = "Not an email address"),
        (status = 403, content_type = "text/html", description = "Posted from another site"),
        (status = 429, content_type = "text/html", description = "Too many requests; see Retry-After"),
    ))]
pub async fn request(
    State(app): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<RequestForm>,
) -> Response {
    if let Some(refusal) = foreign_origin(&app, &headers) {
        return refusal;
    }
    let email = form.email.trim().to_string();
    if !plausible_email(&email) {
        let ctx = context! { error => "Enter a valid email address.", email };
        return app
            .pages
            .render(StatusCode::BAD_REQUEST, "request.html", ctx);
    }
    let address_key = format!(
        "address:{}",
        hex::encode(Sha256::digest(email.to_lowercase()))
    );
    let client_key = format!("client:{}", client.ip());
    let limits = &app.config.rate_limits;
    let keys = [
        (address_key.as_str(), limits.per_address),
        (client_key.as_str(), limits.per_client),
    ];
    if let Err(wait) = app.limiter.check(&keys, Instant::now()) {
        let minutes = wait.as_secs().div_ceil(60).max(1);
        let mut response = app.pages.problem(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests",
            &format!(
                "Too many account recovery attempts. Please try again after {minutes} minutes."
            ),
        );
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(wait.as_secs().max(1)));
        return response;
    }
    let return_to = form.return_to.filter(|r| app.config.return_to_allowed(r));
    let worker = app.clone();
    tokio::spawn(async move {
        let outcome = worker
            .reclaim
            .nonblocking()
            .request_recovery(&email, return_to.as_deref())
            .await;
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "self-service request failed");
        }
        worker.courier.notify_one();
    });
    app.pages.render(StatusCode::OK, "sent.html", context! {})
}

#[derive(Deserialize, ToSchema)]
pub struct ConfirmForm {
    token: String,
}

/// The person's confirmation: only now is the link's token redeemed.
#[utoipa::path(post, path = "/self-service/recovery/confirm", tag = "self-service",
    request_body(content = ConfirmForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Redeemed: on to the new-password form, with a session cookie"),
        (status = 404, content_type = "text/html", description = "Unknown link"),
        (status = 410, content_type = "text/html", description = "Expired, used or revoked link"),
    ))]
pub async fn confirm(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<ConfirmForm>,
) -> Response {
    if let Some(refusal) = foreign_origin(&app, &headers) {
        return refusal;
    }
    let outcome = app.reclaim.nonblocking().redeem_link(&form.token).await;
    redeemed(&app, outcome, |_| unreachable!("links have no code page")).await
}

#[derive(Deserialize, ToSchema)]
pub struct CodeForm {
    flow: String,
    code: String,
}

/// A code for a flow; wrong codes count, and the fifth ends the flow.
#[utoipa::path(post, path = "/self-service/recovery/code", tag = "self-service",
    request_body(content = CodeForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Redeemed: on to the new-password form, with a session cookie"),
        (status = 400, content_type = "text/html", description = "Wrong code (attempts left), or too many"),
        (status = 404, content_type = "text/html", description = "Unknown flow"),
        (status = 410, content_type = "text/html", description = "Expired, used or revoked code"),
    ))]
pub async fn code(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    if let Some(refusal) = foreign_origin(&app, &headers) {
        return refusal;
    }
    let outcome = app
        .reclaim
        .nonblocking()
        .redeem_code(&form.flow, form.code.trim())
        .await;
    redeemed(&app, outcome, |message| {
        app.pages.render(
            StatusCode::BAD_REQUEST,
            "code.html",
            context! { flow => form.flow, error => message },
        )
    })
    .await
}

/// After a redemption: a short-lived session, carried by a cookie, leads to
/// the new-password form; the token itself goes no further.
async fn redeemed(
    app: &AppState,
    outcome: Result<Redemption, Error>,
    retry: impl FnOnce(&str) -> Response,
) -> Response {
    let redemption = match outcome {
        Ok(redemption) => redemption,
        Err(Error::Refused(e))
            if matches!(
                e.kind,
                ErrorKind::CodeIncorrect | ErrorKind::InvalidArgument
            ) =>
        {
            return retry(&e.message);
        }
        Err(e) => return problem_page(app, &e),
    };
    let mut raw = [0u8; 32];
    if getrandom::fill(&mut raw).is_err() {
        return problem_page(
            app,
            &Error::Failed(anyhow::anyhow!("no randomness for a session")),
        );
    }
    let cookie = hex::encode(raw);
    let key = session_key(&cookie);
    let expires_at = app.now_nanos() + SESSION_LIFESPAN.as_nanos() as u64;
    let opened = app
        .storage
        .open_session(
            &key,
            &redemption.identity_id,
            redemption.return_to.as_deref(),
            expires_at,
        )
        .await;
    if let Err(e) = opened {
        return problem_page(app, &Error::Failed(e));
    }
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(
        LOCATION,
        HeaderValue::from_static("/self-service/recovery/password"),
    );
    headers.insert(
        SET_COOKIE,
        session_cookie(app, &cookie, SESSION_LIFESPAN.as_secs()),
    );
    response
}

/// The new-password form, for a live session only.
#[utoipa::path(get, path = "/self-service/recovery/password", tag = "self-service",
    responses(
        (status = 200, content_type = "text/html", description = "The new-password form"),
        (status = 401, content_type = "text/html", description = "No live recovery session"),
    ))]
pub async fn password_form(State(app): State<AppState>, headers: HeaderMap) -> Response {
    match live_session(&app, &headers).await {
        Ok(Some(_)) => app
            .pages
            .render(StatusCode::OK, "password.html", context! {}),
        Ok(None) => expired_session(&app),
        Err(e) => problem_page(&app, &e),
    }
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordForm {
    password: String,
    password_confirm: String,
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
    ))]
pub async fn set_password(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<PasswordForm>,
) -> Response {
    if let Some(refusal) = foreign_origin(&app, &headers) {
        return refusal;
    }
    let Some(cookie) = cookie_value(&headers) else {
        return expired_session(&app);
    };
    if let Err(message) = passwords::check_new(&form.password, &form.password_confirm) {
        return match live_session(&app, &headers).await {
            Ok(Some(_)) => app.pages.render(
                StatusCode::BAD_REQUEST,
                "password.html",
                context! { error => message },
            ),
            Ok(None) => expired_session(&app),
            Err(e) => problem_page(&app, &e),
        };
    }
    let storage = app.storage.clone();
    let now = app.now_nanos();
    let completed = tokio::task::spawn_blocking(move || {
        let hash = passwords::hash(&form.password)?;
        storage.complete_session(&session_key(&cookie), &hash, now)
    })
    .await
    .map_err(anyhow::Error::from)
    .and_then(|r| r);
    let (identity_id, return_to) = match completed {
        Ok(Some(done)) => done,
        Ok(None) => return expired_session(&app),
        Err(e) => return problem_page(&app, &Error::Failed(e)),
    };
    let notice = app
        .reclaim
        .nonblocking()
        .notify_password_changed(&IdentityRef::Id(identity_id))
        .await;
    match notice {
        Ok(()) => app.courier.notify_one(),
        // The password is changed either way; the person must not be told otherwise.
        Err(e) => tracing::warn!(error = %e, "password-changed notice not queued"),
    }
    let mut response = match return_to.filter(|r| app.config.return_to_allowed(r)) {
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

async fn live_session(app: &AppState, headers: &HeaderMap) -> Result<Option<String>, Error> {
    let Some(cookie) = cookie_value(headers) else {
        return Ok(None);
    };
    let storage = app.storage.clone();
    let now = app.now_nanos();
    tokio::task::spawn_blocking(move || storage.session_identity(&session_key(&cookie), now))
        .await
        .map_err(|e| Error::Failed(e.into()))?
        .map_err(Error::Failed)
}

fn expired_session(app: &AppState) -> Response {
    app.pages.problem(
        StatusCode::UNAUTHORIZED,
        "Your recovery session has ended",
        "Recovery sessions last 15 minutes and end once a new password is saved. Request a new link to start again.",
    )
}

/// A page for each way a credential can fail, each offering a new one.
fn problem_page(app: &AppState, e: &Error) -> Response {
    let status = |code: u16| StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    match e {
        Error::Refused(r) => {
            let title = match r.kind {
                ErrorKind::CredentialExpired => "This recovery link has expired",
                ErrorKind::CredentialUsed => "This recovery link was already used",
                ErrorKind::CredentialRevoked => "This recovery link is no longer valid",
                ErrorKind::CredentialUnknown => "This recovery link is not valid",
                ErrorKind::TooManyAttempts => "Too many wrong codes",
                ErrorKind::IdentityInactive => "This account is disabled",
                _ => "Recovery is not possible",
            };
            app.pages.problem(status(r.code), title, &r.message)
        }
        Error::Failed(failure) => {
            let request = uuid::Uuid::new_v4();
            tracing::error!(request = %request, error = %format!("{failure:#}"), "self-service step failed");
            app.pages.problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                &format!("Nothing was changed. Please try again (request {request})."),
            )
        }
    }
}

/// Form posts must come from our own pages: a post that names another
/// origin is refused. Our pages send `Referrer-Policy: no-referrer`, under
/// which browsers send `Origin: null` for their own forms, so `null` passes;
/// the session cookie is `SameSite=Strict`, which guards the password form
/// whatever the origin says.
fn foreign_origin(app: &AppState, headers: &HeaderMap) -> Option<Response> {
    let origin = headers.get(ORIGIN)?.to_str().ok()?;
    if origin == app.public_origin || origin == "null" {
        return None;
    }
    Some(app.pages.problem(
        StatusCode::FORBIDDEN,
        "Request refused",
        "This form was sent from another site.",
    ))
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_string())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn session_cookie(app: &AppState, value: &str, max_age: u64) -> HeaderValue {
    let secure = if app.config.settings.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path={SESSION_PATH}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .expect("cookie values are hex")
}

/// Sessions are stored under a hash, so the database never holds a usable
/// cookie.
fn session_key(cookie: &str) -> String {
    hex::encode(Sha256::digest(cookie.as_bytes()))
}

fn plausible_email(email: &str) -> bool {
    email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}
