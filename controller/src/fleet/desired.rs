//! What a gateway's proxy fleet should look like, as server-side apply documents (pure: no
//! I/O). Every object is named after the gateway, labelled [`labels`], and owned by the
//! ApiGateway (controller, blocking its deletion), so the garbage collector removes it with
//! the gateway.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Resource as _;
use kube::api::ApiResource;
use serde_json::{Value, json};
use tollgate_crds::resources::{
    ApiGateway, EndpointType, FleetAccessLog, FleetLogFormat, FleetSettings,
};
use tollgate_crds::snapshot::{TOKEN_AUDIENCE, proxy_service_account};

/// The field manager of every apply.
pub const FIELD_MANAGER: &str = "tollgate-controller";
/// Label every owned object carries (value [`MANAGED_BY`]); the watchers select on it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "tollgate";
/// Selects the proxy fleet objects (and not the controller's own bookkeeping objects, such as
/// the per-replica fleet-count ConfigMaps, whose writes must not set off a fleet pass).
pub const MANAGED_BY_SELECTOR: &str =
    "app.kubernetes.io/managed-by=tollgate,app.kubernetes.io/name=tollgate-proxy";
const NAME_LABEL: &str = "app.kubernetes.io/name";
const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
const PROXY_NAME: &str = "tollgate-proxy";

pub const PROXY_PORT: i32 = 8080;
/// The proxy's TLS listener, present when the gateway has a domain with a certificate.
pub const PROXY_TLS_PORT: i32 = 8443;
pub const ADMIN_PORT: i32 = 9901;
/// How long a fleet proxy keeps accepting after SIGTERM (`--shutdown-delay-seconds`), while
/// its pod leaves the Service's endpoints.
const SHUTDOWN_DELAY_SECONDS: u64 = 5;
pub const TOKEN_DIR: &str = "/var/run/secrets/tollgate";
pub const CA_DIR: &str = "/etc/tollgate/ca";
pub const STATE_DIR: &str = "/var/lib/tollgate";

/// What the controller puts in every gateway's fleet, whatever the gateway.
#[derive(Clone, Debug)]
pub struct Settings {
    pub proxy_image: String,
    /// The controller's namespace: the snapshot service is `tollgate-controller.{ns}.svc`.
    pub controller_namespace: String,
    /// The CA (PEM) proxies trust for the snapshot service.
    pub ca_pem: String,
    /// The collector the proxies send spans to when their gateway names none.
    pub otlp: Option<tollgate_telemetry::export::Endpoint>,
}

/// The kinds a fleet is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    ServiceAccount,
    ConfigMap,
    Deployment,
    DaemonSet,
    Service,
    NetworkPolicy,
    PodDisruptionBudget,
}

impl Kind {
    pub fn api_resource(self) -> ApiResource {
        match self {
            Kind::ServiceAccount => ApiResource::erase::<ServiceAccount>(&()),
            Kind::ConfigMap => ApiResource::erase::<ConfigMap>(&()),
            Kind::Deployment => ApiResource::erase::<Deployment>(&()),
            Kind::DaemonSet => ApiResource::erase::<DaemonSet>(&()),
            Kind::Service => ApiResource::erase::<Service>(&()),
            Kind::NetworkPolicy => ApiResource::erase::<NetworkPolicy>(&()),
            Kind::PodDisruptionBudget => ApiResource::erase::<PodDisruptionBudget>(&()),
        }
    }
}

/// One object to apply.
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    pub kind: Kind,
    pub name: String,
    pub body: Value,
}

/// The name of the gateway's proxy workload, Service, NetworkPolicy and PDB.
pub fn fleet_name(gateway: &str) -> String {
    format!("{PROXY_NAME}-{gateway}")
}

/// The name of the ConfigMap holding the snapshot CA.
pub fn ca_config_map(gateway: &str) -> String {
    format!("{PROXY_NAME}-{gateway}-ca")
}

/// The labels of every owned object (and of the proxy pods).
pub fn labels(gateway: &str) -> BTreeMap<String, String> {
    [
        (NAME_LABEL, PROXY_NAME),
        (INSTANCE_LABEL, gateway),
        (MANAGED_BY_LABEL, MANAGED_BY),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn selector_labels(gateway: &str) -> Value {
    json!({NAME_LABEL: PROXY_NAME, INSTANCE_LABEL: gateway})
}

/// Whether the gateway's proxies serve TLS: some domain names a certificate Secret. Read from
/// the spec, not the compiled table, so that a Secret being fixed does not move ports.
pub fn serves_tls(gateway: &ApiGateway) -> bool {
    gateway
        .spec
        .domains
        .iter()
        .any(|d| d.certificate_secret_ref.is_some())
}

/// The kinds a gateway of `endpoint_type` has.
#[cfg(test)]
fn kinds(endpoint_type: EndpointType) -> Vec<Kind> {
    let mut kinds = vec![
        Kind::ServiceAccount,
        Kind::ConfigMap,
        Kind::Service,
        Kind::PodDisruptionBudget,
    ];
    match endpoint_type {
        EndpointType::Regional => kinds.push(Kind::Deployment),
        EndpointType::Private => kinds.extend([Kind::Deployment, Kind::NetworkPolicy]),
        EndpointType::Edge => kinds.push(Kind::DaemonSet),
    }
    kinds.sort();
    kinds
}

/// Every object of the gateway's fleet; `None` when the gateway has no name, namespace or
/// uid (not from the API server).
pub fn desired(gateway: &ApiGateway, settings: &Settings) -> Option<Vec<Object>> {
    let name = gateway.metadata.name.as_deref()?;
    let namespace = gateway.metadata.namespace.as_deref()?;
    let mut owner = gateway.controller_owner_ref(&())?;
    owner.block_owner_deletion = Some(true);
    let owner = serde_json::to_value(owner).ok()?;
    let fleet = fleet_name(name);
    let endpoint_type = gateway.spec.endpoint_type;
    let meta = |object_name: &str| {
        json!({
            "name": object_name,
            "namespace": namespace,
            "labels": labels(name),
            "ownerReferences": [owner.clone()],
        })
    };
    let object = |kind: Kind, object_name: &str, mut body: Value| {
        let resource = kind.api_resource();
        body["apiVersion"] = resource.api_version.into();
        body["kind"] = resource.kind.into();
        body["metadata"] = meta(object_name);
        Object {
            kind,
            name: object_name.to_owned(),
            body,
        }
    };

    let mut objects = Vec::new();
    let mut service_account = object(
        Kind::ServiceAccount,
        &proxy_service_account(name),
        json!({"automountServiceAccountToken": false}),
    );
    // The user's annotations (an IRSA role, say) on the ServiceAccount the proxies run as.
    if let Some(annotations) = gateway
        .spec
        .fleet
        .as_ref()
        .map(|f| &f.service_account_annotations)
        .filter(|a| !a.is_empty())
    {
        service_account.body["metadata"]["annotations"] = json!(annotations);
    }
    objects.push(service_account);
    objects.push(object(
        Kind::ConfigMap,
        &ca_config_map(name),
        json!({"data": {"ca.crt": settings.ca_pem}}),
    ));
    let template = pod_template(gateway, name, namespace, settings);
    match endpoint_type {
        EndpointType::Regional | EndpointType::Private => {
            let replicas = gateway
                .spec
                .fleet
                .as_ref()
                .and_then(|f| f.replicas)
                .unwrap_or(2);
            objects.push(object(
                Kind::Deployment,
                &fleet,
                json!({"spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": selector_labels(name)},
                    "template": template,
                }}),
            ));
        }
        EndpointType::Edge => objects.push(object(
            Kind::DaemonSet,
            &fleet,
            json!({"spec": {
                "selector": {"matchLabels": selector_labels(name)},
                "template": template,
            }}),
        )),
    }
    let tls = serves_tls(gateway);
    let mut ports =
        vec![json!({"name": "http", "port": 80, "targetPort": PROXY_PORT, "protocol": "TCP"})];
    if tls {
        ports.push(json!({"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}));
    }
    let service = match endpoint_type {
        EndpointType::Regional => json!({"type": "LoadBalancer", "ports": ports}),
        EndpointType::Private => json!({"type": "ClusterIP", "ports": ports}),
        EndpointType::Edge => json!({
            "type": "LoadBalancer",
            "externalTrafficPolicy": "Local",
            "ports": ports,
        }),
    };
    let mut service = json!({"spec": service});
    service["spec"]["selector"] = selector_labels(name);
    objects.push(object(Kind::Service, &fleet, service));
    if endpoint_type == EndpointType::Private {
        let policy = gateway.spec.resource_policy.as_ref();
        let namespaces = policy.map(|p| &p.allow_namespaces[..]).unwrap_or_default();
        let cidrs = policy.map(|p| &p.allow_cidrs[..]).unwrap_or_default();
        let from: Vec<Value> = namespaces
            .iter()
            .map(|ns| {
                json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}})
            })
            .chain(cidrs.iter().map(|cidr| json!({"ipBlock": {"cidr": cidr}})))
            .collect();
        let mut ports = vec![json!({"port": PROXY_PORT, "protocol": "TCP"})];
        if tls {
            ports.push(json!({"port": PROXY_TLS_PORT, "protocol": "TCP"}));
        }
        objects.push(object(
            Kind::NetworkPolicy,
            &fleet,
            json!({"spec": {
                "podSelector": {"matchLabels": selector_labels(name)},
                "policyTypes": ["Ingress"],
                "ingress": [{
                    "from": from,
                    "ports": ports,
                }],
            }}),
        ));
    }
    objects.push(object(
        Kind::PodDisruptionBudget,
        &fleet,
        json!({"spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector_labels(name)},
        }}),
    ));
    Some(objects)
}

/// The proxies' log settings from `spec.fleet`, as proxy flags; none for the defaults.
fn log_args(fleet: Option<&FleetSettings>) -> Vec<String> {
    let mut args = Vec::new();
    let Some(fleet) = fleet else { return args };
    if let Some(target) = fleet.access_log {
        let value = match target {
            FleetAccessLog::Stdout => "stdout",
            FleetAccessLog::Disabled => "off",
        };
        args.extend(["--access-log".to_owned(), value.to_owned()]);
    }
    if let Some(format) = fleet.log_format {
        let value = match format {
            FleetLogFormat::Text => "text",
            FleetLogFormat::Json => "json",
        };
        args.extend(["--log-format".to_owned(), value.to_owned()]);
    }
    if let Some(level) = &fleet.log_level {
        args.extend(["--log-level".to_owned(), level.clone()]);
    }
    args
}

fn pod_template(gateway: &ApiGateway, name: &str, namespace: &str, settings: &Settings) -> Value {
    let fleet = gateway.spec.fleet.as_ref();
    let resources = fleet
        .and_then(|f| f.resources.as_ref())
        .and_then(|r| serde_json::to_value(r).ok())
        .unwrap_or_else(|| {
            json!({"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}})
        });
    let mut args = vec![
        "--controller".to_owned(),
        format!(
            "https://tollgate-controller.{}.svc:9443",
            settings.controller_namespace
        ),
        "--gateway".to_owned(),
        format!("{namespace}/{name}"),
        "--state-dir".to_owned(),
        STATE_DIR.to_owned(),
        "--token-file".to_owned(),
        format!("{TOKEN_DIR}/token"),
        "--ca-file".to_owned(),
        format!("{CA_DIR}/ca.crt"),
        "--listen".to_owned(),
        format!("0.0.0.0:{PROXY_PORT}"),
        "--admin-listen".to_owned(),
        format!("0.0.0.0:{ADMIN_PORT}"),
        // A terminating pod leaves the Service's endpoints while it gets SIGTERM: load
        // balancers and kube-proxy keep sending new connections for a few seconds, which the
        // proxy serves before it drains. (A preStop `sleep` action would need Kubernetes 1.30;
        // distroless has no sleep binary for an exec hook.)
        "--shutdown-delay-seconds".to_owned(),
        SHUTDOWN_DELAY_SECONDS.to_string(),
    ];
    args.extend(log_args(fleet));
    if let Some(otlp) = &settings.otlp {
        args.extend([
            "--otlp-endpoint".to_owned(),
            otlp.url.clone(),
            "--otlp-protocol".to_owned(),
            otlp.protocol.name().to_owned(),
        ]);
    }
    let mut ports = vec![
        json!({"name": "http", "containerPort": PROXY_PORT, "protocol": "TCP"}),
        json!({"name": "admin", "containerPort": ADMIN_PORT, "protocol": "TCP"}),
    ];
    if serves_tls(gateway) {
        args.extend([
            "--tls-listen".to_owned(),
            format!("0.0.0.0:{PROXY_TLS_PORT}"),
        ]);
        ports.push(json!({"name": "https", "containerPort": PROXY_TLS_PORT, "protocol": "TCP"}));
    }
    let probe = |path: &str| json!({"httpGet": {"path": path, "port": ADMIN_PORT}});
    let mut spec = json!({
        "serviceAccountName": proxy_service_account(name),
        "automountServiceAccountToken": false,
        // After SIGTERM the proxy serves for its shutdown delay, drains for 30 s (its
        // --drain-seconds default), then flushes its access log: leave it the time before the
        // kubelet's SIGKILL.
        "terminationGracePeriodSeconds": SHUTDOWN_DELAY_SECONDS + 40,
        "containers": [{
            "name": "proxy",
            "image": settings.proxy_image,
            "args": args,
            "ports": ports,
            "readinessProbe": probe("/readyz"),
            "livenessProbe": probe("/healthz"),
            "resources": resources,
            "securityContext": {
                "runAsNonRoot": true,
                "readOnlyRootFilesystem": true,
                "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "volumeMounts": [
                {"name": "token", "mountPath": TOKEN_DIR, "readOnly": true},
                {"name": "ca", "mountPath": CA_DIR, "readOnly": true},
                {"name": "state", "mountPath": STATE_DIR},
            ],
        }],
        "volumes": [
            {"name": "token", "projected": {"sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600, "audience": TOKEN_AUDIENCE}},
            ]}},
            {"name": "ca", "configMap": {"name": ca_config_map(name)}},
            {"name": "state", "emptyDir": {}},
        ],
    });
    // A KUBERNETES authorizer fetches the service account issuer's keys from the API server,
    // whose certificate the cluster's root CA signs: every namespace holds that CA in the
    // ConfigMap Kubernetes keeps there.
    if verifies_service_account_tokens(gateway) {
        spec["volumes"]
            .as_array_mut()
            .expect("volumes is a list")
            .push(json!({"name": "kube-ca", "configMap": {"name": KUBE_ROOT_CA}}));
        let container = &mut spec["containers"][0];
        container["volumeMounts"]
            .as_array_mut()
            .expect("volumeMounts is a list")
            .push(json!({"name": "kube-ca", "mountPath": KUBE_CA_DIR, "readOnly": true}));
        let args = container["args"].as_array_mut().expect("args is a list");
        args.push(json!("--upstream-ca-file"));
        args.push(json!(format!("{KUBE_CA_DIR}/ca.crt")));
    }
    if let Some(fleet) = fleet {
        if !fleet.node_selector.is_empty() {
            spec["nodeSelector"] = json!(fleet.node_selector);
        }
        if !fleet.tolerations.is_empty() {
            spec["tolerations"] = serde_json::to_value(&fleet.tolerations).unwrap_or_default();
        }
    }
    json!({
        "metadata": {"labels": labels(name)},
        "spec": spec,
    })
}

/// The ConfigMap of the cluster's root CA that Kubernetes keeps in every namespace.
const KUBE_ROOT_CA: &str = "kube-root-ca.crt";
const KUBE_CA_DIR: &str = "/etc/tollgate/kube-ca";

/// Whether the gateway has a KUBERNETES authorizer.
fn verifies_service_account_tokens(gateway: &ApiGateway) -> bool {
    gateway
        .spec
        .authorizers
        .iter()
        .any(|a| a.type_ == tollgate_crds::resources::AuthorizerType::Kubernetes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway(spec: Value) -> ApiGateway {
        let mut spec = spec;
        spec["stages"] = json!([{"name": "dev"}]);
        serde_json::from_value(json!({
            "apiVersion": "tollgate.dev/v1alpha1",
            "kind": "ApiGateway",
            "metadata": {"name": "hello", "namespace": "ns", "uid": "u-1"},
            "spec": spec,
        }))
        .expect("an ApiGateway")
    }

    fn settings() -> Settings {
        Settings {
            proxy_image: "img:1".into(),
            controller_namespace: "tollgate-system".into(),
            ca_pem: "PEM".into(),
            otlp: None,
        }
    }

    fn find(objects: &[Object], kind: Kind) -> Option<&Value> {
        objects.iter().find(|o| o.kind == kind).map(|o| &o.body)
    }

    #[test]
    fn each_endpoint_type_has_its_kinds() {
        for (spec, ty) in [
            (json!({"endpointType": "Regional"}), EndpointType::Regional),
            (json!({"endpointType": "Edge"}), EndpointType::Edge),
            (
                json!({"endpointType": "Private", "resourcePolicy": {"allowCidrs": ["10.0.0.0/8"]}}),
                EndpointType::Private,
            ),
        ] {
            let objects = desired(&gateway(spec), &settings()).unwrap();
            let mut got: Vec<Kind> = objects.iter().map(|o| o.kind).collect();
            got.sort();
            assert_eq!(got, kinds(ty), "{ty:?}");
            for o in &objects {
                let owner = &o.body["metadata"]["ownerReferences"][0];
                assert_eq!(owner["uid"], "u-1");
                assert_eq!(owner["controller"], true);
                assert_eq!(owner["blockOwnerDeletion"], true);
                assert_eq!(o.body["metadata"]["labels"][MANAGED_BY_LABEL], MANAGED_BY);
            }
        }
    }

    #[test]
    fn the_deployment_runs_the_proxy_for_its_gateway() {
        let objects = desired(&gateway(json!({"fleet": {"replicas": 3}})), &settings()).unwrap();
        let deployment = find(&objects, Kind::Deployment).unwrap();
        assert_eq!(deployment["spec"]["replicas"], 3);
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        let args: Vec<&str> = container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(args.windows(2).any(|w| w == ["--gateway", "ns/hello"]));
        // Keeps serving while the endpoints forget it, and is given the time to drain after.
        assert!(
            args.windows(2)
                .any(|w| w == ["--shutdown-delay-seconds", "5"])
        );
        assert_eq!(
            deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
            45
        );
        assert!(args.windows(2).any(|w| w
            == [
                "--controller",
                "https://tollgate-controller.tollgate-system.svc:9443"
            ]));
        assert_eq!(container["image"], "img:1");
        assert_eq!(container["resources"]["limits"]["memory"], "256Mi");
        assert_eq!(
            find(&objects, Kind::ConfigMap).unwrap()["data"]["ca.crt"],
            "PEM"
        );
        // The token the proxy presents is bound to the snapshot service, not the API server.
        let volume = &deployment["spec"]["template"]["spec"]["volumes"][0];
        assert_eq!(
            volume["projected"]["sources"][0]["serviceAccountToken"]["audience"],
            TOKEN_AUDIENCE
        );
    }

    #[test]
    fn the_fleets_log_settings_become_proxy_flags() {
        let args_of = |fleet: Value| {
            let objects = desired(&gateway(json!({"fleet": fleet})), &settings()).unwrap();
            let deployment = find(&objects, Kind::Deployment).unwrap().clone();
            deployment["spec"]["template"]["spec"]["containers"][0]["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        let defaults = args_of(json!({}));
        for flag in ["--access-log", "--log-format", "--log-level"] {
            assert!(!defaults.iter().any(|a| a == flag), "{defaults:?}");
        }
        let args = args_of(json!({
            "accessLog": "Disabled",
            "logFormat": "Json",
            "logLevel": "warn,tollgate_proxy=debug",
        }));
        for pair in [
            ["--access-log", "off"],
            ["--log-format", "json"],
            ["--log-level", "warn,tollgate_proxy=debug"],
        ] {
            assert!(args.windows(2).any(|w| w == pair), "{pair:?} in {args:?}");
        }
    }

    fn private(domains: Value) -> ApiGateway {
        gateway(json!({
            "endpointType": "Private",
            "resourcePolicy": {"allowCidrs": ["10.0.0.0/8"]},
            "domains": domains,
        }))
    }

    /// The proxy's args, container ports (name, port), Service ports (name, port, target) and
    /// NetworkPolicy ports of a Private gateway.
    #[allow(clippy::type_complexity)]
    fn listeners(
        gw: &ApiGateway,
    ) -> (
        Vec<String>,
        Vec<(String, i64)>,
        Vec<(String, i64, Value)>,
        Vec<i64>,
    ) {
        let objects = desired(gw, &settings()).unwrap();
        let container =
            &find(&objects, Kind::Deployment).unwrap()["spec"]["template"]["spec"]["containers"][0];
        let args = container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect();
        let container_ports = container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let name = p["name"].as_str().unwrap().to_owned();
                (name, p["containerPort"].as_i64().unwrap())
            })
            .collect();
        let service_ports = find(&objects, Kind::Service).unwrap()["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let name = p["name"].as_str().unwrap().to_owned();
                (name, p["port"].as_i64().unwrap(), p["targetPort"].clone())
            })
            .collect();
        let policy_ports =
            find(&objects, Kind::NetworkPolicy).unwrap()["spec"]["ingress"][0]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["port"].as_i64().unwrap())
                .collect();
        (args, container_ports, service_ports, policy_ports)
    }

    #[test]
    fn a_gateway_without_certificates_listens_on_http_only() {
        let mapping = json!([{"stage": "dev"}]);
        for domains in [
            json!([]),
            // A custom domain without a certificate is served over HTTP only.
            json!([{"hostname": "api.example.com", "basePathMappings": mapping}]),
        ] {
            let (args, container, service, policy) = listeners(&private(domains));
            assert!(
                !args.iter().any(|a| a.starts_with("--tls-listen")),
                "{args:?}"
            );
            assert_eq!(
                container,
                [("http".to_owned(), 8080), ("admin".to_owned(), 9901)]
            );
            assert_eq!(service, [("http".to_owned(), 80, json!(8080))]);
            assert_eq!(policy, [8080]);
        }
    }

    #[test]
    fn a_domain_with_a_certificate_opens_the_tls_listener() {
        let gw = private(json!([
            {"hostname": "plain.example.com", "basePathMappings": [{"stage": "dev"}]},
            {
                "hostname": "api.example.com",
                "certificateSecretRef": {"name": "api-tls"},
                "basePathMappings": [{"stage": "dev"}],
            },
        ]));
        let (args, container, service, policy) = listeners(&gw);
        assert!(
            args.windows(2)
                .any(|w| w == ["--tls-listen", "0.0.0.0:8443"]),
            "{args:?}"
        );
        assert_eq!(
            container,
            [
                ("http".to_owned(), 8080),
                ("admin".to_owned(), 9901),
                ("https".to_owned(), 8443)
            ]
        );
        assert_eq!(
            service,
            [
                ("http".to_owned(), 80, json!(8080)),
                ("https".to_owned(), 443, json!("https"))
            ]
        );
        assert_eq!(policy, [8080, 8443]);
    }

    #[test]
    fn a_kubernetes_authorizer_gives_the_proxies_the_clusters_root_ca() {
        let spec = json!({"authorizers": [{
            "name": "cluster", "type": "KUBERNETES",
            "kubernetes": {"audiences": ["shop.tollgate.dev"], "allow": ["billing/*"]},
        }]});
        let objects = desired(&gateway(spec), &settings()).unwrap();
        let pod = &find(&objects, Kind::Deployment).unwrap()["spec"]["template"]["spec"];
        assert!(
            pod["volumes"]
                .as_array()
                .unwrap()
                .contains(&json!({"name": "kube-ca", "configMap": {"name": "kube-root-ca.crt"}}))
        );
        let args: Vec<&str> = pod["containers"][0]["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(
            args.windows(2)
                .any(|w| w == ["--upstream-ca-file", "/etc/tollgate/kube-ca/ca.crt"])
        );
        // Without one, the proxies trust no more than before.
        let plain = desired(&gateway(json!({})), &settings()).unwrap();
        let pod = &find(&plain, Kind::Deployment).unwrap()["spec"]["template"]["spec"];
        assert!(!pod.to_string().contains("kube-ca"));
    }
}
