//! Kratos' identity admin API (`/admin/identities`, and `/iam/identities`
//! as Connhex serves it): the wire crate's shapes over the operations in
//! `operations/identities.rs`, which decide what a change ends. The CLI's
//! `reclaim identity` answers in the same `Identity` shape
//! ([`wire_identity`], in `shape.rs` with what a JSON Patch makes of one).

use axum::Json;
use axum::body::Body;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::header::LINK;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use reclaim_wire::identities::{
    self as wire, BatchPatchIdentitiesResponse, CreateIdentityBody, Identity,
    IdentityPatchResponse, ListIdentitiesQuery, PatchIdentitiesBody, UpdateIdentityBody,
};
use reclaim_wire::kratos::ErrorGeneric;
use reclaim_wire::routes::{Route, Verb};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::kratos::KratosError;
use super::{AppState, request_id};
use crate::directory::NewIdentity;
use crate::operations::{Error, identity_storage_error};
use crate::storage::{IdentityFilter, IdentityKey, IdentityRecord};

pub(crate) mod shape;
pub use shape::{patched, wire_identity};

fn bad_request(message: impl Into<String>) -> KratosError {
    KratosError(ErrorGeneric::bad_request(message, &request_id()))
}

fn not_found(id: &str) -> KratosError {
    KratosError(ErrorGeneric::new(
        StatusCode::NOT_FOUND,
        "The requested resource could not be found.",
        format!("Unable to locate the identity {id}."),
        &request_id(),
    ))
}

/// Reads a JSON body of up to `MAX_IDENTITY_BODY_BYTES` (the router's
/// limit is the public routes' 16 KiB): read here, once the admin token was
/// checked, rather than by a router layer of its own, which every request
/// of the nested routes would pass through.
async fn body<T: serde::de::DeserializeOwned>(raw: Body) -> Result<T, KratosError> {
    let (bytes, request) = read_body(raw).await?;
    Ok(reclaim_wire::kratos::json_body(&bytes, &request)?)
}

/// [`body`] for a JSON Patch, the one body that is an array.
async fn patch_body(raw: Body) -> Result<json_patch::Patch, KratosError> {
    let (bytes, request) = read_body(raw).await?;
    Ok(reclaim_wire::kratos::json_array_body(&bytes, &request)?)
}

async fn read_body(raw: Body) -> Result<(axum::body::Bytes, String), KratosError> {
    let request = request_id();
    let bytes = axum::body::to_bytes(raw, reclaim_wire::identities::MAX_IDENTITY_BODY_BYTES)
        .await
        .map_err(|e| {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                ErrorGeneric::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "The request body is too large.",
                    "The request body is larger than 8 MiB.",
                    &request,
                )
            } else {
                ErrorGeneric::new(
                    StatusCode::BAD_REQUEST,
                    "The request body could not be read.",
                    e.to_string(),
                    &request,
                )
            }
        })?;
    Ok((bytes, request))
}

/// A path's identity id in its canonical form; anything else names no
/// identity.
fn identity_id(id: &str) -> Result<String, KratosError> {
    reclaim_wire::checks::identity_id(id).ok_or_else(|| not_found(id))
}

async fn record(app: &AppState, key: IdentityKey) -> Result<Option<IdentityRecord>, KratosError> {
    let backend = app.backend.clone();
    tokio::task::spawn_blocking(move || backend.identity_record(&key))
        .await
        .map_err(|e| Error::Failed(e.into()))?
        .map_err(|e| KratosError::from(identity_storage_error(e)))
}

fn answer(app: &AppState, record: &IdentityRecord) -> Json<Identity> {
    Json(wire_identity(record, &app.config.settings.public_url))
}

/// Create an identity.
#[utoipa::path(post, path = "/identities", tag = "kratos-identities",
    request_body = CreateIdentityBody,
    security(("admin_token" = [])),
    responses(
        (status = 201, body = Identity),
        (status = 400, body = ErrorGeneric, description = "Malformed JSON, an unknown schema, bad traits or state"),
        (status = 401, body = ErrorGeneric, description = "No or wrong admin token"),
        (status = 409, body = ErrorGeneric, description = "The address or external id is taken, or the platform manages the identities"),
    ))]
pub async fn create_identity(
    State(app): State<AppState>,
    raw: Body,
) -> Result<(StatusCode, Json<Identity>), KratosError> {
    let body: CreateIdentityBody = body(raw).await?;
    let fields = body.fields().map_err(bad_request)?;
    let record = app
        .reclaim
        .create_identity(NewIdentity::from(fields))
        .await?;
    Ok((StatusCode::CREATED, answer(&app, &record)))
}

/// List identities, by pk, a page at a time (`Link` names the next).
#[utoipa::path(get, path = "/identities", tag = "kratos-identities",
    params(ListIdentitiesQuery),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = Vec<Identity>),
        (status = 400, body = ErrorGeneric, description = "A page size out of 1..1000 or a page token this server did not issue"),
        (status = 401, body = ErrorGeneric, description = "No or wrong admin token"),
    ))]
pub async fn list_identities(
    State(app): State<AppState>,
    OriginalUri(uri): OriginalUri,
    query: Result<Query<ListIdentitiesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, KratosError> {
    let Query(query) = query.map_err(|e| bad_request(e.body_text()))?;
    let size = query.page_size.unwrap_or(wire::DEFAULT_PAGE_SIZE);
    if !(1..=wire::MAX_PAGE_SIZE).contains(&size) {
        return Err(bad_request(format!(
            "\"page_size\" must be between 1 and {}.",
            wire::MAX_PAGE_SIZE
        )));
    }
    let after_pk = match query.page_token.as_deref().filter(|t| !t.is_empty()) {
        None => None,
        Some(token) => Some(
            wire::parse_page_token(token)
                .ok_or_else(|| bad_request("\"page_token\" is not a token this server issued."))?,
        ),
    };
    let filter = IdentityFilter {
        email: query
            .credentials_identifier
            .filter(|e| !e.trim().is_empty())
            .map(|e| e.trim().to_string()),
        after_pk,
        // One more than asked, to know whether a next page exists.
        limit: usize::try_from(size).unwrap_or(250) + 1,
    };
    let backend = app.backend.clone();
    let mut records = tokio::task::spawn_blocking(move || backend.list_identity_records(&filter))
        .await
        .map_err(|e| Error::Failed(e.into()))?
        .map_err(identity_storage_error)?;
    let more = records.len() > usize::try_from(size).unwrap_or(250);
    records.truncate(usize::try_from(size).unwrap_or(250));
    let page: Vec<Identity> = records
        .iter()
        .map(|r| wire_identity(r, &app.config.settings.public_url))
        .collect();
    let mut response = Json(page).into_response();
    // Relative to the server, as the caller reached it (`/admin` or
    // `/iam`): never built from `Host`.
    let base = uri.path();
    let mut links = vec![format!(
        "<{base}?page_size={size}&page_token={}>; rel=\"first\"",
        wire::page_token(0)
    )];
    if more && let Some(last) = records.last() {
        links.push(format!(
            "<{base}?page_size={size}&page_token={}>; rel=\"next\"",
            wire::page_token(last.identity.pk)
        ));
    }
    if let Ok(value) = HeaderValue::from_str(&links.join(",")) {
        response.headers_mut().insert(LINK, value);
    }
    Ok(response)
}

/// Get an identity.
#[utoipa::path(get, path = "/identities/{id}", tag = "kratos-identities",
    params(("id" = String, Path, description = "The identity's id")),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = Identity),
        (status = 401, body = ErrorGeneric, description = "No or wrong admin token"),
        (status = 404, body = ErrorGeneric, description = "No such identity"),
    ))]
pub async fn get_identity(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Identity>, KratosError> {
    let id = identity_id(&id)?;
    let found = record(&app, IdentityKey::Id(id.clone())).await?;
    found
        .map(|r| answer(&app, &r))
        .ok_or_else(|| not_found(&id))
}

/// Get an identity by the platform's own id.
#[utoipa::path(get, path = "/identities/by/external/{external_id}", tag = "kratos-identities",
    params(("external_id" = String, Path, description = "The platform's id of the identity")),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = Identity),
        (status = 401, body = ErrorGeneric, description = "No or wrong admin token"),
        (status = 404, body = ErrorGeneric, description = "No identity has this external id"),
    ))]
pub async fn get_identity_by_external_id(
    State(app): State<AppState>,
    Path(external_id): Path<String>,
) -> Result<Json<Identity>, KratosError> {
    let found = record(&app, IdentityKey::ExternalId(external_id.clone())).await?;
    found
        .map(|r| answer(&app, &r))
        .ok_or_else(|| not_found(&external_id))
}

/// Replace an identity's traits, state and metadata.
#[utoipa::path(put, path = "/identities/{id}", tag = "kratos-identities",
    params(("id" = String, Path, description = "The identity's id")),
    request_body = UpdateIdentityBody,
    security(("admin_token" = [])),
    responses(
        (status = 200, body = Identity),
        (status = 400, body = ErrorGeneric, description = "Malformed JSON, an unknown schema, bad traits or state"),
        (status = 401, body = ErrorGeneric, description = "No or wrong admin token"),
        (status = 404, body = ErrorGeneric, description = "No such identity"),
        (status = 409, body = ErrorGeneric, description = "The address or external id is taken, or the platform manages the identities"),
    ))]
pub async fn update_identity(
    State(app): State<AppState>,
    Path(id): Path<String>,
    raw: Body,
) -> Result<Json<Identity>, KratosError> {
    let id = identity_id(&id)?;
    let body: UpdateIdentityBody = body(raw).await?;
    let fields = body.fields().map_err(bad_request)?;
    let record = app
        .reclaim
        .update_identity(&id, NewIdentity::from(fields))
        .await?;
    Ok(answer(&app, &record))
}

/// Change an identity with a JSON Patch (RFC 6902) of its `Identity`.
#[utoipa::path(patch, path = "/identities/{id}", tag = "kratos-identities",
    params(("id" = String, Path, description = "The identity's id")),
    request_body(content = Vec<Object>, description = "A JSON Patch"),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = Identity),
        (status = 400, body = ErrorGeneric, description = "Not a JSON Patch, a failed test, or a result that is not a valid identity"),
        (status = 401, body = ErrorGeneric, description = "No or wrong admin token"),
        (status = 404, body = ErrorGeneric, description = "No such identity"),
        (status = 409, body = ErrorGeneric, description = "The address or external id is taken, or the platform manages the identities"),
    ))]
pub async fn patch_identity(
    State(app): State<AppState>,
    Path(id): Path<String>,
    raw: Body,
) -> Result<Json<Identity>, KratosError> {
    let id = identity_id(&id)?;
    let patch = patch_body(raw).await?;
    let current = record(&app, IdentityKey::Id(id.clone()))
        .await?
        .ok_or_else(|| not_found(&id))?;
    let fields = patched(&current, &app.config.settings.public_url, &patch).map_err(bad_request)?;
    let record = app
        .reclaim
        .update_identity(&id, NewIdentity::from(fields))
        .await?;
    Ok(answer(&app, &record))
}

/// Delete an identity: its links, codes and recovery session end with it.
#[utoipa::path(delete, path = "/identities/{id}", tag = "kratos-identities",
    params(("id" = String, Path, description = "The identity's id")),
    security(("admin_token" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = ErrorGeneric, description = "No or wrong admin token"),
        (status = 404, body = ErrorGeneric, description = "No such identity"),
        (status = 409, body = ErrorGeneric, description = "The platform manages the identities"),
    ))]
pub async fn delete_identity(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, KratosError> {
    let id = identity_id(&id)?;
    app.reclaim.delete_identity(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// End an identity's recovery session.
#[utoipa::path(delete, path = "/identities/{id}/sessions", tag = "kratos-identities",
    params(("id" = String, Path, description = "The identity's id")),
    security(("admin_token" = [])),
    responses(
        (status = 204, description = "Its recovery session, if any, ended"),
        (status = 401, body = ErrorGeneric, description = "No or wrong admin token"),
        (status = 404, body = ErrorGeneric, description = "No such identity"),
    ))]
pub async fn delete_identity_sessions(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, KratosError> {
    let id = identity_id(&id)?;
    app.reclaim.end_identity_sessions(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Import identities: up to 1,000 per call, each answered in its own slot.
#[utoipa::path(patch, path = "/identities", tag = "kratos-identities",
    request_body = PatchIdentitiesBody,
    security(("admin_token" = [])),
    responses(
        (status = 200, body = BatchPatchIdentitiesResponse),
        (status = 400, body = ErrorGeneric, description = "Malformed JSON, or more than 1,000 slots"),
        (status = 401, body = ErrorGeneric, description = "No or wrong admin token"),
        (status = 413, body = ErrorGeneric, description = "Body over 8 MiB"),
    ))]
pub async fn batch_patch_identities(
    State(app): State<AppState>,
    raw: Body,
) -> Result<Json<BatchPatchIdentitiesResponse>, KratosError> {
    let batch: PatchIdentitiesBody = body(raw).await?;
    if batch.identities.len() > wire::MAX_BATCH {
        return Err(bad_request(format!(
            "A batch takes at most {} identities.",
            wire::MAX_BATCH
        )));
    }
    // Every slot is its own unit of work, all submitted at once: one slot's
    // conflict spoils no other, and group commit makes them one sync.
    let pending: Vec<_> = batch
        .identities
        .into_iter()
        .map(|slot| {
            let fields = slot
                .create
                .ok_or_else(|| "The slot has no \"create\".".to_string())
                .and_then(|create| create.fields());
            let created = fields.map(|f| app.reclaim.create_identity(NewIdentity::from(f)));
            (slot.patch_id, created)
        })
        .collect();
    let mut answers = Vec::with_capacity(pending.len());
    for (patch_id, created) in pending {
        let outcome = match created {
            Err(message) => Err(slot_error(400, "Bad Request", &message)),
            Ok(pending) => pending.await.map_err(|e| {
                let e = ErrorGeneric::from_outcome(&super::outcome::outcome(&e), &request_id());
                slot_error(e.error.code, &e.error.status, &e.error.message)
            }),
        };
        answers.push(match outcome {
            Ok(record) => IdentityPatchResponse {
                action: "create".into(),
                identity: Some(record.identity.id),
                patch_id,
                error: None,
            },
            Err(error) => IdentityPatchResponse {
                action: "error".into(),
                identity: None,
                patch_id,
                error: Some(error),
            },
        });
    }
    Ok(Json(BatchPatchIdentitiesResponse {
        identities: answers,
    }))
}

fn slot_error(code: u16, status: &str, message: &str) -> Value {
    serde_json::json!({ "code": code, "status": status, "message": message })
}

/// The identity schema's JSON Schema.
#[utoipa::path(get, path = "/schemas/{id}", tag = "kratos-identities",
    params(("id" = String, Path, description = "The schema's id: `default`")),
    responses(
        (status = 200, description = "The JSON Schema of the identity traits"),
        (status = 404, body = ErrorGeneric, description = "No such schema"),
    ))]
pub async fn identity_schema(Path(id): Path<String>) -> Result<Json<Value>, KratosError> {
    // Kratos names schemas by their id in base64 in `schema_url`.
    if id == wire::SCHEMA_ID || id == "ZGVmYXVsdA" {
        Ok(Json(wire::schema_document()))
    } else {
        Err(KratosError(ErrorGeneric::new(
            StatusCode::NOT_FOUND,
            "The requested resource could not be found.",
            format!("The identity schema {id:?} does not exist."),
            &request_id(),
        )))
    }
}

/// This area's handler of one method of a route (`http::endpoint`). The
/// identity routes take batches of a few MiB: their handlers read bodies of
/// up to 8 MiB themselves, after the token is checked, so only an
/// administrator can make the server read that much.
pub(super) fn endpoint(route: Route, verb: Verb) -> Option<MethodRouter<AppState>> {
    use axum::routing::{delete, get, patch, post, put};
    Some(match (route, verb) {
        (Route::Identities, Verb::Get) => get(list_identities),
        (Route::Identities, Verb::Post) => post(create_identity),
        (Route::Identities, Verb::Patch) => patch(batch_patch_identities),
        (Route::Identity, Verb::Get) => get(get_identity),
        (Route::Identity, Verb::Put) => put(update_identity),
        (Route::Identity, Verb::Patch) => patch(patch_identity),
        (Route::Identity, Verb::Delete) => delete(delete_identity),
        (Route::IdentityByExternalId, Verb::Get) => get(get_identity_by_external_id),
        (Route::IdentitySessions, Verb::Delete) => delete(delete_identity_sessions),
        (Route::IdentitySchema, Verb::Get) => get(identity_schema),
        _ => return None,
    })
}

/// This area's routes in the OpenAPI document.
pub(super) fn openapi() -> OpenApiRouter<AppState> {
    super::kratos_admin(|| {
        OpenApiRouter::new()
            .routes(routes!(
                create_identity,
                list_identities,
                batch_patch_identities
            ))
            .routes(routes!(
                get_identity,
                update_identity,
                patch_identity,
                delete_identity
            ))
            .routes(routes!(get_identity_by_external_id))
            .routes(routes!(delete_identity_sessions))
    })
    .routes(routes!(identity_schema))
}
