//! Redeeming a link (after the person confirms) or a code: either opens a
//! recovery session, in the redemption's own transaction.

use axum::extract::State;
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::Deserialize;
use utoipa::ToSchema;

use super::password::{SESSION_LIFESPAN, SessionCookie, session_cookie, session_key};
use super::{AppState, PageForm, forged, form_page, problem_page};
use crate::operations::Error;
use crate::storage::NewSession;
use crate::wit::{ErrorKind, Redemption};

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
        (status = 400, content_type = "text/html", description = "The form could not be read"),
        (status = 403, content_type = "text/html", description = "No valid CSRF token, or posted from another site"),
        (status = 404, content_type = "text/html", description = "Unknown link"),
        (status = 410, content_type = "text/html", description = "Expired, used or revoked link"),
    ))]
pub async fn confirm(
    State(app): State<AppState>,
    headers: HeaderMap,
    PageForm(form): PageForm<ConfirmForm>,
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
    PageForm(form): PageForm<CodeForm>,
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
        expires_at: app
            .now_nanos()
            .saturating_add(crate::clock::duration_nanos(SESSION_LIFESPAN)),
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
