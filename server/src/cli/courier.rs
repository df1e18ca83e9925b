//! `reclaim courier`: delivering mail and webhooks, and the operator's
//! view of the outbox and the endpoints.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use super::Service;
use reclaim::mail::MailStatus;
use reclaim_server::http;

#[derive(Subcommand)]
pub enum CourierCommand {
    /// Deliver every message and webhook that is due now, then exit
    Flush,
    /// Deliver mail and webhooks as they come, until SIGINT or SIGTERM
    Watch,
    /// Counts by status, the age of the oldest queued message, and each
    /// webhook endpoint's deliveries (and whether a 410 disabled it)
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
    /// Resume deliveries to a webhook endpoint that a 410 disabled
    EnableWebhook {
        /// The endpoint's URL, as configured
        url: String,
    },
}

pub fn run(service: &Service, command: CourierCommand) -> Result<Value> {
    let now = service.now();
    let outbox = &service.backend;
    Ok(match command {
        CourierCommand::Flush => {
            // The mail's counts at the top, as before webhooks existed.
            let mut flushed = serde_json::to_value(service.courier.drain()?)?;
            flushed["webhooks"] = serde_json::to_value(service.webhooks.drain()?)?;
            flushed
        }
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
            let interval = service.config.courier.interval;
            std::thread::scope(|scope| {
                scope.spawn(|| service.webhooks.watch(interval, &stop));
                service.courier.watch(interval, &stop);
            });
            json!({ "stopped": true })
        }
        CourierCommand::Status => {
            let mut status = serde_json::to_value(outbox.status(now)?)?;
            status["webhooks"] = serde_json::to_value(outbox.webhook_status()?)?;
            status
        }
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
        CourierCommand::EnableWebhook { url } => {
            if !outbox.enable_endpoint(&url)? {
                bail!("the webhook endpoint {url} is not disabled");
            }
            json!({ "url": url, "enabled": true })
        }
    })
}
