//! Two real `tollgate-controller` replicas against one control plane: leader election on the
//! Lease `tollgate-controller` (only the leader writes statuses, exactly one reports
//! `tollgate_controller_is_leader 1`), failover when the leader stops, and the controller's
//! metrics endpoint; and the fleet counts of proxies connected to a follower, which the leader
//! adds up from every replica's `tollgate-fleet-{identity}` ConfigMap into the status.
//!
//! Needs `cargo build --workspace --bins` first (the controller is found next to the tests).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tollgate_tests::control_plane::{ControlPlane, Namespace};
use tollgate_tests::controller::{
    CONTROLLER_NAMESPACE, Controller, FrameReader, SnapshotClient, ca_pem, condition_status,
    service_account_token,
};

/// Generous: a takeover needs the Lease to expire (4 s here) on a possibly loaded machine.
const DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(200);

/// The tests of this file share the Lease: one at a time (`blocking_lock` in a plain test,
/// `lock().await` in an async one).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn replica(cp: &ControlPlane, name: &str) -> Controller {
    Controller::start_with_env(
        cp,
        &["--lease-duration-seconds", "4"],
        &[("POD_NAME", name)],
    )
}

/// Polls `check` until it returns `Some`; panics naming `what`, with both replicas' logs.
fn wait<T>(what: &str, replicas: &[&Controller], mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() >= deadline {
            let logs: Vec<String> = replicas.iter().map(|r| r.log_tail(40)).collect();
            panic!(
                "timed out after {DEADLINE:?} waiting for {what}; logs:\n{}",
                logs.join("\n-----\n")
            );
        }
        std::thread::sleep(POLL);
    }
}

/// `GET {path}` on a plain-HTTP address: `(status, body)`, or `None` when it cannot connect.
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    tcp.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

/// The value of the sample named exactly `series` (name and labels) in a metrics text.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}

fn is_leader_gauge(replica: &Controller) -> Option<f64> {
    let (status, body) = http_get(replica.metrics_addr(), "/metrics")?;
    (status == 200).then(|| sample(&body, "tollgate_controller_is_leader"))?
}

fn lease_holder(cp: &ControlPlane) -> Option<String> {
    let out = cp.kubectl(&[
        "get",
        "lease",
        "-n",
        CONTROLLER_NAMESPACE,
        "tollgate-controller",
        "-o",
        "json",
    ]);
    if !out.status.success() {
        return None;
    }
    let lease: Value = serde_json::from_slice(&out.stdout).ok()?;
    lease["spec"]["holderIdentity"]
        .as_str()
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
}

fn accepted(obj: &Value) -> bool {
    obj["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Accepted" && c["status"] == "True")
    })
}

const GATEWAY: &str = r#"apiVersion: tollgate.dev/v1alpha1
kind: ApiGateway
metadata:
  name: hello
spec:
  stages:
    - name: dev
"#;

fn route(name: &str, path: &str) -> String {
    format!(
        r#"apiVersion: tollgate.dev/v1alpha1
kind: Route
metadata:
  name: {name}
spec:
  gatewayRef:
    name: hello
  method: GET
  path: "{path}"
  integration:
    mock:
      statusCode: 200
      body: "{name}"
"#
    )
}

#[test]
fn one_leader_writes_and_another_takes_over_when_it_stops() {
    let _serial = SERIAL.blocking_lock();
    let cp = ControlPlane::shared();
    let a = replica(cp, "tollgate-ha-a");
    let b = replica(cp, "tollgate-ha-b");
    let both = [&a, &b];

    // (a) Exactly one replica holds the Lease, and only it says so on /metrics.
    // (A replica of another test may still hold it for a moment.)
    let holder = wait("a Lease holder among the replicas", &both, || {
        lease_holder(cp).filter(|h| h.starts_with("tollgate-ha-") && !h.contains("fleet"))
    });
    let (leader, follower) = match holder.as_str() {
        "tollgate-ha-a" => (&a, &b),
        "tollgate-ha-b" => (&b, &a),
        other => panic!("the Lease is held by {other:?}, not one of the replicas"),
    };
    wait("is_leader 1 on the leader, 0 on the other", &both, || {
        (is_leader_gauge(leader) == Some(1.0) && is_leader_gauge(follower) == Some(0.0))
            .then_some(())
    });
    for replica in both {
        assert_eq!(
            http_get(replica.metrics_addr(), "/healthz").map(|(s, _)| s),
            Some(200)
        );
        wait("/readyz 200", &both, || {
            (http_get(replica.metrics_addr(), "/readyz")?.0 == 200).then_some(())
        });
    }
    assert_eq!(lease_holder(cp).as_deref(), Some(holder.as_str()));

    let ns = cp.namespace("controller-ha");
    ns.apply(GATEWAY);
    wait("the gateway's status Accepted=True", &both, || {
        accepted(&ns.get_json("apigateway/hello")).then_some(())
    });
    let text = ns.kubectl_ok(&[
        "get",
        "apigateway/hello",
        "-o",
        "json",
        "--show-managed-fields",
    ]);
    let gw: Value = serde_json::from_str(&text).expect("JSON");
    let managers: Vec<(&str, &str)> = gw["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .map(|f| {
            (
                f["manager"].as_str().unwrap_or_default(),
                f["subresource"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        managers.contains(&("tollgate-controller", "status")),
        "the status is not managed by tollgate-controller: {managers:?}"
    );

    // (c) The leader's metrics after a few applies.
    for (name, path) in [("one", "/one"), ("two", "/two")] {
        ns.apply(&route(name, path));
    }
    for name in ["one", "two"] {
        wait(&format!("route {name} Accepted=True"), &both, || {
            accepted(&ns.get_json(&format!("route/{name}"))).then_some(())
        });
    }
    let metrics = wait("the leader's metrics", &both, || {
        let (status, body) = http_get(leader.metrics_addr(), "/metrics")?;
        (status == 200
            && sample(&body, "tollgate_controller_reconciles_total{result=\"ok\"}")? > 0.0
            && sample(&body, "tollgate_controller_compile_duration_seconds_count")? > 0.0
            && sample(
                &body,
                "tollgate_controller_status_writes_total{result=\"ok\"}",
            )? > 0.0)
            .then_some(body)
    });
    assert!(
        metrics.contains("tollgate_controller_push_to_ack_seconds"),
        "{metrics}"
    );
    // The follower compiles too, but writes nothing.
    let (_, follower_metrics) =
        http_get(follower.metrics_addr(), "/metrics").expect("the follower's metrics");
    assert_eq!(
        sample(
            &follower_metrics,
            "tollgate_controller_status_writes_total{result=\"ok\"}"
        ),
        Some(0.0),
        "{follower_metrics}"
    );

    // (b) The leader stops: the other takes the Lease, and statuses keep following changes.
    leader.stop();
    let follower_name = if holder == "tollgate-ha-a" {
        "tollgate-ha-b"
    } else {
        "tollgate-ha-a"
    };
    wait("the other replica holding the Lease", &both, || {
        (lease_holder(cp).as_deref() == Some(follower_name)).then_some(())
    });
    wait("is_leader 1 on the new leader", &both, || {
        (is_leader_gauge(follower) == Some(1.0)).then_some(())
    });
    wait("the old leader to exit", &both, || {
        leader.has_exited().then_some(())
    });
    ns.apply(&route("three", "/three"));
    wait("route three Accepted=True", &both, || {
        accepted(&ns.get_json("route/three")).then_some(())
    });
    let (_, after) = http_get(follower.metrics_addr(), "/metrics").expect("metrics");
    assert!(
        sample(
            &after,
            "tollgate_controller_status_writes_total{result=\"ok\"}"
        )
        .is_some_and(|n| n > 0.0),
        "{after}"
    );
}

/// Polls the gateway (without blocking the runtime: the subscription stays served meanwhile).
async fn wait_gateway(
    ns: &Namespace<'_>,
    what: &str,
    replicas: &[&Controller],
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let gw = tokio::task::block_in_place(|| ns.get_json("apigateway/hello"));
        if check(&gw) {
            return gw;
        }
        if Instant::now() >= deadline {
            let logs: Vec<String> = replicas.iter().map(|r| r.log_tail(40)).collect();
            panic!(
                "timed out after {DEADLINE:?} waiting for {what}; status:\n{}\nlogs:\n{}",
                serde_json::to_string_pretty(&gw["status"]).unwrap_or_default(),
                logs.join("\n-----\n")
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_counts_the_proxies_of_a_follower() {
    let _serial = SERIAL.lock().await;
    let cp = ControlPlane::shared();
    let (a, b) = tokio::task::block_in_place(|| {
        (
            replica(cp, "tollgate-ha-fleet-a"),
            replica(cp, "tollgate-ha-fleet-b"),
        )
    });
    let both = [&a, &b];
    let holder = tokio::task::block_in_place(|| {
        wait("a Lease holder among the replicas", &both, || {
            lease_holder(cp).filter(|h| h.starts_with("tollgate-ha-fleet-"))
        })
    });
    let (follower, follower_name) = if holder == "tollgate-ha-fleet-a" {
        (&b, "tollgate-ha-fleet-b")
    } else {
        (&a, "tollgate-ha-fleet-a")
    };

    let ns = cp.namespace("controller-ha-fleet");
    ns.apply(GATEWAY);
    wait_gateway(&ns, "Programmed=True, no proxy", &both, |o| {
        condition_status(o, "Programmed").as_deref() == Some("True")
            && o["status"]["proxies"] == json!({"current": 0, "connected": 0})
    })
    .await;

    // A proxy subscribes to the follower (retrying until the follower knows the gateway).
    let token = service_account_token(cp, ns.name(), "tollgate-proxy-hello");
    let client = SnapshotClient::new(&follower.snapshot_url(), &ca_pem(cp));
    let gateway = format!("{}/hello", ns.name());
    let deadline = Instant::now() + DEADLINE;
    let response = loop {
        let response = client.subscribe(&gateway, Some(&token), "proxy-ha").await;
        if response.status() == 200 {
            break response;
        }
        assert!(
            Instant::now() < deadline,
            "the follower refuses the subscription: {}\n{}",
            response.status(),
            follower.log_tail(40)
        );
        tokio::time::sleep(POLL).await;
    };
    let mut frames = FrameReader::new(response);
    let frame = frames
        .next(Duration::from_secs(30))
        .await
        .expect("a first frame");
    let version = frame.table.version.clone();
    let ack = json!({"gateway": {"namespace": ns.name(), "name": "hello"}, "proxyId": "proxy-ha", "version": version, "accepted": true});
    let answer = client
        .send("POST", "/v1/ack", Some(&token), &[], ack.to_string())
        .await;
    assert_eq!(answer.status(), 204);

    // The follower's ConfigMap has it, and the leader writes it into the status.
    let configmap = format!("tollgate-fleet-{follower_name}");
    let data = tokio::task::block_in_place(|| {
        wait("the follower's fleet counts", &both, || {
            let out = cp.kubectl(&[
                "get",
                "configmap",
                "-n",
                CONTROLLER_NAMESPACE,
                &configmap,
                "-o",
                "json",
            ]);
            let cm: Value = serde_json::from_slice(&out.stdout).ok()?;
            let fleet: Value = serde_json::from_str(cm["data"]["fleet.json"].as_str()?).ok()?;
            (fleet[&gateway]["connected"] == 1).then_some(cm)
        })
    });
    assert_eq!(
        data["metadata"]["labels"]["app.kubernetes.io/component"],
        "fleet-counts"
    );
    wait_gateway(&ns, "1 current, 1 connected, Ready", &both, |o| {
        o["status"]["proxies"] == json!({"current": 1, "connected": 1})
            && o["status"]["tableVersion"] == version.as_str()
            && condition_status(o, "Ready").as_deref() == Some("True")
    })
    .await;

    // A second proxy subscribes to the leader: both are told the fleet is two proxies, so that
    // Local rate limiting divides by the whole fleet, whichever replica serves each proxy.
    let leader = if holder == "tollgate-ha-fleet-a" {
        &a
    } else {
        &b
    };
    let leader_client = SnapshotClient::new(&leader.snapshot_url(), &ca_pem(cp));
    let response = leader_client
        .subscribe(&gateway, Some(&token), "proxy-ha-2")
        .await;
    assert_eq!(response.status(), 200);
    let mut leader_frames = FrameReader::new(response);
    let deadline = Instant::now() + DEADLINE;
    let mut sizes = (0, 0);
    while sizes != (2, 2) {
        assert!(
            Instant::now() < deadline,
            "fleet sizes (leader's proxy, follower's proxy) stayed {sizes:?}, not (2, 2)"
        );
        if let Some(Some(f)) = leader_frames.next_within(Duration::from_millis(200)).await {
            sizes.0 = f.fleet_size;
        }
        if let Some(Some(f)) = frames.next_within(Duration::from_millis(200)).await {
            sizes.1 = f.fleet_size;
        }
    }
    drop(leader_frames);
    drop(leader_client);
    wait_gateway(&ns, "1 connected again", &both, |o| {
        o["status"]["proxies"]["connected"] == 1
    })
    .await;

    // The proxy goes: back to none.
    drop(frames);
    drop(client);
    wait_gateway(&ns, "0 current, 0 connected", &both, |o| {
        o["status"]["proxies"] == json!({"current": 0, "connected": 0})
    })
    .await;

    // Stopped replicas remove their ConfigMaps and let the next test have the Lease.
    a.stop();
    b.stop();
    tokio::task::block_in_place(|| {
        wait("both replicas to exit", &both, || {
            (a.has_exited() && b.has_exited()).then_some(())
        });
        let out = cp.kubectl(&[
            "get",
            "configmap",
            "-n",
            CONTROLLER_NAMESPACE,
            &configmap,
            "--ignore-not-found",
            "-o",
            "name",
        ]);
        assert!(
            String::from_utf8_lossy(&out.stdout).trim().is_empty(),
            "the follower's ConfigMap is left after a graceful stop"
        );
    });
}
