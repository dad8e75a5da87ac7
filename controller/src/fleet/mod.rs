//! Each ApiGateway's proxy fleet in the cluster: its ServiceAccount, CA ConfigMap, Deployment
//! or DaemonSet, Service, NetworkPolicy and PodDisruptionBudget, applied on every pass
//! ([`desired`]: what they should be, pure; [`apply`]: the writes). Server-side apply with
//! force puts back whatever the controller owns that someone changed; objects of kinds the
//! gateway's endpoint type no longer has are deleted; a deleted gateway's objects go with it
//! (owner references, kube-controller-manager's garbage collector).

pub mod apply;
pub mod desired;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use kube::Client;
use tollgate_crds::resources::ApiGateway;
use tollgate_crds::table::ObjectKey;

use crate::index::Index;
use desired::{Kind, Settings};

/// How many writes run at once.
const CONCURRENCY: usize = 8;
/// Pause before retrying a pass whose fleet writes failed.
const RETRY: Duration = Duration::from_secs(2);

pub struct Fleet {
    client: Client,
    settings: Settings,
    index: Arc<Index>,
}

/// What a reconcile did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcome {
    pub applied: usize,
    pub deleted: usize,
    pub failed: usize,
}

impl Fleet {
    pub fn new(client: Client, settings: Settings, index: Arc<Index>) -> Fleet {
        Fleet {
            client,
            settings,
            index,
        }
    }

    /// Applies every gateway's fleet and deletes what endpoint type changes left behind. On
    /// failure another pass is asked for after a pause.
    pub async fn reconcile(&self, gateways: &BTreeMap<ObjectKey, ApiGateway>) -> Outcome {
        let mut applies = Vec::new();
        let mut wanted: BTreeSet<(Kind, ObjectKey)> = BTreeSet::new();
        for (key, gateway) in gateways {
            if gateway.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let Some(objects) = desired::desired(gateway, &self.settings) else {
                continue;
            };
            for object in objects {
                wanted.insert((
                    object.kind,
                    ObjectKey::new(key.namespace.clone(), object.name.clone()),
                ));
                applies.push((key.namespace.clone(), object));
            }
        }
        let deletes = self.leftovers(gateways, &wanted);

        let client = &self.client;
        let applied = futures::stream::iter(applies.iter().map(|(namespace, object)| async move {
            let result = apply::apply(client, namespace, object).await;
            if let Err(error) = &result {
                tracing::warn!(
                    kind = ?object.kind,
                    namespace,
                    name = object.name,
                    %error,
                    "applying a fleet object failed"
                );
            }
            result.is_ok()
        }))
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<bool>>()
        .await;
        let deleted = futures::stream::iter(deletes.iter().map(|(kind, key)| async move {
            let result = apply::delete(client, *kind, key).await;
            match &result {
                Ok(()) => tracing::info!(?kind, object = %key, "deleted: the gateway's endpoint type has none"),
                Err(error) => tracing::warn!(?kind, object = %key, %error, "deleting a fleet object failed"),
            }
            result.is_ok()
        }))
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<bool>>()
        .await;

        let ok = |results: &[bool]| results.iter().filter(|ok| **ok).count();
        let outcome = Outcome {
            applied: ok(&applied),
            deleted: ok(&deleted),
            failed: applied.len() + deleted.len() - ok(&applied) - ok(&deleted),
        };
        tracing::debug!(?outcome, "fleets reconciled");
        if outcome.failed > 0 {
            let index = self.index.clone();
            tokio::spawn(async move {
                tokio::time::sleep(RETRY).await;
                index.poke();
            });
        }
        outcome
    }

    /// Owned workloads and NetworkPolicies of a known gateway that its endpoint type does not
    /// have. (Those of unknown gateways are left to the garbage collector.)
    fn leftovers(
        &self,
        gateways: &BTreeMap<ObjectKey, ApiGateway>,
        wanted: &BTreeSet<(Kind, ObjectKey)>,
    ) -> Vec<(Kind, ObjectKey)> {
        let Some(owned) = self.index.owned_workloads() else {
            return Vec::new();
        };
        owned
            .into_iter()
            .filter(|(kind, key)| {
                let Some(gateway_name) = key.name.strip_prefix("tollgate-proxy-") else {
                    return false;
                };
                let gateway_key = ObjectKey::new(key.namespace.clone(), gateway_name);
                gateways.get(&gateway_key).is_some_and(|g| {
                    g.metadata.deletion_timestamp.is_none()
                        && desired::fleet_name(gateway_name) == key.name
                }) && !wanted.contains(&(*kind, key.clone()))
            })
            .collect()
    }
}
