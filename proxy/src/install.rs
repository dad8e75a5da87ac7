//! Installing a set of built gateways: the one path by which tables start serving, whether they
//! come from files (standalone mode) or from the controller (fleet mode). The dispatch is
//! swapped atomically: a request in flight keeps the dispatch it started with.

use std::sync::Arc;

use crate::admin::GatewayReport;
use crate::dispatch::{Dispatch, ServedGateway};
use crate::metrics::Served;
use crate::state::Shared;

/// Swaps `gateways` in as everything served, updates the table metrics, and returns what
/// `/config` reports of each.
pub fn install(
    shared: &Shared,
    gateways: Vec<ServedGateway>,
    base_domain: &str,
) -> Vec<GatewayReport> {
    let reports: Vec<GatewayReport> = gateways.iter().map(gateway_report).collect();
    shared.metrics.set_tables(
        gateways
            .iter()
            .map(|g| (g.key().to_string(), g.table.version.as_str())),
    );
    shared
        .metrics
        .set_certificates(gateways.iter().flat_map(|g| {
            g.tls.iter().filter_map(|t| {
                t.not_after
                    .map(|at| (g.key().to_string(), t.hostname.as_str(), at))
            })
        }));
    // Exporters for the collectors traced stages name, before their requests arrive.
    shared.tracers.refresh(
        gateways
            .iter()
            .flat_map(|g| g.stages())
            .filter_map(|s| s.tracing.as_ref()?.endpoint()),
    );
    let served = served(&gateways);
    let dispatch = Dispatch::new(gateways, base_domain);
    shared.dispatch.store(Arc::new(dispatch));
    // After the swap: a request still on the old tables rarely makes a removed route's
    // series again, and the next table removes it.
    shared.metrics.retain(&served);
    reports
}

/// What the metrics may label: every gateway, stage and route key served.
fn served(gateways: &[ServedGateway]) -> Served {
    let mut served = Served::default();
    for g in gateways {
        for stage in &g.table.stages {
            served.add_stage(&g.name, &stage.name);
            for route in &stage.routes {
                served.add_route(&g.name, &stage.name, &route.route_key);
            }
        }
    }
    served
}

pub fn gateway_report(gw: &ServedGateway) -> GatewayReport {
    GatewayReport {
        gateway: gw.key().to_string(),
        version: gw.table.version.clone(),
        stages: gw.table.stages.iter().map(|s| s.name.clone()).collect(),
        routes: gw.table.stages.iter().map(|s| s.routes.len()).sum(),
    }
}
