//! Ory Kratos' admin recovery API (as Connhex publishes it under `/iam`):
//! `POST /recovery/link` and `POST /recovery/code`, errors as `errorGeneric`.
//! Each handler adapts the wire crate's `admit` and `answer` of its route
//! (`reclaim_wire::kratos`), which the edge adapts too.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use reclaim_wire::answer::Answer;
use reclaim_wire::kratos::{
    self, CreateRecoveryCodeForIdentityBody, CreateRecoveryLinkForIdentityBody, ErrorGeneric,
    IssueRequest, RecoveryCodeForIdentity, RecoveryLinkForIdentity, ReturnTo,
};
use reclaim_wire::routes::{Route, Verb};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AppState, request_id};
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
        super::respond(Answer::from(&self.0))
    }
}

/// Reads a JSON body, turning every failure into a 400 (or the 413 of an
/// over-long body) in Kratos' shape.
pub(super) fn json_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, KratosError> {
    let bytes = read(body)?;
    Ok(kratos::json_body(&bytes, &request_id())?)
}

/// A body as read, or why it could not be (413 past the limit).
fn read(body: Result<Bytes, BytesRejection>) -> Result<Bytes, KratosError> {
    Ok(body.map_err(|rejection| {
        ErrorGeneric::new(
            rejection.status(),
            "The request body could not be read.",
            rejection.body_text(),
            &request_id(),
        )
    })?)
}

/// A route's answer, or its refusal (logged) in Kratos' shape.
fn answered(result: Result<Answer, KratosError>) -> Response {
    match result {
        Ok(answer) => super::respond(answer),
        Err(refusal) => refusal.into_response(),
    }
}

/// The checked request of `POST /recovery/link` or `/recovery/code`.
fn admitted(
    app: &AppState,
    query: Option<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<IssueRequest, KratosError> {
    let bytes = read(body)?;
    Ok(kratos::admit_issue(
        query.as_deref().unwrap_or_default(),
        &bytes,
        &app.config.allowed_return_urls,
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
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answered(
        async {
            let asked = admitted(&app, query, body)?;
            let link = app
                .reclaim
                .create_link(
                    &IdentityRef::Id(asked.identity_id),
                    asked.expires_in.as_deref(),
                    asked.return_to.as_deref(),
                )
                .await?;
            Ok(kratos::answer_link(link.link, link.expires_at))
        }
        .await,
    )
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
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answered(
        async {
            let asked = admitted(&app, query, body)?;
            let code = app
                .reclaim
                .create_code(
                    &IdentityRef::Id(asked.identity_id),
                    asked.expires_in.as_deref(),
                    asked.return_to.as_deref(),
                )
                .await?;
            Ok(kratos::answer_code(code.link, code.code, code.expires_at))
        }
        .await,
    )
}

/// 401 in Kratos' shape.
pub fn unauthorized() -> Response {
    KratosError(ErrorGeneric::unauthorized(&request_id())).into_response()
}

/// This area's handler of one method of a route (`http::endpoint`).
pub(super) fn endpoint(route: Route, verb: Verb) -> Option<MethodRouter<AppState>> {
    use axum::routing::post;
    Some(match (route, verb) {
        (Route::RecoveryLink, Verb::Post) => post(create_recovery_link),
        (Route::RecoveryCode, Verb::Post) => post(create_recovery_code),
        _ => return None,
    })
}

/// This area's routes in the OpenAPI document.
pub(super) fn openapi() -> OpenApiRouter<AppState> {
    super::kratos_admin(|| {
        OpenApiRouter::new()
            .routes(routes!(create_recovery_link))
            .routes(routes!(create_recovery_code))
    })
}
