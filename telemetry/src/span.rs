//! One finished span, as the exporter sends it.

use std::borrow::Cow;
use std::time::SystemTime;

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

/// Where a span sits in its trace.
#[derive(Clone, Copy, Debug)]
pub struct Ids {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// `SpanId::INVALID` for a root span.
    pub parent: SpanId,
    /// Whether the parent is another process's (the caller's span).
    pub parent_is_remote: bool,
}

/// A span that has ended: what happened between `start` and `end`.
pub struct Finished {
    pub ids: Ids,
    pub name: Cow<'static, str>,
    pub kind: SpanKind,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<KeyValue>,
    pub status: Status,
}

impl Finished {
    /// The span as OpenTelemetry's data model has it, from `scope` (the process that made it).
    pub fn into_data(self, scope: &InstrumentationScope) -> SpanData {
        SpanData {
            span_context: SpanContext::new(
                self.ids.trace_id,
                self.ids.span_id,
                TraceFlags::SAMPLED,
                false,
                TraceState::NONE,
            ),
            parent_span_id: self.ids.parent,
            parent_span_is_remote: self.ids.parent_is_remote,
            span_kind: self.kind,
            name: self.name,
            start_time: self.start,
            end_time: self.end.max(self.start),
            attributes: self.attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: self.status,
            instrumentation_scope: scope.clone(),
        }
    }
}

/// The instrumentation scope of a Tollgate process: its crate name and version.
pub fn scope(name: &'static str, version: &'static str) -> InstrumentationScope {
    InstrumentationScope::builder(name)
        .with_version(version)
        .build()
}
