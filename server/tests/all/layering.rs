//! Each crate's modules in layers: each imports only those below it. The
//! crates themselves the compiler keeps in order: the storage seam
//! (`storage/`, with the WIT types, the clock and the directory), each
//! backend (`backends/`), the embedding library (`host/`, whose `backends`
//! module, the composition root, alone picks a backend) and the server
//! (`server/`: the configuration, HTTP, the CLI), which no crate below
//! depends on. Run it alone with
//! `cargo test -p reclaim-server --test all layering`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The embedding library's modules, bottom first: a module may import
/// itself and what comes before it.
const LIBRARY: [&str; 8] = [
    "request_context",
    "passwords",
    "settings",
    "backends",
    "events",
    "mail",
    "runtime",
    "operations",
];

/// The server's, likewise (the library's modules, re-exported at its root,
/// are below them all).
const SERVER: [&str; 2] = ["config", "http"];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// What the crate root re-exports, by name: `crate::Reclaim` is an import
/// of `operations`.
fn root_names(lib: &str) -> HashMap<String, String> {
    let mut names = HashMap::new();
    for line in lib.split(';').map(str::trim) {
        let Some(rest) = line
            .rsplit("pub use ")
            .next()
            .filter(|_| line.contains("pub use "))
        else {
            continue;
        };
        let Some((module, items)) = rest.split_once("::") else {
            continue;
        };
        for name in items.trim_matches(['{', '}']).split(',') {
            let name = name.trim().rsplit("::").next().unwrap_or("").to_string();
            names.insert(name, module.trim().to_string());
        }
    }
    names
}

/// The modules `text` imports through `crate::` paths, grouped ones too.
fn imports(text: &str, roots: &HashMap<String, String>) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        let names: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => group[..group.find('}').unwrap_or(0)].split(',').collect(),
            None => vec![rest],
        };
        for name in names {
            let first: String = name
                .trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let module = roots.get(&first).cloned().unwrap_or(first);
            found.push(module);
        }
    }
    found
}

/// Where a module of the crate at `src` imports one above it in `layers`;
/// and how many files were placed in a layer.
fn upward_imports(src: &Path, layers: &[&str]) -> (Vec<String>, usize) {
    let roots = root_names(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    let rank = |m: &str| layers.iter().position(|l| *l == m);
    let mut files = Vec::new();
    sources(src, &mut files);
    let mut upward = Vec::new();
    let mut placed = 0;
    for file in files {
        let relative = file.strip_prefix(src).unwrap();
        let top = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let Some(own) = rank(top.trim_end_matches(".rs")) else {
            continue; // the crate root, the binary and its CLI sit on top
        };
        placed += 1;
        let text = std::fs::read_to_string(&file).unwrap();
        // Unit tests may reach up to build what they test with.
        if relative.ends_with("tests.rs") {
            continue;
        }
        let code: String = text
            .split("#[cfg(test)]\nmod tests")
            .next()
            .unwrap()
            .lines()
            .filter(|line| !line.trim_start().starts_with("//")) // doc links are no imports
            .collect::<Vec<_>>()
            .join("\n");
        for module in imports(&code, &roots) {
            if rank(&module).is_some_and(|r| r > own) {
                upward.push(format!("{} imports {module}", relative.display()));
            }
        }
    }
    upward.sort();
    upward.dedup();
    (upward, placed)
}

#[test]
fn no_module_of_the_library_or_the_server_imports_one_above_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    for (src, layers, at_least) in [
        (root.join("host/src"), &LIBRARY[..], 20),
        (root.join("server/src"), &SERVER[..], 15),
    ] {
        let (upward, placed) = upward_imports(&src, layers);
        assert!(
            placed > at_least,
            "only {placed} files of {} were checked",
            src.display()
        );
        assert!(upward.is_empty(), "upward imports:\n{}", upward.join("\n"));
    }
}

#[test]
fn the_layering_check_sees_an_upward_import() {
    let roots = root_names("pub use operations::{EmailOptions, Reclaim};");
    assert_eq!(
        imports(
            "use crate::{Reclaim, storage::Backend};\nlet x = crate::http::serve;",
            &roots
        ),
        ["operations", "storage", "http"]
    );
}
