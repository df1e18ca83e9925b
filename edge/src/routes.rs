//! Which handler answers a request: the wire crate's route table
//! (`reclaim_wire::routes`), which `reclaim serve` builds its router from,
//! so both answer the same paths and methods, and the same where nothing
//! matches (404 with no body; 405 with `Allow` for a known path and another
//! method).

use http::StatusCode;
use http::header::ALLOW;
use reclaim_wire::headers::STYLESHEET_HEADERS;
use reclaim_wire::pages::STYLESHEET;
use reclaim_wire::routes::{self, Miss, Route, Server};

use crate::reply::Reply;
use crate::request::Request;
use crate::{admin, pages};

pub fn route(request: &Request) -> Reply {
    let found = match routes::find(Server::Edge, request.method.as_str(), &request.path) {
        Ok(found) => found,
        Err(Miss::NotFound) => return Reply::new(StatusCode::NOT_FOUND),
        Err(Miss::MethodNotAllowed(allow)) => {
            let mut reply = Reply::new(StatusCode::METHOD_NOT_ALLOWED);
            if let Ok(allow) = http::HeaderValue::from_str(&allow) {
                reply.headers.push((ALLOW, allow));
            }
            return reply;
        }
    };
    let id = found.param("id").unwrap_or_default();
    match found.spec.route {
        Route::RecoveryLink => admin::create_recovery_link(request),
        Route::RecoveryCode => admin::create_recovery_code(request),
        Route::AuthentikRecovery => admin::authentik_recovery(request, id),
        Route::AuthentikRecoveryEmail => admin::authentik_recovery_email(request, id),
        Route::RecoveryPage if request.method == http::Method::POST => pages::request(request),
        Route::RecoveryPage => pages::show(request),
        Route::RecoveryConfirm => pages::confirm(request),
        Route::RecoveryCodeForm => pages::code(request),
        Route::Alive => Reply::json(StatusCode::OK, &serde_json::json!({ "status": "ok" })),
        Route::Stylesheet => {
            let mut reply = Reply::new(StatusCode::OK);
            for (name, value) in STYLESHEET_HEADERS {
                reply = reply.header(name, value);
            }
            reply.body = STYLESHEET.as_bytes().to_vec();
            reply
        }
        // Not on the edge: `find` answered 404 for them already.
        Route::RedeemAssertion
        | Route::Events
        | Route::Identities
        | Route::Identity
        | Route::IdentityByExternalId
        | Route::IdentitySessions
        | Route::IdentitySchema
        | Route::RecoveryPassword
        | Route::Ready
        | Route::Metrics
        | Route::OpenApi => Reply::new(StatusCode::NOT_FOUND),
    }
}
