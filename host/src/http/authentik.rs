//! authentik's user recovery API: `POST /api/v3/core/users/{pk}/recovery/`
//! and `.../recovery_email/`, with authentik's error bodies.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use crate::operations::{EmailOptions, Error};
use crate::wit::{ErrorKind, IdentityRef};

/// Optional body of both endpoints.
#[derive(Default, Deserialize, ToSchema)]
pub struct RecoveryOptions {
    /// Lifespan of the link: Kratos' `30m` form, or authentik's
    /// `minutes=30;hours=1` form.
    token_duration: Option<String>,
    /// Email stage (its name or UUID); `recovery_email` also takes it as a
    /// query parameter.
    email_stage: Option<String>,
}

/// `?email_stage=`
#[derive(Deserialize, IntoParams)]
pub struct EmailStageQuery {
    email_stage: Option<String>,
}

/// A recovery link.
#[derive(Serialize, ToSchema)]
pub struct Link {
    link: String,
}

/// An authentik error response, in whichever of its shapes fits.
pub enum AuthentikError {
    /// 400 `{"non_field_errors": [...], "code": "invalid"}`
    Invalid(String),
    /// 404 `{"detail": ...}`
    NotFound,
    /// 403 `{"detail", "code"}`
    Forbidden,
    /// 413, 500 `{"detail", "code"}`
    Other(StatusCode, String),
}

impl IntoResponse for AuthentikError {
    fn into_response(self) -> Response {
        match self {
            Self::Invalid(message) => (
                StatusCode::BAD_REQUEST,
                Json(json!({ "non_field_errors": [message], "code": "invalid" })),
            )
                .into_response(),
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                Json(json!({ "detail": "No User matches the given query.", "code": "not_found" })),
            )
                .into_response(),
            Self::Forbidden => (
                StatusCode::FORBIDDEN,
                Json(json!({
                    "detail": "Authentication credentials were not provided or are invalid.",
                    "code": "not_authenticated",
                })),
            )
                .into_response(),
            Self::Other(status, detail) => {
                (status, Json(json!({ "detail": detail, "code": "error" }))).into_response()
            }
        }
    }
}

impl From<Error> for AuthentikError {
    fn from(e: Error) -> Self {
        match e {
            Error::Refused(refusal) if refusal.kind == ErrorKind::IdentityNotFound => {
                Self::NotFound
            }
            Error::Refused(refusal) => Self::Invalid(refusal.message),
            Error::Failed(failure) if crate::storage::is_unavailable(&failure) => {
                tracing::warn!(error = %format!("{failure:#}"), "database unavailable");
                Self::Other(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The database is not answering; nothing was stored. Try again.".into(),
                )
            }
            Error::Overloaded(_) => Self::Other(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many recovery operations are in flight; nothing was stored. Try again.".into(),
            ),
            Error::Failed(failure) => {
                let request = super::request_id();
                tracing::error!(request = %request, error = %format!("{failure:#}"), "operation failed");
                Self::Other(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("The recovery engine failed; nothing was stored (request {request})."),
                )
            }
        }
    }
}

/// 403 in authentik's shape.
pub fn forbidden() -> Response {
    AuthentikError::Forbidden.into_response()
}

/// An empty body means no options; anything else must be a JSON object.
fn options(body: Result<Bytes, BytesRejection>) -> Result<RecoveryOptions, AuthentikError> {
    let bytes = body.map_err(|r| AuthentikError::Other(r.status(), r.body_text()))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(RecoveryOptions::default());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| AuthentikError::Invalid(format!("Invalid JSON body: {e}")))
}

fn user(pk: &str) -> Result<IdentityRef, AuthentikError> {
    pk.parse()
        .map(IdentityRef::Pk)
        .map_err(|_| AuthentikError::NotFound)
}

/// authentik's durations (`minutes=30;hours=1`) in Kratos' grammar; Kratos'
/// own grammar passes through for the component to judge.
pub fn token_duration(text: &str) -> Result<String, AuthentikError> {
    if !text.contains('=') {
        return Ok(text.to_string());
    }
    let mut seconds: u64 = 0;
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let parsed = part.split_once('=').and_then(|(unit, value)| {
            let value: f64 = value
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v >= 0.0)?;
            let scale = match unit.trim() {
                "weeks" => 604_800.0,
                "days" => 86_400.0,
                "hours" => 3_600.0,
                "minutes" => 60.0,
                "seconds" => 1.0,
                _ => return None,
            };
            Some((value * scale) as u64)
        });
        match parsed {
            Some(s) => seconds = seconds.saturating_add(s),
            None => {
                return Err(AuthentikError::Invalid(format!(
                    "Invalid token duration {text:?}: use the form \"hours=1;minutes=30\" or \"90m\"."
                )));
            }
        }
    }
    Ok(format!("{seconds}s"))
}

/// Create a temporary link that a user can use to recover their account.
#[utoipa::path(
    post, path = "/api/v3/core/users/{id}/recovery/", tag = "authentik",
    params(("id" = i64, Path, description = "The user's integer pk")),
    request_body(content = RecoveryOptions, description = "Optional"),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = Link),
        (status = 400, description = "{\"non_field_errors\": [...], \"code\": \"invalid\"}"),
        (status = 403, description = "No or wrong admin token"),
        (status = 404, description = "Unknown user"),
    )
)]
pub async fn recovery(
    State(app): State<AppState>,
    Path(pk): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Link>, AuthentikError> {
    let who = user(&pk)?;
    let options = options(body)?;
    let expires_in = options
        .token_duration
        .as_deref()
        .map(token_duration)
        .transpose()?;
    let link = app
        .reclaim
        .create_link(&who, expires_in.as_deref(), None)
        .await?;
    Ok(Json(Link { link: link.link }))
}

/// Send an email with a temporary link that a user can use to recover their
/// account.
#[utoipa::path(
    post, path = "/api/v3/core/users/{id}/recovery_email/", tag = "authentik",
    params(("id" = i64, Path, description = "The user's integer pk"), EmailStageQuery),
    request_body(content = RecoveryOptions, description = "Optional"),
    security(("admin_token" = [])),
    responses(
        (status = 204, description = "Successfully sent recover email"),
        (status = 400, description = "No email address, or unknown or missing email stage"),
        (status = 403, description = "No or wrong admin token"),
        (status = 404, description = "Unknown user"),
    )
)]
pub async fn recovery_email(
    State(app): State<AppState>,
    Path(pk): Path<String>,
    Query(query): Query<EmailStageQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, AuthentikError> {
    let who = user(&pk)?;
    let options = options(body)?;
    // authentik's order: the user, their address, then the stage.
    let backend = app.backend.clone();
    let lookup = who.clone();
    let identity = tokio::task::spawn_blocking(move || backend.identity(&lookup))
        .await
        .map_err(|e| Error::Failed(e.into()))?
        .map_err(Error::Failed)?
        .ok_or(AuthentikError::NotFound)?;
    if identity.email.as_deref().is_none_or(str::is_empty) {
        return Err(AuthentikError::Invalid(
            "User does not have an email address set.".into(),
        ));
    }
    let stage = query
        .email_stage
        .or(options.email_stage)
        .and_then(|key| app.config.email_stage(&key).cloned())
        .ok_or_else(|| AuthentikError::Invalid("Email stage not found.".into()))?;
    let expires_in = match options.token_duration.as_deref() {
        Some(text) => token_duration(text)?,
        None => stage.token_expiry.clone(),
    };
    app.reclaim
        .send_recovery_email(
            &who,
            &EmailOptions {
                expires_in: Some(&expires_in),
                template: Some(&stage.template),
                subject: stage.subject.as_deref(),
                from: stage.from.as_ref(),
            },
        )
        .await?;
    app.courier.notify_one();
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authentik_durations_become_seconds_and_kratos_ones_pass_through() {
        assert_eq!(token_duration("hours=1;minutes=30").ok().unwrap(), "5400s");
        assert_eq!(token_duration("days=1").ok().unwrap(), "86400s");
        assert_eq!(token_duration("30m").ok().unwrap(), "30m");
        assert!(token_duration("fortnights=1").is_err());
        assert!(token_duration("hours=-1").is_err());
    }
}
