//! The proxy's Prometheus metrics, in one registry owned by [`Metrics`] (no global state).
//!
//! Per-route series carry labels from the served tables only (gateway, stage, route key),
//! never from the request, and [`Metrics::retain`] removes those of routes a new table no
//! longer has: their number is bounded by the routes served. Amazon's names
//! (`apigateway_*`) are derived from them when rendered ([`amazon`]).

mod amazon;

use std::collections::{HashMap, HashSet};

use crate::throttle::Scope;
use crate::upstream::{Kind, Outcome};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 29.0,
];

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    integration_duration: HistogramVec,
    upstream_errors: IntCounterVec,
    cache_requests: IntCounterVec,
    throttled: IntCounterVec,
    table_info: IntGaugeVec,
    pub reloads: IntCounterVec,
    pub access_log_dropped: IntCounter,
    tls_handshake_failures: IntCounter,
    certificate_expiry: IntGaugeVec,
    pub default_certificate_expiry: IntGaugeVec,
    pub buffered_body_bytes: IntGauge,
    pub body_budget_refusals: IntCounter,
    /// Client connections being served (both listeners).
    pub connections_open: IntGauge,
    /// Client connections closed unserved because `--max-connections` were open.
    pub connections_refused: IntCounter,
    /// Upgraded (WebSocket) connections being relayed.
    pub websocket_connections_open: IntGauge,
    websocket_messages: IntCounterVec,
    upstream_calls: IntCounterVec,
    upstream_duration: HistogramVec,
    upstream_retries: IntCounterVec,
    upstream_connections: IntCounter,
}

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn status_class(status: u16) -> &'static str {
    STATUS_CLASSES[status_index(status)]
}

fn status_index(status: u16) -> usize {
    usize::from(status.clamp(100, 599) / 100 - 1)
}

/// One route's request counters and histograms, resolved from their labels once (a label
/// lookup hashes every label value and takes a lock: more than the counting itself).
pub struct RouteMetrics {
    /// Hits and misses, for a route that caches.
    cache: Option<[IntCounter; 2]>,
    requests: [IntCounter; 5],
    duration: Histogram,
    integration: Histogram,
    /// The stage's refusals, by [`Scope`].
    throttled: [IntCounter; Scope::ALL.len()],
}

impl RouteMetrics {
    pub fn observe_request(&self, status: u16, seconds: f64) {
        self.requests[status_index(status)].inc();
        self.duration.observe(seconds);
    }

    pub fn observe_integration(&self, seconds: f64) {
        self.integration.observe(seconds);
    }

    /// A request refused with 429 by the limit `by`.
    pub fn observe_throttled(&self, by: Scope) {
        self.throttled[by as usize].inc();
    }

    /// A cache lookup's result.
    pub fn observe_cache(&self, hit: bool) {
        if let Some(counters) = &self.cache {
            counters[usize::from(!hit)].inc();
        }
    }
}

impl std::fmt::Debug for RouteMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RouteMetrics")
    }
}

/// The outbound calls' counters and histograms ([`crate::upstream`]), one per kind and
/// outcome, resolved once.
pub struct UpstreamMetrics {
    calls: [[IntCounter; Outcome::ALL.len()]; Kind::ALL.len()],
    duration: [Histogram; Kind::ALL.len()],
    retries: [IntCounter; Kind::ALL.len()],
    connections: IntCounter,
}

impl UpstreamMetrics {
    pub fn observe(&self, kind: Kind, outcome: Outcome, seconds: f64) {
        self.calls[kind as usize][outcome as usize].inc();
        self.duration[kind as usize].observe(seconds);
    }

    pub fn retried(&self, kind: Kind) {
        self.retries[kind as usize].inc();
    }

    pub fn connection_opened(&self) {
        self.connections.inc();
    }
}

/// The labels of one request.
pub struct RequestLabels<'a> {
    pub gateway: &'a str,
    pub stage: &'a str,
    pub route: &'a str,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "tollgate_requests_total",
                "Requests answered, by gateway, stage, route and status class",
            ),
            &["gateway", "stage", "route", "status_class"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "tollgate_request_duration_seconds",
                "Time from request to response headers",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["gateway", "stage", "route"],
        )
        .expect("valid metric");
        let integration_duration = HistogramVec::new(
            HistogramOpts::new(
                "tollgate_integration_duration_seconds",
                "Time the integration took to answer",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["gateway", "stage", "route"],
        )
        .expect("valid metric");
        let upstream_errors = IntCounterVec::new(
            Opts::new(
                "tollgate_upstream_errors_total",
                "Integration failures, by kind",
            ),
            &["gateway", "stage", "kind"],
        )
        .expect("valid metric");
        let cache_requests = IntCounterVec::new(
            Opts::new(
                "tollgate_cache_requests_total",
                "Requests of caching routes answered from the stage cache (hit) or by the \
                 integration (miss), as Amazon's CacheHitCount and CacheMissCount",
            ),
            &["gateway", "stage", "route", "result"],
        )
        .expect("valid metric");
        let throttled = IntCounterVec::new(
            Opts::new(
                "tollgate_throttled_requests_total",
                "Requests refused with 429, by the limit that refused them (key, route, \
                 gateway: a rate; quota: the key's quota; redis_unavailable: Redis down and \
                 onFailure FailClosed)",
            ),
            &["gateway", "stage", "reason"],
        )
        .expect("valid metric");
        let table_info = IntGaugeVec::new(
            Opts::new(
                "tollgate_table_info",
                "The table version served per gateway (value 1)",
            ),
            &["gateway", "version"],
        )
        .expect("valid metric");
        let reloads = IntCounterVec::new(
            Opts::new("tollgate_config_reloads_total", "Table loads, by result"),
            &["result"],
        )
        .expect("valid metric");
        let access_log_dropped = IntCounter::new(
            "tollgate_access_log_dropped_total",
            "Access log lines dropped because the writer fell behind",
        )
        .expect("valid metric");
        let tls_handshake_failures = IntCounter::new(
            "tollgate_tls_handshake_failures_total",
            "TLS handshakes that failed or timed out (no certificate for the server name, \
             a refused protocol version, no client certificate, ...)",
        )
        .expect("valid metric");
        let certificate_expiry = IntGaugeVec::new(
            Opts::new(
                "tollgate_tls_certificate_expiry_timestamp_seconds",
                "When each custom domain's served certificate expires (Unix time): alert on it \
                 minus time()",
            ),
            &["gateway", "domain"],
        )
        .expect("valid metric");
        let default_certificate_expiry = IntGaugeVec::new(
            Opts::new(
                "tollgate_tls_default_certificate_expiry_timestamp_seconds",
                "When the served default certificate (--tls-default-certificate) expires \
                 (Unix time)",
            ),
            &["certificate"],
        )
        .expect("valid metric");
        let buffered_body_bytes = IntGauge::new(
            "tollgate_buffered_request_body_bytes",
            "Bytes of request bodies held in memory now (bounded by --max-buffered-body-bytes)",
        )
        .expect("valid metric");
        let body_budget_refusals = IntCounter::new(
            "tollgate_request_body_budget_refusals_total",
            "Requests refused with 503 because buffering their body would pass \
             --max-buffered-body-bytes",
        )
        .expect("valid metric");
        let connections_open = IntGauge::new(
            "tollgate_connections_open",
            "Client connections being served, plain and TLS (at most --max-connections)",
        )
        .expect("valid metric");
        let connections_refused = IntCounter::new(
            "tollgate_connections_refused_total",
            "Client connections closed unserved because --max-connections were open",
        )
        .expect("valid metric");
        let websocket_connections_open = IntGauge::new(
            "tollgate_websocket_connections_open",
            "WebSocket connections open: relayed to a backend, or held for a WebSocket API",
        )
        .expect("valid metric");
        let websocket_messages = IntCounterVec::new(
            Opts::new(
                "tollgate_websocket_messages_total",
                "Messages from clients of WebSocket APIs, by route and outcome \
                 (answered, failed, throttled, unrouted: no route and no $default)",
            ),
            &["gateway", "stage", "route", "outcome"],
        )
        .expect("valid metric");
        let upstream_calls = IntCounterVec::new(
            Opts::new(
                "tollgate_upstream_calls_total",
                "Outbound calls (integration, lambda, authorizer, jwks), by kind and outcome",
            ),
            &["kind", "outcome"],
        )
        .expect("valid metric");
        let upstream_duration = HistogramVec::new(
            HistogramOpts::new(
                "tollgate_upstream_call_duration_seconds",
                "Time an outbound call took: to the response head when its body streams, to \
                 the end of the answer when it is read whole",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["kind"],
        )
        .expect("valid metric");
        let upstream_retries = IntCounterVec::new(
            Opts::new(
                "tollgate_upstream_retries_total",
                "Outbound requests sent again on a new connection because the pooled one had \
                 been closed by the backend",
            ),
            &["kind"],
        )
        .expect("valid metric");
        let upstream_connections = IntCounter::new(
            "tollgate_upstream_connections_opened_total",
            "HTTP/1.1 connections opened to plain http:// backends (the per-worker pools)",
        )
        .expect("valid metric");
        for m in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(integration_duration.clone()),
            Box::new(upstream_errors.clone()),
            Box::new(cache_requests.clone()),
            Box::new(throttled.clone()),
            Box::new(table_info.clone()),
            Box::new(reloads.clone()),
            Box::new(access_log_dropped.clone()),
            Box::new(tls_handshake_failures.clone()),
            Box::new(certificate_expiry.clone()),
            Box::new(default_certificate_expiry.clone()),
            Box::new(buffered_body_bytes.clone()),
            Box::new(body_budget_refusals.clone()),
            Box::new(connections_open.clone()),
            Box::new(connections_refused.clone()),
            Box::new(websocket_connections_open.clone()),
            Box::new(websocket_messages.clone()),
            Box::new(upstream_calls.clone()),
            Box::new(upstream_duration.clone()),
            Box::new(upstream_retries.clone()),
            Box::new(upstream_connections.clone()),
        ] {
            registry.register(m).expect("metric names are unique");
        }
        Self {
            registry,
            requests,
            duration,
            integration_duration,
            upstream_errors,
            cache_requests,
            throttled,
            table_info,
            reloads,
            access_log_dropped,
            tls_handshake_failures,
            certificate_expiry,
            default_certificate_expiry,
            buffered_body_bytes,
            body_budget_refusals,
            connections_open,
            connections_refused,
            websocket_connections_open,
            websocket_messages,
            upstream_calls,
            upstream_duration,
            upstream_retries,
            upstream_connections,
        }
    }

    /// `tollgate_trace_spans_total`, by outcome, for the span exporters: registered when the
    /// proxy starts (once: a second call would find the name taken).
    pub fn trace_counters(&self) -> tollgate_telemetry::export::Counters {
        tollgate_telemetry::export::Counters::register(&self.registry, "traced requests")
    }

    /// The outbound calls' metrics, resolved from their labels once.
    pub fn upstream(&self) -> UpstreamMetrics {
        UpstreamMetrics {
            calls: Kind::ALL.map(|kind| {
                Outcome::ALL.map(|outcome| {
                    self.upstream_calls
                        .with_label_values(&[kind.label(), outcome.label()])
                })
            }),
            duration: Kind::ALL
                .map(|kind| self.upstream_duration.with_label_values(&[kind.label()])),
            retries: Kind::ALL.map(|kind| self.upstream_retries.with_label_values(&[kind.label()])),
            connections: self.upstream_connections.clone(),
        }
    }

    /// Counts a message of a WebSocket API's client; `route` is empty for one no route took.
    pub fn websocket_message(&self, gateway: &str, stage: &str, route: &str, outcome: &str) {
        self.websocket_messages
            .with_label_values(&[gateway, stage, route, outcome])
            .inc();
    }

    pub fn tls_handshake_failed(&self) {
        self.tls_handshake_failures.inc();
    }

    /// Counts a request that has no [`RouteMetrics`] (it never reached a route).
    pub fn observe_request(&self, labels: &RequestLabels<'_>, status: u16, seconds: f64) {
        self.requests
            .with_label_values(&[
                labels.gateway,
                labels.stage,
                labels.route,
                status_class(status),
            ])
            .inc();
        self.duration
            .with_label_values(&[labels.gateway, labels.stage, labels.route])
            .observe(seconds);
    }

    /// One route's request metrics, for [`RouteMetrics`] to count without a label lookup per
    /// request.
    /// A route's metrics; `cached`: with the cache's hit and miss counters.
    pub fn route(&self, labels: &RequestLabels<'_>, cached: bool) -> RouteMetrics {
        let requests = STATUS_CLASSES.map(|class| {
            self.requests
                .with_label_values(&[labels.gateway, labels.stage, labels.route, class])
        });
        let route = [labels.gateway, labels.stage, labels.route];
        let cache = cached.then(|| {
            ["hit", "miss"].map(|result| {
                self.cache_requests.with_label_values(&[
                    labels.gateway,
                    labels.stage,
                    labels.route,
                    result,
                ])
            })
        });
        RouteMetrics {
            cache,
            requests,
            duration: self.duration.with_label_values(&route),
            integration: self.integration_duration.with_label_values(&route),
            throttled: Scope::ALL.map(|by| {
                self.throttled
                    .with_label_values(&[labels.gateway, labels.stage, by.label()])
            }),
        }
    }

    /// Removes the series of gateways, stages and routes no longer served: `served` holds
    /// each (gateway, stage, route key) of the tables now installed. Series of requests that
    /// reached no gateway (empty labels) stay; a stage's series stay while it is served.
    pub fn retain(&self, served: &Served) {
        let keep = |labels: &HashMap<&str, &str>| {
            let gateway = labels.get("gateway").copied().unwrap_or("");
            let stage = labels.get("stage").copied().unwrap_or("");
            match labels.get("route").copied().unwrap_or("") {
                _ if gateway.is_empty() => true,
                "" => served.stage(gateway, stage),
                route => served.route(gateway, stage, route),
            }
        };
        for vec in [
            &self.requests,
            &self.cache_requests,
            &self.throttled,
            &self.upstream_errors,
            &self.websocket_messages,
        ] {
            retain(vec, &keep);
        }
        for vec in [&self.duration, &self.integration_duration] {
            retain(vec, &keep);
        }
    }

    pub fn upstream_error(&self, gateway: &str, stage: &str, kind: &str) {
        self.upstream_errors
            .with_label_values(&[gateway, stage, kind])
            .inc();
    }

    /// Records the versions now served, replacing the previous set.
    pub fn set_tables<'a>(&self, versions: impl IntoIterator<Item = (String, &'a str)>) {
        self.table_info.reset();
        for (gateway, version) in versions {
            self.table_info
                .with_label_values(&[gateway.as_str(), version])
                .set(1);
        }
    }

    /// Records when the served certificates expire, replacing the previous set:
    /// (gateway, domain, Unix time).
    pub fn set_certificates<'a>(&self, expiries: impl IntoIterator<Item = (String, &'a str, i64)>) {
        self.certificate_expiry.reset();
        for (gateway, domain, not_after) in expiries {
            self.certificate_expiry
                .with_label_values(&[gateway.as_str(), domain])
                .set(not_after);
        }
    }

    /// The Prometheus text exposition of every metric, Amazon's names included.
    pub fn render(&self) -> String {
        let mut families = self.registry.gather();
        let amazon = amazon::derive(&families);
        families.extend(amazon);
        let mut out = Vec::new();
        // Encoding our own well-formed metrics into a Vec cannot fail.
        TextEncoder::new()
            .encode(&families, &mut out)
            .expect("metrics encode");
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The (gateway, stage, route key) triples of the tables being served, for
/// [`Metrics::retain`].
#[derive(Default)]
pub struct Served {
    stages: HashSet<(String, String)>,
    routes: HashSet<(String, String, String)>,
}

impl Served {
    pub fn add_stage(&mut self, gateway: &str, stage: &str) {
        self.stages.insert((gateway.to_owned(), stage.to_owned()));
    }

    pub fn add_route(&mut self, gateway: &str, stage: &str, route: &str) {
        self.routes
            .insert((gateway.to_owned(), stage.to_owned(), route.to_owned()));
    }

    fn stage(&self, gateway: &str, stage: &str) -> bool {
        // A request that found its gateway but not a stage counts under the gateway alone.
        stage.is_empty() && self.stages.iter().any(|(g, _)| g == gateway)
            || self
                .stages
                .contains(&(gateway.to_owned(), stage.to_owned()))
    }

    fn route(&self, gateway: &str, stage: &str, route: &str) -> bool {
        self.routes
            .contains(&(gateway.to_owned(), stage.to_owned(), route.to_owned()))
    }
}

/// Removes the series of `vec` whose labels `keep` refuses.
fn retain<T: prometheus::core::MetricVecBuilder>(
    vec: &prometheus::core::MetricVec<T>,
    keep: &impl Fn(&HashMap<&str, &str>) -> bool,
) {
    use prometheus::core::Collector;
    for family in vec.collect() {
        for metric in family.get_metric() {
            let labels: HashMap<&str, &str> = metric
                .get_label()
                .iter()
                .map(|l| (l.name(), l.value()))
                .collect();
            if !keep(&labels) {
                // It was just listed: only a concurrent removal could make this fail.
                let _ = vec.remove(&labels);
            }
        }
    }
}
