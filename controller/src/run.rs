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

/// How long changes may keep coming before a pass starts.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// Pause before retrying a pass whose status writes failed.
const RETRY: Duration = Duration::from_secs(2);

/// Every replica compiles and serves tables; only the leader writes (`publisher` checks
/// `leadership` itself; any other write added here must be gated on `leadership.is_leader()`).
pub async fn run(
    index: Arc<Index>,
    publisher: Publisher,
    snapshots: Arc<Snapshots>,
    leadership: Leadership,
    metrics: Arc<Metrics>,
    fleet: Fleet,
    others: Arc<Others>,
) {
    loop {
        index.changed().await;
        tokio::time::sleep(DEBOUNCE).await;
        if !index.is_ready() {
            continue;
        }
        let started = Instant::now();
        let resources = index.snapshot();
        let compiled = tollgate_crds::compile::compile(&resources);
        let compiled_in = started.elapsed();
        metrics.compile_duration.observe(compiled_in.as_secs_f64());
        let sent = snapshots.publish(resources.gateways.keys(), &compiled.tables);
        let local = snapshots.fleet_counts();
        metrics.set_fleets(&local);
        // Statuses count every replica's proxies: this one's, plus the others' ConfigMaps.
        let now = jiff::Timestamp::now();
        let fleets = others.totals(local, &snapshots.current_versions(), now);
        // Local rate limiting divides by the whole fleet, not by this replica's share of it.
        snapshots.set_elsewhere(&others.connected_elsewhere(now));
        let outcome = publisher.publish(&resources, &compiled, &fleets).await;
        // Fleet objects are writes too: only the leader applies them.
        let fleet_outcome = if leadership.is_leader() {
            fleet.reconcile(&resources.gateways).await
        } else {
            crate::fleet::Outcome::default()
        };
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
