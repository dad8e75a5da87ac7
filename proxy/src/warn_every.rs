//! A warning logged at most once a period, however often its cause recurs (a flood must not
//! flood the log), saying how many times it recurred since it was last logged.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

pub struct WarnEvery {
    every: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    logged_at: Option<Instant>,
    since: u64,
}

impl WarnEvery {
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            state: Mutex::new(State::default()),
        }
    }

    /// Counts one occurrence. `Some(n)` when the warning is due now: `n` occurrences since it
    /// was last logged, this one included.
    pub fn due(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.since += 1;
        let now = Instant::now();
        if state
            .logged_at
            .is_some_and(|at| now.duration_since(at) < self.every)
        {
            return None;
        }
        state.logged_at = Some(now);
        Some(std::mem::take(&mut state.since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_occurrence_is_logged_and_the_next_ones_counted() {
        let warn = WarnEvery::new(Duration::from_secs(3600));
        assert_eq!(warn.due(), Some(1));
        assert_eq!(warn.due(), None);
        assert_eq!(warn.due(), None);
        let again = WarnEvery::new(Duration::ZERO);
        assert_eq!(again.due(), Some(1));
        assert_eq!(again.due(), Some(1));
    }
}
