//! Passwords set at the end of a recovery, stored as Argon2id hashes.

use anyhow::{Result, anyhow};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// Shortest password accepted (NIST SP 800-63B's minimum).
pub const MIN_LENGTH: usize = 8;
/// Longest password accepted: long enough for any passphrase, short enough
/// that hashing can't be used to exhaust the server.
pub const MAX_LENGTH: usize = 1024;

/// Why a new password was refused; the text is shown to the person.
///
/// Common and breached passwords are refused with zxcvbn (NIST SP 800-63B
/// 5.1.1.2 asks for a blocklist): its frequency lists, taken from leaked
/// password sets and common words and names, ship in the binary, and it also
/// catches the variations a plain list misses (`P@ssw0rd1`, `qwerty123`,
/// dates, repeats). A password it estimates at 10^6 guesses or fewer is
/// refused; anything harder passes, with no composition rules.
pub fn check_new(password: &str, confirmation: &str) -> Result<(), &'static str> {
    if password != confirmation {
        return Err("The two passwords do not match.");
    }
    if password.trim().is_empty() {
        return Err("The password can't be only spaces.");
    }
    let chars = password.chars().count();
    if chars < MIN_LENGTH {
        return Err("The password must be at least 8 characters long.");
    }
    if chars > MAX_LENGTH {
        return Err("The password must be at most 1024 characters long.");
    }
    if zxcvbn::zxcvbn(password, &[]).score() < zxcvbn::Score::Two {
        return Err(
            "This password is too common: it is on lists of breached passwords or easy to guess. Choose another.",
        );
    }
    Ok(())
}

/// An Argon2id PHC string with a fresh salt.
pub fn hash(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow!("encoding a salt: {e}"))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow!("hashing the password: {e}"))?
        .to_string())
}

/// Whether `password` matches the PHC string `stored`.
pub fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify_only_the_right_password() {
        let stored = hash("correct horse battery").unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", &stored));
        assert!(!verify("correct horse batterY", &stored));
        assert_ne!(stored, hash("correct horse battery").unwrap(), "salted");
    }

    #[test]
    fn new_passwords_must_match_and_be_long_enough() {
        assert!(check_new("long enough", "long enough").is_ok());
        assert!(check_new("short", "short").is_err());
        assert!(check_new("long enough", "long enougH").is_err());
    }

    #[test]
    fn whitespace_and_common_passwords_are_refused() {
        for bad in [
            "          ",
            "\t\t\t\t\t\t\t\t",
            "password",
            "password123",
            "P@ssw0rd1",
            "qwertyuiop",
            "iloveyou",
            "12345678",
            "11111111",
            "letmein1",
        ] {
            assert!(check_new(bad, bad).is_err(), "{bad:?} was accepted");
        }
        for good in [
            "a new password",
            "correct horse battery staple 7",
            "Tq8#vLz2mPw",
        ] {
            assert_eq!(check_new(good, good), Ok(()), "{good:?}");
        }
    }
}
