//! `Redis` mode: every bucket and the quota of a request decided in Redis by one script
//! ([`admit.lua`](./admit.lua)), exact across the fleet.
//!
//! One multiplexed connection per Redis URL: concurrent requests are pipelined on it, one round
//! trip each. A call that fails or takes longer than [`CALL_TIMEOUT`] marks Redis down for
//! [`DOWN_FOR`]; meanwhile requests do not wait on it and the gateway's failure mode applies.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Limits, RateLimitStatus, Refused};
use crate::outage::Outage;

/// The longest a request waits for Redis.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(500);
/// How long Redis is left alone after a failed call.
pub const DOWN_FOR: Duration = Duration::from_secs(1);

/// Why Redis could not decide.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("invalid Redis URL: {0}")]
    Url(String),
    #[error("redis call failed: {0}")]
    Call(String),
    #[error("redis did not answer within {CALL_TIMEOUT:?}")]
    Timeout,
    #[error("redis was unreachable moments ago; retrying after {DOWN_FOR:?}")]
    Down,
    #[error("unexpected answer from the admission script: {0:?}")]
    Answer(Vec<i64>),
}

pub struct RedisCounters {
    connection: Result<ConnectionManager, String>,
    script: redis::Script,
    outage: Outage,
}

impl RedisCounters {
    /// A client for `url`; it connects on first use and reconnects by itself.
    pub fn new(url: &str) -> Self {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1);
        let connection = redis::Client::open(url)
            .and_then(|client| client.get_connection_manager_lazy(config))
            .map_err(|e| e.to_string());
        if let Err(error) = &connection {
            tracing::error!(%error, "redis client for rate limiting cannot be made");
        }
        Self {
            connection,
            script: redis::Script::new(include_str!("admit.lua")),
            outage: Outage::new(DOWN_FOR),
        }
    }

    /// The verdict on the request, or why Redis could not give one.
    pub async fn admit(
        &self,
        limits: &Limits,
    ) -> Result<Result<Option<RateLimitStatus>, Refused>, RedisError> {
        // A rate of 0 refuses everything; Redis need not be asked.
        if let Some(zero) = limits.buckets.iter().find(|b| b.throttle.rate_limit <= 0.0) {
            return Ok(Err(Refused::rate(zero.scope, RateLimitStatus::BLOCKED)));
        }
        let mut connection = self.usable_connection()?;
        let mut invocation = self.script.prepare_invoke();
        invocation
            .arg(limits.buckets.len())
            .arg(u8::from(limits.quota.is_some()));
        for bucket in &limits.buckets {
            let (interval, tolerance) =
                gcra(bucket.throttle.rate_limit, bucket.throttle.burst_limit);
            invocation
                .key(format!("tollgate:{}", bucket.key))
                .arg(interval)
                .arg(tolerance);
        }
        if let Some(q) = &limits.quota {
            invocation
                .key(format!("tollgate:{}", q.key))
                .arg(q.quota.limit)
                .arg(q.window.end.as_second());
        }
        if let Some(usage) = &limits.usage {
            invocation.key(&usage.key).arg(&usage.tenant);
        }
        let answer: Vec<i64> = match tokio::time::timeout(
            CALL_TIMEOUT,
            invocation.invoke_async(&mut connection),
        )
        .await
        {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => return Err(self.failed(RedisError::Call(e.to_string()))),
            Err(_) => return Err(self.failed(RedisError::Timeout)),
        };
        verdict(limits, &answer)
    }

    fn usable_connection(&self) -> Result<ConnectionManager, RedisError> {
        let connection = self
            .connection
            .as_ref()
            .map_err(|e| RedisError::Url(e.clone()))?;
        if self.outage.is_down() {
            return Err(RedisError::Down);
        }
        Ok(connection.clone())
    }

    /// Marks Redis down for [`DOWN_FOR`]; says so in the log when it was up, so an outage
    /// logs about once a second however many requests arrive.
    fn failed(&self, error: RedisError) -> RedisError {
        if self.outage.failed() {
            tracing::warn!(%error, retry_in = ?DOWN_FOR, "redis for rate limiting is unavailable; the gateway's onFailure applies");
        }
        error
    }
}

/// A bucket's GCRA parameters in microseconds: the emission interval and the tolerance
/// (`burst` intervals; a burst of 0 still admits one request at a time).
fn gcra(rate_limit: f64, burst_limit: u32) -> (u64, u64) {
    let interval = (1_000_000.0 / rate_limit).ceil().max(1.0) as u64;
    (interval, interval * u64::from(burst_limit.max(1)))
}

/// The script's answer as a verdict with the status of the tightest per-key limit.
fn verdict(
    limits: &Limits,
    answer: &[i64],
) -> Result<Result<Option<RateLimitStatus>, Refused>, RedisError> {
    let bad = || RedisError::Answer(answer.to_vec());
    let (&code, rest) = answer.split_first().ok_or_else(bad)?;
    let seconds = |us: i64| u64::try_from(us).unwrap_or(0).div_ceil(1_000_000);
    let now = jiff::Timestamp::now();
    match code {
        1 => {
            let index = usize::try_from(*rest.first().ok_or_else(bad)?).map_err(|_| bad())?;
            let bucket = limits.buckets.get(index.wrapping_sub(1)).ok_or_else(bad)?;
            let retry = seconds(*rest.get(1).ok_or_else(bad)?);
            Ok(Err(Refused::rate(
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
            let q = limits.quota.as_ref().ok_or_else(bad)?;
            let left = q.window.seconds_left(now);
            Ok(Err(Refused::quota(RateLimitStatus {
                limit: q.quota.limit,
                remaining: 0,
                reset_seconds: left,
                retry_after_seconds: left,
            })))
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
            let quota = match &limits.quota {
                Some(q) => {
                    let used = u64::try_from(*answer.last().ok_or_else(bad)?).unwrap_or(0);
                    Some(RateLimitStatus {
                        limit: q.quota.limit,
                        remaining: q.quota.limit.saturating_sub(used),
                        reset_seconds: q.window.seconds_left(now),
                        retry_after_seconds: 0,
                    })
                }
                None => None,
            };
            Ok(Ok(RateLimitStatus::tighter(status, quota)))
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
