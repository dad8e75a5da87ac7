//! A WebSocket API on a fleet fed by the real controller: `kubectl apply` -> kube-apiserver
//! -> `tollgate-controller` -> three proxies in fleet mode sharing a real Redis as their
//! `@connections` bus. boto3 posts through one proxy to clients of every proxy; the status
//! shows the stage's `ws://` and `@connections` URLs; open connections take a new table.

use std::path::PathBuf;
use std::sync::OnceLock;

use futures::SinkExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tollgate_tests::control_plane::{ControlPlane, Namespace};
use tollgate_tests::controller::{Controller, ca_pem, service_account_token};
use tollgate_tests::proxy::Proxy;
use tollgate_tests::redis::RedisServer;
use tollgate_tests::wait::eventually;

use super::{ACCESS_KEY, SECRET_KEY, Ws, boto3_post, next_text};

fn controller() -> &'static Controller {
    static CONTROLLER: OnceLock<Controller> = OnceLock::new();
    CONTROLLER.get_or_init(|| Controller::start(ControlPlane::shared(), &[]))
}

fn resources(redis: &str, extra_route: Option<(&str, &str)>) -> String {
    let mut yaml = format!(
        r#"apiVersion: tollgate.dev/v1alpha1
kind: ApiGateway
metadata:
  name: chat
spec:
  protocol: WEBSOCKET
  websocket:
    redisUrl: {redis}
    managementCredentials:
      - name: chat-pusher
  stages:
    - name: production
---
apiVersion: v1
kind: Secret
metadata:
  name: chat-pusher
type: tollgate.dev/aws-credentials
stringData:
  accessKeyId: {ACCESS_KEY}
  secretAccessKey: {SECRET_KEY}
---
apiVersion: tollgate.dev/v1alpha1
kind: Route
metadata:
  name: ping
spec:
  gatewayRef: {{ name: chat }}
  routeKey: ping
  routeResponseSelectionExpression: $default
  integration:
    mock: {{ body: pong }}
"#
    );
    if let Some((key, body)) = extra_route {
        yaml.push_str(&format!(
            r#"---
apiVersion: tollgate.dev/v1alpha1
kind: Route
metadata:
  name: {key}
spec:
  gatewayRef: {{ name: chat }}
  routeKey: {key}
  routeResponseSelectionExpression: $default
  integration:
    mock: {{ body: {body} }}
"#
        ));
    }
    yaml
}

struct Fleet {
    proxies: Vec<Proxy>,
    _files: tempfile::TempDir,
}

fn start_fleet(ns: &Namespace, count: usize) -> Fleet {
    let cp = ControlPlane::shared();
    let files = tempfile::tempdir().expect("a temporary folder");
    let ca: PathBuf = files.path().join("ca.crt");
    std::fs::write(&ca, ca_pem(cp)).expect("write the CA");
    let token = files.path().join("token");
    let account = "tollgate-proxy-chat";
    std::fs::write(&token, service_account_token(cp, ns.name(), account)).expect("the token");
    let gateway = format!("{}/chat", ns.name());
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

/// A connection to `proxy`, once it serves the API; pinged once.
async fn connect_when_served(proxy: &Proxy) -> Ws {
    let url = format!("ws://{}/production", proxy.addr());
    for _ in 0..600 {
        if let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url.as_str()).await {
            ws.send(Message::text(r#"{"action":"ping"}"#))
                .await
                .unwrap();
            assert_eq!(next_text(&mut ws).await, "pong");
            return ws;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{url} never accepted a WebSocket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_carries_connections_calls_to_the_proxy_holding_the_connection() {
    let cp = ControlPlane::shared();
    controller();
    let redis = RedisServer::start();
    let ns = cp.namespace("wsfleet");
    ns.apply(&resources(&redis.url(), None));
    let fleet = start_fleet(&ns, 3);
    let mut clients = Vec::new();
    for proxy in &fleet.proxies {
        clients.push(connect_when_served(proxy).await);
    }

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

    // Each client's id, from the connection's own answer to a message naming no route.
    let mut ids = Vec::new();
    for ws in &mut clients {
        ws.send(Message::text(r#"{"action":"who"}"#)).await.unwrap();
        let error: Value = serde_json::from_str(&next_text(ws).await).unwrap();
        assert_eq!(error["message"], "Forbidden");
        ids.push(error["connectionId"].as_str().unwrap().to_string());
    }
    // boto3 through proxy 0 reaches the clients of all three proxies.
    let endpoint = fleet.proxies[0].url("/production");
    for (ws, id) in clients.iter_mut().zip(&ids) {
        assert_eq!(boto3_post(&endpoint, id), "sent");
        assert_eq!(next_text(ws).await, "hello?");
    }

    // A new route reaches the fleet; the open connections take it.
    ns.apply(&resources(&redis.url(), Some(("late", "late-answer"))));
    for ws in &mut clients {
        let mut answered = false;
        for _ in 0..300 {
            ws.send(Message::text(r#"{"action":"late"}"#))
                .await
                .unwrap();
            if next_text(ws).await == "late-answer" {
                answered = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(answered, "an open connection never took the new route");
    }

    // A proxy that stops takes its connections with it: 410 from the others at once.
    let mut stopped = fleet.proxies;
    let gone = stopped.remove(2);
    drop(gone);
    assert_eq!(boto3_post(&endpoint, &ids[2]), "GoneException");
    assert_eq!(boto3_post(&stopped[1].url("/production"), &ids[0]), "sent");
}
