//! Writes statuses and events: each resource's desired status (see [`crate::status`]) is
//! applied to its status subresource by server-side apply, only when it differs from what the
//! object has; a Warning event is emitted when a resource becomes rejected.
//!
//! Only the leader writes ([`crate::leader`]): a replica that does not lead writes nothing,
//! and one that loses the Lease mid-pass skips the writes not started yet.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt as _;
use futures::future::BoxFuture;
use jiff::Timestamp;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client, Resource, ResourceExt as _};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tollgate_crds::compile::{Compiled, Kind, Resources};
use tollgate_crds::resources::ProxyCounts;
use tollgate_crds::table::ObjectKey;

use crate::leader::Leadership;
use crate::metrics::Metrics;
use crate::status::{self, WithConditions};

/// The field manager of every status write, and the reporting controller of events.
pub const MANAGER: &str = "tollgate-controller";
/// Status writes in flight at once.
const CONCURRENT_WRITES: usize = 16;

pub struct Publisher {
    client: Client,
    recorder: Recorder,
    base_domain: String,
    leadership: Leadership,
    metrics: Arc<Metrics>,
}

/// What one pass wrote.
#[derive(Debug, Default)]
pub struct Outcome {
    pub written: usize,
    pub failed: usize,
}

impl Publisher {
    pub fn new(
        client: Client,
        base_domain: String,
        leadership: Leadership,
        metrics: Arc<Metrics>,
    ) -> Self {
        let reporter = Reporter {
            controller: MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            base_domain,
            leadership,
            metrics,
        }
    }

    /// Brings every resource's status in line with the compiler's output.
    pub async fn publish(
        &self,
        resources: &Resources,
        compiled: &Compiled,
        fleets: &BTreeMap<ObjectKey, ProxyCounts>,
    ) -> Outcome {
        if !self.leadership.is_leader() {
            return Outcome::default();
        }
        let now = Timestamp::now()
            .round(jiff::Unit::Second)
            .unwrap_or(Timestamp::now());
        let mut writes: Vec<BoxFuture<'_, bool>> = Vec::new();

        for (key, gw) in &resources.gateways {
            let Some(diag) = compiled.diagnostic(Kind::ApiGateway, key) else {
                continue;
            };
            let desired = status::gateway(
                &gw.metadata,
                gw.status.as_ref(),
                diag,
                compiled.tables.get(key),
                fleets.get(key).cloned().unwrap_or_default(),
                &self.base_domain,
                now,
            );
            if status::differs(gw.status.as_ref(), &desired) {
                writes.push(Box::pin(self.write(gw, gw.status.as_ref(), desired)));
            }
        }
        for (key, rt) in &resources.routes {
            let Some(diag) = compiled.diagnostic(Kind::Route, key) else {
                continue;
            };
            let desired = status::route(&rt.metadata, rt.status.as_ref(), diag, now);
            if status::differs(rt.status.as_ref(), &desired) {
                writes.push(Box::pin(self.write(rt, rt.status.as_ref(), desired)));
            }
        }
        for (key, up) in &resources.usage_plans {
            let Some(diag) = compiled.diagnostic(Kind::UsagePlan, key) else {
                continue;
            };
            let desired = status::usage_plan(&up.metadata, up.status.as_ref(), diag, now);
            // `status.usage` is the usage writer's (crate::usage::status), not compared here.
            let current = up.status.clone().map(|mut s| {
                s.usage = None;
                s
            });
            if status::differs(current.as_ref(), &desired) {
                writes.push(Box::pin(self.write(up, up.status.as_ref(), desired)));
            }
        }

        let results: Vec<bool> = futures::stream::iter(writes)
            .buffer_unordered(CONCURRENT_WRITES)
            .collect()
            .await;
        Outcome {
            written: results.iter().filter(|ok| **ok).count(),
            failed: results.iter().filter(|ok| !**ok).count(),
        }
    }

    /// Applies `desired` to the object's status, then emits an event if the object became
    /// rejected; true when the write succeeded.
    async fn write<K, S>(&self, obj: &K, current: Option<&S>, desired: S) -> bool
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + Debug
            + DeserializeOwned,
        S: WithConditions + Serialize,
    {
        let name = obj.name_any();
        let namespace = obj.namespace().unwrap_or_default();
        let kind = K::kind(&());
        if !self.leadership.is_leader() {
            tracing::debug!(%kind, %namespace, %name, "not leader: status not written");
            return true;
        }
        let api: Api<K> = Api::namespaced(self.client.clone(), &namespace);
        let patch = json!({
            "apiVersion": K::api_version(&()),
            "kind": kind,
            "status": desired,
        });
        let params = PatchParams::apply(MANAGER).force();
        if let Err(error) = api
            .patch_status(&name, &params, &Patch::Apply(&patch))
            .await
        {
            tracing::warn!(%kind, %namespace, %name, %error, "status write failed");
            self.metrics.status_written(false);
            return false;
        }
        self.metrics.status_written(true);
        tracing::debug!(%kind, %namespace, %name, "status written");

        let mut desired = desired;
        let rejected = |conditions: &mut Vec<_>| {
            accepted_false(conditions).map(|c| (c.reason.clone(), c.message.clone()))
        };
        let now_rejected = rejected(desired.conditions_mut());
        let was_rejected = current
            .cloned()
            .and_then(|mut c| rejected(c.conditions_mut()));
        if let Some((reason, message)) = now_rejected
            && was_rejected.as_ref().map(|(r, _)| r) != Some(&reason)
        {
            let event = Event {
                type_: EventType::Warning,
                reason,
                note: Some(truncate(&message, 1024)),
                action: "Compile".into(),
                secondary: None,
            };
            if let Err(error) = self.recorder.publish(&event, &obj.object_ref(&())).await {
                tracing::warn!(%kind, %namespace, %name, %error, "event not recorded");
            }
        }
        true
    }
}

fn accepted_false(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    conditions
        .iter()
        .find(|c| c.type_ == "Accepted" && c.status == "False")
}

/// At most `max` bytes of `text`, cut on a character boundary.
fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}
