//! The recovery flow: `choose_method` → `sent_email` → `passed_challenge`.
//! Every rule of a submission is here (what an empty address means, when
//! a code is checked, how many wrong codes a flow survives); the server
//! carries out the [`Step`] it is given and reports back.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::nodes::{self, Node};
use super::texts::{self, Text};
use super::{Of, Record, say};
use crate::refusal::Kind;

/// A recovery flow's own state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecoveryFlow {
    pub state: State,
    /// `code` or `link`: the method the flow offers (Elements accepts no other).
    pub active: String,
    /// The address the code or link went to, for the re-send button.
    pub email: Option<String>,
    /// The flow id the current code is bound to (never shown: a re-send
    /// draws another, so an older code no longer answers on this flow).
    pub code_flow: Option<String>,
    /// Wrong codes submitted to this flow, across re-sends.
    pub wrong_codes: u32,
    pub messages: Vec<Text>,
    /// Messages on the address node.
    pub email_messages: Vec<Text>,
}

/// `state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    ChooseMethod,
    SentEmail,
    PassedChallenge,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChooseMethod => "choose_method",
            Self::SentEmail => "sent_email",
            Self::PassedChallenge => "passed_challenge",
        }
    }
}

/// A submission (Kratos' `updateRecoveryFlowBody`, JSON or form).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Submit {
    pub method: Option<String>,
    pub email: Option<String>,
    pub code: Option<String>,
    pub csrf_token: Option<String>,
    pub transient_payload: Option<Value>,
}

/// What a submission asks of the server.
#[derive(Debug)]
pub enum Step {
    /// Queue a request for `email` (a code, bound to a flow id the server
    /// draws, or a link), then answer with [`Record::sent`].
    Send { email: String, method: String },
    /// Redeem `code` against the flow's code, then answer with
    /// [`Record::passed`] or [`Record::wrong_code`].
    Check { code_flow: String, code: String },
    /// 400 with the flow as it now is (a validation error on a node).
    Invalid(Box<Record>),
    /// The flow can't go on: a new flow carrying this message.
    Restart(Text),
}

impl RecoveryFlow {
    /// A fresh flow offering `method` (`code` or `link`).
    pub fn new(method: &str, email: Option<String>) -> Self {
        Self {
            state: State::ChooseMethod,
            active: method.to_string(),
            email,
            code_flow: None,
            wrong_codes: 0,
            messages: Vec::new(),
            email_messages: Vec::new(),
        }
    }

    pub(super) fn nodes(&self) -> Vec<Node> {
        match (self.state, self.active.as_str(), &self.email) {
            (State::SentEmail, "code", Some(email)) => nodes::enter_code(email),
            _ => {
                let mut choose = nodes::choose(&self.active, self.email.as_deref());
                choose[0].messages = self.email_messages.clone();
                choose
            }
        }
    }
}

/// The methods a submission may name.
fn method_of(submit: &Submit, flow: &RecoveryFlow) -> Option<String> {
    let method = submit.method.as_deref().unwrap_or(&flow.active);
    matches!(method, "code" | "link").then(|| method.to_string())
}

impl Record {
    fn recovery_flow(&self) -> &RecoveryFlow {
        match &self.of {
            Of::Recovery(f) => f,
            _ => unreachable!("a recovery step on a recovery flow"),
        }
    }

    fn with_recovery(&self, change: impl FnOnce(&mut RecoveryFlow)) -> Self {
        let mut next = self.clone();
        if let Of::Recovery(f) = &mut next.of {
            change(f);
        }
        next
    }

    /// What `submit` asks of this recovery flow; `None` for a record that
    /// is not a recovery flow.
    pub fn recovery_step(&self, submit: &Submit) -> Option<Step> {
        let Of::Recovery(flow) = &self.of else {
            return None;
        };
        if flow.state == State::PassedChallenge {
            return Some(Step::Restart(texts::already_done()));
        }
        let Some(method) = method_of(submit, flow) else {
            let mut invalid = self.clone();
            if let Of::Recovery(f) = &mut invalid.of {
                say(
                    &mut f.messages,
                    texts::invalid(
                        "Could not find a strategy to recover your account with. Did you fill out the form correctly?",
                    ),
                );
            }
            return Some(Step::Invalid(Box::new(invalid)));
        };
        // Ory Elements sends `email: ""` with the code: empty is absent.
        let email = submit
            .email
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty());
        let code = submit
            .code
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty());
        Some(match (email, code, &flow.code_flow) {
            (Some(email), _, _) => Step::Send {
                email: email.to_string(),
                method,
            },
            (None, Some(code), Some(code_flow)) if method == "code" => Step::Check {
                code_flow: code_flow.clone(),
                code: code.to_string(),
            },
            (None, _, _) if flow.state == State::SentEmail && method == "code" => {
                let mut invalid = self.clone();
                if let Of::Recovery(f) = &mut invalid.of {
                    say(&mut f.messages, texts::missing("code"));
                }
                Step::Invalid(Box::new(invalid))
            }
            _ => Step::Invalid(Box::new(self.with_recovery(|f| {
                f.email_messages = vec![texts::missing("email")];
                f.messages.clear();
            }))),
        })
    }

    /// After [`Step::Send`]: the request is queued (for a code, bound to
    /// `code_flow`). Known and unknown addresses land here alike.
    pub fn sent(&self, email: &str, method: &str, code_flow: Option<String>) -> Self {
        self.with_recovery(|f| {
            f.state = State::SentEmail;
            f.active = method.to_string();
            f.email = Some(email.to_string());
            if code_flow.is_some() {
                f.code_flow = code_flow;
            }
            f.email_messages.clear();
            f.messages = vec![if method == "code" {
                texts::code_sent()
            } else {
                texts::link_sent()
            }];
        })
    }

    /// After [`Step::Send`] with an address that is none: 400 with the
    /// reason on the address node.
    pub fn not_an_address(&self, email: &str) -> Self {
        self.with_recovery(|f| {
            f.email = Some(email.to_string());
            f.email_messages = vec![texts::invalid(&format!("{email:?} is not valid \"email\""))];
        })
    }

    /// After [`Step::Check`] refused the code with `kind`: the flow again
    /// with 4060006, or, at `max` wrong codes or when the engine says the
    /// identity saw too many, `Err` with the message of the new flow.
    pub fn wrong_code(&self, kind: Kind, max: u32) -> Result<Self, Text> {
        let wrong = self.recovery_flow().wrong_codes + 1;
        if wrong >= max || kind == Kind::TooManyAttempts {
            return Err(texts::too_often());
        }
        Ok(self.with_recovery(|f| {
            f.wrong_codes = wrong;
            f.messages = vec![texts::code_invalid()];
        }))
    }

    /// After [`Step::Check`] redeemed the code.
    pub fn passed(&self) -> Self {
        self.with_recovery(|f| {
            f.state = State::PassedChallenge;
            f.messages.clear();
        })
    }

    /// Whether a refusal of a code check is the code's fault (the flow
    /// answers 4060006 and lives on) rather than the server's.
    pub fn is_wrong_code(kind: Kind) -> bool {
        matches!(
            kind,
            Kind::CodeIncorrect
                | Kind::CredentialUnknown
                | Kind::CredentialUsed
                | Kind::CredentialExpired
                | Kind::CredentialRevoked
                | Kind::TooManyAttempts
                | Kind::InvalidArgument
                | Kind::IdentityInactive
                | Kind::IdentityNotFound
        )
    }
}

#[cfg(test)]
mod tests;
