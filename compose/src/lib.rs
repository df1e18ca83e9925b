//! Reclaim's compositions, each the engine with providers plugged into its
//! imports (wac-graph, the library behind `wac plug`): [`edge`] for
//! `wasmtime serve` and [`sql`] for the Python and Node.js packages. The
//! host's build script embeds both; the Python package's build hook runs
//! the `reclaim-compose` binary, so that it needs no host build.

/// The edge component: the engine with the filesystem provider plugged into
/// its imports, and that plugged into the HTTP front, whose directory import
/// the provider also satisfies. Only WASI remains imported.
pub fn edge(engine: &[u8], provider: &[u8], front: &[u8]) -> Vec<u8> {
    let engine_on_files = plug(engine, &[("reclaim:provider", provider)]);
    plug(
        front,
        &[
            ("reclaim:engine", &engine_on_files),
            ("reclaim:provider", provider),
        ],
    )
}

/// The engine with the SQL provider answering its directory, storage and
/// mailer, for the Python and Node.js packages: the provider's `schema`
/// is exported beside the engine's operations, and what either imports
/// (the `sql` connection, the host's options, directory and mailer, the
/// settings, WASI) the composition imports.
pub fn sql(engine: &[u8], provider: &[u8]) -> Vec<u8> {
    use wac_graph::{CompositionGraph, EncodeOptions};

    const VERSION: &str = "@0.1.0";
    let mut graph = CompositionGraph::new();
    let engine = register(&mut graph, "reclaim:engine", engine);
    let provider = register(&mut graph, "reclaim:sql-provider", provider);
    let provider = graph.instantiate(provider);
    let engine = graph.instantiate(engine);
    let fail = |what: &str, e: &dyn std::fmt::Display| -> ! { panic!("composing {what}: {e}") };
    for interface in ["directory", "storage", "mailer"] {
        let name = format!("reclaim:recovery/{interface}{VERSION}");
        let export = graph
            .alias_instance_export(provider, &name)
            .unwrap_or_else(|e| fail(&name, &e));
        graph
            .set_instantiation_argument(engine, &name, export)
            .unwrap_or_else(|e| fail(&name, &e));
    }
    for (instance, interface) in [(engine, "recovery"), (provider, "schema")] {
        let name = format!("reclaim:recovery/{interface}{VERSION}");
        let export = graph
            .alias_instance_export(instance, &name)
            .unwrap_or_else(|e| fail(&name, &e));
        graph
            .export(export, &name)
            .unwrap_or_else(|e| fail(&name, &e));
    }
    graph
        .encode(EncodeOptions::default())
        .unwrap_or_else(|e| panic!("encoding the SQL composition: {e:#}"))
}

/// `socket` with each plug's exports wired to the imports they match.
pub fn plug(socket: &[u8], plugs: &[(&str, &[u8])]) -> Vec<u8> {
    use wac_graph::{CompositionGraph, EncodeOptions};

    let mut graph = CompositionGraph::new();
    let socket = register(&mut graph, "reclaim:socket", socket);
    let plugs = plugs
        .iter()
        .map(|(name, bytes)| register(&mut graph, name, bytes))
        .collect();
    wac_graph::plug(&mut graph, plugs, socket).unwrap_or_else(|e| panic!("composing: {e:#}"));
    graph
        .encode(EncodeOptions::default())
        .unwrap_or_else(|e| panic!("encoding the composition: {e:#}"))
}

/// `bytes` as a package of `graph`, named `name`.
fn register(
    graph: &mut wac_graph::CompositionGraph,
    name: &str,
    bytes: &[u8],
) -> wac_graph::PackageId {
    let package =
        wac_graph::types::Package::from_bytes(name, None, bytes.to_vec(), graph.types_mut())
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
    graph
        .register_package(package)
        .unwrap_or_else(|e| panic!("{name}: {e:#}"))
}
