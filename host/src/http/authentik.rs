//! authentik's user recovery API: `POST /api/v3/core/users/{pk}/recovery/`
//! and `.../recovery_email/`, with authentik's error bodies.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use reclaim_wire::authentik::{
    self, AuthentikError, EmailStageQuery, Link, RecoveryOptions, token_duration,
};

use super::{AppState, request_id};
use crate::operations::{EmailOptions, Error};
use crate::wit::IdentityRef;

/// An answer in one of authentik's error shapes.
pub struct Authentik(pub AuthentikError);

impl From<AuthentikError> for Authentik {
    fn from(e: AuthentikError) -> Self {
        Self(e)
    }
}

impl From<Error> for Authentik {
    fn from(e: Error) -> Self {
        Self(AuthentikError::from_outcome(
            &super::outcome::outcome(&e),
            &request_id(),
        ))
    }
}

impl IntoResponse for Authentik {
    fn into_response(self) -> Response {
        let (status, body) = self.0.reply();
        (status, Json(body)).into_response()
    }
}

/// 403 in authentik's shape.
pub fn forbidden() -> Response {
    Authentik(AuthentikError::Forbidden).into_response()
}

/// An empty body means no options; anything else must be a JSON object.
fn options(body: Result<Bytes, BytesRejection>) -> Result<RecoveryOptions, Authentik> {
    let bytes = body.map_err(|r| AuthentikError::Other(r.status(), r.body_text()))?;
    Ok(authentik::options(&bytes)?)
}

fn user(pk: &str) -> Result<IdentityRef, Authentik> {
    Ok(IdentityRef::Pk(authentik::user_pk(pk)?))
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
) -> Result<Json<Link>, Authentik> {
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
) -> Result<StatusCode, Authentik> {
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
        return Err(AuthentikError::Invalid(authentik::NO_EMAIL.into()).into());
    }
    let stage = query
        .email_stage
        .or(options.email_stage)
        .and_then(|key| app.config.email_stage(&key).cloned())
        .ok_or_else(|| AuthentikError::Invalid(authentik::NO_STAGE.into()))?;
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
                from: stage.from.as_deref(),
            },
        )
        .await?;
    app.courier.notify_one();
    Ok(StatusCode::NO_CONTENT)
}
