//! Rust types and traits generated from `wit/recovery.wit`, the contract
//! between this host and the recovery component.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "recovery-engine",
    // Every import may fail on the host side (a lost database, a full disk);
    // failing traps the guest, and a trapped operation writes nothing.
    imports: { default: trappable },
    anyhow: true,
    additional_derives: [serde::Serialize],
});

pub use self::exports::reclaim::recovery::recovery::{
    Mailed, RecoveryCode, RecoveryLink, Redemption,
};
pub use self::reclaim::recovery::mailer::Message;
pub use self::reclaim::recovery::settings::{MailTemplate, Settings as WitSettings};
pub use self::reclaim::recovery::storage::{
    ConsumeOutcome, Credential, CredentialKind, CredentialState, CredentialStatus,
};
pub use self::reclaim::recovery::types::{ErrorKind, Identity, IdentityRef, RecoveryError};

impl ErrorKind {
    /// The case's name in the WIT contract (`invalid-argument`), as other
    /// hosts (jco) spell it.
    pub fn wit_name(self) -> &'static str {
        match self {
            Self::InvalidArgument => "invalid-argument",
            Self::IdentityNotFound => "identity-not-found",
            Self::IdentityInactive => "identity-inactive",
            Self::IdentityWithoutEmail => "identity-without-email",
            Self::CredentialUnknown => "credential-unknown",
            Self::CredentialUsed => "credential-used",
            Self::CredentialExpired => "credential-expired",
            Self::CredentialRevoked => "credential-revoked",
            Self::CodeIncorrect => "code-incorrect",
            Self::TooManyAttempts => "too-many-attempts",
            Self::MailRejected => "mail-rejected",
            Self::TemplateInvalid => "template-invalid",
            Self::Misconfigured => "misconfigured",
        }
    }
}
