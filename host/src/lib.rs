//! Reclaim: account recovery as a sandboxed WebAssembly component, and this
//! crate, the wasmtime host that runs it.
//!
//! The recovery logic (tokens, codes, expiry, single use, links, mail) lives
//! in the component built from `component/` and embedded here. The host
//! supplies its capabilities: [`storage`] (SQLite by default), the identity
//! [`directory`], [`mail`] (an outbox and a courier), the [`clock`], and the
//! [`settings`]; the [`engine`] instantiates the component for every
//! operation inside one unit of work of the storage. The SQLite backend
//! commits the units of work queued at one moment together (group commit)
//! and answers each only once its batch is on disk; the operations block
//! the caller, or can be awaited through [`Reclaim::nonblocking`].
//!
//! ```
//! use std::sync::Arc;
//! use reclaim::{Engine, IdentityRef, NewIdentity, Reclaim, Settings, SqliteStorage};
//!
//! # fn main() -> anyhow::Result<()> {
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("reclaim.db");
//! let storage = Arc::new(SqliteStorage::open(path)?);
//! let ann = storage.create_identity(
//!     &NewIdentity { email: Some("ann@example.com".into()), active: true, ..Default::default() },
//!     0,
//! )?;
//! let secrets = reclaim::settings::parse_secrets("a-hashing-secret-of-at-least-32-bytes")?;
//! let reclaim = Reclaim::new(Engine::embedded()?, storage, Settings::new("https://id.example.com", secrets));
//!
//! let link = reclaim.create_link(&IdentityRef::Id(ann.id.clone()), Some("30m"), None)?;
//! let token = link.link.rsplit("token=").next().unwrap();
//! assert_eq!(reclaim.redeem_link(token)?.identity_id, ann.id);
//! assert!(reclaim.redeem_link(token).is_err()); // single use
//! # Ok(())
//! # }
//! ```

pub mod clock;
pub mod config;
pub mod directory;
pub mod engine;
pub mod http;
pub mod mail;
pub mod operations;
pub mod passwords;
pub mod settings;
pub mod storage;
pub mod wit;

pub use clock::{Clock, ManualClock, SystemClock};
pub use directory::{Directory, Identity, NewIdentity};
pub use engine::{Engine, Limits};
pub use operations::{EmailOptions, Error, NonBlocking, Pending, Reclaim, Revocation};
pub use settings::{Secret, Settings, Templates};
pub use storage::{NewSession, SqliteStorage, Storage};
pub use wit::{
    ErrorKind, IdentityRef, Mailed, RecoveryCode, RecoveryError, RecoveryLink, Redemption,
};
