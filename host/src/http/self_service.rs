//! The self-service recovery pages, as in Kratos under
//! `/self-service/recovery`: request by address, confirm a link (opening it
//! consumes nothing), enter a code, choose a new password.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Form;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::header::{LOCATION, ORIGIN, RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use super::{AppState, csrf, rate_limit};
use crate::mail::address::check_address;
use crate::operations::Error;
use crate::passwords;
use crate::storage::NewSession;
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
/// a mail scanner that fetches the link leaves it working. A link that no
/// longer works gets its problem page here already.
#[utoipa::path(get, path = "/self-service/recovery", tag = "self-service",
    params(RecoveryQuery),
    responses(
        (status = 200, content_type = "text/html", description = "The request form, the link's confirmation page, or the code form"),
        (status = 404, content_type = "text/html", description = "Unknown link"),
        (status = 410, content_type = "text/html", description = "Expired, used or revoked link"),
    ))]
pub async fn show(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<RecoveryQuery>,
) -> Response {
    match (q.flow, q.token) {
        // A dead link says so at once, rather than after the person acts.
        (Some(flow), Some(token)) => match app.reclaim.nonblocking().check_link(&token).await {
            Ok(()) => form_page(
                &app,
                &headers,
                StatusCode::OK,
                "confirm.html",
                context! { flow, token },
            ),
            Err(e) => problem_page(&app, &e),
        },
        (Some(flow), None) => form_page(
            &app,
            &headers,
            StatusCode::OK,
            "code.html",
            context! { flow },
        ),
        _ => {
            let return_to = q.return_to.and_then(|r| app.config.allowed_return_to(&r));
            form_page(
                &app,
                &headers,
                StatusCode::OK,
                "request.html",
                context! { return_to },
            )
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct RequestForm {
    email: String,
    return_to: Option<String>,
    csrf_token: Option<String>,
}

/// A request by address. The answer is the same page, status and timing for
/// known and unknown addresses: the request is only queued (one row either
/// way), and served later at the queue's steady pace, apart from anything
/// this client sends next.
#[utoipa::path(post, path = "/self-service/recovery", tag = "self-service",
    request_body(content = RequestForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, content_type = "text/html", description = "Check your email (for every address)"),
        (status = 400, content_type = "text/html", description = "Not an email address"),
        (status = 403, content_type = "text/html", description = "No valid CSRF token, or posted from another site"),
        (status = 429, content_type = "text/html", description = "Too many requests; see Retry-After"),
    ))]
pub async fn request(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<RequestForm>,
) -> Response {
    if let Some(refusal) = forged(&app, &headers, form.csrf_token.as_deref()) {
        return refusal;
    }
    let email = form.email.trim().to_string();
    if check_address(&email).is_err() {
        let ctx = context! { error => "Enter a valid email address.", email };
        return form_page(&app, &headers, StatusCode::BAD_REQUEST, "request.html", ctx);
    }
    let address: [u8; 32] = Sha256::digest(email.to_lowercase()).into();
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let client = rate_limit::client_ip(peer.ip(), forwarded, &app.config.trusted_proxies);
    if let Err(wait) = app.limiter.check(client, &address) {
        let minutes = wait.as_secs().div_ceil(60).max(1);
        let mut response = app.pages.problem(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests",
            &format!(
                "Too many account recovery attempts. Please try again after {minutes} minutes. \
                 Links already sent stay valid: use the most recent one you received."
            ),
        );
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(wait.as_secs().max(1)));
        return response;
    }
    let return_to = form
        .return_to
        .and_then(|r| app.config.allowed_return_to(&r));
    let queued = app
        .storage
        .queue_request(&email, return_to.as_deref(), app.now_nanos())
        .await;
    if let Err(e) = queued {
        return problem_page(&app, &Error::Failed(e));
    }
    app.pages.render(StatusCode::OK, "sent.html", context! {})
}

#[derive(Deserialize, ToSchema)]
pub struct ConfirmForm {
    token: String,
    csrf_token: Option<String>,
}

/// The person's confirmation: only now is the link's token redeemed.
#[utoipa::path(post, path = "/self-service/recovery/confirm", tag = "self-service",
    request_body(content = ConfirmForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Redeemed: on to the new-password form, with a session cookie"),
        (status = 403, content_type = "text/html", description = "No valid CSRF token, or posted from another site"),
        (status = 404, content_type = "text/html", description = "Unknown link"),
        (status = 410, content_type = "text/html", description = "Expired, used or revoked link"),
    ))]
pub async fn confirm(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<ConfirmForm>,
) -> Response {
    if let Some(refusal) = forged(&app, &headers, form.csrf_token.as_deref()) {
        return refusal;
    }
    let (secret, session) = match new_session(&app) {
        Ok(drawn) => drawn,
        Err(e) => return problem_page(&app, &e),
    };
    let outcome = app
        .reclaim
        .nonblocking()
        .redeem_link_into(&form.token, Some(session))
        .await;
    redeemed(&app, outcome, &secret, |_| {
        unreachable!("links have no code page")
    })
}

#[derive(Deserialize, ToSchema)]
pub struct CodeForm {
    flow: String,
    code: String,
    csrf_token: Option<String>,
}

/// A code for a flow; wrong codes count, and the fifth ends the flow.
#[utoipa::path(post, path = "/self-service/recovery/code", tag = "self-service",
    request_body(content = CodeForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Redeemed: on to the new-password form, with a session cookie"),
        (status = 400, content_type = "text/html", description = "Wrong code (attempts left), or too many"),
        (status = 403, content_type = "text/html", description = "No valid CSRF token, or posted from another site"),
        (status = 404, content_type = "text/html", description = "Unknown flow"),
        (status = 410, content_type = "text/html", description = "Expired, used or revoked code"),
    ))]
pub async fn code(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    if let Some(refusal) = forged(&app, &headers, form.csrf_token.as_deref()) {
        return refusal;
    }
    let (secret, session) = match new_session(&app) {
        Ok(drawn) => drawn,
        Err(e) => return problem_page(&app, &e),
    };
    let outcome = app
        .reclaim
        .nonblocking()
        .redeem_code_into(&form.flow, form.code.trim(), Some(session))
        .await;
    redeemed(&app, outcome, &secret, |message| {
        form_page(
            &app,
            &headers,
            StatusCode::BAD_REQUEST,
            "code.html",
            context! { flow => form.flow, error => message },
        )
    })
}

/// A session's secret, and the session to open under its hash if the
/// credential redeems.
fn new_session(app: &AppState) -> Result<(String, NewSession), Error> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw)
        .map_err(|_| Error::Failed(anyhow::anyhow!("no randomness for a session")))?;
    let secret = hex::encode(raw);
    let session = NewSession {
        key: session_key(&secret),
        expires_at: app.now_nanos() + SESSION_LIFESPAN.as_nanos() as u64,
    };
    Ok((secret, session))
}

/// After a redemption, which opened the session in its own transaction: the
/// cookie leads to the new-password form; the token itself goes no further.
fn redeemed(
    app: &AppState,
    outcome: Result<Redemption, Error>,
    secret: &str,
    retry: impl FnOnce(&str) -> Response,
) -> Response {
    let cookie = match outcome {
        Ok(redemption) => SessionCookie {
            identity_id: redemption.identity_id,
            secret: secret.to_string(),
        },
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
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(
        LOCATION,
        HeaderValue::from_static("/self-service/recovery/password"),
    );
    headers.insert(
        SET_COOKIE,
        session_cookie(app, &cookie.value(), SESSION_LIFESPAN.as_secs()),
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
    Form(form): Form<PasswordForm>,
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
    let storage = app.storage.clone();
    let now = app.now_nanos();
    let identity_id = cookie.identity_id.clone();
    let completed = tokio::task::spawn_blocking(move || {
        let hash = passwords::hash(&form.password)?;
        storage.complete_session(&cookie.identity_id, &cookie.key(), &hash, now)
    })
    .await
    .map_err(anyhow::Error::from)
    .and_then(|r| r);
    let return_to = match completed {
        Ok(Some(return_to)) => return_to,
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
    let storage = app.storage.clone();
    let now = app.now_nanos();
    let (identity_id, key) = (cookie.identity_id.clone(), cookie.key());
    let live =
        tokio::task::spawn_blocking(move || storage.session_is_live(&identity_id, &key, now))
            .await
            .map_err(|e| Error::Failed(e.into()))?
            .map_err(Error::Failed)?;
    Ok(live.then_some(cookie))
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

/// A page with a form: it carries a CSRF token, and the cookie the token
/// belongs to is set if the browser has none yet.
fn form_page(
    app: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    name: &str,
    ctx: minijinja::Value,
) -> Response {
    let Ok((token, new_cookie)) = app.csrf.issue(headers) else {
        return problem_page(
            app,
            &Error::Failed(anyhow::anyhow!("no randomness for a CSRF cookie")),
        );
    };
    let mut response = app
        .pages
        .render(status, name, context! { csrf_token => token, ..ctx });
    if let Some(cookie) = new_cookie {
        response.headers_mut().append(
            SET_COOKIE,
            app.private_cookie(csrf::COOKIE_NAME, &cookie, SESSION_PATH, None),
        );
    }
    response
}

/// Form posts must come from our own pages: they carry the CSRF token of
/// the browser's cookie, and a browser's `Origin` (when it sends one) must
/// be ours. `null` is refused: our pages send `Referrer-Policy:
/// same-origin`, under which browsers name our origin on our own forms, so
/// only a page that hid where it came from sends `null`. `Sec-Fetch-Site`,
/// where a browser sends it, must say the post came from our own origin.
fn forged(app: &AppState, headers: &HeaderMap, token: Option<&str>) -> Option<Response> {
    let origin_ours = headers
        .get(ORIGIN)
        .is_none_or(|o| o.to_str().is_ok_and(|o| o == app.public_origin));
    let fetched_from_us = headers
        .get("sec-fetch-site")
        .is_none_or(|v| matches!(v.to_str(), Ok("same-origin" | "none")));
    if origin_ours && fetched_from_us && app.csrf.verify(headers, token) {
        return None;
    }
    Some(app.pages.problem(
        StatusCode::FORBIDDEN,
        "Request refused",
        "This form was sent from another site, or the page it came from is out of date. Go back, reload the page and try again.",
    ))
}

/// The session cookie, `<identity id>.<secret>`: the identity names the
/// session's row (an identity has one at most), the secret proves it.
struct SessionCookie {
    identity_id: String,
    secret: String,
}

impl SessionCookie {
    fn of(headers: &HeaderMap) -> Option<Self> {
        let value = super::cookie(headers, SESSION_COOKIE)?;
        let (identity_id, secret) = value.split_once('.')?;
        let identity = uuid::Uuid::try_parse(identity_id).ok()?;
        super::is_hex_256(secret).then(|| Self {
            identity_id: identity.hyphenated().to_string(),
            secret: secret.to_string(),
        })
    }

    fn value(&self) -> String {
        format!("{}.{}", self.identity_id, self.secret)
    }

    fn key(&self) -> String {
        session_key(&self.secret)
    }
}

fn session_cookie(app: &AppState, value: &str, max_age: u64) -> HeaderValue {
    app.private_cookie(SESSION_COOKIE, value, SESSION_PATH, Some(max_age))
}

/// Sessions are stored under a hash of the cookie's secret, so the database
/// never holds a usable cookie.
fn session_key(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}
