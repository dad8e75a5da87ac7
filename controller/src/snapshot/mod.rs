//! The snapshot service's state: each gateway's current table (what subscribed proxies are
//! sent) and its fleet (which proxies are subscribed, which version each last accepted).
//!
//! - [`Snapshots::publish`], after every compile: each gateway of the index gets an entry; a
//!   compiled table is sent to its subscribers when its version changed; a gateway that no
//!   longer compiles keeps its last table (its proxies keep serving it); a gateway gone from
//!   the index is removed, which ends its subscribers' streams.
//! - [`Snapshots::subscribe`] / dropping the [`Subscription`]: a proxy connects and leaves.
//! - [`Snapshots::ack`]: a proxy's answer to a frame.
//!
//! Every change in the fleet's counts calls `on_fleet_change` (the control loop recomputes
//! statuses, see [`crate::status::gateway`]).
//!
//! Submodules: [`auth`] (who a bearer token is), [`server`] (the HTTPS endpoints).

pub mod auth;
pub mod server;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::watch;
use tollgate_crds::resources::ProxyCounts;
use tollgate_crds::snapshot::Ack;
use tollgate_crds::table::{GatewayTable, ObjectKey};

use crate::metrics::Metrics;

/// The tables and fleets of every gateway, shared by the control loop and the server.
pub struct Snapshots {
    state: Mutex<State>,
    on_fleet_change: Box<dyn Fn() + Send + Sync>,
    nacks: AtomicU64,
    metrics: Arc<Metrics>,
}

#[derive(Default)]
struct State {
    /// False until the first [`Snapshots::publish`]: the gateways are not known yet.
    ready: bool,
    gateways: BTreeMap<ObjectKey, Entry>,
}

struct Entry {
    table: watch::Sender<Option<Arc<GatewayTable>>>,
    /// Proxies subscribed here and to the other replicas; the frames' `fleetSize` (at least 1).
    fleet_size: watch::Sender<u32>,
    proxies: BTreeMap<String, Proxy>,
    /// Proxies of this gateway subscribed to the other replicas (from their fleet counts).
    elsewhere: u32,
}

#[derive(Default)]
struct Proxy {
    /// Open subscriptions with this proxy id (a reconnect may briefly overlap the old one).
    subscriptions: u32,
    /// The last version the proxy accepted.
    accepted: Option<String>,
    /// The last version sent to the proxy and when, until its answer (push-to-ACK time).
    sent: Option<(String, Instant)>,
}

impl Entry {
    fn new() -> Self {
        Self {
            table: watch::Sender::new(None),
            fleet_size: watch::Sender::new(1),
            proxies: BTreeMap::new(),
            elsewhere: 0,
        }
    }

    fn counts(&self) -> ProxyCounts {
        let version = self.table.borrow().as_ref().map(|t| t.version.clone());
        let connected = self.proxies.len() as u32;
        let current = self
            .proxies
            .values()
            .filter(|p| version.is_some() && p.accepted == version)
            .count() as u32;
        ProxyCounts { current, connected }
    }

    fn update_fleet_size(&self) {
        let size = (self.proxies.len() as u32 + self.elsewhere).max(1);
        self.fleet_size.send_if_modified(|s| {
            let changed = *s != size;
            *s = size;
            changed
        });
    }
}

/// Why a subscription was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum SubscribeError {
    /// The gateways are not known yet (the controller is starting).
    NotReady,
    /// No such gateway in the index.
    UnknownGateway,
}

/// One open subscription: its receivers, and its place in the fleet until dropped.
pub struct Subscription {
    pub table: watch::Receiver<Option<Arc<GatewayTable>>>,
    pub fleet_size: watch::Receiver<u32>,
    snapshots: Arc<Snapshots>,
    gateway: ObjectKey,
    proxy_id: String,
}

impl Subscription {
    /// Records that this subscription's proxy was just sent `version`.
    pub fn sent(&self, version: &str) {
        self.snapshots.sent(&self.gateway, &self.proxy_id, version);
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.snapshots.unsubscribe(&self.gateway, &self.proxy_id);
    }
}

impl Snapshots {
    /// With metrics of its own (unit tests).
    #[cfg(test)]
    pub fn new(on_fleet_change: impl Fn() + Send + Sync + 'static) -> Arc<Self> {
        Self::with_metrics(Arc::new(Metrics::new()), on_fleet_change)
    }

    /// As [`Snapshots::new`], counting NACKs and push-to-ACK times in `metrics`.
    pub fn with_metrics(
        metrics: Arc<Metrics>,
        on_fleet_change: impl Fn() + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::default()),
            on_fleet_change: Box::new(on_fleet_change),
            nacks: AtomicU64::new(0),
            metrics,
        })
    }

    /// Records that `version` was just sent to a subscribed proxy (the answer's clock starts).
    pub fn sent(&self, gateway: &ObjectKey, proxy_id: &str, version: &str) {
        let mut state = self.lock();
        if let Some(proxy) = state
            .gateways
            .get_mut(gateway)
            .and_then(|e| e.proxies.get_mut(proxy_id))
        {
            proxy.sent = Some((version.to_owned(), Instant::now()));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Brings the registry in line with one compile: `gateways` is every gateway of the index,
    /// `tables` those that compiled. Returns how many tables changed version.
    pub fn publish<'a>(
        &self,
        gateways: impl IntoIterator<Item = &'a ObjectKey>,
        tables: &BTreeMap<ObjectKey, GatewayTable>,
    ) -> usize {
        let mut state = self.lock();
        state.ready = true;
        let known: std::collections::BTreeSet<&ObjectKey> = gateways.into_iter().collect();
        // Dropping an entry drops its senders: its subscribers' streams end.
        let before = state.gateways.len();
        state.gateways.retain(|key, _| known.contains(key));
        let removed = before != state.gateways.len();
        let mut changed = 0;
        for key in known {
            let entry = state.gateways.entry(key.clone()).or_insert_with(Entry::new);
            let Some(table) = tables.get(key) else {
                continue;
            };
            let modified = entry.table.send_if_modified(|current| {
                if current.as_ref().is_some_and(|c| c.version == table.version) {
                    return false;
                }
                *current = Some(Arc::new(table.clone()));
                true
            });
            if modified {
                changed += 1;
                tracing::debug!(gateway = %key, version = %table.version, "new table");
            }
        }
        drop(state);
        if removed {
            (self.on_fleet_change)();
        }
        changed
    }

    /// Sets how many proxies of each gateway the other replicas serve, so that every frame's
    /// `fleetSize` counts the whole fleet, whichever replica each proxy is subscribed to.
    pub fn set_elsewhere(&self, elsewhere: &BTreeMap<ObjectKey, u32>) {
        let mut state = self.lock();
        for (gateway, entry) in state.gateways.iter_mut() {
            entry.elsewhere = elsewhere.get(gateway).copied().unwrap_or(0);
            entry.update_fleet_size();
        }
    }

    /// Adds a proxy to a gateway's fleet.
    pub fn subscribe(
        self: &Arc<Self>,
        gateway: &ObjectKey,
        proxy_id: &str,
    ) -> Result<Subscription, SubscribeError> {
        let mut state = self.lock();
        if !state.ready {
            return Err(SubscribeError::NotReady);
        }
        let entry = state
            .gateways
            .get_mut(gateway)
            .ok_or(SubscribeError::UnknownGateway)?;
        entry
            .proxies
            .entry(proxy_id.to_owned())
            .or_default()
            .subscriptions += 1;
        entry.update_fleet_size();
        let subscription = Subscription {
            table: entry.table.subscribe(),
            fleet_size: entry.fleet_size.subscribe(),
            snapshots: self.clone(),
            gateway: gateway.clone(),
            proxy_id: proxy_id.to_owned(),
        };
        drop(state);
        tracing::info!(%gateway, proxy = proxy_id, "proxy subscribed");
        (self.on_fleet_change)();
        Ok(subscription)
    }

    fn unsubscribe(&self, gateway: &ObjectKey, proxy_id: &str) {
        let mut state = self.lock();
        let Some(entry) = state.gateways.get_mut(gateway) else {
            return;
        };
        let Some(proxy) = entry.proxies.get_mut(proxy_id) else {
            return;
        };
        proxy.subscriptions = proxy.subscriptions.saturating_sub(1);
        if proxy.subscriptions == 0 {
            entry.proxies.remove(proxy_id);
        }
        entry.update_fleet_size();
        drop(state);
        tracing::info!(%gateway, proxy = proxy_id, "proxy unsubscribed");
        (self.on_fleet_change)();
    }

    /// Records a proxy's answer. An answer from a proxy that is not subscribed (its stream
    /// already closed) is ignored: it is not part of the fleet.
    pub fn ack(&self, ack: &Ack) {
        let mut state = self.lock();
        let proxy = state
            .gateways
            .get_mut(&ack.gateway)
            .and_then(|e| e.proxies.get_mut(&ack.proxy_id));
        let Some(proxy) = proxy else {
            tracing::debug!(gateway = %ack.gateway, proxy = %ack.proxy_id, "answer from a proxy that is not subscribed; ignored");
            return;
        };
        if let Some((version, at)) = &proxy.sent
            && *version == ack.version
        {
            self.metrics.push_to_ack.observe(at.elapsed().as_secs_f64());
            proxy.sent = None;
        }
        if !ack.accepted {
            self.metrics.nack(&ack.gateway);
            let total = self.nacks.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(
                gateway = %ack.gateway,
                proxy = %ack.proxy_id,
                version = %ack.version,
                reason = ack.reason.as_deref().unwrap_or(""),
                nacks_total = total,
                "a proxy refused a table"
            );
            return;
        }
        if proxy.accepted.as_deref() == Some(ack.version.as_str()) {
            return;
        }
        proxy.accepted = Some(ack.version.clone());
        drop(state);
        tracing::debug!(gateway = %ack.gateway, proxy = %ack.proxy_id, version = %ack.version, "table accepted");
        (self.on_fleet_change)();
    }

    /// NACKs received since start.
    #[cfg(test)]
    pub fn nacks(&self) -> u64 {
        self.nacks.load(Ordering::Relaxed)
    }

    /// Every known gateway's proxies: connected, and how many last accepted each version (what
    /// this replica publishes for the leader, see [`crate::replicas`]).
    pub fn fleet_versions(&self) -> BTreeMap<ObjectKey, crate::replicas::GatewayFleet> {
        self.lock()
            .gateways
            .iter()
            .map(|(key, entry)| {
                let mut versions = BTreeMap::new();
                for version in entry.proxies.values().filter_map(|p| p.accepted.clone()) {
                    *versions.entry(version).or_insert(0u32) += 1;
                }
                let fleet = crate::replicas::GatewayFleet {
                    versions,
                    connected: entry.proxies.len() as u32,
                };
                (key.clone(), fleet)
            })
            .collect()
    }

    /// A gateway's current table.
    pub fn table(&self, gateway: &ObjectKey) -> Option<Arc<GatewayTable>> {
        self.lock()
            .gateways
            .get(gateway)
            .and_then(|entry| entry.table.borrow().clone())
    }

    /// Every known gateway's current table version (the one its proxies are sent).
    pub fn current_versions(&self) -> BTreeMap<ObjectKey, String> {
        self.lock()
            .gateways
            .iter()
            .filter_map(|(key, entry)| {
                let version = entry.table.borrow().as_ref().map(|t| t.version.clone())?;
                Some((key.clone(), version))
            })
            .collect()
    }

    /// Every known gateway's proxies: connected, and running the gateway's current table.
    pub fn fleet_counts(&self) -> BTreeMap<ObjectKey, ProxyCounts> {
        self.lock()
            .gateways
            .iter()
            .map(|(key, entry)| (key.clone(), entry.counts()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use tollgate_crds::compile::compile_str;

    use super::*;

    fn tables(stage: &str) -> BTreeMap<ObjectKey, GatewayTable> {
        compile_str(
            &format!(
                "apiVersion: tollgate.dev/v1alpha1\nkind: ApiGateway\nmetadata: {{name: hello, namespace: ns}}\nspec: {{stages: [{{name: {stage}}}]}}\n"
            ),
            "t",
        )
        .unwrap()
        .tables
    }

    fn ack(version: &str, accepted: bool) -> Ack {
        Ack {
            gateway: ObjectKey::new("ns", "hello"),
            proxy_id: "p1".into(),
            version: version.into(),
            accepted,
            reason: (!accepted).then(|| "bad".into()),
        }
    }

    #[test]
    fn tables_fleets_and_removal() {
        let pokes = Arc::new(AtomicUsize::new(0));
        let p = pokes.clone();
        let snapshots = Snapshots::new(move || {
            p.fetch_add(1, Ordering::Relaxed);
        });
        let key = ObjectKey::new("ns", "hello");
        assert_eq!(
            snapshots.subscribe(&key, "p1").err(),
            Some(SubscribeError::NotReady)
        );
        let dev = tables("dev");
        assert_eq!(snapshots.publish([&key], &dev), 1);
        assert_eq!(snapshots.publish([&key], &dev), 0, "same version: not sent");
        let sub = snapshots.subscribe(&key, "p1").unwrap();
        let v1 = dev[&key].version.clone();
        assert_eq!(sub.table.borrow().as_ref().unwrap().version, v1);
        assert_eq!(
            snapshots.fleet_counts()[&key],
            ProxyCounts {
                current: 0,
                connected: 1
            }
        );
        sub.sent(&v1);
        snapshots.ack(&ack(&v1, true));
        assert_eq!(snapshots.fleet_counts()[&key].current, 1);
        assert_eq!(snapshots.metrics.push_to_ack.get_sample_count(), 1);
        snapshots.ack(&ack("0000", false));
        assert_eq!(snapshots.nacks(), 1);
        assert_eq!(snapshots.fleet_counts()[&key].current, 1);

        // A new table: the proxy is no longer current until it accepts it.
        let prod = tables("prod");
        assert_eq!(snapshots.publish([&key], &prod), 1);
        assert!(sub.table.has_changed().unwrap());
        assert_eq!(snapshots.fleet_counts()[&key].current, 0);

        // No table any more (the gateway stopped compiling): the last one stays.
        assert_eq!(snapshots.publish([&key], &BTreeMap::new()), 0);
        assert_eq!(
            sub.table.borrow().as_ref().unwrap().version,
            prod[&key].version
        );

        drop(sub);
        assert_eq!(snapshots.fleet_counts()[&key], ProxyCounts::default());

        // A deleted gateway: removed, and its subscribers' streams end.
        let sub = snapshots.subscribe(&key, "p1").unwrap();
        snapshots.publish([], &BTreeMap::new());
        let mut table = sub.table.clone();
        let closed = futures::executor::block_on(table.changed());
        assert!(closed.is_err());
        assert!(snapshots.fleet_counts().is_empty());
        assert_eq!(
            snapshots.subscribe(&key, "p2").err(),
            Some(SubscribeError::UnknownGateway)
        );
        assert!(pokes.load(Ordering::Relaxed) >= 4);
    }
}
