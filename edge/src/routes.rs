//! Which handler answers a request: the same paths and methods as
//! `reclaim serve`, and the same answers where nothing matches (404 with
//! no body; 405 with `Allow` for a known path and another method).

use http::header::ALLOW;
use http::{Method, StatusCode};
use reclaim_wire::headers::{STYLESHEET_HEADERS, STYLESHEET_PATH};
use reclaim_wire::pages::STYLESHEET;

use crate::reply::Reply;
use crate::request::Request;
use crate::{admin, pages};

pub fn route(request: &Request) -> Reply {
    let path = request.path.as_str();
    let method = &request.method;
    let post = |handler: fn(&Request) -> Reply| {
        if *method == Method::POST {
            handler(request)
        } else {
            Reply::new(StatusCode::METHOD_NOT_ALLOWED).header(ALLOW, "POST")
        }
    };
    let get = |handler: fn(&Request) -> Reply| {
        if *method == Method::GET || *method == Method::HEAD {
            handler(request)
        } else {
            Reply::new(StatusCode::METHOD_NOT_ALLOWED).header(ALLOW, "GET,HEAD")
        }
    };
    match path {
        "/admin/recovery/link" | "/iam/recovery/link" => post(admin::create_recovery_link),
        "/admin/recovery/code" | "/iam/recovery/code" => post(admin::create_recovery_code),
        "/self-service/recovery" => match *method {
            Method::GET | Method::HEAD => pages::show(request),
            Method::POST => pages::request(request),
            _ => Reply::new(StatusCode::METHOD_NOT_ALLOWED).header(ALLOW, "GET,HEAD,POST"),
        },
        "/self-service/recovery/confirm" => post(pages::confirm),
        "/self-service/recovery/code" => post(pages::code),
        "/health/alive" => {
            get(|_| Reply::json(StatusCode::OK, &serde_json::json!({ "status": "ok" })))
        }
        STYLESHEET_PATH => get(|_| {
            let mut reply = Reply::new(StatusCode::OK);
            for (name, value) in STYLESHEET_HEADERS {
                reply = reply.header(name, value);
            }
            reply.body = STYLESHEET.as_bytes().to_vec();
            reply
        }),
        _ => match authentik_route(path) {
            Some((pk, AuthentikRoute::Recovery)) => {
                post_with(method, || admin::authentik_recovery(request, pk))
            }
            Some((pk, AuthentikRoute::RecoveryEmail)) => {
                post_with(method, || admin::authentik_recovery_email(request, pk))
            }
            None => Reply::new(StatusCode::NOT_FOUND),
        },
    }
}

fn post_with(method: &Method, handler: impl FnOnce() -> Reply) -> Reply {
    if *method == Method::POST {
        handler()
    } else {
        Reply::new(StatusCode::METHOD_NOT_ALLOWED).header(ALLOW, "POST")
    }
}

enum AuthentikRoute {
    Recovery,
    RecoveryEmail,
}

/// `/api/v3/core/users/{pk}/recovery/` and `.../recovery_email/`; the pk
/// is any one path segment, judged by the handler.
fn authentik_route(path: &str) -> Option<(&str, AuthentikRoute)> {
    let rest = path.strip_prefix("/api/v3/core/users/")?;
    let (pk, action) = rest.split_once('/')?;
    if pk.is_empty() {
        return None;
    }
    match action {
        "recovery/" => Some((pk, AuthentikRoute::Recovery)),
        "recovery_email/" => Some((pk, AuthentikRoute::RecoveryEmail)),
        _ => None,
    }
}
