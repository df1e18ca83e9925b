//! The recovery engine's refusals (WIT `recovery-error`), as the servers
//! see them: each server converts its own bindings' type into these.

/// WIT `error-kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    InvalidArgument,
    IdentityNotFound,
    IdentityInactive,
    IdentityWithoutEmail,
    CredentialUnknown,
    CredentialUsed,
    CredentialExpired,
    CredentialRevoked,
    CodeIncorrect,
    TooManyAttempts,
    MailRejected,
    TemplateInvalid,
    Misconfigured,
}

/// WIT `recovery-error`: Kratos' status code, status text, reason and
/// message, chosen by the component.
#[derive(Clone, Debug)]
pub struct Refusal {
    pub kind: Kind,
    pub code: u16,
    pub status: String,
    pub reason: String,
    pub message: String,
}

/// Why an operation gave no answer of the engine's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The storage does not answer; nothing was stored (503).
    Unavailable,
    /// Too many operations in flight; nothing was submitted (503).
    Overloaded,
    /// Anything else (500); the server logs the cause under the request id.
    Failed,
}

/// An operation's outcome other than success.
#[derive(Clone, Debug)]
pub enum Outcome {
    Refused(Refusal),
    Failed(Failure),
}

impl From<Refusal> for Outcome {
    fn from(r: Refusal) -> Self {
        Self::Refused(r)
    }
}
