//! One integration-test binary (each separate tests/*.rs would re-link candle and usearch).
//! Everything here runs the real model with real weights.

#![expect(
    clippy::unwrap_used,
    reason = "a test should fail loudly on any unexpected error"
)]

mod accuracy;
mod admin;
mod binary;
mod callers;
mod common;
mod config_map;
mod conversations;
mod embed_reference;
mod faults;
mod hostile;
mod http;
mod index_recall;
mod observability;
mod openapi;
mod policy_file;
mod reload;
mod reports;
mod serving;
mod shared_store;
mod slow_clients;
mod tenants;
mod ui;
