//! Tollgate's traces, shared by the proxy and the controller: reading and writing trace
//! context on HTTP headers, W3C `traceparent`/`tracestate` and Amazon's `X-Amzn-Trace-Id`
//! ([`propagation`]); the sampling decision ([`sampling`]); spans as OpenTelemetry's data
//! model ([`span`]); and the OTLP exporter that batches them to a collector ([`export`]).
//!
//! Spans are built only for sampled requests: a request that is not sampled costs its ids
//! and the headers that carry them on, nothing else.

pub mod export;
pub mod propagation;
pub mod sampling;
pub mod span;

pub use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
pub use opentelemetry::{InstrumentationScope, KeyValue};
pub use opentelemetry_sdk::trace::SpanData;

/// A new trace id that X-Ray accepts as well: its first four bytes are the time in seconds
/// (X-Ray's `1-{time}-{random}` root), the other twelve random.
pub fn new_trace_id() -> TraceId {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as u32;
    let mut bytes = [0u8; 16];
    bytes[..4].copy_from_slice(&seconds.to_be_bytes());
    bytes[4..12].copy_from_slice(&fastrand::u64(..).to_be_bytes());
    bytes[12..].copy_from_slice(&fastrand::u32(..).to_be_bytes());
    TraceId::from_bytes(bytes)
}

/// A new span id, never the invalid all-zero one.
pub fn new_span_id() -> SpanId {
    SpanId::from_bytes(fastrand::u64(1..).to_be_bytes())
}
