//! The Reclaim service: the HTTP APIs and pages ([`http`]) and their
//! configuration ([`config`]), over the embedding library (`reclaim`); the
//! `reclaim` command (`main.rs`, `cli/`) is built from it. The library
//! never depends on this crate, so an embedder builds none of it and the
//! compiler keeps the layering.
//!
//! ```no_run
//! use reclaim_server::config::{Config, Options};
//!
//! # fn main() -> anyhow::Result<()> {
//! // What `reclaim serve` reads: a TOML file, the environment, flags.
//! let config = Config::resolve(None, Options::default())?;
//! println!("listening on {}", config.listen);
//! # Ok(())
//! # }
//! ```

pub mod config;
pub mod http;

// The library's modules and items, under the paths this code was written
// against (`crate::operations`, `crate::Reclaim`): the server reaches the
// library only through its public API.
#[allow(unused_imports)]
pub(crate) use reclaim::*;
