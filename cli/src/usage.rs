//! `tollgate usage`: a usage plan's usage per key and day (Amazon's `GetUsage`) from the
//! controller's usage API, asked with the kubeconfig's own credentials (a token, an exec
//! plugin: whatever the current context's user gives as a bearer token), so RBAC decides as
//! it does for `kubectl get usageplan`.
//!
//! The controller's snapshot port is not the API server: reach it with `kubectl -n
//! tollgate-system port-forward svc/tollgate-controller 9443` (the default `--controller`) or
//! from inside the cluster. Its certificate is checked against the snapshot CA, read from the
//! Secret `tollgate-snapshot-ca` of the controller's namespace unless `--ca-file` names it.

use std::path::Path;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::config::{Cluster, KubeConfigOptions, Kubeconfig, NamedCluster};
use kube::{Api, Client, Config};
use tollgate_crds::usage::API_PREFIX;

/// What to ask.
pub struct Request<'a> {
    /// `namespace/name` of the plan.
    pub plan: &'a str,
    pub start_date: &'a str,
    pub end_date: &'a str,
    pub key_id: Option<&'a str>,
    /// The controller's snapshot service, `https://host:port`.
    pub controller: &'a str,
    pub ca_file: Option<&'a Path>,
    /// Where the snapshot CA Secret is, without `ca_file`.
    pub controller_namespace: &'a str,
}

/// The answer's JSON, pretty-printed.
pub async fn usage(request: &Request<'_>) -> anyhow::Result<String> {
    let (namespace, name) = request
        .plan
        .split_once('/')
        .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains('/'))
        .context("the plan must be namespace/name")?;
    let ca_pem = match request.ca_file {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => snapshot_ca(request.controller_namespace).await?,
    };
    let client = controller_client(request.controller, &ca_pem).await?;
    let mut query = format!(
        "startDate={}&endDate={}",
        request.start_date, request.end_date
    );
    if let Some(key) = request.key_id {
        query.push_str(&format!("&keyId={key}"));
    }
    let uri = format!("{API_PREFIX}{namespace}/usageplans/{name}?{query}");
    let http_request = http::Request::get(&uri)
        .body(Vec::new())
        .context("building the request")?;
    let response = client
        .send(http_request.map(kube::client::Body::from))
        .await
        .with_context(|| format!("asking {} for {uri}", request.controller))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect_bytes()
        .await
        .context("reading the answer")?;
    let value: serde_json::Value = serde_json::from_slice(&body)
        .with_context(|| format!("{status}: {}", String::from_utf8_lossy(&body)))?;
    if !status.is_success() {
        bail!(
            "{status}: {}",
            value["message"].as_str().unwrap_or("no message")
        );
    }
    Ok(serde_json::to_string_pretty(&value)?)
}

/// The snapshot CA's certificate, from the cluster of the current context.
async fn snapshot_ca(namespace: &str) -> anyhow::Result<Vec<u8>> {
    let client = Client::try_default()
        .await
        .context("connecting to the cluster (KUBECONFIG, ~/.kube/config or in-cluster)")?;
    let secret = Api::<Secret>::namespaced(client, namespace)
        .get("tollgate-snapshot-ca")
        .await
        .with_context(|| {
            format!("reading the Secret {namespace}/tollgate-snapshot-ca (or pass --ca-file)")
        })?;
    let ca = secret
        .data
        .and_then(|d| d.get("ca.crt").cloned())
        .context("the Secret tollgate-snapshot-ca has no ca.crt")?;
    Ok(ca.0)
}

/// A client of `controller` with the current context's user: the kubeconfig as it is, its
/// current context pointed at the controller, trusting `ca_pem`.
async fn controller_client(controller: &str, ca_pem: &[u8]) -> anyhow::Result<Client> {
    let mut kubeconfig = Kubeconfig::read().context("reading the kubeconfig")?;
    let current = kubeconfig
        .current_context
        .clone()
        .context("the kubeconfig has no current context")?;
    let context = kubeconfig
        .contexts
        .iter_mut()
        .find(|c| c.name == current)
        .and_then(|c| c.context.as_mut())
        .with_context(|| format!("the kubeconfig has no context {current}"))?;
    context.cluster = "tollgate-controller".into();
    kubeconfig.clusters.push(NamedCluster {
        name: "tollgate-controller".into(),
        cluster: Some(Cluster {
            server: Some(controller.to_owned()),
            certificate_authority_data: Some(
                base64::engine::general_purpose::STANDARD.encode(ca_pem),
            ),
            ..Default::default()
        }),
        ..Default::default()
    });
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .context("the kubeconfig's credentials")?;
    Client::try_from(config).context("building the client")
}
