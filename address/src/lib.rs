//! An email address in its one normal form, and the keyed hash of it that a
//! credential, a session and an assertion remember: written once, so that
//! the component, the backends' lookups and uniqueness, the rate limits and
//! the change notices agree on when two spellings are one mailbox.
//!
//! ```
//! use reclaim_address::{address_key, normal_form, still_addressed};
//!
//! // The Kelvin sign, a fullwidth letter and an IDN are one mailbox each.
//! assert_eq!(normal_form("U@\u{212A}example.com"), normal_form("u@kexample.com"));
//! assert_eq!(normal_form("v@\u{FF45}xample.com"), "v@example.com");
//! assert_eq!(normal_form("W@Bücher.example"), "w@xn--bcher-kva.example");
//!
//! let secret = b"a-hashing-secret-of-at-least-32-bytes";
//! let key = address_key(secret, "Ann@Example.com");
//! assert!(still_addressed(&[secret], Some(&key), Some("ann@example.com")));
//! assert!(!still_addressed(&[secret], Some(&key), Some("bob@example.com")));
//! ```

use hmac::{Hmac, Mac};
use sha2::Sha256;
use unicode_normalization::UnicodeNormalization;

/// `address` as Reclaim compares addresses: NFKC (so compatibility forms
/// such as the Kelvin sign or fullwidth letters are their plain letters),
/// the local part in Unicode lower case, and the domain in its ASCII form
/// (UTS #46 ToASCII, which also folds its case). A domain that has no
/// ASCII form keeps its lower-cased Unicode one; text without an `@` is
/// lower-cased whole. Surrounding white space is dropped.
pub fn normal_form(address: &str) -> String {
    let composed: String = address.trim().nfkc().collect();
    let Some((local, domain)) = composed.rsplit_once('@') else {
        return fold(&composed);
    };
    let domain = idna::domain_to_ascii(domain).unwrap_or_else(|_| fold(domain));
    format!("{}@{domain}", fold(local))
}

/// Unicode lower case, composed again (lower-casing can decompose).
fn fold(text: &str) -> String {
    text.to_lowercase().nfkc().collect()
}

/// The identity's address, if it has one: a directory may answer an empty
/// string for none.
pub fn present(address: Option<&str>) -> Option<&str> {
    address.filter(|a| !a.trim().is_empty())
}

/// Gives the identities in `pending` (pk and address, lowest pk first:
/// those stored before the normal form, or by a host that computes none)
/// their address's normal form: `store` stores each of the pairs it is
/// given unless another identity has that form already, and answers the
/// pks it stored. Answers the pks that share their form with another and
/// so keep none (the later of two in `pending`, or one whose form was
/// taken): picking either for the address could mail one person's link to
/// another, so a twin is not found by it until one's address changes.
pub fn fill_normal_forms<E>(
    pending: impl IntoIterator<Item = (i64, String)>,
    store: impl FnOnce(&[(i64, String)]) -> Result<Vec<i64>, E>,
) -> Result<Vec<i64>, E> {
    let mut seen = std::collections::HashSet::new();
    let (mut forms, mut twins) = (Vec::new(), Vec::new());
    for (pk, email) in pending {
        let Some(address) = present(Some(&email)) else {
            continue;
        };
        let normal = normal_form(address);
        if seen.insert(normal.clone()) {
            forms.push((pk, normal));
        } else {
            twins.push(pk);
        }
    }
    let stored: std::collections::HashSet<i64> = store(&forms)?.into_iter().collect();
    twins.extend(
        forms
            .iter()
            .map(|(pk, _)| *pk)
            .filter(|pk| !stored.contains(pk)),
    );
    twins.sort_unstable();
    Ok(twins)
}

/// HMAC-SHA256 of the address's normal form, keyed by `secret`, as
/// lower-case hex cut to its first 128 bits: what a credential, a session
/// and an assertion remember of the address they were issued for.
pub fn address_key(secret: &[u8], address: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(b"reclaim/address");
    mac.update(&[0]);
    mac.update(normal_form(address).as_bytes());
    let digest = mac.finalize().into_bytes();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `current` (the identity's address now) is the address `stored`
/// was made for, under any of `secrets` (so that rotation keeps what was
/// issued before it). No address then and none now match; either alone
/// does not. Compared in constant time.
pub fn still_addressed<S: AsRef<[u8]>>(
    secrets: &[S],
    stored: Option<&str>,
    current: Option<&str>,
) -> bool {
    use subtle::ConstantTimeEq;
    match (stored, present(current)) {
        (None, None) => true,
        (Some(stored), Some(address)) => secrets.iter().fold(false, |found, secret| {
            let candidate = address_key(secret.as_ref(), address);
            found | bool::from(candidate.as_bytes().ct_eq(stored.as_bytes()))
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_mailbox_have_one_normal_form() {
        for (a, b) in [
            ("u@kexample.com", "u@\u{212A}example.com"),
            ("v@example.com", "v@\u{FF45}xample.com"),
            ("w@bücher.example", "w@xn--bcher-kva.example"),
            ("Ann@Example.COM", " ann@example.com "),
            ("JÖRG@example.com", "jörg@example.com"),
            // Composed and decomposed umlauts.
            ("j\u{F6}rg@example.com", "jo\u{308}rg@example.com"),
        ] {
            assert_eq!(normal_form(a), normal_form(b), "{a} and {b}");
        }
    }

    #[test]
    fn different_mailboxes_keep_different_normal_forms() {
        for (a, b) in [
            ("ann@example.com", "anne@example.com"),
            ("ann@example.com", "ann@example.org"),
            ("a.nn@example.com", "ann@example.com"),
        ] {
            assert_ne!(normal_form(a), normal_form(b), "{a} and {b}");
        }
    }

    #[test]
    fn the_first_of_two_spellings_keeps_the_normal_form() {
        let pending = [
            (1, "U@kexample.com".to_string()),
            (2, "u@\u{212A}example.com".to_string()),
            (3, "taken@example.com".to_string()),
            (4, " ".to_string()),
            (5, "w@bücher.example".to_string()),
        ];
        let mut offered = Vec::new();
        let twins = fill_normal_forms(pending, |forms| {
            offered = forms.to_vec();
            // `taken@` is another identity's already.
            Ok::<_, ()>(
                forms
                    .iter()
                    .map(|(pk, _)| *pk)
                    .filter(|pk| *pk != 3)
                    .collect(),
            )
        })
        .unwrap();
        assert_eq!(
            offered,
            [
                (1, "u@kexample.com".to_string()),
                (3, "taken@example.com".to_string()),
                (5, "w@xn--bcher-kva.example".to_string()),
            ]
        );
        assert_eq!(twins, [2, 3]);
    }

    #[test]
    fn the_key_follows_the_normal_form_and_the_secret() {
        let (one, two) = (b"one-secret", b"two-secret");
        assert_eq!(
            address_key(one, "u@\u{212A}example.com"),
            address_key(one, "U@kexample.com")
        );
        assert_ne!(
            address_key(one, "u@example.com"),
            address_key(two, "u@example.com")
        );
        assert_eq!(address_key(one, "u@example.com").len(), 32);
        let stored = address_key(two, "u@example.com");
        assert!(still_addressed(
            &[one, two],
            Some(&stored),
            Some("U@example.com")
        ));
        assert!(!still_addressed(
            &[one],
            Some(&stored),
            Some("u@example.com")
        ));
        assert!(still_addressed::<&[u8]>(&[], None, Some("  ")));
        assert!(!still_addressed(&[one], None, Some("u@example.com")));
        assert!(!still_addressed(&[one], Some(&stored), None));
    }
}
