//! `reclaim`: the recovery engine on the command line. Every command prints
//! JSON on stdout; errors go to stderr as JSON with a non-zero exit.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use lettre::message::Mailbox;
use serde_json::{Value, json};

use reclaim::mail::{Courier, EmlDirectory};
use reclaim::settings::{self, Templates};
use reclaim::{
    Engine, Error, IdentityRef, NewIdentity, Reclaim, Settings, SqliteStorage, SystemClock,
};

#[derive(Parser)]
#[command(
    name = "reclaim",
    version,
    about = "Account recovery as a sandboxed WebAssembly component"
)]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Config {
    /// Data directory: the SQLite database, the hashing secrets and the mail
    /// outbox [default: $XDG_DATA_HOME/reclaim or ~/.local/share/reclaim]
    #[arg(long, env = "RECLAIM_DATA", global = true)]
    data: Option<PathBuf>,
    /// Public base URL of the self-service pages; links point here
    #[arg(
        long,
        env = "RECLAIM_PUBLIC_URL",
        default_value = "http://127.0.0.1:4433",
        global = true
    )]
    public_url: String,
    /// Hashing secrets, newest first, comma-separated, each at least 32 bytes
    /// [default: DATA/secrets, created on first use]
    #[arg(long, env = "RECLAIM_SECRETS", hide_env_values = true, global = true)]
    secrets: Option<String>,
    /// Lifespan of links and codes when none is asked for
    #[arg(long, env = "RECLAIM_LIFESPAN", default_value = "1h", value_parser = humantime::parse_duration, global = true)]
    lifespan: Duration,
    /// Longest lifespan a caller may ask for
    #[arg(long, env = "RECLAIM_MAX_LIFESPAN", default_value = "24h", value_parser = humantime::parse_duration, global = true)]
    max_lifespan: Duration,
    /// Keep an identity's older links and codes valid when a new one is issued
    #[arg(long, env = "RECLAIM_KEEP_OLDER_LINKS", global = true)]
    keep_older_links: bool,
    /// Wrong codes a code flow survives
    #[arg(long, env = "RECLAIM_MAX_CODE_ATTEMPTS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=255), global = true)]
    max_code_attempts: u32,
    /// Mail unknown addresses an "account access attempted" note
    #[arg(long, env = "RECLAIM_NOTIFY_UNKNOWN_RECIPIENTS", global = true)]
    notify_unknown_recipients: bool,
    /// Directory of mail template overrides (<name>.subject/.txt/.html, and
    /// <locale>/<name>.* per language)
    #[arg(long, env = "RECLAIM_TEMPLATES", global = true)]
    templates: Option<PathBuf>,
    /// Sender of recovery mail
    #[arg(
        long,
        env = "RECLAIM_MAIL_FROM",
        default_value = "Reclaim <no-reply@localhost>",
        global = true
    )]
    mail_from: Mailbox,
}

#[derive(Subcommand)]
enum Command {
    /// Manage the built-in identity directory
    #[command(subcommand)]
    Identity(IdentityCommand),
    /// Recovery links
    #[command(subcommand)]
    Link(LinkCommand),
    /// Recovery codes
    #[command(subcommand)]
    Code(CodeCommand),
    /// Recovery mail
    #[command(subcommand)]
    Email(EmailCommand),
    /// Self-service request by address: the same answer for unknown ones
    Request {
        #[arg(long)]
        email: String,
    },
    /// Redeem a link, or a flow's code, once
    Redeem(RedeemArgs),
    /// Revoke an identity's outstanding links and codes
    Revoke {
        /// Identity id (UUID) or pk (integer)
        #[arg(long)]
        identity: String,
    },
    /// The mail courier
    #[command(subcommand)]
    Courier(CourierCommand),
}

#[derive(Subcommand)]
enum IdentityCommand {
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
}

#[derive(Args)]
struct IssueArgs {
    /// Identity id (UUID) or pk (integer)
    #[arg(long)]
    identity: String,
    /// Lifespan, as ^[0-9]+(ns|us|ms|s|m|h)$
    #[arg(long, allow_hyphen_values = true)]
    expires_in: Option<String>,
    /// Where to send the person after recovery
    #[arg(long)]
    return_to: Option<String>,
}

#[derive(Subcommand)]
enum LinkCommand {
    /// Create a recovery link; prints `recovery_link` and `expires_at`
    Create(IssueArgs),
}

#[derive(Subcommand)]
enum CodeCommand {
    /// Create a recovery code; prints `recovery_link`, `recovery_code` and `expires_at`
    Create(IssueArgs),
}

#[derive(Subcommand)]
enum EmailCommand {
    /// Mail a recovery link to the identity's address
    Send {
        /// Identity id (UUID) or pk (integer)
        #[arg(long)]
        identity: String,
        /// Lifespan, as ^[0-9]+(ns|us|ms|s|m|h)$
        #[arg(long, allow_hyphen_values = true)]
        expires_in: Option<String>,
        /// Mail template set
        #[arg(long)]
        template: Option<String>,
    },
}

#[derive(Args)]
#[group(required = true)]
struct RedeemArgs {
    /// A recovery link
    #[arg(long, conflicts_with_all = ["flow", "code"])]
    link: Option<String>,
    /// A code flow's id
    #[arg(long, requires = "code")]
    flow: Option<String>,
    /// The flow's code
    #[arg(long, requires = "flow")]
    code: Option<String>,
}

#[derive(Subcommand)]
enum CourierCommand {
    /// Deliver every queued message to DATA/outbox/ as .eml files
    Flush,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RECLAIM_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let body = match e.downcast_ref::<Error>() {
                Some(Error::Refused(refusal)) => json!({ "error": {
                    "code": refusal.code, "status": refusal.status,
                    "reason": refusal.reason, "message": refusal.message,
                }}),
                _ => json!({ "error": {
                    "code": 500, "status": "Internal Server Error",
                    "reason": "The command failed.", "message": format!("{e:#}"),
                }}),
            };
            eprintln!("{body}");
            ExitCode::FAILURE
        }
    }
}

/// The data directory, created if needed.
fn data_dir(config: &Config) -> Result<PathBuf> {
    let dir = match &config.data {
        Some(dir) => dir.clone(),
        None => {
            let env = |name| {
                std::env::var_os(name)
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            };
            env("XDG_DATA_HOME")
                .or_else(|| env("HOME").map(|h| h.join(".local").join("share")))
                .context("no data directory: pass --data or set RECLAIM_DATA")?
                .join("reclaim")
        }
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating the data directory {}", dir.display()))?;
    Ok(dir)
}

struct Service {
    reclaim: Reclaim,
    storage: Arc<SqliteStorage>,
    courier: Courier,
}

fn open(config: &Config) -> Result<Service> {
    let dir = data_dir(config)?;
    let storage = Arc::new(SqliteStorage::open(dir.join("reclaim.db"))?);
    let secrets = match &config.secrets {
        Some(list) => settings::parse_secrets(list).context("in RECLAIM_SECRETS")?,
        None => settings::load_or_create_secrets(&dir)?,
    };
    let mut settings = Settings::new(config.public_url.clone(), secrets);
    settings.default_lifespan = config.lifespan;
    settings.max_lifespan = config.max_lifespan;
    settings.revoke_older_links = !config.keep_older_links;
    settings.max_code_attempts = config.max_code_attempts;
    settings.notify_unknown_recipients = config.notify_unknown_recipients;
    if let Some(templates) = &config.templates {
        settings.templates = Templates::load(templates)?;
    }
    let courier = Courier::new(
        storage.clone(),
        Box::new(EmlDirectory::new(dir.join("outbox"))?),
        config.mail_from.clone(),
        Arc::new(SystemClock),
    );
    let reclaim = Reclaim::new(Engine::embedded()?, storage.clone(), settings);
    Ok(Service {
        reclaim,
        storage,
        courier,
    })
}

fn identity_ref(text: &str) -> IdentityRef {
    match text.parse::<i64>() {
        Ok(pk) => IdentityRef::Pk(pk),
        Err(_) => IdentityRef::Id(text.to_string()),
    }
}

fn rfc3339(nanos: u64) -> String {
    humantime::format_rfc3339_nanos(UNIX_EPOCH + Duration::from_nanos(nanos)).to_string()
}

fn run(cli: Cli) -> Result<Value> {
    let service = open(&cli.config)?;
    let reclaim = &service.reclaim;
    let output = match cli.command {
        Command::Identity(IdentityCommand::Create {
            email,
            name,
            locale,
            inactive,
        }) => {
            let now = u64::try_from(reclaim.clock().now().as_nanos())?;
            let new = NewIdentity {
                email,
                display_name: name,
                locale,
                active: !inactive,
            };
            serde_json::to_value(service.storage.create_identity(&new, now)?)?
        }
        Command::Identity(IdentityCommand::List) => {
            serde_json::to_value(service.storage.list_identities()?)?
        }
        Command::Link(LinkCommand::Create(args)) => {
            let link = reclaim.create_link(
                &identity_ref(&args.identity),
                args.expires_in.as_deref(),
                args.return_to.as_deref(),
            )?;
            json!({ "recovery_link": link.link, "expires_at": rfc3339(link.expires_at), "flow_id": link.flow_id })
        }
        Command::Code(CodeCommand::Create(args)) => {
            let code = reclaim.create_code(
                &identity_ref(&args.identity),
                args.expires_in.as_deref(),
                args.return_to.as_deref(),
            )?;
            json!({
                "recovery_link": code.link, "recovery_code": code.code,
                "expires_at": rfc3339(code.expires_at), "flow_id": code.flow_id,
            })
        }
        Command::Email(EmailCommand::Send {
            identity,
            expires_in,
            template,
        }) => {
            let mailed = reclaim.send_recovery_email(
                &identity_ref(&identity),
                expires_in.as_deref(),
                template.as_deref(),
            )?;
            json!({ "flow_id": mailed.flow_id, "expires_at": rfc3339(mailed.expires_at) })
        }
        Command::Request { email } => {
            reclaim.request_recovery(&email, None)?;
            json!({ "accepted": true })
        }
        Command::Redeem(args) => {
            let redemption = match (args.link, args.flow, args.code) {
                (Some(link), _, _) => reclaim.redeem_link(&token_of(&link)?)?,
                (None, Some(flow), Some(code)) => reclaim.redeem_code(&flow, &code)?,
                _ => bail!("pass --link, or --flow with --code"),
            };
            serde_json::to_value(redemption)?
        }
        Command::Revoke { identity } => {
            json!({ "revoked": reclaim.revoke(&identity_ref(&identity))? })
        }
        Command::Courier(CourierCommand::Flush) => {
            json!({ "delivered": service.courier.deliver_pending()? })
        }
    };
    // Whatever a command queued goes out before it exits; what can't stays
    // queued for the next run.
    if let Err(e) = service.courier.deliver_pending() {
        tracing::warn!(error = %format!("{e:#}"), "mail stays queued");
    }
    Ok(output)
}

/// The token of a recovery link (its `token` query parameter).
fn token_of(link: &str) -> Result<String> {
    let query = link.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let query = query.split('#').next().unwrap_or_default();
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .map(str::to_string)
        .context("the link carries no token")
}
