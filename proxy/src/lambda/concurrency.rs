//! Lambda's `maxConcurrency`: how many invocations of one function a proxy runs at once. The
//! permits are built once per gateway table, one semaphore per invoke URL, and shared by every
//! route of the gateway that invokes it; waiting for a permit counts against the integration's
//! timeout.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tollgate_crds::table::{GatewayTable, IntegrationTable};

/// Permits by Lambda invoke URL.
pub type ConcurrencyLimits = HashMap<String, Arc<Semaphore>>;

/// One semaphore per Lambda invoke URL with a `maxConcurrency`, the smallest limit any route
/// of the gateway gives it.
pub fn limits(table: &GatewayTable) -> ConcurrencyLimits {
    let mut smallest: HashMap<&str, u32> = HashMap::new();
    for route in table.stages.iter().flat_map(|s| &s.routes) {
        if let IntegrationTable::Lambda {
            invoke_url,
            max_concurrency: Some(n),
            ..
        } = &route.integration
        {
            let entry = smallest.entry(invoke_url).or_insert(*n);
            *entry = (*entry).min(*n);
        }
    }
    smallest
        .into_iter()
        .map(|(url, n)| (url.to_string(), Arc::new(Semaphore::new(n as usize))))
        .collect()
}
