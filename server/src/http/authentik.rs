//! authentik's user recovery API: `POST /api/v3/core/users/{pk}/recovery/`
//! and `.../recovery_email/`, with authentik's error bodies. Each handler
//! adapts the wire crate's `admit`, `plan` and `answer` of its route
//! (`reclaim_wire::authentik`), which the edge adapts too.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use reclaim_wire::answer::Answer;
use reclaim_wire::authentik::{self, AuthentikError, EmailStageQuery, Link, RecoveryOptions};
use reclaim_wire::routes::{Route, Verb};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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
        super::respond(Answer::from(&self.0))
    }
}

/// 403 in authentik's shape.
pub fn forbidden() -> Response {
    Authentik(AuthentikError::Forbidden).into_response()
}

/// A body as read, or why it could not be (413 past the limit).
fn read(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Authentik> {
    Ok(body.map_err(|r| AuthentikError::Other(r.status(), r.body_text()))?)
}

/// A route's answer, or its refusal in authentik's shape.
fn answered(result: Result<Answer, Authentik>) -> Response {
    match result {
        Ok(answer) => super::respond(answer),
        Err(refusal) => refusal.into_response(),
    }
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
) -> Response {
    answered(
        async {
            let asked = authentik::admit_recovery(&pk, &read(body)?)?;
            let who = IdentityRef::Pk(asked.pk);
            let link = app
                .reclaim
                .create_link(&who, asked.expires_in.as_deref(), None)
                .await?;
            Ok(authentik::answer_recovery(link.link))
        }
        .await,
    )
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
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answered(
        async {
            let query = query.unwrap_or_default();
            let asked = authentik::admit_recovery_email(&pk, &query, &read(body)?)?;
            let backend = app.backend.clone();
            let lookup = IdentityRef::Pk(asked.pk);
            let user = tokio::task::spawn_blocking(move || backend.identity(&lookup))
                .await
                .map_err(|e| Error::Failed(e.into()))?
                .map_err(Error::Failed)?;
            let email = user.as_ref().map(|u| u.email.as_deref());
            let call = authentik::plan_recovery_email(asked, email, &app.config.email_stages)?;
            app.reclaim
                .send_recovery_email(
                    &IdentityRef::Pk(call.pk),
                    &EmailOptions {
                        expires_in: Some(&call.expires_in),
                        template: Some(&call.template),
                        subject: call.subject.as_deref(),
                        from: call.from.as_deref(),
                    },
                )
                .await?;
            app.courier.notify_one();
            Ok(authentik::answer_recovery_email())
        }
        .await,
    )
}

/// This area's handler of one method of a route (`http::endpoint`).
pub(super) fn endpoint(route: Route, verb: Verb) -> Option<MethodRouter<AppState>> {
    use axum::routing::post;
    Some(match (route, verb) {
        (Route::AuthentikRecovery, Verb::Post) => post(recovery),
        (Route::AuthentikRecoveryEmail, Verb::Post) => post(recovery_email),
        _ => return None,
    })
}

/// This area's routes in the OpenAPI document.
pub(super) fn openapi() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(recovery))
        .routes(routes!(recovery_email))
}
