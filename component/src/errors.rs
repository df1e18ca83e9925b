//! Errors in the shape every host turns into its API's error body.

use crate::bindings::reclaim::recovery::types::{ErrorKind, RecoveryError};

/// An error of `kind` with a message for the caller.
pub fn error(kind: ErrorKind, message: impl Into<String>) -> RecoveryError {
    let (code, status, reason) = match kind {
        ErrorKind::InvalidArgument => (
            400,
            "Bad Request",
            "The request was malformed or contained invalid parameters.",
        ),
        ErrorKind::IdentityNotFound => (
            404,
            "Not Found",
            "The requested identity could not be found.",
        ),
        ErrorKind::IdentityInactive => (400, "Bad Request", "The identity is disabled."),
        ErrorKind::IdentityWithoutEmail => {
            (400, "Bad Request", "The identity has no email address.")
        }
        ErrorKind::CredentialUnknown => (
            404,
            "Not Found",
            "The recovery token or flow is invalid or has already been used.",
        ),
        ErrorKind::CredentialUsed => (410, "Gone", "The recovery credential was already used."),
        ErrorKind::CredentialExpired => (410, "Gone", "The recovery credential has expired."),
        ErrorKind::CredentialRevoked => (410, "Gone", "The recovery credential was revoked."),
        ErrorKind::CodeIncorrect => (400, "Bad Request", "The recovery code is invalid."),
        ErrorKind::TooManyAttempts => (400, "Bad Request", "The request was submitted too often."),
        ErrorKind::MailRejected => (400, "Bad Request", "The message could not be queued."),
        ErrorKind::TemplateInvalid => (
            500,
            "Internal Server Error",
            "A mail template could not be rendered.",
        ),
        ErrorKind::Misconfigured => (
            500,
            "Internal Server Error",
            "The recovery engine is misconfigured.",
        ),
    };
    RecoveryError {
        kind,
        code,
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.into(),
    }
}
