//! Amazon API Gateway's CloudWatch metrics under Prometheus names, derived when `/metrics` is
//! rendered from Tollgate's own per-route families, so a request counts once (a few atomic
//! increments in [`super::RouteMetrics`]) and both views always agree:
//!
//! | Amazon | Prometheus | from |
//! |---|---|---|
//! | Count | `apigateway_count_total` | `tollgate_requests_total`, every status class |
//! | 4XXError | `apigateway_4xx_error_total` | `tollgate_requests_total{status_class="4xx"}` |
//! | 5XXError | `apigateway_5xx_error_total` | `tollgate_requests_total{status_class="5xx"}` |
//! | Latency | `apigateway_latency_seconds` | `tollgate_request_duration_seconds` |
//! | IntegrationLatency | `apigateway_integration_latency_seconds` | `tollgate_integration_duration_seconds` |
//! | CacheHitCount | `apigateway_cache_hit_count_total` | `tollgate_cache_requests_total{result="hit"}` |
//! | CacheMissCount | `apigateway_cache_miss_count_total` | `tollgate_cache_requests_total{result="miss"}` |
//!
//! CloudWatch's dimensions ApiName, Stage, Method and Resource become the labels `api_name`
//! (`namespace/name`), `stage`, `method` and `resource` (the route's path template, never the
//! request's path). Latencies are in seconds, as Prometheus names them, not Amazon's
//! milliseconds.

use std::collections::BTreeMap;

use prometheus::proto::{Counter, LabelPair, Metric, MetricFamily, MetricType};

/// What a label says when there is nothing to say: a request that matched no route (or no
/// gateway or stage).
const NONE: &str = "-";

/// The Amazon-named families derived from `families` (a gather of the registry).
pub fn derive(families: &[MetricFamily]) -> Vec<MetricFamily> {
    let family = |name: &str| families.iter().find(|f| f.name() == name);
    let mut out = Vec::new();

    // Count, 4XXError and 5XXError, per route.
    let mut counts: BTreeMap<RouteLabels<'_>, [f64; 3]> = BTreeMap::new();
    for metric in family("tollgate_requests_total").map_or(&[][..], |f| f.get_metric()) {
        let entry = counts.entry(RouteLabels::of(metric)).or_default();
        let value = metric.get_counter().get_value();
        entry[0] += value;
        match label(metric, "status_class") {
            "4xx" => entry[1] += value,
            "5xx" => entry[2] += value,
            _ => {}
        }
    }
    for (index, name, help) in [
        (
            0,
            "apigateway_count_total",
            "Requests answered (Amazon's Count), by API, stage, method and resource",
        ),
        (
            1,
            "apigateway_4xx_error_total",
            "Requests answered with a 4XX status (Amazon's 4XXError)",
        ),
        (
            2,
            "apigateway_5xx_error_total",
            "Requests answered with a 5XX status (Amazon's 5XXError)",
        ),
    ] {
        let metrics = counts
            .iter()
            .map(|(labels, values)| {
                let mut metric = Metric::from_label(labels.amazon());
                let mut counter = Counter::default();
                counter.set_value(values[index]);
                metric.set_counter(counter);
                metric
            })
            .collect();
        push(&mut out, name, help, MetricType::COUNTER, metrics);
    }

    // Latency and IntegrationLatency: the same histograms, relabelled.
    for (from, name, help) in [
        (
            "tollgate_request_duration_seconds",
            "apigateway_latency_seconds",
            "Time from receiving a request to the response's head (Amazon's Latency, in seconds)",
        ),
        (
            "tollgate_integration_duration_seconds",
            "apigateway_integration_latency_seconds",
            "Time the integration took to answer (Amazon's IntegrationLatency, in seconds)",
        ),
    ] {
        let metrics = family(from)
            .map_or(&[][..], |f| f.get_metric())
            .iter()
            .map(|m| {
                let mut metric = Metric::from_label(RouteLabels::of(m).amazon());
                metric.set_histogram(m.get_histogram().clone());
                metric
            })
            .collect();
        push(&mut out, name, help, MetricType::HISTOGRAM, metrics);
    }

    // CacheHitCount and CacheMissCount.
    let cache = family("tollgate_cache_requests_total").map_or(&[][..], |f| f.get_metric());
    for (result, name, help) in [
        (
            "hit",
            "apigateway_cache_hit_count_total",
            "Requests answered from the stage cache (Amazon's CacheHitCount)",
        ),
        (
            "miss",
            "apigateway_cache_miss_count_total",
            "Requests of caching routes answered by the integration (Amazon's CacheMissCount)",
        ),
    ] {
        let metrics = cache
            .iter()
            .filter(|m| label(m, "result") == result)
            .map(|m| {
                let mut metric = Metric::from_label(RouteLabels::of(m).amazon());
                metric.set_counter(m.get_counter().clone());
                metric
            })
            .collect();
        push(&mut out, name, help, MetricType::COUNTER, metrics);
    }
    out
}

fn push(
    out: &mut Vec<MetricFamily>,
    name: &str,
    help: &str,
    kind: MetricType,
    metrics: Vec<Metric>,
) {
    if metrics.is_empty() {
        return;
    }
    let mut family = MetricFamily::default();
    family.set_name(name.to_owned());
    family.set_help(help.to_owned());
    family.set_field_type(kind);
    family.set_metric(metrics);
    out.push(family);
}

fn label<'a>(metric: &'a Metric, name: &str) -> &'a str {
    metric
        .get_label()
        .iter()
        .find(|l| l.name() == name)
        .map_or("", |l| l.value())
}

/// The `gateway`, `stage` and `route` labels of one of Tollgate's per-route series.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct RouteLabels<'a> {
    gateway: &'a str,
    stage: &'a str,
    route: &'a str,
}

impl<'a> RouteLabels<'a> {
    fn of(metric: &'a Metric) -> Self {
        Self {
            gateway: label(metric, "gateway"),
            stage: label(metric, "stage"),
            route: label(metric, "route"),
        }
    }

    /// CloudWatch's dimensions: the route key `GET /pets/{petId}` is method `GET` and resource
    /// `/pets/{petId}`; a key without a method (an HTTP API's `$default`, a WebSocket API's
    /// `$connect`) is method `ANY` on that key; no route is `-` for both.
    fn amazon(&self) -> Vec<LabelPair> {
        let (method, resource) = match self.route {
            "" => (NONE, NONE),
            key => key.split_once(' ').unwrap_or(("ANY", key)),
        };
        let or_none = |value: &'a str| if value.is_empty() { NONE } else { value };
        [
            ("api_name", or_none(self.gateway)),
            ("method", method),
            ("resource", resource),
            ("stage", or_none(self.stage)),
        ]
        .into_iter()
        .map(|(name, value)| {
            let mut pair = LabelPair::default();
            pair.set_name(name.to_owned());
            pair.set_value(value.to_owned());
            pair
        })
        .collect()
    }
}
