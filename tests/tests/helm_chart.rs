//! The Helm chart `charts/tollgate` and the plain manifest rendered from it,
//! `deploy/tollgate.yaml`: lint and schema, drift, a server-side dry run, an install into a real
//! control plane ([`tollgate_tests::control_plane`]), and the real `tollgate-controller` run
//! with nothing but the permissions the chart grants (a token of the chart's ServiceAccount)
//! through a gateway's whole life. No kubelet or scheduler runs: pods never start, so the
//! controller runs locally and only the objects are checked. Each test has a namespace of its
//! own.
//!
//! `UPDATE_CHART=1` (`make chart`) rewrites the chart's CRDs and `deploy/tollgate.yaml` instead
//! of failing when they are out of date.
//!
//! Needs `cargo build --workspace --bins` first (the controller is found next to the tests);
//! the first run builds helm from source (a minute or two; cached after, see
//! `tests/helm/README.md`).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use tollgate_tests::control_plane::{ControlPlane, Namespace, output_text};
use tollgate_tests::controller::{Controller, FrameReader, SnapshotClient, condition_status};
use tollgate_tests::helm::{
    CHART, CONTROLLER_NAME, Helm, MANIFEST, manifest, service_account_kubeconfig,
};
use tollgate_tests::{json_strings, workspace_root};

/// How long the controller may take to bring an object in line.
const DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(200);
const PROXY_IMAGE: &str = "example.com/tollgate-proxy:chart-test";

fn cp() -> &'static ControlPlane {
    ControlPlane::shared()
}

fn helm() -> &'static Helm {
    Helm::shared()
}

fn get_ok(ns: &str, what: &str) -> Value {
    cp().get(ns, what)
        .unwrap_or_else(|| panic!("{what} does not exist in {ns}"))
}

/// Polls `kubectl get {what}` until `check` holds (on `None` when absent); panics with the
/// last object and the controller's log, at once when the API server refused the controller
/// something (a missing permission is never worth waiting for) or the controller exited.
fn wait_for(
    ns: &str,
    what: &str,
    description: &str,
    controller: &Controller,
    check: impl Fn(Option<&Value>) -> bool,
) -> Option<Value> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let obj = cp().get(ns, what);
        if check(obj.as_ref()) {
            return obj;
        }
        assert_not_refused(controller);
        assert!(
            !controller.has_exited(),
            "the controller exited; log:\n{}",
            controller.log_tail(60)
        );
        assert!(
            Instant::now() < deadline,
            "{what} in {ns}: timed out after {DEADLINE:?} waiting for {description}; last seen:\n{}\ncontroller log:\n{}",
            serde_json::to_string_pretty(&obj).unwrap_or_default(),
            controller.log_tail(60)
        );
        std::thread::sleep(POLL);
    }
}

/// Panics with the controller's log lines saying "forbidden": a permission the chart lacks.
fn assert_not_refused(controller: &Controller) {
    let log = controller.log();
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.to_ascii_lowercase().contains("forbidden"))
        .collect();
    assert!(
        refused.is_empty(),
        "the API server refused the controller {} time(s); is a rule missing from \
         charts/tollgate/templates/rbac.yaml?\n{}",
        refused.len(),
        refused.join("\n")
    );
}

// === lint, schema, drift ===

#[test]
fn the_chart_lints_and_bad_values_fail_with_the_schemas_message() {
    let helm = helm();
    let chart = helm.chart();
    let lint = helm.offline(&["lint", "--strict", &chart]);
    assert!(lint.status.success(), "helm lint: {}", output_text(&lint));

    let cases: [(&[&str], &str); 5] = [
        (
            &["--set", "replicas=two"],
            "at '/replicas': got string, want integer",
        ),
        (
            &["--set", "bogus=1"],
            "additional properties 'bogus' not allowed",
        ),
        (
            &["--set", "logFormat=xml"],
            "at '/logFormat': value must be one of 'text', 'json'",
        ),
        (
            &["--set", "image.pullPolicy=Sometimes"],
            "at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'",
        ),
        (
            &["--set", "leaseDurationSeconds=0"],
            "at '/leaseDurationSeconds': minimum: got 0, want 1",
        ),
    ];
    for (values, message) in cases {
        let mut args = vec!["template", "tollgate", chart.as_str()];
        args.extend_from_slice(values);
        let out = helm.offline(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(message),
            "helm template {values:?} should fail with {message:?}:\n{}",
            output_text(&out)
        );
    }

    // Off by default, and rendered when asked for.
    let plain = helm.template("tollgate", "tollgate-system", &[]);
    assert!(!plain.contains("kind: ServiceMonitor"), "{plain}");
    let monitored = helm.template(
        "tollgate",
        "tollgate-system",
        &["--set", "serviceMonitor.enabled=true"],
    );
    assert!(monitored.contains("kind: ServiceMonitor"), "{monitored}");
}

/// The per-CRD files of `crds/yaml/` (not `all.yaml`, which repeats them).
fn crd_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n != "all.yaml"))
        .collect();
    files.sort();
    files
}

/// The chart's CRDs are `crds/yaml/`'s, and `deploy/tollgate.yaml` is a fresh `helm template`
/// of the chart; `UPDATE_CHART=1` rewrites them.
#[test]
fn the_charts_crds_and_the_plain_manifest_are_up_to_date() {
    let update = std::env::var_os("UPDATE_CHART").is_some_and(|v| v == "1");
    let root = workspace_root();
    let source = root.join("crds/yaml");
    let chart_crds = root.join(CHART).join("crds");
    let mut stale = Vec::new();

    let wanted = crd_files(&source);
    assert!(wanted.len() >= 3, "no CRDs in {}", source.display());
    let names = |files: &[PathBuf]| -> Vec<String> {
        files
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect()
    };
    if update {
        for old in crd_files(&chart_crds) {
            fs::remove_file(&old).expect("removing an old CRD");
        }
    }
    for file in &wanted {
        let target = chart_crds.join(file.file_name().expect("a file name"));
        let want = fs::read(file).expect("a CRD");
        if fs::read(&target).ok().as_ref() != Some(&want) {
            if update {
                fs::write(&target, &want).expect("writing a CRD");
            } else {
                stale.push(format!(
                    "{} differs from {}",
                    target.display(),
                    file.display()
                ));
            }
        }
    }
    let found = names(&crd_files(&chart_crds));
    if found != names(&wanted) {
        stale.push(format!(
            "{} holds {found:?}, crds/yaml holds {:?}",
            chart_crds.display(),
            names(&wanted)
        ));
    }

    let manifest_path = root.join(MANIFEST);
    let want = manifest(helm());
    if fs::read_to_string(&manifest_path).ok().as_deref() != Some(want.as_str()) {
        if update {
            fs::write(&manifest_path, &want).expect("writing the manifest");
        } else {
            stale.push(format!("{MANIFEST} is not `helm template` of the chart"));
        }
    }
    assert!(
        stale.is_empty(),
        "out of date (regenerate with `make chart`, i.e. UPDATE_CHART=1 cargo test -p \
         tollgate-tests --test helm_chart -- up_to_date):\n{}",
        stale.join("\n")
    );
}

// === against the API server ===

/// What the chart renders, with default and with other values, passes the API server's
/// validation and admission (`kubectl apply --dry-run=server`).
#[test]
fn the_rendered_manifests_pass_a_server_side_dry_run() {
    let ns = cp().namespace("chart-dry-run");
    restrict(&ns);
    let variants: [&[&str]; 2] = [
        &["--include-crds"],
        &[
            "--set",
            "podAntiAffinity=hard",
            "--set",
            "podDisruptionBudget.minAvailable=50%",
            "--set",
            "replicas=3",
            "--set",
            "imagePullSecrets[0].name=registry",
            "--set",
            "nodeSelector.kubernetes\\.io/os=linux",
            "--set",
            "priorityClassName=system-cluster-critical",
        ],
    ];
    for extra in variants {
        let rendered = helm().template("tollgate", ns.name(), extra);
        let out = cp().kubectl_with_input(&["apply", "--dry-run=server", "-f", "-"], &rendered);
        assert!(
            out.status.success(),
            "kubectl apply --dry-run=server of the chart ({extra:?}):\n{}",
            output_text(&out)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("would violate PodSecurity"),
            "the controller's pods break the restricted Pod Security Standard:\n{stderr}"
        );
        let applied = String::from_utf8_lossy(&out.stdout);
        for object in [
            "deployment.apps/tollgate-controller",
            "service/tollgate-controller",
            "role.rbac.authorization.k8s.io/tollgate-controller",
        ] {
            assert!(applied.contains(object), "{object} not in:\n{applied}");
        }
    }
}

/// `kubectl apply -f deploy/tollgate.yaml`, as a user without Helm would: the Namespace it
/// holds comes first, so one command installs everything. (No other test of this file uses
/// the namespace `tollgate-system`.)
#[test]
fn the_plain_manifest_applies_with_kubectl() {
    let path = workspace_root().join(MANIFEST);
    let out = cp().kubectl(&["apply", "-f", &path.display().to_string()]);
    assert!(
        out.status.success(),
        "kubectl apply -f {MANIFEST}:\n{}",
        output_text(&out)
    );
    let applied = String::from_utf8_lossy(&out.stdout);
    for object in [
        "namespace/tollgate-system created",
        "deployment.apps/tollgate-controller created",
        "service/tollgate-controller created",
        "clusterrole.rbac.authorization.k8s.io/tollgate-controller-tollgate-system created",
    ] {
        assert!(applied.contains(object), "{object:?} not in:\n{applied}");
    }
    let namespace = get_ok("tollgate-system", "namespace/tollgate-system");
    assert_eq!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    for what in [
        "namespace/tollgate-system",
        "clusterrole/tollgate-controller-tollgate-system",
        "clusterrolebinding/tollgate-controller-tollgate-system",
    ] {
        cp().kubectl_ok(&["delete", what, "--wait=false"]);
    }
}

#[test]
fn helm_install_creates_the_controllers_objects() {
    let namespace = cp().namespace("chart-install");
    restrict(&namespace);
    let ns = namespace.name();
    let helm = helm();
    let chart = helm.chart();
    let notes = helm.run_ok(
        cp(),
        &[
            "install",
            "tollgate",
            &chart,
            "--namespace",
            ns,
            "--set",
            "baseDomain=apis.example.com",
        ],
    );
    assert!(
        notes.contains("kubectl apply -f deploy/examples/quickstart/"),
        "{notes}"
    );
    assert!(
        notes.contains("http://{gateway}.{namespace}.apis.example.com/{stage}"),
        "{notes}"
    );

    let deployment = get_ok(ns, "deployment/tollgate-controller");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], CONTROLLER_NAME);
    let container = &pod["containers"][0];
    assert_eq!(
        container["image"],
        "ghcr.io/tollgate-dev/tollgate-controller:0.1.0"
    );
    let args = json_strings(&container["args"]);
    for arg in [
        "--base-domain=apis.example.com",
        "--proxy-image=ghcr.io/tollgate-dev/tollgate-proxy:0.1.0",
        "--snapshot-listen=0.0.0.0:9443",
        "--metrics-listen=0.0.0.0:8080",
    ] {
        assert!(args.iter().any(|a| a == arg), "{arg} not in {args:?}");
    }
    let env = container["env"].as_array().expect("env");
    let field = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .map(|e| e["valueFrom"]["fieldRef"]["fieldPath"].clone())
            .unwrap_or_else(|| panic!("no {name} in {env:?}"))
    };
    assert_eq!(field("POD_NAME"), "metadata.name");
    assert_eq!(field("POD_NAMESPACE"), "metadata.namespace");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "metrics");
    let security = &container["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["runAsUser"], 65532);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(json_strings(&security["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
    assert!(container["resources"]["requests"]["cpu"].is_string());

    let sa = get_ok(ns, &format!("serviceaccount/{CONTROLLER_NAME}"));
    assert_eq!(
        sa["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "Helm"
    );

    let snapshot = get_ok(ns, &format!("service/{CONTROLLER_NAME}"));
    assert_eq!(snapshot["spec"]["ports"][0]["port"], 9443);
    assert_eq!(snapshot["spec"]["ports"][0]["targetPort"], "snapshot");
    assert_eq!(
        snapshot["spec"]["selector"]["app.kubernetes.io/name"],
        CONTROLLER_NAME
    );
    let metrics = get_ok(ns, &format!("service/{CONTROLLER_NAME}-metrics"));
    assert_eq!(metrics["spec"]["ports"][0]["port"], 8080);

    let pdb = get_ok(ns, &format!("poddisruptionbudget/{CONTROLLER_NAME}"));
    assert_eq!(pdb["spec"]["minAvailable"], 1);

    let role = get_ok(ns, &format!("role/{CONTROLLER_NAME}"));
    assert!(role["rules"].as_array().is_some_and(|r| !r.is_empty()));
    let binding = get_ok(ns, &format!("rolebinding/{CONTROLLER_NAME}"));
    assert_eq!(binding["subjects"][0]["name"], CONTROLLER_NAME);
    assert_eq!(binding["subjects"][0]["namespace"], ns);

    // kube-controller-manager makes the pods (no scheduler places them): the restricted Pod
    // Security Standard, enforced in the namespace, admits them.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let pods = get_ok(ns, "pods");
        let count = pods["items"].as_array().map_or(0, Vec::len);
        if count == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{count} controller pods after {DEADLINE:?}; ReplicaSet:\n{}",
            output_text(&cp().kubectl(&["describe", "replicaset", "-n", ns]))
        );
        std::thread::sleep(POLL);
    }

    let cluster_name = format!("{CONTROLLER_NAME}-{ns}");
    let cluster_role = get_ok(ns, &format!("clusterrole/{cluster_name}"));
    assert!(
        cluster_role["rules"]
            .as_array()
            .is_some_and(|r| r.len() > 5)
    );
    let cluster_binding = get_ok(ns, &format!("clusterrolebinding/{cluster_name}"));
    assert_eq!(cluster_binding["roleRef"]["name"], cluster_name.as_str());
    assert_eq!(cluster_binding["subjects"][0]["namespace"], ns);

    // Uninstalling takes the cluster-wide objects too (the namespace's go with it).
    helm.run_ok(
        cp(),
        &["uninstall", "tollgate", "--namespace", ns, "--wait"],
    );
    assert!(
        cp().get(ns, &format!("clusterrole/{cluster_name}"))
            .is_none()
    );
    assert!(
        cp().get(ns, &format!("clusterrolebinding/{cluster_name}"))
            .is_none()
    );
}

/// The real controller, authenticated as the chart's ServiceAccount (a token from `kubectl
/// create token`), runs a gateway's whole life with no request refused: it takes the Lease,
/// makes the snapshot CA, writes statuses and a Warning event, creates, switches and deletes
/// the fleet's objects, reviews a proxy's token, and on SIGTERM releases the Lease and
/// deletes its fleet counts. A rule missing from the chart makes one of these fail or time
/// out, or shows "forbidden" in the log.
#[test]
fn the_controller_runs_with_the_charts_permissions_only() {
    let release = cp().namespace("chart-e2e");
    let rns = release.name();
    let helm = helm();
    helm.run_ok(
        cp(),
        &["install", "tollgate", &helm.chart(), "--namespace", rns],
    );

    // The API server runs the OwnerReferencesPermissionEnforcement admission plugin: the
    // fleet objects' owner references (blockOwnerDeletion) need this, and the end-to-end flow
    // below fails without it.
    let user = format!("system:serviceaccount:{rns}:{CONTROLLER_NAME}");
    let can = cp().kubectl(&[
        "auth",
        "can-i",
        "update",
        "apigateways.tollgate.dev",
        "--subresource=finalizers",
        "--as",
        &user,
        "-A",
    ]);
    assert!(can.status.success(), "{}", output_text(&can));

    let dir = tempfile::tempdir().expect("a temporary folder");
    let kubeconfig = dir.path().join("kubeconfig");
    service_account_kubeconfig(cp(), rns, CONTROLLER_NAME, &kubeconfig);
    let pod = "tollgate-controller-7d4b9c-x2x8q";
    let controller = Controller::start_with_kubeconfig(
        &kubeconfig,
        rns,
        &["--proxy-image", PROXY_IMAGE],
        &[("POD_NAME", pod)],
    );
    let log = || controller.log_tail(60);

    let app = cp().namespace("chart-e2e-app");
    let ans = app.name();
    app.apply(&app.quickstart());
    app.apply("apiVersion: tollgate.dev/v1alpha1\nkind: Route\nmetadata:\n  name: orphan\nspec:\n  gatewayRef:\n    name: nowhere\n  method: GET\n  path: /\n  integration:\n    mock: {}\n",
    );

    // Leader: the Lease in the release namespace names this replica.
    wait_for(
        rns,
        "lease/tollgate-controller",
        "this replica to hold it",
        &controller,
        |l| l.is_some_and(|l| l["spec"]["holderIdentity"] == pod),
    );
    // The snapshot CA, and this replica's fleet counts.
    get_ok(rns, "secret/tollgate-snapshot-ca");
    wait_for(
        rns,
        &format!("configmap/tollgate-fleet-{pod}"),
        "it to exist",
        &controller,
        |c| c.is_some(),
    );

    // Statuses.
    let gateway = wait_for(
        ans,
        "apigateway/hello",
        "Programmed=True",
        &controller,
        |g| g.is_some_and(|g| condition_status(g, "Programmed").as_deref() == Some("True")),
    )
    .expect("the gateway");
    let status = &gateway["status"];
    assert_eq!(
        status["invokeUrl"],
        format!("http://hello.{ans}.localhost/dev"),
        "{status:#}"
    );
    assert!(status["tableVersion"].is_string(), "{status:#}");
    wait_for(ans, "route/hello-root", "Accepted=True", &controller, |r| {
        r.is_some_and(|r| condition_status(r, "Accepted").as_deref() == Some("True"))
    });
    wait_for(ans, "route/orphan", "Accepted=False", &controller, |r| {
        r.is_some_and(|r| condition_status(r, "Accepted").as_deref() == Some("False"))
    });
    // The Warning event for the rejected route (events.k8s.io).
    wait_for(
        ans,
        "events.events.k8s.io",
        "a Warning about route orphan",
        &controller,
        |list| {
            list.and_then(|l| l["items"].as_array())
                .is_some_and(|items| {
                    items.iter().any(|e| {
                        e["regarding"]["name"] == "orphan"
                            && e["type"] == "Warning"
                            && e["reportingController"] == "tollgate-controller"
                    })
                })
        },
    );

    // The fleet, owned by the gateway.
    let exists = |what: &str| {
        wait_for(ans, what, "it to exist", &controller, |o| o.is_some()).expect("it exists")
    };
    let gone = |what: &str| {
        wait_for(ans, what, "it to be gone", &controller, |o| o.is_none());
    };
    for what in [
        "serviceaccount/tollgate-proxy-hello",
        "configmap/tollgate-proxy-hello-ca",
        "service/tollgate-proxy-hello",
        "poddisruptionbudget/tollgate-proxy-hello",
    ] {
        let obj = exists(what);
        assert_eq!(
            obj["metadata"]["ownerReferences"][0]["uid"], gateway["metadata"]["uid"],
            "{obj:#}"
        );
    }
    let deployment = exists("deployment/tollgate-proxy-hello");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        PROXY_IMAGE
    );

    // A proxy's token is reviewed (TokenReview) and it gets the table.
    let token = cp()
        .kubectl_ok(&[
            "create",
            "token",
            "tollgate-proxy-hello",
            "-n",
            ans,
            "--audience",
            tollgate_crds::snapshot::TOKEN_AUDIENCE,
        ])
        .trim()
        .to_owned();
    let ca = snapshot_ca(rns);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let client = SnapshotClient::new(&controller.snapshot_url(), &ca);
        let response = client
            .subscribe(&format!("{ans}/hello"), Some(&token), "proxy-0")
            .await;
        assert_eq!(response.status(), 200, "controller log:\n{}", log());
        let mut frames = FrameReader::new(response);
        let frame = frames.next(Duration::from_secs(30)).await.expect("a frame");
        assert_eq!(frame.table.gateway.name, "hello");
    });
    drop(runtime);

    // Endpoint type changes: each leaves an object behind, which the controller deletes.
    let endpoint = |spec: &str| {
        app.kubectl_ok(&[
            "patch",
            "apigateway",
            "hello",
            "--type=merge",
            "-p",
            &format!(r#"{{"spec":{spec}}}"#),
        ]);
    };
    endpoint(r#"{"endpointType":"Private","resourcePolicy":{"allowCidrs":["10.0.0.0/8"]}}"#);
    exists("networkpolicy/tollgate-proxy-hello");
    endpoint(r#"{"endpointType":"Edge"}"#);
    exists("daemonset/tollgate-proxy-hello");
    gone("deployment/tollgate-proxy-hello");
    gone("networkpolicy/tollgate-proxy-hello");
    endpoint(r#"{"endpointType":"Regional"}"#);
    exists("deployment/tollgate-proxy-hello");
    gone("daemonset/tollgate-proxy-hello");

    // SIGTERM: the Lease released, the fleet counts deleted.
    controller.stop_and_wait();
    let lease = get_ok(rns, "lease/tollgate-controller");
    assert!(
        lease["spec"]["holderIdentity"].is_null(),
        "the Lease is still held: {lease:#}\ncontroller log:\n{}",
        log()
    );
    assert!(
        cp().get(rns, &format!("configmap/tollgate-fleet-{pod}"))
            .is_none(),
        "the fleet counts are left; controller log:\n{}",
        log()
    );

    assert_not_refused(&controller);
}

/// Enforces (and warns about) the restricted Pod Security Standard in `ns`.
fn restrict(ns: &Namespace) {
    cp().kubectl_ok(&[
        "label",
        "namespace",
        ns.name(),
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/warn=restricted",
    ]);
}

/// `ca.crt` of the snapshot CA Secret in the release namespace.
fn snapshot_ca(namespace: &str) -> String {
    use base64::Engine as _;
    let text = cp().kubectl_ok(&[
        "get",
        "secret",
        "tollgate-snapshot-ca",
        "-n",
        namespace,
        "-o",
        r"jsonpath={.data.ca\.crt}",
    ]);
    let pem = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap_or_else(|e| panic!("ca.crt is not base64 ({e}): {text:?}"));
    String::from_utf8(pem).expect("ca.crt is PEM text")
}

/// The values that turn on the Grafana dashboard, the PrometheusRule and the PodMonitor.
const MONITORING: &[&str] = &[
    "--set",
    "grafana.dashboard.enabled=true",
    "--set",
    "grafana.dashboard.annotations.grafana_folder=Tollgate",
    "--set",
    "prometheusRule.enabled=true",
    "--set",
    "prometheusRule.alertLabels.team=api",
    "--set",
    "podMonitor.enabled=true",
];

/// Grafana's dashboard and the alerting rules: nothing unless asked for; when asked for, the
/// dashboard's ConfigMap carries the sidecar's label and the JSON file as it is, the rules pass
/// `promtool check rules` and a `promtool test rules` unit test (the 5XX alert fires with its
/// labels and annotations filled in; an alert turned off is gone), the chart lints, and the
/// objects pass a server-side dry run.
#[test]
fn the_dashboard_and_the_alerting_rules_render_when_asked_for() {
    let helm = helm();
    let plain = helm.template("tollgate", "tollgate-system", &[]);
    for kind in [
        "kind: PrometheusRule",
        "kind: PodMonitor",
        "tollgate-dashboard",
    ] {
        assert!(
            !plain.contains(kind),
            "{kind} rendered by default:\n{plain}"
        );
    }

    let mut lint = vec!["lint", "--strict"];
    let chart = helm.chart();
    lint.push(&chart);
    lint.extend_from_slice(MONITORING);
    let out = helm.offline(&lint);
    assert!(out.status.success(), "helm lint: {}", output_text(&out));

    // The dashboard, in the namespace asked for, labelled for Grafana's sidecar.
    let mut args = MONITORING.to_vec();
    args.extend_from_slice(&["--set", "grafana.dashboard.namespace=monitoring"]);
    let rendered = helm.template("tollgate", "tollgate-system", &args);
    let objects = tollgate_tests::helm::documents(&rendered);
    let dashboard = objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == "tollgate-dashboard")
        .unwrap_or_else(|| panic!("no dashboard ConfigMap:\n{rendered}"));
    assert_eq!(dashboard["metadata"]["namespace"], "monitoring");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(
        dashboard["metadata"]["annotations"]["grafana_folder"],
        "Tollgate"
    );
    let json: Value = serde_json::from_str(dashboard["data"]["tollgate.json"].as_str().unwrap())
        .expect("the dashboard is JSON");
    let file: Value = serde_json::from_str(
        &fs::read_to_string(
            workspace_root()
                .join(CHART)
                .join("dashboards/tollgate.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        json, file,
        "the ConfigMap holds the dashboard file as it is"
    );
    let variables: Vec<&str> = json["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(variables, ["datasource", "api_name", "stage"]);
    for panel in json["panels"].as_array().unwrap() {
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{panel}");
        assert!(!panel["targets"].as_array().unwrap().is_empty(), "{panel}");
    }
    // Another label for another sidecar's configuration.
    let relabelled = helm.template(
        "tollgate",
        "tollgate-system",
        &[
            "--set",
            "grafana.dashboard.enabled=true",
            "--set",
            "grafana.dashboard.label=dashboards",
            "--set",
            "grafana.dashboard.labelValue=tollgate",
        ],
    );
    assert!(
        relabelled.contains("dashboards: \"tollgate\""),
        "{relabelled}"
    );

    // The rules: promtool finds nothing wrong, every alert says what and where.
    let rules = tollgate_tests::prometheus::rule_file(&rendered);
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("rules.yaml"), &rules).unwrap();
    let check = tollgate_tests::prometheus::promtool(&["check", "rules", "rules.yaml"], dir.path());
    assert!(
        check.status.success(),
        "promtool check rules:\n{}\n{rules}",
        output_text(&check)
    );
    let file: Value = serde_yaml::from_str(&rules).unwrap();
    let alerts: Vec<&Value> = file["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .filter(|r| r.get("alert").is_some())
        .collect();
    assert!(alerts.len() >= 10, "{rules}");
    for alert in &alerts {
        assert_eq!(alert["labels"]["team"], "api", "{alert}");
        assert!(alert["labels"]["severity"].is_string(), "{alert}");
        for annotation in ["summary", "description"] {
            assert!(
                alert["annotations"][annotation]
                    .as_str()
                    .is_some_and(|s| !s.is_empty()),
                "{annotation} of {alert}"
            );
        }
    }
    let error_ratio = alerts
        .iter()
        .find(|a| a["alert"] == "TollgateApiErrorRatioHigh")
        .expect("the 5XX alert");
    let fill = |text: &str| {
        text.replace("{{ $labels.api_name }}", "default/pets")
            .replace("{{ $labels.stage }}", "prod")
            .replace("{{ $value | humanizePercentage }}", "20%")
    };
    let unit_test = serde_json::json!({
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                {"series": r#"apigateway_count_total{api_name="default/pets",stage="prod",method="GET",resource="/pets/{petId}"}"#,
                 "values": "0+600x30"},
                {"series": r#"apigateway_5xx_error_total{api_name="default/pets",stage="prod",method="GET",resource="/pets/{petId}"}"#,
                 "values": "0+120x30"},
                {"series": r#"apigateway_count_total{api_name="default/pets",stage="dev",method="GET",resource="/pets/{petId}"}"#,
                 "values": "0+600x30"},
                {"series": r#"apigateway_5xx_error_total{api_name="default/pets",stage="dev",method="GET",resource="/pets/{petId}"}"#,
                 "values": "0+6x30"},
            ],
            "alert_rule_test": [
                {"eval_time": "3m", "alertname": "TollgateApiErrorRatioHigh", "exp_alerts": []},
                {"eval_time": "20m", "alertname": "TollgateApiErrorRatioHigh", "exp_alerts": [{
                    "exp_labels": {"severity": "critical", "team": "api", "api_name": "default/pets", "stage": "prod"},
                    "exp_annotations": {
                        "summary": fill(error_ratio["annotations"]["summary"].as_str().unwrap()),
                        "description": fill(error_ratio["annotations"]["description"].as_str().unwrap()),
                    },
                }]},
            ],
        }],
    });
    fs::write(
        dir.path().join("test.yaml"),
        serde_yaml::to_string(&unit_test).unwrap(),
    )
    .unwrap();
    let test = tollgate_tests::prometheus::promtool(&["test", "rules", "test.yaml"], dir.path());
    assert!(
        test.status.success(),
        "promtool test rules:\n{}",
        output_text(&test)
    );

    // Thresholds are numbers (`--set` makes strings of decimals: those are read too), in range.
    for (value, message) in [
        (
            "prometheusRule.alerts.errorRatio.threshold=1.5",
            "does not match pattern",
        ),
        (
            "prometheusRule.alerts.errorRatio.threshold=0",
            "exclusiveMinimum",
        ),
        (
            "prometheusRule.alerts.certificateExpiry.days=soon",
            "does not match pattern",
        ),
    ] {
        let out = helm.offline(&["template", "tollgate", &chart, "--set", value]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(message),
            "{value} should fail with {message:?}:\n{}",
            output_text(&out)
        );
    }

    // Each alert can be turned off; the recording rules stay.
    let mut args = MONITORING.to_vec();
    args.extend_from_slice(&["--set", "prometheusRule.alerts.errorRatio.enabled=false"]);
    let fewer =
        tollgate_tests::prometheus::rule_file(&helm.template("tollgate", "tollgate-system", &args));
    assert!(!fewer.contains("TollgateApiErrorRatioHigh"), "{fewer}");
    assert!(fewer.contains("TollgateApiLatencyHigh"), "{fewer}");
    assert!(
        fewer.contains("api_name_stage:apigateway_5xx_error:ratio_rate5m"),
        "{fewer}"
    );

    // A server-side dry run: the ConfigMap as it is, the PrometheusRule against a stand-in of
    // the operator's CRD (tests/helm/prometheusrule-crd.yaml: this API server has no
    // Prometheus Operator). The PodMonitor and ServiceMonitor, whose CRDs are the operator's
    // largest, are left out of the run (as the plain dry run leaves the ServiceMonitor out).
    let crd =
        fs::read_to_string(workspace_root().join("tests/helm/prometheusrule-crd.yaml")).unwrap();
    let out = cp().kubectl_with_input(&["apply", "-f", "-"], &crd);
    assert!(out.status.success(), "the CRD: {}", output_text(&out));
    cp().kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd/prometheusrules.monitoring.coreos.com",
        "--timeout=60s",
    ]);
    let ns = cp().namespace("chart-monitoring");
    let rendered = helm.template("tollgate", ns.name(), MONITORING);
    let objects: Vec<String> = tollgate_tests::helm::documents(&rendered)
        .into_iter()
        .filter(|o| o["kind"] != "PodMonitor" && o["kind"] != "ServiceMonitor")
        .map(|o| serde_yaml::to_string(&o).unwrap())
        .collect();
    let out = cp().kubectl_with_input(
        &["apply", "--dry-run=server", "-f", "-"],
        &objects.join("---\n"),
    );
    assert!(
        out.status.success(),
        "kubectl apply --dry-run=server of the chart with monitoring:\n{}",
        output_text(&out)
    );
    let applied = String::from_utf8_lossy(&out.stdout);
    for object in [
        "configmap/tollgate-dashboard",
        "prometheusrule.monitoring.coreos.com/tollgate-controller",
    ] {
        assert!(applied.contains(object), "{object} not in:\n{applied}");
    }
}
