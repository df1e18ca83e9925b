//! `reclaim courier`: delivering mail, and the operator's view of the
//! outbox.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use super::Service;
use reclaim::http;
use reclaim::mail::MailStatus;

#[derive(Subcommand)]
pub enum CourierCommand {
    /// Deliver every message that is due now, then exit
    Flush,
    /// Deliver mail as it comes, until SIGINT or SIGTERM
    Watch,
    /// Counts by status, and the age of the oldest queued message
    Status,
    /// Messages, newest first (no bodies)
    List {
        #[arg(long, value_enum)]
        status: Option<MailStatus>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Put an abandoned message back in the queue
    Retry {
        /// The message's id
        id: String,
    },
}

pub fn run(service: &Service, command: CourierCommand) -> Result<Value> {
    let now = service.now();
    let outbox = &service.backend;
    Ok(match command {
        CourierCommand::Flush => serde_json::to_value(service.courier.drain()?)?,
        CourierCommand::Watch => {
            let stop = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&stop);
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                if let Ok(runtime) = runtime {
                    runtime.block_on(http::shutdown_signal());
                }
                flag.store(true, Ordering::Relaxed);
            });
            service
                .courier
                .watch(service.config.courier.interval, &stop);
            json!({ "stopped": true })
        }
        CourierCommand::Status => serde_json::to_value(outbox.status(now)?)?,
        CourierCommand::List { status, limit } => {
            serde_json::to_value(outbox.list(status, limit)?)?
        }
        CourierCommand::Retry { id } => {
            if !outbox.retry(&id, now)? {
                bail!(
                    "no abandoned message that can be sent again has the id {id} \
                     (one that carried a recovery link or code lost it when it was abandoned: send a new one)"
                );
            }
            json!({ "id": id, "status": "queued" })
        }
    })
}
