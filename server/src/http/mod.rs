//! `reclaim serve`: the seed systems' HTTP APIs (Kratos' admin recovery and
//! identities, authentik's user recovery), the platform's hand-off and audit
//! trail, the self-service pages, health and OpenAPI.
//! Every recovery request goes through the component.

pub mod authentik;
mod connections;
pub mod events;
pub mod flows;
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
use axum::routing::MethodRouter;
use reclaim_wire::routes::{Guard, ROUTES, Route, Verb};
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

/// The whole application: the wire crate's route table
/// (`reclaim_wire::routes`), each route's methods answered by
/// [`endpoint`] behind its guard.
pub fn router(state: AppState) -> Router {
    let mut api = Router::new();
    let cors = cors(&state.config.cors_allowed_origins);
    for spec in ROUTES {
        let mut methods = MethodRouter::new();
        for verb in spec.verbs {
            methods = methods.merge(endpoint(spec.route, *verb));
        }
        if let Some(cors) = &cors
            && spec.is_flow_api()
        {
            methods = methods.layer(cors.clone());
        }
        methods = match spec.guard {
            Guard::Public => methods,
            Guard::KratosAdmin => {
                methods.route_layer(middleware::from_fn_with_state(state.clone(), kratos_auth))
            }
            Guard::AuthentikAdmin => methods.route_layer(middleware::from_fn_with_state(
                state.clone(),
                authentik_auth,
            )),
        };
        for path in spec.paths {
            api = api.route(path, methods.clone());
        }
    }
    // Layers run outside in, from the last added: the access log sees every
    // answer, including the limits' refusals and the headers' additions.
    api.layer(Extension(Arc::new(openapi())))
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

/// CORS for the flow API, for the allowed origins only and with the
/// person's cookies (an SPA on another origin drives a browser flow with
/// them); none when no origin is allowed.
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{HeaderName, HeaderValue, Method, header};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_credentials(true)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::ACCEPT,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-session-token"),
                HeaderName::from_static("x-csrf-token"),
            ]),
    )
}

/// The handler of one method of a route: each area answers its own
/// routes (`endpoint` in its module) and documents them (`openapi`), so a
/// route is added to its area's file and the wire crate's table alone.
fn endpoint(route: Route, verb: Verb) -> MethodRouter<AppState> {
    AREAS
        .iter()
        .find_map(|(endpoint, _)| endpoint(route, verb))
        .unwrap_or_else(|| {
            unreachable!("the route table gives {route:?} a {verb:?} with no handler")
        })
}

type Endpoint = fn(Route, Verb) -> Option<MethodRouter<AppState>>;
type Documented = fn() -> OpenApiRouter<AppState>;

/// The application's areas.
const AREAS: [(Endpoint, Documented); 8] = [
    (kratos::endpoint, kratos::openapi),
    (authentik::endpoint, authentik::openapi),
    (identities::endpoint, identities::openapi),
    (events::endpoint, events::openapi),
    (self_service::endpoint, self_service::openapi),
    (flows::endpoint, flows::openapi),
    (observe::endpoint, observe::openapi),
    (own_endpoint, own_openapi),
];

/// Kratos' admin routes, documented under both prefixes they answer on.
fn kratos_admin(routes: impl Fn() -> OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .nest("/admin", routes())
        .nest("/iam", routes())
}

/// This module's own routes: health, the stylesheet and the document.
fn own_endpoint(route: Route, verb: Verb) -> Option<MethodRouter<AppState>> {
    use axum::routing::get;
    Some(match (route, verb) {
        (Route::Stylesheet, Verb::Get) => get(stylesheet),
        (Route::Alive, Verb::Get) => get(alive),
        (Route::Ready, Verb::Get) => get(ready),
        (Route::OpenApi, Verb::Get) => get(openapi_document),
        _ => return None,
    })
}

fn own_openapi() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(alive))
        .routes(routes!(ready))
        .routes(routes!(stylesheet))
        .routes(routes!(openapi_document))
}

/// The OpenAPI document of the routes, from their handlers' `utoipa::path`
/// attributes (a test holds it to the route table).
fn openapi() -> utoipa::openapi::OpenApi {
    AREAS
        .iter()
        .fold(
            OpenApiRouter::with_openapi(ApiDoc::openapi()),
            |doc, (_, documented)| doc.merge(documented()),
        )
        .into_openapi()
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

/// A route's answer from the wire crate (`reclaim_wire::answer`), as axum
/// sends it; the layers add the headers every answer carries.
pub(crate) fn respond(answer: reclaim_wire::answer::Answer) -> Response {
    // A body of its own, not `Vec<u8>`'s response, which would claim
    // `application/octet-stream` for an answer with no content.
    let mut response = Response::new(axum::body::Body::from(answer.body));
    *response.status_mut() = answer.status;
    if let Some(kind) = answer.content_type {
        response.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static(kind),
        );
    }
    response
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_lists_exactly_the_route_tables_routes() {
        let mut documented: Vec<String> = Vec::new();
        for (path, item) in &openapi().paths.paths {
            let verbs = [
                ("GET", item.get.is_some()),
                ("POST", item.post.is_some()),
                ("PUT", item.put.is_some()),
                ("PATCH", item.patch.is_some()),
                ("DELETE", item.delete.is_some()),
            ];
            for (verb, there) in verbs {
                if there {
                    documented.push(format!("{verb} {path}"));
                }
            }
        }
        let mut table: Vec<String> = ROUTES
            .iter()
            .flat_map(|spec| {
                spec.paths.iter().flat_map(|path| {
                    spec.verbs
                        .iter()
                        .map(move |verb| format!("{} {path}", verb.as_str()))
                })
            })
            .collect();
        documented.sort();
        table.sort();
        assert_eq!(documented, table);
    }
}
