//! The crate in an embedder's own wasmtime store: the recovery imports
//! added to its `Linker<T>` beside its own WASI, with a view into its store
//! data, over a real SQLite file.

use std::sync::{Arc, Mutex};

use reclaim::backends::{self, Location};
use reclaim::runtime::{EMBEDDED_COMPONENT, Imports, add_to_linker, add_untraced_randomness};
use reclaim::storage;
use reclaim::wit::RecoveryEngine;
use reclaim::{IdentityRef, NewIdentity, Settings, Storage, SystemClock};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// An embedder's store data: its own WASI, its own state, and Reclaim's
/// imports as one field among them.
struct App {
    wasi: WasiCtx,
    table: ResourceTable,
    reclaim: Imports,
    calls: u32,
}

impl WasiView for App {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn app() -> App {
    let reclaim = Imports::new();
    App {
        wasi: WasiCtxBuilder::new()
            .wall_clock(reclaim.wall_clock())
            .build(),
        table: ResourceTable::new(),
        reclaim,
        calls: 0,
    }
}

/// Runs `call` in a unit of work of `backend`, inside the embedder's store:
/// begin, the call, end, and a commit only if the component answered.
fn operation<T: Send + 'static>(
    backend: &dyn Storage,
    store: &Arc<Mutex<Store<App>>>,
    settings: &Arc<Settings>,
    call: impl FnOnce(&mut Store<App>) -> wasmtime::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let (store, settings) = (Arc::clone(store), Arc::clone(settings));
    storage::transact(backend, move |work| {
        let mut store = store.lock().unwrap();
        let app = store.data_mut();
        app.reclaim.begin(work, settings, Arc::new(SystemClock));
        app.calls += 1;
        let answer = call(&mut store);
        let work = store.data_mut().reclaim.end().expect("the unit of work");
        let answer = answer?;
        work.commit()?;
        Ok(answer)
    })
}

#[test]
fn an_embedders_own_linker_and_store_run_the_operations_over_its_storage() {
    let dir = tempfile::tempdir().unwrap();
    let backend = backends::open(&Location::Sqlite {
        path: dir.path().join("reclaim.db"),
        durability: Default::default(),
    })
    .unwrap();
    let ann = backend
        .create_identity(
            &NewIdentity {
                email: Some("ann@example.com".into()),
                active: true,
                ..Default::default()
            },
            0,
        )
        .unwrap();
    let engine = Engine::default();
    let component = Component::new(&engine, EMBEDDED_COMPONENT).unwrap();
    let mut linker = Linker::<App>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
    add_untraced_randomness(&mut linker).unwrap();
    add_to_linker(&mut linker, |app| &mut app.reclaim).unwrap();
    let secrets =
        reclaim::settings::parse_secrets("a-hashing-secret-of-at-least-32-bytes").unwrap();
    let settings = Arc::new(Settings::new("https://id.example.com", secrets));

    // One store for every operation: each brackets its call with begin and
    // end, and commits the unit of work the storage gave it.
    let mut store = Store::new(&engine, app());
    let recovery = RecoveryEngine::instantiate(&mut store, &component, &linker).unwrap();
    let (store, recovery) = (Arc::new(Mutex::new(store)), Arc::new(recovery));
    let r = Arc::clone(&recovery);
    let id = ann.id.clone();
    let created = operation(&*backend, &store, &settings, move |store| {
        r.reclaim_recovery_recovery()
            .call_create_link(store, &IdentityRef::Id(id), None, None)
    })
    .unwrap()
    .unwrap();
    let token = created.link.rsplit("token=").next().unwrap().to_string();
    let redeem = |token: String| {
        let r = Arc::clone(&recovery);
        operation(&*backend, &store, &settings, move |store| {
            r.reclaim_recovery_recovery()
                .call_redeem_link(store, &token)
        })
        .unwrap()
        .map(|redemption| redemption.identity_id)
        .map_err(|refused| refused.kind.wit_name())
    };
    assert_eq!(redeem(token.clone()), Ok(ann.id.clone()));
    assert_eq!(
        redeem(token),
        Err("credential-used"),
        "single use, through the file"
    );
    assert_eq!(
        store.lock().unwrap().data().calls,
        3,
        "the embedder's own state is its own"
    );

    // A call outside begin and end traps with a message that says so,
    // rather than reaching another operation's storage.
    let mut store = store.lock().unwrap();
    let trap = recovery
        .reclaim_recovery_recovery()
        .call_create_link(&mut *store, &IdentityRef::Id(ann.id.clone()), None, None)
        .unwrap_err();
    assert!(
        format!("{trap:?}").contains("outside an operation"),
        "{trap:?}"
    );
}

/// An embedder that wants the operations API over SQLite compiles none of
/// the server, PostgreSQL, SMTP or metrics libraries (README, "Embedding").
#[test]
fn the_embedding_library_depends_on_no_server_library() {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["tree", "-e", "normal", "-p", "reclaim", "--locked"])
        .args(["--prefix", "none", "--format", "{p}"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    assert!(tree.lines().any(|l| l.starts_with("wasmtime ")), "{tree}");
    for server in [
        "axum",
        "hyper",
        "utoipa",
        "tokio-postgres",
        "postgres",
        "lettre",
        "metrics",
        "reqwest",
        "clap",
    ] {
        let found: Vec<_> = tree
            .lines()
            .filter(|l| l.split(' ').next() == Some(server))
            .collect();
        assert!(
            found.is_empty(),
            "{server} is in the embedding's tree: {found:?}"
        );
    }
}
