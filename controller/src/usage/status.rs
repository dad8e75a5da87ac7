//! Each UsagePlan's `status.usage`: the current quota period's totals and top keys, written by
//! the leader at most once per interval (`--usage-status-interval-seconds`, default 60) per
//! plan — a plan whose `computedAt` is younger than the interval is left alone, so restarts
//! and leader changes keep the limit too — and only when the figures changed. Its own field
//! manager (`tollgate-controller-usage`), so the status writes of `publish.rs` and these never
//! remove each other's fields.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource as _};
use serde_json::json;
use tollgate_crds::resources::{UsagePlan, UsageSummary};
use tollgate_crds::usage::{period, summary};

use super::{PlanView, Usage, today};
use crate::index::Index;
use crate::leader::Leadership;
use crate::snapshot::Snapshots;

/// The field manager of `status.usage`.
pub const MANAGER: &str = "tollgate-controller-usage";

pub struct StatusWriter {
    pub client: Client,
    pub usage: Arc<Usage>,
    pub index: Arc<Index>,
    pub snapshots: Arc<Snapshots>,
    pub leadership: Leadership,
    pub every: Duration,
}

impl StatusWriter {
    /// Every interval, while leading: each plan's summary, written where it changed.
    pub async fn run(self) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if !self.leadership.is_leader() || !self.index.is_ready() {
                continue;
            }
            let mut written = 0usize;
            for (key, plan) in self.index.usage_plans() {
                if !self.leadership.is_leader() {
                    break;
                }
                written += usize::from(self.update(&key, &plan).await);
            }
            if written > 0 {
                tracing::debug!(written, "usage status written");
            }
        }
    }

    /// Writes one plan's summary if due and changed; true when written.
    async fn update(&self, key: &tollgate_crds::table::ObjectKey, plan: &UsagePlan) -> bool {
        let now = jiff::Timestamp::now();
        let current = plan.status.as_ref().and_then(|s| s.usage.as_ref());
        if let Some(current) = current {
            let age = now.duration_since(current.computed_at.0);
            if age.as_secs() >= 0 && age.unsigned_abs() < self.every {
                return false;
            }
        }
        let view = PlanView::of(plan, key, &self.snapshots);
        let today = today(now);
        let from = view.quota.as_ref().map_or(today, |q| period(q, today).0);
        let counts = match self.usage.counts(&view, from, today).await {
            Ok(counts) => counts,
            Err(error) => {
                tracing::warn!(plan = %key, %error, "usage status not computed");
                return false;
            }
        };
        let mut desired = summary(view.quota.as_ref(), &counts, today);
        desired.computed_at = Time(now.round(jiff::Unit::Second).unwrap_or(now));
        if !changed(current, &desired) {
            return false;
        }
        let api: Api<UsagePlan> = Api::namespaced(self.client.clone(), &key.namespace);
        let patch = json!({
            "apiVersion": UsagePlan::api_version(&()),
            "kind": UsagePlan::kind(&()),
            "status": {"usage": desired},
        });
        match api
            .patch_status(
                &key.name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
        {
            Ok(_) => true,
            Err(error) => {
                tracing::warn!(plan = %key, %error, "usage status write failed");
                false
            }
        }
    }
}

/// Whether `desired` says something `current` does not (its time aside). A plan nobody used
/// gets no summary until someone does.
fn changed(current: Option<&UsageSummary>, desired: &UsageSummary) -> bool {
    match current {
        None => desired.used > 0,
        Some(current) => {
            let mut same_time = desired.clone();
            same_time.computed_at = current.computed_at.clone();
            *current != same_time
        }
    }
}

#[cfg(test)]
mod tests {
    use tollgate_crds::usage::DayCounts;

    use super::*;

    #[test]
    fn only_new_figures_are_written() {
        let day = "2026-11-24".parse().unwrap();
        let mut counts = DayCounts::new();
        let idle = summary(None, &counts, day);
        assert!(!changed(None, &idle), "an idle plan gets no summary");
        counts.entry(day).or_default().insert("alice".into(), 3);
        let used = summary(None, &counts, day);
        assert!(changed(None, &used));
        let mut later = used.clone();
        later.computed_at = Time("2026-11-24T10:00:00Z".parse().unwrap());
        assert!(!changed(Some(&used), &later), "the time alone is no change");
        counts.entry(day).or_default().insert("alice".into(), 4);
        assert!(changed(Some(&used), &summary(None, &counts, day)));
    }
}
