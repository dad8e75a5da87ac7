//! Usage reports: requests admitted per usage plan, API key and UTC day, as Amazon API
//! Gateway's `GetUsage` gives them. Pure: the caller passes the counts and the date.
//!
//! - The wire formats: a proxy's cumulative counts ([`UsageReport`], `POST` [`REPORT_PATH`]
//!   to the snapshot service) and the `GetUsage` answer ([`GetUsage`]).
//! - The Redis hash of a plan's day in `Redis` rate-limiting mode ([`redis_key`]): one per
//!   plan and day, the key ids as fields, kept [`RETENTION_DAYS`] days.
//! - The arithmetic: quota periods as calendar ranges of days ([`period`]), each day's
//!   remaining quota ([`usage`]), the status summary ([`summary`]).

use std::collections::{BTreeMap, BTreeSet};

use jiff::ToSpan as _;
use jiff::civil::{Date, Weekday};
use serde::{Deserialize, Serialize};

use crate::resources::{KeyUsageSummary, UsageSummary};
use crate::table::{ObjectKey, QuotaPeriod, QuotaTable};

/// Where a proxy `POST`s its [`UsageReport`] (Local mode).
pub const REPORT_PATH: &str = "/v1/usage";
/// The usage API: `GET /usage/v1/namespaces/{namespace}/usageplans/{name}`.
pub const API_PREFIX: &str = "/usage/v1/namespaces/";
/// How long counts are kept, in days before today (Amazon answers at most 90 days at once).
pub const RETENTION_DAYS: i64 = 90;
/// The longest range one `GetUsage` covers, in days (both ends included), as Amazon's.
pub const MAX_RANGE_DAYS: i64 = 90;
/// Keys in a status summary, at most.
pub const SUMMARY_KEYS: usize = 100;

/// Requests per day (UTC) and per key id (the key Secret's name).
pub type DayCounts = BTreeMap<Date, BTreeMap<String, u64>>;

/// One proxy's counts since it started, for every plan it counted requests of (Local mode, or
/// requests it admitted while Redis was unreachable). Cumulative: the latest report of a proxy
/// replaces its earlier ones, so a report lost or sent twice changes nothing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UsageReport {
    /// The gateway the proxy serves: its plans are in the gateway's namespace.
    pub gateway: ObjectKey,
    pub proxy_id: String,
    /// Sorted by plan name.
    #[serde(default)]
    pub plans: Vec<PlanReport>,
}

/// One plan's counts in a [`UsageReport`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PlanReport {
    /// The plan's name, in the gateway's namespace.
    pub plan: String,
    /// `YYYY-MM-DD` -> key id -> requests.
    pub days: BTreeMap<String, BTreeMap<String, u64>>,
}

impl PlanReport {
    /// The days that parse, with their counts.
    pub fn counts(&self) -> DayCounts {
        self.days
            .iter()
            .filter_map(|(day, keys)| Some((parse_date(day).ok()?, keys.clone())))
            .collect()
    }
}

/// Amazon's `GetUsage` answer: `values` maps each key id to one `[used, remaining]` pair per
/// day from `startDate` to `endDate` (Amazon's SDKs call the field `items`; on the wire it is
/// `values`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GetUsage {
    pub usage_plan_id: String,
    pub start_date: String,
    pub end_date: String,
    pub values: BTreeMap<String, Vec<[i64; 2]>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
}

/// The Redis hash of one plan's day: field = key id, value = requests admitted. On a Redis
/// Cluster the plan is the hash tag, so that every day of a plan is in one slot (read in one
/// pipeline) while plans spread over the cluster.
pub fn redis_key(namespace: &str, plan: &str, day: Date, cluster: bool) -> String {
    if cluster {
        format!("tollgate:{{{namespace}/{plan}}}:u|{namespace}/{plan}|{day}")
    } else {
        format!("tollgate:u|{namespace}/{plan}|{day}")
    }
}

/// `YYYY-MM-DD`, strictly.
pub fn parse_date(text: &str) -> Result<Date, String> {
    let well_formed = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !well_formed {
        return Err(format!("{text:?} is not a date (YYYY-MM-DD)"));
    }
    text.parse::<Date>()
        .map_err(|_| format!("{text:?} is not a date (YYYY-MM-DD)"))
}

/// The quota period (`[start, end)`, in days) that `day` falls in: the UTC day; the week
/// starting on the offset's weekday (0 is Sunday); the month starting on the offset's day
/// (0 is the 1st, at most 27, so that every month has it).
pub fn period(quota: &QuotaTable, day: Date) -> (Date, Date) {
    match quota.period {
        QuotaPeriod::DAY => (day, day.tomorrow().unwrap_or(day)),
        QuotaPeriod::WEEK => {
            let first =
                Weekday::from_sunday_zero_offset(i8::try_from(quota.offset % 7).unwrap_or(0))
                    .unwrap_or(Weekday::Sunday);
            let back = i64::from(day.weekday().since(first));
            let start = day.checked_sub(back.days()).unwrap_or(day);
            (start, start.checked_add(7.days()).unwrap_or(start))
        }
        QuotaPeriod::MONTH => {
            let first = i8::try_from(quota.offset.min(27) + 1).unwrap_or(1);
            let this_month = day.with().day(first).build().unwrap_or(day);
            let start = if day >= this_month {
                this_month
            } else {
                this_month.checked_sub(1.month()).unwrap_or(this_month)
            };
            (start, start.checked_add(1.month()).unwrap_or(start))
        }
    }
}

/// The first day whose counts a report from `start` needs: the start of its quota period
/// (earlier days of the period reduce `start`'s remaining quota).
pub fn first_day_needed(quota: Option<&QuotaTable>, start: Date) -> Date {
    quota.map_or(start, |q| period(q, start).0)
}

/// What a `GetUsage` asks.
pub struct Query<'a> {
    pub start: Date,
    pub end: Date,
    /// Only this key.
    pub key_id: Option<&'a str>,
    /// Keys per page (Amazon's default 25, at most 500).
    pub limit: usize,
    /// The last key of the previous page.
    pub position: Option<&'a str>,
}

/// The `GetUsage` answer for `plan_id` from `counts` (which must reach back to
/// [`first_day_needed`]). Keys: those `bound` to the plan, and any other with requests in the
/// range, sorted by id, a page at a time. `remaining` is the quota left at the end of each
/// day, in the period the day falls in; -1 for a plan without a quota.
pub fn usage(
    plan_id: &str,
    quota: Option<&QuotaTable>,
    bound: &[String],
    counts: &DayCounts,
    query: &Query<'_>,
) -> GetUsage {
    let mut keys: BTreeSet<&str> = bound.iter().map(String::as_str).collect();
    for per_key in counts.range(query.start..=query.end).map(|(_, k)| k) {
        keys.extend(per_key.keys().map(String::as_str));
    }
    if let Some(only) = query.key_id {
        keys.retain(|k| *k == only);
    }
    let after = query.position.unwrap_or("");
    let page: Vec<&str> = keys
        .into_iter()
        .filter(|k| query.position.is_none() || *k > after)
        .take(query.limit.saturating_add(1))
        .collect();
    let more = page.len() > query.limit;
    let page = &page[..page.len().min(query.limit)];
    let mut values = BTreeMap::new();
    for key in page {
        values.insert((*key).to_owned(), series(quota, key, counts, query));
    }
    GetUsage {
        usage_plan_id: plan_id.to_owned(),
        start_date: query.start.to_string(),
        end_date: query.end.to_string(),
        values,
        position: more.then(|| page.last().map(|k| (*k).to_owned())).flatten(),
    }
}

fn count(counts: &DayCounts, day: Date, key: &str) -> u64 {
    counts
        .get(&day)
        .and_then(|k| k.get(key))
        .copied()
        .unwrap_or(0)
}

/// `[used, remaining]` per day of the query for one key.
fn series(
    quota: Option<&QuotaTable>,
    key: &str,
    counts: &DayCounts,
    query: &Query<'_>,
) -> Vec<[i64; 2]> {
    let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let mut out = Vec::new();
    let mut period_used = 0u64;
    let mut period_end = None;
    let mut day = query.start;
    while day <= query.end {
        let used = count(counts, day, key);
        let remaining = match quota {
            None => -1,
            Some(q) => {
                if period_end.is_none_or(|end| day >= end) {
                    // A new period: what was used in it before this day.
                    let (start, end) = period(q, day);
                    period_end = Some(end);
                    period_used = counts
                        .range(start..day)
                        .filter_map(|(_, k)| k.get(key))
                        .sum();
                }
                period_used += used;
                as_i64(q.limit.saturating_sub(period_used))
            }
        };
        out.push([as_i64(used), remaining]);
        match day.tomorrow() {
            Ok(next) => day = next,
            Err(_) => break,
        }
    }
    out
}

/// The status summary of the period containing `today`: totals, the number of keys, and the
/// [`SUMMARY_KEYS`] keys that used most (ties by id). `computed_at` is left to the caller.
pub fn summary(quota: Option<&QuotaTable>, counts: &DayCounts, today: Date) -> UsageSummary {
    let (start, end) = match quota {
        Some(q) => period(q, today),
        None => (today, today.tomorrow().unwrap_or(today)),
    };
    let mut per_key: BTreeMap<&str, u64> = BTreeMap::new();
    for (_, keys) in counts.range(start..end) {
        for (key, n) in keys {
            *per_key.entry(key).or_default() += n;
        }
    }
    per_key.retain(|_, n| *n > 0);
    let used = per_key.values().sum();
    let key_count = u32::try_from(per_key.len()).unwrap_or(u32::MAX);
    let mut ranked: Vec<(&str, u64)> = per_key.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    ranked.truncate(SUMMARY_KEYS);
    UsageSummary {
        period_start: midnight(start),
        period_end: midnight(end),
        used,
        key_count,
        keys: ranked
            .into_iter()
            .map(|(key, used)| KeyUsageSummary {
                key_id: key.to_owned(),
                used,
                remaining: quota.map(|q| q.limit.saturating_sub(used)),
            })
            .collect(),
        computed_at: midnight(today),
    }
}

fn midnight(day: Date) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    let at = day
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at)
}

/// Adds `more` into `total`.
pub fn add_counts(total: &mut DayCounts, more: &DayCounts) {
    for (day, keys) in more {
        let into = total.entry(*day).or_default();
        for (key, n) in keys {
            *into.entry(key.clone()).or_default() += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(limit: u64, period: QuotaPeriod, offset: u32) -> QuotaTable {
        QuotaTable {
            limit,
            period,
            offset,
        }
    }

    fn d(text: &str) -> Date {
        text.parse().unwrap()
    }

    fn counts(entries: &[(&str, &str, u64)]) -> DayCounts {
        let mut c = DayCounts::new();
        for (day, key, n) in entries {
            c.entry(d(day)).or_default().insert((*key).into(), *n);
        }
        c
    }

    fn query(start: &str, end: &str) -> Query<'static> {
        Query {
            start: d(start),
            end: d(end),
            key_id: None,
            limit: 25,
            position: None,
        }
    }

    #[test]
    fn dates_are_strict() {
        assert_eq!(parse_date("2026-11-24"), Ok(d("2026-11-24")));
        for bad in [
            "2026-11-31",
            "2026-1-24",
            "20261124",
            "2026-11-24T00:00:00Z",
            "",
        ] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn periods_follow_amazons_calendar() {
        let day = |q: &QuotaTable, on: &str| {
            let (s, e) = period(q, d(on));
            (s.to_string(), e.to_string())
        };
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            day(&quota(1, QuotaPeriod::DAY, 0), "2026-11-24"),
            pair("2026-11-24", "2026-11-25")
        );
        // 2026-11-24 is a Tuesday; offset 0 is Sunday, 2 Tuesday, 3 Wednesday.
        assert_eq!(
            day(&quota(1, QuotaPeriod::WEEK, 0), "2026-11-24"),
            pair("2026-11-22", "2026-11-29")
        );
        assert_eq!(
            day(&quota(1, QuotaPeriod::WEEK, 2), "2026-11-24"),
            pair("2026-11-24", "2026-12-01")
        );
        assert_eq!(
            day(&quota(1, QuotaPeriod::WEEK, 3), "2026-11-24"),
            pair("2026-11-18", "2026-11-25")
        );
        assert_eq!(
            day(&quota(1, QuotaPeriod::MONTH, 0), "2026-02-28"),
            pair("2026-02-01", "2026-03-01")
        );
        assert_eq!(
            day(&quota(1, QuotaPeriod::MONTH, 14), "2026-11-10"),
            pair("2026-10-15", "2026-11-15")
        );
        assert_eq!(
            day(&quota(1, QuotaPeriod::MONTH, 27), "2026-12-31"),
            pair("2026-12-28", "2027-01-28")
        );
    }

    #[test]
    fn remaining_runs_down_through_a_period_and_resets_with_the_next() {
        // Weeks from Wednesday (offset 3): 2026-11-18 .. 2026-11-24, then from the 25th.
        let q = quota(100, QuotaPeriod::WEEK, 3);
        let c = counts(&[
            ("2026-11-20", "alice", 30), // before the range, same period
            ("2026-11-23", "alice", 10),
            ("2026-11-24", "alice", 5),
            ("2026-11-25", "alice", 7),
            ("2026-11-24", "bob", 1),
        ]);
        assert_eq!(first_day_needed(Some(&q), d("2026-11-23")), d("2026-11-18"));
        let got = usage(
            "gold",
            Some(&q),
            &[],
            &c,
            &query("2026-11-23", "2026-11-26"),
        );
        assert_eq!(
            got.values["alice"],
            vec![[10, 60], [5, 55], [7, 93], [0, 93]]
        );
        assert_eq!(
            got.values["bob"],
            vec![[0, 100], [1, 99], [0, 100], [0, 100]]
        );
        assert_eq!(got.start_date, "2026-11-23");
        assert_eq!(got.position, None);
    }

    #[test]
    fn bound_keys_appear_without_requests_and_no_quota_leaves_minus_one() {
        let c = counts(&[("2026-11-24", "alice", 2)]);
        let got = usage(
            "gold",
            None,
            &["carol".to_string()],
            &c,
            &query("2026-11-24", "2026-11-24"),
        );
        assert_eq!(got.values["alice"], vec![[2, -1]]);
        assert_eq!(got.values["carol"], vec![[0, -1]]);
    }

    #[test]
    fn pages_and_a_single_key() {
        let c = counts(&[
            ("2026-11-24", "a", 1),
            ("2026-11-24", "b", 1),
            ("2026-11-24", "c", 1),
        ]);
        let mut q = query("2026-11-24", "2026-11-24");
        q.limit = 2;
        let first = usage("p", None, &[], &c, &q);
        assert_eq!(first.values.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(first.position.as_deref(), Some("b"));
        q.position = Some("b");
        let second = usage("p", None, &[], &c, &q);
        assert_eq!(second.values.keys().collect::<Vec<_>>(), ["c"]);
        assert_eq!(second.position, None);
        let mut only = query("2026-11-24", "2026-11-24");
        only.key_id = Some("b");
        assert_eq!(
            usage("p", None, &[], &c, &only)
                .values
                .keys()
                .collect::<Vec<_>>(),
            ["b"]
        );
    }

    #[test]
    fn the_summary_ranks_keys_in_the_current_period() {
        let q = quota(10, QuotaPeriod::MONTH, 0);
        let c = counts(&[
            ("2026-10-31", "old", 50), // last period
            ("2026-11-02", "alice", 3),
            ("2026-11-24", "alice", 4),
            ("2026-11-24", "bob", 12),
        ]);
        let s = summary(Some(&q), &c, d("2026-11-24"));
        assert_eq!(s.period_start.0.to_string(), "2026-11-01T00:00:00Z");
        assert_eq!(s.period_end.0.to_string(), "2026-12-01T00:00:00Z");
        assert_eq!((s.used, s.key_count), (19, 2));
        let keys: Vec<_> = s
            .keys
            .iter()
            .map(|k| (k.key_id.as_str(), k.used, k.remaining))
            .collect();
        assert_eq!(keys, [("bob", 12, Some(0)), ("alice", 7, Some(3))]);
    }

    #[test]
    fn the_summary_is_capped() {
        let mut c = DayCounts::new();
        let day = c.entry(d("2026-11-24")).or_default();
        for i in 0..150u64 {
            day.insert(format!("k{i:03}"), i + 1);
        }
        let s = summary(None, &c, d("2026-11-24"));
        assert_eq!(s.key_count, 150);
        assert_eq!(s.keys.len(), SUMMARY_KEYS);
        assert_eq!(s.keys[0].key_id, "k149");
        assert_eq!(s.keys[0].remaining, None);
    }

    #[test]
    fn reports_add_up() {
        let mut total = counts(&[("2026-11-24", "alice", 2)]);
        add_counts(
            &mut total,
            &counts(&[("2026-11-24", "alice", 3), ("2026-11-25", "bob", 1)]),
        );
        assert_eq!(
            total,
            counts(&[("2026-11-24", "alice", 5), ("2026-11-25", "bob", 1)])
        );
    }
}
