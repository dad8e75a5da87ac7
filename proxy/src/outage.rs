//! A dependency left alone for a while after a call to it fails (Redis for rate limiting and
//! for the stage cache): requests do not wait on it meanwhile, and an outage is logged about
//! once per period however many requests arrive. [`Outages`]: the same for each part of one
//! (a Redis Cluster's groups of keys).

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Outage {
    period: Duration,
    down_until: Mutex<Option<Instant>>,
}

impl Outage {
    pub fn new(period: Duration) -> Self {
        Self {
            period,
            down_until: Mutex::new(None),
        }
    }

    /// Whether the dependency is being left alone.
    pub fn is_down(&self) -> bool {
        let down_until = *self.down_until.lock().unwrap_or_else(|e| e.into_inner());
        down_until.is_some_and(|t| Instant::now() < t)
    }

    /// A call failed: leave the dependency alone for the period. True when it was up until
    /// now (the caller logs then, once per outage period).
    pub fn failed(&self) -> bool {
        let now = Instant::now();
        let mut down_until = self.down_until.lock().unwrap_or_else(|e| e.into_inner());
        let was_up = down_until.is_none_or(|t| t <= now);
        *down_until = Some(now + self.period);
        was_up
    }
}

/// [`Outage`]s by part of a dependency: a Redis Cluster's slot groups, so that a shard failing
/// over leaves alone only the keys it holds. Entries are made on failure only, and dropped once
/// past their period when there are many.
pub struct Outages {
    period: Duration,
    down_until: Mutex<std::collections::HashMap<String, Instant>>,
}

impl Outages {
    pub fn new(period: Duration) -> Self {
        Self {
            period,
            down_until: Mutex::default(),
        }
    }

    pub fn is_down(&self, part: &str) -> bool {
        let down = self.down_until.lock().unwrap_or_else(|e| e.into_inner());
        down.get(part).is_some_and(|t| Instant::now() < *t)
    }

    /// A call to `part` failed: leave it alone for the period.
    pub fn failed(&self, part: &str) {
        let now = Instant::now();
        let mut down = self.down_until.lock().unwrap_or_else(|e| e.into_inner());
        if down.len() >= 1024 {
            down.retain(|_, until| *until > now);
        }
        match down.get_mut(part) {
            Some(until) => *until = now + self.period,
            None => {
                down.insert(part.to_owned(), now + self.period);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_that_failed_is_left_alone_and_the_others_are_not() {
        let outages = Outages::new(Duration::from_millis(50));
        outages.failed("{a}");
        assert!(outages.is_down("{a}"));
        assert!(!outages.is_down("{b}"));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!outages.is_down("{a}"));
    }

    #[test]
    fn a_failure_leaves_it_alone_for_the_period_and_says_so_once() {
        let outage = Outage::new(Duration::from_millis(50));
        assert!(!outage.is_down());
        assert!(outage.failed(), "the first failure is news");
        assert!(!outage.failed(), "a second one in the period is not");
        assert!(outage.is_down());
        std::thread::sleep(Duration::from_millis(60));
        assert!(!outage.is_down());
        assert!(outage.failed());
    }
}
