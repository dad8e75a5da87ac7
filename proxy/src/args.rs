//! The proxy's command line: one struct, each flag with an environment twin, checked once at
//! start.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "tollgate-proxy",
    version,
    about = "Tollgate's data plane: serves compiled API tables"
)]
pub struct Args {
    /// Standalone mode: serve the ApiGateway, Route, UsagePlan and Secret resources in this
    /// YAML file or folder, and reload on change.
    #[arg(long, env = "TOLLGATE_CONFIG")]
    pub config: PathBuf,

    /// Address for API traffic.
    #[arg(long, env = "TOLLGATE_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Address for /healthz, /readyz, /metrics and /config.
    #[arg(long, env = "TOLLGATE_ADMIN_LISTEN", default_value = "127.0.0.1:9901")]
    pub admin_listen: SocketAddr,

    /// Domain under which each gateway answers as `{gateway}.{namespace}.{base domain}`.
    #[arg(long, env = "TOLLGATE_BASE_DOMAIN", default_value = "localhost")]
    pub base_domain: String,

    /// Format of the proxy's own logs (standard error).
    #[arg(long, env = "TOLLGATE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter, as RUST_LOG: `info`, `tollgate_proxy=debug`, ...
    #[arg(long, env = "TOLLGATE_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Where the JSON access log goes.
    #[arg(long, env = "TOLLGATE_ACCESS_LOG", value_enum, default_value_t = AccessLogTarget::Stdout)]
    pub access_log: AccessLogTarget,

    /// Seconds in-flight requests get to finish after SIGTERM.
    #[arg(long, env = "TOLLGATE_DRAIN_SECONDS", default_value_t = 30)]
    pub drain_seconds: u64,

    /// Seconds a client has to send a request's head (also closes idle keep-alive
    /// connections).
    #[arg(
        long,
        env = "TOLLGATE_HEADER_READ_TIMEOUT_SECONDS",
        default_value_t = 10
    )]
    pub header_read_timeout_seconds: u64,

    /// PEM bundle of extra CAs trusted for TLS backends.
    #[arg(long, env = "TOLLGATE_UPSTREAM_CA_FILE")]
    pub upstream_ca_file: Option<PathBuf>,

    /// Worker threads (default: one per core).
    #[arg(long, env = "TOLLGATE_WORKER_THREADS")]
    pub worker_threads: Option<usize>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessLogTarget {
    Stdout,
    Off,
}
