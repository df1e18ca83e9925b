//! authentik's user recovery API: `POST /api/v3/core/users/{pk}/recovery/`
//! and `.../recovery_email/`, with authentik's error bodies.

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::answer::Answer;
use crate::refusal::{Failure, Kind, Outcome};

/// Optional body of both endpoints.
#[derive(Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecoveryOptions {
    /// Lifespan of the link: Kratos' `30m` form, or authentik's
    /// `minutes=30;hours=1` form.
    pub token_duration: Option<String>,
    /// Email stage (its name or UUID); `recovery_email` also takes it as a
    /// query parameter.
    pub email_stage: Option<String>,
}

/// `?email_stage=`
#[derive(Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
pub struct EmailStageQuery {
    pub email_stage: Option<String>,
}

/// A recovery link.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Link {
    pub link: String,
}

/// The email stage every server has: the `recovery-link` templates and a
/// 30-minute link, as authentik's default recovery flow.
pub const DEFAULT_STAGE: &str = "default";
pub const DEFAULT_STAGE_TEMPLATE: &str = "recovery-link";
pub const DEFAULT_STAGE_TOKEN_EXPIRY: &str = "30m";

/// authentik's words for a user without an address.
pub const NO_EMAIL: &str = "User does not have an email address set.";
/// authentik's words for a stage that does not exist (or none named).
pub const NO_STAGE: &str = "Email stage not found.";

/// An authentik error response, in whichever of its shapes fits.
#[derive(Debug)]
pub enum AuthentikError {
    /// 400 `{"non_field_errors": [...], "code": "invalid"}`
    Invalid(String),
    /// 404 `{"detail": ...}`
    NotFound,
    /// 403 `{"detail", "code"}`
    Forbidden,
    /// 413, 500, 503 `{"detail", "code"}`
    Other(StatusCode, String),
}

impl AuthentikError {
    /// An operation's outcome; `request` names the request in a 500.
    pub fn from_outcome(outcome: &Outcome, request: &str) -> Self {
        match outcome {
            Outcome::Refused(r) if r.kind == Kind::IdentityNotFound => Self::NotFound,
            Outcome::Refused(r) if r.kind == Kind::IdentityWithoutEmail => {
                Self::Invalid(NO_EMAIL.into())
            }
            Outcome::Refused(r) => Self::Invalid(r.message.clone()),
            Outcome::Failed(Failure::Unavailable) => Self::Other(
                StatusCode::SERVICE_UNAVAILABLE,
                "The database is not answering; nothing was stored. Try again.".into(),
            ),
            Outcome::Failed(Failure::Overloaded) => Self::Other(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many recovery operations are in flight; nothing was stored. Try again.".into(),
            ),
            Outcome::Failed(Failure::Failed) => Self::Other(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("The recovery engine failed; nothing was stored (request {request})."),
            ),
        }
    }

    /// The status and JSON body to answer with.
    pub fn reply(&self) -> (StatusCode, serde_json::Value) {
        match self {
            Self::Invalid(message) => (
                StatusCode::BAD_REQUEST,
                json!({ "non_field_errors": [message], "code": "invalid" }),
            ),
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                json!({ "detail": "No User matches the given query.", "code": "not_found" }),
            ),
            Self::Forbidden => (
                StatusCode::FORBIDDEN,
                json!({
                    "detail": "Authentication credentials were not provided or are invalid.",
                    "code": "not_authenticated",
                }),
            ),
            Self::Other(status, detail) => (*status, json!({ "detail": detail, "code": "error" })),
        }
    }
}

/// An empty body means no options; anything else must be a JSON object.
pub fn options(bytes: &[u8]) -> Result<RecoveryOptions, AuthentikError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(RecoveryOptions::default());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| AuthentikError::Invalid(format!("Invalid JSON body: {e}")))
}

/// A user's integer pk from the path; anything else matches no user.
pub fn user_pk(pk: &str) -> Result<i64, AuthentikError> {
    pk.parse().map_err(|_| AuthentikError::NotFound)
}

/// authentik's durations (`minutes=30;hours=1`) in Kratos' grammar; Kratos'
/// own grammar passes through for the component to judge.
pub fn token_duration(text: &str) -> Result<String, AuthentikError> {
    if !text.contains('=') {
        return Ok(text.to_string());
    }
    let mut seconds: u64 = 0;
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let parsed = part.split_once('=').and_then(|(unit, value)| {
            let value: f64 = value
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v >= 0.0)?;
            let scale = match unit.trim() {
                "weeks" => 604_800.0,
                "days" => 86_400.0,
                "hours" => 3_600.0,
                "minutes" => 60.0,
                "seconds" => 1.0,
                _ => return None,
            };
            Some((value * scale) as u64)
        });
        match parsed {
            Some(s) => seconds = seconds.saturating_add(s),
            None => {
                return Err(AuthentikError::Invalid(format!(
                    "Invalid token duration {text:?}: use the form \"hours=1;minutes=30\" or \"90m\"."
                )));
            }
        }
    }
    Ok(format!("{seconds}s"))
}

/// An email stage: the templates, subject, lifespan and sender a
/// `recovery_email` mails with, found by its name or UUID. Both servers
/// read their stages into it (the TOML's `[email_stages.NAME]`, the edge's
/// `settings.json`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct EmailStage {
    pub name: String,
    #[serde(default)]
    pub id: Option<String>,
    /// Subject template replacing the mail template's.
    #[serde(default)]
    pub subject: Option<String>,
    /// Mail template set.
    #[serde(default = "default_template")]
    pub template: String,
    /// Lifespan of the mailed link, in Kratos' grammar.
    #[serde(default = "default_expiry")]
    pub token_expiry: String,
    /// Sender replacing the default one: `address` or `Name <address>`.
    #[serde(default)]
    pub from: Option<String>,
}

fn default_template() -> String {
    DEFAULT_STAGE_TEMPLATE.into()
}

fn default_expiry() -> String {
    DEFAULT_STAGE_TOKEN_EXPIRY.into()
}

impl EmailStage {
    /// The stage every server has unless it configures its own of that name.
    pub fn default_stage() -> Self {
        Self {
            name: DEFAULT_STAGE.into(),
            id: None,
            subject: None,
            template: default_template(),
            token_expiry: default_expiry(),
            from: None,
        }
    }

    /// The stage `key` names (a name, or a UUID in any case).
    pub fn find(stages: &[EmailStage], key: &str) -> Option<EmailStage> {
        let named = |s: &&EmailStage| {
            s.name == key
                || s.id
                    .as_deref()
                    .is_some_and(|id| id.eq_ignore_ascii_case(key))
        };
        match stages.iter().find(named) {
            Some(stage) => Some(stage.clone()),
            None if key == DEFAULT_STAGE => Some(Self::default_stage()),
            None => None,
        }
    }
}

/// `POST .../recovery/`, admitted: whose link, for how long.
#[derive(Debug, PartialEq, Eq)]
pub struct LinkRequest {
    pub pk: i64,
    pub expires_in: Option<String>,
}

/// Admits a request for a link: the user's pk, then the options.
pub fn admit_recovery(pk: &str, body: &[u8]) -> Result<LinkRequest, AuthentikError> {
    let pk = user_pk(pk)?;
    let options = options(body)?;
    let expires_in = options
        .token_duration
        .as_deref()
        .map(token_duration)
        .transpose()?;
    Ok(LinkRequest { pk, expires_in })
}

/// The link made: 200 `{"link"}`.
pub fn answer_recovery(link: String) -> Answer {
    Answer::json(StatusCode::OK, &Link { link })
}

/// `POST .../recovery_email/`, admitted: whose, with which stage (the
/// query's, else the body's) and lifespan (the body's, else the stage's).
#[derive(Debug, PartialEq, Eq)]
pub struct EmailRequest {
    pub pk: i64,
    pub stage: Option<String>,
    pub token_duration: Option<String>,
}

/// Admits a request to mail a link: the user's pk, then the options.
pub fn admit_recovery_email(
    pk: &str,
    query: &str,
    body: &[u8],
) -> Result<EmailRequest, AuthentikError> {
    let pk = user_pk(pk)?;
    let options = options(body)?;
    let query: EmailStageQuery = serde_urlencoded::from_str(query).unwrap_or_default();
    Ok(EmailRequest {
        pk,
        stage: query.email_stage.or(options.email_stage),
        token_duration: options.token_duration,
    })
}

/// What to mail, once the user is known.
#[derive(Debug, PartialEq, Eq)]
pub struct EmailCall {
    pub pk: i64,
    pub expires_in: String,
    pub template: String,
    pub subject: Option<String>,
    pub from: Option<String>,
}

/// authentik's order once the request is admitted: the user (`user` is
/// `None` when there is none, else the user's address), their address,
/// then the stage among `stages`, then the lifespan.
pub fn plan_recovery_email(
    request: EmailRequest,
    user: Option<Option<&str>>,
    stages: &[EmailStage],
) -> Result<EmailCall, AuthentikError> {
    let email = user.ok_or(AuthentikError::NotFound)?;
    if email.is_none_or(str::is_empty) {
        return Err(AuthentikError::Invalid(NO_EMAIL.into()));
    }
    let stage = request
        .stage
        .and_then(|key| EmailStage::find(stages, &key))
        .ok_or_else(|| AuthentikError::Invalid(NO_STAGE.into()))?;
    let expires_in = match request.token_duration.as_deref() {
        Some(text) => token_duration(text)?,
        None => stage.token_expiry,
    };
    Ok(EmailCall {
        pk: request.pk,
        expires_in,
        template: stage.template,
        subject: stage.subject,
        from: stage.from,
    })
}

/// The mail queued: 204.
pub fn answer_recovery_email() -> Answer {
    Answer::empty(StatusCode::NO_CONTENT)
}

impl From<&AuthentikError> for Answer {
    fn from(e: &AuthentikError) -> Self {
        let (status, body) = e.reply();
        Answer::json(status, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authentik_durations_become_seconds_and_kratos_ones_pass_through() {
        assert_eq!(token_duration("hours=1;minutes=30").unwrap(), "5400s");
        assert_eq!(token_duration("days=1").unwrap(), "86400s");
        assert_eq!(token_duration("30m").unwrap(), "30m");
        assert!(token_duration("fortnights=1").is_err());
        assert!(token_duration("hours=-1").is_err());
    }

    #[test]
    fn an_empty_body_means_no_options_and_a_bad_one_is_invalid() {
        assert!(options(b"  \n").unwrap().token_duration.is_none());
        assert!(matches!(options(b"[1"), Err(AuthentikError::Invalid(_))));
        assert!(matches!(user_pk("x"), Err(AuthentikError::NotFound)));
    }

    #[test]
    fn a_recovery_email_checks_the_user_then_the_address_then_the_stage() {
        let request = |stage: Option<&str>| EmailRequest {
            pk: 7,
            stage: stage.map(Into::into),
            token_duration: None,
        };
        let stages = [EmailStage {
            from: Some("Acme <a@acme.example>".into()),
            ..EmailStage::find(&[], "default").unwrap()
        }];
        assert!(matches!(
            plan_recovery_email(request(None), None, &stages),
            Err(AuthentikError::NotFound)
        ));
        assert!(
            matches!(plan_recovery_email(request(Some("default")), Some(None), &stages), Err(AuthentikError::Invalid(m)) if m == NO_EMAIL)
        );
        assert!(
            matches!(plan_recovery_email(request(Some("other")), Some(Some("a@b.example")), &stages), Err(AuthentikError::Invalid(m)) if m == NO_STAGE)
        );
        let call =
            plan_recovery_email(request(Some("default")), Some(Some("a@b.example")), &stages)
                .unwrap();
        assert_eq!(call.expires_in, DEFAULT_STAGE_TOKEN_EXPIRY);
        assert_eq!(call.from.as_deref(), Some("Acme <a@acme.example>"));
    }
}
