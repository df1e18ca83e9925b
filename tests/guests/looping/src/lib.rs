//! A recovery component that never answers: every export spins, touching
//! nothing, until the host's epoch deadline stops it. Only the
//! `durability` tests load it, to prove that a guest stuck in its own code
//! (not in a template) is stopped, writes nothing, and leaves the host
//! serving.

mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "recovery-engine",
    });
}

use bindings::exports::reclaim::recovery::recovery::{
    Guest, Mailed, RecoveryCode, RecoveryLink, Redemption,
};
use bindings::reclaim::recovery::types::{IdentityRef, RecoveryError};

// Natively (for `cargo clippy --workspace`) nothing exports it.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Spinning;

/// Runs forever; `black_box` keeps the optimiser from proving it.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn spin() -> ! {
    let mut turns: u64 = 0;
    loop {
        turns = std::hint::black_box(turns.wrapping_add(1));
    }
}

impl Guest for Spinning {
    fn create_link(
        _: IdentityRef,
        _: Option<String>,
        _: Option<String>,
    ) -> Result<RecoveryLink, RecoveryError> {
        spin()
    }

    fn create_code(
        _: IdentityRef,
        _: Option<String>,
        _: Option<String>,
    ) -> Result<RecoveryCode, RecoveryError> {
        spin()
    }

    fn send_recovery_email(
        _: IdentityRef,
        _: Option<String>,
        _: Option<String>,
        _: Option<String>,
        _: Option<String>,
    ) -> Result<Mailed, RecoveryError> {
        spin()
    }

    fn send_recovery_code(_: IdentityRef, _: Option<String>) -> Result<Mailed, RecoveryError> {
        spin()
    }

    fn request_recovery(_: String, _: Option<String>) -> Result<(), RecoveryError> {
        spin()
    }

    fn request_recovery_code(_: String, _: String, _: Option<String>) -> Result<(), RecoveryError> {
        spin()
    }

    fn redeem_link(_: String) -> Result<Redemption, RecoveryError> {
        spin()
    }

    fn check_link(_: String) -> Result<(), RecoveryError> {
        spin()
    }

    fn redeem_code(_: String, _: String) -> Result<Redemption, RecoveryError> {
        spin()
    }

    fn revoke(_: IdentityRef) -> Result<u32, RecoveryError> {
        spin()
    }

    fn notify_address_changed(_: IdentityRef, _: String) -> Result<(), RecoveryError> {
        spin()
    }

    fn notify_password_changed(_: IdentityRef) -> Result<(), RecoveryError> {
        spin()
    }

    fn notify_account_recovered(_: IdentityRef) -> Result<(), RecoveryError> {
        spin()
    }
}

#[cfg(target_arch = "wasm32")]
bindings::export!(Spinning with_types_in bindings);
