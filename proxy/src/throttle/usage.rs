//! Requests admitted per usage plan, API key and UTC day, counted in this proxy when this
//! proxy decided them (`Local` mode, or Redis unreachable): in `Redis` mode the admission
//! script counts them in Redis, and nothing is counted here.
//!
//! Each key binding resolves its [`KeyUsage`] once per table (a `OnceLock` in the binding), so
//! counting an admitted request is two atomic operations, with a lock only when the UTC day
//! changes. Counts of the [`RETENTION_DAYS`] days before today are kept; in fleet mode the
//! proxy reports them (cumulative, since it started) to the controller ([`report`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tollgate_crds::table::ObjectKey;
use tollgate_crds::usage::{PlanReport, RETENTION_DAYS, UsageReport};

/// Where a binding keeps its counter, resolved on its first admitted request.
pub type UsageSlot = OnceLock<Arc<KeyUsage>>;

/// Seconds in a UTC day.
const DAY: i64 = 86_400;

/// One key's requests under one plan: today's in an atomic, earlier days' in a map.
#[derive(Debug, Default)]
pub struct KeyUsage {
    /// The day (days since the Unix epoch) `count` is for.
    day: AtomicI64,
    count: AtomicU64,
    past: Mutex<BTreeMap<i64, u64>>,
}

impl KeyUsage {
    /// Counts one request on the day of `unix_second`.
    pub fn add(&self, unix_second: i64) {
        let day = unix_second.div_euclid(DAY);
        if self.day.load(Ordering::Acquire) != day {
            self.roll(day);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Moves the counter to `day`, keeping the previous day's count. A request racing the
    /// change may land on the next day: one request at midnight, never lost.
    fn roll(&self, day: i64) {
        let mut past = self.past.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.day.load(Ordering::Acquire);
        if current == day {
            return;
        }
        let count = self.count.swap(0, Ordering::AcqRel);
        if count > 0 {
            *past.entry(current).or_default() += count;
        }
        // A clock set back: the day's earlier count continues.
        let resumed = past.remove(&day).unwrap_or(0);
        self.count.fetch_add(resumed, Ordering::AcqRel);
        self.day.store(day, Ordering::Release);
        past.retain(|d, _| *d >= day - RETENTION_DAYS);
    }

    /// Requests per day (days since the epoch), today's included.
    fn days(&self) -> BTreeMap<i64, u64> {
        let past = self.past.lock().unwrap_or_else(PoisonError::into_inner);
        let mut days = past.clone();
        let count = self.count.load(Ordering::Acquire);
        if count > 0 {
            *days.entry(self.day.load(Ordering::Acquire)).or_default() += count;
        }
        days
    }
}

/// Every key's counter this proxy has used, by plan (`namespace/name`) and key id. Lives as
/// long as the proxy, so a new table keeps counting where the last one was.
#[derive(Default)]
pub struct UsageCounters {
    keys: Mutex<HashMap<(ObjectKey, String), Arc<KeyUsage>>>,
}

impl UsageCounters {
    /// The counter of `tenant` under the plan `namespace/plan`.
    pub fn key(&self, namespace: &str, plan: &str, tenant: &str) -> Arc<KeyUsage> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        keys.entry((ObjectKey::new(namespace, plan), tenant.to_owned()))
            .or_default()
            .clone()
    }

    /// This proxy's counts for the plans of `gateway`'s namespace, as a report; `None` when it
    /// counted nothing there. Keys without a count in the retention window are forgotten.
    pub fn report(
        &self,
        gateway: &ObjectKey,
        proxy_id: &str,
        now: jiff::Timestamp,
    ) -> Option<UsageReport> {
        let oldest = now.as_second().div_euclid(DAY) - RETENTION_DAYS;
        let mut plans: BTreeMap<String, PlanReport> = BTreeMap::new();
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        keys.retain(|(plan, tenant), usage| {
            let days = usage.days();
            // Still bound in a table (held by a binding), or counted within the window.
            let keep = Arc::strong_count(usage) > 1 || days.keys().any(|d| *d >= oldest);
            if plan.namespace == gateway.namespace {
                for (day, n) in days.into_iter().filter(|(d, _)| *d >= oldest) {
                    let Some(date) = date_of(day) else { continue };
                    plans
                        .entry(plan.name.clone())
                        .or_insert_with(|| PlanReport {
                            plan: plan.name.clone(),
                            days: BTreeMap::new(),
                        })
                        .days
                        .entry(date)
                        .or_default()
                        .insert(tenant.clone(), n);
                }
            }
            keep
        });
        (!plans.is_empty()).then(|| UsageReport {
            gateway: gateway.clone(),
            proxy_id: proxy_id.to_owned(),
            plans: plans.into_values().collect(),
        })
    }
}

/// `YYYY-MM-DD` of a day number.
fn date_of(day: i64) -> Option<String> {
    let at = jiff::Timestamp::from_second(day.checked_mul(DAY)?).ok()?;
    Some(at.to_zoned(jiff::tz::TimeZone::UTC).date().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOV_24: i64 = 1_795_478_400; // 2026-11-24T00:00:00Z

    #[test]
    fn counts_go_to_their_utc_day() {
        let counters = UsageCounters::default();
        let alice = counters.key("shop", "gold", "alice");
        alice.add(NOV_24 + 10);
        alice.add(NOV_24 + DAY - 1);
        alice.add(NOV_24 + DAY); // the 25th
        counters.key("shop", "gold", "bob").add(NOV_24 + DAY + 5);
        counters.key("other", "gold", "eve").add(NOV_24);
        let now = jiff::Timestamp::from_second(NOV_24 + DAY + 60).unwrap();
        let report = counters
            .report(&ObjectKey::new("shop", "pets"), "p1", now)
            .unwrap();
        assert_eq!(report.plans.len(), 1, "only the gateway's namespace");
        let days = &report.plans[0].days;
        assert_eq!(days["2026-11-24"]["alice"], 2);
        assert_eq!(days["2026-11-25"]["alice"], 1);
        assert_eq!(days["2026-11-25"]["bob"], 1);
    }

    #[test]
    fn days_past_the_retention_are_dropped() {
        let counters = UsageCounters::default();
        counters.key("shop", "gold", "alice").add(NOV_24);
        let later = jiff::Timestamp::from_second(NOV_24 + (RETENTION_DAYS + 1) * DAY).unwrap();
        assert!(
            counters
                .report(&ObjectKey::new("shop", "pets"), "p1", later)
                .is_none()
        );
        assert!(
            counters.keys.lock().unwrap().is_empty(),
            "an unbound idle key is forgotten"
        );
    }

    #[test]
    fn a_clock_set_back_resumes_the_day() {
        let usage = KeyUsage::default();
        usage.add(NOV_24);
        usage.add(NOV_24 + DAY);
        usage.add(NOV_24 + 5);
        assert_eq!(
            usage.days(),
            BTreeMap::from([(NOV_24 / DAY, 2), (NOV_24 / DAY + 1, 1)])
        );
    }
}
