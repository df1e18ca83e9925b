//! Links in Kratos' shape.

const RECOVERY_PATH: &str = "/self-service/recovery";

/// The link that carries a token: whoever opens it can recover the account.
pub fn token_link(public_url: &str, flow_id: &str, token: &str) -> String {
    format!(
        "{}{RECOVERY_PATH}?flow={flow_id}&token={token}",
        base(public_url)
    )
}

/// The link to a code flow's page; the code itself never goes into a URL.
pub fn flow_link(public_url: &str, flow_id: &str) -> String {
    format!("{}{RECOVERY_PATH}?flow={flow_id}", base(public_url))
}

fn base(public_url: &str) -> &str {
    public_url.trim_end_matches('/')
}

/// Whether the public URL can prefix a link: absolute http(s), a host that
/// every URL parser reads as the same origin, and no query, fragment or
/// whitespace that would garble what follows it.
pub fn is_usable_base(public_url: &str) -> bool {
    let rest = public_url
        .strip_prefix("https://")
        .or_else(|| public_url.strip_prefix("http://"));
    matches!(rest, Some(rest) if usable_authority(rest.split('/').next().unwrap_or_default()))
        && !public_url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#'))
}

/// `host[:port]`: a DNS name in ASCII (punycode for an international one)
/// that the URL standard's domain-to-ASCII takes (`idna`, as URL parsers
/// run it: a bad punycode label fails there), an IPv4 address, or an IPv6
/// literal in brackets; no user info. Narrower than URLs allow, as the
/// component carries no URL parser: a host whose last label starts with a
/// digit must be a whole IPv4 address, as the URL standard reads it as one.
fn usable_authority(authority: &str) -> bool {
    let (host_ok, port) = match authority.strip_prefix('[') {
        Some(literal) => match literal.split_once(']') {
            Some((address, port)) => (address.parse::<std::net::Ipv6Addr>().is_ok(), port),
            None => return false,
        },
        None => {
            let (host, port) = authority.split_at(authority.find(':').unwrap_or(authority.len()));
            let name = host.trim_end_matches('.');
            let last = name.rsplit('.').next().unwrap_or_default();
            let ok = !name.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
                && idna::domain_to_ascii_cow(host.as_bytes(), idna::AsciiDenyList::URL).is_ok()
                && (!last.starts_with(|c: char| c.is_ascii_digit())
                    || name.parse::<std::net::Ipv4Addr>().is_ok());
            (ok, port)
        }
    };
    host_ok
        && (port.is_empty()
            || port.strip_prefix(':').is_some_and(|p| {
                !p.is_empty()
                    && p.len() <= 5
                    && p.bytes().all(|b| b.is_ascii_digit())
                    && p.parse::<u32>().is_ok_and(|n| n <= 65_535)
            }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_links_have_kratos_shape() {
        assert_eq!(
            token_link("https://id.example/", "f", "t"),
            "https://id.example/self-service/recovery?flow=f&token=t"
        );
    }

    #[test]
    fn flow_links_carry_no_token() {
        assert_eq!(
            flow_link("http://127.0.0.1:4433", "f"),
            "http://127.0.0.1:4433/self-service/recovery?flow=f"
        );
    }

    #[test]
    fn only_absolute_http_bases_are_usable() {
        for good in [
            "https://id.example/auth",
            "http://127.0.0.1:4433",
            "http://[::1]:4433/",
            "https://xn--bcher-kva.example.",
        ] {
            assert!(is_usable_base(good), "{good}");
        }
        for bad in [
            "",
            "id.example",
            "https://",
            "ftp://x",
            "https://x?y=1",
            "https://x y",
            // Found by the fuzz target: a host no URL parser takes.
            "https://<<<<",
            "http://XN--ssssssssssssss",
            "https://bücher.example",
            "https://ann@id.example",
            "https://1.2.3.999",
            "https://id.example:99999",
            "https://id.example:",
            "http://[::1",
        ] {
            assert!(!is_usable_base(bad), "{bad}");
        }
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            /// A link on any usable base starts with that base (less its
            /// trailing slashes) and carries the flow and token verbatim as
            /// its only query: nothing of the base leaks into the query.
            #[test]
            fn links_keep_their_base_and_their_query(
                host in "[a-z0-9.-]{1,30}",
                path in "(/[a-z0-9._~-]{0,10}){0,3}/*",
                flow in "[0-9a-f-]{36}",
                token in "[A-Za-z0-9_-]{43}",
            ) {
                let base = format!("https://{host}{path}");
                prop_assume!(is_usable_base(&base));
                let link = token_link(&base, &flow, &token);
                let expected = format!("{}/self-service/recovery?flow={flow}&token={token}", base.trim_end_matches('/'));
                prop_assert_eq!(&link, &expected);
                prop_assert_eq!(link.matches('?').count(), 1);
                prop_assert_eq!(flow_link(&base, &flow), format!("{}/self-service/recovery?flow={flow}", base.trim_end_matches('/')));
            }

            /// A base with a query, fragment, space or control character is
            /// never usable: it would garble what follows it.
            #[test]
            fn bases_that_would_garble_a_link_are_refused(
                host in "[a-z]{1,10}",
                bad in prop::sample::select(vec!['?', '#', ' ', '\n', '\r', '\t']),
            ) {
                let base = format!("https://{host}{bad}x");
                prop_assert!(!is_usable_base(&base));
            }
        }
    }
}
