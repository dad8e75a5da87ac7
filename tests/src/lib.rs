//! Harness for Tollgate's end-to-end tests: the real `tollgate-proxy` binary as a child
//! process ([`proxy`]), real HTTP backends on loopback sockets ([`backend`]), real clients
//! ([`client`]), resource YAML in temporary folders ([`config`]) and polling helpers
//! ([`wait`]), Redis ([`redis`]), WebSocket ends ([`websocket`]), Prometheus and promtool
//! ([`prometheus`]). Nothing on the data path is mocked; every socket is on 127.0.0.1. Fleet-mode
//! tests talk to an in-process fake controller ([`fake_controller`]) that speaks the real
//! snapshot protocol with real compiled tables.

pub mod backend;
pub mod client;
pub mod collector;
pub mod config;
pub mod control_plane;
pub mod controller;
pub mod fake_controller;
pub mod helm;
pub mod lambda;
pub mod prometheus;
pub mod proxy;
pub mod redis;
pub mod sigv4;
pub mod throttling;
pub mod tls;
pub mod wait;
pub mod websocket;

/// The workspace root (the folder holding the root `Cargo.toml`).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the workspace")
        .to_path_buf()
}

/// The strings of a JSON array (a container's `args`, say); anything else gives none.
pub fn json_strings(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs one of the project's build scripts (`tests/h2spec/build`, `tests/lambda/build`, ...),
/// which build or reuse a pinned tool in the cache outside the repository, and returns the
/// path it prints. Its progress goes to the test's standard error.
pub fn built_by(script: &str) -> std::path::PathBuf {
    let script = workspace_root().join(script);
    let out = std::process::Command::new(&script)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(out.status.success(), "{} failed", script.display());
    std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}
