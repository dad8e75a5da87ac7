//! Which deployment of a stage serves a request: the canary takes its percent of requests,
//! unless the caller pins one with the `x-tollgate-canary` header (`canary` or `stable`).

use http::HeaderMap;
use std::collections::BTreeMap;
use tollgate_crds::table::StageTable;

/// Request header that pins a deployment, for testing a canary.
pub const PIN_HEADER: &str = "x-tollgate-canary";
/// Response header naming the deployment that served, on stages with a canary.
pub const DEPLOYMENT_HEADER: &str = "x-tollgate-deployment";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deployment {
    Stable,
    Canary,
}

impl Deployment {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stable => "stable",
            Self::Canary => "canary",
        }
    }
}

/// The deployment for this request and the stage variables it sees; `None` when the stage has
/// no canary.
pub fn choose<'a>(
    stage: &'a StageTable,
    headers: &HeaderMap,
) -> (Option<Deployment>, &'a BTreeMap<String, String>) {
    let Some(canary) = &stage.canary else {
        return (None, &stage.variables);
    };
    let pinned = headers.get(PIN_HEADER).and_then(|v| v.to_str().ok());
    let deployment = match pinned {
        Some(v) if v.eq_ignore_ascii_case("canary") => Deployment::Canary,
        Some(v) if v.eq_ignore_ascii_case("stable") => Deployment::Stable,
        _ if fastrand::f64() * 100.0 < canary.percent => Deployment::Canary,
        _ => Deployment::Stable,
    };
    match deployment {
        Deployment::Canary => (Some(deployment), &canary.variables),
        Deployment::Stable => (Some(deployment), &stage.variables),
    }
}
