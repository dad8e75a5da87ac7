//! Throttling and quotas: how often and how much a caller may call.
//!
//! Every request passes up to three token buckets, in Amazon API Gateway's order of
//! precedence, and the key's quota:
//!
//! 1. **per key**: the plan's per-route override for the key, else the plan's throttle
//!    (one bucket per key, shared by every gateway and stage the plan covers);
//! 2. **per route**: the route's throttle (its own, else the stage's default), shared by all
//!    callers;
//! 3. **gateway**: the gateway-wide limit (Amazon's account level: 10,000/s, burst 5,000);
//! 4. **quota**: the key's requests in the plan's current calendar period.
//!
//! A request is admitted when every one of them admits it; otherwise it gets 429, `Too Many
//! Requests` for a bucket and `Limit Exceeded` for the quota.
//!
//! Counters live in this proxy (`Local` mode, [`local`]: each of the gateway's proxies
//! enforces `1 / fleet size` of every rate and quota) or in Redis (`Redis` mode,
//! [`redis`]: exact across the fleet, one round trip per request, two for a keyed request on a
//! Redis Cluster). While Redis is unreachable the gateway's `onFailure` decides: admit, refuse,
//! or fall back to local shares (which follow what Redis had counted of each quota).

pub mod bucket;
pub mod cluster_usage;
pub mod local;
pub mod names;
pub mod quota;
pub mod redis;
pub mod usage;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};
use tollgate_crds::table::{GatewayTable, QuotaTable, RouteTable, UsagePlanTable};
use tollgate_crds::table::{RateLimitMode, RedisFailureMode, RedisTable, ThrottleSettings};

use crate::errors::GatewayError;
use crate::request_ctx::RouteCtx;
use quota::Window;

const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// What `RateLimit-*` headers say about the per-key limit closest to refusing the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitStatus {
    /// The limit: a bucket's burst, or a quota's requests per period.
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until `remaining` is back at `limit` (a bucket) or the period ends (a quota).
    pub reset_seconds: u64,
    /// Seconds until a refused request could be admitted.
    pub retry_after_seconds: u64,
}

impl RateLimitStatus {
    /// A limit that admits nothing now (a rate of 0, or Redis down with `FailClosed`): try
    /// again in a second.
    pub const BLOCKED: Self = Self {
        limit: 0,
        remaining: 0,
        reset_seconds: 1,
        retry_after_seconds: 1,
    };

    /// Writes `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`, and `Retry-After`
    /// when the request was refused.
    pub fn write_headers(&self, headers: &mut HeaderMap, refused: bool) {
        headers.insert(RATELIMIT_LIMIT, HeaderValue::from(self.limit));
        headers.insert(RATELIMIT_REMAINING, HeaderValue::from(self.remaining));
        headers.insert(RATELIMIT_RESET, HeaderValue::from(self.reset_seconds));
        if refused {
            headers.insert(
                hyper::header::RETRY_AFTER,
                HeaderValue::from(self.retry_after_seconds.max(1)),
            );
        }
    }

    /// The tighter of two statuses: the one with fewer requests left.
    fn tighter(a: Option<Self>, b: Option<Self>) -> Option<Self> {
        match (a, b) {
            (Some(a), Some(b)) => Some(if b.remaining < a.remaining { b } else { a }),
            (a, b) => a.or(b),
        }
    }
}

/// The request as the limiter sees it.
pub struct Subject<'a> {
    pub gateway: &'a GatewayTable,
    pub stage: &'a str,
    pub route: &'a RouteTable,
    /// The names of the route's and the gateway's buckets (`r|ns/gw|stage|route key`,
    /// `g|ns/gw`), made once per table.
    pub route_bucket: &'a Arc<str>,
    pub gateway_bucket: &'a Arc<str>,
    /// The caller's plan and tenant, when the route took an API key.
    pub plan: Option<(&'a UsagePlanTable, &'a str)>,
    /// Where the key's binding keeps its usage counter.
    pub usage: Option<&'a usage::UsageSlot>,
    /// Where the gateway keeps its Redis client, found on its first request.
    pub redis: &'a RedisSlot,
}

/// A gateway's Redis client for its counters, resolved once per table (settings that have not
/// changed resolve to the client the last table used).
pub type RedisSlot = OnceLock<Arc<redis::RedisCounters>>;

impl<'a> Subject<'a> {
    /// What a routed request is limited as.
    pub fn of(ctx: &'a RouteCtx<'a>) -> Self {
        let gateway = ctx.request.gateway();
        Self {
            gateway,
            stage: &ctx.request.stage().name,
            route: &ctx.route.table,
            route_bucket: &ctx.route.bucket,
            gateway_bucket: &ctx.request.target.gateway.bucket,
            plan: ctx
                .binding
                .map(|b| (&gateway.usage_plans[b.plan], b.tenant.as_str())),
            usage: ctx.binding.map(|b| &b.usage),
            redis: &ctx.request.target.gateway.redis,
        }
    }
}

/// Which limit refused a request: the `reason` of `tollgate_throttled_requests_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The caller's API key: its plan's throttle, or the plan's per-route override.
    Key,
    /// The route's throttle (its own, else the stage's default).
    Route,
    /// The gateway-wide limit.
    Gateway,
    /// The key's quota for the period.
    Quota,
    /// Redis could not be asked and the gateway's `onFailure` is `FailClosed`.
    RedisUnavailable,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::Key,
        Scope::Route,
        Scope::Gateway,
        Scope::Quota,
        Scope::RedisUnavailable,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Scope::Key => "key",
            Scope::Route => "route",
            Scope::Gateway => "gateway",
            Scope::Quota => "quota",
            Scope::RedisUnavailable => "redis_unavailable",
        }
    }
}

/// A request a limit refused: the 429 to answer, and which limit said so (for the metrics).
/// It converts into its [`GatewayError`], so `?` answers it.
#[derive(Debug)]
pub struct Refused {
    pub by: Scope,
    pub error: GatewayError,
}

impl Refused {
    fn rate(by: Scope, status: RateLimitStatus) -> Self {
        Self {
            by,
            error: GatewayError::TooManyRequests(status),
        }
    }

    fn quota(status: RateLimitStatus) -> Self {
        Self {
            by: Scope::Quota,
            error: GatewayError::LimitExceeded(status),
        }
    }
}

impl From<Refused> for GatewayError {
    fn from(refused: Refused) -> Self {
        refused.error
    }
}

/// One token bucket a request must pass, under a key naming what it limits.
#[derive(Clone, Debug, PartialEq)]
pub struct Limit {
    pub key: Arc<str>,
    pub throttle: ThrottleSettings,
    /// What it limits; a [`Scope::Key`] bucket's status goes into the `RateLimit-*` headers.
    pub scope: Scope,
}

impl Limit {
    pub fn per_key(&self) -> bool {
        self.scope == Scope::Key
    }
}

/// The key's quota in its current period.
#[derive(Clone, Debug, PartialEq)]
pub struct QuotaLimit {
    pub key: String,
    pub quota: QuotaTable,
    pub window: Window,
}

/// Where Redis counts an admitted request with a key: the plan's hash of the day
/// (`tollgate_crds::usage::redis_key`) and the key id as its field.
#[derive(Clone, Debug, PartialEq)]
pub struct UsageCount {
    pub key: String,
    pub tenant: String,
}

/// Every limit a request must pass, tightest scope first.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    pub buckets: Vec<Limit>,
    pub quota: Option<QuotaLimit>,
    /// Redis mode: the usage counter the admission script increments.
    pub usage: Option<UsageCount>,
    /// Who the per-key counters belong to (`ns/plan|tenant`), when the request has a key: their
    /// hash tag on a Redis Cluster.
    pub owner: Option<String>,
}

impl Limits {
    pub fn of(subject: &Subject<'_>, now: jiff::Timestamp) -> Self {
        let gw = &subject.gateway.gateway;
        let mut buckets = Vec::with_capacity(3);
        let mut quota = None;
        let mut usage = None;
        let mut key_owner = None;
        if let Some((plan, tenant)) = subject.plan {
            let settings = &subject.gateway.rate_limiting;
            if settings.mode == RateLimitMode::Redis {
                let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
                let cluster = settings.redis.as_ref().is_some_and(|r| r.is_cluster());
                usage = Some(UsageCount {
                    key: tollgate_crds::usage::redis_key(&gw.namespace, &plan.name, today, cluster),
                    tenant: tenant.to_owned(),
                });
            }
            // Plans are namespaced with their gateway; a key's bucket and quota are shared by
            // every gateway and stage of the plan.
            let owner = names::key_owner(&gw.namespace, &plan.name, tenant);
            let route_override = plan
                .stages
                .iter()
                .find(|s| s.stage == subject.stage)
                .and_then(|s| s.route_throttles.get(&subject.route.route_key));
            if let Some(throttle) = route_override {
                buckets.push(Limit {
                    key: names::key_route_bucket(&owner, subject.route_bucket),
                    throttle: *throttle,
                    scope: Scope::Key,
                });
            } else if let Some(throttle) = plan.throttle {
                buckets.push(Limit {
                    key: names::key_bucket(&owner),
                    throttle,
                    scope: Scope::Key,
                });
            }
            quota = plan.quota.as_ref().map(|q| {
                let window = Window::containing(q, now);
                QuotaLimit {
                    key: names::quota_counter(&owner, window.start),
                    quota: q.clone(),
                    window,
                }
            });
            key_owner = Some(owner);
        }
        buckets.push(Limit {
            key: subject.route_bucket.clone(),
            throttle: subject.route.throttle,
            scope: Scope::Route,
        });
        buckets.push(Limit {
            key: subject.gateway_bucket.clone(),
            throttle: subject.gateway.throttle,
            scope: Scope::Gateway,
        });
        Self {
            buckets,
            quota,
            usage,
            owner: key_owner,
        }
    }
}

/// Counters of every gateway this proxy serves. Lives as long as the proxy, so a new table
/// does not hand out fresh buckets.
#[derive(Default)]
pub struct Limiter {
    local: local::LocalCounters,
    /// Requests admitted with a key that this proxy decided (Redis counts the others).
    pub usage: usage::UsageCounters,
    /// One client per Redis settings, made on first use.
    redis: Mutex<HashMap<RedisTable, Arc<redis::RedisCounters>>>,
}

impl Limiter {
    /// Admits the request or refuses it with 429 (and which limit refused it); on admission,
    /// the status of the tightest per-key limit, for the response headers.
    pub async fn admit(
        &self,
        subject: &Subject<'_>,
        fleet_size: u32,
    ) -> Result<Option<RateLimitStatus>, Refused> {
        let now = jiff::Timestamp::now();
        let limits = Limits::of(subject, now);
        let settings = &subject.gateway.rate_limiting;
        let redis = match (settings.mode, &settings.redis) {
            (RateLimitMode::Redis, Some(redis)) => redis,
            _ => return self.counted(subject, now, self.local.admit(&limits, fleet_size)),
        };
        let counters = subject.redis.get_or_init(|| self.redis_for(redis));
        // Boxed: the Redis call's future (a cluster's two calls, Sentinel's lookup) is far
        // larger than the rest of the request's, and would otherwise be carried, and copied,
        // inside every request's future, Local mode's too.
        let admitted = Box::pin(counters.admit(&limits, subject.gateway_bucket)).await;
        let error = match admitted {
            // The script counted the request (when admitted).
            Ok(decision) => {
                if settings.on_redis_failure == RedisFailureMode::Local
                    && let (Some(quota), Some(used)) = (&limits.quota, decision.quota_used)
                {
                    self.local.follow_quota(quota, used, fleet_size);
                }
                return decision.verdict;
            }
            Err(error) => error,
        };
        let verdict = match settings.on_redis_failure {
            // Logged at debug per request; RedisCounters warns once per outage second.
            RedisFailureMode::FailOpen => {
                tracing::debug!(%error, "redis unavailable: admitting (FailOpen)");
                Ok(None)
            }
            RedisFailureMode::FailClosed => {
                tracing::debug!(%error, "redis unavailable: refusing (FailClosed)");
                return Err(Refused::rate(
                    Scope::RedisUnavailable,
                    RateLimitStatus::BLOCKED,
                ));
            }
            RedisFailureMode::Local => {
                tracing::debug!(%error, "redis unavailable: enforcing local shares");
                self.local.admit(&limits, fleet_size)
            }
        };
        if verdict.is_ok() {
            counters.unseen(&limits);
        }
        self.counted(subject, now, verdict)
    }

    /// Counts a request this proxy admitted with a key in the key's usage.
    fn counted(
        &self,
        subject: &Subject<'_>,
        now: jiff::Timestamp,
        verdict: Result<Option<RateLimitStatus>, Refused>,
    ) -> Result<Option<RateLimitStatus>, Refused> {
        if verdict.is_ok()
            && let (Some(slot), Some((plan, tenant))) = (subject.usage, subject.plan)
        {
            slot.get_or_init(|| {
                self.usage
                    .key(&subject.gateway.gateway.namespace, &plan.name, tenant)
            })
            .add(now.as_second());
        }
        verdict
    }

    /// Writes to Redis what waits to be (at shutdown).
    pub async fn flush(&self) {
        let clients: Vec<_> = {
            let clients = self.redis.lock().unwrap_or_else(|e| e.into_inner());
            clients.values().cloned().collect()
        };
        for counters in clients {
            counters.flush().await;
        }
    }

    fn redis_for(&self, table: &RedisTable) -> Arc<redis::RedisCounters> {
        let mut clients = self.redis.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(counters) = clients.get(table) {
            return counters.clone();
        }
        let counters = Arc::new(redis::RedisCounters::new(table));
        clients.insert(table.clone(), counters.clone());
        counters
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tollgate_crds::table::PlanStageTable;
    use tollgate_crds::table::QuotaPeriod;

    use super::*;

    fn route(key: &str) -> RouteTable {
        serde_json::from_value(serde_json::json!({
            "routeKey": key, "method": "GET", "path": "/pets",
            "source": {"namespace": "default", "name": "pets"},
            "apiKeyRequired": true,
            "throttle": {"rateLimit": 100.0, "burstLimit": 50},
            "integration": {"type": "mock", "statusCode": 200, "body": ""}
        }))
        .unwrap()
    }

    fn gateway() -> GatewayTable {
        serde_json::from_value(serde_json::json!({
            "format": 2, "version": "", "gateway": {"namespace": "default", "name": "pets"},
            "endpointType": "Regional", "apiKeySource": "HEADER",
            "throttle": {"rateLimit": 10000.0, "burstLimit": 5000},
            "rateLimiting": {"mode": "Local", "onRedisFailure": "Local"},
            "stages": []
        }))
        .unwrap()
    }

    fn plan(overrides: BTreeMap<String, ThrottleSettings>) -> UsagePlanTable {
        UsagePlanTable {
            name: "gold".into(),
            throttle: Some(ThrottleSettings {
                rate_limit: 10.0,
                burst_limit: 5,
            }),
            quota: Some(QuotaTable {
                limit: 1000,
                period: QuotaPeriod::DAY,
                offset: 0,
            }),
            stages: vec![PlanStageTable {
                stage: "dev".into(),
                route_throttles: overrides,
            }],
            keys: vec![],
        }
    }

    /// The limits of a `dev`-stage request to `rt` of `gw`.
    fn limits_of(
        gw: &GatewayTable,
        rt: &RouteTable,
        plan: Option<(&UsagePlanTable, &str)>,
        now: jiff::Timestamp,
    ) -> Limits {
        let subject = Subject {
            gateway: gw,
            stage: "dev",
            route: rt,
            route_bucket: &Arc::from("r|default/pets|dev|GET /pets"),
            gateway_bucket: &Arc::from("g|default/pets"),
            plan,
            usage: None,
            redis: &RedisSlot::new(),
        };
        Limits::of(&subject, now)
    }

    #[test]
    fn a_keyed_request_passes_key_route_and_gateway_buckets_and_the_quota() {
        let (gw, rt, plan) = (gateway(), route("GET /pets"), plan(BTreeMap::new()));
        let limits = limits_of(
            &gw,
            &rt,
            Some((&plan, "alice")),
            "2026-11-24T10:00:00Z".parse().unwrap(),
        );
        let keys: Vec<_> = limits.buckets.iter().map(|b| &*b.key).collect();
        assert_eq!(
            keys,
            [
                "k|default/gold|alice",
                "r|default/pets|dev|GET /pets",
                "g|default/pets"
            ]
        );
        assert_eq!(limits.buckets[0].throttle.rate_limit, 10.0);
        let quota = limits.quota.unwrap();
        assert_eq!(quota.key, "q|default/gold|alice|1795478400");
    }

    #[test]
    fn a_plan_override_replaces_the_plan_throttle_for_its_route() {
        let override_ = ThrottleSettings {
            rate_limit: 1.0,
            burst_limit: 1,
        };
        let (gw, rt) = (gateway(), route("GET /pets"));
        let plan = plan(BTreeMap::from([("GET /pets".to_string(), override_)]));
        let limits = limits_of(&gw, &rt, Some((&plan, "alice")), jiff::Timestamp::now());
        assert_eq!(limits.buckets.len(), 3);
        assert_eq!(limits.buckets[0].throttle, override_);
        assert!(
            limits.buckets[0]
                .key
                .ends_with("|default/pets|dev|GET /pets")
        );
    }

    #[test]
    fn without_a_key_only_route_and_gateway_limits_apply() {
        let (gw, rt) = (gateway(), route("GET /pets"));
        let limits = limits_of(&gw, &rt, None, jiff::Timestamp::now());
        assert_eq!(limits.buckets.len(), 2);
        assert!(limits.buckets.iter().all(|b| !b.per_key()));
        assert!(limits.quota.is_none());
    }

    #[tokio::test]
    async fn local_mode_counts_only_admitted_requests_in_the_keys_usage() {
        let (gw, rt) = (gateway(), route("GET /pets"));
        let mut plan = plan(BTreeMap::new());
        plan.quota.as_mut().unwrap().limit = 2;
        let slot = usage::UsageSlot::new();
        let subject = Subject {
            gateway: &gw,
            stage: "dev",
            route: &rt,
            route_bucket: &Arc::from("r|default/pets|dev|GET /pets"),
            gateway_bucket: &Arc::from("g|default/pets"),
            plan: Some((&plan, "alice")),
            usage: Some(&slot),
            redis: &RedisSlot::new(),
        };
        let limiter = Limiter::default();
        let mut admitted = 0;
        for _ in 0..3 {
            admitted += u32::from(limiter.admit(&subject, 1).await.is_ok());
        }
        assert_eq!(admitted, 2, "the quota refuses the third");
        let report = limiter
            .usage
            .report(&gw.gateway, "p1", jiff::Timestamp::now())
            .unwrap();
        let today = jiff::Timestamp::now()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date()
            .to_string();
        assert_eq!(report.plans[0].plan, "gold");
        assert_eq!(report.plans[0].days[&today]["alice"], 2);
    }
}
