//! The whole chain, all real: `kubectl apply` -> kube-apiserver -> `tollgate-controller` ->
//! three `tollgate-proxy` processes in fleet mode (ServiceAccount tokens, the controller's own
//! CA) -> traffic.
//!
//! Needs `cargo build --workspace --bins` (as `make test` does).

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use tollgate_tests::client::Client;
use tollgate_tests::control_plane::{ControlPlane, Namespace};
use tollgate_tests::controller::{self, Controller, Fleet, hello_mock_route};
use tollgate_tests::proxy::free_port;
use tollgate_tests::tls::{Ca, Issued, Sender, TlsClient, get};
use tollgate_tests::wait::{eventually, eventually_async};

fn controller() -> &'static Controller {
    static CONTROLLER: OnceLock<Controller> = OnceLock::new();
    CONTROLLER.get_or_init(|| Controller::start(ControlPlane::shared(), &[]))
}

/// Proxies in fleet mode for `ns/hello`, authenticating as `account`.
fn start_fleet(ns: &Namespace, count: usize, account: &str, extra_args: &[&str]) -> Fleet {
    controller::start_fleet(controller(), ns, "hello", account, count, extra_args)
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
    ns.apply(&ns.quickstart());
    let fleet = start_fleet(&ns, 3, "tollgate-proxy-hello", &[]);
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
        let name = format!("added-{i}");
        ns.apply(&hello_mock_route(&name, &path, &name));
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
    ns.apply(&hello_mock_route("broken", "/pets/{id}/{id}", "broken"));
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
    ns.apply(&ns.quickstart());
    let fleet = start_fleet(&ns, 1, "tollgate-proxy-other", &[]);
    let proxy = &fleet.proxies[0];
    eventually("the proxy logs the refusal", || {
        proxy.stderr_lines().into_iter().find(|l| l.contains("403"))
    });
    assert!(
        !proxy.is_ready(),
        "a refused proxy has no table and is not ready"
    );
}

/// A `kubernetes.io/tls` Secret `api-tls`, as JSON for `kubectl apply`.
fn tls_secret(ns: &Namespace, issued: &Issued) -> String {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "api-tls", "namespace": ns.name()},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": issued.cert_pem, "tls.key": issued.key_pem},
    })
    .to_string()
}

/// Cluster mode end to end: a custom domain's certificate comes from its Secret through the
/// controller to a fleet proxy's TLS listener, and `kubectl apply` of a renewed Secret (as
/// cert-manager does) is served to new connections while requests keep succeeding on the
/// connections already open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_tls_secret_reaches_the_fleet_without_a_restart() {
    let cp = ControlPlane::shared();
    controller();
    let ns = cp.namespace("fleet-tls");
    let ca = Ca::new("Tollgate test server CA");
    let first = ca.server(&["api.example.com"]);
    let gateway = ns.quickstart().replacen(
        "  stages:",
        "  domains:\n    - hostname: api.example.com\n      certificateSecretRef: {name: api-tls}\n      basePathMappings: [{basePath: \"\", stage: dev}]\n  stages:",
        1,
    );
    ns.apply(&tls_secret(&ns, &first));
    ns.apply(&gateway);
    let tls: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let tls_arg = tls.to_string();
    let _fleet = start_fleet(&ns, 1, "tollgate-proxy-hello", &["--tls-listen", &tls_arg]);
    let client = TlsClient::trusting(&[&ca.pem]);
    // The certificate and the routes: the controller may send a table with the gateway (and
    // its domain) before its routes are indexed.
    eventually_async(
        "the fleet proxy to serve the Secret's certificate and the routes",
        || async {
            let (_, handshake) = client.connect(tls, "api.example.com").await.ok()?;
            let (answer, _) = client
                .get(tls, "api.example.com", "api.example.com", "/states")
                .await
                .ok()?;
            (handshake.leaf == first.der && answer.status == 200).then_some(())
        },
    )
    .await;

    // A connection opened before the renewal, and new ones during it.
    let (stream, handshake) = client.connect(tls, "api.example.com").await.unwrap();
    let mut kept = Sender::over(stream, handshake.alpn.as_deref() == Some(b"h2"))
        .await
        .unwrap();
    let renewed = ca.server(&["api.example.com"]);
    ns.apply(&tls_secret(&ns, &renewed));
    let (mut ok, mut failed) = (0, Vec::new());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for outcome in [
            kept.send(get("api.example.com", "/states")).await,
            client
                .get(tls, "api.example.com", "api.example.com", "/states")
                .await
                .map(|(r, _)| r),
        ] {
            match outcome {
                Ok(r) if r.status == 200 => ok += 1,
                Ok(r) => failed.push(format!("status {}: {}", r.status, r.text())),
                Err(e) => failed.push(e),
            }
        }
        let (_, handshake) = client.connect(tls, "api.example.com").await.unwrap();
        if handshake.leaf == renewed.der {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renewed certificate never reached the proxy"
        );
    }
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {failed:?}",
        failed.len(),
        ok + failed.len()
    );
    let after = kept.send(get("api.example.com", "/states")).await.unwrap();
    assert_eq!(
        after.status, 200,
        "the connection from before the renewal still serves"
    );
    println!("renewal through the controller: {ok} requests, 0 failed");
}
