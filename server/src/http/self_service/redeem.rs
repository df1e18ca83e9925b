//! Redeeming a link (after the person confirms) or a code: either opens a
//! recovery session or hands the recovery off to the platform (the
//! operation's `handoff` rule picks), in the redemption's own transaction.

use axum::extract::State;
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::Deserialize;
use utoipa::ToSchema;

use super::password::{SESSION_LIFESPAN, SessionCookie, session_cookie, session_key};
use super::{AppState, PageForm, forged, form_page, problem_page};
use crate::http::flows::recovery::Ending;
use crate::operations::{Error, Redeemed, Step};
use crate::storage::NewSession;
use crate::wit::{ErrorKind, IdentityRef};
use reclaim_wire::flows::ui_location;

#[derive(Deserialize, ToSchema)]
pub struct ConfirmForm {
    token: String,
    csrf_token: Option<String>,
}

/// The person's confirmation: only now is the link's token redeemed.
#[utoipa::path(post, path = "/self-service/recovery/confirm", tag = "self-service",
    request_body(content = ConfirmForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Redeemed: on to the new-password form with a session cookie, or handed off to the platform with `recovery_assertion`"),
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
    let ending = match Ending::on_pages(&app, &headers, &session.key, "link_recovery") {
        Ok(ending) => ending,
        Err(refusal) => return refusal,
    };
    let settings_id = ending.settings_id.clone();
    let outcome = app
        .reclaim
        .redeem_link_into(&form.token, session, ending.step())
        .await;
    redeemed(&app, &settings_id, outcome, &secret, |_| {
        unreachable!("links have no code page")
    })
    .await
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
        (status = 303, description = "Redeemed: on to the new-password form with a session cookie, or handed off to the platform with `recovery_assertion`"),
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
    let ending = match Ending::on_pages(&app, &headers, &session.key, "code_recovery") {
        Ok(ending) => ending,
        Err(refusal) => return refusal,
    };
    let settings_id = ending.settings_id.clone();
    let outcome = app
        .reclaim
        .redeem_code_into(&form.flow, form.code.trim(), session, ending.step())
        .await;
    redeemed(&app, &settings_id, outcome, &secret, |message| {
        form_page(
            &app,
            &headers,
            StatusCode::BAD_REQUEST,
            "code.html",
            context! { flow => form.flow, error => message },
        )
    })
    .await
}

/// A session's secret, and the session to open under its hash if the
/// credential redeems.
pub(crate) fn new_session(app: &AppState) -> Result<(String, NewSession), Error> {
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

/// After a redemption, which opened the session or the assertion in its own
/// transaction: the cookie leads to the new-password form, or the person
/// goes to the platform with the assertion; the token itself goes no further.
async fn redeemed(
    app: &AppState,
    settings_id: &str,
    outcome: Result<Redeemed, Error>,
    secret: &str,
    retry: impl FnOnce(&str) -> Response,
) -> Response {
    let redeemed = match outcome {
        Ok(redeemed) => redeemed,
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
    let assertion = match redeemed.step {
        Step::HandedOff { assertion } => assertion,
        Step::Session => {
            let cookie = SessionCookie {
                identity_id: redeemed.redemption.identity_id,
                secret: secret.to_string(),
            };
            // On to the settings flow the redemption opened, as the flow
            // API's do (its UI is the password form unless the operator
            // names another).
            let location = ui_location(&app.config.settings_ui_url, settings_id);
            let mut response = crate::http::flows::see_other(&location);
            response.headers_mut().insert(
                SET_COOKIE,
                session_cookie(app, &cookie.value(), SESSION_LIFESPAN.as_secs()),
            );
            return response;
        }
    };
    // The owner hears of every recovery: here there is no password change
    // to tell of. The recovery stands either way.
    let who = IdentityRef::Id(redeemed.redemption.identity_id.clone());
    match app.reclaim.notify_account_recovered(&who).await {
        Ok(()) => app.courier.notify_one(),
        Err(e) => tracing::warn!(error = %e, "account-recovered notice not queued"),
    }
    handed_off(app, redeemed.redemption.return_to.as_deref(), &assertion)
}

/// The redirect to the platform: the redemption's allowed `return_to`, or
/// the configured `handoff_url`, with `recovery_assertion` added.
fn handed_off(app: &AppState, return_to: Option<&str>, assertion: &str) -> Response {
    let target = return_to
        .and_then(|r| app.config.allowed_return_to(r))
        .or_else(|| app.config.handoff_url.clone())
        .and_then(|t| reclaim_wire::checks::handoff_location(&t, assertion));
    let Some(target) = target else {
        // Only in password mode, for an identity with a second factor and
        // no place configured to hand it to: it still gets no password form.
        return app.pages.problem(
            StatusCode::FORBIDDEN,
            "Recovery continues elsewhere",
            "This account is protected by a second factor, so its password can't be reset \
             here. Ask your administrator to finish the recovery.",
        );
    };
    let Ok(location) = HeaderValue::from_str(&target) else {
        return problem_page(
            app,
            &Error::Failed(anyhow::anyhow!("the hand-off URL is not a header value")),
        );
    };
    // No cache keeps the redirect (the security headers say `no-store`),
    // and `Referrer-Policy: same-origin` sends the platform no referrer.
    let mut response = StatusCode::SEE_OTHER.into_response();
    response.headers_mut().insert(LOCATION, location);
    response
}
