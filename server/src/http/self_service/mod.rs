//! The self-service recovery pages, as in Kratos under
//! `/self-service/recovery`: a recovery flow's page (the request by
//! address is a flow of the pages' own, drawn by `reclaim_wire::flows`'
//! driver as the flow API's are), confirm a link (opening it consumes
//! nothing), enter an admin code, choose a new password. This file routes
//! the recovery path and holds what every page shares; redeeming a link or
//! code (`redeem`) and setting the password (`password`) have their own.

pub mod password;
pub mod redeem;

use axum::routing::MethodRouter;
use reclaim_wire::routes::{Route, Verb};
use std::net::SocketAddr;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::Form;
use axum::extract::{ConnectInfo, FromRequest, Query, Request, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use minijinja::context;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use reclaim_wire::pages::{FORGED, UNREADABLE_FORM};

use super::{AppState, csrf};
use crate::operations::Error;

/// A posted form, or a 400 page saying what was wrong with it (axum's own
/// rejections are 415 and 422 in plain text, which no page documents).
pub struct PageForm<T>(pub T);

impl<T: serde::de::DeserializeOwned> FromRequest<AppState> for PageForm<T> {
    type Rejection = Response;

    async fn from_request(request: Request, app: &AppState) -> Result<Self, Response> {
        match Form::<T>::from_request(request, app).await {
            Ok(Form(form)) => Ok(Self(form)),
            Err(rejection) => Err(app.pages.problem(
                StatusCode::BAD_REQUEST,
                UNREADABLE_FORM,
                &rejection.body_text(),
            )),
        }
    }
}

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
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<RecoveryQuery>,
) -> Response {
    match (q.flow, q.token) {
        // A dead link says so at once, rather than after the person acts.
        (Some(flow), Some(token)) => match app.reclaim.check_link(&token).await {
            Ok(()) => form_page(
                &app,
                &headers,
                StatusCode::OK,
                "confirm.html",
                context! { flow, token },
            ),
            Err(e) => problem_page(&app, &e),
        },
        (Some(flow), None) => {
            if let Some(page) = super::flows::recovery::page(&app, peer, &headers, &flow).await {
                return page;
            }
            form_page(
                &app,
                &headers,
                StatusCode::OK,
                "code.html",
                context! { flow },
            )
        }
        (None, _) => super::flows::recovery::start_on_page(&app, peer, &headers, q.return_to).await,
    }
}

/// The pages' request form, read here for its CSRF token and refused
/// unreadable; the flow driver reads the rest.
#[derive(Deserialize, ToSchema)]
pub struct RequestForm {
    /// The address to mail a link to, known or not.
    pub email: String,
    /// Where to go once recovered (dropped unless allowed).
    pub return_to: Option<String>,
    pub csrf_token: Option<String>,
}

/// `?flow=` on the recovery path: Kratos' flow submission.
#[derive(Deserialize, IntoParams)]
pub struct SubmitQuery {
    /// The flow a submission of the flow API moves (JSON or a form).
    flow: Option<String>,
    /// Without a flow, where the pages' request form goes once recovered.
    return_to: Option<String>,
}

/// A request by address from the pages' form; with `?flow=`, a submission
/// to a flow of the flow API (`flows::recovery::submit`). The pages' answer
/// is the same page, status and timing for known and unknown addresses:
/// the request is only queued (one row either way), and served later at
/// the queue's steady pace, apart from anything this client sends next.
#[utoipa::path(post, path = "/self-service/recovery", tag = "self-service",
    params(SubmitQuery),
    request_body(content = RequestForm, content_type = "application/x-www-form-urlencoded", description = "The pages' form; with `?flow=`, Kratos' `updateRecoveryFlowBody` (JSON or a form)"),
    responses(
        (status = 200, content_type = "text/html", description = "Check your email (for every address); with `?flow=`, the flow as JSON"),
        (status = 303, description = "With `?flow=`, a browser's form post: back to the recovery UI, or on to settings"),
        (status = 400, content_type = "text/html", description = "Not an email address; with `?flow=`, the flow with the validation message"),
        (status = 403, content_type = "text/html", description = "No valid CSRF token, or posted from another site"),
        (status = 410, description = "With `?flow=`: the flow expired (`self_service_flow_expired`)"),
        (status = 422, description = "With `?flow=`: recovered; `browser_location_change_required` to settings"),
        (status = 429, content_type = "text/html", description = "Too many requests; see Retry-After"),
    ))]
pub async fn request(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(q): Query<SubmitQuery>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Response {
    if let Some(flow) = q.flow {
        return super::flows::recovery::submit(app, peer, headers, flow, bytes).await;
    }
    let form: RequestForm = match serde_urlencoded::from_bytes(&bytes) {
        Ok(form) => form,
        Err(e) => {
            return app
                .pages
                .problem(StatusCode::BAD_REQUEST, UNREADABLE_FORM, &e.to_string());
        }
    };
    if let Some(refusal) = forged(&app, &headers, form.csrf_token.as_deref()) {
        return refusal;
    }
    super::flows::recovery::request_on_page(&app, peer, &headers, q.return_to, &bytes).await
}

/// A page for each way a credential can fail, each offering a new one.
fn problem_page(app: &AppState, e: &Error) -> Response {
    let (status, title, message) =
        reclaim_wire::pages::problem(&super::outcome::outcome(e), &super::request_id());
    app.pages.problem(status, title, &message)
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
            app.private_cookie(csrf::COOKIE_NAME, &cookie, super::flows::CSRF_PATH, None),
        );
    }
    response
}

/// Form posts must come from our own pages (`csrf::from_our_pages`), or
/// get the refusal page.
fn forged(app: &AppState, headers: &HeaderMap, token: Option<&str>) -> Option<Response> {
    if csrf::from_our_pages(&app.csrf, &app.public_origin, headers, token) {
        return None;
    }
    let (status, title, message) = FORGED;
    Some(app.pages.problem(status, title, message))
}

/// This area's handler of one method of a route (`http::endpoint`).
pub(super) fn endpoint(route: Route, verb: Verb) -> Option<MethodRouter<AppState>> {
    use axum::routing::{get, post};
    Some(match (route, verb) {
        (Route::RecoveryPage, Verb::Get) => get(show),
        (Route::RecoveryPage, Verb::Post) => post(request),
        (Route::RecoveryConfirm, Verb::Post) => post(redeem::confirm),
        (Route::RecoveryCodeForm, Verb::Post) => post(redeem::code),
        (Route::RecoveryPassword, Verb::Get) => get(password::password_form),
        (Route::RecoveryPassword, Verb::Post) => post(password::set_password),
        _ => return None,
    })
}

/// This area's routes in the OpenAPI document.
pub(super) fn openapi() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show, request))
        .routes(routes!(redeem::confirm))
        .routes(routes!(redeem::code))
        .routes(routes!(password::password_form, password::set_password))
}
