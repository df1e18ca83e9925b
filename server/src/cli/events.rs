//! `reclaim events`: the audit trail, as `GET /admin/recovery/events`
//! shows it.

use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::Value;

use super::Service;
use reclaim::events::shown;
use reclaim::storage::events::EventFilter;

#[derive(Subcommand)]
pub enum EventsCommand {
    /// Events, oldest first
    List {
        /// Only this identity's events (its id)
        #[arg(long)]
        identity: Option<String>,
        /// Only events at or after this time (RFC 3339)
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
}

pub fn run(service: &Service, command: EventsCommand) -> Result<Value> {
    let EventsCommand::List {
        identity,
        since,
        limit,
    } = command;
    let since = since
        .map(|text| {
            humantime::parse_rfc3339_weak(&text)
                .with_context(|| format!("--since {text:?} is not an RFC 3339 time"))
                .map(|t| {
                    reclaim::clock::duration_nanos(
                        t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default(),
                    )
                })
        })
        .transpose()?;
    let events = service.backend.list_events(&EventFilter {
        identity_id: identity,
        since,
        after_seq: None,
        limit,
    })?;
    Ok(Value::Array(events.iter().map(shown).collect()))
}
