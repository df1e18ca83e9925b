//! Builds the recovery component for `wasm32-wasip2` and hands its path to
//! the host, which embeds it: `reclaim` runs with no file to copy or locate.
//!
//! The nested cargo uses its own target directory, so it never waits on the
//! lock that the outer build holds.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap();
    for watched in [
        "wit",
        "component/src",
        "component/templates",
        "component/Cargo.toml",
        "component/build.rs",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=RECLAIM_COMPONENT_WASM");

    // Packagers that build the component separately can point at it.
    if let Some(prebuilt) = std::env::var_os("RECLAIM_COMPONENT_WASM") {
        println!(
            "cargo:rustc-env=RECLAIM_COMPONENT_PATH={}",
            Path::new(&prebuilt).display()
        );
        return;
    }

    let target_dir = root.join("target").join("component");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "--package",
            "reclaim-component",
            "--target",
            "wasm32-wasip2",
            "--release",
            "--locked",
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        // Flags meant for the host (coverage, sanitizers) don't apply to wasm.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .expect("could not run cargo to build the recovery component");
    if !status.success() {
        panic!(
            "building the recovery component failed; is the target installed? \
             Run `rustup target add wasm32-wasip2`"
        );
    }
    let wasm = target_dir.join("wasm32-wasip2/release/reclaim_component.wasm");
    println!("cargo:rustc-env=RECLAIM_COMPONENT_PATH={}", wasm.display());
}
