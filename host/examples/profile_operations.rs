//! A plain loop of one operation, for a profiler to watch (criterion's own
//! work and the other benchmarks' set-up would blur the picture):
//!
//! `cargo build --release -p reclaim --example profile_operations`
//! `perf record -g target/release/examples/profile_operations create-link fresh 20000`

use std::sync::Arc;

use reclaim::backends::MemoryStorage;
use reclaim::directory::NewIdentity;
use reclaim::settings::parse_secrets;
use reclaim::storage::Identities;
use reclaim::{IdentityRef, Limits, Reclaim, Runtime, Settings};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (operation, instances, count) = match &args[1..] {
        [op, inst, n] => (
            op.as_str(),
            inst.as_str(),
            n.parse::<usize>().expect("a count"),
        ),
        _ => panic!("usage: profile_operations create-link|redeem-link fresh|warm COUNT"),
    };
    let limits = Limits {
        reuse_instances: if instances == "warm" { 1 } else { 0 },
        ..Limits::default()
    };
    let storage = MemoryStorage::new();
    let ann = storage
        .create_identity(
            &NewIdentity {
                email: Some("ann@example.com".into()),
                active: true,
                ..Default::default()
            },
            0,
        )
        .unwrap();
    let secrets = parse_secrets("profile-secret-0123456789abcdef0123456789").unwrap();
    let engine = Runtime::new(reclaim::runtime::EMBEDDED_COMPONENT, limits).unwrap();
    let reclaim = Reclaim::new(
        engine,
        Arc::new(storage),
        Settings::new("https://id.example.test", secrets),
    );
    let who = IdentityRef::Id(ann.id);
    for _ in 0..count {
        let link = reclaim.create_link(&who, None, None).wait().unwrap();
        if operation == "redeem-link" {
            reclaim
                .redeem_link(link.link.split("token=").nth(1).unwrap())
                .wait()
                .unwrap();
        }
    }
}
