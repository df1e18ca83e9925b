//! Kratos' UI texts: the ids Ory's clients look their own wording up by
//! (Ory Elements shows its translation of the id, not `text`), with
//! Kratos' English for clients that show `text`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A text of a flow or of one of its nodes (Kratos' `uiText`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Text {
    pub id: u32,
    pub text: String,
    #[serde(rename = "type")]
    pub kind: TextKind,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub context: Value,
}

/// `uiText.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextKind {
    Info,
    Error,
    Success,
}

fn text(id: u32, kind: TextKind, text: impl Into<String>, context: Value) -> Text {
    Text {
        id,
        text: text.into(),
        kind,
        context,
    }
}

/// 1050001: the settings were saved.
pub fn settings_saved() -> Text {
    text(
        1050001,
        TextKind::Success,
        "Your changes have been saved!",
        Value::Null,
    )
}

/// 1060001: recovered; the settings flow carries it.
pub fn recovered(privileged_until: &str, minutes_left: f64) -> Text {
    text(
        1060001,
        TextKind::Success,
        format!(
            "You successfully recovered your account. Please change your password or set up an \
             alternative login method (e.g. social sign in) within the next {minutes_left:.2} minutes."
        ),
        json!({ "privileged_session_expires_at": privileged_until }),
    )
}

/// 1060002: a link was mailed (or would have been: unknown addresses read the same).
pub fn link_sent() -> Text {
    text(
        1060002,
        TextKind::Info,
        "An email containing a recovery link has been sent to the email address you provided. \
         If you have not received an email, check the spelling of the address and make sure to \
         use the address you registered with.",
        Value::Null,
    )
}

/// 1060003: a code was mailed (or would have been).
pub fn code_sent() -> Text {
    text(
        1060003,
        TextKind::Info,
        "An email containing a recovery code has been sent to the email address you provided. \
         If you have not received an email, check the spelling of the address and make sure to \
         use the address you registered with.",
        Value::Null,
    )
}

/// Node labels.
pub fn label(id: u32) -> Text {
    let words = match id {
        1070001 => "Password",
        1070003 => "Save",
        1070007 => "Email",
        1070008 => "Resend code",
        1070009 => "Continue",
        1070010 => "Recovery code",
        _ => unreachable!("label {id} is not one of ours"),
    };
    text(id, TextKind::Info, words, Value::Null)
}

/// 4000001: a validation error; here, submitted too often.
pub fn too_often() -> Text {
    text(
        4000001,
        TextKind::Error,
        "The request was submitted too often. Please request another code.",
        json!({ "reason": "The request was submitted too often. Please request another code." }),
    )
}

/// 4000001 with another reason (a password the rules refuse).
pub fn invalid(reason: &str) -> Text {
    text(
        4000001,
        TextKind::Error,
        reason,
        json!({ "reason": reason }),
    )
}

/// 4000005: a password the rules refuse, and why.
pub fn password_refused(reason: &str) -> Text {
    text(
        4000005,
        TextKind::Error,
        reason,
        json!({ "reason": reason }),
    )
}

/// 4000002: a required property is missing.
pub fn missing(property: &str) -> Text {
    text(
        4000002,
        TextKind::Error,
        format!("Property {property} is missing."),
        json!({ "property": property }),
    )
}

/// 4060001: the flow already ended.
pub fn already_done() -> Text {
    text(
        4060001,
        TextKind::Error,
        "The request was already completed successfully and can not be retried.",
        Value::Null,
    )
}

/// 4060004: a link token that is unknown, used, revoked or expired.
pub fn token_invalid() -> Text {
    text(
        4060004,
        TextKind::Error,
        "The recovery token is invalid or has already been used. Please retry the flow.",
        Value::Null,
    )
}

/// 4060005: the flow expired.
pub fn flow_expired(minutes_ago: f64, expired_at_unix: u64) -> Text {
    text(
        4060005,
        TextKind::Error,
        format!("The recovery flow expired {minutes_ago:.2} minutes ago, please try again."),
        json!({ "expired_at_unix": expired_at_unix }),
    )
}

/// 4060006: a wrong, used or revoked code.
pub fn code_invalid() -> Text {
    text(
        4060006,
        TextKind::Error,
        "The recovery code is invalid or has already been used. Please try again.",
        Value::Null,
    )
}
