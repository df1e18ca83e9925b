//! The `reclaim` binary's tests, in one binary (one link of wasmtime rather
//! than one per file), a module per area; `common` holds the helpers they
//! share: a served instance, a mail sink, forms.

mod common;

mod browser;
mod cli;
mod contract;
mod courier;
mod crash;
mod edge;
mod elements;
mod embedding;
mod flows;
mod full_disk;
mod handoff;
mod http_api;
mod identities;
mod kratos_sdk;
mod layering;
mod limits;
mod observability;
mod platform_directory;
mod replicas;
mod round_trips;
mod schema;
mod security;
mod self_service;
mod wasmtime_cli;
mod webhooks;
