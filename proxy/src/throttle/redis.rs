//! `Redis` mode: every bucket and the quota of a request decided in Redis by one script
//! ([`admit.lua`](./admit.lua)), exact across the fleet.
//!
//! On one server (or the primary Sentinel names) a request is one script call: one round trip.
//! On a Redis Cluster a script may only touch keys of one slot, so the counters are grouped
//! by hash tag ([`names::redis_key`]) and a request with an API key takes two calls: first the
//! key's group (its bucket and quota), then the gateway's (route and gateway buckets). When the
//! second refuses, the first is given back ([`refund.lua`](./refund.lua)), so a quota counts
//! only admitted requests. Usage counts (the plan's hash, in another slot) are written in
//! batches ([`cluster_usage`](super::cluster_usage)).
//!
//! A call that fails or takes longer than [`CALL_TIMEOUT`] marks Redis down for [`DOWN_FOR`]
//! (on a cluster, only the call's group of keys: the other shards go on deciding); meanwhile
//! requests do not wait on it and the gateway's failure mode applies. What proxies
//! admit on their own meanwhile (`onFailure: Local` or `FailOpen`) under a quota is added to
//! Redis's count when it answers again ([`RedisCounters::unseen`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tollgate_crds::table::RedisTable;
use tollgate_redis::{Connection, SharedRedis, Timeouts};

use super::cluster_usage::ClusterUsage;
use super::{Limit, Limits, QuotaLimit, RateLimitStatus, Refused, names};
use crate::outage::{Outage, Outages};

/// The longest a request waits for Redis.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(500);
/// How long Redis is left alone after a failed call.
pub const DOWN_FOR: Duration = Duration::from_secs(1);

/// Why Redis could not decide.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("the Redis settings cannot be used: {0}")]
    Settings(String),
    #[error("redis call failed: {0}")]
    Call(String),
    #[error("redis did not answer within {CALL_TIMEOUT:?}")]
    Timeout,
    #[error("redis was unreachable moments ago; retrying after {DOWN_FOR:?}")]
    Down,
    #[error("unexpected answer from the admission script: {0:?}")]
    Answer(Vec<i64>),
}

/// The verdict on a request: admitted (with the status of its tightest per-key limit) or
/// refused.
pub type Verdict = Result<Option<RateLimitStatus>, Refused>;

/// What Redis decided, and how much of the key's quota is now used (when it has one and the
/// script got that far), which local shares follow in case Redis goes away.
#[derive(Debug)]
pub struct Decision {
    pub verdict: Verdict,
    pub quota_used: Option<u64>,
}

impl Decision {
    fn refused(refused: Refused) -> Self {
        Self {
            verdict: Err(refused),
            quota_used: None,
        }
    }
}

impl std::fmt::Debug for RedisCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCounters")
            .field("redis", &self.redis)
            .finish_non_exhaustive()
    }
}

pub struct RedisCounters {
    redis: Result<SharedRedis, String>,
    admit: redis::Script,
    refund: redis::Script,
    outage: Outage,
    /// On a cluster: the groups of keys whose calls failed, left alone meanwhile (the other
    /// shards' keys are still asked).
    groups: Outages,
    /// Keeps the warning about a failing cluster group to one per [`DOWN_FOR`].
    warned: Outage,
    /// Requests admitted under a quota while Redis could not be asked, by the quota's Redis
    /// key: added to Redis's count once it answers again.
    unseen: Mutex<HashMap<String, (u64, i64)>>,
    /// On a cluster: admitted requests' usage counts, written in batches.
    cluster_usage: ClusterUsage,
}

impl RedisCounters {
    /// A client for `table`; it connects on first use and reconnects by itself.
    pub fn new(table: &RedisTable) -> Self {
        let timeouts = Timeouts {
            connect: CALL_TIMEOUT,
            response: CALL_TIMEOUT,
        };
        let redis = SharedRedis::new(table, timeouts).map_err(|e| e.to_string());
        if let Err(error) = &redis {
            tracing::error!(%error, redis = %table, "redis client for rate limiting cannot be made");
        }
        Self {
            redis,
            admit: redis::Script::new(include_str!("admit.lua")),
            refund: redis::Script::new(include_str!("refund.lua")),
            outage: Outage::new(DOWN_FOR),
            groups: Outages::new(DOWN_FOR),
            warned: Outage::new(DOWN_FOR),
            unseen: Mutex::new(HashMap::new()),
            cluster_usage: ClusterUsage::default(),
        }
    }

    /// The verdict on the request of `gateway`, or why Redis could not give one.
    pub async fn admit(
        &self,
        limits: &Limits,
        gateway_bucket: &str,
    ) -> Result<Decision, RedisError> {
        // A rate of 0 refuses everything; Redis need not be asked.
        if let Some(zero) = limits.buckets.iter().find(|b| b.throttle.rate_limit <= 0.0) {
            return Ok(Decision::refused(Refused::rate(
                zero.scope,
                RateLimitStatus::BLOCKED,
            )));
        }
        let (redis, mut connection) = self.usable_connection().await?;
        let decision = if redis.is_cluster() {
            self.admit_on_cluster(&mut connection, limits, gateway_bucket)
                .await
        } else {
            let call = Call {
                buckets: limits.buckets.iter().collect(),
                quota: limits.quota.as_ref(),
                group: None,
            };
            let usage = limits
                .usage
                .as_ref()
                .map(|u| (u.key.as_str(), u.tenant.as_str()));
            let answer = self.call(&mut connection, &call, usage).await?;
            verdict(&call, &answer)
        }?;
        self.flush_unseen(connection);
        Ok(decision)
    }

    /// Two calls, the key's group first: the per-key limits refuse most, so a flood on one key
    /// costs one round trip per request.
    async fn admit_on_cluster(
        &self,
        connection: &mut Connection,
        limits: &Limits,
        gateway_bucket: &str,
    ) -> Result<Decision, RedisError> {
        let (per_key, shared): (Vec<&Limit>, Vec<&Limit>) =
            limits.buckets.iter().partition(|b| b.per_key());
        let has_per_key = !per_key.is_empty() || limits.quota.is_some();
        let key_call = limits
            .owner
            .as_deref()
            .filter(|_| has_per_key)
            .map(|owner| Call {
                buckets: per_key,
                quota: limits.quota.as_ref(),
                group: Some(owner),
            });
        let mut admitted = Decision {
            verdict: Ok(None),
            quota_used: None,
        };
        if let Some(call) = &key_call {
            let answer = self.call(connection, call, None).await?;
            admitted = verdict(call, &answer)?;
            if admitted.verdict.is_err() {
                return Ok(admitted);
            }
        }
        let gateway_call = Call {
            buckets: shared,
            quota: None,
            group: Some(names::gateway_group(gateway_bucket)),
        };
        // On an error here the key's counters keep the request: an error on the safe side.
        let answer = self.call(connection, &gateway_call, None).await?;
        if let Err(refused) = verdict(&gateway_call, &answer)?.verdict {
            if let Some(call) = &key_call {
                self.give_back(connection.clone(), call);
            }
            return Ok(Decision {
                verdict: Err(refused),
                quota_used: admitted.quota_used.map(|used| used.saturating_sub(1)),
            });
        }
        if let Some(usage) = &limits.usage {
            self.cluster_usage
                .count(&usage.key, &usage.tenant, connection);
        }
        Ok(admitted)
    }

    /// Runs the admission script over `call`'s counters (and, on one server, counts the usage
    /// of `usage`: its hash and the key id).
    async fn call(
        &self,
        connection: &mut Connection,
        call: &Call<'_>,
        usage: Option<(&str, &str)>,
    ) -> Result<Vec<i64>, RedisError> {
        let mut invocation = self.admit.prepare_invoke();
        invocation
            .arg(call.buckets.len())
            .arg(u8::from(call.quota.is_some()));
        for bucket in &call.buckets {
            let (interval, tolerance) =
                gcra(bucket.throttle.rate_limit, bucket.throttle.burst_limit);
            invocation
                .key(call.redis_key(&bucket.key))
                .arg(interval)
                .arg(tolerance);
        }
        if let Some(q) = call.quota {
            invocation
                .key(call.redis_key(&q.key))
                .arg(q.quota.limit)
                .arg(q.window.end.as_second());
        }
        if let Some((key, tenant)) = usage {
            invocation.key(key).arg(tenant);
        }
        if call.group.is_some_and(|g| self.groups.is_down(g)) {
            return Err(RedisError::Down);
        }
        let error =
            match tokio::time::timeout(CALL_TIMEOUT, invocation.invoke_async(connection)).await {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(e)) => RedisError::Call(e.to_string()),
                Err(_) => RedisError::Timeout,
            };
        // On a cluster only the failing call's group is left alone: the other shards' keys
        // are still decided by Redis while one shard fails over.
        match call.group {
            Some(group) => {
                self.groups.failed(group);
                if self.warned.failed() {
                    let redis = self
                        .redis
                        .as_ref()
                        .map(|r| r.to_string())
                        .unwrap_or_default();
                    tracing::warn!(%error, %redis, group, retry_in = ?DOWN_FOR, "redis for rate limiting is unavailable for these keys; the gateway's onFailure applies to them");
                }
                Err(error)
            }
            None => Err(self.failed(error)),
        }
    }

    /// Gives back what `call` took for a request another call refused (without waiting: the
    /// refused request is answered meanwhile).
    fn give_back(&self, mut connection: Connection, call: &Call<'_>) {
        let mut keys: Vec<String> = Vec::with_capacity(call.buckets.len() + 1);
        let mut args = vec![call.buckets.len() as u64, u64::from(call.quota.is_some())];
        for bucket in &call.buckets {
            keys.push(call.redis_key(&bucket.key));
            args.push(gcra(bucket.throttle.rate_limit, bucket.throttle.burst_limit).0);
        }
        if let Some(q) = call.quota {
            keys.push(call.redis_key(&q.key));
        }
        let refund = self.refund.clone();
        tokio::spawn(async move {
            let mut invocation = refund.prepare_invoke();
            invocation.key(keys).arg(args);
            if let Err(error) = invocation.invoke_async::<()>(&mut connection).await {
                tracing::debug!(%error, "counters of a refused request not given back");
            }
        });
    }

    /// Writes what waits to be written (at shutdown): a cluster's usage counts.
    pub async fn flush(&self) {
        self.cluster_usage.flush().await;
    }

    /// Counts a request under `quota` admitted while Redis could not be asked.
    pub fn unseen(&self, limits: &Limits) {
        let Some(q) = &limits.quota else { return };
        let group = self
            .redis
            .as_ref()
            .is_ok_and(SharedRedis::is_cluster)
            .then_some(limits.owner.as_deref())
            .flatten();
        let key = names::redis_key(&q.key, group);
        let mut unseen = self.unseen.lock().unwrap_or_else(|e| e.into_inner());
        unseen.entry(key).or_insert((0, q.window.end.as_second())).0 += 1;
    }

    /// Adds what was admitted while Redis was away to its counts, once it answers again.
    fn flush_unseen(&self, mut connection: Connection) {
        let unseen = {
            let mut unseen = self.unseen.lock().unwrap_or_else(|e| e.into_inner());
            if unseen.is_empty() {
                return;
            }
            std::mem::take(&mut *unseen)
        };
        tokio::spawn(async move {
            for (key, (count, ends_at)) in unseen {
                let mut pipe = redis::pipe();
                pipe.incr(&key, count)
                    .ignore()
                    .cmd("EXPIREAT")
                    .arg(&key)
                    .arg(ends_at + 60)
                    .ignore();
                match pipe.query_async::<()>(&mut connection).await {
                    Ok(()) => {
                        tracing::info!(quota = %key, count, "requests admitted while Redis was away added to its quota count")
                    }
                    Err(error) => {
                        tracing::warn!(quota = %key, count, %error, "requests admitted while Redis was away not added to its quota count")
                    }
                }
            }
        });
    }

    async fn usable_connection(&self) -> Result<(&SharedRedis, Connection), RedisError> {
        let redis = self
            .redis
            .as_ref()
            .map_err(|e| RedisError::Settings(e.clone()))?;
        if self.outage.is_down() {
            return Err(RedisError::Down);
        }
        match redis.connection().await {
            Ok(connection) => Ok((redis, connection)),
            Err(e) => Err(self.failed(RedisError::Call(e.to_string()))),
        }
    }

    /// Marks Redis down for [`DOWN_FOR`]; says so in the log when it was up, so an outage
    /// logs about once a second however many requests arrive.
    fn failed(&self, error: RedisError) -> RedisError {
        if self.outage.failed() {
            let redis = self
                .redis
                .as_ref()
                .map(|r| r.to_string())
                .unwrap_or_default();
            tracing::warn!(%error, %redis, retry_in = ?DOWN_FOR, "redis for rate limiting is unavailable; the gateway's onFailure applies");
        }
        error
    }
}

/// What one script call decides: some buckets and perhaps the quota, in one slot.
struct Call<'a> {
    buckets: Vec<&'a Limit>,
    quota: Option<&'a QuotaLimit>,
    /// The hash tag of the call's keys on a cluster.
    group: Option<&'a str>,
}

impl Call<'_> {
    fn redis_key(&self, name: &str) -> String {
        names::redis_key(name, self.group)
    }
}

/// A bucket's GCRA parameters in microseconds: the emission interval and the tolerance
/// (`burst` intervals; a burst of 0 still admits one request at a time).
fn gcra(rate_limit: f64, burst_limit: u32) -> (u64, u64) {
    let interval = (1_000_000.0 / rate_limit).ceil().max(1.0) as u64;
    (interval, interval * u64::from(burst_limit.max(1)))
}

/// The script's answer as a verdict with the status of the tightest per-key limit.
fn verdict(limits: &Call<'_>, answer: &[i64]) -> Result<Decision, RedisError> {
    let bad = || RedisError::Answer(answer.to_vec());
    let (&code, rest) = answer.split_first().ok_or_else(bad)?;
    let seconds = |us: i64| u64::try_from(us).unwrap_or(0).div_ceil(1_000_000);
    let now = jiff::Timestamp::now();
    match code {
        1 => {
            let index = usize::try_from(*rest.first().ok_or_else(bad)?).map_err(|_| bad())?;
            let bucket = limits.buckets.get(index.wrapping_sub(1)).ok_or_else(bad)?;
            let retry = seconds(*rest.get(1).ok_or_else(bad)?);
            Ok(Decision::refused(Refused::rate(
                bucket.scope,
                RateLimitStatus {
                    limit: u64::from(bucket.throttle.burst_limit.max(1)),
                    remaining: 0,
                    reset_seconds: retry,
                    retry_after_seconds: retry,
                },
            )))
        }
        2 => {
            let q = limits.quota.ok_or_else(bad)?;
            let left = q.window.seconds_left(now);
            Ok(Decision {
                verdict: Err(Refused::quota(RateLimitStatus {
                    limit: q.quota.limit,
                    remaining: 0,
                    reset_seconds: left,
                    retry_after_seconds: left,
                })),
                quota_used: Some(q.quota.limit),
            })
        }
        0 => {
            let per_bucket = rest.get(2..2 + 2 * limits.buckets.len()).ok_or_else(bad)?;
            let mut status = None;
            for (bucket, pair) in limits.buckets.iter().zip(per_bucket.chunks(2)) {
                if bucket.per_key() {
                    status = Some(RateLimitStatus {
                        limit: u64::from(bucket.throttle.burst_limit.max(1)),
                        remaining: u64::try_from(pair[0]).unwrap_or(0),
                        reset_seconds: seconds(pair[1]),
                        retry_after_seconds: 0,
                    });
                }
            }
            let mut quota_used = None;
            let quota = match limits.quota {
                Some(q) => {
                    let used = u64::try_from(*answer.last().ok_or_else(bad)?).unwrap_or(0);
                    quota_used = Some(used);
                    Some(RateLimitStatus {
                        limit: q.quota.limit,
                        remaining: q.quota.limit.saturating_sub(used),
                        reset_seconds: q.window.seconds_left(now),
                        retry_after_seconds: 0,
                    })
                }
                None => None,
            };
            Ok(Decision {
                verdict: Ok(RateLimitStatus::tighter(status, quota)),
                quota_used,
            })
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::gcra;

    #[test]
    fn gcra_parameters_follow_rate_and_burst() {
        assert_eq!(gcra(10.0, 5), (100_000, 500_000));
        assert_eq!(gcra(3.0, 0), (333_334, 333_334));
    }
}
