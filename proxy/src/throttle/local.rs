//! `Local` mode: buckets and quota counters in this proxy's memory, each proxy enforcing
//! `1 / fleet size` of every rate, burst and quota. No network round trip; exact for one
//! proxy, an even share for several (a client whose requests are spread unevenly over the
//! fleet sees less than the whole limit: use `Redis` mode where that matters).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::bucket::{Bucket, Rate};
use super::{Limits, QuotaLimit, RateLimitStatus, Refused};

/// How often idle state is dropped: full buckets and quota counters of past periods.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct LocalCounters {
    state: Mutex<State>,
}

/// Keys are made from the resources (gateway, stage, route, plan and key names), never from a
/// request, so a fast hash need not resist chosen keys: SipHash was 5% of a request.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Default)]
struct State {
    buckets: FastMap<Arc<str>, (Bucket, Rate)>,
    /// Requests counted and the end of their period (Unix seconds).
    quotas: FastMap<String, (u64, i64)>,
    swept: Option<Instant>,
}

impl LocalCounters {
    pub fn admit(
        &self,
        limits: &Limits,
        fleet_size: u32,
    ) -> Result<Option<RateLimitStatus>, Refused> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.sweep(now);

        let mut taken: Vec<(&str, Rate)> = Vec::with_capacity(limits.buckets.len());
        let mut key_status = None;
        for limit in &limits.buckets {
            let rate = Rate::share(
                limit.throttle.rate_limit,
                limit.throttle.burst_limit,
                fleet_size,
            );
            let (admitted, status) = if rate.blocks_everything() {
                (false, RateLimitStatus::BLOCKED)
            } else {
                let (bucket, stored) = state
                    .buckets
                    .entry(limit.key.clone())
                    .or_insert_with(|| (Bucket::new(rate, now), rate));
                *stored = rate;
                bucket.take(rate, now)
            };
            if !admitted {
                state.give_back(&taken);
                return Err(Refused::rate(limit.scope, status));
            }
            taken.push((&limit.key, rate));
            if limit.per_key() {
                key_status = Some(status);
            }
        }

        let quota_status = match &limits.quota {
            None => None,
            Some(q) => {
                let share = q.quota.limit.div_ceil(u64::from(fleet_size.max(1)));
                let now_ts = jiff::Timestamp::now();
                let left = q.window.seconds_left(now_ts);
                let (used, _) = state
                    .quotas
                    .entry(q.key.clone())
                    .or_insert((0, q.window.end.as_second()));
                if *used >= share {
                    state.give_back(&taken);
                    return Err(Refused::quota(RateLimitStatus {
                        limit: share,
                        remaining: 0,
                        reset_seconds: left,
                        retry_after_seconds: left,
                    }));
                }
                *used += 1;
                Some(RateLimitStatus {
                    limit: share,
                    remaining: share - *used,
                    reset_seconds: left,
                    retry_after_seconds: 0,
                })
            }
        };
        Ok(RateLimitStatus::tighter(key_status, quota_status))
    }
}

impl LocalCounters {
    /// Redis says `used` of the key's quota is spent: this proxy's share starts from its part
    /// of that, should Redis go away (so that the fleet's shares add up to what is left, not
    /// to a fresh quota).
    pub fn follow_quota(&self, quota: &QuotaLimit, used: u64, fleet_size: u32) {
        let mine = used / u64::from(fleet_size.max(1));
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // Past periods' counters go here too (`admit` may never run while Redis answers).
        state.sweep(Instant::now());
        match state.quotas.get_mut(&quota.key) {
            Some((counted, _)) => *counted = mine,
            None => {
                state
                    .quotas
                    .insert(quota.key.clone(), (mine, quota.window.end.as_second()));
            }
        }
    }
}

impl State {
    fn give_back(&mut self, taken: &[(&str, Rate)]) {
        for (key, rate) in taken {
            if let Some((bucket, _)) = self.buckets.get_mut(*key) {
                bucket.give_back(*rate);
            }
        }
    }

    fn sweep(&mut self, now: Instant) {
        if self
            .swept
            .is_some_and(|at| now.duration_since(at) < SWEEP_EVERY)
        {
            return;
        }
        self.swept = Some(now);
        self.buckets
            .retain(|_, (bucket, rate)| !bucket.is_full(*rate, now));
        let now_s = jiff::Timestamp::now().as_second();
        self.quotas.retain(|_, (_, end)| *end > now_s);
    }
}

#[cfg(test)]
mod tests {
    use tollgate_crds::table::QuotaTable;
    use tollgate_crds::table::{QuotaPeriod, ThrottleSettings};

    use super::super::quota::Window;
    use super::super::{Limit, QuotaLimit, Scope};
    use super::*;
    use crate::errors::GatewayError;

    fn limits(key_rate: f64, key_burst: u32, quota: Option<u64>) -> Limits {
        let bucket = |key: &str, rate_limit, burst_limit, scope| Limit {
            key: Arc::from(key),
            throttle: ThrottleSettings {
                rate_limit,
                burst_limit,
            },
            scope,
        };
        Limits {
            buckets: vec![
                bucket("k", key_rate, key_burst, Scope::Key),
                bucket("g", 10_000.0, 5_000, Scope::Gateway),
            ],
            quota: quota.map(|limit| {
                let quota = QuotaTable {
                    limit,
                    period: QuotaPeriod::DAY,
                    offset: 0,
                };
                QuotaLimit {
                    key: "q".into(),
                    window: Window::containing(&quota, jiff::Timestamp::now()),
                    quota,
                }
            }),
            usage: None,
            owner: Some("default/gold|alice".into()),
        }
    }

    #[test]
    fn the_key_bucket_refuses_past_its_burst_with_its_status() {
        let counters = LocalCounters::default();
        let l = limits(1.0, 3, None);
        for remaining in [2, 1, 0] {
            let status = counters.admit(&l, 1).unwrap().unwrap();
            assert_eq!((status.limit, status.remaining), (3, remaining));
        }
        match counters.admit(&l, 1) {
            Err(Refused {
                by: Scope::Key,
                error: GatewayError::TooManyRequests(s),
            }) => assert_eq!(s.retry_after_seconds, 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_quota_counts_only_admitted_requests_and_is_shared_by_the_fleet() {
        let counters = LocalCounters::default();
        // 10 per day over a fleet of 2: this proxy admits 5.
        let l = limits(1000.0, 1000, Some(10));
        for _ in 0..5 {
            counters.admit(&l, 2).unwrap();
        }
        assert!(matches!(
            counters.admit(&l, 2),
            Err(Refused {
                by: Scope::Quota,
                error: GatewayError::LimitExceeded(_)
            })
        ));
    }

    #[test]
    fn a_refusal_by_the_quota_gives_the_bucket_token_back() {
        let counters = LocalCounters::default();
        let l = limits(0.001, 2, Some(1));
        counters.admit(&l, 1).unwrap();
        assert!(matches!(
            counters.admit(&l, 1),
            Err(Refused {
                by: Scope::Quota,
                error: GatewayError::LimitExceeded(_)
            })
        ));
        // One token is left in the key bucket: the refused request did not spend it.
        let only_bucket = Limits {
            quota: None,
            ..l.clone()
        };
        assert!(counters.admit(&only_bucket, 1).is_ok());
    }

    #[test]
    fn a_zero_rate_blocks_everything() {
        let counters = LocalCounters::default();
        assert!(matches!(
            counters.admit(&limits(0.0, 10, None), 1),
            Err(Refused {
                by: Scope::Key,
                error: GatewayError::TooManyRequests(_)
            })
        ));
    }

    #[test]
    fn a_share_follows_what_redis_counted() {
        let counters = LocalCounters::default();
        // A quota of 90 over 3 proxies, 60 spent fleet-wide: this proxy has 10 of the 30 left.
        let l = limits(1000.0, 1000, Some(90));
        counters.follow_quota(l.quota.as_ref().unwrap(), 60, 3);
        let admitted = (0..20).filter(|_| counters.admit(&l, 3).is_ok()).count();
        assert_eq!(admitted, 10);
    }
}
