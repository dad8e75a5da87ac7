//! Traces of a gateway's requests: OpenTelemetry where Amazon API Gateway has X-Ray.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where and how often a gateway's requests are traced, with OpenTelemetry: each traced
/// request gives a server span with a child for each phase that calls out (the authorizer,
/// Redis, the integration), sent over OTLP to a collector (the OpenTelemetry Collector,
/// Jaeger, Tempo…). Every stage is traced unless it sets `tracingEnabled: false`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TracingSettings {
    /// The collector's OTLP endpoint: `http://otel-collector.monitoring:4317` (gRPC; also
    /// `https://`) or `http://otel-collector.monitoring:4318` (HTTP, `/v1/traces` added when
    /// the URL has no path). Unset: the collector the proxies were started with
    /// (`--otlp-endpoint`); with neither, the trace context is still read and passed on to
    /// backends, and no span is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https?://[^\s/]+(/[^\s]*)?$"))]
    pub endpoint: Option<String>,

    /// The OTLP transport: `grpc` (the default) or `http/protobuf`.
    #[serde(default)]
    pub protocol: OtlpProtocol,

    /// The share of requests traced (0 to 1) when the caller has not decided: a caller's
    /// sampled `traceparent` or `X-Amzn-Trace-Id: …;Sampled=1` is always followed, so that
    /// its trace is whole. Default 0.05, as X-Ray's default rule's fixed rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub sampling_ratio: Option<f64>,
}

/// The OTLP transport to a collector.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum OtlpProtocol {
    #[default]
    #[serde(rename = "grpc")]
    Grpc,
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

/// The sampling ratio a gateway gets when it names none.
pub const DEFAULT_SAMPLING_RATIO: f64 = 0.05;
