//! The checks a message passes before any host queues it, written once for
//! the Rust host and the SQL provider: no header value can inject a header,
//! and the address is one the courier can send to.

use crate::checks::check_address;

/// Longest display name kept in a `To:` header: with RFC 2047 encoding of
/// four-byte characters it still fits one 998-byte line (RFC 5322 2.1.1).
pub const MAX_NAME_CHARS: usize = 64;

/// Longest subject accepted: RFC 5322 recommends 78-character lines, and an
/// encoded subject folds, but nothing legitimate is longer than this.
pub const MAX_SUBJECT_CHARS: usize = 998;

/// Whether `name` may be shown as a display name: no control characters
/// (CR and LF among them), so it can't start a header of its own.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    if name.chars().any(char::is_control) {
        Err("the name contains control characters")
    } else {
        Ok(())
    }
}

/// `name` cut to [`MAX_NAME_CHARS`] characters (an ellipsis marks the cut),
/// so that the `To:` header fits one line however long the directory's
/// name is.
pub fn fit_name(name: &str) -> String {
    if name.chars().count() <= MAX_NAME_CHARS {
        return name.to_string();
    }
    let mut cut: String = name.chars().take(MAX_NAME_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// Checks a message's headers before it is queued and fits its recipient's
/// name to one header line (the name to keep); the error is safe to show.
/// Control characters in a header value are refused, and the address passes
/// the same check as identities' addresses; a sender must be one.
pub fn check_headers(
    to: &str,
    to_name: Option<&str>,
    subject: &str,
    sender: Option<&str>,
) -> Result<Option<String>, &'static str> {
    if let Some(sender) = sender {
        check_sender(sender)?;
    }
    check_address(to).map_err(|_| "the recipient is not a deliverable email address")?;
    if let Some(name) = to_name {
        check_name(name).map_err(|_| "the recipient's name contains control characters")?;
    }
    if subject.is_empty() || subject.chars().any(char::is_control) {
        return Err("the subject is empty or contains control characters");
    }
    if subject.chars().count() > MAX_SUBJECT_CHARS {
        return Err("the subject is too long");
    }
    Ok(to_name.map(fit_name))
}

/// Whether `text` may be a message's sender: `address` or
/// `Name <address>`, the address as [`check_address`] takes it and the
/// name without control characters or angle brackets. What passes, the
/// courier's mail library parses too (the host's `mail::address` tests
/// hold it to that).
pub fn check_sender(text: &str) -> Result<(), &'static str> {
    const NOT_A_SENDER: &str = "not a sender: `address` or `Name <address>`";
    let Some(framed) = text.strip_suffix('>') else {
        return check_address(text).map_err(|_| NOT_A_SENDER);
    };
    let (name, address) = framed.rsplit_once('<').ok_or(NOT_A_SENDER)?;
    let name = name.trim();
    let name = name
        .strip_prefix('"')
        .and_then(|n| n.strip_suffix('"'))
        .unwrap_or(name);
    if name.contains(['<', '>', '"', '\\']) || check_name(name).is_err() {
        return Err(NOT_A_SENDER);
    }
    check_address(address).map_err(|_| NOT_A_SENDER)
}
