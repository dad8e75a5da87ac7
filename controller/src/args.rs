//! The controller's command line: one struct, each flag with an environment twin, checked once
//! at start. The API server is found the standard way (`KUBECONFIG`, then in-cluster).

use std::net::SocketAddr;
use std::path::PathBuf;

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

    /// Address of the snapshot service (HTTPS, HTTP/2 or HTTP/1.1), where proxies subscribe to
    /// their gateway's table and acknowledge it.
    #[arg(long, env = "TOLLGATE_SNAPSHOT_LISTEN", default_value = "0.0.0.0:9443")]
    pub snapshot_listen: SocketAddr,

    /// The snapshot service's certificate chain (PEM). Without it (and `--tls-key-file`), the
    /// controller serves a certificate signed by its own CA, kept in the Secret
    /// `tollgate-snapshot-ca` of `--namespace`.
    #[arg(long, env = "TOLLGATE_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,

    /// The private key (PEM) of `--tls-cert-file`. Both files are re-read when they change.
    #[arg(long, env = "TOLLGATE_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,

    /// The CA (PEM) that issues `--tls-cert-file`, which the proxy fleets are given to trust.
    /// Without it they trust `--tls-cert-file` itself, until that certificate is renewed.
    #[arg(long, env = "TOLLGATE_TLS_CA_FILE", requires = "tls_cert_file")]
    pub tls_ca_file: Option<PathBuf>,

    /// The controller's own namespace: where the snapshot CA Secret lives. It must exist.
    #[arg(long, env = "POD_NAMESPACE", default_value = "tollgate-system")]
    pub namespace: String,

    /// Names (DNS names or IP addresses, comma-separated) of the serving certificate the
    /// controller issues itself. Default: `localhost,127.0.0.1,tollgate-controller.{namespace}.svc`.
    #[arg(long, env = "TOLLGATE_SNAPSHOT_DNS_NAMES", value_delimiter = ',')]
    pub snapshot_dns_names: Vec<String>,

    /// The OpenTelemetry collector (OTLP) the controller sends the spans of its reconcile
    /// passes to, and the proxy fleets theirs when a gateway's `tracing` names no collector:
    /// `http://otel-collector.monitoring:4317` (gRPC) or, with `--otlp-protocol
    /// http/protobuf`, `…:4318`. Unset: no spans.
    #[arg(long, env = "TOLLGATE_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// The OTLP transport to `--otlp-endpoint`: `grpc` or `http/protobuf`.
    #[arg(long, env = "TOLLGATE_OTLP_PROTOCOL", default_value = "grpc")]
    pub otlp_protocol: tollgate_telemetry::export::Protocol,

    /// The proxy image of every gateway's fleet (Deployment or DaemonSet).
    #[arg(
        long,
        env = "TOLLGATE_PROXY_IMAGE",
        default_value = "ghcr.io/tollgate-dev/tollgate-proxy:0.1.0"
    )]
    pub proxy_image: String,

    /// Address of the plain-HTTP metrics endpoint: `/metrics` (Prometheus), `/healthz`, and
    /// `/readyz` (200 once every watcher has listed its objects).
    #[arg(long, env = "TOLLGATE_METRICS_LISTEN", default_value = "0.0.0.0:8080")]
    pub metrics_listen: SocketAddr,

    /// Leader election: seconds the Lease `tollgate-controller` (in `--namespace`) stays
    /// valid without renewal. The leader renews every third of it and stops writing after two
    /// thirds without a renewal; others take over after a full duration without change.
    #[arg(long, env = "TOLLGATE_LEASE_DURATION_SECONDS", default_value_t = 15,
          value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub lease_duration_seconds: u32,

    /// Seconds between two writes of a UsagePlan's `status.usage` (the current period's use):
    /// each plan is written at most once per interval, and only when its figures changed.
    #[arg(long, env = "TOLLGATE_USAGE_STATUS_INTERVAL_SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub usage_status_interval_seconds: u64,

    /// Format of the controller's logs (standard error).
    #[arg(long, env = "TOLLGATE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter, as RUST_LOG: `info`, `tollgate_controller=debug`, ...
    #[arg(long, env = "TOLLGATE_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

impl Args {
    /// The collector of `--otlp-endpoint` and `--otlp-protocol`.
    pub fn otlp_endpoint(&self) -> Option<tollgate_telemetry::export::Endpoint> {
        let url = self.otlp_endpoint.clone().filter(|u| !u.is_empty())?;
        Some(tollgate_telemetry::export::Endpoint {
            url,
            protocol: self.otlp_protocol,
        })
    }

    /// The names of the serving certificate the controller issues itself.
    pub fn snapshot_dns_names(&self) -> Vec<String> {
        let names: Vec<String> = self
            .snapshot_dns_names
            .iter()
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .collect();
        if names.is_empty() {
            vec![
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
                format!("tollgate-controller.{}.svc", self.namespace),
            ]
        } else {
            names
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}
