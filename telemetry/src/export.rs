//! Spans to an OpenTelemetry collector over OTLP (gRPC, or HTTP with protobuf bodies).
//!
//! Finished spans go through a bounded queue to one task, which sends them in batches (up to
//! [`BATCH`] spans, or what has come within [`LINGER`] of the first) and waits for each batch
//! to be sent before the next, as the OTLP exporters require. A full queue drops spans and
//! counts them: a slow or absent collector never slows requests. Nothing is retried past the
//! exporter's own timeout; a collector that is down loses the spans of that time, with a
//! warning at most once a minute.

use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};
use prometheus::IntCounter;
use tokio::sync::{mpsc, oneshot};

/// Spans sent in one export call at most.
pub const BATCH: usize = 512;
/// How long a batch waits for more spans after its first.
pub const LINGER: Duration = Duration::from_millis(500);
/// Spans waiting to be sent at most; more are dropped.
const QUEUE: usize = 8 * 1024;
/// How long one export may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The wire protocol to the collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// OTLP/gRPC (port 4317 by convention).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (port 4318, path `/v1/traces`).
    HttpProtobuf,
}

impl Protocol {
    /// As OpenTelemetry's `OTEL_EXPORTER_OTLP_PROTOCOL` names it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::HttpProtobuf => "http/protobuf",
        }
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "grpc" => Ok(Self::Grpc),
            "http/protobuf" => Ok(Self::HttpProtobuf),
            other => Err(format!(
                "{other:?} is not an OTLP protocol: grpc or http/protobuf"
            )),
        }
    }
}

/// Where spans go.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// `http://collector:4317`, `https://…` (gRPC), `http://collector:4318[/v1/traces]`.
    pub url: String,
    pub protocol: Protocol,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the OTLP endpoint {url} is not usable: {reason}")]
    Endpoint { url: String, reason: String },
}

/// What the exporter counts, for the process's metrics.
#[derive(Clone)]
pub struct Counters {
    /// Spans sent to the collector, as it acknowledged them.
    pub exported: IntCounter,
    /// Spans lost: the queue was full, or the collector refused or could not be reached.
    pub dropped: IntCounter,
}

impl Counters {
    /// `tollgate_trace_spans_total{outcome="exported"|"dropped"}`, registered in `registry`
    /// (once per registry: a second call finds the name taken). `of` says whose spans.
    pub fn register(registry: &prometheus::Registry, of: &str) -> Self {
        let spans = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "tollgate_trace_spans_total",
                format!(
                    "Spans of {of}: exported (the collector took them) or dropped (the queue \
                     was full, or the collector failed)"
                ),
            ),
            &["outcome"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(spans.clone()))
            .expect("registered once");
        Self {
            exported: spans.with_label_values(&["exported"]),
            dropped: spans.with_label_values(&["dropped"]),
        }
    }
}

enum Message {
    Span(Box<SpanData>),
    /// Answered once everything queued before it has been sent (or has failed).
    Flush(oneshot::Sender<()>),
}

/// A running exporter. Cheap to share; the task ends when the last handle is dropped, after
/// sending what is queued.
pub struct Exporter {
    endpoint: Endpoint,
    tx: mpsc::Sender<Message>,
    counters: Counters,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl Exporter {
    /// Starts an exporter on the current tokio runtime. `service` names the process in the
    /// spans' resource (`service.name`); `attributes` are added to it.
    pub fn start(
        endpoint: Endpoint,
        service: &'static str,
        attributes: Vec<opentelemetry::KeyValue>,
        counters: Counters,
    ) -> Result<Arc<Self>, ExportError> {
        let mut exporter = build(&endpoint)?;
        exporter.set_resource(
            &Resource::builder_empty()
                .with_service_name(service)
                .with_attributes(attributes)
                .build(),
        );
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(exporter, rx, endpoint.url.clone(), counters.clone()));
        Ok(Arc::new(Self {
            endpoint,
            tx,
            counters,
        }))
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Queues spans to send; drops (and counts) what does not fit.
    pub fn send(&self, spans: impl IntoIterator<Item = SpanData>) {
        for span in spans {
            if self.tx.try_send(Message::Span(Box::new(span))).is_err() {
                self.counters.dropped.inc();
            }
        }
    }

    /// Waits until every span queued so far has been sent, or has failed.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

fn build(endpoint: &Endpoint) -> Result<opentelemetry_otlp::SpanExporter, ExportError> {
    let bad = |reason: String| ExportError::Endpoint {
        url: endpoint.url.clone(),
        reason,
    };
    let uri: http::Uri = endpoint.url.parse().map_err(|e| bad(format!("{e}")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(bad("it must be an http:// or https:// URL".into()));
    }
    let built = match endpoint.protocol {
        Protocol::Grpc => {
            let mut builder = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.url.clone())
                .with_timeout(TIMEOUT);
            if uri.scheme_str() == Some("https") {
                builder = builder.with_tls_config(
                    opentelemetry_otlp::tonic_types::transport::ClientTlsConfig::new()
                        .with_webpki_roots(),
                );
            }
            builder.build()
        }
        Protocol::HttpProtobuf => {
            if uri.scheme_str() == Some("https") {
                return Err(bad(
                    "OTLP over HTTP is plain http:// only; use protocol grpc for https://".into(),
                ));
            }
            // The URL of the traces signal: the collector's base URL gets `/v1/traces`.
            let url = if uri.path().trim_end_matches('/').is_empty() {
                format!("{}/v1/traces", endpoint.url.trim_end_matches('/'))
            } else {
                endpoint.url.clone()
            };
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(url)
                .with_timeout(TIMEOUT)
                .build()
        }
    };
    built.map_err(|e| bad(e.to_string()))
}

async fn run(
    exporter: opentelemetry_otlp::SpanExporter,
    mut rx: mpsc::Receiver<Message>,
    url: String,
    counters: Counters,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut flushes = Vec::new();
    let mut last_warning: Option<Instant> = None;
    while let Some(first) = rx.recv().await {
        take(first, &mut batch, &mut flushes);
        let deadline = tokio::time::Instant::now() + LINGER;
        while batch.len() < BATCH && flushes.is_empty() {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(message)) => take(message, &mut batch, &mut flushes),
                Ok(None) | Err(_) => break,
            }
        }
        if !batch.is_empty() {
            let spans = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            let count = spans.len() as u64;
            match exporter.export(spans).await {
                Ok(()) => counters.exported.inc_by(count),
                Err(error) => {
                    counters.dropped.inc_by(count);
                    if last_warning.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                        last_warning = Some(Instant::now());
                        tracing::warn!(endpoint = %url, %error, spans = count, "spans not exported");
                    }
                }
            }
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

fn take(message: Message, batch: &mut Vec<SpanData>, flushes: &mut Vec<oneshot::Sender<()>>) {
    match message {
        Message::Span(span) => batch.push(*span),
        Message::Flush(done) => flushes.push(done),
    }
}
