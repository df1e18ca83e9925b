//! Ory Kratos' admin recovery API (as Connhex publishes it under `/iam`):
//! `POST /recovery/link` and `POST /recovery/code`, errors as `errorGeneric`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use crate::clock::rfc3339;
use crate::operations::Error;
use crate::wit::{IdentityRef, RecoveryError};

/// Body of `POST /admin/recovery/link`.
#[derive(Deserialize, ToSchema)]
pub struct CreateRecoveryLinkForIdentityBody {
    /// The identity to recover.
    #[schema(format = "uuid")]
    identity_id: String,
    /// Lifespan of the link, `^[0-9]+(ns|us|ms|s|m|h)$`; the configured
    /// default (1h) when absent.
    #[schema(pattern = "^[0-9]+(ns|us|ms|s|m|h)$")]
    expires_in: Option<String>,
}

/// Body of `POST /admin/recovery/code`.
#[derive(Deserialize, ToSchema)]
pub struct CreateRecoveryCodeForIdentityBody {
    /// The identity to recover.
    #[schema(format = "uuid")]
    identity_id: String,
    /// Lifespan of the code, `^[0-9]+(ns|us|ms|s|m|h)$`.
    #[schema(pattern = "^[0-9]+(ns|us|ms|s|m|h)$")]
    expires_in: Option<String>,
    /// Accepted for compatibility with Kratos; both flows behave alike.
    #[allow(dead_code)]
    flow_type: Option<String>,
}

/// `?return_to=`: where to send the person after recovery.
#[derive(Deserialize, IntoParams)]
pub struct ReturnTo {
    return_to: Option<String>,
}

/// A recovery link.
#[derive(Serialize, ToSchema)]
pub struct RecoveryLinkForIdentity {
    recovery_link: String,
    /// RFC 3339, UTC.
    expires_at: String,
}

/// A recovery code and the link to the page that takes it.
#[derive(Serialize, ToSchema)]
pub struct RecoveryCodeForIdentity {
    recovery_link: String,
    recovery_code: String,
    /// RFC 3339, UTC.
    expires_at: String,
}

/// Kratos' `errorGeneric`.
#[derive(Serialize, ToSchema)]
pub struct ErrorGeneric {
    error: GenericError,
}

/// The error inside `errorGeneric`.
#[derive(Serialize, ToSchema)]
pub struct GenericError {
    code: u16,
    status: String,
    reason: String,
    message: String,
    /// Request id, also in the server's log.
    request: String,
}

impl ErrorGeneric {
    pub fn new(status: StatusCode, reason: &str, message: impl Into<String>) -> Self {
        Self::from_parts(
            status.as_u16(),
            status.canonical_reason().unwrap_or_default(),
            reason,
            message.into(),
        )
    }

    fn from_parts(code: u16, status: &str, reason: &str, message: String) -> Self {
        let request = super::request_id();
        tracing::info!(request = %request, code, message = %message, "admin request refused");
        Self {
            error: GenericError {
                code,
                status: status.to_string(),
                reason: reason.to_string(),
                message,
                request,
            },
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "The request was malformed or contained invalid parameters.",
            message,
        )
    }
}

impl From<RecoveryError> for ErrorGeneric {
    fn from(e: RecoveryError) -> Self {
        Self::from_parts(e.code, &e.status, &e.reason, e.message)
    }
}

impl From<Error> for ErrorGeneric {
    fn from(e: Error) -> Self {
        match e {
            Error::Refused(refusal) => refusal.into(),
            Error::Failed(failure) if crate::storage::is_unavailable(&failure) => {
                let body = Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The service is temporarily unavailable; please try again.",
                    "The database is not answering; nothing was stored.",
                );
                tracing::warn!(request = %body.error.request, error = %format!("{failure:#}"), "database unavailable");
                body
            }
            Error::Overloaded(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The service is temporarily unavailable; please try again.",
                "Too many recovery operations are in flight; nothing was stored.",
            ),
            Error::Failed(failure) => {
                let body = Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "An internal server error occurred, please contact the system administrator.",
                    "The recovery engine failed; nothing was stored.",
                );
                tracing::error!(request = %body.error.request, error = %format!("{failure:#}"), "operation failed");
                body
            }
        }
    }
}

impl IntoResponse for ErrorGeneric {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.error.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self)).into_response()
    }
}

/// Parses a JSON body, turning every failure into a 400 (or the 413 of an
/// over-long body) in Kratos' shape.
fn json_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ErrorGeneric> {
    let bytes = body.map_err(|rejection| {
        let status = rejection.status();
        ErrorGeneric::new(
            status,
            "The request body could not be read.",
            rejection.body_text(),
        )
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ErrorGeneric::bad_request(format!(
            "The request body could not be decoded as JSON: {e}"
        ))
    })
}

fn identity(id: &str) -> Result<IdentityRef, ErrorGeneric> {
    uuid::Uuid::try_parse(id)
        .map(|_| IdentityRef::Id(id.to_ascii_lowercase()))
        .map_err(|_| ErrorGeneric::bad_request("\"identity_id\" must be a UUID."))
}

fn allowed_return_to(
    app: &AppState,
    return_to: Option<String>,
) -> Result<Option<String>, ErrorGeneric> {
    match return_to.filter(|r| !r.is_empty()) {
        Some(url) => match app.config.allowed_return_to(&url) {
            Some(normalised) => Ok(Some(normalised)),
            None => Err(ErrorGeneric::bad_request(format!(
                "Requested return_to URL {url:?} is not allowed."
            ))),
        },
        None => Ok(None),
    }
}

/// Create a recovery link for an identity.
#[utoipa::path(
    post, path = "/recovery/link", tag = "kratos",
    params(ReturnTo),
    request_body = CreateRecoveryLinkForIdentityBody,
    security(("admin_token" = [])),
    responses(
        (status = 200, body = RecoveryLinkForIdentity),
        (status = 400, body = ErrorGeneric, description = "Malformed JSON, identity_id or expires_in, or a return_to not allowed"),
        (status = 401, body = ErrorGeneric, description = "No or wrong admin token"),
        (status = 404, body = ErrorGeneric, description = "Unknown identity"),
        (status = 413, body = ErrorGeneric, description = "Body too large"),
    )
)]
pub async fn create_recovery_link(
    State(app): State<AppState>,
    Query(query): Query<ReturnTo>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<RecoveryLinkForIdentity>, ErrorGeneric> {
    let body: CreateRecoveryLinkForIdentityBody = json_body(body)?;
    let who = identity(&body.identity_id)?;
    let return_to = allowed_return_to(&app, query.return_to)?;
    let link = app
        .reclaim
        .create_link(&who, body.expires_in.as_deref(), return_to.as_deref())
        .await?;
    Ok(Json(RecoveryLinkForIdentity {
        recovery_link: link.link,
        expires_at: rfc3339(link.expires_at),
    }))
}

/// Create a recovery code for an identity.
#[utoipa::path(
    post, path = "/recovery/code", tag = "kratos",
    params(ReturnTo),
    request_body = CreateRecoveryCodeForIdentityBody,
    security(("admin_token" = [])),
    responses(
        (status = 201, body = RecoveryCodeForIdentity),
        (status = 400, body = ErrorGeneric, description = "Malformed JSON, identity_id or expires_in"),
        (status = 401, body = ErrorGeneric, description = "No or wrong admin token"),
        (status = 404, body = ErrorGeneric, description = "Unknown identity"),
        (status = 413, body = ErrorGeneric, description = "Body too large"),
    )
)]
pub async fn create_recovery_code(
    State(app): State<AppState>,
    Query(query): Query<ReturnTo>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<RecoveryCodeForIdentity>), ErrorGeneric> {
    let body: CreateRecoveryCodeForIdentityBody = json_body(body)?;
    let who = identity(&body.identity_id)?;
    let return_to = allowed_return_to(&app, query.return_to)?;
    let code = app
        .reclaim
        .create_code(&who, body.expires_in.as_deref(), return_to.as_deref())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(RecoveryCodeForIdentity {
            recovery_link: code.link,
            recovery_code: code.code,
            expires_at: rfc3339(code.expires_at),
        }),
    ))
}

/// 401 in Kratos' shape.
pub fn unauthorized() -> Response {
    ErrorGeneric::new(
        StatusCode::UNAUTHORIZED,
        "The request could not be authorized.",
        "Send the admin token as \"Authorization: Bearer <token>\".",
    )
    .into_response()
}
