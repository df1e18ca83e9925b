//! `reclaim-compose sql ENGINE PROVIDER OUT`: writes the SQL component
//! (the engine with the SQL provider) as the host's build script does, for
//! the Python package's build hook. `reclaim-compose plug SOCKET PLUG OUT`:
//! SOCKET with PLUG's exports wired to its imports (`wac plug`), as the
//! hosts' tests put the storage guest on a provider.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let read = |path: &str| std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    match args.as_slice() {
        [what, engine, provider, out] if what == "sql" => {
            let composed = reclaim_compose::sql(&read(engine), &read(provider));
            std::fs::write(out, composed).unwrap_or_else(|e| panic!("{out}: {e}"));
        }
        [what, socket, plug, out] if what == "plug" => {
            let composed = reclaim_compose::plug(&read(socket), &[("reclaim:plug", &read(plug))]);
            std::fs::write(out, composed).unwrap_or_else(|e| panic!("{out}: {e}"));
        }
        _ => {
            eprintln!("usage: reclaim-compose sql ENGINE PROVIDER OUT | plug SOCKET PLUG OUT");
            std::process::exit(2);
        }
    }
}
