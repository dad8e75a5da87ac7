//! The compiler: a pure function from a set of resources to one table per gateway and a
//! diagnostic per resource.
//!
//! Order of work: gateways first (stages, authorizers, domains, policy), then routes (checked,
//! then placed on their stages, the senior route winning a conflict: see [`Seniority`]), then
//! usage plans (stages, route overrides, API keys), then every table is sorted and sealed with
//! its content hash. The result depends only on the set of resources (with their
//! [`FirstSeen`] ranks), never on the order they were given in.

pub mod access_log;
mod cache;
mod diagnostics;
mod gateway;
mod gateway_response;
mod lambda;
mod mapping;
mod path;
mod pem;
mod plan;
mod redis;
mod route;
mod seniority;
mod templates;
mod validate;
pub mod validation;
mod websocket;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

pub use diagnostics::{ConditionSpec, Diagnostic, Effect, Kind, Problem, Reason, ResourceRef};
pub use mapping::compile as compile_parameter_mapping;
pub use path::{PathTemplate, Segment, template_params};
pub use route::RouteConflict;
pub use seniority::{FirstSeen, Precedence};

use crate::resources::{ApiGateway, Route, UsagePlan};
use crate::table::{GatewayTable, ObjectKey};
use seniority::Seniority;

/// The namespace of objects that name none (standalone files).
pub const DEFAULT_NAMESPACE: &str = "default";

/// Everything the compiler reads, keyed by `namespace/name` so that a set of resources has one
/// representation whatever order it was collected in.
#[derive(Clone, Debug, Default)]
pub struct Resources {
    pub gateways: BTreeMap<ObjectKey, ApiGateway>,
    pub routes: BTreeMap<ObjectKey, Route>,
    pub usage_plans: BTreeMap<ObjectKey, UsagePlan>,
    pub secrets: BTreeMap<ObjectKey, Secret>,
    pub services: BTreeMap<ObjectKey, Service>,
    /// Truststore ConfigMaps (the controller watches only those labelled
    /// `tollgate.dev/truststore`).
    pub config_maps: BTreeMap<ObjectKey, ConfigMap>,
    /// When the source first saw each route and usage plan, for objects without a
    /// `creationTimestamp` (standalone files); empty for the controller.
    pub first_seen: FirstSeen,
}

/// The key an object is filed under; objects without a namespace are in `default`.
pub fn object_key(meta: &ObjectMeta) -> ObjectKey {
    ObjectKey::new(
        meta.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE),
        meta.name.as_deref().unwrap_or_default(),
    )
}

/// The compiler's output.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Compiled {
    /// One table per gateway that compiled. A gateway that did not has no table here; whoever
    /// serves it keeps its last good one.
    #[serde(serialize_with = "by_display_key")]
    pub tables: BTreeMap<ObjectKey, GatewayTable>,
    /// One per resource, sorted by kind, namespace and name.
    pub diagnostics: Vec<Diagnostic>,
    /// Every (stage, method, path) two routes asked for, with the one that got it; sorted.
    /// Each is also a `RouteConflict` problem in the refused route's diagnostic.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<RouteConflict>,
}

impl Compiled {
    pub fn diagnostic(&self, kind: Kind, key: &ObjectKey) -> Option<&Diagnostic> {
        self.diagnostics
            .iter()
            .find(|d| d.resource.kind == kind && &d.resource.key == key)
    }
}

/// Serialises a map keyed by `ObjectKey` with `namespace/name` strings as keys (JSON wants
/// string keys).
fn by_display_key<S: serde::Serializer, V: Serialize>(
    map: &BTreeMap<ObjectKey, V>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(map.iter().map(|(k, v)| (k.to_string(), v)))
}

/// Loads multi-document YAML (named `origin` in errors) and compiles it: one file's
/// resources in one step, as tests and tools want them.
pub fn compile_str(yaml: &str, origin: &str) -> Result<Compiled, crate::load::LoadError> {
    let mut resources = Resources::default();
    crate::load::load_str(yaml, origin, &mut resources)?;
    Ok(compile(&resources))
}

/// Compiles every gateway with its routes and usage plans.
pub fn compile(resources: &Resources) -> Compiled {
    let mut diagnostics = Vec::new();

    let mut tables = BTreeMap::new();
    for (key, gw) in &resources.gateways {
        let mut diag = Diagnostic::accepted(ResourceRef {
            kind: Kind::ApiGateway,
            key: key.clone(),
        });
        if let Some(table) = gateway::compile(key, gw, resources, &mut diag) {
            tables.insert(key.clone(), table);
        }
        diagnostics.push(diag);
    }

    let mut placements = route::Placements::default();
    for (key, rt) in seniors_first(&resources.routes, &resources.first_seen.routes, |r| {
        &r.metadata
    }) {
        let mut diag = Diagnostic::accepted(ResourceRef {
            kind: Kind::Route,
            key: key.clone(),
        });
        route::compile(key, rt, resources, &mut tables, &mut placements, &mut diag);
        diagnostics.push(diag);
    }

    let mut bindings = plan::Bindings::default();
    for (key, up) in seniors_first(
        &resources.usage_plans,
        &resources.first_seen.usage_plans,
        |p| &p.metadata,
    ) {
        let mut diag = Diagnostic::accepted(ResourceRef {
            kind: Kind::UsagePlan,
            key: key.clone(),
        });
        plan::compile(key, up, resources, &mut tables, &mut bindings, &mut diag);
        diagnostics.push(diag);
    }

    let tables = tables
        .into_iter()
        .map(|(key, mut table)| {
            for stage in &mut table.stages {
                stage.routes.sort_by(|a, b| {
                    (&a.path, a.method, &a.route_key).cmp(&(&b.path, b.method, &b.route_key))
                });
            }
            table.usage_plans.sort_by(|a, b| a.name.cmp(&b.name));
            (key, table.seal())
        })
        .collect();
    diagnostics.sort_by(|a, b| a.resource.cmp(&b.resource));
    let mut conflicts = placements.into_conflicts();
    conflicts.sort();
    Compiled {
        tables,
        diagnostics,
        conflicts,
    }
}

/// Objects in the order in which they win conflicts: seniors first (see [`Seniority`]).
fn seniors_first<'a, T>(
    objects: &'a BTreeMap<ObjectKey, T>,
    first_seen: &'a BTreeMap<ObjectKey, u64>,
    meta: impl Fn(&T) -> &ObjectMeta,
) -> Vec<(&'a ObjectKey, &'a T)> {
    let mut sorted: Vec<(&ObjectKey, &T)> = objects.iter().collect();
    sorted.sort_by_cached_key(|(key, obj)| Seniority::of(key, meta(obj), first_seen));
    sorted
}
