//! Configuration: a TOML file (`--config`), overridden by `RECLAIM_*`
//! environment variables and command-line flags, over built-in defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use lettre::message::Mailbox;

use crate::backends::{DirectoryQueries, Durability, Location};
use crate::mail::RetryPolicy;
use crate::settings::{self, Settings, Templates};

mod options;

use options::merge;
use reclaim_wire::authentik;

pub use options::{
    CourierOptions, DirectoryOptions, EmailStageOptions, Options, RateLimitOptions, WebhookOptions,
};

use crate::events::webhooks::Endpoint;
use crate::operations::Completion;

/// How mail is delivered.
#[derive(Clone, Debug)]
pub struct CourierConfig {
    /// SMTP relay URL; `None` writes `.eml` files to `DATA/outbox`.
    pub smtp_url: Option<String>,
    pub timeout: Duration,
    pub policy: RetryPolicy,
    pub interval: Duration,
}

/// An authentik email stage, as both servers read it.
pub use reclaim_wire::authentik::EmailStage;

/// Self-service request limits.
#[derive(Clone, Debug)]
pub struct RateLimits {
    pub per_address: u32,
    pub per_client: u32,
    /// Flows of the flow API a client may start (each is a row kept until
    /// it expires).
    pub flows_per_client: u32,
    pub window: Duration,
}

/// What `serve` holds back, so that no client can starve the others.
#[derive(Clone, Copy, Debug)]
pub struct ServerLimits {
    /// Recovery operations in flight at once.
    pub max_operations: usize,
    /// Connections kept open.
    pub max_connections: usize,
    /// Longest wait for a request's headers, or between requests.
    pub header_timeout: Duration,
    /// Longest a request may take, body and answer.
    pub request_timeout: Duration,
}

/// The resolved configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub data: PathBuf,
    pub settings: Settings,
    pub mail_from: Mailbox,
    pub listen: SocketAddr,
    /// From configuration; `None` lets `serve` create one in the data dir.
    pub admin_token: Option<String>,
    pub allowed_return_urls: Vec<url::Url>,
    /// Origins allowed to call the flow API with credentials (CORS).
    pub cors_allowed_origins: Vec<String>,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub rate_limits: RateLimits,
    pub email_stages: Vec<EmailStage>,
    pub courier: CourierConfig,
    pub durability: Durability,
    /// PostgreSQL's URL; `None` keeps everything in `DATA/reclaim.db`.
    pub database_url: Option<String>,
    /// Certificates to trust for PostgreSQL's TLS.
    pub database_ca: Option<PathBuf>,
    /// The platform's own user table as the directory (PostgreSQL only).
    pub directory: Option<DirectoryQueries>,
    /// See [`crate::Limits::reuse_instances`].
    pub reuse_instances: usize,
    /// See [`crate::Limits::operation_deadline`].
    pub operation_timeout: Duration,
    pub server: ServerLimits,
    /// How redemptions in the pages end, and where a hand-off goes.
    pub completion: Completion,
    pub handoff_url: Option<String>,
    /// Where browser recovery flows are drawn (`?flow=` appended).
    pub recovery_ui_url: String,
    /// Where a recovery's settings flow is drawn (`?flow=` appended).
    pub settings_ui_url: String,
    /// Kratos' `feature_flags.use_continue_with_transitions`.
    pub use_continue_with_transitions: bool,
    /// How long a self-service flow lives.
    pub flow_lifespan: Duration,
    pub assertion_lifespan: Duration,
    /// Webhook endpoints, how long one attempt may take, and the waits
    /// between attempts.
    pub webhooks: Vec<Endpoint>,
    pub webhook_timeout: Duration,
    pub webhook_retry: Vec<Duration>,
    pub event_retention: Duration,
    /// How long the `.eml` outbox keeps a message.
    pub outbox_retention: Duration,
}

impl Config {
    /// Where a form's POST may lead (the pages' `form-action`): the allowed
    /// return URLs and the hand-off URL.
    pub fn form_targets(&self) -> Vec<url::Url> {
        let handoff = self
            .handoff_url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok());
        self.allowed_return_urls
            .iter()
            .cloned()
            .chain(handoff)
            .collect()
    }

    /// Where the backend keeps its data.
    pub fn storage_location(&self) -> Location {
        match &self.database_url {
            Some(url) => Location::Postgres {
                url: url.clone(),
                ca: self.database_ca.clone(),
                directory: self.directory.clone(),
            },
            None => Location::Sqlite {
                path: self.data.join("reclaim.db"),
                durability: self.durability,
            },
        }
    }

    /// Reads `file` (if any), lays `overrides` (environment and flags) over
    /// it, and fills in the defaults. Creates the data directory.
    pub fn resolve(file: Option<&Path>, overrides: Options) -> Result<Self> {
        match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                Self::resolve_toml(&text, overrides)
                    .with_context(|| format!("in {}", path.display()))
            }
            None => Self::resolve_options(Options::default(), overrides),
        }
    }

    /// [`Config::resolve`] with the file's text.
    pub fn resolve_toml(text: &str, overrides: Options) -> Result<Self> {
        Self::resolve_options(toml::from_str(text)?, overrides)
    }

    fn resolve_options(base: Options, overrides: Options) -> Result<Self> {
        let o = merge(base, overrides);
        let data = match o.data {
            Some(dir) => dir,
            None => default_data_dir()?,
        };
        // The directory holds secrets, the database and mail with live links.
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&data)
            .with_context(|| format!("creating the data directory {}", data.display()))?;

        let directory = directory_queries(
            [
                &o.directory_by_id,
                &o.directory_by_pk,
                &o.directory_by_email,
            ],
            &o.directory,
        )?;
        let database_url = o.database_url.filter(|u| !u.is_empty());
        if let Some(url) = &database_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            bail!("database_url must be a postgres:// or postgresql:// URL");
        }
        let shared_database = database_url.is_some();
        if directory.is_some() && !shared_database {
            bail!(
                "the [directory] queries need PostgreSQL (database_url): with SQLite the \
                 identities live in Reclaim's own table (see the README)"
            );
        }
        let secrets = match o.secrets {
            Some(list) => {
                settings::parse_secrets(&list.join(",")).context("in the configured secrets")?
            }
            // Replicas of one database must hash alike, and the secrets must
            // not be in the database a dump would expose.
            None if shared_database => bail!(
                "with database_url, configure the hashing secrets (RECLAIM_SECRETS or \
                 `secrets` in the file): every replica must use the same ones"
            ),
            None => settings::load_or_create_secrets(&data)?,
        };
        if shared_database && o.admin_token.as_deref().is_none_or(str::is_empty) {
            bail!(
                "with database_url, configure the admin token (RECLAIM_ADMIN_TOKEN or \
                 `admin_token` in the file): every replica must accept the same one"
            );
        }
        let public_url = o
            .public_url
            .unwrap_or_else(|| "http://127.0.0.1:4433".into());
        url::Url::parse(&public_url)
            .with_context(|| format!("the public URL {public_url:?} is not a URL"))?;
        let mut settings = Settings::new(public_url.trim_end_matches('/'), secrets);
        // Tunables left out keep the component's defaults, and the component
        // checks their bounds (`serve` asks it to at start-up).
        settings.default_lifespan = optional_duration("lifespan", o.lifespan.as_deref())?;
        settings.max_lifespan = optional_duration("max_lifespan", o.max_lifespan.as_deref())?;
        settings.revoke_older_links = o.revoke_older_links;
        settings.max_code_attempts = o.max_code_attempts;
        settings.max_code_attempts_per_identity = o.max_code_attempts_per_identity;
        settings.code_attempt_window =
            optional_duration("code_attempt_window", o.code_attempt_window.as_deref())?;
        settings.notify_unknown_recipients = o.notify_unknown_recipients;
        if let Some(dir) = &o.templates {
            settings.templates = Templates::load(dir)?;
        }

        let mail_from = mailbox(
            o.mail_from
                .as_deref()
                .unwrap_or("Reclaim <no-reply@localhost>"),
        )?;
        let allowed_return_urls = o
            .allowed_return_urls
            .unwrap_or_default()
            .iter()
            .map(|u| {
                url::Url::parse(u).with_context(|| format!("allowed return URL {u:?} is not a URL"))
            })
            .collect::<Result<_>>()?;
        let cors_allowed_origins = o
            .cors_allowed_origins
            .unwrap_or_default()
            .into_iter()
            .filter(|o| !o.is_empty())
            .map(|given| {
                let url = url::Url::parse(&given)
                    .with_context(|| format!("CORS origin {given:?} is not a URL"))?;
                let origin = url.origin().ascii_serialization();
                // An origin is scheme, host and port alone: anything more is a
                // typo that would match nothing.
                if origin != given.trim_end_matches('/') {
                    bail!("CORS origin {given:?} must be scheme://host[:port] alone ({origin})");
                }
                Ok(origin)
            })
            .collect::<Result<_>>()?;
        let trusted_proxies = o
            .trusted_proxies
            .unwrap_or_default()
            .iter()
            .map(|p| {
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .with_context(|| format!("trusted proxy {p:?} is not an address or network"))
            })
            .collect::<Result<_>>()?;
        let rate_limits = RateLimits {
            per_address: o.rate_limit.per_address.unwrap_or(5),
            per_client: o.rate_limit.per_client.unwrap_or(20),
            flows_per_client: o.rate_limit.flows_per_client.unwrap_or(100),
            window: duration(
                "rate_limit.window",
                o.rate_limit.window.as_deref().unwrap_or("5m"),
            )?,
        };
        let mut stages = o.email_stages;
        stages
            .entry(reclaim_wire::authentik::DEFAULT_STAGE.into())
            .or_default();
        let email_stages = stages
            .into_iter()
            .map(|(name, s)| {
                Ok(EmailStage {
                    id: s.id,
                    subject: s.subject,
                    template: s
                        .template
                        .unwrap_or_else(|| authentik::DEFAULT_STAGE_TEMPLATE.into()),
                    token_expiry: s
                        .token_expiry
                        .unwrap_or_else(|| authentik::DEFAULT_STAGE_TOKEN_EXPIRY.into()),
                    from: s.from.map(sender).transpose()?,
                    name,
                })
            })
            .collect::<Result<_>>()?;
        let c = o.courier;
        let courier = CourierConfig {
            smtp_url: o.smtp_url.or(c.smtp_url).filter(|u| !u.is_empty()),
            timeout: duration("courier.timeout", c.timeout.as_deref().unwrap_or("30s"))?,
            policy: RetryPolicy {
                max_attempts: c.max_attempts.unwrap_or(5).max(1),
                base_delay: duration(
                    "courier.retry_base",
                    c.retry_base.as_deref().unwrap_or("5s"),
                )?,
                max_delay: duration("courier.retry_max", c.retry_max.as_deref().unwrap_or("15m"))?,
                lease: duration("courier.lease", c.lease.as_deref().unwrap_or("2m"))?,
                batch: c.batch.unwrap_or(10).max(1),
            },
            interval: duration("courier.interval", c.interval.as_deref().unwrap_or("1s"))?,
        };
        // A send that outlives its claim could be repeated by another courier.
        if courier.policy.lease <= courier.timeout * 2 {
            bail!("courier.lease must be more than twice courier.timeout");
        }
        let completion = o.completion.unwrap_or_default();
        let handoff_url = o.handoff_url.filter(|u| !u.is_empty());
        if let Some(url) = &handoff_url {
            let parsed = url::Url::parse(url)
                .with_context(|| format!("handoff_url {url:?} is not a URL"))?;
            if !matches!(parsed.scheme(), "https" | "http") {
                bail!("handoff_url {url:?} must be an http or https URL");
            }
        }
        let public_base = public_url.trim_end_matches('/').to_string();
        let ui_url = |given: Option<String>, name: &str, default: &str| -> Result<String> {
            let url = given
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| format!("{public_base}{default}"));
            let parsed =
                url::Url::parse(&url).with_context(|| format!("{name} {url:?} is not a URL"))?;
            if !matches!(parsed.scheme(), "https" | "http") {
                bail!("{name} {url:?} must be an http or https URL");
            }
            Ok(url)
        };
        let recovery_ui_url = ui_url(
            o.recovery_ui_url,
            "recovery_ui_url",
            "/self-service/recovery",
        )?;
        let settings_ui_url = ui_url(
            o.settings_ui_url,
            "settings_ui_url",
            "/self-service/recovery/password",
        )?;
        if completion == Completion::Handoff && handoff_url.is_none() {
            bail!(
                "completion = handoff needs handoff_url (RECLAIM_HANDOFF_URL): where the \
                 person goes with the assertion when the redemption has no return_to"
            );
        }
        let assertion_lifespan =
            timeout("assertion_lifespan", o.assertion_lifespan.as_deref(), "5m")?;
        let flow_lifespan = timeout("flow_lifespan", o.flow_lifespan.as_deref(), "1h")?;
        let event_retention = timeout("event_retention", o.event_retention.as_deref(), "90d")?;
        let outbox_retention = timeout("outbox_retention", o.outbox_retention.as_deref(), "7d")?;
        let mut hooks = o.webhooks;
        if let Some(url) = o.webhook_url.filter(|u| !u.is_empty()) {
            hooks.push(WebhookOptions {
                url,
                secrets: o.webhook_secrets.unwrap_or_default(),
                ..Default::default()
            });
        }
        let webhook_timeout = timeout("webhook_timeout", o.webhook_timeout.as_deref(), "15s")?;
        if !hooks.is_empty() && courier.policy.lease <= webhook_timeout * 2 {
            bail!("courier.lease must be more than twice webhook_timeout");
        }
        let webhook_retry = match o.webhook_retry {
            None => crate::events::webhooks::SCHEDULE.to_vec(),
            Some(steps) => steps
                .iter()
                .map(|step| duration("webhook_retry", step.trim()))
                .collect::<Result<_>>()?,
        };
        let webhooks = hooks
            .iter()
            .map(|h| {
                Endpoint::new(
                    &h.url,
                    &h.secrets,
                    h.events.as_deref(),
                    h.include_password_hash,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let mut urls: Vec<&str> = webhooks.iter().map(|w| w.url.as_str()).collect();
        urls.sort_unstable();
        if urls.windows(2).any(|w| w[0] == w[1]) {
            bail!("a webhook URL is configured twice");
        }
        Ok(Self {
            durability: o.durability.unwrap_or_default(),
            database_url,
            database_ca: o.database_ca,
            directory,
            reuse_instances: o.reuse_instances.unwrap_or(0),
            operation_timeout: timeout("operation_timeout", o.operation_timeout.as_deref(), "1s")?,
            server: ServerLimits {
                max_operations: o.max_operations.unwrap_or(1024).max(1),
                max_connections: o.max_connections.unwrap_or(4096).max(1),
                header_timeout: timeout("header_timeout", o.header_timeout.as_deref(), "10s")?,
                request_timeout: timeout("request_timeout", o.request_timeout.as_deref(), "30s")?,
            },
            courier,
            completion,
            handoff_url,
            recovery_ui_url,
            settings_ui_url,
            use_continue_with_transitions: o.use_continue_with_transitions.unwrap_or(false),
            flow_lifespan,
            assertion_lifespan,
            webhooks,
            webhook_timeout,
            webhook_retry,
            event_retention,
            outbox_retention,
            data,
            settings,
            mail_from,
            listen: o
                .listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 4433))),
            admin_token: o.admin_token.filter(|t| !t.is_empty()),
            allowed_return_urls,
            cors_allowed_origins,
            trusted_proxies,
            rate_limits,
            email_stages,
        })
    }

    /// The stage named or identified by `key`; `default` always exists.
    pub fn email_stage(&self, key: &str) -> Option<EmailStage> {
        EmailStage::find(&self.email_stages, key)
    }

    /// `return_to` in its normalised form, if it may be honoured: the same
    /// origin as an allowed URL, no credentials, and a path equal to the
    /// allowed one or below it (`/done` admits `/done` and `/done/x`, not
    /// `/donex`). The normalised form is what is stored and redirected to,
    /// so what was checked is what is used.
    pub fn allowed_return_to(&self, return_to: &str) -> Option<String> {
        reclaim_wire::checks::allowed_return_to(&self.allowed_return_urls, return_to)
    }
}

fn default_data_dir() -> Result<PathBuf> {
    let env = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    Ok(env("XDG_DATA_HOME")
        .or_else(|| env("HOME").map(|h| h.join(".local").join("share")))
        .context("no data directory: pass --data or set RECLAIM_DATA")?
        .join("reclaim"))
}

fn duration(name: &str, text: &str) -> Result<Duration> {
    humantime::parse_duration(text)
        .with_context(|| format!("{name} {text:?} is not a duration such as 30m or 1h"))
}

/// A duration the operator may leave out (the component's default then).
fn optional_duration(name: &str, text: Option<&str>) -> Result<Option<Duration>> {
    text.map(|text| duration(name, text)).transpose()
}

/// A timeout (`default` when not set): more than zero, or every request
/// would fail.
fn timeout(name: &str, text: Option<&str>, default: &str) -> Result<Duration> {
    let parsed = duration(name, text.unwrap_or(default))?;
    if parsed.is_zero() {
        bail!("{name} must be more than zero: every request would fail");
    }
    Ok(parsed)
}

fn sender(text: String) -> Result<String> {
    crate::mail::address::check_sender(&text).map_err(|e| anyhow::anyhow!("{text:?} is {e}"))?;
    Ok(text)
}

fn mailbox(text: &str) -> Result<Mailbox> {
    text.parse()
        .with_context(|| format!("{text:?} is not a mail address"))
}

#[cfg(test)]
mod tests;

/// The three directory queries, all or none: from the flags and environment
/// over the file's `[directory]`.
fn directory_queries(
    [by_id, by_pk, by_email]: [&Option<String>; 3],
    file: &DirectoryOptions,
) -> Result<Option<DirectoryQueries>> {
    let pick = |over: &Option<String>, file: &Option<String>| {
        over.clone()
            .or_else(|| file.clone())
            .filter(|q| !q.trim().is_empty())
    };
    let by_id = pick(by_id, &file.by_id);
    let by_pk = pick(by_pk, &file.by_pk);
    let by_email = pick(by_email, &file.by_email);
    match (by_id, by_pk, by_email) {
        (None, None, None) => Ok(None),
        (Some(by_id), Some(by_pk), Some(by_email)) => Ok(Some(DirectoryQueries {
            by_id,
            by_pk,
            by_email,
        })),
        _ => bail!(
            "the directory needs all three queries: by_id, by_pk and by_email \
             (RECLAIM_DIRECTORY_BY_ID, _BY_PK, _BY_EMAIL)"
        ),
    }
}
