//! Polling instead of sleeping: a condition is checked until it holds or a generous deadline
//! passes, so the tests hold on a loaded machine without depending on how fast it is.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long a test waits for something that should happen "soon" (a reload, a log line).
pub const DEADLINE: Duration = Duration::from_secs(30);
/// Pause between two checks.
pub const POLL: Duration = Duration::from_millis(50);

/// Calls `check` until it returns `Some`, for up to [`DEADLINE`]; panics naming `what`.
pub fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}

/// The async twin of [`eventually`].
pub async fn eventually_async<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}
