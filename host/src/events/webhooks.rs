//! Webhook deliveries as Standard Webhooks (standardwebhooks.com): the
//! signature, the retry schedule, and the courier that claims due
//! deliveries under a lease and sends each to its endpoint. The endpoints
//! are only those configured; a delivery keeps its `webhook-id` and body
//! across retries, and is signed afresh at every attempt.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{EventType, Subscription};
use crate::clock::{Clock, duration_nanos};
use crate::storage::events::{DeliveryAttempt, EventStore, QueuedDelivery};
use crate::storage::outbox::Attempt;

/// A configured endpoint.
#[derive(Clone)]
pub struct Endpoint {
    pub url: url::Url,
    /// Signing keys, newest first: every delivery carries a signature by
    /// each, so an endpoint can rotate without missing one.
    secrets: Vec<Vec<u8>>,
    pub events: Option<Vec<EventType>>,
    pub include_password_hash: bool,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secrets stay out of every log and error.
        f.debug_struct("Endpoint")
            .field("url", &self.url.as_str())
            .field("secrets", &self.secrets.len())
            .field("events", &self.events)
            .finish()
    }
}

impl Endpoint {
    /// Checks an endpoint as configured: an `https` URL (plain `http` only
    /// to a loopback host), at least one `whsec_` secret, known event types.
    pub fn new(
        url: &str,
        secrets: &[String],
        events: Option<&[String]>,
        include_password_hash: bool,
    ) -> Result<Self> {
        let parsed = url::Url::parse(url).with_context(|| format!("webhook URL {url:?}"))?;
        let loopback = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            None => false,
        };
        match parsed.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => bail!("webhook URL {url:?} must be https (plain http only to a loopback host)"),
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            bail!("webhook URL {url:?} must not carry credentials");
        }
        if secrets.is_empty() {
            bail!("the webhook {url:?} needs at least one secret (whsec_...)");
        }
        let secrets = secrets
            .iter()
            .enumerate()
            .map(|(i, s)| {
                decode_secret(s).with_context(|| format!("secret {} of the webhook {url:?}", i + 1))
            })
            .collect::<Result<_>>()?;
        let events = events
            .map(|names| {
                names
                    .iter()
                    .map(|n| {
                        EventType::parse(n).with_context(|| {
                            format!("the webhook {url:?} names an unknown event type {n:?}")
                        })
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?;
        Ok(Self {
            url: parsed,
            secrets,
            events,
            include_password_hash,
        })
    }

    /// What the planner needs of it.
    pub fn subscription(&self) -> Subscription {
        Subscription {
            url: self.url.to_string(),
            events: self.events.clone(),
            include_password_hash: self.include_password_hash,
        }
    }

    /// `webhook-signature`: `v1,<base64>` per secret, space-separated.
    pub fn signature(&self, id: &str, timestamp: u64, body: &str) -> String {
        self.secrets
            .iter()
            .map(|key| format!("v1,{}", sign(key, id, timestamp, body)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The key of a `whsec_<base64>` secret. Too short a key is refused: it
/// would make signatures guessable.
fn decode_secret(secret: &str) -> Result<Vec<u8>> {
    let encoded = secret
        .strip_prefix("whsec_")
        .context("must start with whsec_")?;
    let key = BASE64
        .decode(encoded)
        .ok()
        .context("must be base64 after whsec_")?;
    if key.len() < 24 {
        bail!("must decode to at least 24 bytes");
    }
    Ok(key)
}

/// Base64 of HMAC-SHA256 over `"{id}.{timestamp}.{body}"`.
fn sign(key: &[u8], id: &str, timestamp: u64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

/// The specification's retry schedule: the wait after each failed attempt.
/// After the last, the delivery is abandoned.
pub const SCHEDULE: [Duration; 9] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(14 * 3600),
    Duration::from_secs(20 * 3600),
    Duration::from_secs(24 * 3600),
];

/// The wait after `attempts` failed attempts, if `schedule` has another:
/// its step spread by ±10% (`jitter` in [0, 1)), or the endpoint's
/// `Retry-After` when that is longer (up to the schedule's longest step).
pub fn retry_delay(
    schedule: &[Duration],
    attempts: u32,
    jitter: f64,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    let step = *schedule.get(usize::try_from(attempts.checked_sub(1)?).ok()?)?;
    let spread = step.mul_f64(0.9 + 0.2 * jitter.clamp(0.0, 1.0));
    let longest = schedule.iter().max().copied().unwrap_or_default();
    Some(spread.max(retry_after.unwrap_or_default().min(longest)))
}

/// How a courier delivers.
#[derive(Clone, Debug)]
pub struct DeliveryPolicy {
    /// How long one attempt may take.
    pub timeout: Duration,
    /// How long a claim lasts; more than twice the timeout.
    pub lease: Duration,
    pub batch: usize,
    /// The waits between attempts ([`SCHEDULE`] unless configured).
    pub schedule: Vec<Duration>,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(15),
            lease: Duration::from_secs(120),
            batch: 10,
            schedule: SCHEDULE.to_vec(),
        }
    }
}

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PassReport {
    pub delivered: usize,
    pub retried: usize,
    pub abandoned: usize,
    pub disabled: usize,
}

/// Moves deliveries from the store to their endpoints.
pub struct WebhookCourier {
    id: String,
    store: Arc<dyn EventStore>,
    endpoints: Vec<Endpoint>,
    client: reqwest::blocking::Client,
    clock: Arc<dyn Clock>,
    policy: DeliveryPolicy,
}

/// What came of sending one delivery.
enum Sent {
    Delivered,
    /// The endpoint answered 410: it wants no more.
    Gone,
    Failed {
        error: String,
        retry_after: Option<Duration>,
    },
}

impl WebhookCourier {
    pub fn new(
        store: Arc<dyn EventStore>,
        endpoints: Vec<Endpoint>,
        clock: Arc<dyn Clock>,
        policy: DeliveryPolicy,
    ) -> Result<Self> {
        let client = reqwest::blocking::Client::builder()
            // A redirect is a failure, never followed: the endpoint is the
            // configured one or none.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout)
            .user_agent(concat!("reclaim/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the webhook client")?;
        Ok(Self {
            id: uuid::Uuid::new_v4().to_string(),
            store,
            endpoints,
            client,
            clock,
            policy,
        })
    }

    /// Whether any endpoint is configured.
    pub fn is_configured(&self) -> bool {
        !self.endpoints.is_empty()
    }

    fn now(&self) -> u64 {
        self.clock.now_nanos()
    }

    fn lease_until(&self) -> u64 {
        self.now().saturating_add(duration_nanos(self.policy.lease))
    }

    /// Claims one batch of due deliveries and tries each once.
    pub fn pass(&self) -> Result<PassReport> {
        let mut report = PassReport::default();
        let claimed_until = self.lease_until();
        let batch =
            self.store
                .claim_deliveries(&self.id, self.policy.batch, self.now(), claimed_until)?;
        // One attempt fits in a lease with room to spare: a claim is renewed
        // (one more write) only once what is left of it might not.
        let room = duration_nanos(self.policy.timeout).saturating_mul(2);
        let mut attempts = Vec::with_capacity(batch.len());
        for delivery in &batch {
            if claimed_until.saturating_sub(self.now()) < room
                && !self.store.renew_delivery(
                    &delivery.event_id,
                    &delivery.endpoint,
                    &self.id,
                    self.now(),
                    self.lease_until(),
                )?
            {
                continue;
            }
            let attempt = match self.endpoint(&delivery.endpoint) {
                None => Attempt::Abandon {
                    error: "the endpoint is no longer configured".into(),
                },
                Some(endpoint) => match self.send(endpoint, delivery) {
                    Sent::Delivered => Attempt::Sent,
                    Sent::Gone => {
                        report.disabled += 1;
                        self.store.disable_endpoint(
                            &delivery.endpoint,
                            self.now(),
                            "the endpoint answered 410 Gone",
                        )?;
                        #[cfg(feature = "metrics")]
                        metrics::counter!("reclaim_webhook_endpoints_disabled_total").increment(1);
                        tracing::error!(endpoint = %delivery.endpoint, "webhook endpoint answered 410 Gone; disabled");
                        // Kept queued, due at once: it goes out if the
                        // endpoint is enabled again.
                        Attempt::Retry {
                            error: "410 Gone: the endpoint is disabled".into(),
                            retry_at: self.now(),
                        }
                    }
                    Sent::Failed { error, retry_after } => {
                        let jitter = crate::clock::jitter();
                        let attempts = delivery.attempts + 1;
                        match retry_delay(&self.policy.schedule, attempts, jitter, retry_after) {
                            Some(delay) => Attempt::Retry {
                                error,
                                retry_at: self.now().saturating_add(duration_nanos(delay)),
                            },
                            None => Attempt::Abandon { error },
                        }
                    }
                },
            };
            let outcome = match &attempt {
                Attempt::Sent => {
                    report.delivered += 1;
                    tracing::info!(id = %delivery.event_id, endpoint = %delivery.endpoint, "webhook delivered");
                    "delivered"
                }
                Attempt::Retry { error, .. } => {
                    report.retried += 1;
                    tracing::warn!(id = %delivery.event_id, endpoint = %delivery.endpoint, attempt = delivery.attempts + 1, error = %error, "webhook delivery failed; will retry");
                    "retry"
                }
                Attempt::Abandon { error } => {
                    report.abandoned += 1;
                    tracing::error!(id = %delivery.event_id, endpoint = %delivery.endpoint, attempt = delivery.attempts + 1, error = %error, "webhook delivery abandoned");
                    "abandoned"
                }
            };
            #[cfg(feature = "metrics")]
            metrics::counter!("reclaim_webhook_attempts_total", "outcome" => outcome).increment(1);
            #[cfg(not(feature = "metrics"))]
            let _ = outcome;
            attempts.push(DeliveryAttempt {
                event_id: delivery.event_id.clone(),
                endpoint: delivery.endpoint.clone(),
                attempt,
            });
        }
        // The pass's attempts in one write. A crash before it sends them
        // again once the claims run out, under the same `webhook-id`.
        if !attempts.is_empty() {
            self.store
                .record_deliveries(&self.id, self.now(), &attempts)?;
        }
        Ok(report)
    }

    /// Runs passes until nothing is due; returns the totals.
    pub fn drain(&self) -> Result<PassReport> {
        self.drain_within(Duration::MAX)
    }

    /// [`Self::drain`], stopping after the pass that outlasts `budget`, so
    /// that a backlog (an endpoint down for hours) never holds up a
    /// shutdown or starves the process; the rest waits for the next call.
    pub fn drain_within(&self, budget: Duration) -> Result<PassReport> {
        let mut total = PassReport::default();
        if !self.is_configured() {
            return Ok(total);
        }
        let started = std::time::Instant::now();
        loop {
            let pass_started = std::time::Instant::now();
            let pass = self.pass()?;
            if pass == PassReport::default() || started.elapsed() >= budget {
                return Ok(total);
            }
            total.delivered += pass.delivered;
            total.retried += pass.retried;
            total.abandoned += pass.abandoned;
            total.disabled += pass.disabled;
            // A backlog is worked off at half a core at most: the process
            // serving recoveries on the same cores keeps the rest.
            std::thread::sleep(pass_started.elapsed());
        }
    }

    /// Runs passes every `interval` until `stop` is set.
    pub fn watch(&self, interval: Duration, stop: &std::sync::atomic::AtomicBool) {
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if let Err(e) = self.drain() {
                tracing::warn!(error = %format!("{e:#}"), "webhook pass failed; deliveries stay queued");
            }
            std::thread::sleep(interval);
        }
    }

    fn endpoint(&self, url: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.url.as_str() == url)
    }

    fn send(&self, endpoint: &Endpoint, delivery: &QueuedDelivery) -> Sent {
        let timestamp = self.now() / 1_000_000_000;
        let signature = endpoint.signature(&delivery.event_id, timestamp, &delivery.body);
        let answer = self
            .client
            .post(endpoint.url.clone())
            .header("content-type", "application/json")
            .header("webhook-id", &delivery.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(delivery.body.clone())
            .send();
        let response = match answer {
            Ok(response) => response,
            Err(e) => {
                let error = if e.is_timeout() {
                    format!("no answer within {:?}", self.policy.timeout)
                } else {
                    // reqwest's message names the URL and the cause, never
                    // the body or headers.
                    format!("{e}")
                };
                return Sent::Failed {
                    error,
                    retry_after: None,
                };
            }
        };
        let status = response.status();
        if status.is_success() {
            return Sent::Delivered;
        }
        if status == reqwest::StatusCode::GONE {
            return Sent::Gone;
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
        Sent::Failed {
            error: if status.is_redirection() {
                format!("{status}: redirects are not followed")
            } else {
                status.to_string()
            },
            retry_after,
        }
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    if let Ok(seconds) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value.trim()).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

#[cfg(test)]
mod tests;
