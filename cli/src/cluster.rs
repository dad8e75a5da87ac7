//! The resources of a cluster, for `tollgate export --cluster`: the ApiGateways, Routes and
//! UsagePlans of one namespace (or every one), with the Services, Secrets and truststore
//! ConfigMaps they may name, read once with the user's kubeconfig as `kubectl` would. The
//! compiler then sees what the controller's index would hold.

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{Api, ListParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use tollgate_crds::compile::{Resources, object_key};
use tollgate_crds::resources::{ApiGateway, Route, TRUSTSTORE_LABEL, UsagePlan};

/// Lists what the compiler reads, in `namespace` or in all of them.
pub async fn resources(namespace: Option<&str>) -> anyhow::Result<Resources> {
    let client = Client::try_default()
        .await
        .context("connecting to the cluster (KUBECONFIG, ~/.kube/config or in-cluster)")?;
    let mut resources = Resources::default();
    let all = ListParams::default();
    for gateway in list::<ApiGateway>(&client, namespace, &all).await? {
        resources
            .gateways
            .insert(object_key(&gateway.metadata), gateway);
    }
    for route in list::<Route>(&client, namespace, &all).await? {
        resources.routes.insert(object_key(&route.metadata), route);
    }
    for plan in list::<UsagePlan>(&client, namespace, &all).await? {
        resources
            .usage_plans
            .insert(object_key(&plan.metadata), plan);
    }
    for service in list::<Service>(&client, namespace, &all).await? {
        resources
            .services
            .insert(object_key(&service.metadata), service);
    }
    // Secrets hold the certificates of custom domains and the @connections credentials: read
    // (kept in memory, never written out) so that the compiler does not report them missing.
    for secret in list::<Secret>(&client, namespace, &all).await? {
        resources
            .secrets
            .insert(object_key(&secret.metadata), secret);
    }
    let truststores = ListParams::default().labels(TRUSTSTORE_LABEL);
    for map in list::<ConfigMap>(&client, namespace, &truststores).await? {
        resources.config_maps.insert(object_key(&map.metadata), map);
    }
    Ok(resources)
}

async fn list<K>(
    client: &Client,
    namespace: Option<&str>,
    params: &ListParams,
) -> anyhow::Result<Vec<K>>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    let listed = api
        .list(params)
        .await
        .with_context(|| format!("listing {kind}s"))?;
    Ok(listed.items)
}
