//! `reclaim`: the recovery engine on the command line. Every command prints
//! JSON on stdout; errors go to stderr as JSON with a non-zero exit.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

use reclaim::config::{Config, Options};
use reclaim::http::{self, AppState, rfc3339};
use std::sync::atomic::{AtomicBool, Ordering};

use reclaim::mail::{Courier, EmlDirectory, MailStatus, OutboxStore, SmtpRelay, Transport};
use reclaim::{
    Clock, EmailOptions, Engine, Error, IdentityRef, Limits, NewIdentity, Reclaim, SqliteStorage,
    SystemClock,
};

#[derive(Parser)]
#[command(
    name = "reclaim",
    version,
    about = "Account recovery as a sandboxed WebAssembly component"
)]
struct Cli {
    /// TOML configuration file; environment variables and flags override it
    #[arg(long, env = "RECLAIM_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(flatten)]
    options: Options,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the admin APIs (Kratos, authentik) and the self-service pages
    Serve,
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
    /// Write the embedded recovery component (.wasm), byte for byte, for
    /// other hosts (jco, wasmtime, wac)
    Component {
        /// Where to write it
        #[arg(long)]
        out: PathBuf,
    },
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
        #[arg(long, conflicts_with = "code")]
        template: Option<String>,
        /// Mail a six-digit code (and the link to its page) instead of a link
        #[arg(long)]
        code: bool,
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

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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

struct Service {
    config: Config,
    reclaim: Reclaim,
    storage: Arc<SqliteStorage>,
    courier: Courier,
}

fn open(config: Config) -> Result<Service> {
    let storage = Arc::new(SqliteStorage::open_with(
        config.data.join("reclaim.db"),
        config.durability,
    )?);
    let transport: Box<dyn Transport> = match &config.courier.smtp_url {
        Some(url) => Box::new(SmtpRelay::from_url(url, config.courier.timeout)?),
        None => Box::new(EmlDirectory::new(config.data.join("outbox"))?),
    };
    let courier = Courier::new(
        storage.clone(),
        transport,
        config.mail_from.clone(),
        Arc::new(SystemClock),
        config.courier.policy.clone(),
    );
    let limits = Limits {
        reuse_instances: config.reuse_instances,
        ..Limits::default()
    };
    let engine = Engine::new(reclaim::engine::EMBEDDED_COMPONENT, limits)?;
    let reclaim = Reclaim::new(engine, storage.clone(), config.settings.clone());
    Ok(Service {
        config,
        reclaim,
        storage,
        courier,
    })
}

/// The admin API's bearer token: configured, or kept in the data directory
/// (created on first start, readable by the owner alone).
fn admin_token(config: &Config) -> Result<(String, Option<PathBuf>)> {
    if let Some(token) = &config.admin_token {
        return Ok((token.clone(), None));
    }
    let path = config.data.join("admin-token");
    if !path.exists() {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw)?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(mut file) => std::io::Write::write_all(&mut file, hex::encode(raw).as_bytes())?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        }
    }
    let token =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok((token.trim().to_string(), Some(path)))
}

fn serve(service: Service) -> Result<Value> {
    let (token, token_file) = admin_token(&service.config)?;
    let listen = service.config.listen;
    // The first request shouldn't pay for faulting in the engine, and a
    // component that can't be instantiated should stop the start.
    service.reclaim.engine().warm_up()?;
    let state = AppState::new(service.reclaim, service.storage, service.config, token)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let bound = listener.local_addr()?;
        // One line for whoever started us (scripts, tests): where to connect,
        // and where the admin token is (never the token itself).
        println!(
            "{}",
            json!({ "listening": bound.to_string(), "admin_token_file": token_file })
        );
        match &token_file {
            Some(path) => tracing::warn!("admin API token is in {}", path.display()),
            None => tracing::info!("admin API token comes from the configuration"),
        }
        http::serve(state, service.courier, listener).await
    })?;
    Ok(json!({ "stopped": true }))
}

fn identity_ref(text: &str) -> IdentityRef {
    match text.parse::<i64>() {
        Ok(pk) => IdentityRef::Pk(pk),
        Err(_) => IdentityRef::Id(text.to_string()),
    }
}

fn run(cli: Cli) -> Result<Value> {
    // Needs no configuration or data directory.
    if let Command::Component { out } = &cli.command {
        std::fs::write(out, reclaim::engine::EMBEDDED_COMPONENT)
            .with_context(|| format!("writing {}", out.display()))?;
        let sha256 = hex::encode(sha2::Digest::finalize(
            <sha2::Sha256 as sha2::Digest>::new_with_prefix(reclaim::engine::EMBEDDED_COMPONENT),
        ));
        return Ok(
            json!({ "path": out, "bytes": reclaim::engine::EMBEDDED_COMPONENT.len(), "sha256": sha256 }),
        );
    }
    let config = Config::resolve(cli.config.as_deref(), cli.options)?;
    let service = open(config)?;
    if let Command::Serve = cli.command {
        return serve(service);
    }
    let reclaim = &service.reclaim;
    let queues_mail = matches!(cli.command, Command::Email(_) | Command::Request { .. });
    let output = match cli.command {
        Command::Serve | Command::Component { .. } => unreachable!("handled above"),
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
        Command::Identity(IdentityCommand::CheckPassword { identity, password }) => {
            let password = match password {
                Some(p) => p,
                None => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            let found = service
                .storage
                .identity(&identity_ref(&identity))?
                .context("no such identity")?;
            let matches = service
                .storage
                .password_hash(&found.id)?
                .is_some_and(|stored| reclaim::passwords::verify(&password, &stored));
            if !matches {
                bail!("the password does not match");
            }
            json!({ "identity_id": found.id, "matches": true })
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
            code,
        }) => {
            let who = identity_ref(&identity);
            let mailed = if code {
                reclaim.send_recovery_code(&who, expires_in.as_deref())?
            } else {
                let options = EmailOptions {
                    expires_in: expires_in.as_deref(),
                    template: template.as_deref(),
                    ..Default::default()
                };
                reclaim.send_recovery_email(&who, &options)?
            };
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
            let ended = reclaim.revoke(&identity_ref(&identity))?;
            json!({ "revoked": ended.credentials, "sessions_ended": ended.sessions })
        }
        Command::Courier(command) => return courier(&service, command),
    };
    // Mail a command queued goes out before it exits; what can't stays
    // queued for a courier.
    if queues_mail && let Err(e) = service.courier.drain() {
        tracing::warn!(error = %format!("{e:#}"), "mail stays queued");
    }
    Ok(output)
}

fn courier(service: &Service, command: CourierCommand) -> Result<Value> {
    let now = u64::try_from(SystemClock.now().as_nanos())?;
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
        CourierCommand::Status => serde_json::to_value(service.storage.status(now)?)?,
        CourierCommand::List { status, limit } => {
            serde_json::to_value(service.storage.list(status, limit)?)?
        }
        CourierCommand::Retry { id } => {
            if !service.storage.retry(&id, now)? {
                bail!(
                    "no abandoned message that can be sent again has the id {id} \
                     (one that carried a recovery link or code lost it when it was abandoned: send a new one)"
                );
            }
            json!({ "id": id, "status": "queued" })
        }
    })
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
