//! The compiled component, cached on disk between processes.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use anyhow::Result;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;

/// Where compiled components are cached: `RECLAIM_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/reclaim`, else `~/.cache/reclaim`.
pub fn cache_dir() -> Option<PathBuf> {
    let env = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("RECLAIM_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("reclaim")))
        .or_else(|| env("HOME").map(|d| d.join(".cache").join("reclaim")))
}

/// Compiling the component takes seconds; every CLI call would pay it. The
/// compiled form is cached under a name derived from the wasm bytes and the
/// engine's settings, so a stale or foreign artifact is never picked up.
pub(super) fn load_component(engine: &wasmtime::Engine, wasm: &[u8]) -> Result<Component> {
    let Some(dir) = cache_dir() else {
        return Ok(Component::new(engine, wasm)?);
    };
    let mut settings_hash = std::collections::hash_map::DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut settings_hash);
    let wasm_hash = hex::encode(&Sha256::digest(wasm)[..16]);
    let path = dir.join(format!(
        "component-{wasm_hash}-{:016x}.cwasm",
        settings_hash.finish()
    ));
    if path.exists() {
        // SAFETY: the file was written by `precompile_component` of an engine
        // with the same settings (its name says so), in the operator's own
        // cache directory.
        if let Ok(component) = unsafe { Component::deserialize_file(engine, &path) } {
            return Ok(component);
        }
    }
    let compiled = engine.precompile_component(wasm)?;
    // A cache that can't be written only costs time.
    let partial = path.with_extension(format!("partial{}", std::process::id()));
    if std::fs::create_dir_all(&dir).is_ok() && std::fs::write(&partial, &compiled).is_ok() {
        let _ = std::fs::rename(&partial, &path);
    }
    // SAFETY: these bytes came from `precompile_component` just above.
    Ok(unsafe { Component::deserialize(engine, &compiled) }?)
}
