//! Amazon's chat app (`deploy/examples/websocket-chat`) on a fleet fed by the real controller:
//! `kubectl apply` -> kube-apiserver -> `tollgate-controller` -> three proxies in fleet mode
//! sharing a real Redis as their `@connections` bus. The Python function runs in three copies
//! under the Lambda Runtime Interface Emulator behind one Invoke endpoint (as Lambda runs a
//! function in several environments), and calls back through boto3; clients are spread over
//! the proxies. Connections outlive a controller restart and take a new table; a proxy that
//! stops takes its connections with it.

use serde_json::{Value, json};
use tollgate_tests::client::Client;
use tollgate_tests::control_plane::{ControlPlane, Namespace};
use tollgate_tests::controller::{
    self, Controller, Fleet, service_account_token, service_account_token_for,
};
use tollgate_tests::lambda::LambdaPool;
use tollgate_tests::proxy::{Proxy, free_port};
use tollgate_tests::redis::RedisServer;
use tollgate_tests::wait::eventually;

use super::chat::{EXAMPLE, example_files, id_of, next_json, say};
use super::{ACCESS_KEY, SECRET_KEY, Ws, boto3_post, close_code, next_text, refused};

/// The example's files as one document, with the bus on `redis` and the function at `lambda`.
fn example(redis: &str, lambda: &str) -> String {
    let (gateway, routes) = example_files(redis, lambda);
    format!("{gateway}\n---\n{routes}")
}

const LATE_ROUTE: &str = r#"apiVersion: tollgate.dev/v1alpha1
kind: Route
metadata:
  name: chat-late
spec:
  gatewayRef: { name: chat }
  routeKey: late
  routeResponseSelectionExpression: $default
  integration:
    mock: { body: late-answer }
"#;

fn start_fleet(
    ns: &Namespace,
    controller: &Controller,
    count: usize,
    extra_args: &[&str],
) -> Fleet {
    controller::start_fleet(
        controller,
        ns,
        "chat",
        "tollgate-proxy-chat",
        count,
        extra_args,
    )
}

/// A connection for `name` to `proxy`, once the proxy serves the API.
async fn join(proxy: &Proxy, name: &str) -> Ws {
    let url = format!("ws://{}/production?name={name}", proxy.addr());
    for _ in 0..600 {
        if let Ok((ws, _)) = tokio_tungstenite::connect_async(url.as_str()).await {
            return ws;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{url} never accepted a WebSocket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_app_runs_on_a_controller_fed_fleet_and_outlives_a_controller_restart() {
    let cp = ControlPlane::shared();
    let controller_port = free_port();
    let mut controller = Controller::start_on(cp, controller_port, &[]);
    let redis = RedisServer::start();
    let table = tempfile::tempdir().unwrap();
    let db = table.path().join("connections.sqlite3");
    let lambda_port = free_port();
    let lambda = format!("http://127.0.0.1:{lambda_port}");

    let ns = cp.namespace("wschat");
    ns.apply(&example(&redis.url(), &lambda));
    let fleet = start_fleet(&ns, &controller, 3, &[]);
    let endpoint = fleet.proxies[0].url("/production");
    let _function = LambdaPool::start(
        EXAMPLE,
        "chat.handler",
        3,
        lambda_port,
        &[
            ("MANAGEMENT_ENDPOINT", endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("CONNECTIONS_DB", db.to_str().unwrap()),
        ],
    );

    let mut alice = join(&fleet.proxies[0], "alice").await;
    let mut bob = join(&fleet.proxies[1], "bob").await;
    let mut carol = join(&fleet.proxies[2], "carol").await;
    let (status, _) = refused(&format!("ws://{}/production", fleet.proxies[1].addr())).await;
    assert_eq!(
        status, 401,
        "$connect's function refuses a client without a name"
    );

    // The status names the stage's WebSocket and @connections URLs.
    let stage = eventually("the gateway's stage URLs", || {
        let status: Value = ns.get_json("apigateway/chat")["status"].clone();
        let stage = status["stages"][0].clone();
        stage["connectionUrl"].is_string().then_some(stage)
    });
    let invoke = stage["invokeUrl"].as_str().unwrap();
    assert!(
        invoke.starts_with("ws://chat.") && invoke.ends_with("/production"),
        "{invoke}"
    );
    assert!(
        stage["connectionUrl"]
            .as_str()
            .unwrap()
            .ends_with("/production/@connections")
    );

    // Messages reach every proxy's clients: the function posts through proxy 0.
    say(&mut bob, json!({"action": "sendmessage", "data": "hello"})).await;
    for ws in [&mut alice, &mut bob, &mut carol] {
        assert_eq!(next_json(ws).await, json!({"from": "bob", "data": "hello"}));
    }

    // The controller goes away: the connections, the routes and the bus keep working.
    controller.stop_and_wait();
    say(
        &mut carol,
        json!({"action": "sendmessage", "data": "still here"}),
    )
    .await;
    for ws in [&mut alice, &mut bob, &mut carol] {
        assert_eq!(
            next_json(ws).await,
            json!({"from": "carol", "data": "still here"})
        );
    }
    // It comes back; a new route reaches the fleet and the open connections take it.
    controller = Controller::start_on(cp, controller_port, &[]);
    ns.apply(LATE_ROUTE);
    for ws in [&mut alice, &mut bob, &mut carol] {
        let mut answered = false;
        for _ in 0..600 {
            say(ws, json!({"action": "late"})).await;
            if next_text(ws).await == "late-answer" {
                answered = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(answered, "an open connection never took the new route");
    }

    // Kick: DELETE @connections through proxy 0 for the connection proxy 2 holds.
    let carol_id = id_of(&mut carol).await;
    say(&mut alice, json!({"action": "kick", "name": "carol"})).await;
    assert_eq!(
        close_code(&mut carol, std::time::Duration::from_secs(15)).await,
        1000
    );
    for proxy in &fleet.proxies {
        assert_eq!(
            boto3_post(&proxy.url("/production"), &carol_id),
            "GoneException"
        );
    }

    // A proxy that stops takes its connections with it: 410 from the others at once.
    let bob_id = id_of(&mut bob).await;
    let mut proxies = fleet.proxies;
    drop(proxies.remove(1));
    assert_eq!(boto3_post(&endpoint, &bob_id), "GoneException");
    say(&mut alice, json!({"action": "sendmessage", "data": "bye"})).await;
    assert_eq!(
        next_json(&mut alice).await,
        json!({"from": "alice", "data": "bye"})
    );
    drop(controller);
}

/// An in-cluster backend calls `@connections` with its ServiceAccount token: the gateway's
/// management authorizer is a JWT authorizer for the cluster's ServiceAccount issuer, whose
/// keys the proxy reads from the API server's OIDC discovery (`/openid/v1/jwks`, which the
/// cluster lets anyone read, as Kubernetes documents for OIDC federation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_cluster_backend_calls_connections_with_its_serviceaccount_token() {
    let cp = ControlPlane::shared();
    let controller = Controller::start(cp, &[]);
    cp.allow_oidc_discovery();
    let ns = cp.namespace("wssa");
    ns.apply(&format!(
        r#"apiVersion: tollgate.dev/v1alpha1
kind: ApiGateway
metadata:
  name: chat
spec:
  protocol: WEBSOCKET
  authorizers:
    - name: cluster
      type: JWT
      jwt:
        issuer: https://kubernetes.default.svc
        audiences: [tollgate.dev/connections]
        jwksUri: {}/openid/v1/jwks
  websocket:
    managementAuthorizer: cluster
  stages:
    - name: production
"#,
        cp.api_url()
    ));
    let apiserver_ca = cp.dir().join("certs/apiserver.crt");
    let fleet = start_fleet(
        &ns,
        &controller,
        1,
        &["--upstream-ca-file", apiserver_ca.to_str().unwrap()],
    );
    let proxy = &fleet.proxies[0];
    let mut ws = join(proxy, "backend-test").await;
    say(&mut ws, json!({"action": "anything"})).await;
    let id = next_json(&mut ws).await["connectionId"]
        .as_str()
        .unwrap()
        .to_string();
    let url = proxy.url(&format!("/production/@connections/{id}"));
    let client = Client::new();

    let token = service_account_token_for(cp, ns.name(), "backend", "tollgate.dev/connections");
    let bearer = format!("Bearer {token}");
    let sent = client
        .request(
            "POST",
            &url,
            &[("authorization", &bearer)],
            "from the cluster",
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.text());
    assert_eq!(next_text(&mut ws).await, "from the cluster");

    // A token for another audience, and none at all, are refused.
    let other = service_account_token(cp, ns.name(), "backend");
    let refused = client
        .request(
            "POST",
            &url,
            &[("authorization", &format!("Bearer {other}"))],
            "x",
        )
        .await;
    assert_eq!(refused.status, 401, "{}", refused.text());
    let unsigned = client.request("POST", &url, &[], "x").await;
    assert_eq!(unsigned.status, 403);
}
