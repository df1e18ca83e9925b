//! The compiled component, cached on disk between processes. A compiled
//! component is native code that runs outside the sandbox, so [`trusted`]
//! is the one check before a cached one is loaded.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

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
    // A cache that can't be made only costs time.
    let _ = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir);
    let usable = trusted(&dir);
    if !usable {
        tracing::warn!(
            dir = %dir.display(),
            "the compile cache is not this user's alone (owner or mode); it is not used"
        );
    } else if path.exists() && trusted(&path) {
        // SAFETY: the file was written by `precompile_component` of an engine
        // with the same settings (its name says so), in a directory and file
        // that only this user can write.
        if let Ok(component) = unsafe { Component::deserialize_file(engine, &path) } {
            return Ok(component);
        }
    }
    let compiled = engine.precompile_component(wasm)?;
    if usable {
        let partial = path.with_extension(format!("partial{}", std::process::id()));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .and_then(|mut file| file.write_all(&compiled));
        if written.is_ok() {
            let _ = std::fs::rename(&partial, &path);
        } else {
            let _ = std::fs::remove_file(&partial);
        }
    }
    // SAFETY: these bytes came from `precompile_component` just above.
    Ok(unsafe { Component::deserialize(engine, &compiled) }?)
}

/// Whether `path` (the cache directory or a file in it) is this user's and
/// no one else's to write: owned by the effective user, not a symbolic link,
/// and not writable by group or others. Anyone else who could write it
/// could have this process run their native code.
fn trusted(path: &Path) -> bool {
    let me = rustix::process::geteuid().as_raw();
    std::fs::symlink_metadata(path)
        .is_ok_and(|m| !m.file_type().is_symlink() && m.uid() == me && m.mode() & 0o022 == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_a_cache_this_user_alone_can_write_is_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("component.cwasm");
        std::fs::write(&file, b"x").unwrap();
        let mode = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
        };
        mode(dir.path(), 0o700);
        mode(&file, 0o600);
        assert!(trusted(dir.path()) && trusted(&file));
        mode(&file, 0o666);
        assert!(!trusted(&file), "a file others can write");
        mode(dir.path(), 0o777);
        assert!(!trusted(dir.path()), "a directory others can write");
        let link = dir.path().join("link.cwasm");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(!trusted(&link), "a symbolic link");
        assert!(!trusted(&dir.path().join("missing")));
    }
}
