//! Quota periods: UTC calendar days, weeks and months, shifted by the plan's offset.

use jiff::civil::Date;
use jiff::{Timestamp, tz::TimeZone};
use tollgate_crds::table::QuotaTable;

/// The period a moment falls in: `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl Window {
    /// The quota period of `quota` that contains `now` (the calendar is
    /// `tollgate_crds::usage::period`, which usage reports share).
    pub fn containing(quota: &QuotaTable, now: Timestamp) -> Self {
        let today = now.to_zoned(TimeZone::UTC).date();
        let (start, end) = tollgate_crds::usage::period(quota, today);
        Self {
            start: midnight(start),
            end: midnight(end),
        }
    }

    /// Whole seconds from `now` to the end of the period, at least 1.
    pub fn seconds_left(&self, now: Timestamp) -> u64 {
        let left = self.end.as_second() - now.as_second();
        u64::try_from(left).unwrap_or(0).max(1)
    }
}

fn midnight(date: Date) -> Timestamp {
    date.to_zoned(TimeZone::UTC)
        .map(|z| z.timestamp())
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use tollgate_crds::table::QuotaPeriod;

    use super::*;

    fn window(period: QuotaPeriod, offset: u32, now: &str) -> (String, String) {
        let quota = QuotaTable {
            limit: 1,
            period,
            offset,
        };
        let w = Window::containing(&quota, now.parse().unwrap());
        (w.start.to_string(), w.end.to_string())
    }

    #[test]
    fn days_are_utc_calendar_days() {
        assert_eq!(
            window(QuotaPeriod::DAY, 0, "2026-11-24T23:59:59Z"),
            ("2026-11-24T00:00:00Z".into(), "2026-11-25T00:00:00Z".into())
        );
    }

    #[test]
    fn weeks_start_on_the_offset_weekday() {
        // 2026-11-24 is a Tuesday.
        assert_eq!(
            window(QuotaPeriod::WEEK, 0, "2026-11-24T12:00:00Z"),
            ("2026-11-22T00:00:00Z".into(), "2026-11-29T00:00:00Z".into())
        );
        assert_eq!(
            window(QuotaPeriod::WEEK, 2, "2026-11-24T00:00:00Z"),
            ("2026-11-24T00:00:00Z".into(), "2026-12-01T00:00:00Z".into())
        );
        assert_eq!(
            window(QuotaPeriod::WEEK, 3, "2026-11-24T12:00:00Z"),
            ("2026-11-18T00:00:00Z".into(), "2026-11-25T00:00:00Z".into())
        );
    }

    #[test]
    fn months_start_on_the_offset_day() {
        assert_eq!(
            window(QuotaPeriod::MONTH, 0, "2026-02-28T08:00:00Z"),
            ("2026-02-01T00:00:00Z".into(), "2026-03-01T00:00:00Z".into())
        );
        assert_eq!(
            window(QuotaPeriod::MONTH, 14, "2026-11-10T08:00:00Z"),
            ("2026-10-15T00:00:00Z".into(), "2026-11-15T00:00:00Z".into())
        );
        assert_eq!(
            window(QuotaPeriod::MONTH, 27, "2026-12-31T08:00:00Z"),
            ("2026-12-28T00:00:00Z".into(), "2027-01-28T00:00:00Z".into())
        );
    }

    #[test]
    fn seconds_left_count_to_the_end_of_the_period() {
        let quota = QuotaTable {
            limit: 1,
            period: QuotaPeriod::DAY,
            offset: 0,
        };
        let now: Timestamp = "2026-11-24T23:59:00Z".parse().unwrap();
        assert_eq!(Window::containing(&quota, now).seconds_left(now), 60);
    }
}
