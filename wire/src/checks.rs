//! The checks on what callers send, applied by both servers alike.

/// `id` as the engine takes identity ids (a UUID in its hyphenated
/// lower-case form), if it is a UUID in any of its textual forms (simple,
/// braced, URN): every form names the one stored identity.
pub fn identity_id(id: &str) -> Option<String> {
    uuid::Uuid::try_parse(id)
        .ok()
        .map(|uuid| uuid.hyphenated().to_string())
}

/// The query parameter the hand-off adds for the platform.
pub const HANDOFF_PARAMETER: &str = "recovery_assertion";

/// Where a hand-off sends the person: `target` with `assertion` as its one
/// `recovery_assertion`. Any the target already carried (an attacker's,
/// put in a `return_to`) is dropped, so that a platform reading the first
/// value reads this redemption's.
pub fn handoff_location(target: &str, assertion: &str) -> Option<String> {
    let mut url = url::Url::parse(target).ok()?;
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(name, _)| name != HANDOFF_PARAMETER)
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    url.set_query(None);
    url.query_pairs_mut()
        .extend_pairs(kept)
        .append_pair(HANDOFF_PARAMETER, assertion);
    Some(url.into())
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
    fn every_textual_form_of_an_identity_id_is_its_hyphenated_form() {
        let hyphenated = "7e1b2c4a-9d3f-4e5a-8b6c-1d2e3f4a5b6c";
        for form in [
            "7E1B2C4A9D3F4E5A8B6C1D2E3F4A5B6C",
            "{7e1b2c4a-9d3f-4e5a-8b6c-1d2e3f4a5b6c}",
            "urn:uuid:7E1B2C4A-9D3F-4E5A-8B6C-1D2E3F4A5B6C",
        ] {
            assert_eq!(identity_id(form).as_deref(), Some(hyphenated), "{form}");
        }
    }

    #[test]
    fn the_handoff_owns_its_parameter() {
        let location = handoff_location(
            "https://app.example.com/done?recovery_assertion=A&next=%2Fhome&recovery_assertion=B",
            "V",
        )
        .unwrap();
        let url = url::Url::parse(&location).unwrap();
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            [
                ("next".to_owned(), "/home".to_owned()),
                ("recovery_assertion".to_owned(), "V".to_owned())
            ]
        );
        assert_eq!(
            handoff_location("https://app.example.com/done", "V").unwrap(),
            "https://app.example.com/done?recovery_assertion=V"
        );
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
