//! `reclaim identity`: the built-in identity directory. Changes go through
//! the same operations as the identity admin API, so they end what the API's
//! end (`operations/identities.rs`).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use super::{Service, identity_ref};
use reclaim::NewIdentity;
use reclaim::storage::{IdentityKey, IdentityRecord};
use reclaim_wire::identities::CreateIdentityBody;

#[derive(Subcommand)]
pub enum IdentityCommand {
    /// Add an identity; prints it with its `id` and `pk`
    Create {
        #[arg(long)]
        email: Option<String>,
        /// Display name
        #[arg(long)]
        name: Option<String>,
        /// BCP 47 language tag for mail (`de`, `pt-BR`)
        #[arg(long)]
        locale: Option<String>,
        /// Create it disabled
        #[arg(long)]
        inactive: bool,
        /// The platform's own id for this person (unique)
        #[arg(long)]
        external_id: Option<String>,
        /// The account has a second factor
        #[arg(long)]
        second_factor: bool,
    },
    /// Every identity
    List,
    /// One identity, by id (UUID) or pk (integer)
    Get { identity: String },
    /// Change the given fields of an identity; the others stay. A new
    /// address ends its recovery and notifies the old one.
    Update {
        /// Identity id (UUID) or pk (integer)
        identity: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        locale: Option<String>,
        #[arg(long)]
        external_id: Option<String>,
        #[arg(long)]
        second_factor: Option<bool>,
        #[arg(long)]
        active: Option<bool>,
    },
    /// Disable an identity: its links, codes and recovery session end
    Deactivate { identity: String },
    /// Delete an identity: its links, codes and recovery session end
    Delete { identity: String },
    /// Add the identities of a JSON file: an array of Kratos'
    /// `CreateIdentityBody`, or the body of `PATCH /admin/identities`;
    /// prints each one's outcome
    Import { file: PathBuf },
    /// Check a password against the identity's stored hash; exits non-zero
    /// when it does not match
    CheckPassword {
        /// Identity id (UUID) or pk (integer)
        #[arg(long)]
        identity: String,
        /// The password (read from standard input when absent)
        #[arg(long)]
        password: Option<String>,
    },
}

pub fn run(service: &Service, command: IdentityCommand) -> Result<Value> {
    let backend = &service.backend;
    Ok(match command {
        IdentityCommand::Create {
            email,
            name,
            locale,
            inactive,
            external_id,
            second_factor,
        } => {
            let new = NewIdentity {
                email,
                display_name: name,
                locale,
                active: !inactive,
                external_id,
                second_factor,
                ..NewIdentity::default()
            };
            shown(&service.reclaim.create_identity(new).wait()?)
        }
        IdentityCommand::List => serde_json::to_value(backend.list_identities()?)?,
        IdentityCommand::Get { identity } => shown(&record(service, &identity)?),
        IdentityCommand::Update {
            identity,
            email,
            name,
            locale,
            external_id,
            second_factor,
            active,
        } => update(service, &identity, |new| {
            new.email = email.or(new.email.take());
            new.display_name = name.or(new.display_name.take());
            new.locale = locale.or(new.locale.take());
            new.external_id = external_id.or(new.external_id.take());
            new.second_factor = second_factor.unwrap_or(new.second_factor);
            new.active = active.unwrap_or(new.active);
        })?,
        IdentityCommand::Deactivate { identity } => {
            update(service, &identity, |new| new.active = false)?
        }
        IdentityCommand::Delete { identity } => {
            let current = record(service, &identity)?;
            service
                .reclaim
                .delete_identity(&current.identity.id)
                .wait()?;
            json!({ "deleted": current.identity.id })
        }
        IdentityCommand::Import { file } => import(service, &file)?,
        IdentityCommand::CheckPassword { identity, password } => {
            let password = match password {
                Some(p) => p,
                None => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            let found = backend
                .identity(&identity_ref(&identity))?
                .context("no such identity")?;
            let matches = backend
                .password_hash(&found.id)?
                .is_some_and(|stored| reclaim::passwords::verify(&password, &stored));
            if !matches {
                bail!("the password does not match");
            }
            json!({ "identity_id": found.id, "matches": true })
        }
    })
}

/// The identity a command names, by id or pk.
fn record(service: &Service, named: &str) -> Result<IdentityRecord> {
    let found = service
        .backend
        .identity(&identity_ref(named))?
        .with_context(|| format!("no identity is {named}"))?;
    service
        .backend
        .identity_record(&IdentityKey::Id(found.id))?
        .with_context(|| format!("no identity is {named}"))
}

/// Changes the identity `named` as `change` says, through the operation
/// that ends what a change ends; prints it as it is now.
fn update(service: &Service, named: &str, change: impl FnOnce(&mut NewIdentity)) -> Result<Value> {
    let current = record(service, named)?;
    let mut new = as_new(&current);
    change(&mut new);
    Ok(shown(
        &service
            .reclaim
            .update_identity(&current.identity.id, new)
            .wait()?,
    ))
}

fn as_new(record: &IdentityRecord) -> NewIdentity {
    let i = &record.identity;
    NewIdentity {
        email: i.email.clone(),
        display_name: i.display_name.clone(),
        locale: i.locale.clone(),
        active: i.active,
        external_id: record.external_id.clone(),
        second_factor: record.second_factor,
        metadata_public: record.metadata_public.clone(),
        metadata_admin: record.metadata_admin.clone(),
    }
}

/// The directory's view of an identity (what `create` always printed),
/// with what only administrators see.
fn shown(record: &IdentityRecord) -> Value {
    let mut shown = serde_json::to_value(&record.identity).unwrap_or_default();
    if let Some(map) = shown.as_object_mut() {
        map.insert("external_id".into(), json!(record.external_id));
        map.insert("second_factor".into(), json!(record.second_factor));
    }
    shown
}

fn import(service: &Service, file: &std::path::Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let parsed: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
    let bodies: Vec<Value> = match parsed {
        Value::Array(bodies) => bodies,
        Value::Object(mut batch) => match batch.remove("identities") {
            Some(Value::Array(slots)) => slots
                .into_iter()
                .map(|mut slot| slot.get_mut("create").map(Value::take).unwrap_or_default())
                .collect(),
            _ => bail!("{} has no \"identities\" array", file.display()),
        },
        _ => bail!("{} is neither an array nor a batch", file.display()),
    };
    // Submitted together, so that group commit makes them few syncs.
    let pending: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            serde_json::from_value::<CreateIdentityBody>(body)
                .map_err(|e| format!("The identity could not be decoded: {e}"))
                .and_then(|body| body.fields())
                .map(|fields| service.reclaim.create_identity(NewIdentity::from(fields)))
        })
        .collect();
    let mut outcomes = Vec::with_capacity(pending.len());
    let mut failed = 0;
    for created in pending {
        let outcome = match created {
            Err(message) => Err(message),
            Ok(pending) => pending.wait().map_err(|e| e.to_string()),
        };
        outcomes.push(match outcome {
            Ok(record) => json!({ "action": "create", "identity": record.identity.id }),
            Err(message) => {
                failed += 1;
                json!({ "action": "error", "error": message })
            }
        });
    }
    Ok(json!({ "identities": outcomes, "created": outcomes.len() - failed, "failed": failed }))
}
