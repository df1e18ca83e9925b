//! The end-to-end tests of the compiled component through the Rust host,
//! in one binary (one link of wasmtime rather than one per file), a module
//! per area. The shared helpers are the `reclaim_tests` library
//! (`tests/support`).

mod codes;
mod concurrency;
mod conformance;
mod directory;
mod durability;
mod expiry;
mod group_commit;
mod instance_reuse;
mod lifespans;
mod links;
mod mail;
mod secrets;
