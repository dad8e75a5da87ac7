//! The control loop: wait for a change, let a burst of changes settle, compile everything from
//! the index, publish statuses. A pass whose writes failed is retried after a pause.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::index::Index;
use crate::publish::Publisher;

/// How long changes may keep coming before a pass starts.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// Pause before retrying a pass whose status writes failed.
const RETRY: Duration = Duration::from_secs(2);

pub async fn run(index: Arc<Index>, publisher: Publisher) {
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
        let outcome = publisher.publish(&resources, &compiled).await;
        tracing::info!(
            gateways = resources.gateways.len(),
            routes = resources.routes.len(),
            usage_plans = resources.usage_plans.len(),
            tables = compiled.tables.len(),
            written = outcome.written,
            failed = outcome.failed,
            compile_ms = compiled_in.as_millis() as u64,
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
