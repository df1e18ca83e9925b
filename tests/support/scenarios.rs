//! The host-neutral conformance scenarios: listed alike by the root crate's
//! tests and the host crate's wasmtime-CLI test (included there by path,
//! since the two crates can't depend on each other).

use std::path::{Path, PathBuf};

/// The scenario files (`*.json`) in `dir`, in name order.
pub fn scenario_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}
