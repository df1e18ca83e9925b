//! `reclaim`: the recovery engine on the command line. Every command prints
//! JSON on stdout; errors go to stderr as JSON with a non-zero exit. This
//! file parses and dispatches; each command group has a module in `cli/`.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::Value;

use cli::courier::CourierCommand;
use cli::events::EventsCommand;
use cli::identity::IdentityCommand;
use cli::recovery::{CodeCommand, EmailCommand, LinkCommand, RedeemArgs};
use reclaim_server::config::{Config, Options};

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
    /// The mail and webhook courier
    #[command(subcommand)]
    Courier(CourierCommand),
    /// The audit trail
    #[command(subcommand)]
    Events(EventsCommand),
    /// Write the embedded recovery component (.wasm), byte for byte, for
    /// other hosts (jco, wasmtime, wac)
    Component {
        /// Where to write it
        #[arg(long)]
        out: PathBuf,
        /// Write the edge component instead: the engine, the HTTP API and
        /// the filesystem provider in one file, for `wasmtime serve`
        #[arg(long, conflicts_with = "sql")]
        edge: bool,
        /// Write the SQL component instead: the engine with the SQL
        /// provider's storage, outbox and directory over a host's SQL
        /// connection, for the Python and Node.js packages
        #[arg(long)]
        sql: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RECLAIM_LOG")
                .unwrap_or_else(|_| "warn,reclaim::access=info".into()),
        )
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}", cli::error_body(&e));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<Value> {
    // Needs no configuration or data directory.
    if let Command::Component { out, edge, sql } = &cli.command {
        return cli::write_component(out, *edge, *sql);
    }
    let config = Config::resolve(cli.config.as_deref(), cli.options)?;
    let service = cli::Service::open(config)?;
    let output = match cli.command {
        Command::Component { .. } => unreachable!("handled above"),
        Command::Serve => return cli::serve::serve(service),
        Command::Identity(command) => return cli::identity::run(&service, command),
        Command::Courier(command) => return cli::courier::run(&service, command),
        Command::Events(command) => return cli::events::run(&service, command),
        Command::Link(command) => cli::recovery::link(&service, command)?,
        Command::Code(command) => cli::recovery::code(&service, command)?,
        Command::Revoke { identity } => cli::recovery::revoke(&service, &identity)?,
        Command::Redeem(args) => cli::recovery::redeem(&service, args)?,
        Command::Email(command) => {
            let output = cli::recovery::email(&service, command)?;
            service.deliver_queued_mail();
            output
        }
        Command::Request { email } => {
            let output = cli::recovery::request(&service, &email)?;
            service.deliver_queued_mail();
            output
        }
    };
    Ok(output)
}
