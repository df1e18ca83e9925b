//! Hand-off assertions: the single-use secret a redemption hands to the
//! platform instead of a password form. [`take`] holds the rule of where an
//! assertion stands (used, then expired, then unknown); backends only store
//! rows and use one with a guarded write.

use anyhow::Result;

use crate::events::Method;

/// An assertion to store, under a keyed hash of its secret.
#[derive(Clone, Debug)]
pub struct NewAssertion {
    pub key: String,
    pub identity_id: String,
    pub method: Method,
    pub flow_id: String,
    /// When the credential was redeemed.
    pub redeemed_at: u64,
    pub expires_at: u64,
    /// The address key of the credential that was redeemed: the assertion
    /// is redeemable only while the identity is still at that address.
    pub address_key: Option<String>,
}

/// A stored assertion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssertionRow {
    pub identity_id: String,
    pub method: Method,
    pub flow_id: String,
    pub redeemed_at: u64,
    pub expires_at: u64,
    pub used_at: Option<u64>,
    pub address_key: Option<String>,
}

/// Assertions inside a unit of work.
pub trait AssertionStore {
    fn open_assertion(&mut self, assertion: &NewAssertion) -> Result<()>;
    /// Marks the assertion with `key` used at `now` if it is unused and has
    /// not expired, in one guarded write: of any number of concurrent calls,
    /// one gets the row.
    fn use_assertion(&mut self, key: &str, now: u64) -> Result<Option<AssertionRow>>;
    /// The assertion with `key`, whatever its state.
    fn assertion(&mut self, key: &str) -> Result<Option<AssertionRow>>;
    /// Forgets assertions that expired before `before`; how many.
    fn purge_assertions(&mut self, before: u64) -> Result<u64>;
}

/// What an attempt to redeem an assertion found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Taken {
    /// This call used it.
    Redeemed(AssertionRow),
    Used,
    Expired,
    Unknown,
}

/// Redeems the assertion stored under any of `keys` (one per hashing
/// secret, newest first), once.
pub fn take(store: &mut dyn AssertionStore, keys: &[String], now: u64) -> Result<Taken> {
    for key in keys {
        if let Some(row) = store.use_assertion(key, now)? {
            return Ok(Taken::Redeemed(row));
        }
    }
    for key in keys {
        if let Some(row) = store.assertion(key)? {
            // Used wins over expired: a used one was redeemed by someone.
            return Ok(if row.used_at.is_some() {
                Taken::Used
            } else if row.expires_at <= now {
                Taken::Expired
            } else {
                // Lost a race to a write that the guard saw and this read
                // did not: as good as used.
                Taken::Used
            });
        }
    }
    Ok(Taken::Unknown)
}
