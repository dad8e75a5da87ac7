//! End-to-end tests of `tollgate-proxy` in standalone mode: the real binary, started on
//! resource YAML in a temporary folder, in front of real HTTP backends on 127.0.0.1, driven by
//! real clients. Each test starts its own proxy and backends on free ports.
//!
//! Needs the binary: `cargo build --workspace --bins` (as `make test` does) before
//! `cargo test -p tollgate-tests`.

mod access_log_formats;
mod api_keys;
mod bodies;
mod canary;
mod http_integration;
mod lifecycle;
mod limits;
mod listener;
mod observability;
mod quickstart;
mod reload;
mod reload_safety;
mod request_path;
mod routing;
mod startup;
mod websocket;

pub use tollgate_tests::proxy::{Served as Running, serve};

/// Parses a metric sample line's value.
pub fn sample_value(line: &str) -> f64 {
    line.rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("not a sample line: {line}"))
}
