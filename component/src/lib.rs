//! Reclaim's recovery logic as a WebAssembly component.
//!
//! Built for `wasm32-wasip2`, this crate is the component that every Reclaim
//! host runs: it exports `reclaim:recovery/recovery` and imports only the
//! capabilities of the `recovery-engine` world (see `wit/recovery.wit`).
//! Token generation, keyed hashing, expiry, single use, attempt limits, links
//! and mail content all live here, so every host behaves the same.

pub mod capabilities;
mod durations;
mod errors;
mod links;
mod mail_rendering;
pub mod recovery;
pub mod settings;
mod tokens;

/// The parsers and renderers, for the fuzz targets in `fuzz/` (`cargo fuzz`
/// builds with `--cfg fuzzing`); not part of the component's interface.
#[cfg(fuzzing)]
pub mod fuzzing {
    pub use crate::durations::{LifespanError, parse_lifespan};
    pub use crate::links::{flow_link, is_usable_base, token_link};
    pub use crate::mail_rendering::{TemplateSet, render};
    pub use crate::tokens::{draw_flow_id, draw_token, is_code_shaped, is_token_shaped};
}

pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "recovery-engine",
    });
}

use bindings::exports::reclaim::recovery::recovery::{
    Guest, Mailed, RecoveryCode, RecoveryLink, Redemption,
};
use bindings::reclaim::recovery::types::{IdentityRef, RecoveryError};
use capabilities::WitImports;
use recovery::Recovery;

/// The exported `recovery` interface, over the WIT imports.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Component;

impl Guest for Component {
    fn create_link(
        identity: IdentityRef,
        expires_in: Option<String>,
        return_to: Option<String>,
    ) -> Result<RecoveryLink, RecoveryError> {
        Recovery::new(&WitImports)?.create_link(&identity, expires_in.as_deref(), return_to)
    }

    fn create_code(
        identity: IdentityRef,
        expires_in: Option<String>,
        return_to: Option<String>,
    ) -> Result<RecoveryCode, RecoveryError> {
        Recovery::new(&WitImports)?.create_code(&identity, expires_in.as_deref(), return_to)
    }

    fn send_recovery_email(
        identity: IdentityRef,
        expires_in: Option<String>,
        template: Option<String>,
        subject: Option<String>,
        sender: Option<String>,
    ) -> Result<Mailed, RecoveryError> {
        Recovery::new(&WitImports)?.send_recovery_email(
            &identity,
            expires_in.as_deref(),
            template.as_deref(),
            subject,
            sender,
        )
    }

    fn send_recovery_code(
        identity: IdentityRef,
        expires_in: Option<String>,
    ) -> Result<Mailed, RecoveryError> {
        Recovery::new(&WitImports)?.send_recovery_code(&identity, expires_in.as_deref())
    }

    fn request_recovery(email: String, return_to: Option<String>) -> Result<(), RecoveryError> {
        Recovery::new(&WitImports)?.request_recovery(&email, return_to)
    }

    fn request_recovery_code(
        email: String,
        flow_id: String,
        return_to: Option<String>,
    ) -> Result<(), RecoveryError> {
        Recovery::new(&WitImports)?.request_recovery_code(&email, &flow_id, return_to)
    }

    fn redeem_link(token: String) -> Result<Redemption, RecoveryError> {
        Recovery::new(&WitImports)?.redeem_link(&token)
    }

    fn check_link(token: String) -> Result<(), RecoveryError> {
        Recovery::new(&WitImports)?.check_link(&token)
    }

    fn redeem_code(flow_id: String, code: String) -> Result<Redemption, RecoveryError> {
        Recovery::new(&WitImports)?.redeem_code(&flow_id, &code)
    }

    fn revoke(identity: IdentityRef) -> Result<u32, RecoveryError> {
        Recovery::new(&WitImports)?.revoke(&identity)
    }

    fn notify_password_changed(identity: IdentityRef) -> Result<(), RecoveryError> {
        Recovery::new(&WitImports)?.notify_password_changed(&identity)
    }

    fn notify_address_changed(
        identity: IdentityRef,
        old_address: String,
    ) -> Result<(), RecoveryError> {
        Recovery::new(&WitImports)?.notify_address_changed(&identity, &old_address)
    }

    fn notify_account_recovered(identity: IdentityRef) -> Result<(), RecoveryError> {
        Recovery::new(&WitImports)?.notify_account_recovered(&identity)
    }
}

// Exported only from the wasm build: a native cdylib can't carry the
// component model's export names.
#[cfg(target_arch = "wasm32")]
bindings::export!(Component with_types_in bindings);
