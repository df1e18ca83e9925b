//! The flow API's errors in Kratos' `errorGeneric` envelopes, with the
//! `error.id` Ory's clients branch on.

use http::StatusCode;
use serde_json::{Value, json};

use crate::answer::Answer;
use crate::rfc3339;

fn envelope(
    status: StatusCode,
    id: Option<&str>,
    reason: &str,
    message: &str,
    request: &str,
) -> Value {
    let mut error = json!({
        "code": status.as_u16(),
        "status": status.canonical_reason().unwrap_or_default(),
        "reason": reason,
        "message": message,
        "request": request,
    });
    if let Some(id) = id {
        error["id"] = json!(id);
    }
    json!({ "error": error })
}

fn answer(status: StatusCode, body: Value) -> Answer {
    Answer::json(status, &body)
}

/// 410: the flow expired; `use_flow_id` is the new one already made for
/// the client (a browser flow also names where to start again).
pub fn expired(
    expired_at: u64,
    now: u64,
    use_flow_id: &str,
    restart: Option<&str>,
    request: &str,
) -> Answer {
    let since = now.saturating_sub(expired_at);
    let mut body = envelope(
        StatusCode::GONE,
        Some("self_service_flow_expired"),
        &format!(
            "The self-service flow expired {:.2} minutes ago, initialize a new one.",
            since as f64 / 60e9
        ),
        "self-service flow expired",
        request,
    );
    if let Some(restart) = restart {
        body["error"]["details"] = json!({ "redirect_to": restart });
    }
    body["expired_at"] = json!(rfc3339(expired_at));
    body["since"] = json!(since);
    body["use_flow_id"] = json!(use_flow_id);
    answer(StatusCode::GONE, body)
}

/// 403: a browser flow without its CSRF cookie or token.
pub fn csrf_violation(reject_reason: &str, request: &str) -> Answer {
    let mut body = envelope(
        StatusCode::FORBIDDEN,
        Some("security_csrf_violation"),
        "Please retry the flow and optionally clear your cookies. The request was rejected to \
         protect you from Cross-Site-Request-Forgery (CSRF) which could cause account takeover, \
         leaking personal information, and other serious security issues.",
        "the request was rejected to protect you from Cross-Site-Request-Forgery",
        request,
    );
    body["error"]["details"] = json!({ "reject_reason": reject_reason });
    answer(StatusCode::FORBIDDEN, body)
}

/// 404: no flow has the id.
pub fn not_found(what: &str, request: &str) -> Answer {
    answer(
        StatusCode::NOT_FOUND,
        envelope(
            StatusCode::NOT_FOUND,
            None,
            &format!("The {what} could not be found."),
            "The requested resource could not be found",
            request,
        ),
    )
}

/// 400: a browser already holding a session asked for a recovery.
pub fn session_already_available(request: &str) -> Answer {
    answer(
        StatusCode::BAD_REQUEST,
        envelope(
            StatusCode::BAD_REQUEST,
            Some("session_already_available"),
            "A valid session was detected and thus recovery is not possible.",
            "A valid session was detected and thus recovery is not possible.",
            request,
        ),
    )
}

/// 400: `return_to` is not on the allow-list.
pub fn return_to_forbidden(return_to: &str, request: &str) -> Answer {
    answer(
        StatusCode::BAD_REQUEST,
        envelope(
            StatusCode::BAD_REQUEST,
            Some("self_service_flow_return_to_forbidden"),
            &format!("Requested return_to URL {return_to:?} is not allowed."),
            "The request was malformed or contained invalid parameters",
            request,
        ),
    )
}

/// 401: no live session in the request.
pub fn no_session(request: &str) -> Answer {
    answer(
        StatusCode::UNAUTHORIZED,
        envelope(
            StatusCode::UNAUTHORIZED,
            Some("session_inactive"),
            "No active session was found in this request.",
            "request does not have a valid authentication session",
            request,
        ),
    )
}

/// 403: a settings flow of another session.
pub fn identity_mismatch(request: &str) -> Answer {
    answer(
        StatusCode::FORBIDDEN,
        envelope(
            StatusCode::FORBIDDEN,
            Some("security_identity_mismatch"),
            "The flow belongs to another session.",
            "the requested action was forbidden",
            request,
        ),
    )
}

/// 400: a body or query that could not be read.
pub fn bad_request(reason: &str, request: &str) -> Answer {
    answer(
        StatusCode::BAD_REQUEST,
        envelope(
            StatusCode::BAD_REQUEST,
            None,
            reason,
            "The request was malformed or contained invalid parameters",
            request,
        ),
    )
}

/// 422: Kratos' default ending, for clients that must move the browser.
pub fn location_change(location: &str, request: &str) -> Answer {
    let mut body = envelope(
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("browser_location_change_required"),
        &format!("In order to complete this flow please redirect the browser to: {location}"),
        "browser location change required",
        request,
    );
    body["redirect_browser_to"] = json!(location);
    answer(StatusCode::UNPROCESSABLE_ENTITY, body)
}
