//! Reclaim: account recovery as a sandboxed WebAssembly component, and this
//! crate, the wasmtime host that runs it.
//!
//! ```
//! use reclaim::backends::{self, Location};
//! use reclaim::storage::Identities;
//! use reclaim::{IdentityRef, NewIdentity, Reclaim, Runtime, Settings};
//!
//! # fn main() -> anyhow::Result<()> {
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("reclaim.db");
//! let backend = backends::open(&Location::Sqlite { path, durability: Default::default() })?;
//! let ann = backend.create_identity(
//!     &NewIdentity { email: Some("ann@example.com".into()), active: true, ..Default::default() },
//!     0,
//! )?;
//! let secrets = reclaim::settings::parse_secrets("a-hashing-secret-of-at-least-32-bytes")?;
//! let reclaim = Reclaim::new(Runtime::embedded()?, backend, Settings::new("https://id.example.com", secrets));
//!
//! let link = reclaim.create_link(&IdentityRef::Id(ann.id.clone()), Some("30m"), None).wait()?;
//! let token = link.link.rsplit("token=").next().unwrap();
//! assert_eq!(reclaim.redeem_link(token).wait()?.identity_id, ann.id);
//! assert!(reclaim.redeem_link(token).wait().is_err()); // single use
//! # Ok(())
//! # }
//! ```
//!
//! The recovery logic (tokens, codes, expiry, single use, links, mail) lives
//! in the component built from `component/` and embedded here. The
//! [`runtime`] instantiates it for every operation over one unit of work of
//! a [`storage`] backend (SQLite by default, picked by [`backends::open`]), which supplies the identity
//! [`directory`], the credentials and the [`mail`] outbox; the [`clock`] and
//! the [`settings`] are the host's too. [`Reclaim`] is the operations API:
//! each operation answers with a [`Pending`], to `.wait()` for on a thread
//! or `.await` in a task, once its writes are durable.
//!
//! By default the crate is the runtime, the SQLite and in-memory backends
//! and the operations; `postgres`, `smtp` (the mail courier), `webhooks` and
//! `metrics` add the rest. The service (`reclaim serve`, the CLI, the HTTP
//! APIs and pages) is a crate of its own, `reclaim-server`, that an embedder
//! never builds. [`runtime::add_to_linker`] puts the imports in a `Linker` of your
//! own, after WASI and [`runtime::add_untraced_randomness`].

pub mod backends;
pub mod events;
pub mod mail;
pub mod operations;
pub mod passwords;
pub mod request_context;
pub mod runtime;
pub mod settings;

// The storage seam's crate, and its modules, under the names the host has
// always given them.
pub use reclaim_storage::{self as storage, clock, directory, wit};

pub use clock::{Clock, ManualClock, SystemClock};
pub use directory::{Directory, Identity, NewIdentity, UserDirectory};
pub use operations::{EmailOptions, Error, Reclaim, Revocation};
pub use runtime::{Limits, Runtime};
pub use settings::{Secret, Settings, Templates};
pub use storage::{Backend, NewSession, Pending, Storage};
pub use wit::{
    ErrorKind, IdentityRef, Mailed, RecoveryCode, RecoveryError, RecoveryLink, Redemption,
};
