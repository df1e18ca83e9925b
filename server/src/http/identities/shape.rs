//! The identity as Kratos shows it, and what a JSON Patch makes of one
//! (only what a `PUT` may set).

use reclaim_wire::identities::{
    self as wire, Identity, IdentityFields, RecoveryIdentityAddress, UpdateIdentityBody,
};
use serde_json::Value;

use crate::clock::rfc3339;
use crate::storage::IdentityRecord;

/// An identity record in Kratos' `Identity` shape; `public_url` is where
/// its schema is served.
pub fn wire_identity(record: &IdentityRecord, public_url: &str) -> Identity {
    let i = &record.identity;
    let updated = rfc3339(record.updated_at);
    Identity {
        id: i.id.clone(),
        schema_id: wire::SCHEMA_ID.into(),
        schema_url: format!("{public_url}/schemas/{}", wire::SCHEMA_ID),
        state: if i.active { "active" } else { "inactive" }.into(),
        state_changed_at: rfc3339(record.state_changed_at),
        traits: wire::traits(
            i.email.as_deref(),
            i.display_name.as_deref(),
            i.locale.as_deref(),
        ),
        recovery_addresses: i
            .email
            .iter()
            .map(|email| RecoveryIdentityAddress {
                id: wire::address_id(&i.id, email),
                value: email.to_lowercase(),
                via: "email".into(),
                created_at: rfc3339(record.created_at),
                updated_at: updated.clone(),
            })
            .collect(),
        verifiable_addresses: Vec::new(),
        metadata_public: record.metadata_public.clone(),
        metadata_admin: wire::metadata_admin(
            record.metadata_admin.as_ref(),
            record.second_factor,
            i.pk,
        ),
        external_id: record.external_id.clone(),
        created_at: rfc3339(record.created_at),
        updated_at: updated,
        organization_id: None,
    }
}

/// What `PATCH /admin/identities/{id}` makes of `record`: the JSON Patch
/// applied to the identity as answered, read back as a `PUT` body. Only
/// what a `PUT` sets may change: a patch that touches the id, the times,
/// the addresses, the credentials or a key the identity does not have is
/// refused, and `metadata_admin.second_factor` stays as it was unless the
/// patch sets it (replacing `/metadata_admin` whole must not turn a second
/// factor off unnoticed).
pub fn patched(
    record: &IdentityRecord,
    public_url: &str,
    patch: &json_patch::Patch,
) -> Result<IdentityFields, String> {
    const WRITABLE: [&str; 6] = [
        "schema_id",
        "state",
        "traits",
        "external_id",
        "metadata_public",
        "metadata_admin",
    ];
    let before =
        serde_json::to_value(wire_identity(record, public_url)).map_err(|e| e.to_string())?;
    let mut after = before.clone();
    json_patch::patch(&mut after, patch).map_err(|e| format!("The JSON Patch failed: {e}"))?;
    let (Some(was), Some(is)) = (before.as_object(), after.as_object()) else {
        return Err("The patched identity is not an object.".into());
    };
    if let Some(fixed) = was
        .keys()
        .chain(is.keys())
        .find(|key| !WRITABLE.contains(&key.as_str()) && was.get(*key) != is.get(*key))
    {
        return Err(format!("\"{fixed}\" can't be changed."));
    }
    if let Some(kept) = before.pointer("/metadata_admin/second_factor").cloned() {
        match after.get_mut("metadata_admin") {
            Some(Value::Object(admin)) => {
                admin.entry("second_factor").or_insert(kept);
            }
            _ => {
                after["metadata_admin"] = serde_json::json!({ "second_factor": kept });
            }
        }
    }
    let body: UpdateIdentityBody = serde_json::from_value(after)
        .map_err(|e| format!("The patched identity is not valid: {e}"))?;
    body.fields()
}
