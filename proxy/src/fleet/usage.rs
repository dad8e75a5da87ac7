//! Fleet mode: the usage this proxy counted (`throttle::usage`), reported to the controller
//! every [`EVERY`] and once more at shutdown. Each report carries the cumulative counts since
//! the proxy started, so the controller keeps the latest one per proxy and a lost report
//! costs nothing but freshness.

use std::sync::Arc;
use std::time::Duration;

use super::subscribe::Channel;
use crate::state::Shared;

/// How often counts are reported.
pub const EVERY: Duration = Duration::from_secs(10);

pub struct Reporter {
    channel: Channel,
    shared: Arc<Shared>,
}

impl Reporter {
    pub fn new(channel: Channel, shared: Arc<Shared>) -> Self {
        Self { channel, shared }
    }

    /// Reports every [`EVERY`], forever.
    pub async fn run(&self) {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.report().await;
        }
    }

    /// Sends the counts once (nothing when this proxy counted nothing).
    pub async fn report(&self) {
        let report = self.shared.limiter.usage.report(
            &self.channel.gateway,
            &self.channel.proxy_id,
            jiff::Timestamp::now(),
        );
        let Some(report) = report else { return };
        match self.channel.report_usage(&report).await {
            Ok(()) => tracing::debug!(plans = report.plans.len(), "usage reported"),
            Err(error) => {
                tracing::warn!(%error, "usage report not delivered; the next one carries the counts")
            }
        }
    }
}
