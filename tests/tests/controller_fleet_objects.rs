//! The objects the real `tollgate-controller` keeps for each ApiGateway's proxy fleet
//! (ServiceAccount, CA ConfigMap, Deployment or DaemonSet, Service, NetworkPolicy,
//! PodDisruptionBudget), read back with `kubectl get -o json`. No kubelet or scheduler runs,
//! so only the objects' shapes are checked, never pods. One controller is shared by the tests
//! of this file, each test in a namespace of its own.
//!
//! Needs `cargo build --workspace --bins` first (the controller is found next to the tests).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use tollgate_tests::client::raw_exchange;
use tollgate_tests::control_plane::{ControlPlane, Namespace};
use tollgate_tests::controller::{CONTROLLER_NAMESPACE, Controller};
use tollgate_tests::proxy::Proxy;
use tollgate_tests::{json_strings, workspace_root};

/// How long the controller (or the garbage collector) may take.
const DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(200);
const IMAGE: &str = "example.com/tollgate-proxy:test";

fn controller() -> &'static Controller {
    static CONTROLLER: OnceLock<Controller> = OnceLock::new();
    CONTROLLER.get_or_init(|| Controller::start(ControlPlane::shared(), &["--proxy-image", IMAGE]))
}

fn namespace(hint: &str) -> Namespace<'static> {
    controller();
    ControlPlane::shared().namespace(hint)
}

/// Polls `kubectl get {what}` until `check` holds (on `None` when absent).
fn wait_for(
    ns: &Namespace,
    what: &str,
    description: &str,
    check: impl Fn(Option<&Value>) -> bool,
) -> Option<Value> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let obj = ns.get(what);
        if check(obj.as_ref()) {
            return obj;
        }
        assert!(
            Instant::now() < deadline,
            "{what} in {}: timed out after {DEADLINE:?} waiting for {description}; last seen:\n{}\ncontroller log:\n{}",
            ns.name(),
            serde_json::to_string_pretty(&obj).unwrap_or_default(),
            controller().log_tail(40)
        );
        std::thread::sleep(POLL);
    }
}

fn wait_exists(ns: &Namespace, what: &str) -> Value {
    wait_for(ns, what, "it to exist", |o| o.is_some()).expect("it exists")
}

fn wait_gone(ns: &Namespace, what: &str) {
    wait_for(ns, what, "it to be gone", |o| o.is_none());
}

fn gateway(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: tollgate.dev/v1alpha1\nkind: ApiGateway\nmetadata:\n  name: {name}\nspec:\n  stages:\n    - name: dev\n{spec}"
    )
}

fn assert_owned_by(obj: &Value, gateway: &Value) {
    let owners = obj["metadata"]["ownerReferences"]
        .as_array()
        .unwrap_or_else(|| panic!("no ownerReferences: {obj:#}"));
    assert_eq!(owners.len(), 1, "{obj:#}");
    let owner = &owners[0];
    assert_eq!(owner["kind"], "ApiGateway", "{obj:#}");
    assert_eq!(owner["name"], gateway["metadata"]["name"], "{obj:#}");
    assert_eq!(owner["uid"], gateway["metadata"]["uid"], "{obj:#}");
    assert_eq!(owner["controller"], true, "{obj:#}");
    assert_eq!(owner["blockOwnerDeletion"], true, "{obj:#}");
    let labels = &obj["metadata"]["labels"];
    assert_eq!(
        labels["app.kubernetes.io/name"], "tollgate-proxy",
        "{obj:#}"
    );
    assert_eq!(
        labels["app.kubernetes.io/instance"],
        gateway["metadata"]["name"]
    );
    assert_eq!(labels["app.kubernetes.io/managed-by"], "tollgate");
}

/// Whether `args` holds `flag value`.
fn has_arg(args: &[String], flag: &str, value: &str) -> bool {
    args.windows(2).any(|w| w[0] == flag && w[1] == value)
}

fn check_pod_template(template: &Value, ns: &str, gateway: &str) {
    let spec = &template["spec"];
    assert_eq!(
        spec["serviceAccountName"],
        format!("tollgate-proxy-{gateway}")
    );
    assert_eq!(spec["automountServiceAccountToken"], false);
    let container = &spec["containers"][0];
    assert_eq!(container["name"], "proxy");
    assert_eq!(container["image"], IMAGE);
    let args = json_strings(&container["args"]);
    assert!(
        has_arg(&args, "--gateway", &format!("{ns}/{gateway}")),
        "{args:?}"
    );
    assert!(
        has_arg(
            &args,
            "--controller",
            &format!("https://tollgate-controller.{CONTROLLER_NAMESPACE}.svc:9443")
        ),
        "{args:?}"
    );
    assert!(
        has_arg(&args, "--token-file", "/var/run/secrets/tollgate/token"),
        "{args:?}"
    );
    assert!(
        has_arg(&args, "--ca-file", "/etc/tollgate/ca/ca.crt"),
        "{args:?}"
    );
    assert!(
        has_arg(&args, "--state-dir", "/var/lib/tollgate"),
        "{args:?}"
    );
    assert!(has_arg(&args, "--admin-listen", "0.0.0.0:9901"), "{args:?}");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], 9901);
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], 9901);
    let security = &container["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(json_strings(&security["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(container["resources"]["requests"]["cpu"], "100m");
    assert_eq!(container["resources"]["requests"]["memory"], "64Mi");
    assert_eq!(container["resources"]["limits"]["memory"], "256Mi");
    let volumes = spec["volumes"].as_array().expect("volumes");
    let volume = |name: &str| {
        volumes
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no volume {name}: {spec:#}"))
    };
    let token = &volume("token")["projected"]["sources"][0]["serviceAccountToken"];
    assert_eq!(token["expirationSeconds"], 3600, "{spec:#}");
    assert_eq!(
        volume("ca")["configMap"]["name"],
        format!("tollgate-proxy-{gateway}-ca")
    );
    assert!(volume("state")["emptyDir"].is_object());
}

#[test]
fn a_regional_gateway_gets_a_deployment_behind_a_load_balancer() {
    let ns = namespace("fleet-regional");
    ns.apply(&gateway("hello", "  endpointType: Regional\n"));
    let gw = ns.get("apigateway/hello").expect("the gateway");

    let sa = wait_exists(&ns, "serviceaccount/tollgate-proxy-hello");
    assert_owned_by(&sa, &gw);
    assert_eq!(sa["automountServiceAccountToken"], false);

    let cm = wait_exists(&ns, "configmap/tollgate-proxy-hello-ca");
    assert_owned_by(&cm, &gw);
    let ca = cm["data"]["ca.crt"].as_str().unwrap_or_default();
    assert!(ca.contains("BEGIN CERTIFICATE"), "{cm:#}");
    assert!(!ca.contains("PRIVATE KEY"), "{cm:#}");
    assert_eq!(
        ca,
        tollgate_tests::controller::ca_pem(ControlPlane::shared())
    );

    let deployment = wait_exists(&ns, "deployment/tollgate-proxy-hello");
    assert_owned_by(&deployment, &gw);
    assert_eq!(deployment["spec"]["replicas"], 2);
    check_pod_template(&deployment["spec"]["template"], ns.name(), "hello");

    let service = wait_exists(&ns, "service/tollgate-proxy-hello");
    assert_owned_by(&service, &gw);
    assert_eq!(service["spec"]["type"], "LoadBalancer");
    assert_eq!(service["spec"]["ports"][0]["port"], 80);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(
        service["spec"]["selector"]["app.kubernetes.io/instance"],
        "hello"
    );

    let pdb = wait_exists(&ns, "poddisruptionbudget/tollgate-proxy-hello");
    assert_owned_by(&pdb, &gw);
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);

    // spec.fleet.replicas is followed.
    ns.apply(&gateway(
        "hello",
        "  endpointType: Regional\n  fleet:\n    replicas: 3\n",
    ));
    wait_for(&ns, "deployment/tollgate-proxy-hello", "3 replicas", |d| {
        d.is_some_and(|d| d["spec"]["replicas"] == 3)
    });
}

/// spec.fleet's log settings become the proxies' flags, and the proxy binary honours them:
/// started with the flags read back from the Deployment, it logs JSON and writes no access log.
#[test]
fn the_fleets_settings_reach_the_proxies_and_their_service_account() {
    let ns = namespace("fleet-logs");
    ns.apply(&gateway(
        "hello",
        "  fleet:\n    accessLog: Disabled\n    logFormat: Json\n    logLevel: warn,tollgate_proxy=debug\n    serviceAccountAnnotations:\n      eks.amazonaws.com/role-arn: arn:aws:iam::123456789012:role/tollgate-proxy\n",
    ));
    let args_of = |d: &Value| json_strings(&d["spec"]["template"]["spec"]["containers"][0]["args"]);
    let deployment = wait_for(
        &ns,
        "deployment/tollgate-proxy-hello",
        "the log flags",
        |d| d.is_some_and(|d| has_arg(&args_of(d), "--access-log", "off")),
    )
    .expect("the Deployment");
    let args = args_of(&deployment);
    assert!(has_arg(&args, "--log-format", "json"), "{args:?}");
    // The IRSA role is on the ServiceAccount the proxies run as.
    let account = ns
        .get("serviceaccount/tollgate-proxy-hello")
        .expect("the proxies' ServiceAccount");
    assert_eq!(
        account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/tollgate-proxy"
    );
    assert_eq!(
        deployment["spec"]["template"]["spec"]["serviceAccountName"],
        "tollgate-proxy-hello"
    );
    assert!(
        has_arg(&args, "--log-level", "warn,tollgate_proxy=debug"),
        "{args:?}"
    );

    let log_flags: Vec<&str> = args
        .windows(2)
        .filter(|w| ["--access-log", "--log-format", "--log-level"].contains(&w[0].as_str()))
        .flat_map(|w| [w[0].as_str(), w[1].as_str()])
        .collect();
    let proxy = Proxy::start_standalone(
        &workspace_root().join("deploy/examples/quickstart"),
        &log_flags,
    );
    let answer = raw_exchange(
        proxy.addr(),
        b"GET /dev/ HTTP/1.1\r\nHost: hello.default.localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    let metrics = proxy.admin_get("/metrics").text();
    assert!(
        metrics.contains("status_class=\"2xx\"} 1"),
        "the request is counted: {metrics}"
    );
    assert_eq!(
        proxy.access_log_lines(),
        Vec::<String>::new(),
        "accessLog: Disabled"
    );
    let stderr = proxy.stderr_lines();
    assert!(!stderr.is_empty());
    for line in &stderr {
        let parsed: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("logFormat: Json, but not JSON ({e}): {line}"));
        assert!(parsed["level"].is_string(), "{line}");
    }
}

#[test]
fn a_private_gateway_gets_a_cluster_ip_and_a_network_policy() {
    let ns = namespace("fleet-private");
    ns.apply(&gateway(
            "hello",
            "  endpointType: Private\n  resourcePolicy:\n    allowNamespaces: [team-a]\n    allowCidrs: [10.0.0.0/8]\n",
        ),
    );
    let gw = ns.get("apigateway/hello").expect("the gateway");
    wait_exists(&ns, "deployment/tollgate-proxy-hello");
    let service = wait_exists(&ns, "service/tollgate-proxy-hello");
    assert_eq!(service["spec"]["type"], "ClusterIP");
    let policy = wait_exists(&ns, "networkpolicy/tollgate-proxy-hello");
    assert_owned_by(&policy, &gw);
    let spec = &policy["spec"];
    assert_eq!(
        spec["podSelector"]["matchLabels"]["app.kubernetes.io/instance"],
        "hello"
    );
    assert_eq!(json_strings(&spec["policyTypes"]), ["Ingress"]);
    let rule = &spec["ingress"][0];
    let from = rule["from"].as_array().expect("from");
    assert_eq!(from.len(), 2, "{spec:#}");
    assert!(
        from.iter().any(
            |p| p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == "team-a"
        ),
        "{spec:#}"
    );
    assert!(
        from.iter().any(|p| p["ipBlock"]["cidr"] == "10.0.0.0/8"),
        "{spec:#}"
    );
    assert_eq!(rule["ports"][0]["port"], 8080, "{spec:#}");
}

#[test]
fn an_edge_gateway_gets_a_daemon_set_on_its_nodes() {
    let ns = namespace("fleet-edge");
    ns.apply(&gateway(
            "hello",
            "  endpointType: Edge\n  fleet:\n    nodeSelector:\n      edge: \"true\"\n    tolerations:\n      - key: edge\n        operator: Exists\n        effect: NoSchedule\n",
        ),
    );
    let gw = ns.get("apigateway/hello").expect("the gateway");
    let daemon_set = wait_exists(&ns, "daemonset/tollgate-proxy-hello");
    assert_owned_by(&daemon_set, &gw);
    let template = &daemon_set["spec"]["template"];
    assert_eq!(template["spec"]["nodeSelector"]["edge"], "true");
    assert_eq!(template["spec"]["tolerations"][0]["key"], "edge");
    check_pod_template(template, ns.name(), "hello");
    let service = wait_exists(&ns, "service/tollgate-proxy-hello");
    assert_eq!(service["spec"]["type"], "LoadBalancer");
    assert_eq!(service["spec"]["externalTrafficPolicy"], "Local");
    wait_exists(&ns, "poddisruptionbudget/tollgate-proxy-hello");
    assert!(ns.get("deployment/tollgate-proxy-hello").is_none());
}

#[test]
fn a_hand_edit_of_an_owned_object_is_reverted() {
    let ns = namespace("fleet-drift");
    ns.apply(&gateway("hello", "  endpointType: Regional\n"));
    wait_exists(&ns, "deployment/tollgate-proxy-hello");
    ns.kubectl_ok(&[
        "scale",
        "deployment",
        "tollgate-proxy-hello",
        "--replicas",
        "7",
    ]);
    wait_for(
        &ns,
        "deployment/tollgate-proxy-hello",
        "2 replicas again",
        |d| d.is_some_and(|d| d["spec"]["replicas"] == 2),
    );
    let patch = r#"[{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "evil:1"}]"#;
    ns.kubectl_ok(&[
        "patch",
        "deployment",
        "tollgate-proxy-hello",
        "--type",
        "json",
        "-p",
        patch,
    ]);
    wait_for(
        &ns,
        "deployment/tollgate-proxy-hello",
        "its image back",
        |d| d.is_some_and(|d| d["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE),
    );
}

/// The garbage collector rediscovers resource kinds every 30 s, and cannot act on an owner
/// whose kind it has not discovered yet: on a fresh control plane this test waits ~40 s.
#[test]
fn deleting_the_gateway_deletes_its_fleet() {
    let ns = namespace("fleet-delete");
    ns.apply(&gateway("hello", "  endpointType: Regional\n"));
    wait_exists(&ns, "deployment/tollgate-proxy-hello");
    wait_exists(&ns, "service/tollgate-proxy-hello");
    wait_exists(&ns, "serviceaccount/tollgate-proxy-hello");
    ns.kubectl_ok(&["delete", "apigateway", "hello", "--wait=false"]);
    wait_gone(&ns, "deployment/tollgate-proxy-hello");
    wait_gone(&ns, "service/tollgate-proxy-hello");
    wait_gone(&ns, "serviceaccount/tollgate-proxy-hello");
    wait_gone(&ns, "configmap/tollgate-proxy-hello-ca");
}

#[test]
fn switching_from_regional_to_edge_swaps_the_deployment_for_a_daemon_set() {
    let ns = namespace("fleet-switch");
    ns.apply(&gateway("hello", "  endpointType: Regional\n"));
    wait_exists(&ns, "deployment/tollgate-proxy-hello");
    ns.apply(&gateway("hello", "  endpointType: Edge\n"));
    wait_exists(&ns, "daemonset/tollgate-proxy-hello");
    wait_gone(&ns, "deployment/tollgate-proxy-hello");
    wait_for(
        &ns,
        "service/tollgate-proxy-hello",
        "externalTrafficPolicy Local",
        |s| s.is_some_and(|s| s["spec"]["externalTrafficPolicy"] == "Local"),
    );
}

/// The names of a list of ports (`ports` of a Service or a container).
fn port_names(ports: &Value) -> Vec<String> {
    ports
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_certificate_domain_opens_https_and_its_removal_closes_it() {
    let ns = namespace("fleet-tls");
    let private = "  endpointType: Private\n  resourcePolicy:\n    allowCidrs: [10.0.0.0/8]\n";
    // The Secret need not exist: the ports follow the spec, not the Secret.
    let domain = "  domains:\n    - hostname: api.example.com\n      certificateSecretRef:\n        name: api-tls\n      basePathMappings:\n        - stage: dev\n";
    ns.apply(&gateway("hello", &format!("{private}{domain}")));

    let service = wait_for(&ns, "service/tollgate-proxy-hello", "an https port", |s| {
        s.is_some_and(|s| port_names(&s["spec"]["ports"]) == ["http", "https"])
    })
    .expect("the Service");
    let https = &service["spec"]["ports"][1];
    assert_eq!(https["port"], 443, "{service:#}");
    assert_eq!(https["targetPort"], "https", "{service:#}");

    let container = |d: &Value| d["spec"]["template"]["spec"]["containers"][0].clone();
    let deployment = wait_for(
        &ns,
        "deployment/tollgate-proxy-hello",
        "--tls-listen",
        |d| {
            d.is_some_and(|d| {
                has_arg(
                    &json_strings(&container(d)["args"]),
                    "--tls-listen",
                    "0.0.0.0:8443",
                )
            })
        },
    )
    .expect("the Deployment");
    let ports = &container(&deployment)["ports"];
    assert_eq!(port_names(ports), ["http", "admin", "https"], "{ports:#}");
    assert_eq!(ports[2]["containerPort"], 8443, "{ports:#}");

    let policy_ports = |p: &Value| {
        p["spec"]["ingress"][0]["ports"]
            .as_array()
            .map(|a| a.iter().map(|p| p["port"].clone()).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    wait_for(
        &ns,
        "networkpolicy/tollgate-proxy-hello",
        "8080 and 8443",
        |p| p.is_some_and(|p| policy_ports(p) == [8080, 8443]),
    );

    // Without the domain, the objects are as they were without TLS.
    ns.apply(&gateway("hello", private));
    wait_for(&ns, "service/tollgate-proxy-hello", "http only", |s| {
        s.is_some_and(|s| port_names(&s["spec"]["ports"]) == ["http"])
    });
    wait_for(
        &ns,
        "deployment/tollgate-proxy-hello",
        "no TLS listener",
        |d| {
            d.is_some_and(|d| {
                port_names(&container(d)["ports"]) == ["http", "admin"]
                    && !json_strings(&container(d)["args"]).contains(&"--tls-listen".to_owned())
            })
        },
    );
    wait_for(
        &ns,
        "networkpolicy/tollgate-proxy-hello",
        "8080 only",
        |p| p.is_some_and(|p| policy_ports(p) == [8080]),
    );
}
