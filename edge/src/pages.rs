//! The self-service pages, as `reclaim serve` serves them under
//! `/self-service/recovery`: the request form, a link's confirmation page
//! (opening it consumes nothing), the code form, and the posts that redeem.
//!
//! What the edge does not do, and says so in the README: it sets no
//! password (it has no session store), so a redemption ends on the
//! allowed `return_to` or a page that says recovery was confirmed; it
//! keeps no rate limits; and a request by address is served at once
//! rather than from a paced queue, so its bytes are the same for known and
//! unknown addresses but its timing is not.

use std::sync::OnceLock;

use http::StatusCode;
use http::header::SET_COOKIE;
use minijinja::context;
use reclaim_wire::csrf::{self, from_our_pages};
use reclaim_wire::pages::{FORGED, Pages, UNREADABLE_FORM};
use reclaim_wire::refusal::{Kind, Outcome};
use reclaim_wire::routes::Route;
use reclaim_wire::{CSRF_PATH, checks};
use serde::Deserialize;

use crate::engine::{self, wired};
use crate::reply::Reply;
use crate::request::Request;
use crate::settings::{self, Settings};

/// The templates, parsed once per instance: a request may render two pages
/// (a form and its error), and a runtime may keep the instance.
fn pages() -> &'static Pages {
    static PAGES: OnceLock<Pages> = OnceLock::new();
    PAGES.get_or_init(|| Pages::new().expect("the built-in pages parse"))
}

pub fn render(status: StatusCode, name: &str, ctx: minijinja::Value) -> Reply {
    match pages().render(name, ctx) {
        Ok(html) => Reply::html(status, html),
        Err(_) => Reply::new(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// This area's answer to `route`, if it is one of its routes.
pub fn answer(route: Route, request: &Request) -> Option<Reply> {
    Some(match route {
        Route::RecoveryPage if request.method == http::Method::POST => {
            match crate::flows::query(request, "flow") {
                Some(flow) => crate::flows::submit(request, &Settings::load(), &flow),
                None => self::request(request),
            }
        }
        Route::RecoveryPage => show(request),
        Route::RecoveryConfirm => confirm(request),
        Route::RecoveryCodeForm => code(request),
        _ => return None,
    })
}

/// A problem page that offers to request a new link.
pub fn problem(status: StatusCode, title: &str, message: &str) -> Reply {
    match pages().problem(title, message) {
        Ok(html) => Reply::html(status, html),
        Err(_) => Reply::new(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

fn outcome_page(outcome: &Outcome, request: &Request) -> Reply {
    let (status, title, message) = reclaim_wire::pages::problem(outcome, &request.id);
    problem(status, title, &message)
}

/// A page with a form: it carries a CSRF token, and the cookie the token
/// belongs to is set if the browser has none yet.
fn form_page(
    settings: &Settings,
    request: &Request,
    status: StatusCode,
    name: &str,
    ctx: minijinja::Value,
) -> Reply {
    let Ok((token, new_cookie)) = settings.csrf.issue(&request.headers) else {
        return Reply::new(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let mut reply = render(status, name, context! { csrf_token => token, ..ctx });
    if let Some(cookie) = new_cookie {
        let value = csrf::private_cookie(
            csrf::COOKIE_NAME,
            &cookie,
            CSRF_PATH,
            None,
            settings.secure_cookies,
        );
        if let Ok(value) = value.parse() {
            reply.headers.push((SET_COOKIE, value));
        }
    }
    reply
}

/// A form and the CSRF token posted with it.
#[derive(Deserialize)]
struct Posted<T> {
    #[serde(flatten)]
    fields: T,
    csrf_token: Option<String>,
}

/// A form posted from our own pages, with the settings it was checked
/// against; or the page that refuses it (unreadable: 400; forged: 403).
fn posted<T: serde::de::DeserializeOwned>(request: &Request) -> Result<(T, Settings), Reply> {
    let form: Posted<T> = form(request)?;
    let settings = Settings::load();
    match forged(&settings, request, form.csrf_token.as_deref()) {
        Some(refusal) => Err(refusal),
        None => Ok((form.fields, settings)),
    }
}

/// A posted form, or the 400 page saying what was wrong with it.
fn form<T: serde::de::DeserializeOwned>(request: &Request) -> Result<T, Reply> {
    let urlencoded = request
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if !urlencoded {
        return Err(problem(
            StatusCode::BAD_REQUEST,
            UNREADABLE_FORM,
            "Expected request with `Content-Type: application/x-www-form-urlencoded`",
        ));
    }
    serde_urlencoded::from_bytes(&request.body).map_err(|e| {
        problem(
            StatusCode::BAD_REQUEST,
            UNREADABLE_FORM,
            &format!("Failed to deserialize form body: {e}"),
        )
    })
}

/// The refusal page for a post that is not from our own pages.
fn forged(settings: &Settings, request: &Request, token: Option<&str>) -> Option<Reply> {
    if from_our_pages(
        &settings.csrf,
        &settings.public_origin,
        &request.headers,
        token,
    ) {
        return None;
    }
    let (status, title, message) = FORGED;
    Some(problem(status, title, message))
}

#[derive(Deserialize, Default)]
struct RecoveryQuery {
    flow: Option<String>,
    token: Option<String>,
}

/// `GET /self-service/recovery`: the request form, a link's confirmation
/// page (a dead link says so at once), or a flow's code form.
fn show(request: &Request) -> Reply {
    let q: RecoveryQuery = serde_urlencoded::from_str(&request.query).unwrap_or_default();
    let settings = Settings::load();
    match (q.flow, q.token) {
        (Some(flow), Some(token)) => match wired(engine::check_link(&token)) {
            Ok(()) => form_page(
                &settings,
                request,
                StatusCode::OK,
                "confirm.html",
                context! { flow, token },
            ),
            Err(outcome) => outcome_page(&outcome, request),
        },
        (Some(flow), None) => match crate::flows::page(request, &settings, &flow) {
            Some(page) => page,
            None => form_page(
                &settings,
                request,
                StatusCode::OK,
                "code.html",
                context! { flow },
            ),
        },
        (None, _) => crate::flows::start_on_page(request, &settings),
    }
}

#[derive(Deserialize)]
struct RequestForm {
    /// Required: a form without it is refused, as `reclaim serve` does.
    #[serde(rename = "email")]
    _email: serde::de::IgnoredAny,
}

/// `POST /self-service/recovery` without a flow: the pages' form, checked
/// as every form is, then a flow of the pages' own.
fn request(request: &Request) -> Reply {
    match posted::<RequestForm>(request) {
        Ok((_, settings)) => crate::flows::request_on_page(request, &settings),
        Err(reply) => reply,
    }
}

#[derive(Deserialize)]
struct ConfirmForm {
    token: String,
}

/// `POST /self-service/recovery/confirm`: only now is the link redeemed.
fn confirm(request: &Request) -> Reply {
    let form = match posted::<ConfirmForm>(request) {
        Ok((form, _)) => form,
        Err(reply) => return reply,
    };
    redeemed(request, wired(engine::redeem_link(&form.token)), |_| {
        unreachable!("links have no code page")
    })
}

#[derive(Deserialize)]
struct CodeForm {
    flow: String,
    code: String,
}

/// `POST /self-service/recovery/code`: wrong codes count, and the limit
/// ends the flow.
fn code(request: &Request) -> Reply {
    let (form, settings) = match posted::<CodeForm>(request) {
        Ok(posted) => posted,
        Err(reply) => return reply,
    };
    let outcome = wired(engine::redeem_code(&form.flow, form.code.trim()));
    redeemed(request, outcome, |message| {
        form_page(
            &settings,
            request,
            StatusCode::BAD_REQUEST,
            "code.html",
            context! { flow => form.flow, error => message },
        )
    })
}

/// After a redemption: on to the allowed `return_to` the credential
/// carries, or the page that says recovery was confirmed.
fn redeemed(
    request: &Request,
    outcome: Result<engine::Redemption, Outcome>,
    retry: impl FnOnce(&str) -> Reply,
) -> Reply {
    match outcome {
        Ok(redemption) => {
            let allowed = settings::allowed_return_urls();
            match redemption
                .return_to
                .and_then(|r| checks::allowed_return_to(&allowed, &r))
            {
                Some(url) => Reply::see_other(&url),
                None => render(StatusCode::OK, "recovered.html", context! {}),
            }
        }
        Err(Outcome::Refused(e))
            if matches!(e.kind, Kind::CodeIncorrect | Kind::InvalidArgument) =>
        {
            retry(&e.message)
        }
        Err(outcome) => outcome_page(&outcome, request),
    }
}
