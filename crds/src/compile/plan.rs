//! A UsagePlan into the tables of the gateways it names: its throttle, quota, per-route
//! overrides, and the API keys bound to it (as hashes).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::diagnostics::{Diagnostic, Reason};
use super::gateway::secret_string;
use super::{Resources, validate};
use crate::resources::{API_KEY_SECRET_TYPE, QuotaPeriod, UsagePlan};
use crate::table::{
    ApiKeyTable, GatewayTable, ObjectKey, PlanStageTable, QuotaTable, UsagePlanTable, hash_api_key,
};

pub const MIN_KEY_LENGTH: usize = 30;
pub const MAX_KEY_LENGTH: usize = 128;

/// Which plan holds each API key on each (gateway, stage): a key belongs to one plan per stage.
#[derive(Default)]
pub(super) struct Bindings {
    taken: HashMap<(ObjectKey, String, ObjectKey), ObjectKey>,
}

pub(super) fn compile(
    key: &ObjectKey,
    up: &UsagePlan,
    resources: &Resources,
    tables: &mut BTreeMap<ObjectKey, GatewayTable>,
    bindings: &mut Bindings,
    diag: &mut Diagnostic,
) {
    let spec = &up.spec;
    if let Some(t) = &spec.throttle
        && let Err(e) = validate::throttle(t)
    {
        diag.reject(Reason::InvalidThrottle, "spec.throttle", e);
    }
    if let Some(q) = &spec.quota {
        let max_offset = match q.period {
            QuotaPeriod::DAY => 0,
            QuotaPeriod::WEEK => 6,
            QuotaPeriod::MONTH => 27,
        };
        if q.limit == 0 {
            diag.reject(
                Reason::InvalidThrottle,
                "spec.quota.limit",
                "quota.limit must be at least 1",
            );
        }
        if q.offset > max_offset {
            diag.reject(
                Reason::InvalidThrottle,
                "spec.quota.offset",
                format!(
                    "quota.offset must be at most {max_offset} for period {:?}",
                    q.period
                ),
            );
        }
    }

    // Every stage must exist; the plan is all or nothing.
    let mut stages: Vec<(ObjectKey, PlanStageTable)> = Vec::new();
    for (i, api_stage) in spec.api_stages.iter().enumerate() {
        let field = format!("spec.apiStages[{i}]");
        let gw_key = ObjectKey::new(&key.namespace, &api_stage.gateway_ref.name);
        let Some(gw) = resources.gateways.get(&gw_key) else {
            diag.reject(
                Reason::GatewayNotFound,
                format!("{field}.gatewayRef.name"),
                format!("ApiGateway {gw_key} does not exist"),
            );
            continue;
        };
        if !gw.spec.stages.iter().any(|s| s.name == api_stage.stage) {
            diag.reject(
                Reason::StageNotFound,
                format!("{field}.stage"),
                format!("ApiGateway {gw_key} has no stage {:?}", api_stage.stage),
            );
            continue;
        }
        // A gateway that exists but did not compile has no table: nothing to add to.
        let Some(table) = tables.get(&gw_key) else {
            continue;
        };
        let Some(stage) = table.stage(&api_stage.stage) else {
            continue;
        };
        let mut route_throttles = BTreeMap::new();
        for (j, rt) in api_stage.route_throttles.iter().enumerate() {
            let rfield = format!("{field}.routeThrottles[{j}]");
            let route_key = format!("{} {}", rt.method, rt.path);
            if let Err(e) = validate::throttle(&rt.throttle) {
                diag.reject(Reason::InvalidThrottle, format!("{rfield}.throttle"), e);
            } else if !stage.routes.iter().any(|r| r.route_key == route_key) {
                diag.skip(
                    Reason::RouteNotFound,
                    rfield,
                    format!("stage {:?} of {gw_key} serves no route {route_key}; the override is ignored", stage.name),
                );
            } else {
                route_throttles.insert(route_key, validate::cap(rt.throttle, table.throttle));
            }
        }
        stages.push((
            gw_key,
            PlanStageTable {
                stage: api_stage.stage.clone(),
                route_throttles,
            },
        ));
    }
    if !diag.accepted {
        return;
    }

    let keys = bind_keys(key, up, &stages, &resources.secrets, bindings, diag);
    diag.keys_bound = Some(keys.len() as u32);

    let mut by_gateway: BTreeMap<ObjectKey, Vec<PlanStageTable>> = BTreeMap::new();
    for (gw_key, stage) in stages {
        by_gateway.entry(gw_key).or_default().push(stage);
    }
    for (gw_key, mut plan_stages) in by_gateway {
        let Some(table) = tables.get_mut(&gw_key) else {
            continue;
        };
        plan_stages.sort_by(|a, b| a.stage.cmp(&b.stage));
        table.usage_plans.push(UsagePlanTable {
            name: key.name.clone(),
            throttle: spec.throttle.map(|t| validate::cap(t, table.throttle)),
            quota: spec.quota.as_ref().map(|q| QuotaTable {
                limit: q.limit,
                period: q.period.into(),
                offset: q.offset,
            }),
            stages: plan_stages,
            keys: keys.clone(),
        });
    }
}

/// The plan's keys: named Secrets and those its selector matches, each checked and claimed on
/// every stage of the plan; a key another (older) plan holds on one of them is left out.
fn bind_keys(
    plan: &ObjectKey,
    up: &UsagePlan,
    stages: &[(ObjectKey, PlanStageTable)],
    secrets: &BTreeMap<ObjectKey, Secret>,
    bindings: &mut Bindings,
    diag: &mut Diagnostic,
) -> Vec<ApiKeyTable> {
    let selection = &up.spec.api_keys;
    // Candidates with the field that brought them in, by name.
    let mut candidates: BTreeMap<String, String> = BTreeMap::new();
    for (i, name) in selection.names.iter().enumerate() {
        candidates
            .entry(name.clone())
            .or_insert(format!("spec.apiKeys.names[{i}]"));
    }
    if let Some(selector) = &selection.selector {
        match compile_selector(selector) {
            Err(e) => diag.skip(Reason::InvalidSelector, "spec.apiKeys.selector", e),
            Ok(matcher) => {
                for (k, s) in secrets.range(ObjectKey::new(&plan.namespace, "")..) {
                    if k.namespace != plan.namespace {
                        break;
                    }
                    let labels = s.metadata.labels.clone().unwrap_or_default();
                    if s.type_.as_deref() == Some(API_KEY_SECRET_TYPE) && matcher.matches(&labels) {
                        candidates
                            .entry(k.name.clone())
                            .or_insert("spec.apiKeys.selector".to_string());
                    }
                }
            }
        }
    }

    let mut keys = Vec::new();
    for (name, field) in candidates {
        let secret_key = ObjectKey::new(&plan.namespace, &name);
        let key = match api_key(&secret_key, secrets.get(&secret_key)) {
            Ok(k) => k,
            Err((reason, e)) => {
                diag.skip(reason, field, e);
                continue;
            }
        };
        let held_by = stages.iter().find_map(|(gw, s)| {
            bindings
                .taken
                .get(&(gw.clone(), s.stage.clone(), secret_key.clone()))
                .map(|owner| (gw, &s.stage, owner))
        });
        if let Some((gw, stage, owner)) = held_by {
            diag.skip(
                Reason::KeyAlreadyBound,
                field,
                format!(
                    "API key {name} is already bound to UsagePlan {owner} on {gw} stage {stage:?}; \
                     a key belongs to one plan per stage"
                ),
            );
            continue;
        }
        for (gw, s) in stages {
            bindings.taken.insert(
                (gw.clone(), s.stage.clone(), secret_key.clone()),
                plan.clone(),
            );
        }
        keys.push(key);
    }
    keys
}

/// An API key Secret as a table entry, or why it cannot be bound. Never puts the value in a
/// message.
fn api_key(key: &ObjectKey, secret: Option<&Secret>) -> Result<ApiKeyTable, (Reason, String)> {
    let secret = secret.ok_or_else(|| {
        (
            Reason::SecretNotFound,
            format!("Secret {key} does not exist"),
        )
    })?;
    if secret.type_.as_deref() != Some(API_KEY_SECRET_TYPE) {
        return Err((
            Reason::InvalidApiKey,
            format!("Secret {key} must be of type {API_KEY_SECRET_TYPE} to be an API key"),
        ));
    }
    let value = secret_string(secret, "key").ok_or_else(|| {
        (
            Reason::InvalidApiKey,
            format!("Secret {key} has no data key \"key\""),
        )
    })?;
    let length = value.chars().count();
    if !(MIN_KEY_LENGTH..=MAX_KEY_LENGTH).contains(&length) {
        return Err((
            Reason::InvalidApiKey,
            format!(
                "API key {key} is {length} characters long; keys are {MIN_KEY_LENGTH} to {MAX_KEY_LENGTH}"
            ),
        ));
    }
    if !value.chars().all(|c| c.is_ascii_graphic()) {
        return Err((
            Reason::InvalidApiKey,
            format!("API key {key} may hold only printable ASCII characters without spaces"),
        ));
    }
    let enabled = secret_string(secret, "enabled").is_none_or(|v| v.trim() != "false");
    Ok(ApiKeyTable {
        tenant: key.name.clone(),
        sha256: hash_api_key(&value),
        enabled,
    })
}

/// A checked label selector.
struct Matcher {
    labels: BTreeMap<String, String>,
    expressions: Vec<(String, Op, BTreeSet<String>)>,
}

enum Op {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

fn compile_selector(s: &LabelSelector) -> Result<Matcher, String> {
    let mut expressions = Vec::new();
    for (i, e) in s.match_expressions.iter().flatten().enumerate() {
        let values: BTreeSet<String> = e.values.iter().flatten().cloned().collect();
        let op = match e.operator.as_str() {
            "In" => Op::In,
            "NotIn" => Op::NotIn,
            "Exists" => Op::Exists,
            "DoesNotExist" => Op::DoesNotExist,
            other => return Err(format!("matchExpressions[{i}]: unknown operator {other:?}")),
        };
        let needs_values = matches!(op, Op::In | Op::NotIn);
        if needs_values == values.is_empty() {
            return Err(format!(
                "matchExpressions[{i}]: In and NotIn need values, Exists and DoesNotExist take none"
            ));
        }
        expressions.push((e.key.clone(), op, values));
    }
    Ok(Matcher {
        labels: s.match_labels.clone().unwrap_or_default(),
        expressions,
    })
}

impl Matcher {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.expressions.iter().all(|(k, op, values)| match op {
                Op::In => labels.get(k).is_some_and(|v| values.contains(v)),
                Op::NotIn => labels.get(k).is_none_or(|v| !values.contains(v)),
                Op::Exists => labels.contains_key(k),
                Op::DoesNotExist => !labels.contains_key(k),
            })
    }
}
