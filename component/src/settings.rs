//! The settings an operation runs under: the host's `settings` record with
//! every absent tunable given its default and every value checked. This is
//! the one place a default or a bound of a tunable lives; hosts pass what
//! their operator configured and nothing more.

use crate::bindings::reclaim::recovery::{settings::Settings, types::ErrorKind};
use crate::errors::error;
use crate::links;
use crate::recovery::Outcome;

const SECOND_NS: u64 = 1_000_000_000;
const HOUR_NS: u64 = 3600 * SECOND_NS;

/// Shortest hashing secret accepted: as long as the HMAC-SHA256 output.
const MIN_SECRET_LEN: usize = 32;

/// Lifespan of a credential when the caller names none (Kratos' default).
pub const DEFAULT_LIFESPAN_NS: u64 = HOUR_NS;
/// Longest lifespan a caller may ask for.
pub const DEFAULT_MAX_LIFESPAN_NS: u64 = 24 * HOUR_NS;
/// Whether an administrator's new credential revokes the older ones.
pub const DEFAULT_REVOKE_OLDER_LINKS: bool = true;
/// Wrong codes a flow survives (Kratos' default).
pub const DEFAULT_MAX_CODE_ATTEMPTS: u32 = reclaim_rules::DEFAULT_MAX_CODE_ATTEMPTS;
/// Wrong codes an identity survives within the window.
pub const DEFAULT_MAX_CODE_ATTEMPTS_PER_IDENTITY: u32 = 10;
/// The window of the per-identity count.
pub const DEFAULT_CODE_ATTEMPT_WINDOW_NS: u64 = HOUR_NS;

/// The settings with their defaults applied, checked.
#[derive(Clone, Debug)]
pub struct Effective {
    pub public_url: String,
    pub secrets: Vec<Vec<u8>>,
    pub default_lifespan_ns: u64,
    pub max_lifespan_ns: u64,
    pub revoke_older_links: bool,
    pub max_code_attempts: u32,
    pub max_code_attempts_per_identity: u32,
    pub code_attempt_window_ns: u64,
    pub notify_unknown_recipients: bool,
}

impl Effective {
    /// `given` with its defaults, or `misconfigured` naming what is wrong.
    pub fn of(given: Settings) -> Outcome<Self> {
        let misconfigured = |message: &str| Err(error(ErrorKind::Misconfigured, message));
        if given.secrets.is_empty() || given.secrets.iter().any(|s| s.len() < MIN_SECRET_LEN) {
            return misconfigured(&format!(
                "at least one hashing secret is required, each of at least {MIN_SECRET_LEN} bytes"
            ));
        }
        if !links::is_usable_base(&given.public_url) {
            return misconfigured(
                "the public URL must be an absolute http(s) URL without query or fragment",
            );
        }
        let settings = Self {
            default_lifespan_ns: given.default_lifespan_ns.unwrap_or(DEFAULT_LIFESPAN_NS),
            max_lifespan_ns: given.max_lifespan_ns.unwrap_or(DEFAULT_MAX_LIFESPAN_NS),
            revoke_older_links: given
                .revoke_older_links
                .unwrap_or(DEFAULT_REVOKE_OLDER_LINKS),
            max_code_attempts: given.max_code_attempts.unwrap_or(DEFAULT_MAX_CODE_ATTEMPTS),
            max_code_attempts_per_identity: given
                .max_code_attempts_per_identity
                .unwrap_or(DEFAULT_MAX_CODE_ATTEMPTS_PER_IDENTITY),
            code_attempt_window_ns: given
                .code_attempt_window_ns
                .unwrap_or(DEFAULT_CODE_ATTEMPT_WINDOW_NS),
            notify_unknown_recipients: given.notify_unknown_recipients.unwrap_or(false),
            public_url: given.public_url,
            secrets: given.secrets,
        };
        if settings.default_lifespan_ns == 0 || settings.max_lifespan_ns == 0 {
            return misconfigured("the lifespan and the maximum lifespan must be longer than zero");
        }
        if settings.default_lifespan_ns > settings.max_lifespan_ns {
            return misconfigured("the lifespan is longer than the maximum lifespan");
        }
        if !(1..=255).contains(&settings.max_code_attempts) {
            return misconfigured("max-code-attempts must be between 1 and 255");
        }
        if !(1..=10_000).contains(&settings.max_code_attempts_per_identity) {
            return misconfigured("max-code-attempts-per-identity must be between 1 and 10000");
        }
        if settings.code_attempt_window_ns == 0 {
            return misconfigured("the code attempt window must be longer than zero");
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given() -> Settings {
        Settings {
            public_url: "https://id.example.com".into(),
            default_lifespan_ns: None,
            max_lifespan_ns: None,
            secrets: vec![vec![7; 32]],
            revoke_older_links: None,
            max_code_attempts: None,
            max_code_attempts_per_identity: None,
            code_attempt_window_ns: None,
            notify_unknown_recipients: None,
        }
    }

    #[test]
    fn absent_tunables_take_kratos_defaults() {
        let s = Effective::of(given()).unwrap();
        assert_eq!(s.default_lifespan_ns, 3600 * SECOND_NS);
        assert_eq!(s.max_lifespan_ns, 24 * 3600 * SECOND_NS);
        assert!(s.revoke_older_links);
        assert_eq!(s.max_code_attempts, 5);
        assert_eq!(s.max_code_attempts_per_identity, 10);
        assert_eq!(s.code_attempt_window_ns, 3600 * SECOND_NS);
        assert!(!s.notify_unknown_recipients);
    }

    #[test]
    fn given_tunables_win_over_defaults() {
        let mut g = given();
        g.default_lifespan_ns = Some(60 * SECOND_NS);
        g.max_code_attempts = Some(2);
        g.notify_unknown_recipients = Some(true);
        let s = Effective::of(g).unwrap();
        assert_eq!(s.default_lifespan_ns, 60 * SECOND_NS);
        assert_eq!(s.max_code_attempts, 2);
        assert!(s.notify_unknown_recipients);
    }

    #[test]
    fn out_of_bounds_tunables_are_misconfigured() {
        let cases: [fn(&mut Settings); 7] = [
            |g| g.max_code_attempts = Some(0),
            |g| g.max_code_attempts = Some(256),
            |g| g.max_code_attempts_per_identity = Some(10_001),
            |g| g.default_lifespan_ns = Some(25 * HOUR_NS),
            |g| g.max_lifespan_ns = Some(0),
            |g| g.code_attempt_window_ns = Some(0),
            |g| g.secrets = vec![vec![1; 31]],
        ];
        for change in cases {
            let mut g = given();
            change(&mut g);
            let refused = Effective::of(g).unwrap_err();
            assert_eq!(refused.kind, ErrorKind::Misconfigured);
        }
    }
}
