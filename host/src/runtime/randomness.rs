//! The guest's randomness, on a path no log reaches: wasmtime-wasi's
//! bindings trace every import's result at `trace`, and a link's token is
//! four `get-random-u64` words in order, so anyone who read such a log
//! could rebuild live tokens and codes. [`add_untraced_randomness`] is the
//! one place that redefines `wasi:random` over the OS's generator with no
//! span or event; every linker that runs the engine calls it after WASI.

use anyhow::Result;
use wasmtime::component::Linker;

/// The `wasi:random` version wasmtime-wasi 48 defines; guests built
/// against any earlier 0.2 release resolve to it by semver.
const RANDOM: &str = "wasi:random/random@0.2.12";
const INSECURE: &str = "wasi:random/insecure@0.2.12";
const INSECURE_SEED: &str = "wasi:random/insecure-seed@0.2.12";

/// The most bytes one call may ask for: the engine draws 32 at a time, and
/// a guest asking for gigabytes would only exhaust the host's memory.
const MAX_BYTES: u64 = 64 * 1024;

/// Replaces the `wasi:random` functions already in `linker` (from
/// `wasmtime_wasi::p2::add_to_linker_sync`) with untraced ones.
pub fn add_untraced_randomness<T: 'static>(linker: &mut Linker<T>) -> Result<()> {
    linker.allow_shadowing(true);
    let result = define(linker);
    linker.allow_shadowing(false);
    result
}

fn define<T: 'static>(linker: &mut Linker<T>) -> Result<()> {
    for interface in [RANDOM, INSECURE] {
        let (bytes, word) = if interface == RANDOM {
            ("get-random-bytes", "get-random-u64")
        } else {
            ("get-insecure-random-bytes", "get-insecure-random-u64")
        };
        let mut instance = linker.instance(interface)?;
        instance.func_wrap(bytes, |_, (len,): (u64,)| Ok((random_bytes(len)?,)))?;
        instance.func_wrap(word, |_, (): ()| Ok((random_u64()?,)))?;
    }
    linker
        .instance(INSECURE_SEED)?
        .func_wrap("insecure-seed", |_, (): ()| {
            Ok(((random_u64()?, random_u64()?),))
        })?;
    Ok(())
}

fn random_bytes(len: u64) -> wasmtime::Result<Vec<u8>> {
    if len > MAX_BYTES {
        wasmtime::bail!("the guest asked for {len} random bytes, over {MAX_BYTES}");
    }
    let mut bytes = vec![0; len as usize];
    getrandom::fill(&mut bytes).map_err(|e| wasmtime::format_err!("no randomness: {e}"))?;
    Ok(bytes)
}

fn random_u64() -> wasmtime::Result<u64> {
    getrandom::u64().map_err(|e| wasmtime::format_err!("no randomness: {e}"))
}
