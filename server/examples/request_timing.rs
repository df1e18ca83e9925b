//! Can a client tell a known address from an unknown one by timing its own
//! next request? Measured as the security review measured it: a
//! self-service request (`POST /self-service/recovery`), then at once a
//! confirmation with a bogus token (`POST /self-service/recovery/confirm`),
//! timed. Also a train of probes over the following half second, which is
//! where the queued work is served, reported as each train's slowest probe.
//!
//! ```sh
//! cargo build --release -p reclaim-server
//! cargo run --release -p reclaim-server --example request_timing -- target/release/reclaim 150
//! ```
//!
//! The rate limits are raised for the run (one probe per request would do
//! within the defaults; many make a median). Durability is the default,
//! `full`, where a commit costs a sync of the disk.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let binary = args
        .next()
        .unwrap_or_else(|| "target/release/reclaim".into());
    let rounds: usize = args.next().map_or(Ok(150), |n| n.parse())?;
    let data = tempfile::tempdir()?;
    let config = data.path().join("bench.toml");
    std::fs::write(
        &config,
        "[rate_limit]\nper_address = 1000000\nper_client = 1000000\n",
    )?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let env = [
        (
            "RECLAIM_DATA",
            data.path().join("data").display().to_string(),
        ),
        ("RECLAIM_PUBLIC_URL", base.clone()),
        ("RECLAIM_ADMIN_TOKEN", "bench-admin-token-0123456789".into()),
        ("RECLAIM_CONFIG", config.display().to_string()),
        ("RECLAIM_LOG", "error".into()),
    ];
    let created = Command::new(&binary)
        .envs(env.clone())
        .args(["identity", "create", "--email", "known@bench.test"])
        .output()?;
    anyhow::ensure!(created.status.success(), "identity create failed");
    let mut server = Command::new(&binary)
        .envs(env)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut announced = String::new();
    BufReader::new(server.stdout.take().expect("piped")).read_line(&mut announced)?;

    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    // A browser's CSRF cookie and token (a server without them ignores both).
    let page = client.get(format!("{base}/self-service/recovery")).send()?;
    let cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("reclaim_csrf="))
        .map(|v| v.split(';').next().unwrap_or_default().to_string())
        .unwrap_or_default();
    let body = page.text()?;
    let token = body
        .split("name=\"csrf_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_string();
    let post = |path: &str, fields: &[(&str, &str)]| -> anyhow::Result<Duration> {
        let mut fields = fields.to_vec();
        fields.push(("csrf_token", &token));
        let started = Instant::now();
        let response = client
            .post(format!("{base}{path}"))
            .header("cookie", &cookie)
            .header("origin", &base)
            .form(&fields)
            .send()?;
        let _ = response.bytes()?;
        Ok(started.elapsed())
    };
    let bogus = "A".repeat(43);

    let mut immediate = [Vec::new(), Vec::new()];
    let mut slowest_in_train = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        // Alternate which case goes first, so drift hits both alike.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for case in order {
            let email = if case == 0 {
                "known@bench.test".to_string()
            } else {
                format!("nobody{round}@bench.test")
            };
            post("/self-service/recovery", &[("email", &email)])?;
            immediate[case].push(post(
                "/self-service/recovery/confirm",
                &[("token", &bogus)],
            )?);
            let train_ends = Instant::now() + Duration::from_millis(500);
            let mut slowest = Duration::ZERO;
            while Instant::now() < train_ends {
                slowest = slowest.max(post(
                    "/self-service/recovery/confirm",
                    &[("token", &bogus)],
                )?);
                std::thread::sleep(Duration::from_millis(2));
            }
            slowest_in_train[case].push(slowest);
            // Let the courier finish, so rounds don't overlap.
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    let _ = server.kill();
    let _ = server.wait();

    println!("{rounds} rounds per case, {binary}");
    for (what, samples) in [
        ("follow-up request at once", &mut immediate),
        ("slowest probe of the next 500 ms", &mut slowest_in_train),
    ] {
        let [known, unknown] = samples;
        println!(
            "{what}: known median {:.2} ms p90 {:.2} ms | unknown median {:.2} ms p90 {:.2} ms | {}",
            ms(quantile(known, 0.5)),
            ms(quantile(known, 0.9)),
            ms(quantile(unknown, 0.5)),
            ms(quantile(unknown, 0.9)),
            separation(known, unknown),
        );
    }
    Ok(())
}

fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) as f64 * q).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// How often one probe tells the cases apart with the best threshold: the
/// share of known samples above it and unknown samples below it, averaged
/// (50% is a coin toss).
fn separation(known: &[Duration], unknown: &[Duration]) -> String {
    let mut best = 0.5f64;
    for threshold in known.iter().chain(unknown) {
        let above = known.iter().filter(|k| *k > threshold).count() as f64 / known.len() as f64;
        let below =
            unknown.iter().filter(|u| *u <= threshold).count() as f64 / unknown.len() as f64;
        best = best.max((above + below) / 2.0);
    }
    format!(
        "one probe tells them apart {:.0}% of the time",
        best * 100.0
    )
}
