//! Ory Kratos' identity admin API on the wire (what `ory-kratos-client`
//! sends and parses): the bodies of `POST`, `PUT` and batch `PATCH
//! /admin/identities`, the `Identity` it answers with, and the checks that
//! turn a body into [`IdentityFields`]. One identity schema, `default`,
//! whose traits are `email` (required), `name` and `locale`.
//!
//! Reclaim keeps two keys of `metadata_admin` for itself: `second_factor`
//! (a bool the caller sets: the account has a second factor) and `pk` (the
//! integer authentik addresses the user by, set by Reclaim and read-only).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The one identity schema.
pub const SCHEMA_ID: &str = "default";

/// The JSON Schema of the `default` identity schema's traits, as
/// `GET /schemas/default` serves it (Kratos links it from `schema_url`).
pub fn schema_document() -> Value {
    serde_json::json!({
        "$id": "https://schemas.reclaim.dev/identity/default.json",
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Person",
        "type": "object",
        "properties": {
            "traits": {
                "type": "object",
                "properties": {
                    "email": {
                        "type": "string", "format": "email", "title": "E-Mail",
                        "ory.sh/kratos": { "recovery": { "via": "email" } }
                    },
                    "name": { "type": "string", "title": "Name", "maxLength": 256 },
                    "locale": { "type": "string", "title": "Language", "maxLength": 35 }
                },
                "required": ["email"],
                "additionalProperties": false
            }
        }
    })
}

/// `CreateIdentityBody`.
#[derive(Deserialize, Clone, Debug)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateIdentityBody {
    /// Must be `default`.
    pub schema_id: String,
    /// `{"email", "name"?, "locale"?}`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub traits: Map<String, Value>,
    /// `active` (the default) or `inactive`.
    pub state: Option<String>,
    /// The platform's own id for this person; unique.
    pub external_id: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata_public: Option<Map<String, Value>>,
    /// `second_factor` (bool) is Reclaim's; other keys are kept as given.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata_admin: Option<Map<String, Value>>,
    /// Accepted and ignored: the recovery address is `traits.email`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<Object>>))]
    pub recovery_addresses: Option<Vec<Map<String, Value>>>,
    /// Accepted and ignored: Reclaim keeps no login credentials.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub credentials: Option<Map<String, Value>>,
}

/// `UpdateIdentityBody` (`PUT`): every field is replaced.
#[derive(Deserialize, Clone, Debug)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateIdentityBody {
    pub schema_id: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub traits: Map<String, Value>,
    /// `active` or `inactive`.
    pub state: String,
    pub external_id: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata_public: Option<Map<String, Value>>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata_admin: Option<Map<String, Value>>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub credentials: Option<Map<String, Value>>,
}

/// An identity's fields once checked: what the server stores.
#[derive(Clone, Debug, PartialEq)]
pub struct IdentityFields {
    pub email: String,
    pub name: Option<String>,
    pub locale: Option<String>,
    pub active: bool,
    pub external_id: Option<String>,
    pub second_factor: bool,
    pub metadata_public: Option<Value>,
    /// Without Reclaim's own keys.
    pub metadata_admin: Option<Value>,
}

impl CreateIdentityBody {
    /// The checked fields, or the message of a 400.
    pub fn fields(&self) -> Result<IdentityFields, String> {
        fields(
            &self.schema_id,
            &self.traits,
            self.state.as_deref().unwrap_or("active"),
            &self.external_id,
            &self.metadata_public,
            &self.metadata_admin,
        )
    }
}

impl UpdateIdentityBody {
    /// The checked fields, or the message of a 400.
    pub fn fields(&self) -> Result<IdentityFields, String> {
        fields(
            &self.schema_id,
            &self.traits,
            &self.state,
            &self.external_id,
            &self.metadata_public,
            &self.metadata_admin,
        )
    }
}

/// How deep metadata may nest: well inside what a JSON reader takes back
/// (serde_json stops at 128), so whatever is stored reads back whole.
pub const MAX_METADATA_DEPTH: usize = 64;

/// How many levels of objects and arrays `map` holds, itself included.
fn nesting(map: &Map<String, Value>) -> usize {
    fn depth(value: &Value) -> usize {
        match value {
            Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
            Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
            _ => 0,
        }
    }
    1 + map.values().map(depth).max().unwrap_or(0)
}

fn fields(
    schema_id: &str,
    traits: &Map<String, Value>,
    state: &str,
    external_id: &Option<String>,
    metadata_public: &Option<Map<String, Value>>,
    metadata_admin: &Option<Map<String, Value>>,
) -> Result<IdentityFields, String> {
    if schema_id != SCHEMA_ID {
        return Err(format!(
            "The identity schema {schema_id:?} does not exist; the only one is \"{SCHEMA_ID}\"."
        ));
    }
    if let Some(unknown) = traits
        .keys()
        .find(|k| !matches!(k.as_str(), "email" | "name" | "locale"))
    {
        return Err(format!(
            "I[#/traits] additionalProperties {unknown:?} not allowed: the traits are \"email\", \"name\" and \"locale\"."
        ));
    }
    let text = |key: &str| -> Result<Option<String>, String> {
        match traits.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("I[#/traits/{key}] must be a string.")),
        }
    };
    let email = text("email")?
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty())
        .ok_or("I[#/traits] missing properties: \"email\".")?;
    let active = match state {
        "active" => true,
        "inactive" => false,
        other => {
            return Err(format!(
                "\"state\" must be \"active\" or \"inactive\", not {other:?}."
            ));
        }
    };
    for (name, metadata) in [
        ("metadata_public", metadata_public),
        ("metadata_admin", metadata_admin),
    ] {
        if metadata
            .as_ref()
            .is_some_and(|m| nesting(m) > MAX_METADATA_DEPTH)
        {
            return Err(format!(
                "\"{name}\" is nested more than {MAX_METADATA_DEPTH} levels deep."
            ));
        }
    }
    let mut admin = metadata_admin.clone();
    let second_factor = match admin.as_mut().and_then(|m| m.remove("second_factor")) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err("\"metadata_admin.second_factor\" must be a boolean.".into()),
    };
    if let Some(admin) = admin.as_mut() {
        admin.remove("pk");
    }
    Ok(IdentityFields {
        email,
        name: text("name")?,
        locale: text("locale")?,
        active,
        external_id: external_id.clone().filter(|e| !e.is_empty()),
        second_factor,
        metadata_public: metadata_public.clone().map(Value::Object),
        metadata_admin: admin.filter(|m| !m.is_empty()).map(Value::Object),
    })
}

/// `Identity`, as Kratos answers it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Identity {
    #[cfg_attr(feature = "openapi", schema(format = "uuid"))]
    pub id: String,
    pub schema_id: String,
    pub schema_url: String,
    /// `active` or `inactive`.
    pub state: String,
    pub state_changed_at: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub traits: Value,
    pub recovery_addresses: Vec<RecoveryIdentityAddress>,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub verifiable_addresses: Vec<Value>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata_public: Option<Value>,
    /// Carries Reclaim's `second_factor` and `pk`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata_admin: Value,
    pub external_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub organization_id: Option<String>,
}

/// `RecoveryIdentityAddress`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecoveryIdentityAddress {
    #[cfg_attr(feature = "openapi", schema(format = "uuid"))]
    pub id: String,
    pub value: String,
    /// Always `email`.
    pub via: String,
    pub created_at: String,
    pub updated_at: String,
}

/// `metadata_admin` as answered: the stored keys plus Reclaim's own.
pub fn metadata_admin(stored: Option<&Value>, second_factor: bool, pk: i64) -> Value {
    let mut map = stored
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    map.insert("second_factor".into(), Value::Bool(second_factor));
    map.insert("pk".into(), Value::from(pk));
    Value::Object(map)
}

/// The traits as answered.
pub fn traits(email: Option<&str>, name: Option<&str>, locale: Option<&str>) -> Value {
    let mut map = Map::new();
    for (key, value) in [("email", email), ("name", name), ("locale", locale)] {
        if let Some(value) = value {
            map.insert(key.into(), Value::String(value.into()));
        }
    }
    Value::Object(map)
}

/// The id of an identity's recovery address: stable for the pair, so the
/// same address keeps its id across reads without being stored.
pub fn address_id(identity_id: &str, address: &str) -> String {
    let namespace = uuid::Uuid::parse_str(identity_id).unwrap_or(uuid::Uuid::nil());
    uuid::Uuid::new_v5(&namespace, address.to_lowercase().as_bytes())
        .hyphenated()
        .to_string()
}

/// `PatchIdentitiesBody`: the batch import.
#[derive(Deserialize, Debug)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PatchIdentitiesBody {
    pub identities: Vec<IdentityPatch>,
}

/// One slot of the batch: a JSON object (serde would take an array too).
/// A slot whose identity is malformed fails the whole batch, as the
/// document says; one whose identity is refused (bad traits, a taken
/// address) is answered in its own slot.
#[derive(Deserialize, Debug)]
#[serde(try_from = "Map<String, Value>")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IdentityPatch {
    /// The identity to create (a slot without one is answered as an error).
    pub create: Option<CreateIdentityBody>,
    /// The caller's id of the slot, echoed in its answer.
    #[cfg_attr(feature = "openapi", schema(format = "uuid"))]
    pub patch_id: Option<String>,
}

impl TryFrom<Map<String, Value>> for IdentityPatch {
    type Error = serde_json::Error;

    fn try_from(map: Map<String, Value>) -> Result<Self, Self::Error> {
        #[derive(Deserialize)]
        struct Slot {
            create: Option<CreateIdentityBody>,
            patch_id: Option<String>,
        }
        let slot: Slot = serde_json::from_value(Value::Object(map))?;
        if slot
            .patch_id
            .as_deref()
            .is_some_and(|id| uuid::Uuid::try_parse(id).is_err())
        {
            return Err(serde::de::Error::custom("\"patch_id\" must be a UUID"));
        }
        Ok(Self {
            create: slot.create,
            patch_id: slot.patch_id,
        })
    }
}

/// `BatchPatchIdentitiesResponse`.
#[derive(Serialize, Deserialize, Debug)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchPatchIdentitiesResponse {
    pub identities: Vec<IdentityPatchResponse>,
}

/// `IdentityPatchResponse`: one slot's outcome.
#[derive(Serialize, Deserialize, Debug)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IdentityPatchResponse {
    /// `create` or `error`.
    pub action: String,
    /// The new identity's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_id: Option<String>,
    /// The slot's error, in `errorGeneric`'s inner shape.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub error: Option<Value>,
}

/// Most slots one batch takes (Kratos' own limit is 1,000 too).
pub const MAX_BATCH: usize = 1000;

/// Largest body of the identity admin routes: a batch of [`MAX_BATCH`]
/// identities with metadata. The public routes keep `MAX_BODY_BYTES`.
pub const MAX_IDENTITY_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Whether `path` is one of the identity admin routes, which take bodies
/// up to [`MAX_IDENTITY_BODY_BYTES`].
pub fn is_identity_admin_path(path: &str) -> bool {
    ["/admin/identities", "/iam/identities"]
        .iter()
        .any(|prefix| {
            path.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
}

/// `GET /admin/identities` query.
#[derive(Deserialize, Debug, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ListIdentitiesQuery {
    /// Only the identity with this address.
    pub credentials_identifier: Option<String>,
    /// 1 to 1000; 250 when absent.
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 1000))]
    pub page_size: Option<i64>,
    /// The `page_token` of the `Link` header's `next` page.
    pub page_token: Option<String>,
}

/// The default and largest page.
pub const DEFAULT_PAGE_SIZE: i64 = 250;
pub const MAX_PAGE_SIZE: i64 = 1000;

/// A page token: the pk the next page starts after, opaque to callers.
pub fn page_token(after_pk: i64) -> String {
    format!("pk{after_pk}")
}

/// The pk a page token names, or none for one this server did not issue.
pub fn parse_page_token(token: &str) -> Option<i64> {
    token.strip_prefix("pk")?.parse().ok().filter(|pk| *pk >= 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(value: Value) -> CreateIdentityBody {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn traits_take_email_name_and_locale_only() {
        let ok = body(json!({"schema_id": "default", "traits": {"email": "a@b.c", "name": "A"}}));
        let fields = ok.fields().unwrap();
        assert_eq!(fields.email, "a@b.c");
        assert!(fields.active);
        for bad in [
            json!({"schema_id": "default", "traits": {"name": "A"}}),
            json!({"schema_id": "default", "traits": {"email": "a@b.c", "phone": "1"}}),
            json!({"schema_id": "default", "traits": {"email": 3}}),
            json!({"schema_id": "other", "traits": {"email": "a@b.c"}}),
            json!({"schema_id": "default", "traits": {"email": "a@b.c"}, "state": "gone"}),
            json!({"schema_id": "default", "traits": {"email": "a@b.c"}, "metadata_admin": {"second_factor": "yes"}}),
        ] {
            assert!(body(bad.clone()).fields().is_err(), "{bad}");
        }
    }

    #[test]
    fn metadata_that_could_not_be_read_back_is_refused() {
        let mut deep = json!("leaf");
        for _ in 0..MAX_METADATA_DEPTH {
            deep = json!({ "a": deep });
        }
        let fits = body(json!({
            "schema_id": "default",
            "traits": { "email": "ann@example.com" },
            "metadata_public": deep,
        }));
        assert!(fits.fields().is_ok());
        let refused = body(json!({
            "schema_id": "default",
            "traits": { "email": "ann@example.com" },
            "metadata_admin": { "a": deep },
        }));
        assert!(refused.fields().unwrap_err().contains("metadata_admin"));
    }

    #[test]
    fn reclaims_own_metadata_keys_are_split_off() {
        let fields = body(json!({"schema_id": "default", "traits": {"email": "a@b.c"},
            "metadata_admin": {"second_factor": true, "pk": 99, "team": "x"}}))
        .fields()
        .unwrap();
        assert!(fields.second_factor);
        assert_eq!(fields.metadata_admin, Some(json!({"team": "x"})));
        assert_eq!(
            metadata_admin(fields.metadata_admin.as_ref(), true, 7),
            json!({"team": "x", "second_factor": true, "pk": 7})
        );
    }

    #[test]
    fn page_tokens_read_back_and_others_are_refused() {
        assert_eq!(parse_page_token(&page_token(42)), Some(42));
        assert_eq!(parse_page_token("42"), None);
        assert_eq!(parse_page_token("pk-1"), None);
    }
}
