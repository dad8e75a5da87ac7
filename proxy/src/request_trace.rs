//! A request's trace: its ids, the context it passes on, and, when it is sampled, its spans.
//!
//! On a traced stage ([`StageTracing`], from the gateway's `tracing` and the stage's
//! `tracingEnabled`), the gateway phase reads the caller's context (`traceparent`, else
//! `X-Amzn-Trace-Id`) or starts a trace, and decides whether it is recorded
//! ([`TraceIds::begin`]). Every call the request makes carries the context on
//! ([`Propagate`], injected by [`crate::upstream`]): the authorizer's and the integration's,
//! each naming the span that makes it, so a backend's spans hang under the right one. The
//! answer says the trace in `X-Amzn-Trace-Id`, as Amazon's does.
//!
//! Only a sampled request records spans ([`Recording`], kept by the log phase): a server span
//! for the request and a child for each phase that calls out — the authorizer, the throttle
//! when its counters are in Redis, the integration. They go to the collector when the access
//! log line is written, through the stage's exporter ([`Tracers`]). A request that is not
//! sampled costs its ids and the headers that carry them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use hyper::HeaderMap;
use hyper::header::HeaderValue;
use tollgate_crds::resources::OtlpProtocol;
use tollgate_crds::table::TracingTable;
use tollgate_telemetry::export::{Counters, Endpoint, Exporter, Protocol};
use tollgate_telemetry::span::{self, Finished, Ids};
use tollgate_telemetry::{
    InstrumentationScope, KeyValue, SpanId, SpanKind, Status, TraceId, propagation, sampling,
};

use crate::access_log::AccessRecord;

/// The `service.name` of the proxy's spans.
pub const SERVICE: &str = "tollgate-proxy";

/// How a stage is traced, resolved once per table.
#[derive(Debug, Clone)]
pub struct StageTracing {
    ratio: f64,
    /// The gateway's collector; `None`: the proxy's own.
    endpoint: Option<Endpoint>,
}

impl StageTracing {
    pub fn build(table: &TracingTable) -> Self {
        Self {
            ratio: table.sampling_ratio,
            endpoint: table.endpoint.as_ref().map(|url| Endpoint {
                url: url.clone(),
                protocol: protocol(table.protocol),
            }),
        }
    }

    /// The gateway's own collector, if it names one.
    pub fn endpoint(&self) -> Option<&Endpoint> {
        self.endpoint.as_ref()
    }
}

/// The resource's transport as the exporter names it.
fn protocol(p: OtlpProtocol) -> Protocol {
    match p {
        OtlpProtocol::Grpc => Protocol::Grpc,
        OtlpProtocol::HttpProtobuf => Protocol::HttpProtobuf,
    }
}

/// The exporters of every collector the tables name, and the proxy's own; shared by all
/// requests, refreshed when tables are installed.
pub struct Tracers {
    /// The collector of `--otlp-endpoint`.
    default: Option<Arc<Exporter>>,
    by_endpoint: ArcSwap<HashMap<Endpoint, Arc<Exporter>>>,
    counters: Counters,
    /// The instrumentation scope of every span, made once.
    scope: InstrumentationScope,
}

impl Tracers {
    /// Starts the proxy's own exporter, if it has a collector. Needs the tokio runtime.
    pub fn new(default: Option<Endpoint>, counters: Counters) -> anyhow::Result<Self> {
        let default = default
            .map(|endpoint| start(endpoint, &counters))
            .transpose()?;
        Ok(Self {
            default,
            by_endpoint: ArcSwap::from_pointee(HashMap::new()),
            counters,
            scope: span::scope("tollgate-proxy", env!("CARGO_PKG_VERSION")),
        })
    }

    /// No collector at all (tests).
    pub fn none(counters: Counters) -> Self {
        Self {
            default: None,
            by_endpoint: ArcSwap::from_pointee(HashMap::new()),
            counters,
            scope: span::scope("tollgate-proxy", env!("CARGO_PKG_VERSION")),
        }
    }

    /// Starts an exporter for each collector `endpoints` name that has none yet, and lets go
    /// of those no table names any more (they send what they hold, then stop). A collector
    /// URL the exporter cannot use is logged and its stages send nothing.
    pub fn refresh<'a>(&self, endpoints: impl IntoIterator<Item = &'a Endpoint>) {
        let current = self.by_endpoint.load();
        let mut next = HashMap::new();
        for endpoint in endpoints {
            if next.contains_key(endpoint) {
                continue;
            }
            let exporter = match current.get(endpoint) {
                Some(running) => running.clone(),
                None => match start(endpoint.clone(), &self.counters) {
                    Ok(started) => started,
                    Err(error) => {
                        tracing::error!(%error, "traces of this collector's stages are not sent");
                        continue;
                    }
                },
            };
            next.insert(endpoint.clone(), exporter);
        }
        self.by_endpoint.store(Arc::new(next));
    }

    /// The exporter of a stage's collector.
    fn exporter(&self, tracing: &StageTracing) -> Option<Arc<Exporter>> {
        match &tracing.endpoint {
            Some(endpoint) => self.by_endpoint.load().get(endpoint).cloned(),
            None => self.default.clone(),
        }
    }

    /// Sends what every exporter holds (at shutdown).
    pub async fn flush(&self) {
        if let Some(default) = &self.default {
            default.flush().await;
        }
        let exporters: Vec<_> = self.by_endpoint.load().values().cloned().collect();
        for exporter in exporters {
            exporter.flush().await;
        }
    }
}

fn start(endpoint: Endpoint, counters: &Counters) -> anyhow::Result<Arc<Exporter>> {
    let host = std::env::var("HOSTNAME").unwrap_or_default();
    let attributes = if host.is_empty() {
        Vec::new()
    } else {
        vec![KeyValue::new("host.name", host)]
    };
    Ok(Exporter::start(
        endpoint,
        SERVICE,
        attributes,
        counters.clone(),
    )?)
}

/// A traced request's ids: the trace, the spans it makes, and the caller's.
#[derive(Clone, Debug)]
pub struct TraceIds {
    pub trace_id: TraceId,
    /// The request's own (server) span.
    pub server: SpanId,
    /// The authorizer's call, and the integration's.
    pub auth: SpanId,
    pub integration: SpanId,
    /// The caller's span, when it sent one.
    pub parent: Option<SpanId>,
    pub sampled: bool,
    /// The caller's W3C vendor state, passed on.
    pub tracestate: Option<HeaderValue>,
}

impl TraceIds {
    /// The caller's trace continued, or a new one; sampled as the caller says, else by the
    /// stage's ratio.
    pub fn begin(tracing: &StageTracing, headers: &HeaderMap) -> Self {
        let incoming = propagation::extract(headers);
        let trace_id = incoming
            .as_ref()
            .map_or_else(tollgate_telemetry::new_trace_id, |i| i.trace_id);
        let caller = incoming.as_ref().and_then(|i| i.sampled);
        let sampled = sampling::decide(trace_id, caller, tracing.ratio);
        let (parent, tracestate) = incoming.map_or((None, None), |i| (i.parent, i.tracestate));
        Self {
            trace_id,
            server: tollgate_telemetry::new_span_id(),
            auth: tollgate_telemetry::new_span_id(),
            integration: tollgate_telemetry::new_span_id(),
            parent,
            sampled,
            tracestate,
        }
    }

    /// The context a call made from `span` carries.
    pub fn call(&self, span: SpanId) -> Propagate<'_> {
        Propagate { ids: self, span }
    }

    /// `X-Amzn-Trace-Id` for the answer: the trace and whether it was recorded.
    pub fn response_header(&self) -> HeaderValue {
        propagation::amzn_trace_id(self.trace_id, None, self.sampled)
    }
}

/// The trace context of one outbound call: the request's trace, from one of its spans.
#[derive(Clone, Copy, Debug)]
pub struct Propagate<'a> {
    ids: &'a TraceIds,
    span: SpanId,
}

impl Propagate<'_> {
    /// Sets `traceparent`, `tracestate` and `X-Amzn-Trace-Id` on the call, replacing any the
    /// client sent.
    pub fn inject(&self, headers: &mut HeaderMap) {
        propagation::inject(
            headers,
            self.ids.trace_id,
            self.span,
            self.ids.sampled,
            self.ids.tracestate.as_ref(),
        );
    }
}

/// The spans of a sampled request, until its log line is written.
pub struct Recording {
    ids: TraceIds,
    exporter: Arc<Exporter>,
    scope: InstrumentationScope,
    wall: SystemTime,
    started: Instant,
    spans: Vec<Finished>,
}

/// A phase of the request that calls out, recorded as a child span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Authorize,
    Throttle,
    Integration,
}

impl Recording {
    /// The recording of a sampled request on a stage whose collector is running; `None`
    /// otherwise.
    pub fn begin(
        tracers: &Tracers,
        tracing: &StageTracing,
        ids: &TraceIds,
        wall: SystemTime,
        started: Instant,
    ) -> Option<Box<Self>> {
        if !ids.sampled {
            return None;
        }
        Some(Box::new(Self {
            ids: ids.clone(),
            exporter: tracers.exporter(tracing)?,
            scope: tracers.scope.clone(),
            wall,
            started,
            spans: Vec::with_capacity(3),
        }))
    }

    fn at(&self, instant: Instant) -> SystemTime {
        self.wall + instant.saturating_duration_since(self.started)
    }

    /// A phase that ran from `started` to now.
    pub fn phase(
        &mut self,
        phase: Phase,
        started: Instant,
        attributes: Vec<KeyValue>,
        error: Option<String>,
    ) {
        let (name, kind, span_id) = match phase {
            Phase::Authorize => ("authorize", SpanKind::Client, self.ids.auth),
            Phase::Throttle => (
                "throttle",
                SpanKind::Client,
                tollgate_telemetry::new_span_id(),
            ),
            Phase::Integration => ("integration", SpanKind::Client, self.ids.integration),
        };
        self.spans.push(Finished {
            ids: Ids {
                trace_id: self.ids.trace_id,
                span_id,
                parent: self.ids.server,
                parent_is_remote: false,
            },
            name: name.into(),
            kind,
            start: self.at(started),
            end: SystemTime::now(),
            attributes,
            status: error.map_or(Status::Unset, Status::error),
        });
    }

    /// Ends the request's span with what its log line says, and sends the trace.
    pub fn finish(mut self: Box<Self>, record: &AccessRecord) {
        let method = record.http_method.as_str().to_owned();
        // A REST route key is `METHOD /path/{param}`: the span's name, as OpenTelemetry's
        // HTTP conventions name a server span `{method} {route}`.
        let route_key = record.route_key.as_deref();
        let route = route_key
            .and_then(|k| k.split_once(' '))
            .map(|(_, path)| path);
        let name = match route_key {
            Some(key) if route.is_some() => key.to_owned(),
            _ => method.clone(),
        };
        let host = record.domain_name.as_deref();
        let mut attributes = vec![
            KeyValue::new("http.request.method", method),
            KeyValue::new("url.path", record.path.path().to_owned()),
            KeyValue::new("http.response.status_code", i64::from(record.status)),
            KeyValue::new("client.address", record.source_ip.to_string()),
            KeyValue::new("tollgate.request_id", record.request_id.to_string()),
        ];
        let optional = [
            ("http.route", route.map(str::to_owned)),
            ("server.address", host.map(str::to_owned)),
            (
                "tollgate.gateway",
                record.gateway.as_deref().map(str::to_owned),
            ),
            ("tollgate.stage", record.stage.as_deref().map(str::to_owned)),
            (
                "tollgate.route_key",
                record.route_key.as_deref().map(str::to_owned),
            ),
            ("tollgate.api_key_id", record.api_key_id.clone()),
            ("error.message", record.error_message.clone()),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                attributes.push(KeyValue::new(key, value));
            }
        }
        if let Some(agent) = record.user_agent.as_ref().and_then(|v| v.to_str().ok()) {
            attributes.push(KeyValue::new("user_agent.original", agent.to_owned()));
        }
        // A server span is in error for a 5xx only: a 4xx is the client's.
        let status = if record.status >= 500 {
            Status::error(record.error_message.clone().unwrap_or_default())
        } else {
            Status::Unset
        };
        self.spans.push(Finished {
            ids: Ids {
                trace_id: self.ids.trace_id,
                span_id: self.ids.server,
                parent: self.ids.parent.unwrap_or(SpanId::INVALID),
                parent_is_remote: self.ids.parent.is_some(),
            },
            name: name.into(),
            kind: SpanKind::Server,
            start: self.wall,
            end: SystemTime::now(),
            attributes,
            status,
        });
        let scope = &self.scope;
        self.exporter
            .send(self.spans.drain(..).map(|s| s.into_data(scope)));
    }
}
