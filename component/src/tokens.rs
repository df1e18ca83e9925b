//! Secrets that prove control of an address: link tokens, codes and flow ids,
//! and the keyed hashes under which they are stored.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Bytes of CSPRNG output in a link token: 256 bits.
const TOKEN_BYTES: usize = 32;
/// Length of a link token in unpadded URL-safe base64.
pub const TOKEN_LEN: usize = 43;
/// Digits in a recovery code.
pub const CODE_DIGITS: usize = 6;
const CODE_SPACE: u32 = 1_000_000;
/// The largest multiple of `CODE_SPACE` that fits a u32: draws at or above it
/// are rejected, so every code is equally likely.
const CODE_DRAW_LIMIT: u32 = u32::MAX - (u32::MAX % CODE_SPACE);

/// A link token: 256 random bits, URL-safe.
pub fn draw_token(fill: &mut impl FnMut(&mut [u8])) -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A six-digit code, uniformly drawn.
pub fn draw_code(fill: &mut impl FnMut(&mut [u8])) -> String {
    loop {
        let mut bytes = [0u8; 4];
        fill(&mut bytes);
        let draw = u32::from_le_bytes(bytes);
        if draw < CODE_DRAW_LIMIT {
            return format!("{:0width$}", draw % CODE_SPACE, width = CODE_DIGITS);
        }
    }
}

/// A flow id: a random (version 4) UUID.
pub fn draw_flow_id(fill: &mut impl FnMut(&mut [u8])) -> String {
    let mut bytes = [0u8; 16];
    fill(&mut bytes);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// Whether `token` could be one of ours; anything else is not looked up.
pub fn is_token_shaped(token: &str) -> bool {
    token.len() == TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `code` is six ASCII digits.
pub fn is_code_shaped(code: &str) -> bool {
    code.len() == CODE_DIGITS && code.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `id` is a hyphenated UUID.
pub fn is_uuid(id: &str) -> bool {
    uuid::Uuid::try_parse(id).is_ok()
}

/// The storage key of a link token under one secret.
pub fn link_key(secret: &[u8], token: &str) -> String {
    keyed_hash(secret, &[b"reclaim/link", token.as_bytes()])
}

/// The storage key of a code under one secret; the flow id is part of the
/// message, so the same digits in two flows never share a key.
pub fn code_key(secret: &[u8], flow_id: &str, code: &str) -> String {
    keyed_hash(
        secret,
        &[b"reclaim/code", flow_id.as_bytes(), code.as_bytes()],
    )
}

/// HMAC-SHA256 over NUL-separated parts (none of them contains a NUL), as
/// lower-case hex.
fn keyed_hash(secret: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            mac.update(&[0]);
        }
        mac.update(part);
    }
    hex(&mac.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]])
        .map(char::from)
        .collect()
}

/// Whether `stored` equals any candidate, without an early exit that would
/// let response times reveal how much of a key matched.
pub fn matches_any(stored: &str, candidates: &[String]) -> bool {
    candidates
        .iter()
        .fold(subtle::Choice::from(0), |found, candidate| {
            found | stored.as_bytes().ct_eq(candidate.as_bytes())
        })
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> impl FnMut(&mut [u8]) {
        let mut next = 0u8;
        move |buf: &mut [u8]| {
            for b in buf {
                *b = next;
                next = next.wrapping_add(1);
            }
        }
    }

    #[test]
    fn tokens_carry_256_bits_in_url_safe_characters() {
        let token = draw_token(&mut counter());
        assert_eq!(token.len(), TOKEN_LEN);
        assert!(is_token_shaped(&token));
        let mut os = |buf: &mut [u8]| getrandom::fill(buf).unwrap();
        assert_ne!(draw_token(&mut os), draw_token(&mut os));
    }

    #[test]
    fn codes_are_six_digits_and_draws_above_the_limit_are_rejected() {
        let mut draws = [u32::MAX, CODE_DRAW_LIMIT, 42].into_iter();
        let mut fill = |buf: &mut [u8]| buf.copy_from_slice(&draws.next().unwrap().to_le_bytes());
        assert_eq!(draw_code(&mut fill), "000042");
        assert!(is_code_shaped("000042"));
        assert!(!is_code_shaped("12345a") && !is_code_shaped("1234567"));
    }

    #[test]
    fn codes_are_uniform_over_the_last_digit() {
        let mut os = |buf: &mut [u8]| getrandom::fill(buf).unwrap();
        let mut counts = [0u32; 10];
        for _ in 0..20_000 {
            let code = draw_code(&mut os);
            counts[usize::from(code.as_bytes()[5] - b'0')] += 1;
        }
        // Each digit expects 2,000; 5 standard deviations is about 212.
        assert!(
            counts.iter().all(|c| (1_788..=2_212).contains(c)),
            "{counts:?}"
        );
    }

    #[test]
    fn flow_ids_are_version_4_uuids() {
        let id = draw_flow_id(&mut counter());
        assert!(is_uuid(&id));
        assert_eq!(id.as_bytes()[14], b'4');
    }

    #[test]
    fn keys_depend_on_secret_kind_and_flow() {
        let token = "t".repeat(TOKEN_LEN);
        assert_ne!(link_key(b"one", &token), link_key(b"two", &token));
        assert_ne!(
            code_key(b"one", "f1", "123456"),
            code_key(b"one", "f2", "123456")
        );
        assert_eq!(link_key(b"one", &token).len(), 64);
    }

    #[test]
    fn any_candidate_matches_in_constant_time() {
        let candidates = vec!["aa".to_string(), "bb".to_string()];
        assert!(matches_any("bb", &candidates));
        assert!(!matches_any("cc", &candidates));
        assert!(!matches_any("b", &candidates));
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn from(bytes: Vec<u8>) -> impl FnMut(&mut [u8]) {
            let mut source = bytes.into_iter().cycle();
            move |buffer: &mut [u8]| {
                buffer
                    .iter_mut()
                    .for_each(|b| *b = source.next().unwrap_or(0))
            }
        }

        proptest! {
            /// Whatever the random bytes, a token is token-shaped, and two
            /// different draws are two different tokens.
            #[test]
            fn tokens_are_shaped_and_distinct_draws_differ(
                a in proptest::collection::vec(any::<u8>(), 32),
                b in proptest::collection::vec(any::<u8>(), 32),
            ) {
                let (ta, tb) = (draw_token(&mut from(a.clone())), draw_token(&mut from(b.clone())));
                prop_assert!(is_token_shaped(&ta) && is_token_shaped(&tb));
                prop_assert_eq!(ta == tb, a == b);
            }

            /// Codes are six digits whatever the draws.
            #[test]
            fn codes_are_six_digits(bytes in proptest::collection::vec(any::<u8>(), 1..64)) {
                prop_assert!(is_code_shaped(&draw_code(&mut from(bytes))));
            }

            /// A stored key depends on the secret and on every character of
            /// the token; a candidate list matches exactly when it holds it.
            #[test]
            fn keys_bind_the_secret_and_the_token(
                token in "[A-Za-z0-9_-]{43}",
                other in "[A-Za-z0-9_-]{43}",
                secret in proptest::collection::vec(any::<u8>(), 32..64),
            ) {
                let key = link_key(&secret, &token);
                prop_assert_eq!(&key, &link_key(&secret, &token));
                prop_assert_ne!(&key, &link_key(&[secret.as_slice(), b"x"].concat(), &token));
                prop_assert_eq!(key == link_key(&secret, &other), token == other);
                prop_assert!(matches_any(&key, &[link_key(b"another-secret-another-secret-xx", &token), key.clone()]));
                prop_assert_eq!(matches_any(&key, &[link_key(&secret, &other)]), token == other);
            }
        }
    }
}
