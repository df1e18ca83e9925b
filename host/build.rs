//! Builds the recovery component, the edge's HTTP front, the filesystem
//! provider and the SQL provider for `wasm32-wasip2`, composes the edge
//! component from the first three and the SQL component from the engine and
//! the SQL provider (`reclaim-compose`), and
//! hands the paths to the host, which embeds them: `reclaim` runs with no
//! file to copy or locate, `reclaim component --edge` writes the edge and
//! `--sql` the component the Python and Node.js packages ship.
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
        "edge/src",
        "edge/Cargo.toml",
        "wire/src",
        "wire/templates",
        "wire/Cargo.toml",
        "providers/filesystem/src",
        "providers/filesystem/Cargo.toml",
        "providers/sql/src",
        "rules/src",
        "rules/Cargo.toml",
        "address/src",
        "address/Cargo.toml",
        "schema/src",
        "schema/Cargo.toml",
        "providers/sql/Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=RECLAIM_COMPONENT_WASM");
    println!("cargo:rerun-if-env-changed=RECLAIM_EDGE_WASM");
    println!("cargo:rerun-if-env-changed=RECLAIM_SQL_WASM");

    // Packagers that build the components separately can point at them.
    if let (Some(engine), Some(edge), Some(sql)) = (
        std::env::var_os("RECLAIM_COMPONENT_WASM"),
        std::env::var_os("RECLAIM_EDGE_WASM"),
        std::env::var_os("RECLAIM_SQL_WASM"),
    ) {
        let path = |p: &std::ffi::OsStr| Path::new(p).display().to_string();
        println!("cargo:rustc-env=RECLAIM_COMPONENT_PATH={}", path(&engine));
        println!("cargo:rustc-env=RECLAIM_EDGE_PATH={}", path(&edge));
        println!("cargo:rustc-env=RECLAIM_SQL_PATH={}", path(&sql));
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
            "--package",
            "reclaim-edge",
            "--package",
            "reclaim-filesystem-provider",
            "--package",
            "reclaim-sql-provider",
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
            "building the recovery components failed; is the target installed? \
             Run `rustup target add wasm32-wasip2`"
        );
    }
    let release = target_dir.join("wasm32-wasip2/release");
    let engine = release.join("reclaim_component.wasm");
    let edge = PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("reclaim-edge.wasm");
    let composed = reclaim_compose::edge(
        &read(&engine),
        &read(&release.join("reclaim_filesystem_provider.wasm")),
        &read(&release.join("reclaim_edge.wasm")),
    );
    std::fs::write(&edge, composed).expect("writing the edge component");
    println!(
        "cargo:rustc-env=RECLAIM_COMPONENT_PATH={}",
        engine.display()
    );
    println!("cargo:rustc-env=RECLAIM_EDGE_PATH={}", edge.display());
    let sql = PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("reclaim-sql.wasm");
    let composed = reclaim_compose::sql(
        &read(&engine),
        &read(&release.join("reclaim_sql_provider.wasm")),
    );
    std::fs::write(&sql, composed).expect("writing the SQL component");
    println!("cargo:rustc-env=RECLAIM_SQL_PATH={}", sql.display());
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
