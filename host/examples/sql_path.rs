//! The measurement behind the Rust backends keeping statements of their
//! own: create-then-redeem pairs, one caller, through the Rust host's
//! SQLite backend, and through the SQL component (the same engine composed
//! with the SQL provider, as the Python and Node.js packages run it) on
//! wasmtime with its `sql` import answered by rusqlite on the same kind of
//! file. Both take a fresh instance per operation and one transaction per
//! operation, at synchronous=FULL and at NORMAL.
//!
//! ```sh
//! cargo run --release -p reclaim --example sql_path -- DIR SECONDS
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use reclaim::backends::{self, Durability, Location};
use reclaim::directory::NewIdentity;
use reclaim::runtime::EMBEDDED_SQL_COMPONENT;
use reclaim::settings::parse_secrets;
use reclaim::wit::{
    Identity, IdentityRef, MailTemplate, Message, RecoveryError, RecoveryLink, Redemption,
    WitSettings,
};
use reclaim::{Reclaim, Runtime, Settings};
use rusqlite::Connection;
use wasmtime::component::{
    Component, ComponentType, InstancePre, Linker, Lower, ResourceTable, TypedFunc,
};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

const SECRET: &str = "bench-secret-0123456789abcdef0123456789abcdef";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("DIR"));
    let seconds: u64 = args.next().expect("SECONDS").parse()?;
    let run = Duration::from_secs(seconds);
    for (name, durability) in [("full", Durability::Full), ("normal", Durability::Normal)] {
        let native = pairs_per_second(
            run,
            native(&dir.join(format!("native-{name}.db")), durability)?,
        )?;
        println!(
            "{{\"path\": \"rust backend\", \"synchronous\": \"{name}\", \"pairs_per_s\": {native:.1}}}"
        );
        let sql = pairs_per_second(run, sql(&dir.join(format!("sql-{name}.db")), name)?)?;
        println!(
            "{{\"path\": \"sql component\", \"synchronous\": \"{name}\", \"pairs_per_s\": {sql:.1}}}"
        );
    }
    Ok(())
}

/// Runs `pair` for a warm-up, then for `run`: pairs per second.
fn pairs_per_second(run: Duration, mut pair: impl FnMut() -> Result<()>) -> Result<f64> {
    for _ in 0..50 {
        pair()?;
    }
    let (started, mut pairs) = (Instant::now(), 0u64);
    while started.elapsed() < run {
        pair()?;
        pairs += 1;
    }
    Ok(pairs as f64 / started.elapsed().as_secs_f64())
}

/// The Rust host's own path: `Reclaim` over its SQLite backend.
fn native(path: &Path, durability: Durability) -> Result<impl FnMut() -> Result<()>> {
    let backend = backends::open(&Location::Sqlite {
        path: path.to_path_buf(),
        durability,
    })?;
    let ann = backend.create_identity(
        &NewIdentity {
            email: Some("ann@example.com".into()),
            active: true,
            ..Default::default()
        },
        0,
    )?;
    let settings = Settings::new("https://id.example.test", parse_secrets(SECRET)?);
    let reclaim = Reclaim::new(Runtime::embedded()?, backend, settings);
    let who = IdentityRef::Id(ann.id);
    Ok(move || {
        let link = reclaim.create_link(&who, None, None).wait()?;
        let token = link.link.rsplit("token=").next().unwrap_or_default();
        reclaim.redeem_link(token).wait()?;
        Ok(())
    })
}

/// A store of the SQL component: WASI and the database connection.
struct Host {
    wasi: WasiCtx,
    table: ResourceTable,
    db: Connection,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

#[derive(ComponentType, Lower, Clone, Copy)]
#[component(enum)]
#[repr(u8)]
enum Dialect {
    #[component(name = "sqlite")]
    Sqlite,
    #[component(name = "postgresql")]
    #[allow(dead_code)]
    Postgresql,
}

#[derive(ComponentType, Lower, Clone, Copy)]
#[component(record)]
struct HostOptions {
    #[component(name = "own-directory")]
    own_directory: bool,
    #[component(name = "own-mailer")]
    own_mailer: bool,
}

/// A value of the `sql` import (`n`, `i42`, `ttext`) for rusqlite.
fn param(value: &str) -> rusqlite::types::Value {
    match value.split_at_checked(1) {
        Some(("t", text)) => rusqlite::types::Value::Text(text.into()),
        Some(("i", n)) => rusqlite::types::Value::Integer(n.parse().unwrap_or_default()),
        _ => rusqlite::types::Value::Null,
    }
}

fn column(value: rusqlite::types::ValueRef<'_>) -> String {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Null => "n".into(),
        ValueRef::Integer(n) => format!("i{n}"),
        ValueRef::Text(t) => format!("t{}", String::from_utf8_lossy(t)),
        ValueRef::Real(r) => format!("i{}", r as i64),
        ValueRef::Blob(_) => "n".into(),
    }
}

fn linker(engine: &Engine) -> Result<Linker<Host>> {
    let mut linker = Linker::<Host>::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    let mut root = linker.root();
    let mut sql = root.instance("reclaim:recovery/sql@0.1.0")?;
    sql.func_wrap("database-dialect", |_, (): ()| Ok((Dialect::Sqlite,)))?;
    sql.func_wrap(
        "execute",
        |mut store, (statement, params): (String, Vec<String>)| {
            let db = &store.data_mut().db;
            let params: Vec<_> = params.iter().map(|p| param(p)).collect();
            let changed = db
                .prepare_cached(&statement)?
                .execute(rusqlite::params_from_iter(params))?;
            Ok((changed as u64,))
        },
    )?;
    sql.func_wrap(
        "query",
        |mut store, (statement, params): (String, Vec<String>)| {
            let db = &store.data_mut().db;
            let params: Vec<_> = params.iter().map(|p| param(p)).collect();
            let mut prepared = db.prepare_cached(&statement)?;
            let width = prepared.column_count();
            let rows = prepared
                .query_map(rusqlite::params_from_iter(params), |row| {
                    (0..width)
                        .map(|i| row.get_ref(i).map(column))
                        .collect::<rusqlite::Result<Vec<_>>>()
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((rows,))
        },
    )?;
    let mut options = root.instance("reclaim:recovery/host-options@0.1.0")?;
    options.func_wrap("get", |_, (): ()| {
        Ok((HostOptions {
            own_directory: false,
            own_mailer: false,
        },))
    })?;
    let mut directory = root.instance("reclaim:recovery/directory@0.1.0")?;
    let unplugged = || wasmtime::Error::msg("not plugged in: host-options says the provider's own");
    directory.func_wrap(
        "get-by-id",
        move |_, (_,): (String,)| -> wasmtime::Result<(Option<Identity>,)> { Err(unplugged()) },
    )?;
    directory.func_wrap(
        "get-by-pk",
        move |_, (_,): (i64,)| -> wasmtime::Result<(Option<Identity>,)> { Err(unplugged()) },
    )?;
    directory.func_wrap(
        "find-by-email",
        move |_, (_,): (String,)| -> wasmtime::Result<(Option<Identity>,)> { Err(unplugged()) },
    )?;
    let mut mailer = root.instance("reclaim:recovery/mailer@0.1.0")?;
    mailer.func_wrap(
        "queue",
        move |_, (_,): (Message,)| -> wasmtime::Result<(Result<(), String>,)> { Err(unplugged()) },
    )?;
    let secrets: Vec<Vec<u8>> = vec![SECRET.as_bytes().to_vec()];
    let mut settings = root.instance("reclaim:recovery/settings@0.1.0")?;
    settings.func_wrap("get", move |_, (): ()| {
        Ok((WitSettings {
            public_url: "https://id.example.test".into(),
            secrets: secrets.clone(),
            // Every tunable at the component's default.
            default_lifespan_ns: None,
            max_lifespan_ns: None,
            revoke_older_links: None,
            max_code_attempts: None,
            max_code_attempts_per_identity: None,
            code_attempt_window_ns: None,
            notify_unknown_recipients: None,
        },))
    })?;
    settings.func_wrap(
        "template",
        |_, (_, _): (String, String)| -> wasmtime::Result<(Option<MailTemplate>,)> { Ok((None,)) },
    )?;
    Ok(linker)
}

type CreateLink = TypedFunc<
    (IdentityRef, Option<String>, Option<String>),
    (Result<RecoveryLink, RecoveryError>,),
>;
type RedeemLink = TypedFunc<(String,), (Result<Redemption, RecoveryError>,)>;

/// The packages' path, on wasmtime: the SQL component over rusqlite.
fn sql(path: &Path, synchronous: &str) -> Result<impl FnMut() -> Result<()>> {
    let mut config = Config::new();
    config.allocation_strategy(InstanceAllocationStrategy::pooling());
    let engine = Engine::new(&config)?;
    let component = Component::new(&engine, EMBEDDED_SQL_COMPONENT)?;
    let pre: Arc<InstancePre<Host>> = Arc::new(linker(&engine)?.instantiate_pre(&component)?);
    let connect = || -> Result<Connection> {
        let db = Connection::open(path)?;
        db.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous};"
        ))?;
        Ok(db)
    };
    let mut db = Some(connect()?);
    let mut call = move |name: &str,
                         run: &mut dyn FnMut(
        &mut Store<Host>,
        &wasmtime::component::Instance,
    ) -> Result<String>|
          -> Result<String> {
        let host = Host {
            wasi: WasiCtxBuilder::new().build(),
            table: ResourceTable::new(),
            db: db.take().expect("the connection between operations"),
        };
        let mut store = Store::new(&engine, host);
        let instance = pre.instantiate(&mut store)?;
        store.data().db.execute_batch("BEGIN IMMEDIATE")?;
        let answer = run(&mut store, &instance);
        store
            .data()
            .db
            .execute_batch(if answer.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
        db = Some(store.into_data().db);
        answer.map_err(|e| e.context(name.to_string()))
    };
    call("migrate", &mut |store, instance| {
        let scope = instance
            .get_export_index(&mut *store, None, "reclaim:recovery/schema@0.1.0")
            .ok_or_else(|| anyhow!("no schema export"))?;
        let index = instance
            .get_export_index(&mut *store, Some(&scope), "migrate")
            .ok_or_else(|| anyhow!("no migrate"))?;
        let migrate = instance.get_typed_func::<(), ()>(&mut *store, &index)?;
        migrate.call(&mut *store, ())?;
        Ok(String::new())
    })?;
    let ann = uuid::Uuid::new_v4().to_string();
    {
        let db = connect()?;
        db.execute(
            "INSERT INTO identities (id, email, active) VALUES (?1, 'ann@example.com', 1)",
            [&ann],
        )?;
    }
    let export = |store: &mut Store<Host>, instance: &wasmtime::component::Instance, name: &str| {
        let scope = instance
            .get_export_index(&mut *store, None, "reclaim:recovery/recovery@0.1.0")
            .ok_or_else(|| anyhow!("no recovery export"))?;
        instance
            .get_export_index(&mut *store, Some(&scope), name)
            .ok_or_else(|| anyhow!("no {name}"))
    };
    Ok(move || {
        let who = ann.clone();
        let token = call("create-link", &mut |store, instance| {
            let index = export(store, instance, "create-link")?;
            let create: CreateLink = instance.get_typed_func(&mut *store, index)?;
            let (link,) = create.call(&mut *store, (IdentityRef::Id(who.clone()), None, None))?;
            let link = link.map_err(|e| anyhow!(e.message))?;
            Ok(link
                .link
                .rsplit("token=")
                .next()
                .unwrap_or_default()
                .to_string())
        })?;
        call("redeem-link", &mut |store, instance| {
            let index = export(store, instance, "redeem-link")?;
            let redeem: RedeemLink = instance.get_typed_func(&mut *store, index)?;
            let (redeemed,) = redeem.call(&mut *store, (token.clone(),))?;
            Ok(redeemed.map_err(|e| anyhow!(e.message))?.identity_id)
        })?;
        Ok(())
    })
}
