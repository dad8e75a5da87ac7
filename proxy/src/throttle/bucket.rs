//! A token bucket: `burst` tokens at most, refilled at `rate` per second. Pure; the caller
//! passes the clock.

use std::time::Instant;

use super::RateLimitStatus;

#[derive(Clone, Debug)]
pub struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// A rate and a capacity, already divided by the proxy's share in local mode.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    /// The bucket's capacity; at least 1 whenever `per_second` is positive.
    pub burst: f64,
}

impl Rate {
    /// `share` of a `rate_limit`/`burst_limit` pair: each of `share` proxies enforces this part.
    pub fn share(rate_limit: f64, burst_limit: u32, share: u32) -> Self {
        let share = f64::from(share.max(1));
        let per_second = rate_limit / share;
        let burst = if per_second > 0.0 {
            (f64::from(burst_limit) / share).ceil().max(1.0)
        } else {
            0.0
        };
        Self { per_second, burst }
    }

    pub fn blocks_everything(&self) -> bool {
        self.per_second <= 0.0
    }
}

impl Bucket {
    /// A full bucket.
    pub fn new(rate: Rate, now: Instant) -> Self {
        Self {
            tokens: rate.burst,
            updated: now,
        }
    }

    /// Takes one token if there is one; the status after the attempt either way.
    pub fn take(&mut self, rate: Rate, now: Instant) -> (bool, RateLimitStatus) {
        self.refill(rate, now);
        let admitted = self.tokens >= 1.0;
        if admitted {
            self.tokens -= 1.0;
        }
        (admitted, self.status(rate))
    }

    /// Gives back a token taken for a request that a later limit refused.
    pub fn give_back(&mut self, rate: Rate) {
        self.tokens = (self.tokens + 1.0).min(rate.burst);
    }

    /// Whether the bucket is full at `now`: such a bucket carries no state worth keeping.
    pub fn is_full(&self, rate: Rate, now: Instant) -> bool {
        let mut probe = self.clone();
        probe.refill(rate, now);
        probe.tokens >= rate.burst
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.updated = now;
    }

    fn status(&self, rate: Rate) -> RateLimitStatus {
        let per_second = rate.per_second.max(f64::MIN_POSITIVE);
        RateLimitStatus {
            limit: rate.burst as u64,
            remaining: self.tokens.floor().max(0.0) as u64,
            reset_seconds: ((rate.burst - self.tokens) / per_second).ceil() as u64,
            retry_after_seconds: ((1.0 - self.tokens).max(0.0) / per_second).ceil() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_full_bucket_admits_its_burst_then_refills_at_the_rate() {
        let rate = Rate::share(10.0, 5, 1);
        let t0 = Instant::now();
        let mut bucket = Bucket::new(rate, t0);
        let admitted = (0..8).filter(|_| bucket.take(rate, t0).0).count();
        assert_eq!(admitted, 5);
        let (ok, status) = bucket.take(rate, t0);
        assert!(!ok);
        assert_eq!(status.remaining, 0);
        assert_eq!(status.retry_after_seconds, 1);
        // 0.3 s later three tokens are back.
        let t1 = t0 + Duration::from_millis(300);
        let admitted = (0..5).filter(|_| bucket.take(rate, t1).0).count();
        assert_eq!(admitted, 3);
    }

    #[test]
    fn a_share_divides_rate_and_burst_but_keeps_one_token() {
        assert_eq!(
            Rate::share(90.0, 30, 3),
            Rate {
                per_second: 30.0,
                burst: 10.0
            }
        );
        assert_eq!(Rate::share(1.0, 1, 4).burst, 1.0);
        assert!(Rate::share(0.0, 100, 1).blocks_everything());
    }

    #[test]
    fn a_token_given_back_never_overfills() {
        let rate = Rate::share(1.0, 2, 1);
        let t0 = Instant::now();
        let mut bucket = Bucket::new(rate, t0);
        bucket.give_back(rate);
        assert!(bucket.is_full(rate, t0));
        assert_eq!(bucket.take(rate, t0).1.remaining, 1);
    }
}
