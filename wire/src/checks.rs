//! The checks on what callers send, applied by both servers alike.

/// `id` as the engine takes identity ids (a lower-case UUID), if it is a
/// UUID in any of its textual forms.
pub fn identity_id(id: &str) -> Option<String> {
    uuid::Uuid::try_parse(id)
        .ok()
        .map(|_| id.to_ascii_lowercase())
}

/// Whether an `Authorization` header value presents `admin_token` as a
/// bearer token (the scheme case-insensitive, RFC 7235), compared in
/// constant time. An empty `admin_token` admits no one.
pub fn admin_authorized(authorization: Option<&str>, admin_token: &str) -> bool {
    use subtle::ConstantTimeEq;
    let presented = authorization.and_then(bearer_token).unwrap_or_default();
    !admin_token.is_empty() && bool::from(presented.as_bytes().ct_eq(admin_token.as_bytes()))
}

/// The credentials of `Authorization: Bearer <token>`.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
}

/// `return_to` in its normalised form, if it may be honoured: the same
/// origin as an allowed URL, no credentials, and a path equal to the
/// allowed one or below it (`/done` admits `/done` and `/done/x`, not
/// `/donex`). The normalised form is what is stored and redirected to,
/// so what was checked is what is used.
pub fn allowed_return_to(allowed: &[url::Url], return_to: &str) -> Option<String> {
    let wanted = url::Url::parse(return_to).ok()?;
    let admitted = allowed.iter().any(|allowed| {
        wanted.origin() == allowed.origin()
            && wanted.username().is_empty()
            && wanted.password().is_none()
            && path_within(wanted.path(), allowed.path())
    });
    admitted.then(|| wanted.to_string())
}

/// Whether `path` is `base` or lies below it, at a `/` boundary.
fn path_within(path: &str, base: &str) -> bool {
    match path.strip_prefix(base) {
        Some(rest) => base.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Longest address SMTP carries (RFC 5321's path limit less the brackets).
const MAX_ADDRESS_LEN: usize = 254;

/// Whether `text` is a recipient address, or why it can't be one. The
/// address must parse as lettre (the courier that builds and sends the
/// message) parses it: `email_address`'s local part and domain, the domain
/// also in its IDNA form. On top of that the local part must be a dot-atom
/// and the domain a name: quoted local parts (`"a\"b"@x`) and address
/// literals (`a@[127.0.0.1]`) parse, but relays refuse them. lettre is not
/// used here so that an embedding without the courier needs none of it.
pub fn check_address(text: &str) -> Result<(), &'static str> {
    const NOT_AN_ADDRESS: &str = "not a deliverable email address";
    if text.len() > MAX_ADDRESS_LEN || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(NOT_AN_ADDRESS);
    }
    let (user, domain) = text.rsplit_once('@').ok_or(NOT_AN_ADDRESS)?;
    let parses = email_address::EmailAddress::is_valid_local_part(user)
        && (email_address::EmailAddress::is_valid_domain(domain)
            || idna::domain_to_ascii(domain)
                .is_ok_and(|ascii| email_address::EmailAddress::is_valid_domain(&ascii)));
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
    if parses && dot_atom && named_domain {
        Ok(())
    } else {
        Err(NOT_AN_ADDRESS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_ids_are_uuids_in_lower_case() {
        let id = "7E1B2C4A-9D3F-4E5A-8B6C-1D2E3F4A5B6C";
        assert_eq!(identity_id(id).unwrap(), id.to_ascii_lowercase());
        assert!(identity_id("alice").is_none());
        assert!(identity_id("").is_none());
    }

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
}
