//! Usage reports: requests admitted per usage plan, API key and UTC day, from two sources
//! added together:
//!
//! - Redis (`Redis` rate-limiting mode): the admission script counts each admitted request in
//!   the hash of its plan and day (`tollgate_crds::usage::redis_key`), exact across the fleet;
//!   read here from the Redis of each gateway the plan covers.
//! - Proxies' reports (`Local` mode, and what a proxy admitted while its Redis was
//!   unreachable): each proxy `POST`s its cumulative counts every 10 s and at shutdown; the
//!   latest report of each proxy is kept (a proxy that went away keeps its last one) and they
//!   are summed. They live in this replica's memory: a controller restart forgets the reports
//!   of proxies that are gone (live proxies report their whole count again within 10 s).
//!
//! `api.rs` answers `GET /usage/v1/...` (Amazon's `GetUsage`); `status.rs` writes each plan's
//! `status.usage`.

pub mod api;
pub mod status;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use jiff::civil::Date;
use tollgate_crds::resources::UsagePlan;
use tollgate_crds::table::{ObjectKey, QuotaTable, RateLimitMode, RedisTable};
use tollgate_crds::usage::{DayCounts, RETENTION_DAYS, UsageReport, add_counts, redis_key};
use tollgate_redis::{SharedRedis, Timeouts};

use crate::index::Index;
use crate::snapshot::Snapshots;

/// The longest a Redis read may take.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// Proxies' reports kept at most (a proxy restarted many times leaves one each).
const MAX_REPORTS: usize = 10_000;

/// Why counts could not be read.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("the usage counts in Redis ({redis}) could not be read: {reason}")]
    Redis { redis: String, reason: String },
}

/// The proxies' reports and the Redis clients.
#[derive(Default)]
pub struct Usage {
    reports: Mutex<HashMap<String, Stored>>,
    redis: Mutex<HashMap<RedisTable, Arc<SharedRedis>>>,
}

/// One proxy's latest report.
struct Stored {
    namespace: String,
    /// Plan name -> counts.
    plans: BTreeMap<String, DayCounts>,
    received: Instant,
}

/// What the usage of a plan is read from.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanView {
    pub key: ObjectKey,
    pub quota: Option<QuotaTable>,
    /// The key ids bound to the plan now.
    pub keys: Vec<String>,
    /// The Redis of each covered gateway in `Redis` mode (each counted once).
    pub redis: Vec<RedisTable>,
}

impl PlanView {
    /// The plan as its gateways' tables compiled it (quota, keys, Redis); the spec's quota when
    /// no table holds it (a rejected plan).
    pub fn of(plan: &UsagePlan, key: &ObjectKey, snapshots: &Snapshots) -> Self {
        let mut view = Self {
            key: key.clone(),
            quota: plan.spec.quota.as_ref().map(|q| QuotaTable {
                limit: q.limit,
                period: q.period.into(),
                offset: q.offset,
            }),
            keys: Vec::new(),
            redis: Vec::new(),
        };
        let mut keys = BTreeSet::new();
        let gateways: BTreeSet<&str> = plan
            .spec
            .api_stages
            .iter()
            .map(|s| s.gateway_ref.name.as_str())
            .collect();
        for gateway in gateways {
            let Some(table) = snapshots.table(&ObjectKey::new(&key.namespace, gateway)) else {
                continue;
            };
            if let (RateLimitMode::Redis, Some(redis)) =
                (table.rate_limiting.mode, &table.rate_limiting.redis)
                && !view.redis.contains(redis)
            {
                view.redis.push(redis.clone());
            }
            if let Some(compiled) = table.usage_plans.iter().find(|p| p.name == key.name) {
                view.quota = compiled.quota.clone();
                keys.extend(compiled.keys.iter().map(|k| k.tenant.clone()));
            }
        }
        view.keys = keys.into_iter().collect();
        view
    }
}

impl Usage {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Keeps `report` as its proxy's latest (the caller checked that the proxy serves
    /// `report.gateway`: its plans are that gateway's namespace's).
    pub fn record(&self, report: UsageReport, today: Date) {
        let oldest = today
            .checked_sub(jiff::Span::new().days(RETENTION_DAYS))
            .unwrap_or(today);
        let plans = report
            .plans
            .iter()
            .map(|p| {
                let mut counts = p.counts();
                counts.retain(|day, _| *day >= oldest);
                (p.plan.clone(), counts)
            })
            .collect();
        let mut reports = self.reports.lock().unwrap_or_else(PoisonError::into_inner);
        reports.insert(
            report.proxy_id,
            Stored {
                namespace: report.gateway.namespace,
                plans,
                received: Instant::now(),
            },
        );
        // Reports whose days are all past the retention, then the oldest received if too many.
        reports.retain(|_, stored| {
            stored
                .plans
                .values()
                .any(|c| c.last_key_value().is_some_and(|(d, _)| *d >= oldest))
        });
        while reports.len() > MAX_REPORTS {
            let Some(oldest_id) = reports
                .iter()
                .min_by_key(|(_, s)| s.received)
                .map(|(id, _)| id.clone())
            else {
                break;
            };
            reports.remove(&oldest_id);
        }
    }

    /// The proxies' counts of `plan` from `from` to `to`, summed.
    pub fn reported(&self, plan: &ObjectKey, from: Date, to: Date) -> DayCounts {
        let reports = self.reports.lock().unwrap_or_else(PoisonError::into_inner);
        let mut total = DayCounts::new();
        for stored in reports.values().filter(|s| s.namespace == plan.namespace) {
            if let Some(counts) = stored.plans.get(&plan.name) {
                let part: DayCounts = counts
                    .range(from..=to)
                    .map(|(d, k)| (*d, k.clone()))
                    .collect();
                add_counts(&mut total, &part);
            }
        }
        total
    }

    /// Every count of `plan` from `from` to `to`: Redis's and the proxies'.
    pub async fn counts(
        &self,
        plan: &PlanView,
        from: Date,
        to: Date,
    ) -> Result<DayCounts, UsageError> {
        let mut total = self.reported(&plan.key, from, to);
        for redis in &plan.redis {
            let counts = self.read_redis(redis, &plan.key, from, to).await?;
            add_counts(&mut total, &counts);
        }
        Ok(total)
    }

    /// The plan's hashes of each day from `from` to `to`, in one round trip.
    async fn read_redis(
        &self,
        redis: &RedisTable,
        plan: &ObjectKey,
        from: Date,
        to: Date,
    ) -> Result<DayCounts, UsageError> {
        let failed = |reason: String| UsageError::Redis {
            redis: redis.to_string(),
            reason,
        };
        let client = self.client(redis).map_err(|e| failed(e.to_string()))?;
        let mut connection = client
            .connection()
            .await
            .map_err(|e| failed(e.to_string()))?;
        let mut days = Vec::new();
        let mut day = from;
        while day <= to {
            days.push(day);
            match day.tomorrow() {
                Ok(next) => day = next,
                Err(_) => break,
            }
        }
        let mut pipe = redis::pipe();
        for day in &days {
            pipe.hgetall(redis_key(
                &plan.namespace,
                &plan.name,
                *day,
                redis.is_cluster(),
            ));
        }
        let answers: Vec<HashMap<String, u64>> =
            tokio::time::timeout(REDIS_TIMEOUT, pipe.query_async(&mut connection))
                .await
                .map_err(|_| failed(format!("no answer within {REDIS_TIMEOUT:?}")))?
                .map_err(|e| failed(e.to_string()))?;
        Ok(days
            .into_iter()
            .zip(answers)
            .filter(|(_, keys)| !keys.is_empty())
            .map(|(day, keys)| (day, keys.into_iter().collect()))
            .collect())
    }

    fn client(&self, redis: &RedisTable) -> Result<Arc<SharedRedis>, tollgate_redis::Error> {
        let mut clients = self.redis.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = clients.get(redis) {
            return Ok(client.clone());
        }
        let timeouts = Timeouts {
            connect: REDIS_TIMEOUT,
            response: REDIS_TIMEOUT,
        };
        let client = Arc::new(SharedRedis::new(redis, timeouts)?);
        clients.insert(redis.clone(), client.clone());
        Ok(client)
    }
}

/// Today, UTC.
pub fn today(now: jiff::Timestamp) -> Date {
    now.to_zoned(jiff::tz::TimeZone::UTC).date()
}

/// The plan `key`, if the index holds it.
pub fn plan(index: &Index, key: &ObjectKey) -> Option<UsagePlan> {
    index.usage_plan(key)
}

#[cfg(test)]
mod tests {
    use tollgate_crds::usage::PlanReport;

    use super::*;

    fn report(proxy: &str, namespace: &str, day: &str, key: &str, n: u64) -> UsageReport {
        UsageReport {
            gateway: ObjectKey::new(namespace, "pets"),
            proxy_id: proxy.into(),
            plans: vec![PlanReport {
                plan: "gold".into(),
                days: BTreeMap::from([(day.into(), BTreeMap::from([(key.into(), n)]))]),
            }],
        }
    }

    #[test]
    fn the_latest_report_of_each_proxy_is_summed() {
        let usage = Usage::default();
        let today: Date = "2026-11-24".parse().unwrap();
        usage.record(report("p1", "shop", "2026-11-24", "alice", 3), today);
        usage.record(report("p1", "shop", "2026-11-24", "alice", 5), today); // replaces
        usage.record(report("p2", "shop", "2026-11-24", "alice", 2), today);
        usage.record(report("p3", "other", "2026-11-24", "alice", 100), today);
        let gold = ObjectKey::new("shop", "gold");
        let counts = usage.reported(&gold, today, today);
        assert_eq!(counts[&today]["alice"], 7);
    }

    #[test]
    fn reports_past_the_retention_are_dropped() {
        let usage = Usage::default();
        let today: Date = "2026-11-24".parse().unwrap();
        usage.record(report("p1", "shop", "2026-01-01", "alice", 3), today);
        assert!(usage.reports.lock().unwrap().is_empty());
    }
}
