//! The guest's randomness, on a path no log reaches: wasmtime-wasi's
//! bindings trace every import's result at `trace`, and a link's token is
//! four `get-random-u64` words in order, so anyone who read such a log
//! could rebuild live tokens and codes. [`add_untraced_randomness`] is the
//! one place that redefines `wasi:random`: the same generators of the
//! store's `WasiCtx` (a CSPRNG in user space, reseeded from the OS), called
//! without the bindings' span. Every linker that runs the engine calls it
//! after WASI.

use anyhow::Result;
use wasmtime::component::Linker;
use wasmtime_wasi::p2::bindings::random::{insecure, insecure_seed, random};
use wasmtime_wasi::random::WasiRandomView;

/// The `wasi:random` version wasmtime-wasi 48 defines; guests built
/// against any earlier 0.2 release resolve to it by semver.
const RANDOM: &str = "wasi:random/random@0.2.12";
const INSECURE: &str = "wasi:random/insecure@0.2.12";
const INSECURE_SEED: &str = "wasi:random/insecure-seed@0.2.12";

/// Replaces the `wasi:random` functions already in `linker` (from
/// `wasmtime_wasi::p2::add_to_linker_sync`) with untraced ones.
pub fn add_untraced_randomness<T: WasiRandomView + 'static>(linker: &mut Linker<T>) -> Result<()> {
    linker.allow_shadowing(true);
    let result = define(linker);
    linker.allow_shadowing(false);
    result
}

fn define<T: WasiRandomView + 'static>(linker: &mut Linker<T>) -> Result<()> {
    let mut secure = linker.instance(RANDOM)?;
    secure.func_wrap("get-random-bytes", |mut store, (len,): (u64,)| {
        Ok((random::Host::get_random_bytes(
            store.data_mut().random(),
            len,
        )?,))
    })?;
    secure.func_wrap("get-random-u64", |mut store, (): ()| {
        Ok((random::Host::get_random_u64(store.data_mut().random())?,))
    })?;
    let mut weak = linker.instance(INSECURE)?;
    weak.func_wrap("get-insecure-random-bytes", |mut store, (len,): (u64,)| {
        Ok((insecure::Host::get_insecure_random_bytes(
            store.data_mut().random(),
            len,
        )?,))
    })?;
    weak.func_wrap("get-insecure-random-u64", |mut store, (): ()| {
        Ok((insecure::Host::get_insecure_random_u64(
            store.data_mut().random(),
        )?,))
    })?;
    linker
        .instance(INSECURE_SEED)?
        .func_wrap("insecure-seed", |mut store, (): ()| {
            Ok((insecure_seed::Host::insecure_seed(
                store.data_mut().random(),
            )?,))
        })?;
    Ok(())
}
