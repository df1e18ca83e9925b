//! The one check of recipient addresses and display names, applied where
//! identities are created, where mail is queued and on the request form, so
//! that nothing accepted at one of them is refused later by the courier.

use lettre::Address;

/// Longest address SMTP carries (RFC 5321's path limit less the brackets).
const MAX_ADDRESS_LEN: usize = 254;
/// Longest display name kept in a `To:` header: with RFC 2047 encoding of
/// four-byte characters it still fits one 998-byte line (RFC 5322 2.1.1).
pub const MAX_NAME_CHARS: usize = 64;

/// `text` as a recipient address, or why it can't be one. lettre parses it
/// (it builds and sends the message); on top of that the local part must be
/// a dot-atom and the domain a name: quoted local parts (`"a\"b"@x`) and
/// address literals (`a@[127.0.0.1]`) parse, but relays refuse them.
pub fn check_address(text: &str) -> Result<Address, &'static str> {
    const NOT_AN_ADDRESS: &str = "not a deliverable email address";
    if text.len() > MAX_ADDRESS_LEN || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(NOT_AN_ADDRESS);
    }
    let address: Address = text.parse().map_err(|_| NOT_AN_ADDRESS)?;
    let (user, domain) = (address.user(), address.domain());
    let dot_atom = !user.is_empty()
        && !user.starts_with('.')
        && !user.ends_with('.')
        && !user.contains("..")
        && !user.contains(['"', '\\', '(', ')', ',', ':', ';', '<', '>', '@', '[', ']']);
    let named_domain = !domain.starts_with('[')
        && domain
            .split('.')
            .all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'))
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.');
    if dot_atom && named_domain {
        Ok(address)
    } else {
        Err(NOT_AN_ADDRESS)
    }
}

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
    fn ordinary_addresses_pass() {
        for good in [
            "ann@example.com",
            "a.b+tag@sub.example.co",
            "ann@localhost",
            "jörg@bücher.example",
        ] {
            assert!(check_address(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn addresses_that_relays_refuse_are_refused_here_too() {
        for bad in [
            "\"a\\\"b\"@example.com",
            "\"ann\"@example.com",
            "a@[127.0.0.1]",
            "a..b@example.com",
            ".a@example.com",
            "a@-example.com",
            "a@example..com",
            "a b@example.com",
            "a@example.com\r\nBcc: x@y",
            "",
            "@example.com",
            "a@",
        ] {
            assert!(check_address(bad).is_err(), "{bad:?}");
        }
        assert!(check_address(&format!("{}@example.com", "a".repeat(250))).is_err());
    }

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
