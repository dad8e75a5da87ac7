//! The control loop: wait for a change (of the index, or of a gateway's proxy fleet), let a
//! burst of changes settle, compile everything from the index, hand every table to the
//! snapshot service (subscribed proxies get the versions that changed), publish statuses. A
//! pass whose writes failed is retried after a pause.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::fleet::Fleet;
use crate::index::Index;
use crate::leader::Leadership;
use crate::metrics::Metrics;
use crate::publish::Publisher;
use crate::replicas::Others;
use crate::snapshot::Snapshots;
use crate::trace::Tracer;
use tollgate_telemetry::KeyValue;

/// How long changes may keep coming before a pass starts.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// Pause before retrying a pass whose status writes failed.
const RETRY: Duration = Duration::from_secs(2);

/// What the control loop works with.
pub struct ControlLoop {
    pub index: Arc<Index>,
    pub publisher: Publisher,
    pub snapshots: Arc<Snapshots>,
    pub leadership: Leadership,
    pub metrics: Arc<Metrics>,
    pub fleet: Fleet,
    pub others: Arc<Others>,
    pub tracer: Tracer,
}

/// Every replica compiles and serves tables; only the leader writes (`publisher` checks
/// `leadership` itself; any other write added here must be gated on `leadership.is_leader()`).
pub async fn run(control: ControlLoop) {
    let ControlLoop {
        index,
        publisher,
        snapshots,
        leadership,
        metrics,
        fleet,
        others,
        tracer,
    } = control;
    loop {
        index.changed().await;
        tokio::time::sleep(DEBOUNCE).await;
        if !index.is_ready() {
            continue;
        }
        let mut pass = tracer.pass();
        let started = Instant::now();
        let resources = index.snapshot();
        let compiled = tollgate_crds::compile::compile(&resources);
        let compiled_in = started.elapsed();
        metrics.compile_duration.observe(compiled_in.as_secs_f64());
        let rejected = compiled.diagnostics.iter().filter(|d| !d.accepted).count();
        pass.step(
            "compile",
            started,
            vec![
                KeyValue::new("tollgate.tables", compiled.tables.len() as i64),
                KeyValue::new("tollgate.rejected", rejected as i64),
            ],
            0,
        );
        let publishing = Instant::now();
        let sent = snapshots.publish(resources.gateways.keys(), &compiled.tables);
        pass.step(
            "publish tables",
            publishing,
            vec![KeyValue::new("tollgate.tables_sent", sent as i64)],
            0,
        );
        let local = snapshots.fleet_counts();
        metrics.set_fleets(&local);
        // Statuses count every replica's proxies: this one's, plus the others' ConfigMaps.
        let now = jiff::Timestamp::now();
        let fleets = others.totals(local, &snapshots.current_versions(), now);
        // Local rate limiting divides by the whole fleet, not by this replica's share of it.
        snapshots.set_elsewhere(&others.connected_elsewhere(now));
        let writing = Instant::now();
        let outcome = publisher.publish(&resources, &compiled, &fleets).await;
        pass.step(
            "write status",
            writing,
            vec![KeyValue::new("tollgate.written", outcome.written as i64)],
            outcome.failed,
        );
        // Fleet objects are writes too: only the leader applies them.
        let fleet_outcome = if leadership.is_leader() {
            let applying = Instant::now();
            let applied = fleet.reconcile(&resources.gateways).await;
            pass.step(
                "apply fleet objects",
                applying,
                vec![
                    KeyValue::new("tollgate.applied", applied.applied as i64),
                    KeyValue::new("tollgate.deleted", applied.deleted as i64),
                ],
                applied.failed,
            );
            applied
        } else {
            crate::fleet::Outcome::default()
        };
        pass.finish(
            vec![
                KeyValue::new("tollgate.gateways", resources.gateways.len() as i64),
                KeyValue::new("tollgate.routes", resources.routes.len() as i64),
                KeyValue::new("tollgate.usage_plans", resources.usage_plans.len() as i64),
                KeyValue::new("tollgate.leader", leadership.is_leader()),
            ],
            outcome.failed + fleet_outcome.failed,
        );
        metrics.reconciled(outcome.failed == 0);
        tracing::info!(
            gateways = resources.gateways.len(),
            routes = resources.routes.len(),
            usage_plans = resources.usage_plans.len(),
            tables = compiled.tables.len(),
            tables_sent = sent,
            written = outcome.written,
            failed = outcome.failed,
            compile_ms = compiled_in.as_millis() as u64,
            fleet_applied = fleet_outcome.applied,
            fleet_deleted = fleet_outcome.deleted,
            fleet_failed = fleet_outcome.failed,
            leader = leadership.is_leader(),
            "compiled"
        );
        if outcome.failed > 0 {
            let index = index.clone();
            tokio::spawn(async move {
                tokio::time::sleep(RETRY).await;
                index.poke();
            });
        }
    }
}
