//! The proxy's command line: one struct, each flag with an environment twin, checked once at
//! start.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use tollgate_crds::table::ObjectKey;
use tollgate_telemetry::export::{Endpoint, Protocol};

#[derive(Parser, Debug)]
#[command(
    name = "tollgate-proxy",
    version,
    about = "Tollgate's data plane: serves compiled API tables"
)]
pub struct Args {
    /// Standalone mode: serve the ApiGateway, Route, UsagePlan and Secret resources in this
    /// YAML file or folder, and reload on change.
    /// Exactly one of `--config` and `--controller` is given.
    #[arg(long, env = "TOLLGATE_CONFIG")]
    pub config: Option<PathBuf>,

    /// Fleet mode: subscribe to the controller at this URL (`https://...`; `http://` for
    /// tests) for the table of `--gateway`. Needs `--gateway` and `--state-dir`.
    #[arg(long, env = "TOLLGATE_CONTROLLER")]
    pub controller: Option<String>,

    /// Fleet mode: the ApiGateway this proxy serves, as `NAMESPACE/NAME`.
    #[arg(long, env = "TOLLGATE_GATEWAY")]
    pub gateway: Option<String>,

    /// Fleet mode: where the last table received is kept (`table.json`), and served from at
    /// start, before the controller answers (or while it cannot).
    #[arg(long, env = "TOLLGATE_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Fleet mode: the ServiceAccount token sent as `Authorization: Bearer`, read again on
    /// every connection (tokens rotate).
    #[arg(long, env = "TOLLGATE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,

    /// Fleet mode: PEM bundle of the CAs trusted for the controller's certificate (default:
    /// the Mozilla roots).
    #[arg(long, env = "TOLLGATE_CA_FILE")]
    pub ca_file: Option<PathBuf>,

    /// Address for API traffic.
    #[arg(long, env = "TOLLGATE_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Address for HTTPS API traffic (HTTP/2 and HTTP/1.1 by ALPN): custom domains with a
    /// certificate, chosen by SNI, and the default certificate for other names.
    #[arg(long, env = "TOLLGATE_TLS_LISTEN")]
    pub tls_listen: Option<SocketAddr>,

    /// PEM certificate chain served on `--tls-listen` when SNI names no custom domain (or
    /// there is none); re-read when the file changes. Without it such handshakes are refused.
    #[arg(
        long,
        env = "TOLLGATE_TLS_DEFAULT_CERTIFICATE",
        requires = "tls_default_key"
    )]
    pub tls_default_certificate: Option<PathBuf>,

    /// The PEM private key of `--tls-default-certificate`.
    #[arg(
        long,
        env = "TOLLGATE_TLS_DEFAULT_KEY",
        requires = "tls_default_certificate"
    )]
    pub tls_default_key: Option<PathBuf>,

    /// The port clients reach HTTPS on, named in redirects of gateways with
    /// `redirectToHttps` (a Service may map 443 to `--tls-listen`'s port).
    #[arg(long, env = "TOLLGATE_HTTPS_PORT", default_value_t = 443)]
    pub https_port: u16,

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

    /// Where the access log goes: standard output, a file (`--access-log-file`, rotated by
    /// size), or nowhere.
    #[arg(long, env = "TOLLGATE_ACCESS_LOG", value_enum, default_value_t = AccessLogTarget::Stdout)]
    pub access_log: AccessLogTarget,

    /// The OpenTelemetry collector (OTLP) that traced stages send spans to when their
    /// gateway's `tracing` names none: `http://otel-collector:4317` (gRPC) or, with
    /// `--otlp-protocol http/protobuf`, `http://otel-collector:4318`.
    #[arg(long, env = "TOLLGATE_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// The OTLP transport to `--otlp-endpoint`: `grpc` or `http/protobuf`.
    #[arg(long, env = "TOLLGATE_OTLP_PROTOCOL", default_value = "grpc")]
    pub otlp_protocol: Protocol,

    /// `--access-log file`: the file lines are appended to; rotated ones are `PATH.1` (the
    /// newest) to `PATH.{max files}`.
    #[arg(long, env = "TOLLGATE_ACCESS_LOG_FILE")]
    pub access_log_file: Option<PathBuf>,

    /// `--access-log file`: the size a file is rotated at (a line is never split).
    #[arg(long, env = "TOLLGATE_ACCESS_LOG_MAX_BYTES", default_value_t = 100 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub access_log_max_bytes: u64,

    /// `--access-log file`: rotated files kept; the oldest is dropped past it (0: the file is
    /// started over instead).
    #[arg(long, env = "TOLLGATE_ACCESS_LOG_MAX_FILES", default_value_t = 5)]
    pub access_log_max_files: u32,

    /// Standalone mode: how many proxies serve these files (replicas behind one load
    /// balancer). In `Local` rate-limiting mode, and in `Redis` mode's `onFailure: Local`, each
    /// enforces `1 / fleet size` of every rate and quota. A fleet proxy is told its fleet's
    /// size by the controller instead.
    #[arg(long, env = "TOLLGATE_FLEET_SIZE", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub fleet_size: u32,

    /// Seconds in-flight requests get to finish after SIGTERM.
    #[arg(long, env = "TOLLGATE_DRAIN_SECONDS", default_value_t = 30)]
    pub drain_seconds: u64,

    /// Seconds the proxy keeps accepting and serving after SIGTERM, before it closes its
    /// listeners and drains: load balancers and endpoints may still send new connections for
    /// a while. 0 (the default) drains at once; fleet pods wait in a preStop hook instead.
    #[arg(long, env = "TOLLGATE_SHUTDOWN_DELAY_SECONDS", default_value_t = 0)]
    pub shutdown_delay_seconds: u64,

    /// Client connections served at once, plain and TLS together; past it new connections
    /// are closed unserved (`tollgate_connections_refused_total`, and a warning). Default:
    /// 10,000, or fewer if the open files limit (raised to its hard limit at start) cannot
    /// hold that many with a backend connection each.
    #[arg(long, env = "TOLLGATE_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,

    /// Seconds a client has to send a request's head (also closes idle keep-alive
    /// connections, and HTTP/2 connections with no open stream for as long).
    #[arg(
        long,
        env = "TOLLGATE_HEADER_READ_TIMEOUT_SECONDS",
        default_value_t = 10
    )]
    pub header_read_timeout_seconds: u64,

    /// Seconds a WebSocket passed through to a backend may carry nothing either way before
    /// the proxy closes it (Amazon's idle timeout for WebSocket APIs: 10 minutes).
    #[arg(
        long,
        env = "TOLLGATE_WEBSOCKET_IDLE_TIMEOUT_SECONDS",
        default_value_t = 600,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub websocket_idle_timeout_seconds: u64,

    /// Seconds a client may send nothing while the proxy waits for its request body: 408
    /// after that.
    #[arg(long, env = "TOLLGATE_BODY_READ_TIMEOUT_SECONDS", default_value_t = 10)]
    pub body_read_timeout_seconds: u64,

    /// Bytes of request bodies held in memory at once, across all requests (bodies for Lambda
    /// and mock integrations; HTTP backends get theirs streamed). A body that would pass it is
    /// refused with 503.
    #[arg(
        long,
        env = "TOLLGATE_MAX_BUFFERED_BODY_BYTES",
        default_value_t = 512 * 1024 * 1024
    )]
    pub max_buffered_body_bytes: usize,

    /// PEM bundle of extra CAs trusted for TLS backends.
    #[arg(long, env = "TOLLGATE_UPSTREAM_CA_FILE")]
    pub upstream_ca_file: Option<PathBuf>,

    /// Worker threads (default: one per core).
    #[arg(long, env = "TOLLGATE_WORKER_THREADS")]
    pub worker_threads: Option<usize>,
}

/// Where the tables come from, as the flags say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Standalone { config: PathBuf },
    Fleet(FleetArgs),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetArgs {
    pub controller: String,
    pub gateway: ObjectKey,
    pub state_dir: PathBuf,
    pub token_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
}

impl Args {
    /// Checks that exactly one mode is chosen, with what it needs.
    /// The proxy's own collector, from `--otlp-endpoint` and `--otlp-protocol`.
    pub fn otlp_endpoint(&self) -> Option<Endpoint> {
        let url = self.otlp_endpoint.clone().filter(|u| !u.is_empty())?;
        Some(Endpoint {
            url,
            protocol: self.otlp_protocol,
        })
    }

    pub fn mode(&self) -> Result<Mode, String> {
        match (&self.config, &self.controller) {
            (Some(_), Some(_)) => Err(
                "--config (standalone mode) and --controller (fleet mode) exclude each other; give one"
                    .into(),
            ),
            (None, None) => Err(
                "give --config PATH (standalone mode: serve resource files) or --controller URL \
                 (fleet mode: with --gateway NAMESPACE/NAME and --state-dir DIR)"
                    .into(),
            ),
            (Some(config), None) => {
                let fleet_only = [
                    ("--gateway", self.gateway.is_some()),
                    ("--state-dir", self.state_dir.is_some()),
                    ("--token-file", self.token_file.is_some()),
                    ("--ca-file", self.ca_file.is_some()),
                ];
                match fleet_only.iter().find(|(_, given)| *given) {
                    Some((flag, _)) => Err(format!(
                        "{flag} is for fleet mode (--controller); standalone mode (--config) does not use it"
                    )),
                    None => Ok(Mode::Standalone {
                        config: config.clone(),
                    }),
                }
            }
            (None, Some(controller)) => {
                if !(controller.starts_with("https://") || controller.starts_with("http://")) {
                    return Err(format!(
                        "--controller {controller:?}: expected an https:// (or http://) URL"
                    ));
                }
                controller
                    .parse::<http::Uri>()
                    .map_err(|e| format!("--controller {controller:?}: {e}"))?;
                let gateway = self
                    .gateway
                    .as_deref()
                    .ok_or("fleet mode (--controller) needs --gateway NAMESPACE/NAME")?;
                let gateway = parse_gateway(gateway)?;
                let state_dir = self
                    .state_dir
                    .clone()
                    .ok_or("fleet mode (--controller) needs --state-dir DIR")?;
                Ok(Mode::Fleet(FleetArgs {
                    controller: controller.trim_end_matches('/').to_string(),
                    gateway,
                    state_dir,
                    token_file: self.token_file.clone(),
                    ca_file: self.ca_file.clone(),
                }))
            }
        }
    }
}

/// `NAMESPACE/NAME`, both Kubernetes names (lower-case letters, digits, '-' and '.').
fn parse_gateway(s: &str) -> Result<ObjectKey, String> {
    let valid = |part: &str| {
        !part.is_empty()
            && part.len() <= 253
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    };
    match s.split_once('/') {
        Some((namespace, name)) if valid(namespace) && valid(name) => {
            Ok(ObjectKey::new(namespace, name))
        }
        _ => Err(format!(
            "--gateway {s:?}: expected NAMESPACE/NAME, both Kubernetes names"
        )),
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessLogTarget {
    Stdout,
    File,
    Off,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(args: &[&str]) -> Result<Mode, String> {
        let mut argv = vec!["tollgate-proxy"];
        argv.extend_from_slice(args);
        Args::try_parse_from(argv).unwrap().mode()
    }

    #[test]
    fn exactly_one_mode_is_chosen() {
        assert!(matches!(
            mode(&["--config", "x"]),
            Ok(Mode::Standalone { .. })
        ));
        assert!(mode(&[]).unwrap_err().contains("--config PATH"));
        assert!(
            mode(&["--config", "x", "--controller", "https://c"])
                .unwrap_err()
                .contains("exclude each other")
        );
        assert!(
            mode(&["--config", "x", "--state-dir", "d"])
                .unwrap_err()
                .contains("--state-dir is for fleet mode")
        );
    }

    #[test]
    fn fleet_mode_needs_a_gateway_and_a_state_dir() {
        let ok = mode(&[
            "--controller",
            "https://tollgate-controller.tollgate-system.svc:8443/",
            "--gateway",
            "shop/api",
            "--state-dir",
            "/var/lib/tollgate",
        ])
        .unwrap();
        let Mode::Fleet(fleet) = ok else {
            panic!("fleet mode expected")
        };
        assert_eq!(fleet.gateway, ObjectKey::new("shop", "api"));
        assert_eq!(
            fleet.controller,
            "https://tollgate-controller.tollgate-system.svc:8443"
        );
        let no_gw = mode(&["--controller", "https://c", "--state-dir", "d"]);
        assert!(no_gw.unwrap_err().contains("needs --gateway"));
        let no_dir = mode(&["--controller", "https://c", "--gateway", "a/b"]);
        assert!(no_dir.unwrap_err().contains("needs --state-dir"));
        for bad in ["api", "/api", "shop/", "Shop/api", "a/b/c"] {
            let r = mode(&[
                "--controller",
                "https://c",
                "--gateway",
                bad,
                "--state-dir",
                "d",
            ]);
            assert!(r.unwrap_err().contains("NAMESPACE/NAME"), "{bad}");
        }
        let scheme = mode(&[
            "--controller",
            "c:80",
            "--gateway",
            "a/b",
            "--state-dir",
            "d",
        ]);
        assert!(scheme.unwrap_err().contains("https://"));
    }
}
