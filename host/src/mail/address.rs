//! The one check of recipient addresses and display names, applied where
//! identities are created, where mail is queued and on the request form, so
//! that nothing accepted at one of them is refused later by the courier.

pub use reclaim_wire::checks::check_address;

/// Longest display name kept in a `To:` header: with RFC 2047 encoding of
/// four-byte characters it still fits one 998-byte line (RFC 5322 2.1.1).
pub const MAX_NAME_CHARS: usize = 64;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_cut_and_control_characters_refused() {
        assert_eq!(fit_name("Ann"), "Ann");
        let cut = fit_name(&"x".repeat(10_000));
        assert_eq!(cut.chars().count(), MAX_NAME_CHARS);
        assert!(cut.ends_with('…'));
        assert!(check_name("Ann\r\nBcc: x@y").is_err());
        assert!(check_name("Ann Example").is_ok());
    }
}
