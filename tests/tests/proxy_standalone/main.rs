//! End-to-end tests of `tollgate-proxy` in standalone mode: the real binary, started on
//! resource YAML in a temporary folder, in front of real HTTP backends on 127.0.0.1, driven by
//! real clients. Each test starts its own proxy and backends on free ports.
//!
//! Needs the binary: `cargo build --workspace --bins` (as `make test` does) before
//! `cargo test -p tollgate-tests`.

mod api_keys;
mod canary;
mod http_integration;
mod lifecycle;
mod limits;
mod observability;
mod reload;
mod routing;

use std::ops::{Deref, DerefMut};

use serde_json::Value;
use tollgate_tests::config::ConfigDir;
use tollgate_tests::proxy::Proxy;

/// A proxy serving a temporary folder of resources; both go away when dropped.
pub struct Running {
    pub proxy: Proxy,
    pub config: ConfigDir,
}

impl Deref for Running {
    type Target = Proxy;
    fn deref(&self) -> &Proxy {
        &self.proxy
    }
}

impl DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Proxy {
        &mut self.proxy
    }
}

/// Writes `resources` to `resources.yaml` in a new folder and starts a proxy on it.
pub fn serve(resources: &[Value], extra_args: &[&str]) -> Running {
    let config = ConfigDir::with("resources.yaml", resources);
    let proxy = Proxy::start_standalone(config.path(), extra_args);
    Running { proxy, config }
}

/// Parses a metric sample line's value.
pub fn sample_value(line: &str) -> f64 {
    line.rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("not a sample line: {line}"))
}
