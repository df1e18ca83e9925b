//! Reclaim's HTTP API as a `wasi:http` component: Kratos' admin recovery
//! routes, authentik's user recovery routes, the self-service pages and
//! `/health/alive`, answered as `reclaim serve` answers them. Every shape,
//! check and page comes from `reclaim-wire`, which the native server uses
//! too. Recovery itself is the engine's, imported as
//! `reclaim:recovery/recovery`; `reclaim component --edge` composes the
//! three parts (this front, the engine, the filesystem provider) into the
//! one file that `wasmtime serve` runs.
//!
//! An edge runtime starts an instance per request, so nothing here keeps
//! state between requests: settings are read for each one.

// Only a wasm32-wasip2 build means anything; natively the crate is empty so
// that `cargo test --workspace` can pass over it.
#![cfg(target_arch = "wasm32")]

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "http-front",
    });
}

mod admin;
mod engine;
mod flows;
mod pages;
mod reply;
mod request;
mod routes;
mod settings;

use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Front;

wasip2::http::proxy::export!(Front);

impl wasip2::exports::http::incoming_handler::Guest for Front {
    fn handle(incoming: IncomingRequest, out: ResponseOutparam) {
        let id = uuid::Uuid::new_v4().to_string();
        let (path, reply) = match request::read(incoming, &id) {
            Ok(request) => (request.path.clone(), routes::route(&request)),
            Err((path, refusal)) => (path, refusal),
        };
        reply.send(out, &path, &id);
    }
}
