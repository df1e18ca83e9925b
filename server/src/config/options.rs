//! The options as they come from the file, the environment and flags:
//! every field optional, laid over one another before they are resolved.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::backends::Durability;
use crate::operations::Completion;

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
    /// Wrong codes an identity survives across all its flows within
    /// `code_attempt_window`, 1 to 10000 [default: 10]
    #[arg(long, env = "RECLAIM_MAX_CODE_ATTEMPTS_PER_IDENTITY", global = true)]
    pub max_code_attempts_per_identity: Option<u32>,
    /// The window of `max_code_attempts_per_identity` [default: 1h]
    #[arg(long, env = "RECLAIM_CODE_ATTEMPT_WINDOW", global = true)]
    pub code_attempt_window: Option<String>,
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
    /// Origins whose pages may call the flow API from a browser with the
    /// person's cookies (CORS with credentials, Kratos'
    /// `serve.public.cors`), comma-separated `scheme://host[:port]`
    /// [default: none: only pages of the public URL's own origin]
    #[arg(
        long,
        env = "RECLAIM_CORS_ALLOWED_ORIGINS",
        global = true,
        value_delimiter = ','
    )]
    pub cors_allowed_origins: Option<Vec<String>>,
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
    /// PostgreSQL to keep everything in, shared by any number of replicas:
    /// postgres://user:password@host:port/database [default: the embedded
    /// SQLite file DATA/reclaim.db]
    #[arg(
        long,
        env = "RECLAIM_DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    pub database_url: Option<String>,
    /// PEM file of certificates to trust for PostgreSQL's TLS
    /// (`sslmode=require` in the URL), besides the public roots
    #[arg(long, env = "RECLAIM_DATABASE_CA", global = true)]
    pub database_ca: Option<PathBuf>,
    /// When a commit is on disk: full (synced before the answer, survives
    /// power loss) or normal (survives a crash of the process) [default: full]
    #[arg(long, env = "RECLAIM_DURABILITY", global = true, value_enum)]
    pub durability: Option<Durability>,
    /// CPU time one operation's guest code may take before it is stopped
    /// and nothing of it is written (30s, 500ms) [default: 1s]
    #[arg(long, env = "RECLAIM_OPERATION_TIMEOUT", global = true)]
    pub operation_timeout: Option<String>,
    /// Recovery operations in flight at once; more are answered 503 with
    /// `Retry-After` [default: 1024]
    #[arg(long, env = "RECLAIM_MAX_OPERATIONS", global = true)]
    pub max_operations: Option<usize>,
    /// HTTP connections `serve` keeps open; past it (or the open-file limit)
    /// the longest-idle connection is closed for a new one [default: 4096]
    #[arg(long, env = "RECLAIM_MAX_CONNECTIONS", global = true)]
    pub max_connections: Option<usize>,
    /// How long a connection may take to send a request's headers, or sit
    /// idle between requests, before it is closed [default: 10s]
    #[arg(long, env = "RECLAIM_HEADER_TIMEOUT", global = true)]
    pub header_timeout: Option<String>,
    /// How long a request (its body and its answer) may take before it is
    /// answered 408 [default: 30s]
    #[arg(long, env = "RECLAIM_REQUEST_TIMEOUT", global = true)]
    pub request_timeout: Option<String>,
    /// Component instances kept warm for reuse; 0 gives every operation a
    /// fresh instance [default: 0]
    #[arg(long, env = "RECLAIM_REUSE_INSTANCES", global = true)]
    pub reuse_instances: Option<usize>,
    /// The platform's query of one user by id, for PostgreSQL: the identity
    /// directory is then the platform's own table [default: Reclaim's own]
    #[arg(long, env = "RECLAIM_DIRECTORY_BY_ID", global = true)]
    #[serde(skip)]
    pub directory_by_id: Option<String>,
    /// The platform's query of one user by integer pk
    #[arg(long, env = "RECLAIM_DIRECTORY_BY_PK", global = true)]
    #[serde(skip)]
    pub directory_by_pk: Option<String>,
    /// The platform's query of one user by address, case-insensitively
    #[arg(long, env = "RECLAIM_DIRECTORY_BY_EMAIL", global = true)]
    #[serde(skip)]
    pub directory_by_email: Option<String>,
    /// How a redemption in the pages ends: password (Reclaim's new-password
    /// form) or handoff (a redirect to the platform with a single-use
    /// assertion) [default: password]
    #[arg(long, env = "RECLAIM_COMPLETION", global = true, value_enum)]
    pub completion: Option<Completion>,
    /// Where a hand-off sends the person when the redemption has no allowed
    /// `return_to` (required with completion = handoff)
    #[arg(long, env = "RECLAIM_HANDOFF_URL", global = true)]
    pub handoff_url: Option<String>,
    /// The recovery UI a browser recovery flow is sent to, with `?flow=`
    /// [default: PUBLIC_URL/self-service/recovery]
    #[arg(long, env = "RECLAIM_RECOVERY_UI_URL", global = true)]
    pub recovery_ui_url: Option<String>,
    /// The settings UI a recovery ends in, with `?flow=`
    /// [default: PUBLIC_URL/self-service/recovery/password]
    #[arg(long, env = "RECLAIM_SETTINGS_UI_URL", global = true)]
    pub settings_ui_url: Option<String>,
    /// End a recovery flow with 200 and `continue_with` (the session token
    /// for API flows) rather than Kratos' default 422 redirect
    /// [default: false]
    #[arg(long, env = "RECLAIM_USE_CONTINUE_WITH_TRANSITIONS", global = true)]
    pub use_continue_with_transitions: Option<bool>,
    /// How long a self-service flow may take from start to its last step
    /// (Kratos' `selfservice.flows.recovery.lifespan`) [default: 1h]
    #[arg(long, env = "RECLAIM_FLOW_LIFESPAN", global = true)]
    pub flow_lifespan: Option<String>,
    /// How long a hand-off assertion may wait to be redeemed [default: 5m]
    #[arg(long, env = "RECLAIM_ASSERTION_LIFESPAN", global = true)]
    pub assertion_lifespan: Option<String>,
    /// How long the audit trail keeps events [default: 90d]
    #[arg(long, env = "RECLAIM_EVENT_RETENTION", global = true)]
    pub event_retention: Option<String>,
    /// How long `.eml` files stay in `DATA/outbox` when no SMTP relay is
    /// configured (they carry live links) [default: 7d]
    #[arg(long, env = "RECLAIM_OUTBOX_RETENTION", global = true)]
    pub outbox_retention: Option<String>,
    /// One webhook endpoint for every event type (the file's `[[webhooks]]`
    /// configure more)
    #[arg(long, env = "RECLAIM_WEBHOOK_URL", global = true)]
    #[serde(skip)]
    pub webhook_url: Option<String>,
    /// Its signing secrets, `whsec_...`, newest first, comma-separated
    #[arg(
        long,
        env = "RECLAIM_WEBHOOK_SECRETS",
        hide_env_values = true,
        global = true,
        value_delimiter = ','
    )]
    #[serde(skip)]
    pub webhook_secrets: Option<Vec<String>>,
    /// How long one webhook delivery attempt may take [default: 15s]
    #[arg(long, env = "RECLAIM_WEBHOOK_TIMEOUT", global = true)]
    pub webhook_timeout: Option<String>,
    /// The waits between webhook attempts, comma-separated [default: the
    /// Standard Webhooks schedule, 5s,5m,30m,2h,5h,10h,14h,20h,24h]
    #[arg(
        long,
        env = "RECLAIM_WEBHOOK_RETRY",
        global = true,
        value_delimiter = ','
    )]
    pub webhook_retry: Option<Vec<String>>,
    /// `[[webhooks]]`: endpoints that get the events, signed.
    #[arg(skip)]
    #[serde(default)]
    pub webhooks: Vec<WebhookOptions>,
    /// `[directory]`: the platform's own user table, by three queries.
    #[arg(skip)]
    #[serde(default)]
    pub directory: DirectoryOptions,
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

/// `[[webhooks]]` of the file: one endpoint.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookOptions {
    pub url: String,
    /// `whsec_...`, newest first: every delivery carries a signature by each.
    pub secrets: Vec<String>,
    /// Only these event types; all when absent.
    pub events: Option<Vec<String>>,
    /// `recovery.completed` carries the new password's Argon2id PHC string.
    #[serde(default)]
    pub include_password_hash: bool,
}

/// `[directory]` of the file: the platform's queries of one user by id,
/// pk and address, each with its value as `$1`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryOptions {
    pub by_id: Option<String>,
    pub by_pk: Option<String>,
    pub by_email: Option<String>,
}

/// `[rate_limit]` of the file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitOptions {
    pub per_address: Option<u32>,
    pub per_client: Option<u32>,
    pub flows_per_client: Option<u32>,
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

/// Options of `over` win over those of `base`; the file's tables come from
/// `base` alone (no flag or variable sets them).
pub(super) fn merge(base: Options, over: Options) -> Options {
    Options {
        data: over.data.or(base.data),
        public_url: over.public_url.or(base.public_url),
        secrets: over.secrets.or(base.secrets),
        lifespan: over.lifespan.or(base.lifespan),
        max_lifespan: over.max_lifespan.or(base.max_lifespan),
        revoke_older_links: over.revoke_older_links.or(base.revoke_older_links),
        max_code_attempts: over.max_code_attempts.or(base.max_code_attempts),
        max_code_attempts_per_identity: over
            .max_code_attempts_per_identity
            .or(base.max_code_attempts_per_identity),
        code_attempt_window: over.code_attempt_window.or(base.code_attempt_window),
        notify_unknown_recipients: over
            .notify_unknown_recipients
            .or(base.notify_unknown_recipients),
        templates: over.templates.or(base.templates),
        mail_from: over.mail_from.or(base.mail_from),
        listen: over.listen.or(base.listen),
        admin_token: over.admin_token.or(base.admin_token),
        smtp_url: over.smtp_url.or(base.smtp_url),
        durability: over.durability.or(base.durability),
        database_url: over.database_url.or(base.database_url),
        database_ca: over.database_ca.or(base.database_ca),
        reuse_instances: over.reuse_instances.or(base.reuse_instances),
        operation_timeout: over.operation_timeout.or(base.operation_timeout),
        max_operations: over.max_operations.or(base.max_operations),
        max_connections: over.max_connections.or(base.max_connections),
        header_timeout: over.header_timeout.or(base.header_timeout),
        request_timeout: over.request_timeout.or(base.request_timeout),
        directory_by_id: over.directory_by_id.or(base.directory_by_id),
        directory_by_pk: over.directory_by_pk.or(base.directory_by_pk),
        directory_by_email: over.directory_by_email.or(base.directory_by_email),
        completion: over.completion.or(base.completion),
        handoff_url: over.handoff_url.or(base.handoff_url),
        recovery_ui_url: over.recovery_ui_url.or(base.recovery_ui_url),
        settings_ui_url: over.settings_ui_url.or(base.settings_ui_url),
        flow_lifespan: over.flow_lifespan.or(base.flow_lifespan),
        use_continue_with_transitions: over
            .use_continue_with_transitions
            .or(base.use_continue_with_transitions),
        assertion_lifespan: over.assertion_lifespan.or(base.assertion_lifespan),
        event_retention: over.event_retention.or(base.event_retention),
        outbox_retention: over.outbox_retention.or(base.outbox_retention),
        webhook_url: over.webhook_url.or(base.webhook_url),
        webhook_secrets: over.webhook_secrets.or(base.webhook_secrets),
        webhook_timeout: over.webhook_timeout.or(base.webhook_timeout),
        webhook_retry: over.webhook_retry.or(base.webhook_retry),
        webhooks: base.webhooks,
        directory: base.directory,
        courier: base.courier,
        allowed_return_urls: over.allowed_return_urls.or(base.allowed_return_urls),
        cors_allowed_origins: over.cors_allowed_origins.or(base.cors_allowed_origins),
        trusted_proxies: over.trusted_proxies.or(base.trusted_proxies),
        rate_limit: base.rate_limit,
        email_stages: base.email_stages,
    }
}
