//! The controller's Prometheus metrics, in one registry owned by [`Metrics`] (no global state;
//! one `Arc<Metrics>` is handed to whoever counts), and the small HTTP server that exposes
//! them: `/metrics`, `/healthz` (always 200) and `/readyz` (200 once the index has listed
//! every kind).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prometheus::{
    Encoder as _, Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use tokio::net::TcpListener;
use tollgate_crds::resources::ProxyCounts;
use tollgate_crds::table::ObjectKey;

const COMPILE_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
const ACK_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

pub struct Metrics {
    registry: Registry,
    /// One per compile/publish pass: `ok`, or `error` when a status write failed.
    pub reconciles: IntCounterVec,
    pub compile_duration: Histogram,
    /// One per status write: `ok` or `error`.
    pub status_writes: IntCounterVec,
    connected_proxies: IntGaugeVec,
    current_proxies: IntGaugeVec,
    /// From sending a frame to a proxy to its answer (ACK or NACK) for that version.
    pub push_to_ack: Histogram,
    nacks: IntCounterVec,
    /// 1 while this replica holds the Lease.
    pub is_leader: IntGauge,
}

impl Metrics {
    /// `tollgate_trace_spans_total`, by outcome, for the exporter of the control loop's
    /// traces: registered when the controller starts (once: a second call would find the
    /// name taken).
    pub fn trace_counters(&self) -> tollgate_telemetry::export::Counters {
        tollgate_telemetry::export::Counters::register(&self.registry, "reconcile passes")
    }

    pub fn new() -> Self {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new(
                "tollgate_controller_reconciles_total",
                "Compile and publish passes, by result (error: a status write failed)",
            ),
            &["result"],
        )
        .expect("valid metric");
        let compile_duration = Histogram::with_opts(
            HistogramOpts::new(
                "tollgate_controller_compile_duration_seconds",
                "Time one compile of every resource took",
            )
            .buckets(COMPILE_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        let status_writes = IntCounterVec::new(
            Opts::new(
                "tollgate_controller_status_writes_total",
                "Status writes (server-side apply), by result",
            ),
            &["result"],
        )
        .expect("valid metric");
        let connected_proxies = IntGaugeVec::new(
            Opts::new(
                "tollgate_controller_connected_proxies",
                "Proxies subscribed to this replica, by gateway (namespace/name)",
            ),
            &["gateway"],
        )
        .expect("valid metric");
        let current_proxies = IntGaugeVec::new(
            Opts::new(
                "tollgate_controller_current_proxies",
                "Proxies subscribed to this replica whose last answer ACKed the gateway's \
                 current table, by gateway (namespace/name): connected minus current are \
                 behind",
            ),
            &["gateway"],
        )
        .expect("valid metric");
        let push_to_ack = Histogram::with_opts(
            HistogramOpts::new(
                "tollgate_controller_push_to_ack_seconds",
                "Time from sending a table to a proxy to its answer for that version",
            )
            .buckets(ACK_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        let nacks = IntCounterVec::new(
            Opts::new(
                "tollgate_controller_nacks_total",
                "Tables refused by proxies, by gateway (namespace/name)",
            ),
            &["gateway"],
        )
        .expect("valid metric");
        let is_leader = IntGauge::new(
            "tollgate_controller_is_leader",
            "1 while this replica holds the leader Lease (and so writes), else 0",
        )
        .expect("valid metric");
        for collector in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(compile_duration.clone()),
            Box::new(status_writes.clone()),
            Box::new(connected_proxies.clone()),
            Box::new(current_proxies.clone()),
            Box::new(push_to_ack.clone()),
            Box::new(nacks.clone()),
            Box::new(is_leader.clone()),
        ] {
            registry.register(collector).expect("unique metric");
        }
        // Both results show from the start, at 0.
        for result in ["ok", "error"] {
            reconciles.with_label_values(&[result]);
            status_writes.with_label_values(&[result]);
        }
        Self {
            registry,
            reconciles,
            compile_duration,
            status_writes,
            connected_proxies,
            current_proxies,
            push_to_ack,
            nacks,
            is_leader,
        }
    }

    pub fn reconciled(&self, ok: bool) {
        self.reconciles
            .with_label_values(&[if ok { "ok" } else { "error" }])
            .inc();
    }

    pub fn status_written(&self, ok: bool) {
        self.status_writes
            .with_label_values(&[if ok { "ok" } else { "error" }])
            .inc();
    }

    pub fn nack(&self, gateway: &ObjectKey) {
        self.nacks
            .with_label_values(&[gateway.to_string().as_str()])
            .inc();
    }

    /// Sets the connected and current proxies of every known gateway; gateways gone lose
    /// their series.
    pub fn set_fleets(&self, fleets: &BTreeMap<ObjectKey, ProxyCounts>) {
        self.connected_proxies.reset();
        self.current_proxies.reset();
        // NACK counters: at 0 from the start for every gateway (so that `increase()` sees a
        // first NACK), gone with their gateway.
        let known: std::collections::HashSet<String> =
            fleets.keys().map(ToString::to_string).collect();
        for family in prometheus::core::Collector::collect(&self.nacks) {
            for metric in family.get_metric() {
                for label in metric.get_label() {
                    if label.name() == "gateway" && !known.contains(label.value()) {
                        let _ = self.nacks.remove_label_values(&[label.value()]);
                    }
                }
            }
        }
        for (key, counts) in fleets {
            let gateway = key.to_string();
            self.nacks.with_label_values(&[gateway.as_str()]);
            self.connected_proxies
                .with_label_values(&[gateway.as_str()])
                .set(i64::from(counts.connected));
            self.current_proxies
                .with_label_values(&[gateway.as_str()])
                .set(i64::from(counts.current));
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding our own well-formed metrics into a Vec cannot fail.
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("metrics encode");
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` (plain HTTP/1.1) until the listener fails.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    ready: Arc<dyn Fn() -> bool + Send + Sync>,
) {
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let response = answer(req.uri().path(), &metrics, ready());
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

fn answer(path: &str, metrics: &Metrics, ready: bool) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match path {
        "/metrics" => (
            StatusCode::OK,
            "text/plain; version=0.0.4",
            metrics.render(),
        ),
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        "/readyz" if ready => (StatusCode::OK, "text/plain", "ready\n".to_owned()),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "the index has not synced yet\n".to_owned(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_owned(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_renders() {
        let m = Metrics::new();
        m.reconciled(true);
        m.compile_duration.observe(0.01);
        m.status_written(false);
        m.push_to_ack.observe(0.2);
        m.nack(&ObjectKey::new("ns", "gw"));
        m.is_leader.set(1);
        let mut fleets = BTreeMap::new();
        fleets.insert(
            ObjectKey::new("ns", "gw"),
            ProxyCounts {
                current: 1,
                connected: 2,
            },
        );
        m.set_fleets(&fleets);
        let text = m.render();
        for line in [
            "tollgate_controller_reconciles_total{result=\"ok\"} 1",
            "tollgate_controller_reconciles_total{result=\"error\"} 0",
            "tollgate_controller_compile_duration_seconds_count 1",
            "tollgate_controller_status_writes_total{result=\"error\"} 1",
            "tollgate_controller_connected_proxies{gateway=\"ns/gw\"} 2",
            "tollgate_controller_current_proxies{gateway=\"ns/gw\"} 1",
            "tollgate_controller_push_to_ack_seconds_count 1",
            "tollgate_controller_nacks_total{gateway=\"ns/gw\"} 1",
            "tollgate_controller_is_leader 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        fleets.insert(
            ObjectKey::new("ns", "other"),
            ProxyCounts {
                current: 0,
                connected: 0,
            },
        );
        m.set_fleets(&fleets);
        let text = m.render();
        assert!(
            text.contains("tollgate_controller_nacks_total{gateway=\"ns/other\"} 0"),
            "{text}"
        );
        assert!(text.contains("tollgate_controller_nacks_total{gateway=\"ns/gw\"} 1"));
        m.set_fleets(&BTreeMap::new());
        let text = m.render();
        assert!(!text.contains("connected_proxies{"));
        assert!(!text.contains("nacks_total{"), "{text}");
        assert_eq!(answer("/readyz", &m, false).status(), 503);
        assert_eq!(answer("/readyz", &m, true).status(), 200);
        assert_eq!(answer("/healthz", &m, false).status(), 200);
    }
}
