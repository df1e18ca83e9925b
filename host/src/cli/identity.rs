//! `reclaim identity`: the built-in identity directory.

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use super::{Service, identity_ref};
use reclaim::NewIdentity;

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
    },
    /// Every identity
    List,
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
        } => {
            let new = NewIdentity {
                email,
                display_name: name,
                locale,
                active: !inactive,
            };
            serde_json::to_value(backend.create_identity(&new, service.now())?)?
        }
        IdentityCommand::List => serde_json::to_value(backend.list_identities()?)?,
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
