//! What every command shares: the opened service, identity references and
//! the JSON shape of errors.

pub mod courier;
pub mod events;
pub mod identity;
pub mod recovery;
pub mod serve;

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use reclaim::events::Events;
use reclaim::events::webhooks::{DeliveryPolicy, WebhookCourier};
use reclaim::mail::{Courier, EmlDirectory, SmtpRelay, Transport};
use reclaim::{Backend, Error, IdentityRef, Limits, Reclaim, Runtime, SystemClock};
use reclaim_server::config::Config;

/// The backend and what runs on it, opened from the configuration.
pub struct Service {
    pub config: Config,
    pub reclaim: Reclaim,
    pub backend: Arc<dyn Backend>,
    pub courier: Courier,
    pub webhooks: WebhookCourier,
}

impl Service {
    pub fn open(config: Config) -> Result<Self> {
        let backend = reclaim::backends::open(&config.storage_location())?;
        let transport: Box<dyn Transport> = match &config.courier.smtp_url {
            Some(url) => Box::new(SmtpRelay::from_url(url, config.courier.timeout)?),
            None => Box::new(EmlDirectory::new(
                config.data.join("outbox"),
                config.outbox_retention,
            )?),
        };
        let events = Events::new(config.webhooks.iter().map(|e| e.subscription()).collect());
        let courier = Courier::new(
            backend.clone(),
            transport,
            config.mail_from.clone(),
            Arc::new(SystemClock),
            config.courier.policy.clone(),
        )
        .with_events(events.clone());
        let webhooks = WebhookCourier::new(
            backend.clone(),
            config.webhooks.clone(),
            Arc::new(SystemClock),
            DeliveryPolicy {
                timeout: config.webhook_timeout,
                lease: config.courier.policy.lease,
                batch: config.courier.policy.batch,
                schedule: config.webhook_retry.clone(),
            },
        )?;
        let limits = Limits {
            reuse_instances: config.reuse_instances,
            operation_deadline: config.operation_timeout,
            ..Limits::default()
        };
        let runtime = Runtime::new(reclaim::runtime::EMBEDDED_COMPONENT, limits)?;
        let reclaim = Reclaim::new(runtime, backend.clone(), config.settings.clone())
            .with_max_in_flight(config.server.max_operations)
            .with_events(events)
            .with_completion(config.completion, config.assertion_lifespan);
        Ok(Self {
            config,
            reclaim,
            backend,
            courier,
            webhooks,
        })
    }

    /// Mail a command queued goes out before it exits; what can't stays
    /// queued for a courier. (Webhook deliveries wait for `serve` or
    /// `courier flush`: an endpoint that is down must not hold a command.)
    pub fn deliver_queued_mail(&self) {
        if let Err(e) = self.courier.drain() {
            tracing::warn!(error = %format!("{e:#}"), "mail stays queued");
        }
    }

    /// The current time, in nanoseconds since the Unix epoch.
    pub fn now(&self) -> u64 {
        self.reclaim.clock().now_nanos()
    }
}

/// An identity named on the command line: a pk if it is an integer, an id
/// otherwise (a UUID in any form in its hyphenated one).
pub fn identity_ref(text: &str) -> IdentityRef {
    match text.parse::<i64>() {
        Ok(pk) => IdentityRef::Pk(pk),
        Err(_) => IdentityRef::Id(
            reclaim_wire::checks::identity_id(text).unwrap_or_else(|| text.to_string()),
        ),
    }
}

/// A failed command's error, in the seed APIs' error shape.
pub fn error_body(e: &anyhow::Error) -> Value {
    match e.downcast_ref::<Error>() {
        Some(Error::Refused(refusal)) => json!({ "error": {
            "code": refusal.code, "status": refusal.status,
            "reason": refusal.reason, "message": refusal.message,
        }}),
        _ => json!({ "error": {
            "code": 500, "status": "Internal Server Error",
            "reason": "The command failed.", "message": format!("{e:#}"),
        }}),
    }
}

/// `reclaim component`: the embedded component, byte for byte.
pub fn write_component(out: &Path, edge: bool, sql: bool) -> Result<Value> {
    let wasm = if edge {
        reclaim::runtime::EMBEDDED_EDGE_COMPONENT
    } else if sql {
        reclaim::runtime::EMBEDDED_SQL_COMPONENT
    } else {
        reclaim::runtime::EMBEDDED_COMPONENT
    };
    std::fs::write(out, wasm).with_context(|| format!("writing {}", out.display()))?;
    let sha256 = hex::encode(sha2::Digest::finalize(
        <sha2::Sha256 as sha2::Digest>::new_with_prefix(wasm),
    ));
    Ok(json!({ "path": out, "bytes": wasm.len(), "sha256": sha256 }))
}
