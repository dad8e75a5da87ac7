//! The controller's snapshot service, spoken to as a proxy would (HTTP/2 over TLS, trusting the
//! CA the controller keeps in its Secret, with a ServiceAccount token from `kubectl create
//! token`), against the real control plane: the table a proxy receives and the frames that
//! follow a change, who may subscribe, and the fleet counts and `Ready` on the ApiGateway
//! following ACKs and disconnections. One controller is shared by the tests of this file,
//! each test in a namespace of its own.
//!
//! Needs `cargo build --workspace --bins` first (the controller is found next to the tests).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tollgate_crds::snapshot::{CONTENT_TYPE, verify};
use tollgate_tests::control_plane::{ControlPlane, Namespace};
use tollgate_tests::controller::{
    Controller, FrameReader, SnapshotClient, body_text, ca_pem, condition_status, hello_mock_route,
    service_account_token, service_account_token_for,
};

const DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(200);
const FRAME_WAIT: Duration = Duration::from_secs(30);

fn controller() -> &'static Controller {
    static CONTROLLER: OnceLock<Controller> = OnceLock::new();
    CONTROLLER.get_or_init(|| Controller::start(ControlPlane::shared(), &[]))
}

fn namespace(hint: &str) -> Namespace<'static> {
    controller();
    ControlPlane::shared().namespace(hint)
}

fn client() -> SnapshotClient {
    SnapshotClient::new(
        &controller().snapshot_url(),
        &ca_pem(ControlPlane::shared()),
    )
}

fn token(ns: &Namespace, account: &str) -> String {
    service_account_token(ControlPlane::shared(), ns.name(), account)
}

/// Polls `kubectl get {what} -o json` until `check` holds (without blocking the runtime's
/// other tasks: the subscription stays served meanwhile).
async fn wait_for(
    ns: &Namespace<'_>,
    what: &str,
    description: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let obj = tokio::task::block_in_place(|| ns.get_json(what));
        if check(&obj) {
            return obj;
        }
        if Instant::now() >= deadline {
            panic!(
                "{what} in {}: timed out after {DEADLINE:?} waiting for {description}; last seen:\n{}\ncontroller log:\n{}",
                ns.name(),
                serde_json::to_string_pretty(&obj["status"]).unwrap_or_default(),
                controller().log_tail(40)
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The quickstart gateway, applied and programmed.
async fn programmed_hello(ns: &Namespace<'_>) -> Value {
    ns.apply(&ns.quickstart());
    wait_for(ns, "apigateway/hello", "Programmed=True", |o| {
        condition_status(o, "Programmed").as_deref() == Some("True")
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_receives_the_table_then_each_new_one() {
    let ns = namespace("snapshot-subscribe");
    programmed_hello(&ns).await;
    let token = token(&ns, "tollgate-proxy-hello");
    let client = client();
    let gateway = format!("{}/hello", ns.name());

    let response = client.subscribe(&gateway, Some(&token), "proxy-a").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        CONTENT_TYPE
    );
    assert_eq!(response.version(), http::Version::HTTP_2);
    let mut frames = FrameReader::new(response);
    let first = frames.next(FRAME_WAIT).await.expect("a first frame");
    verify(&first.table).expect("the table verifies");
    assert_eq!(first.table.gateway.namespace, ns.name());
    assert_eq!(first.table.gateway.name, "hello");
    assert_eq!(first.fleet_size, 1);
    // The frame's version is the one the gateway's status reports (once the status is written).
    wait_for(&ns, "apigateway/hello", "the frame's tableVersion", |o| {
        o["status"]["tableVersion"] == first.table.version.as_str()
    })
    .await;
    let paths = |t: &tollgate_crds::table::GatewayTable| -> Vec<String> {
        t.stages
            .iter()
            .flat_map(|s| s.routes.iter().filter_map(|r| r.path.clone()))
            .collect()
    };

    // A new route: a new frame, with it. (Frames for intermediate versions may come first.)
    ns.apply(&hello_mock_route("extra", "/extra", ""));
    let deadline = Instant::now() + FRAME_WAIT;
    let second = loop {
        let frame = frames.next(FRAME_WAIT).await.expect("the stream goes on");
        verify(&frame.table).expect("the table verifies");
        assert_ne!(frame.table.version, first.table.version);
        if paths(&frame.table).iter().any(|p| p == "/extra") {
            break frame;
        }
        assert!(
            Instant::now() < deadline,
            "no frame with /extra; last paths {:?}",
            paths(&frame.table)
        );
    };
    assert!(paths(&second.table).iter().any(|p| p == "/states"));
    wait_for(&ns, "apigateway/hello", "the new tableVersion", |o| {
        o["status"]["tableVersion"] == second.table.version.as_str()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_gateways_own_proxies_may_subscribe() {
    let ns = namespace("snapshot-auth");
    programmed_hello(&ns).await;
    let client = client();
    let gateway = format!("{}/hello", ns.name());

    let none = client.subscribe(&gateway, None, "proxy-x").await;
    assert_eq!(none.status(), 401);
    assert_eq!(
        serde_json::from_str::<Value>(&body_text(none).await).unwrap(),
        json!({"message": "Unauthorized"})
    );
    let garbage = client
        .subscribe(&gateway, Some("not-a-token"), "proxy-x")
        .await;
    assert_eq!(garbage.status(), 401);

    // The gateway's own ServiceAccount, with a token for the API server's audience (as a
    // pod's default token is): refused, only tokens bound to the snapshot service pass.
    let api_server_token = service_account_token_for(
        ControlPlane::shared(),
        ns.name(),
        "tollgate-proxy-hello",
        "https://kubernetes.default.svc",
    );
    let wrong_audience = client
        .subscribe(&gateway, Some(&api_server_token), "proxy-x")
        .await;
    assert_eq!(wrong_audience.status(), 401);

    let other = token(&ns, "tollgate-proxy-other");
    let forbidden = client.subscribe(&gateway, Some(&other), "proxy-x").await;
    assert_eq!(forbidden.status(), 403);
    assert_eq!(
        serde_json::from_str::<Value>(&body_text(forbidden).await).unwrap(),
        json!({"message": "Forbidden"})
    );
    // That token's own gateway does not exist.
    let unknown = client
        .subscribe(&format!("{}/other", ns.name()), Some(&other), "proxy-x")
        .await;
    assert_eq!(unknown.status(), 404);

    // An ACK for this gateway with the other token is refused too.
    let ack = json!({"gateway": {"namespace": ns.name(), "name": "hello"}, "proxyId": "proxy-x", "version": "0", "accepted": true});
    let refused = client
        .send("POST", "/v1/ack", Some(&other), &[], ack.to_string())
        .await;
    assert_eq!(refused.status(), 403);
    assert!(
        !controller().log().contains(&other),
        "a token reached the controller's log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_reports_its_fleet() {
    let ns = namespace("snapshot-fleet");
    programmed_hello(&ns).await;
    let token = token(&ns, "tollgate-proxy-hello");
    let client = client();
    let gateway = format!("{}/hello", ns.name());

    let response = client.subscribe(&gateway, Some(&token), "proxy-f").await;
    assert_eq!(response.status(), 200);
    let mut frames = FrameReader::new(response);
    let frame = frames.next(FRAME_WAIT).await.expect("a first frame");
    let version = frame.table.version.clone();

    // Connected, not yet current: not Ready.
    wait_for(
        &ns,
        "apigateway/hello",
        "1 connected, 0 current, not Ready",
        |o| {
            o["status"]["proxies"] == json!({"current": 0, "connected": 1})
                && condition_status(o, "Ready").as_deref() == Some("False")
        },
    )
    .await;

    // A NACK changes nothing.
    let nack = json!({"gateway": {"namespace": ns.name(), "name": "hello"}, "proxyId": "proxy-f", "version": version, "accepted": false, "reason": "testing"});
    let answer = client
        .send("POST", "/v1/ack", Some(&token), &[], nack.to_string())
        .await;
    assert_eq!(answer.status(), 204);

    let ack = json!({"gateway": {"namespace": ns.name(), "name": "hello"}, "proxyId": "proxy-f", "version": version, "accepted": true});
    let answer = client
        .send("POST", "/v1/ack", Some(&token), &[], ack.to_string())
        .await;
    assert_eq!(answer.status(), 204);
    wait_for(
        &ns,
        "apigateway/hello",
        "1 connected, 1 current, Ready",
        |o| {
            o["status"]["proxies"] == json!({"current": 1, "connected": 1})
                && condition_status(o, "Ready").as_deref() == Some("True")
                && o["status"]["tableVersion"] == version.as_str()
        },
    )
    .await;
    assert!(
        controller().log().contains("a proxy refused a table"),
        "the NACK was not logged"
    );

    // The proxy goes: the fleet is empty, and the gateway Ready on its own.
    drop(frames);
    drop(client);
    wait_for(&ns, "apigateway/hello", "0 connected, Ready", |o| {
        o["status"]["proxies"] == json!({"current": 0, "connected": 0})
            && condition_status(o, "Ready").as_deref() == Some("True")
    })
    .await;
}

#[test]
fn the_controller_refuses_to_start_without_its_namespace() {
    let cp = ControlPlane::shared();
    let binary = tollgate_tests::proxy::binary_named("tollgate-controller");
    let port = tollgate_tests::proxy::free_port();
    let mut child = std::process::Command::new(&binary)
        .args(["--namespace", "tollgate-nowhere"])
        .args(["--snapshot-listen", &format!("127.0.0.1:{port}")])
        .env("KUBECONFIG", cp.kubeconfig_path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting the controller");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the controller") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the controller kept running without its namespace");
        }
        std::thread::sleep(POLL);
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains(r#"namespace "tollgate-nowhere" does not exist"#),
        "{stderr}"
    );
}
