//! A webhook endpoint for benchmarks (`scripts/bench-http` with
//! `RECLAIM_BENCH_WEBHOOK=1`): answers every request 204 at once, checks
//! and keeps nothing, so that what it costs the machine is small beside
//! what the benchmark measures.
//!
//!     cargo run --release -p reclaim-server --example webhook_sink -- PORT

use std::convert::Infallible;

use anyhow::Context;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .context("usage: webhook_sink PORT")?
        .parse()?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let answer = hyper::service::service_fn(
                |request: hyper::Request<hyper::body::Incoming>| async move {
                    let _ = request.into_body().collect().await;
                    Ok::<_, Infallible>(
                        hyper::Response::builder()
                            .status(204)
                            .body(Empty::<Bytes>::new())
                            .expect("a static response"),
                    )
                },
            );
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), answer)
                .await;
        });
    }
}
