//! Fleet counts across replicas: every replica serves snapshots, so each knows only the
//! proxies subscribed to it, while only the leader writes statuses ([`crate::leader`]).
//!
//! - [`Reporter`] (every replica) writes its own counts, per gateway `{versions: {version:
//!   proxies that last accepted it}, connected}`, as `fleet.json` of the ConfigMap
//!   `tollgate-fleet-{identity}` in the controller's namespace (server-side apply, field
//!   manager `tollgate-controller`, labelled [`SELECTOR`], annotated [`WRITTEN_AT`]): after a
//!   change of its counts (debounced), and at least every lease duration / 3. [`delete`]
//!   removes it on graceful shutdown.
//! - [`Others`] (every replica, read by the leader) watches those ConfigMaps, ignores its own
//!   (its live counts are used instead) and those written more than 2 × lease duration ago
//!   (a dead replica), and adds them to the local counts in [`Others::totals`]: `current`
//!   counts the proxies that accepted the gateway's current table version. Any change of
//!   them, or one going stale, pokes a status pass.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt as _;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Notify;
use tokio::time::Instant;
use tollgate_crds::resources::ProxyCounts;
use tollgate_crds::table::ObjectKey;

use crate::publish::MANAGER;
use crate::snapshot::Snapshots;

/// The data key of the counts.
pub const FLEET_KEY: &str = "fleet.json";
/// The annotation with the time of the last write (RFC 3339).
pub const WRITTEN_AT: &str = "tollgate.dev/fleet-written-at";
/// The labels of every replica's ConfigMap.
pub const SELECTOR: &str =
    "app.kubernetes.io/managed-by=tollgate,app.kubernetes.io/component=fleet-counts";
/// How long changes of the counts may keep coming before they are written.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// One gateway's proxies on one replica.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayFleet {
    /// Version -> proxies whose last accepted table is that version.
    pub versions: BTreeMap<String, u32>,
    /// Proxies subscribed.
    pub connected: u32,
}

/// One replica's counts, by gateway.
pub type Counts = BTreeMap<ObjectKey, GatewayFleet>;

/// The ConfigMap of the replica `identity`.
pub fn config_map_name(identity: &str) -> String {
    let safe: String = identity
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut name = format!("tollgate-fleet-{safe}");
    name.truncate(253);
    name.trim_end_matches(['-', '.']).to_owned()
}

fn encode(counts: &Counts) -> String {
    let by_name: BTreeMap<String, &GatewayFleet> =
        counts.iter().map(|(k, v)| (k.to_string(), v)).collect();
    serde_json::to_string(&by_name).unwrap_or_else(|_| "{}".to_owned())
}

fn decode(text: &str) -> Option<Counts> {
    let by_name: BTreeMap<String, GatewayFleet> = serde_json::from_str(text).ok()?;
    Some(
        by_name
            .into_iter()
            .filter_map(|(key, fleet)| {
                let (namespace, name) = key.split_once('/')?;
                Some((ObjectKey::new(namespace, name), fleet))
            })
            .collect(),
    )
}

/// Writes this replica's counts; see the module docs.
pub struct Reporter {
    pub api: Api<ConfigMap>,
    pub name: String,
    pub snapshots: Arc<Snapshots>,
    /// Notified on every change of the local fleet.
    pub changed: Arc<Notify>,
    /// The longest pause between two writes (lease duration / 3).
    pub refresh: Duration,
}

impl Reporter {
    pub fn new(
        client: Client,
        namespace: &str,
        identity: &str,
        snapshots: Arc<Snapshots>,
        changed: Arc<Notify>,
        lease_duration: Duration,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: config_map_name(identity),
            snapshots,
            changed,
            refresh: (lease_duration / 3).max(Duration::from_millis(500)),
        }
    }

    /// Writes at once, then on changes and refreshes; never returns.
    pub async fn run(self) {
        let mut written: Option<(Counts, Instant)> = None;
        loop {
            let due = written
                .as_ref()
                .map_or_else(Instant::now, |(_, at)| *at + self.refresh);
            tokio::select! {
                () = self.changed.notified() => tokio::time::sleep(DEBOUNCE).await,
                () = tokio::time::sleep_until(due) => {}
            }
            let counts = self.snapshots.fleet_versions();
            let fresh = written
                .as_ref()
                .is_some_and(|(c, at)| *c == counts && at.elapsed() < self.refresh);
            if fresh {
                continue;
            }
            match self.write(&counts).await {
                Ok(()) => written = Some((counts, Instant::now())),
                Err(error) => {
                    tracing::warn!(configmap = %self.name, %error, "fleet counts not written");
                    // Retry after a pause rather than at once.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    self.changed.notify_one();
                }
            }
        }
    }

    async fn write(&self, counts: &Counts) -> Result<(), kube::Error> {
        let patch = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self.name,
                "labels": {
                    "app.kubernetes.io/managed-by": "tollgate",
                    "app.kubernetes.io/component": "fleet-counts",
                },
                "annotations": { WRITTEN_AT: Timestamp::now().to_string() },
            },
            "data": { FLEET_KEY: encode(counts) },
        });
        let params = PatchParams::apply(MANAGER).force();
        let patch = Patch::Apply(&patch);
        let apply = self.api.patch(&self.name, &params, &patch);
        match tokio::time::timeout(Duration::from_secs(10), apply).await {
            Ok(result) => result.map(|_| ()),
            Err(_) => Err(kube::Error::Service(
                "the API server did not answer in time".into(),
            )),
        }
    }
}

/// Deletes this replica's ConfigMap (graceful shutdown); gives up after 2 s.
pub async fn delete(client: Client, namespace: &str, identity: &str) {
    let api: Api<ConfigMap> = Api::namespaced(client, namespace);
    let name = config_map_name(identity);
    match tokio::time::timeout(
        Duration::from_secs(2),
        api.delete(&name, &DeleteParams::default()),
    )
    .await
    {
        Ok(Ok(_)) => tracing::info!(configmap = %name, "fleet counts deleted"),
        Ok(Err(kube::Error::Api(status))) if status.code == 404 => {}
        Ok(Err(error)) => tracing::warn!(configmap = %name, %error, "fleet counts not deleted"),
        Err(_) => tracing::warn!(configmap = %name, "fleet counts not deleted in time"),
    }
}

/// The other replicas' counts; see the module docs.
pub struct Others {
    own: String,
    max_age: Duration,
    state: Mutex<BTreeMap<String, (Timestamp, Counts)>>,
}

impl Others {
    pub fn new(identity: &str, lease_duration: Duration) -> Arc<Self> {
        Arc::new(Self {
            own: config_map_name(identity),
            max_age: lease_duration * 2,
            state: Mutex::new(BTreeMap::new()),
        })
    }

    /// Watches the ConfigMaps; calls `poke` when the fresh ones change. Never returns.
    pub async fn watch(
        self: Arc<Self>,
        client: Client,
        namespace: &str,
        poke: impl Fn() + Send + Sync + 'static,
    ) {
        let api: Api<ConfigMap> = Api::namespaced(client, namespace);
        let config = watcher::Config::default().labels(SELECTOR);
        let events = watcher::watcher(api, config).default_backoff();
        futures::pin_mut!(events);
        let mut tick = tokio::time::interval((self.max_age / 6).max(Duration::from_millis(500)));
        let mut relist: Option<BTreeMap<String, (Timestamp, Counts)>> = None;
        let mut fresh = BTreeMap::new();
        loop {
            tokio::select! {
                event = events.next() => match event {
                    None => return,
                    Some(Err(error)) => tracing::warn!(%error, "fleet counts watch failed; retrying"),
                    Some(Ok(event)) => self.apply(event, &mut relist),
                },
                _ = tick.tick() => {}
            }
            // Stale ones drop out here too, on the tick.
            let now_fresh = self.fresh_counts(Timestamp::now());
            if now_fresh != fresh {
                fresh = now_fresh;
                poke();
            }
        }
    }

    fn apply(
        &self,
        event: Event<ConfigMap>,
        relist: &mut Option<BTreeMap<String, (Timestamp, Counts)>>,
    ) {
        match event {
            Event::Init => *relist = Some(BTreeMap::new()),
            Event::InitApply(cm) => {
                if let Some((name, entry)) = self.parse(&cm) {
                    relist.get_or_insert_default().insert(name, entry);
                }
            }
            Event::InitDone => *self.lock() = relist.take().unwrap_or_default(),
            Event::Apply(cm) => {
                let name = cm.metadata.name.clone().unwrap_or_default();
                let mut state = self.lock();
                match self.parse(&cm) {
                    Some((name, entry)) => state.insert(name, entry),
                    None => state.remove(&name),
                };
            }
            Event::Delete(cm) => {
                let name = cm.metadata.name.clone().unwrap_or_default();
                self.lock().remove(&name);
            }
        }
    }

    /// A ConfigMap of another replica: its name, last write and counts.
    fn parse(&self, cm: &ConfigMap) -> Option<(String, (Timestamp, Counts))> {
        let name = cm.metadata.name.clone()?;
        if name == self.own {
            return None;
        }
        let written: Timestamp = cm
            .metadata
            .annotations
            .as_ref()?
            .get(WRITTEN_AT)?
            .parse()
            .ok()?;
        let counts = decode(cm.data.as_ref()?.get(FLEET_KEY)?)?;
        Some((name, (written, counts)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (Timestamp, Counts)>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_fresh(&self, written: Timestamp, now: Timestamp) -> bool {
        let max_age = i64::try_from(self.max_age.as_millis()).unwrap_or(i64::MAX);
        now.as_millisecond()
            .saturating_sub(written.as_millisecond())
            <= max_age
    }

    /// The fresh ConfigMaps' counts (a refresh that changes nothing is no change).
    fn fresh_counts(&self, now: Timestamp) -> BTreeMap<String, Counts> {
        self.lock()
            .iter()
            .filter(|(_, (written, _))| self.is_fresh(*written, now))
            .map(|(name, (_, counts))| (name.clone(), counts.clone()))
            .collect()
    }

    /// Proxies subscribed to the other (fresh) replicas, per gateway.
    pub fn connected_elsewhere(&self, now: Timestamp) -> BTreeMap<ObjectKey, u32> {
        let mut out = BTreeMap::new();
        for counts in self.fresh_counts(now).values() {
            for (gateway, fleet) in counts {
                *out.entry(gateway.clone()).or_insert(0) += fleet.connected;
            }
        }
        out
    }

    /// This replica's counts plus every fresh other replica's: `current` counts the proxies
    /// that accepted `current_versions[gateway]`.
    pub fn totals(
        &self,
        local: BTreeMap<ObjectKey, ProxyCounts>,
        current_versions: &BTreeMap<ObjectKey, String>,
        now: Timestamp,
    ) -> BTreeMap<ObjectKey, ProxyCounts> {
        let state = self.lock();
        let fresh: Vec<&Counts> = state
            .values()
            .filter(|(written, _)| self.is_fresh(*written, now))
            .map(|(_, counts)| counts)
            .collect();
        local
            .into_iter()
            .map(|(key, mut total)| {
                for fleet in fresh.iter().filter_map(|counts| counts.get(&key)) {
                    total.connected += fleet.connected;
                    if let Some(version) = current_versions.get(&key) {
                        total.current += fleet.versions.get(version).copied().unwrap_or(0);
                    }
                }
                (key, total)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet(versions: &[(&str, u32)], connected: u32) -> GatewayFleet {
        GatewayFleet {
            versions: versions
                .iter()
                .map(|(v, n)| ((*v).to_owned(), *n))
                .collect(),
            connected,
        }
    }

    #[test]
    fn counts_round_trip_and_names_are_valid() {
        let counts: Counts = [(ObjectKey::new("ns", "hello"), fleet(&[("v1", 2)], 3))].into();
        assert_eq!(decode(&encode(&counts)), Some(counts));
        assert_eq!(config_map_name("Pod_A"), "tollgate-fleet-pod-a");
    }

    #[test]
    fn totals_add_fresh_replicas_only() {
        let others = Others::new("me", Duration::from_secs(4));
        let key = ObjectKey::new("ns", "hello");
        let now = Timestamp::from_second(1_000).unwrap();
        let mut state = others.lock();
        let counts: Counts = [(key.clone(), fleet(&[("v1", 2), ("v0", 1)], 4))].into();
        state.insert("tollgate-fleet-b".into(), (now, counts.clone()));
        // Written 9 s ago: more than twice the lease duration, a dead replica.
        let old = Timestamp::from_second(991).unwrap();
        state.insert("tollgate-fleet-c".into(), (old, counts));
        drop(state);
        let local = [(
            key.clone(),
            ProxyCounts {
                current: 1,
                connected: 1,
            },
        )]
        .into();
        let versions = [(key.clone(), "v1".to_owned())].into();
        assert_eq!(
            others.totals(local, &versions, now)[&key],
            ProxyCounts {
                current: 3,
                connected: 5
            }
        );
    }
}
