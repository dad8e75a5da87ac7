//! A dependency left alone for a while after a call to it fails (Redis for rate limiting and
//! for the stage cache): requests do not wait on it meanwhile, and an outage is logged about
//! once per period however many requests arrive.

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

#[cfg(test)]
mod tests {
    use super::*;

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
