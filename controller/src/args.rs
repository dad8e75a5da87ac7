//! The controller's command line: one struct, each flag with an environment twin, checked once
//! at start. The API server is found the standard way (`KUBECONFIG`, then in-cluster).

use clap::{Parser, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "tollgate-controller",
    version,
    about = "Tollgate's operator: compiles ApiGateway, Route and UsagePlan resources and reports their status"
)]
pub struct Args {
    /// Domain under which each gateway answers as `{gateway}.{namespace}.{base domain}`; used
    /// for the invoke URLs in the ApiGateway status.
    #[arg(long, env = "TOLLGATE_BASE_DOMAIN", default_value = "localhost")]
    pub base_domain: String,

    /// Format of the controller's logs (standard error).
    #[arg(long, env = "TOLLGATE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter, as RUST_LOG: `info`, `tollgate_controller=debug`, ...
    #[arg(long, env = "TOLLGATE_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}
