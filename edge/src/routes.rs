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
use crate::{admin, flows, pages};

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
    // Each area answers its own routes; `find` answered 404 for those not
    // on the edge already.
    let route = found.spec.route;
    admin::answer(route, id, request)
        .or_else(|| pages::answer(route, request))
        .or_else(|| flows::answer(route, request))
        .or_else(|| own(route))
        .unwrap_or_else(|| Reply::new(StatusCode::NOT_FOUND))
}

/// This module's own routes: health and the stylesheet.
fn own(route: Route) -> Option<Reply> {
    Some(match route {
        Route::Alive => Reply::json(StatusCode::OK, &serde_json::json!({ "status": "ok" })),
        Route::Stylesheet => {
            let mut reply = Reply::new(StatusCode::OK);
            for (name, value) in STYLESHEET_HEADERS {
                reply = reply.header(name, value);
            }
            reply.body = STYLESHEET.as_bytes().to_vec();
            reply
        }
        _ => return None,
    })
}
