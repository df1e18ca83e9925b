//! Create-then-redeem, one caller, for SECONDS on each storage: the Rust
//! host's row of `scripts/bench-hosts` (Python and Node.js run the same
//! loop). SQLite is the default backend (synchronous=FULL: one sync per
//! operation with a single caller); the in-memory backend leaves the
//! component and the runtime alone, so the difference is the storage's;
//! with a `postgresql://` URL, PostgreSQL too.
//!
//! ```sh
//! cargo run --release -p reclaim --example create_redeem -- DIR SECONDS [DATABASE_URL]
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use reclaim::backends::{self, Location, MemoryStorage};
use reclaim::directory::NewIdentity;
use reclaim::settings::parse_secrets;
use reclaim::storage;
use reclaim::{IdentityRef, Reclaim, Runtime, Settings};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("DIR"));
    let seconds: u64 = args.next().expect("SECONDS").parse()?;
    let sqlite = backends::open(&Location::Sqlite {
        path: dir.join("rust.db"),
        durability: Default::default(),
    })?;
    let memory: Arc<dyn storage::Backend> = Arc::new(MemoryStorage::new());
    let mut opened = vec![("sqlite", sqlite), ("memory", memory)];
    if let Some(url) = args.next() {
        let location = Location::Postgres {
            url,
            ca: None,
            directory: None,
        };
        opened.push(("postgresql", backends::open(&location)?));
    }
    for (name, backend) in opened {
        let ann = backend.create_identity(
            &NewIdentity {
                email: Some("ann@example.com".into()),
                active: true,
                ..Default::default()
            },
            0,
        )?;
        let secrets = parse_secrets("bench-secret-0123456789abcdef0123456789abcdef")?;
        let reclaim = Reclaim::new(
            Runtime::embedded()?,
            backend,
            Settings::new("https://id.example.test", secrets),
        );
        let who = IdentityRef::Id(ann.id);
        let pair = || -> anyhow::Result<()> {
            let link = reclaim.create_link(&who, None, None).wait()?;
            let token = link.link.rsplit("token=").next().unwrap_or_default();
            reclaim.redeem_link(token).wait()?;
            Ok(())
        };
        for _ in 0..50 {
            pair()?;
        }
        let (started, mut pairs) = (Instant::now(), 0u64);
        while started.elapsed() < Duration::from_secs(seconds) {
            pair()?;
            pairs += 1;
        }
        let rate = pairs as f64 / started.elapsed().as_secs_f64();
        println!("{{\"host\": \"rust\", \"storage\": \"{name}\", \"pairs_per_s\": {rate:.1}}}");
    }
    Ok(())
}
