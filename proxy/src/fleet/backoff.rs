//! Reconnection delays: 100 ms doubling to 5 s, each drawn between half and all of the
//! current step, so a fleet that lost its controller at once does not return at once.

use std::time::Duration;

pub const FIRST: Duration = Duration::from_millis(100);
pub const MAX: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct Backoff {
    step: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { step: FIRST }
    }
}

impl Backoff {
    /// The delay before the next attempt; each call doubles the step, up to [`MAX`].
    pub fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = (step * 2).min(MAX);
        let half = step / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// After a good connection: the next failure starts again from [`FIRST`].
    pub fn reset(&mut self) {
        self.step = FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_100ms_to_5s_with_jitter_and_resets() {
        let mut b = Backoff::default();
        let mut steps = Vec::new();
        for _ in 0..10 {
            let d = b.next_delay();
            steps.push(d);
        }
        let bounds = [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000];
        for (d, max_ms) in steps.iter().zip(bounds) {
            let max = Duration::from_millis(max_ms);
            assert!(
                *d >= max / 2 && *d <= max,
                "{d:?} not in [{:?}, {max:?}]",
                max / 2
            );
        }
        b.reset();
        assert!(b.next_delay() <= FIRST);
    }
}
