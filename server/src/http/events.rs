//! The platform's side of a recovery, beside Kratos' admin API: redeeming
//! a hand-off assertion (`POST /recovery/assertions`) and reading the audit
//! trail (`GET /recovery/events`), both behind the admin token, errors as
//! `errorGeneric`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{OriginalUri, Query, State};
use axum::http::HeaderValue;
use axum::http::header::LINK;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use reclaim_wire::kratos::ErrorGeneric;
use reclaim_wire::routes::{Route, Verb};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::kratos::{KratosError, json_body};
use super::{AppState, request_id};
use crate::operations::{Assertion, Error};
use crate::storage::events::EventFilter;

/// `POST /recovery/assertions`'s body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemAssertionBody {
    /// The `recovery_assertion` the person arrived with.
    assertion: String,
}

/// Redeem a hand-off assertion, once; the platform then sets the password
/// and checks the second factor itself.
#[utoipa::path(
    post, path = "/recovery/assertions", tag = "handoff",
    request_body = RedeemAssertionBody,
    security(("admin_token" = [])),
    responses(
        (status = 200, body = Assertion),
        (status = 400, body = ErrorGeneric, description = "Malformed JSON"),
        (status = 401, body = ErrorGeneric, description = "No or wrong admin token"),
        (status = 404, body = ErrorGeneric, description = "No such assertion"),
        (status = 410, body = ErrorGeneric, description = "The assertion was already redeemed, or expired"),
    )
)]
pub async fn redeem_assertion(
    State(app): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Assertion>, KratosError> {
    let body: RedeemAssertionBody = json_body(body)?;
    Ok(Json(
        app.reclaim.redeem_assertion(body.assertion.trim()).await?,
    ))
}

/// `GET /recovery/events` parameters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListEventsQuery {
    /// Only this identity's events.
    identity_id: Option<String>,
    /// Only events at or after this time (RFC 3339).
    since: Option<String>,
    /// 1 to 1000; 250 when absent.
    #[param(minimum = 1, maximum = 1000)]
    page_size: Option<i64>,
    /// The `Link` header's `next` page.
    page_token: Option<String>,
}

/// The most events one page holds.
const MAX_PAGE: i64 = 1000;

/// A page token of the trail.
pub fn page_token(after_seq: i64) -> String {
    format!("ev{after_seq}")
}

fn parse_page_token(token: &str) -> Option<i64> {
    token.strip_prefix("ev")?.parse().ok().filter(|s| *s >= 0)
}

/// The audit trail, oldest first, a page at a time (`Link` names the next).
#[utoipa::path(
    get, path = "/recovery/events", tag = "handoff",
    params(ListEventsQuery),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Events: `{id, type, timestamp, data, request_id}`, oldest first"),
        (status = 400, body = ErrorGeneric, description = "A bad page size, page token or time"),
        (status = 401, body = ErrorGeneric, description = "No or wrong admin token"),
    )
)]
pub async fn list_events(
    State(app): State<AppState>,
    OriginalUri(uri): OriginalUri,
    query: Result<Query<ListEventsQuery>, QueryRejection>,
) -> Result<Response, KratosError> {
    let bad = |message: String| KratosError(ErrorGeneric::bad_request(message, &request_id()));
    let Query(query) = query.map_err(|e| bad(e.body_text()))?;
    let size = query.page_size.unwrap_or(250);
    if !(1..=MAX_PAGE).contains(&size) {
        return Err(bad(format!(
            "\"page_size\" must be between 1 and {MAX_PAGE}."
        )));
    }
    let after_seq = match query.page_token.as_deref().filter(|t| !t.is_empty()) {
        None => None,
        Some(token) => Some(
            parse_page_token(token)
                .ok_or_else(|| bad("\"page_token\" is not a token this server issued.".into()))?,
        ),
    };
    let since = match query.since.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => Some(
            humantime::parse_rfc3339_weak(text)
                .map(|t| {
                    crate::clock::duration_nanos(
                        t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default(),
                    )
                })
                .map_err(|_| bad("\"since\" must be an RFC 3339 time.".into()))?,
        ),
    };
    let page = usize::try_from(size).unwrap_or(250);
    let filter = EventFilter {
        identity_id: query.identity_id.clone().filter(|i| !i.is_empty()),
        since,
        after_seq,
        limit: page + 1,
    };
    let backend = app.backend.clone();
    let mut events = tokio::task::spawn_blocking(move || backend.list_events(&filter))
        .await
        .map_err(|e| Error::Failed(e.into()))?
        .map_err(Error::Failed)?;
    let more = events.len() > page;
    events.truncate(page);
    let mut response =
        Json(events.iter().map(crate::events::shown).collect::<Vec<_>>()).into_response();
    // Relative to the server, as the caller reached it: never from `Host`.
    let mut base = format!("{}?page_size={size}", uri.path());
    for (name, value) in [("identity_id", &query.identity_id), ("since", &query.since)] {
        if let Some(value) = value {
            base.push_str(&format!(
                "&{name}={}",
                url::form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>()
            ));
        }
    }
    let mut links = vec![format!(
        "<{base}&page_token={}>; rel=\"first\"",
        page_token(0)
    )];
    if more && let Some(last) = events.last() {
        links.push(format!(
            "<{base}&page_token={}>; rel=\"next\"",
            page_token(last.seq)
        ));
    }
    if let Ok(value) = HeaderValue::from_str(&links.join(",")) {
        response.headers_mut().insert(LINK, value);
    }
    Ok(response)
}

/// This area's handler of one method of a route (`http::endpoint`).
pub(super) fn endpoint(route: Route, verb: Verb) -> Option<MethodRouter<AppState>> {
    use axum::routing::{get, post};
    Some(match (route, verb) {
        (Route::RedeemAssertion, Verb::Post) => post(redeem_assertion),
        (Route::Events, Verb::Get) => get(list_events),
        _ => return None,
    })
}

/// This area's routes in the OpenAPI document.
pub(super) fn openapi() -> OpenApiRouter<AppState> {
    super::kratos_admin(|| {
        OpenApiRouter::new()
            .routes(routes!(redeem_assertion))
            .routes(routes!(list_events))
    })
}
