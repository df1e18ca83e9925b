//! CSRF tokens for the self-service forms, as a signed double submit: a
//! random cookie (`SameSite=Strict`, `HttpOnly`) and, in each form, an
//! HMAC of it under a key derived from the hashing secret. A forged form
//! can't carry the token (another site can neither read the cookie nor
//! compute the HMAC), and no server-side state is kept, so any replica
//! sharing the secret accepts it.

use hmac::{Hmac, Mac};
use http::HeaderMap;
use http::header::{COOKIE, ORIGIN};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The cookie's name.
pub const COOKIE_NAME: &str = "reclaim_csrf";

/// Issues and checks tokens.
pub struct Csrf {
    key: [u8; 32],
}

impl Csrf {
    /// A key of its own derived from `secret`, so a CSRF token never says
    /// anything about the keys credentials are hashed under.
    pub fn new(secret: &[u8]) -> Self {
        let mut derive = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
        derive.update(b"reclaim csrf key v1");
        Self {
            key: derive.finalize().into_bytes().into(),
        }
    }

    fn sign(&self, cookie: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(cookie.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The token for a form on a page answering `headers`, and the cookie to
    /// set when the request carried none.
    pub fn issue(&self, headers: &HeaderMap) -> Result<(String, Option<String>), getrandom::Error> {
        if let Some(cookie) = cookie_value(headers) {
            return Ok((self.sign(&cookie), None));
        }
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw)?;
        let cookie = hex::encode(raw);
        Ok((self.sign(&cookie), Some(cookie)))
    }

    /// The token of the request's cookie, if it carries one (what a page
    /// it reads was issued with).
    pub fn cookie_token(&self, headers: &HeaderMap) -> Option<String> {
        cookie_value(headers).map(|cookie| self.sign(&cookie))
    }

    /// Whether the form's `token` belongs to the request's cookie.
    pub fn verify(&self, headers: &HeaderMap, token: Option<&str>) -> bool {
        match (cookie_value(headers), token) {
            (Some(cookie), Some(token)) => {
                bool::from(self.sign(&cookie).as_bytes().ct_eq(token.as_bytes()))
            }
            _ => false,
        }
    }
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    cookie(headers, COOKIE_NAME).filter(|v| is_hex_256(v))
}

/// Whether a form post comes from our own pages: it carries the CSRF token
/// of the browser's cookie, and a browser's `Origin` (when it sends one)
/// must be `public_origin`. `null` is refused: our pages send
/// `Referrer-Policy: same-origin`, under which browsers name our origin on
/// our own forms, so only a page that hid where it came from sends `null`.
/// `Sec-Fetch-Site`, where a browser sends it, must say the post came from
/// our own origin.
pub fn from_our_pages(
    csrf: &Csrf,
    public_origin: &str,
    headers: &HeaderMap,
    token: Option<&str>,
) -> bool {
    let origin_ours = headers
        .get(ORIGIN)
        .is_none_or(|o| o.to_str().is_ok_and(|o| o == public_origin));
    let fetched_from_us = headers
        .get("sec-fetch-site")
        .is_none_or(|v| matches!(v.to_str(), Ok("same-origin" | "none")));
    origin_ours && fetched_from_us && csrf.verify(headers, token)
}

/// The value of cookie `name`, if the request carries it.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_string())
}

/// Whether `value` is what our cookies' secrets are: 256 bits in hex.
pub fn is_hex_256(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The `Set-Cookie` value of one of our cookies: for `path` alone,
/// `HttpOnly`, `SameSite=Strict`, `Secure` when the public URL is https;
/// with `max_age` in seconds, or for the browser's session.
pub fn private_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: Option<u64>,
    secure: bool,
) -> String {
    let secure = if secure { "; Secure" } else { "" };
    let max_age = max_age
        .map(|s| format!("; Max-Age={s}"))
        .unwrap_or_default();
    format!("{name}={value}; Path={path}{max_age}; HttpOnly; SameSite=Strict{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with_cookie(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_str(&format!("{COOKIE_NAME}={value}")).unwrap(),
        );
        headers
    }

    #[test]
    fn a_token_passes_only_with_the_cookie_it_was_issued_for() {
        let csrf = Csrf::new(b"a-hashing-secret-of-at-least-32-bytes");
        let (token, cookie) = csrf.issue(&HeaderMap::new()).unwrap();
        let cookie = cookie.expect("a new cookie for a request without one");
        assert!(csrf.verify(&with_cookie(&cookie), Some(&token)));
        assert!(!csrf.verify(&with_cookie(&"0".repeat(64)), Some(&token)));
        assert!(!csrf.verify(&HeaderMap::new(), Some(&token)));
        assert!(!csrf.verify(&with_cookie(&cookie), None));
        let other = Csrf::new(b"another-hashing-secret-of-32-bytes!!");
        assert!(!other.verify(&with_cookie(&cookie), Some(&token)));
        let (again, none) = csrf.issue(&with_cookie(&cookie)).unwrap();
        assert_eq!((again, none), (token, None), "the cookie is kept");
    }
}
