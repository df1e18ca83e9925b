//! Ory Kratos' admin recovery API (as Connhex publishes it under `/iam`):
//! `POST /recovery/link` and `POST /recovery/code`, errors as `errorGeneric`.
//! The shapes and checks are the wire crate's, shared with the edge.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use reclaim_wire::kratos::{
    self, CreateRecoveryCodeForIdentityBody, CreateRecoveryLinkForIdentityBody, ErrorGeneric,
    RecoveryCodeForIdentity, RecoveryLinkForIdentity, ReturnTo,
};

use super::{AppState, request_id};
use crate::clock::rfc3339;
use crate::operations::Error;
use crate::wit::IdentityRef;

/// An `errorGeneric` answer.
pub struct KratosError(pub ErrorGeneric);

impl From<ErrorGeneric> for KratosError {
    fn from(e: ErrorGeneric) -> Self {
        Self(e)
    }
}

impl From<Error> for KratosError {
    fn from(e: Error) -> Self {
        Self(ErrorGeneric::from_outcome(
            &super::outcome::outcome(&e),
            &request_id(),
        ))
    }
}

impl IntoResponse for KratosError {
    fn into_response(self) -> Response {
        let e = &self.0.error;
        tracing::info!(request = %e.request, code = e.code, message = %e.message, "admin request refused");
        (self.0.status(), Json(self.0)).into_response()
    }
}

/// Reads a JSON body, turning every failure into a 400 (or the 413 of an
/// over-long body) in Kratos' shape.
pub(super) fn json_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, KratosError> {
    let request = request_id();
    let bytes = body.map_err(|rejection| {
        ErrorGeneric::new(
            rejection.status(),
            "The request body could not be read.",
            rejection.body_text(),
            &request,
        )
    })?;
    Ok(kratos::json_body(&bytes, &request)?)
}

fn identity(id: &str) -> Result<IdentityRef, KratosError> {
    Ok(IdentityRef::Id(kratos::identity_id(id, &request_id())?))
}

fn allowed_return_to(
    app: &AppState,
    return_to: Option<String>,
) -> Result<Option<String>, KratosError> {
    Ok(kratos::return_to(
        &app.config.allowed_return_urls,
        return_to,
        &request_id(),
    )?)
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
) -> Result<Json<RecoveryLinkForIdentity>, KratosError> {
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
) -> Result<(StatusCode, Json<RecoveryCodeForIdentity>), KratosError> {
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
    KratosError(ErrorGeneric::unauthorized(&request_id())).into_response()
}
