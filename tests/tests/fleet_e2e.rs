//! The whole chain, all real: `kubectl apply` -> kube-apiserver -> `tollgate-controller` ->
//! three `tollgate-proxy` processes in fleet mode (ServiceAccount tokens, the controller's own
//! CA) -> traffic.
//!
//! Needs `cargo build --workspace --bins` (as `make test` does).

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use tollgate_tests::client::Client;
use tollgate_tests::control_plane::{ControlPlane, Namespace, output_text};
use tollgate_tests::controller::{Controller, ca_pem, service_account_token};
use tollgate_tests::proxy::Proxy;
use tollgate_tests::wait::eventually;
use tollgate_tests::workspace_root;

fn controller() -> &'static Controller {
    static CONTROLLER: OnceLock<Controller> = OnceLock::new();
    CONTROLLER.get_or_init(|| Controller::start(ControlPlane::shared(), &[]))
}

fn apply(ns: &Namespace, yaml: &str) {
    let out = ns.kubectl_with_input(&["apply", "-f", "-"], yaml);
    assert!(
        out.status.success(),
        "kubectl apply failed:\n{yaml}\n{}",
        output_text(&out)
    );
}

fn quickstart(ns: &Namespace) -> String {
    let text =
        std::fs::read_to_string(workspace_root().join("deploy/examples/quickstart/hello.yaml"))
            .expect("the quickstart example");
    text.replace("namespace: default", &format!("namespace: {}", ns.name()))
}

fn mock_route(name: &str, path: &str) -> String {
    format!(
        "apiVersion: tollgate.dev/v1alpha1\nkind: Route\nmetadata:\n  name: {name}\nspec:\n  gatewayRef:\n    name: hello\n  method: GET\n  path: \"{path}\"\n  integration:\n    mock:\n      statusCode: 200\n      body: \"{name}\"\n"
    )
}

/// Proxies in fleet mode for `ns/hello`, each with its own state folder, authenticating as
/// `account`.
struct Fleet {
    proxies: Vec<Proxy>,
    _files: tempfile::TempDir,
}

fn start_fleet(ns: &Namespace, count: usize, account: &str) -> Fleet {
    let cp = ControlPlane::shared();
    let files = tempfile::tempdir().expect("a temporary folder");
    let ca: PathBuf = files.path().join("ca.crt");
    std::fs::write(&ca, ca_pem(cp)).expect("write the CA");
    let token = files.path().join("token");
    std::fs::write(&token, service_account_token(cp, ns.name(), account)).expect("write the token");
    let gateway = format!("{}/hello", ns.name());
    let proxies = (0..count)
        .map(|i| {
            let state = files.path().join(format!("state-{i}"));
            std::fs::create_dir_all(&state).expect("a state folder");
            Proxy::start_fleet(
                &controller().snapshot_url(),
                &gateway,
                &state,
                &token,
                &["--ca-file", ca.to_str().expect("UTF-8 path")],
            )
        })
        .collect();
    Fleet {
        proxies,
        _files: files,
    }
}

/// The status of each proxy for `path`.
async fn statuses(client: &Client, fleet: &Fleet, path: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for proxy in &fleet.proxies {
        out.push(
            match client.send("GET", &proxy.url(path), &[], Vec::new()).await {
                Ok(r) => r.status,
                Err(_) => 0,
            },
        );
    }
    out
}

fn gateway_status(ns: &Namespace) -> Value {
    let text = ns.kubectl_ok(&["get", "apigateway", "hello", "-o", "json"]);
    serde_json::from_str::<Value>(&text).expect("JSON")["status"].clone()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_reaches_every_proxy() {
    let cp = ControlPlane::shared();
    controller();
    let ns = cp.namespace("fleet");
    apply(&ns, &quickstart(&ns));
    let fleet = start_fleet(&ns, 3, "tollgate-proxy-hello");
    let client = Client::new();

    // Every proxy serves the quickstart, and the gateway counts them.
    let mut served = Vec::new();
    for _ in 0..600 {
        served = statuses(&client, &fleet, "/dev/states").await;
        if served.iter().all(|s| *s == 200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        served,
        vec![200; 3],
        "every proxy serves the applied gateway"
    );
    let body = client
        .get(&fleet.proxies[0].url("/dev/states"), &[])
        .await
        .text();
    assert!(body.contains("Washington"), "{body}");
    eventually("the gateway reports 3 of 3 proxies current", || {
        let status = gateway_status(&ns);
        (status["proxies"] == serde_json::json!({"current": 3, "connected": 3})).then_some(())
    });

    // Apply-to-served latency: from `kubectl apply` returning to all three proxies serving.
    let mut latencies = Vec::new();
    for i in 0..50 {
        let path = format!("/added/r{i}");
        apply(&ns, &mock_route(&format!("added-{i}"), &path));
        let applied = Instant::now();
        loop {
            if statuses(&client, &fleet, &format!("/dev{path}")).await == vec![200; 3] {
                break;
            }
            assert!(
                applied.elapsed() < Duration::from_secs(60),
                "route {path} never reached every proxy"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        latencies.push(applied.elapsed());
    }
    latencies.sort();
    println!(
        "apply-to-served on 3 proxies over {} route additions: p50 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.last().expect("measured")
    );

    // A broken route is refused with a condition naming the field; the others keep serving.
    apply(&ns, &mock_route("broken", "/pets/{id}/{id}"));
    eventually("the broken route is refused", || {
        let text = ns.kubectl_ok(&["get", "route", "broken", "-o", "json"]);
        let route: Value = serde_json::from_str(&text).expect("JSON");
        let accepted = route["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Accepted")?
            .clone();
        (accepted["status"] == "False").then_some(accepted)
    });
    let text = ns.kubectl_ok(&[
        "get",
        "route",
        "broken",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Accepted\")].message}",
    ]);
    assert!(text.contains("spec.path"), "{text}");
    assert_eq!(statuses(&client, &fleet, "/dev/states").await, vec![200; 3]);
    assert_eq!(
        statuses(&client, &fleet, "/dev/added/r49").await,
        vec![200; 3]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_with_another_gateways_token_is_refused() {
    let cp = ControlPlane::shared();
    controller();
    let ns = cp.namespace("refused");
    apply(&ns, &quickstart(&ns));
    let fleet = start_fleet(&ns, 1, "tollgate-proxy-other");
    let proxy = &fleet.proxies[0];
    eventually("the proxy logs the refusal", || {
        proxy.stderr_lines().into_iter().find(|l| l.contains("403"))
    });
    assert!(
        !proxy.is_ready(),
        "a refused proxy has no table and is not ready"
    );
}
