//! `reclaim serve`: the seed systems' HTTP APIs (Kratos' admin recovery and
//! identities, authentik's user recovery), the platform's hand-off and audit
//! trail, the self-service pages, health and OpenAPI.
//! Every recovery request goes through the component.

pub mod authentik;
mod connections;
pub mod events;
pub mod identities;
pub mod kratos;
pub mod limits;
pub mod observe;
mod outcome;
pub mod pages;
pub mod rate_limit;
pub mod self_service;
mod serve;
mod state;

pub use connections::serve_connections;
pub use observe::request_id;
pub use reclaim_wire::MAX_BODY_BYTES;
pub use reclaim_wire::csrf;
pub use reclaim_wire::csrf::{cookie, is_hex_256};
pub use serve::{REQUEST_PACE, serve, serve_queued_requests, shutdown_signal};
pub use state::{App, AppState};

use std::sync::Arc;

use axum::Extension;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "Reclaim", description = "Account recovery: Kratos' and authentik's recovery APIs, served by a sandboxed WebAssembly component."),
    modifiers(&AdminToken),
)]
struct ApiDoc;

struct AdminToken;

impl utoipa::Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    let kratos = || {
        // The identity routes take batches of a few MiB: their handlers
        // read bodies of up to 8 MiB themselves, after the token is
        // checked, so only an administrator can make the server read that
        // much.
        let identities = OpenApiRouter::new()
            .routes(routes!(
                identities::create_identity,
                identities::list_identities,
                identities::batch_patch_identities
            ))
            .routes(routes!(
                identities::get_identity,
                identities::update_identity,
                identities::patch_identity,
                identities::delete_identity
            ))
            .routes(routes!(identities::get_identity_by_external_id))
            .routes(routes!(identities::delete_identity_sessions));
        OpenApiRouter::new()
            .routes(routes!(kratos::create_recovery_link))
            .routes(routes!(kratos::create_recovery_code))
            .routes(routes!(events::redeem_assertion))
            .routes(routes!(events::list_events))
            .merge(identities)
            .route_layer(middleware::from_fn_with_state(state.clone(), kratos_auth))
    };
    let authentik = OpenApiRouter::new()
        .routes(routes!(authentik::recovery))
        .routes(routes!(authentik::recovery_email))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            authentik_auth,
        ));
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/admin", kratos())
        .nest("/iam", kratos())
        .merge(authentik)
        .routes(routes!(alive))
        .routes(routes!(ready))
        .routes(routes!(self_service::show, self_service::request))
        .routes(routes!(self_service::redeem::confirm))
        .routes(routes!(self_service::redeem::code))
        .routes(routes!(
            self_service::password::password_form,
            self_service::password::set_password
        ))
        .routes(routes!(stylesheet))
        .routes(routes!(identities::identity_schema))
        .routes(routes!(openapi_document))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(observe::metrics_document))
                .route_layer(middleware::from_fn_with_state(state.clone(), kratos_auth)),
        )
        .split_for_parts();
    // Layers run outside in, from the last added: the access log sees every
    // answer, including the limits' refusals and the headers' additions.
    api.layer(Extension(Arc::new(openapi)))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limits::request_limits,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            security_headers,
        ))
        .layer(middleware::from_fn(observe::access_log))
        .with_state(state)
}

async fn kratos_auth(State(app): State<AppState>, request: Request, next: Next) -> Response {
    if app.authorized(&request) {
        next.run(request).await
    } else {
        kratos::unauthorized()
    }
}

async fn authentik_auth(State(app): State<AppState>, request: Request, next: Next) -> Response {
    if app.authorized(&request) {
        next.run(request).await
    } else {
        authentik::forbidden()
    }
}

/// The wire crate's security headers (`reclaim_wire::headers`) on every
/// answer.
async fn security_headers(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in reclaim_wire::headers::security_headers(&path, &app.form_targets) {
        headers.insert(name, value);
    }
    response
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta", responses((status = 200, description = "The OpenAPI document")))]
async fn openapi_document(
    Extension(doc): Extension<Arc<utoipa::openapi::OpenApi>>,
) -> impl IntoResponse {
    axum::Json(doc.as_ref().clone())
}

/// The pages' stylesheet.
#[utoipa::path(get, path = "/self-service/assets/style.css", tag = "self-service",
    responses((status = 200, content_type = "text/css", description = "The stylesheet")))]
async fn stylesheet() -> impl IntoResponse {
    (reclaim_wire::headers::STYLESHEET_HEADERS, pages::STYLESHEET)
}

/// Whether the process is up.
#[utoipa::path(get, path = "/health/alive", tag = "health", responses((status = 200, description = "Alive")))]
async fn alive() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

/// Whether the database answers.
#[utoipa::path(get, path = "/health/ready", tag = "health", responses(
    (status = 200, description = "Ready"),
    (status = 503, description = "The database does not answer"),
))]
async fn ready(State(app): State<AppState>) -> Response {
    let backend = app.backend.clone();
    match tokio::task::spawn_blocking(move || backend.ping()).await {
        Ok(Ok(())) => axum::Json(json!({ "status": "ok" })).into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "errors": { "database": "not answering" } })),
        )
            .into_response(),
    }
}
