//! Two real `tollgate-controller` replicas against one control plane: leader election on the
//! Lease `tollgate-controller` (only the leader writes statuses, exactly one reports
//! `tollgate_controller_is_leader 1`), failover when the leader stops, and the controller's
//! metrics endpoint.
//!
//! Needs `cargo build --workspace --bins` first (the controller is found next to the tests).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;
use tollgate_tests::control_plane::{ControlPlane, Namespace, output_text};
use tollgate_tests::controller::{CONTROLLER_NAMESPACE, Controller};

/// Generous: a takeover needs the Lease to expire (4 s here) on a possibly loaded machine.
const DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(200);

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

fn apply(ns: &Namespace, yaml: &str) {
    let out = ns.kubectl_with_input(&["apply", "-f", "-"], yaml);
    assert!(
        out.status.success(),
        "kubectl apply failed for\n{yaml}\n{}",
        output_text(&out)
    );
}

fn get_json(ns: &Namespace, what: &str) -> Value {
    let text = ns.kubectl_ok(&["get", what, "-o", "json"]);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("kubectl get {what}: {e}\n{text}"))
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
    let cp = ControlPlane::shared();
    let a = replica(cp, "tollgate-ha-a");
    let b = replica(cp, "tollgate-ha-b");
    let both = [&a, &b];

    // (a) Exactly one replica holds the Lease, and only it says so on /metrics.
    let holder = wait("a Lease holder", &both, || lease_holder(cp));
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
    apply(&ns, GATEWAY);
    wait("the gateway's status Accepted=True", &both, || {
        accepted(&get_json(&ns, "apigateway/hello")).then_some(())
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
        apply(&ns, &route(name, path));
    }
    for name in ["one", "two"] {
        wait(&format!("route {name} Accepted=True"), &both, || {
            accepted(&get_json(&ns, &format!("route/{name}"))).then_some(())
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
    apply(&ns, &route("three", "/three"));
    wait("route three Accepted=True", &both, || {
        accepted(&get_json(&ns, "route/three")).then_some(())
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
