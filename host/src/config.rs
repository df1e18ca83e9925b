//! Configuration: a TOML file (`--config`), overridden by `RECLAIM_*`
//! environment variables and command-line flags, over built-in defaults.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use lettre::message::Mailbox;
use serde::Deserialize;

use crate::mail::RetryPolicy;
use crate::settings::{self, Settings, Templates};
use crate::storage::Durability;

/// Options that can come from the file, the environment or a flag. Every
/// field is optional here; [`Config::resolve`] fills in the defaults.
#[derive(Clone, Debug, Default, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Data directory: the SQLite database, the hashing secrets and the mail
    /// outbox [default: $XDG_DATA_HOME/reclaim or ~/.local/share/reclaim]
    #[arg(long, env = "RECLAIM_DATA", global = true)]
    pub data: Option<PathBuf>,
    /// Public base URL of the self-service pages; links point here
    /// [default: http://127.0.0.1:4433]
    #[arg(long, env = "RECLAIM_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// Hashing secrets, newest first, comma-separated, each at least 32 bytes
    /// [default: DATA/secrets, created on first use]
    #[arg(
        long,
        env = "RECLAIM_SECRETS",
        hide_env_values = true,
        global = true,
        value_delimiter = ','
    )]
    pub secrets: Option<Vec<String>>,
    /// Lifespan of links and codes when none is asked for [default: 1h]
    #[arg(long, env = "RECLAIM_LIFESPAN", global = true)]
    pub lifespan: Option<String>,
    /// Longest lifespan a caller may ask for [default: 24h]
    #[arg(long, env = "RECLAIM_MAX_LIFESPAN", global = true)]
    pub max_lifespan: Option<String>,
    /// Whether a link or code an administrator issues revokes the identity's
    /// older ones (a self-service request never does) [default: true]
    #[arg(long, env = "RECLAIM_REVOKE_OLDER_LINKS", global = true)]
    pub revoke_older_links: Option<bool>,
    /// Wrong codes a code flow survives, 1 to 255 [default: 5]
    #[arg(long, env = "RECLAIM_MAX_CODE_ATTEMPTS", global = true)]
    pub max_code_attempts: Option<u32>,
    /// Mail unknown addresses an "account access attempted" note [default: false]
    #[arg(long, env = "RECLAIM_NOTIFY_UNKNOWN_RECIPIENTS", global = true)]
    pub notify_unknown_recipients: Option<bool>,
    /// Directory of mail template overrides
    #[arg(long, env = "RECLAIM_TEMPLATES", global = true)]
    pub templates: Option<PathBuf>,
    /// Sender of recovery mail [default: Reclaim <no-reply@localhost>]
    #[arg(long, env = "RECLAIM_MAIL_FROM", global = true)]
    pub mail_from: Option<String>,
    /// Address `serve` listens on [default: 127.0.0.1:4433]
    #[arg(long, env = "RECLAIM_LISTEN", global = true)]
    pub listen: Option<SocketAddr>,
    /// Bearer token of the admin API [default: DATA/admin-token, created on
    /// first start]
    #[arg(
        long,
        env = "RECLAIM_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub admin_token: Option<String>,
    /// `return_to` URLs allowed, comma-separated: same origin, and the path
    /// under the allowed one
    #[arg(
        long,
        env = "RECLAIM_ALLOWED_RETURN_URLS",
        global = true,
        value_delimiter = ','
    )]
    pub allowed_return_urls: Option<Vec<String>>,
    /// Reverse proxies whose `X-Forwarded-For` is believed, comma-separated
    /// addresses or CIDR networks (`10.0.0.0/8,::1`) [default: none]
    #[arg(
        long,
        env = "RECLAIM_TRUSTED_PROXIES",
        global = true,
        value_delimiter = ','
    )]
    pub trusted_proxies: Option<Vec<String>>,
    /// SMTP relay for the courier: smtp://host:port (plain),
    /// smtp://host:587?tls=required (STARTTLS), smtps://host:465 (TLS), with
    /// user:password@ for authentication [default: .eml files in DATA/outbox]
    #[arg(long, env = "RECLAIM_SMTP_URL", hide_env_values = true, global = true)]
    pub smtp_url: Option<String>,
    /// When a commit is on disk: full (synced before the answer, survives
    /// power loss) or normal (survives a crash of the process) [default: full]
    #[arg(long, env = "RECLAIM_DURABILITY", global = true, value_enum)]
    pub durability: Option<Durability>,
    /// Component instances kept warm for reuse; 0 gives every operation a
    /// fresh instance [default: 0]
    #[arg(long, env = "RECLAIM_REUSE_INSTANCES", global = true)]
    pub reuse_instances: Option<usize>,
    /// `[courier]`: delivery and retries.
    #[arg(skip)]
    #[serde(default)]
    pub courier: CourierOptions,
    /// `[rate_limit]`: self-service request limits.
    #[arg(skip)]
    #[serde(default)]
    pub rate_limit: RateLimitOptions,
    /// authentik-style email stages by name
    #[arg(skip)]
    #[serde(default)]
    pub email_stages: BTreeMap<String, EmailStageOptions>,
}

/// `[courier]` of the file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CourierOptions {
    pub smtp_url: Option<String>,
    /// SMTP connection and command timeout.
    pub timeout: Option<String>,
    /// Attempts before a message is abandoned.
    pub max_attempts: Option<u32>,
    /// Wait after the first failure, doubled after each further one.
    pub retry_base: Option<String>,
    /// Longest wait between attempts.
    pub retry_max: Option<String>,
    /// How long a courier's claim on a message lasts.
    pub lease: Option<String>,
    /// Messages claimed at a time.
    pub batch: Option<usize>,
    /// How often an idle courier looks for due mail.
    pub interval: Option<String>,
}

/// How mail is delivered.
#[derive(Clone, Debug)]
pub struct CourierConfig {
    /// SMTP relay URL; `None` writes `.eml` files to `DATA/outbox`.
    pub smtp_url: Option<String>,
    pub timeout: Duration,
    pub policy: RetryPolicy,
    pub interval: Duration,
}

/// `[rate_limit]` of the file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitOptions {
    pub per_address: Option<u32>,
    pub per_client: Option<u32>,
    pub window: Option<String>,
}

/// `[email_stages.NAME]` of the file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailStageOptions {
    /// A UUID that also names the stage (authentik addresses stages by UUID).
    pub id: Option<String>,
    pub subject: Option<String>,
    pub template: Option<String>,
    pub token_expiry: Option<String>,
    pub from: Option<String>,
}

/// An authentik-style email stage: how a `recovery_email` is sent.
#[derive(Clone, Debug)]
pub struct EmailStage {
    pub name: String,
    pub id: Option<String>,
    /// Subject template replacing the mail template's.
    pub subject: Option<String>,
    /// Mail template set.
    pub template: String,
    /// Lifespan of the mailed link, in Kratos' grammar.
    pub token_expiry: String,
    /// Sender replacing the default one.
    pub from: Option<Mailbox>,
}

/// Self-service request limits.
#[derive(Clone, Debug)]
pub struct RateLimits {
    pub per_address: u32,
    pub per_client: u32,
    pub window: Duration,
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
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub rate_limits: RateLimits,
    pub email_stages: Vec<EmailStage>,
    pub courier: CourierConfig,
    pub durability: Durability,
    /// See [`crate::Limits::reuse_instances`].
    pub reuse_instances: usize,
}

impl Config {
    /// Reads `file` (if any), lays `overrides` (environment and flags) over
    /// it, and fills in the defaults. Creates the data directory.
    pub fn resolve(file: Option<&Path>, overrides: Options) -> Result<Self> {
        let base: Options = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("in {}", path.display()))?
            }
            None => Options::default(),
        };
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

        let secrets = match o.secrets {
            Some(list) => {
                settings::parse_secrets(&list.join(",")).context("in the configured secrets")?
            }
            None => settings::load_or_create_secrets(&data)?,
        };
        let public_url = o
            .public_url
            .unwrap_or_else(|| "http://127.0.0.1:4433".into());
        url::Url::parse(&public_url)
            .with_context(|| format!("the public URL {public_url:?} is not a URL"))?;
        let mut settings = Settings::new(public_url.trim_end_matches('/'), secrets);
        settings.default_lifespan = duration("lifespan", o.lifespan.as_deref().unwrap_or("1h"))?;
        settings.max_lifespan =
            duration("max_lifespan", o.max_lifespan.as_deref().unwrap_or("24h"))?;
        if settings.default_lifespan > settings.max_lifespan {
            bail!("the lifespan is longer than the maximum lifespan");
        }
        settings.revoke_older_links = o.revoke_older_links.unwrap_or(true);
        settings.max_code_attempts = o.max_code_attempts.unwrap_or(5);
        if !(1..=255).contains(&settings.max_code_attempts) {
            bail!("max_code_attempts must be between 1 and 255");
        }
        settings.notify_unknown_recipients = o.notify_unknown_recipients.unwrap_or(false);
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
            window: duration(
                "rate_limit.window",
                o.rate_limit.window.as_deref().unwrap_or("5m"),
            )?,
        };
        let mut stages = o.email_stages;
        stages.entry("default".into()).or_default();
        let email_stages = stages
            .into_iter()
            .map(|(name, s)| {
                Ok(EmailStage {
                    id: s.id,
                    subject: s.subject,
                    template: s.template.unwrap_or_else(|| "recovery-link".into()),
                    token_expiry: s.token_expiry.unwrap_or_else(|| "30m".into()),
                    from: s.from.as_deref().map(mailbox).transpose()?,
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
        Ok(Self {
            durability: o.durability.unwrap_or_default(),
            reuse_instances: o.reuse_instances.unwrap_or(0),
            courier,
            data,
            settings,
            mail_from,
            listen: o
                .listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 4433))),
            admin_token: o.admin_token.filter(|t| !t.is_empty()),
            allowed_return_urls,
            trusted_proxies,
            rate_limits,
            email_stages,
        })
    }

    /// The email stage named or identified by `key`.
    pub fn email_stage(&self, key: &str) -> Option<&EmailStage> {
        self.email_stages.iter().find(|s| {
            s.name == key
                || s.id
                    .as_deref()
                    .is_some_and(|id| id.eq_ignore_ascii_case(key))
        })
    }

    /// `return_to` in its normalised form, if it may be honoured: the same
    /// origin as an allowed URL, no credentials, and a path equal to the
    /// allowed one or below it (`/done` admits `/done` and `/done/x`, not
    /// `/donex`). The normalised form is what is stored and redirected to,
    /// so what was checked is what is used.
    pub fn allowed_return_to(&self, return_to: &str) -> Option<String> {
        let wanted = url::Url::parse(return_to).ok()?;
        let allowed = self.allowed_return_urls.iter().any(|allowed| {
            wanted.origin() == allowed.origin()
                && wanted.username().is_empty()
                && wanted.password().is_none()
                && path_within(wanted.path(), allowed.path())
        });
        allowed.then(|| wanted.to_string())
    }
}

/// Whether `path` is `base` or lies below it, at a `/` boundary.
fn path_within(path: &str, base: &str) -> bool {
    match path.strip_prefix(base) {
        Some(rest) => base.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

fn merge(base: Options, over: Options) -> Options {
    Options {
        data: over.data.or(base.data),
        public_url: over.public_url.or(base.public_url),
        secrets: over.secrets.or(base.secrets),
        lifespan: over.lifespan.or(base.lifespan),
        max_lifespan: over.max_lifespan.or(base.max_lifespan),
        revoke_older_links: over.revoke_older_links.or(base.revoke_older_links),
        max_code_attempts: over.max_code_attempts.or(base.max_code_attempts),
        notify_unknown_recipients: over
            .notify_unknown_recipients
            .or(base.notify_unknown_recipients),
        templates: over.templates.or(base.templates),
        mail_from: over.mail_from.or(base.mail_from),
        listen: over.listen.or(base.listen),
        admin_token: over.admin_token.or(base.admin_token),
        smtp_url: over.smtp_url.or(base.smtp_url),
        durability: over.durability.or(base.durability),
        reuse_instances: over.reuse_instances.or(base.reuse_instances),
        courier: base.courier,
        allowed_return_urls: over.allowed_return_urls.or(base.allowed_return_urls),
        trusted_proxies: over.trusted_proxies.or(base.trusted_proxies),
        rate_limit: base.rate_limit,
        email_stages: base.email_stages,
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

fn mailbox(text: &str) -> Result<Mailbox> {
    text.parse()
        .with_context(|| format!("{text:?} is not a mail address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_and_defaults_fill_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("reclaim.toml");
        std::fs::write(
            &file,
            format!(
                "data = {:?}\npublic_url = \"https://file.example\"\nlifespan = \"2h\"\n\
                 allowed_return_urls = [\"https://app.example/done\"]\n\
                 [email_stages.welcome]\nsubject = \"Welcome\"\ntoken_expiry = \"1h\"\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let flags = Options {
            public_url: Some("https://flag.example".into()),
            ..Default::default()
        };
        let config = Config::resolve(Some(&file), flags).unwrap();
        assert_eq!(config.settings.public_url, "https://flag.example");
        assert_eq!(config.settings.default_lifespan, Duration::from_secs(7200));
        assert_eq!(config.settings.max_code_attempts, 5);
        assert!(config.email_stage("welcome").is_some() && config.email_stage("default").is_some());
        assert_eq!(
            config.allowed_return_to("https://app.example/done/here?x=1"),
            Some("https://app.example/done/here?x=1".into())
        );
        assert!(
            config
                .allowed_return_to("https://app.example/done")
                .is_some()
        );
        assert!(
            config
                .allowed_return_to("https://app.example/elsewhere")
                .is_none()
        );
        assert!(
            config
                .allowed_return_to("https://app.example.evil/done")
                .is_none()
        );
        assert!(
            config
                .allowed_return_to("https://user@app.example/done")
                .is_none()
        );
    }

    #[test]
    fn return_to_paths_match_at_a_slash_and_are_stored_normalised() {
        let dir = tempfile::tempdir().unwrap();
        let options = Options {
            data: Some(dir.path().into()),
            allowed_return_urls: Some(vec!["https://App.Example:443/done".into()]),
            ..Default::default()
        };
        let config = Config::resolve(None, options).unwrap();
        assert!(
            config
                .allowed_return_to("https://app.example/donex")
                .is_none()
        );
        assert!(
            config
                .allowed_return_to("https://app.example/done/../admin")
                .is_none()
        );
        assert_eq!(
            config.allowed_return_to("HTTPS://APP.EXAMPLE:443/done/a%20b#top"),
            Some("https://app.example/done/a%20b#top".into())
        );
    }

    #[test]
    fn unknown_keys_in_the_file_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("reclaim.toml");
        std::fs::write(&file, "publc_url = \"x\"\n").unwrap();
        let err = Config::resolve(Some(&file), Options::default()).unwrap_err();
        assert!(format!("{err:#}").contains("publc_url"));
    }
}
