//! Traces of the control loop: each pass is a trace of its own, a `reconcile` span with a
//! child for each step that does real work (`compile`, `publish tables`, `write status`,
//! `apply fleet objects`), sent over OTLP to `--otlp-endpoint`. Passes are few (debounced, one
//! per burst of changes), so every one is recorded when a collector is set; without one,
//! nothing is built.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tollgate_telemetry::export::{Counters, Endpoint, Exporter};
use tollgate_telemetry::span::{self, Finished, Ids};
use tollgate_telemetry::{InstrumentationScope, KeyValue, SpanId, SpanKind, Status, TraceId};

/// The `service.name` of the controller's spans.
pub const SERVICE: &str = "tollgate-controller";

/// Where the control loop's traces go, if anywhere.
pub struct Tracer {
    exporter: Option<Arc<Exporter>>,
    scope: InstrumentationScope,
}

impl Tracer {
    /// Starts the exporter of `endpoint`, on the current tokio runtime.
    pub fn start(endpoint: Option<Endpoint>, counters: Counters) -> anyhow::Result<Self> {
        let identity = std::env::var("POD_NAME").unwrap_or_default();
        let attributes = if identity.is_empty() {
            Vec::new()
        } else {
            vec![KeyValue::new("service.instance.id", identity)]
        };
        let exporter = endpoint
            .map(|endpoint| Exporter::start(endpoint, SERVICE, attributes, counters))
            .transpose()?;
        Ok(Self {
            exporter,
            scope: span::scope("tollgate-controller", env!("CARGO_PKG_VERSION")),
        })
    }

    /// A pass starting now: recorded when there is a collector.
    pub fn pass(&self) -> Pass {
        Pass {
            recording: self.exporter.clone().map(|exporter| Recording {
                exporter,
                scope: self.scope.clone(),
                trace_id: tollgate_telemetry::new_trace_id(),
                root: tollgate_telemetry::new_span_id(),
                wall: SystemTime::now(),
                started: Instant::now(),
                spans: Vec::with_capacity(4),
            }),
        }
    }
}

/// One pass of the control loop, as a trace.
pub struct Pass {
    recording: Option<Recording>,
}

struct Recording {
    exporter: Arc<Exporter>,
    scope: InstrumentationScope,
    trace_id: TraceId,
    root: SpanId,
    wall: SystemTime,
    started: Instant,
    spans: Vec<Finished>,
}

impl Recording {
    fn at(&self, instant: Instant) -> SystemTime {
        self.wall + instant.saturating_duration_since(self.started)
    }
}

impl Pass {
    /// A step of the pass that ran from `started` until now; `failed` says how many of its
    /// writes failed.
    pub fn step(
        &mut self,
        name: &'static str,
        started: Instant,
        attributes: Vec<KeyValue>,
        failed: usize,
    ) {
        let Some(rec) = &mut self.recording else {
            return;
        };
        let start = rec.at(started);
        rec.spans.push(Finished {
            ids: Ids {
                trace_id: rec.trace_id,
                span_id: tollgate_telemetry::new_span_id(),
                parent: rec.root,
                parent_is_remote: false,
            },
            name: name.into(),
            kind: SpanKind::Internal,
            start,
            end: SystemTime::now(),
            attributes,
            status: status(failed),
        });
    }

    /// Ends the pass's own span and sends the trace.
    pub fn finish(self, attributes: Vec<KeyValue>, failed: usize) {
        let Some(mut rec) = self.recording else {
            return;
        };
        rec.spans.push(Finished {
            ids: Ids {
                trace_id: rec.trace_id,
                span_id: rec.root,
                parent: SpanId::INVALID,
                parent_is_remote: false,
            },
            name: "reconcile".into(),
            kind: SpanKind::Internal,
            start: rec.wall,
            end: SystemTime::now(),
            attributes,
            status: status(failed),
        });
        let scope = &rec.scope;
        rec.exporter
            .send(rec.spans.drain(..).map(|s| s.into_data(scope)));
    }
}

fn status(failed: usize) -> Status {
    if failed == 0 {
        Status::Unset
    } else {
        Status::error(format!("{failed} writes failed"))
    }
}
