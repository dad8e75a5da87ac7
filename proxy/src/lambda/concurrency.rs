//! Lambda's `maxConcurrency`: how many invocations of one function a proxy runs at once. The
//! permits are built once per gateway table, one semaphore per invoke URL, and shared by every
//! route of the gateway that invokes it; waiting for a permit counts against the integration's
//! timeout.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{Semaphore, SemaphorePermit};
use tollgate_crds::table::{GatewayTable, IntegrationTable};

use crate::errors::GatewayError;
use crate::upstream::Deadline;

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

/// A permit of the route's limit, if it has one, waited for until `deadline`: past it, the
/// integration has timed out.
pub async fn permit<'a>(
    limit: Option<&'a Arc<Semaphore>>,
    deadline: &Deadline,
) -> Result<Option<SemaphorePermit<'a>>, GatewayError> {
    let Some(limit) = limit else {
        return Ok(None);
    };
    let permit = tokio::time::timeout_at(deadline.at(), limit.acquire())
        .await
        .map_err(|_| GatewayError::IntegrationTimeout)?
        .map_err(|_| GatewayError::Configuration("function concurrency limit closed".into()))?;
    Ok(Some(permit))
}
