//! Limits on self-service requests, per address, per client and per
//! identity, and on the flows a client starts. The
//! counters are the backend's ([`crate::storage::RateLimits`]), so every
//! process sharing it counts against the same limits; this file decides
//! what is counted: `limit` requests may come at once, after that one more
//! each `window / limit`.
//!
//! Clients are keyed by their IPv4 address or their IPv6 /64 (one
//! subscriber's network: rotating addresses inside it doesn't help), and
//! found behind trusted proxies through `X-Forwarded-For`.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use ipnet::IpNet;

use crate::storage::{Pending, Quota, RateLimits};

/// Counts a self-service request for `email` from the request's client
/// (the pages' form and the flow API alike): `Err(wait)` when over a limit.
/// The address is counted keyed and in its one normal form, so every
/// spelling of a mailbox counts against one allowance and the stored key
/// confirms no guess.
pub async fn count_request(
    app: &super::AppState,
    peer: std::net::SocketAddr,
    headers: &axum::http::HeaderMap,
    email: &str,
) -> anyhow::Result<Result<(), Duration>> {
    let secret = app
        .config
        .settings
        .secrets
        .first()
        .map_or(&[][..], |s| s.bytes());
    let address = reclaim_address::address_key(secret, email);
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let client = client_ip(peer.ip(), forwarded, &app.config.trusted_proxies);
    app.limiter
        .check(&*app.backend, client, &address, app.now_nanos())
        .await
}

/// Counts a flow of the flow API about to be started by the request's
/// client: `Err(wait)` when over its allowance. Every flow is a row until
/// it expires, so starting them is what an unauthenticated client could
/// fill the store with.
pub async fn count_flow(
    app: &super::AppState,
    peer: std::net::SocketAddr,
    headers: &axum::http::HeaderMap,
) -> anyhow::Result<Result<(), Duration>> {
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let client = client_ip(peer.ip(), forwarded, &app.config.trusted_proxies);
    app.limiter
        .admit_flow(&*app.backend, client, app.now_nanos())
        .await
}

/// How often keys that have fully recovered are forgotten.
pub const FORGET_EVERY: Duration = Duration::from_secs(60);

/// The per-address (and per-identity) and per-client quotas.
pub struct RateLimiter {
    per_address: Quota,
    per_client: Quota,
    flows_per_client: Quota,
}

/// The key of an identity's own allowance.
fn identity_key(identity_id: &str) -> String {
    format!("identity:{identity_id}")
}

impl RateLimiter {
    pub fn new(per_address: u32, per_client: u32, flows_per_client: u32, window: Duration) -> Self {
        let quota = |limit| Quota { limit, window };
        Self {
            per_address: quota(per_address),
            per_client: quota(per_client),
            flows_per_client: quota(flows_per_client),
        }
    }

    /// Counts a flow started by `client`, under its own allowance (a page
    /// visit is not a request for a mail).
    pub fn admit_flow(
        &self,
        counters: &dyn RateLimits,
        client: IpAddr,
        now: u64,
    ) -> Pending<Result<(), Duration>> {
        let key = format!("flows:{}", client_key(client));
        counters.admit(&[(key, self.flows_per_client)], now)
    }

    /// Counts a request of `client` for the address whose keyed hash is
    /// `address_key` (`reclaim_address::address_key`: a dump of the
    /// counters confirms no guessed address);
    /// refused, it says how long until one would pass. The client is
    /// checked first, so a client that is over its limit can't use up an
    /// address's allowance (and lock its owner out); a request refused for
    /// its address still counts against the client that sent it.
    pub fn check(
        &self,
        counters: &dyn RateLimits,
        client: IpAddr,
        address_key: &str,
        now: u64,
    ) -> Pending<Result<(), Duration>> {
        let keys = [
            (format!("client:{}", client_key(client)), self.per_client),
            (format!("address:{address_key}"), self.per_address),
        ];
        counters.admit(&keys, now)
    }

    /// Counts a request about to be served for the identity its address
    /// found, under the per-address quota: every address that reaches one
    /// identity (spellings the platform's own query matches that are
    /// different mailboxes in the normal form, `ann+1@`, `ann+2@`...)
    /// shares one allowance. Refused, the request is dropped unserved; its
    /// requester got the answer everyone gets long before.
    pub fn admit_identity(
        &self,
        counters: &dyn RateLimits,
        identity_id: &str,
        now: u64,
    ) -> Pending<Result<(), Duration>> {
        counters.admit(&[(identity_key(identity_id), self.per_address)], now)
    }
}

/// The key of a client: its IPv4 address, or its IPv6 /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

/// The client behind `peer`: `peer` itself, unless it is a trusted proxy;
/// then the nearest address in `X-Forwarded-For` that is not one (each
/// proxy appends the address it saw, so only the addresses our own proxies
/// appended can be believed, read from the right).
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(chain) = forwarded_for else {
        return peer;
    };
    let mut client = peer;
    for hop in chain.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            // A hop we can't read: stop at the last one we could.
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::{Location, open};
    use crate::storage::Backend;

    fn addr(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// A limiter over fresh counters in memory.
    struct Limited(RateLimiter, std::sync::Arc<dyn Backend>);

    impl Limited {
        fn new(per_address: u32, per_client: u32, window: Duration) -> Self {
            let counters = open(&Location::Memory).unwrap();
            Self(
                RateLimiter::new(per_address, per_client, 100, window),
                counters,
            )
        }

        fn check(&self, ip: &str, address: &str) -> Result<(), Duration> {
            self.0.check(&*self.1, addr(ip), address, 0).wait().unwrap()
        }
    }

    #[test]
    fn a_burst_of_the_limit_passes_and_the_next_waits_its_share_of_the_window() {
        let limits = Limited::new(5, 20, Duration::from_secs(300));
        let ann = "ann";
        for _ in 0..5 {
            assert!(limits.check("192.0.2.1", ann).is_ok());
        }
        let wait = limits.check("192.0.2.2", ann).unwrap_err();
        assert!(
            wait > Duration::from_secs(50) && wait <= Duration::from_secs(60),
            "{wait:?}"
        );
        assert!(
            limits.check("192.0.2.2", "bob").is_ok(),
            "addresses are separate"
        );
    }

    #[test]
    fn every_address_of_one_identity_shares_its_allowance() {
        let limits = Limited::new(2, 100, Duration::from_secs(60));
        let admit = |id: &str| limits.0.admit_identity(&*limits.1, id, 0).wait().unwrap();
        assert!(limits.check("192.0.2.1", "ann+1").is_ok());
        assert!(admit("ann").is_ok());
        assert!(limits.check("192.0.2.1", "ann+2").is_ok());
        assert!(admit("ann").is_ok());
        assert!(
            limits.check("192.0.2.1", "ann+3").is_ok(),
            "a new address passes"
        );
        assert!(
            admit("ann").is_err(),
            "but not its identity's third request"
        );
        assert!(admit("bob").is_ok());
    }

    #[test]
    fn a_client_over_its_limit_does_not_use_up_the_address() {
        let limits = Limited::new(2, 1, Duration::from_secs(60));
        let victim = "victim";
        assert!(limits.check("198.51.100.1", victim).is_ok());
        for _ in 0..10 {
            assert!(limits.check("198.51.100.1", victim).is_err());
        }
        assert!(
            limits.check("198.51.100.2", victim).is_ok(),
            "the refused requests were not counted against the address"
        );
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64() {
        let limits = Limited::new(100, 2, Duration::from_secs(60));
        assert!(limits.check("2001:db8:1:2::1", "a1").is_ok());
        assert!(limits.check("2001:db8:1:2:ffff::9", "a2").is_ok());
        assert!(limits.check("2001:db8:1:2:abcd::7", "a3").is_err());
        assert!(limits.check("2001:db8:1:3::1", "a4").is_ok());
        assert_eq!(client_key(addr("::ffff:192.0.2.9")), addr("192.0.2.9"));
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let chain = Some("203.0.113.9, 198.51.100.7, 10.0.0.2");
        assert_eq!(
            client_ip(addr("192.0.2.1"), chain, &trusted),
            addr("192.0.2.1")
        );
        assert_eq!(
            client_ip(addr("10.0.0.1"), chain, &trusted),
            addr("198.51.100.7")
        );
        assert_eq!(
            client_ip(addr("10.0.0.1"), None, &trusted),
            addr("10.0.0.1")
        );
        assert_eq!(
            client_ip(addr("10.0.0.1"), Some("junk"), &trusted),
            addr("10.0.0.1")
        );
    }

    #[test]
    fn idle_keys_are_forgotten() {
        let window = Duration::from_millis(10);
        let limits = Limited::new(5, 20, window);
        for i in 0..100u8 {
            let _ = limits.check(&format!("192.0.2.{i}"), &format!("a{i}"));
        }
        assert_eq!(
            limits.1.forget_idle(0).unwrap(),
            200,
            "none has recovered yet"
        );
        let later = crate::clock::duration_nanos(window * 3);
        assert_eq!(limits.1.forget_idle(later).unwrap(), 0);
    }
}
