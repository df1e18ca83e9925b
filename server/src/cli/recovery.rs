//! The recovery operations on the command line: links, codes, mail,
//! self-service requests, redemption and revocation.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{Service, identity_ref};
use reclaim::EmailOptions;
use reclaim::clock::rfc3339;

#[derive(Args)]
pub struct IssueArgs {
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
pub enum LinkCommand {
    /// Create a recovery link; prints `recovery_link` and `expires_at`
    Create(IssueArgs),
}

#[derive(Subcommand)]
pub enum CodeCommand {
    /// Create a recovery code; prints `recovery_link`, `recovery_code` and `expires_at`
    Create(IssueArgs),
}

#[derive(Subcommand)]
pub enum EmailCommand {
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
pub struct RedeemArgs {
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

pub fn link(service: &Service, LinkCommand::Create(args): LinkCommand) -> Result<Value> {
    let link = service
        .reclaim
        .create_link(
            &identity_ref(&args.identity),
            args.expires_in.as_deref(),
            args.return_to.as_deref(),
        )
        .wait()?;
    Ok(
        json!({ "recovery_link": link.link, "expires_at": rfc3339(link.expires_at), "flow_id": link.flow_id }),
    )
}

pub fn code(service: &Service, CodeCommand::Create(args): CodeCommand) -> Result<Value> {
    let code = service
        .reclaim
        .create_code(
            &identity_ref(&args.identity),
            args.expires_in.as_deref(),
            args.return_to.as_deref(),
        )
        .wait()?;
    Ok(json!({
        "recovery_link": code.link, "recovery_code": code.code,
        "expires_at": rfc3339(code.expires_at), "flow_id": code.flow_id,
    }))
}

pub fn email(service: &Service, command: EmailCommand) -> Result<Value> {
    let EmailCommand::Send {
        identity,
        expires_in,
        template,
        code,
    } = command;
    let who = identity_ref(&identity);
    let mailed = if code {
        service
            .reclaim
            .send_recovery_code(&who, expires_in.as_deref())
            .wait()?
    } else {
        let options = EmailOptions {
            expires_in: expires_in.as_deref(),
            template: template.as_deref(),
            ..Default::default()
        };
        service.reclaim.send_recovery_email(&who, &options).wait()?
    };
    Ok(json!({ "flow_id": mailed.flow_id, "expires_at": rfc3339(mailed.expires_at) }))
}

pub fn request(service: &Service, email: &str) -> Result<Value> {
    service.reclaim.request_recovery(email, None).wait()?;
    Ok(json!({ "accepted": true }))
}

pub fn redeem(service: &Service, args: RedeemArgs) -> Result<Value> {
    let reclaim = &service.reclaim;
    let redemption = match (args.link, args.flow, args.code) {
        (Some(link), _, _) => reclaim.redeem_link(&token_of(&link)?).wait()?,
        (None, Some(flow), Some(code)) => reclaim.redeem_code(&flow, &code).wait()?,
        _ => bail!("pass --link, or --flow with --code"),
    };
    Ok(serde_json::to_value(redemption)?)
}

pub fn revoke(service: &Service, identity: &str) -> Result<Value> {
    let ended = service.reclaim.revoke(&identity_ref(identity)).wait()?;
    Ok(json!({ "revoked": ended.credentials, "sessions_ended": ended.sessions }))
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
