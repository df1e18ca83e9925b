//! Errors in the shape every host turns into its API's error body.

use crate::bindings::reclaim::recovery::storage::CredentialState;
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

pub fn unknown_credential() -> RecoveryError {
    error(
        ErrorKind::CredentialUnknown,
        "The recovery token is invalid or has already been used. Please request a new one.",
    )
}

pub fn too_many_attempts() -> RecoveryError {
    error(
        ErrorKind::TooManyAttempts,
        "The request was submitted too often. Please request another code.",
    )
}

/// Past the per-identity cap; the same kind as a flow's, so hosts answer it
/// alike.
pub fn too_many_identity_attempts() -> RecoveryError {
    error(
        ErrorKind::TooManyAttempts,
        "Too many wrong codes were submitted for this account. Please try again later.",
    )
}

/// A credential issued for an address the identity no longer has.
pub fn readdressed_credential() -> RecoveryError {
    error(
        ErrorKind::CredentialRevoked,
        "This recovery link or code was sent to an email address the account no longer has. Please request a new one.",
    )
}

pub fn inactive_identity() -> RecoveryError {
    error(ErrorKind::IdentityInactive, "This account was disabled.")
}

pub fn mail_rejected(reason: String) -> RecoveryError {
    error(
        ErrorKind::MailRejected,
        format!("The recovery email could not be queued: {reason}"),
    )
}

pub fn inactive_credential(state: CredentialState, what: &str) -> RecoveryError {
    match state {
        CredentialState::Used => error(
            ErrorKind::CredentialUsed,
            format!("This recovery {what} was already used. Please request a new one."),
        ),
        CredentialState::Expired => error(
            ErrorKind::CredentialExpired,
            format!("This recovery {what} has expired. Please request a new one."),
        ),
        CredentialState::Revoked => error(
            ErrorKind::CredentialRevoked,
            format!(
                "This recovery {what} is no longer valid because a newer one was issued or access was revoked. Please request a new one."
            ),
        ),
        CredentialState::Active => unknown_credential(),
    }
}
