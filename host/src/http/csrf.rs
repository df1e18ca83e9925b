//! CSRF tokens for the self-service forms, as a signed double submit: a
//! random cookie (`SameSite=Strict`, `HttpOnly`) and, in each form, an
//! HMAC of it under a key derived from the hashing secret. A forged form
//! can't carry the token (another site can neither read the cookie nor
//! compute the HMAC), and no server-side state is kept, so any replica
//! sharing the secret accepts it.

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
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
    super::cookie(headers, COOKIE_NAME).filter(|v| super::is_hex_256(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use axum::http::header::COOKIE;

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
