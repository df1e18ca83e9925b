//! What one request may take: a declared body over the limit is refused
//! before a byte of it is read, a request that takes too long is answered
//! 408, and every 503 says when to come back. Each refusal is in the shape
//! of the API the path belongs to.

use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use reclaim_wire::{BODY_TOO_LARGE, LimitRefusal, MAX_BODY_BYTES};

use super::authentik::Authentik;
use super::kratos::KratosError;
use super::{AppState, request_id};

/// Seconds a 503 asks the client to wait: overload and a database restart
/// both pass in about that.
const RETRY_AFTER_SECONDS: &str = "1";

pub async fn request_limits(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let (max, too_large) = if reclaim_wire::identities::is_identity_admin_path(&path) {
        (
            reclaim_wire::identities::MAX_IDENTITY_BODY_BYTES,
            "The request body is larger than 8 MiB.",
        )
    } else {
        (MAX_BODY_BYTES, BODY_TOO_LARGE)
    };
    if declared.is_some_and(|length| length > max as u64) {
        return refusal(&app, &path, StatusCode::PAYLOAD_TOO_LARGE, too_large);
    }
    let limit = app.config.server.request_timeout;
    let mut response = match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        // The body did not arrive in time, or the answer did not: an
        // operation already handed to the storage may still complete.
        Err(_) => refusal(
            &app,
            &path,
            StatusCode::REQUEST_TIMEOUT,
            "The request was not completed in time.",
        ),
    };
    if response.status() == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .entry(RETRY_AFTER)
            .or_insert(HeaderValue::from_static(RETRY_AFTER_SECONDS));
    }
    response
}

/// A refusal in the shape of the API that `path` belongs to: Kratos'
/// `errorGeneric` for its routes (and any other JSON), authentik's
/// `{"detail", "code"}` for its own, a page for the self-service pages.
pub fn refusal(app: &AppState, path: &str, status: StatusCode, message: &str) -> Response {
    match LimitRefusal::new(path, status, message, &request_id()) {
        LimitRefusal::Authentik(e) => Authentik(e).into_response(),
        LimitRefusal::Page(status, title, message) => app.pages.problem(status, title, &message),
        LimitRefusal::Kratos(e) => KratosError(e).into_response(),
    }
}
