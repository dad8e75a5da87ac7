//! The in-memory index: one watcher per kind the compiler reads, each keeping its objects by
//! `namespace/name`, and a [`Notify`] poked on every change.
//!
//! Secrets and ConfigMaps are watched only where Tollgate reads them, never all of them:
//! Secrets of the types `tollgate.dev/api-key`, `kubernetes.io/tls`, `tollgate.dev/truststore`
//! and `tollgate.dev/aws-credentials` (field selectors), ConfigMaps labelled
//! `tollgate.dev/truststore`.
//!
//! Objects are watched untyped and converted one by one, so an object that does not
//! deserialize is logged and left out instead of failing the whole list (a typed kube-runtime
//! watcher fails its entire list, and so the whole kind, on one bad object).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt as _;
use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tollgate_crds::compile::{FirstSeen, Resources, object_key};
use tollgate_crds::resources::{
    API_KEY_SECRET_TYPE, AWS_CREDENTIALS_SECRET_TYPE, ApiGateway, REDIS_AUTH_SECRET_TYPE, Route,
    TLS_SECRET_TYPE, TRUSTSTORE_LABEL, TRUSTSTORE_SECRET_TYPE, UsagePlan,
};
use tollgate_crds::table::ObjectKey;

use crate::fleet::desired::{Kind, MANAGED_BY_SELECTOR};

/// Every object the compiler reads, as last seen by the watchers.
pub struct Index {
    gateways: Shelf<ApiGateway>,
    routes: Shelf<Route>,
    usage_plans: Shelf<UsagePlan>,
    api_keys: Shelf<Secret>,
    tls: Shelf<Secret>,
    /// Secrets of type `tollgate.dev/truststore` (mutual TLS client CAs).
    truststores: Shelf<Secret>,
    /// Secrets of type `tollgate.dev/aws-credentials` (`@connections` callers).
    aws_credentials: Shelf<Secret>,
    /// Secrets of type `tollgate.dev/redis-auth` (the fleet's Redis ACL user).
    redis_auth: Shelf<Secret>,
    /// ConfigMaps labelled `tollgate.dev/truststore` (mutual TLS client CAs).
    truststore_config_maps: Shelf<ConfigMap>,
    services: Shelf<Service>,
    /// The fleet objects the controller applies ([`crate::fleet`]).
    owned: Owned,
    changed: Arc<Notify>,
}

impl Index {
    /// The index and the future that runs its watchers (it never ends).
    pub fn start(client: &Client) -> (Arc<Index>, BoxFuture<'static, ()>) {
        let changed = Arc::new(Notify::new());
        let index = Arc::new(Index {
            gateways: Shelf::default(),
            routes: Shelf::default(),
            usage_plans: Shelf::default(),
            api_keys: Shelf::default(),
            tls: Shelf::default(),
            truststores: Shelf::default(),
            aws_credentials: Shelf::default(),
            redis_auth: Shelf::default(),
            truststore_config_maps: Shelf::default(),
            services: Shelf::default(),
            owned: Owned::default(),
            changed: changed.clone(),
        });
        let all = watcher::Config::default();
        let mut watchers = vec![
            index.gateways.watch(client, all.clone(), changed.clone()),
            index.routes.watch(client, all.clone(), changed.clone()),
            index
                .usage_plans
                .watch(client, all.clone(), changed.clone()),
            index.api_keys.watch(
                client,
                all.clone().fields(&format!("type={API_KEY_SECRET_TYPE}")),
                changed.clone(),
            ),
            index.tls.watch(
                client,
                all.clone().fields(&format!("type={TLS_SECRET_TYPE}")),
                changed.clone(),
            ),
            index.truststores.watch(
                client,
                all.clone()
                    .fields(&format!("type={TRUSTSTORE_SECRET_TYPE}")),
                changed.clone(),
            ),
            index.aws_credentials.watch(
                client,
                all.clone()
                    .fields(&format!("type={AWS_CREDENTIALS_SECRET_TYPE}")),
                changed.clone(),
            ),
            index.redis_auth.watch(
                client,
                all.clone()
                    .fields(&format!("type={REDIS_AUTH_SECRET_TYPE}")),
                changed.clone(),
            ),
            index.truststore_config_maps.watch(
                client,
                all.clone().labels(TRUSTSTORE_LABEL),
                changed.clone(),
            ),
            index.services.watch(client, all, changed.clone()),
        ];
        watchers.extend(index.owned.watch(client, &changed));
        let run = Box::pin(async move {
            futures::future::join_all(watchers).await;
        });
        (index, run)
    }

    /// Resolves after the next change (or at once if one happened since the last call).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Asks for another pass, as if something changed.
    pub fn poke(&self) {
        self.changed.notify_one();
    }

    /// Whether every watcher has listed its objects once (before that, a snapshot would say a
    /// Route's gateway is missing when it is only not listed yet).
    pub fn is_ready(&self) -> bool {
        self.gateways.is_ready()
            && self.routes.is_ready()
            && self.usage_plans.is_ready()
            && self.api_keys.is_ready()
            && self.tls.is_ready()
            && self.truststores.is_ready()
            && self.aws_credentials.is_ready()
            && self.redis_auth.is_ready()
            && self.truststore_config_maps.is_ready()
            && self.services.is_ready()
    }

    /// The UsagePlan `key`, as last seen.
    pub fn usage_plan(&self, key: &ObjectKey) -> Option<UsagePlan> {
        self.usage_plans.lock().objects.get(key).cloned()
    }

    /// Every UsagePlan, as last seen.
    pub fn usage_plans(&self) -> BTreeMap<ObjectKey, UsagePlan> {
        self.usage_plans.objects()
    }

    /// A copy of everything, as the compiler takes it.
    pub fn snapshot(&self) -> Resources {
        let mut secrets = self.api_keys.objects();
        secrets.extend(self.tls.objects());
        secrets.extend(self.truststores.objects());
        secrets.extend(self.aws_credentials.objects());
        secrets.extend(self.redis_auth.objects());
        Resources {
            gateways: self.gateways.objects(),
            routes: self.routes.objects(),
            usage_plans: self.usage_plans.objects(),
            secrets,
            services: self.services.objects(),
            config_maps: self.truststore_config_maps.objects(),
            // Every object from the API server has a creationTimestamp: that orders them.
            first_seen: FirstSeen::default(),
        }
    }

    /// The owned Deployments, DaemonSets and NetworkPolicies (what an endpoint type change
    /// may leave behind), or `None` until their watchers have listed them.
    pub fn owned_workloads(&self) -> Option<Vec<(Kind, ObjectKey)>> {
        self.owned.workloads()
    }
}

// === impl Owned ===

/// Every proxy fleet object (labelled `app.kubernetes.io/managed-by=tollgate` and
/// `app.kubernetes.io/name=tollgate-proxy`), by kind: watched so that a hand edit of one
/// triggers a pass (which applies it back).
#[derive(Default)]
struct Owned {
    deployments: Shelf<Deployment>,
    daemon_sets: Shelf<DaemonSet>,
    network_policies: Shelf<NetworkPolicy>,
    services: Shelf<Service>,
    service_accounts: Shelf<ServiceAccount>,
    disruption_budgets: Shelf<PodDisruptionBudget>,
    config_maps: Shelf<ConfigMap>,
}

impl Owned {
    fn watch(&self, client: &Client, changed: &Arc<Notify>) -> Vec<BoxFuture<'static, ()>> {
        let config = watcher::Config::default().labels(MANAGED_BY_SELECTOR);
        vec![
            self.deployments
                .watch(client, config.clone(), changed.clone()),
            self.daemon_sets
                .watch(client, config.clone(), changed.clone()),
            (self.network_policies).watch(client, config.clone(), changed.clone()),
            self.services.watch(client, config.clone(), changed.clone()),
            (self.service_accounts).watch(client, config.clone(), changed.clone()),
            (self.disruption_budgets).watch(client, config.clone(), changed.clone()),
            self.config_maps.watch(client, config, changed.clone()),
        ]
    }

    fn workloads(&self) -> Option<Vec<(Kind, ObjectKey)>> {
        let ready = self.deployments.is_ready()
            && self.daemon_sets.is_ready()
            && self.network_policies.is_ready();
        if !ready {
            return None;
        }
        let keys = |kind: Kind, keys: Vec<ObjectKey>| keys.into_iter().map(move |k| (kind, k));
        Some(
            keys(Kind::Deployment, self.deployments.keys())
                .chain(keys(Kind::DaemonSet, self.daemon_sets.keys()))
                .chain(keys(Kind::NetworkPolicy, self.network_policies.keys()))
                .collect(),
        )
    }
}

// === impl Shelf ===

/// One watcher's objects.
struct Shelf<K> {
    inner: Arc<Mutex<ShelfState<K>>>,
}

struct ShelfState<K> {
    objects: BTreeMap<ObjectKey, K>,
    /// Objects of a (re)list in progress; they replace `objects` when it is done.
    relist: Option<BTreeMap<ObjectKey, K>>,
    ready: bool,
}

impl<K> Default for Shelf<K> {
    fn default() -> Self {
        Self {
            inner: Arc::new(Mutex::new(ShelfState {
                objects: BTreeMap::new(),
                relist: None,
                ready: false,
            })),
        }
    }
}

impl<K> Shelf<K>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug + Send + 'static,
{
    fn objects(&self) -> BTreeMap<ObjectKey, K> {
        self.lock().objects.clone()
    }

    fn is_ready(&self) -> bool {
        self.lock().ready
    }

    fn keys(&self) -> Vec<ObjectKey> {
        self.lock().objects.keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ShelfState<K>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Watches `K` in every namespace into this shelf; errors are logged and retried with
    /// kube-runtime's default backoff.
    fn watch(
        &self,
        client: &Client,
        config: watcher::Config,
        changed: Arc<Notify>,
    ) -> BoxFuture<'static, ()> {
        let resource = ApiResource::erase::<K>(&());
        let kind = resource.kind.clone();
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let inner = self.inner.clone();
        Box::pin(
            watcher::watcher(api, config)
                .default_backoff()
                .for_each(move |event| {
                    match event {
                        Ok(event) => {
                            let mut state = inner.lock().unwrap_or_else(PoisonError::into_inner);
                            if state.apply(&kind, event) {
                                changed.notify_one();
                            }
                        }
                        Err(error) => {
                            tracing::warn!(%kind, %error, "watch failed; retrying");
                        }
                    }
                    futures::future::ready(())
                }),
        )
    }
}

impl<K: DeserializeOwned> ShelfState<K> {
    /// Applies one watcher event; true when the objects changed.
    fn apply(&mut self, kind: &str, event: Event<DynamicObject>) -> bool {
        match event {
            Event::Init => {
                self.relist = Some(BTreeMap::new());
                false
            }
            Event::InitApply(obj) => {
                if let Some((key, typed)) = convert(kind, obj) {
                    self.relist.get_or_insert_default().insert(key, typed);
                }
                false
            }
            Event::InitDone => {
                self.objects = self.relist.take().unwrap_or_default();
                self.ready = true;
                true
            }
            Event::Apply(obj) => {
                let key = object_key(&obj.metadata);
                match convert(kind, obj) {
                    Some((key, typed)) => self.objects.insert(key, typed),
                    // A bad new version replaces nothing it could be confused with: drop it.
                    None => self.objects.remove(&key),
                };
                true
            }
            Event::Delete(obj) => self.objects.remove(&object_key(&obj.metadata)).is_some(),
        }
    }
}

/// The typed object, or `None` (logged) when it does not deserialize.
fn convert<K: DeserializeOwned>(kind: &str, obj: DynamicObject) -> Option<(ObjectKey, K)> {
    let key = object_key(&obj.metadata);
    let typed = serde_json::to_value(obj).and_then(serde_json::from_value::<K>);
    match typed {
        Ok(typed) => Some((key, typed)),
        Err(error) => {
            tracing::warn!(%kind, object = %key, %error, "object left out: it does not deserialize");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str, path: serde_json::Value) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "tollgate.dev/v1alpha1",
            "kind": "Route",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "gatewayRef": {"name": "hello"},
                "method": "GET",
                "path": path,
                "integration": {"mock": {"statusCode": 200}},
            },
        }))
        .expect("a DynamicObject")
    }

    #[test]
    fn an_object_that_does_not_deserialize_is_left_out_and_the_rest_kept() {
        let mut state = ShelfState::<Route> {
            objects: BTreeMap::new(),
            relist: None,
            ready: false,
        };
        state.apply("Route", Event::Init);
        state.apply("Route", Event::InitApply(route("good", "/pets".into())));
        state.apply("Route", Event::InitApply(route("bad", 42.into())));
        assert!(state.apply("Route", Event::InitDone));
        assert!(state.ready);
        let names: Vec<&str> = state.objects.keys().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["good"]);

        // A later bad version of a known object removes it; a good one brings it back.
        assert!(state.apply("Route", Event::Apply(route("good", 42.into()))));
        assert!(state.objects.is_empty());
        assert!(state.apply("Route", Event::Apply(route("good", "/pets".into()))));
        assert_eq!(state.objects.len(), 1);
    }
}
