//! `UsagePlan`: who may call which stages, how fast and how much, by API key.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{HttpMethod, LocalRef, ThrottleSettings};

/// The Secret type of an API key. Its data key `key` holds the key value (30 to 128
/// characters); `enabled: "false"` disables it. The tenant id is the Secret's name.
pub const API_KEY_SECRET_TYPE: &str = "tollgate.dev/api-key";

/// A usage plan, as Amazon API Gateway's: a throttle and a quota per API key, on the stages it
/// names. The keys are Secrets of type `tollgate.dev/api-key`, chosen by name or label.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "tollgate.dev",
    version = "v1alpha1",
    kind = "UsagePlan",
    plural = "usageplans",
    shortname = "up",
    namespaced,
    doc = "A usage plan: per-API-key throttle and quota on gateway stages.",
    status = "UsagePlanStatus",
    printcolumn = r#"{"name":"Rate","type":"number","jsonPath":".spec.throttle.rateLimit"}"#,
    printcolumn = r#"{"name":"Burst","type":"integer","jsonPath":".spec.throttle.burstLimit"}"#,
    printcolumn = r#"{"name":"Quota","type":"integer","jsonPath":".spec.quota.limit"}"#,
    printcolumn = r#"{"name":"Period","type":"string","jsonPath":".spec.quota.period"}"#,
    printcolumn = r#"{"name":"Keys","type":"integer","jsonPath":".status.keysBound"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.apiStages.all(a, self.apiStages.filter(b, b.gatewayRef.name == a.gatewayRef.name && b.stage == a.stage).size() == 1)",
        "message": "each gateway and stage may be listed once in spec.apiStages"
    }
]))]
pub struct UsagePlanSpec {
    /// What this plan is for; shown to people only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,

    /// The gateway stages this plan applies to.
    #[schemars(length(min = 1, max = 50))]
    pub api_stages: Vec<ApiStage>,

    /// Throttle for each API key of the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<ThrottleSettings>,

    /// How many requests each API key may make per period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaSettings>,

    /// The API keys bound to this plan.
    #[serde(default)]
    pub api_keys: ApiKeySelection,
}

/// A gateway stage in a usage plan, with per-route throttle overrides.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiStage {
    /// The ApiGateway, in this namespace.
    pub gateway_ref: LocalRef,
    /// The stage of that gateway (`$default` for an HTTP API's).
    #[schemars(
        regex(pattern = r"^(\$default|[A-Za-z0-9_-]{1,128})$"),
        length(min = 1, max = 128)
    )]
    pub stage: String,
    /// Per-key throttles for single routes, replacing the plan's throttle on them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    // One entry per method and path, by the API server's list-map rule (cheaper than CEL).
    #[schemars(length(max = 100), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["method", "path"]))]
    pub route_throttles: Vec<RouteThrottle>,
}

/// A per-key throttle for one route of a stage.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteThrottle {
    /// The route's method, as in its `spec.method`.
    pub method: HttpMethod,
    /// The route's path, as in its `spec.path`.
    #[schemars(length(min = 1, max = 1024))]
    pub path: String,
    /// The throttle for each key on that route.
    pub throttle: ThrottleSettings,
}

/// A request quota per API key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.period == 'DAY' ? self.offset == 0 : (self.period == 'WEEK' ? self.offset < 7 : self.offset < 28)",
        "message": "quota.offset must be smaller than the period: 0 for DAY, 0 to 6 for WEEK (0 is Sunday), 0 to 27 for MONTH (0 is the 1st)"
    }
]))]
pub struct QuotaSettings {
    /// Requests each key may make per period.
    #[schemars(range(min = 1))]
    pub limit: u64,
    /// `DAY`, `WEEK` or `MONTH`, counted over UTC calendar periods.
    pub period: QuotaPeriod,
    /// The day the period starts: for `WEEK`, 0 is Sunday; for `MONTH`, 0 is the first day.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub offset: u32,
}

/// A quota period.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[allow(clippy::upper_case_acronyms)]
pub enum QuotaPeriod {
    DAY,
    WEEK,
    MONTH,
}

/// Which API key Secrets are bound to a plan: those named, and those the selector matches.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeySelection {
    /// Secrets (type `tollgate.dev/api-key`) in this namespace, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10000), inner(length(max = 253)))]
    pub names: Vec<String>,
    /// Secrets (type `tollgate.dev/api-key`) in this namespace, by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// What the controller observed of a UsagePlan.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsagePlanStatus {
    /// `Accepted`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// How many API keys are bound to the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys_bound: Option<u32>,
    /// Keys that could not be bound, with the reason (names only, never values).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unbound_keys: BTreeMap<String, String>,
    /// The keys' requests in the current quota period, written by the controller at most once
    /// a minute and only when they changed. `GET /usage/v1/...` on the controller gives the
    /// day-by-day figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageSummary>,
}

/// A plan's use in its current quota period (the current UTC day for a plan without a quota).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageSummary {
    /// The first moment of the period.
    pub period_start: Time,
    /// The first moment after the period.
    pub period_end: Time,
    /// Requests admitted in the period, all keys together.
    pub used: u64,
    /// How many keys made a request in the period.
    pub key_count: u32,
    /// The keys that used the plan most in the period (at most 100), most first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub keys: Vec<KeyUsageSummary>,
    /// When the figures were read.
    pub computed_at: Time,
}

/// One key's use in the current period.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyUsageSummary {
    /// The key's id: its Secret's name.
    pub key_id: String,
    /// Requests admitted in the period.
    pub used: u64,
    /// Requests left in the period; absent when the plan has no quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u64>,
}
