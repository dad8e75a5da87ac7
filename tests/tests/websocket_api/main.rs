//! Managed WebSocket APIs end to end: a real WebSocket client (tokio-tungstenite) through the
//! real proxy, with mock and HTTP integrations on real backends; and Amazon's chat app with
//! Python functions under the Lambda Runtime Interface Emulator that call back through boto3
//! (`chat.rs`), across three proxies sharing a real Redis.
//!
//! Needs `cargo build --workspace --bins` (as `make test` does).

mod abuse;
mod chat;
mod fleet;

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tollgate_tests::backend::Backend;
use tollgate_tests::client::Client;
use tollgate_tests::config::{ConfigDir, api_key, mock, usage_plan};
use tollgate_tests::proxy::Proxy;
use tollgate_tests::wait::eventually_async;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The chat example's `@connections` keys (`deploy/examples/websocket-chat/gateway.yaml`).
const ACCESS_KEY: &str = "AKIATOLLGATECHAT0001";
const SECRET_KEY: &str = "chat-example-secret-do-not-use-in-production";

/// What boto3's `apigatewaymanagementapi` client says when it posts to a connection through
/// `endpoint` (a stage's URL) with the example's keys: `sent`, or the error code.
fn boto3_post(endpoint: &str, connection_id: &str) -> String {
    let script = r#"
import sys, boto3
client = boto3.client("apigatewaymanagementapi", endpoint_url=sys.argv[1], region_name="us-east-1")
try:
    client.post_to_connection(ConnectionId=sys.argv[2], Data=sys.argv[3].encode())
    print("sent")
except client.exceptions.ClientError as e:
    print(e.response["Error"]["Code"])
"#;
    let output = std::process::Command::new(tollgate_tests::lambda::python())
        .args(["-c", script, endpoint, connection_id, "hello?"])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .output()
        .expect("running boto3");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A WebSocket API `chat` in `default` with one stage `dev`.
fn ws_gateway(websocket: Value) -> Value {
    json!({
        "apiVersion": "tollgate.dev/v1alpha1",
        "kind": "ApiGateway",
        "metadata": {"name": "chat", "namespace": "default"},
        "spec": {"protocol": "WEBSOCKET", "websocket": websocket, "stages": [{"name": "dev"}]},
    })
}

/// A route of `chat` by route key; `two_way` sends its integration's answer back.
fn ws_route(name: &str, key: &str, integration: Value, two_way: bool) -> Value {
    let mut route = json!({
        "apiVersion": "tollgate.dev/v1alpha1",
        "kind": "Route",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"gatewayRef": {"name": "chat"}, "routeKey": key, "integration": integration},
    });
    if two_way {
        route["spec"]["routeResponseSelectionExpression"] = json!("$default");
    }
    route
}

async fn connect(url: &str) -> Ws {
    let (ws, response) = tokio_tungstenite::connect_async(url)
        .await
        .unwrap_or_else(|e| panic!("the handshake to {url}: {e}"));
    assert_eq!(response.status(), 101);
    ws
}

/// The HTTP status a refused handshake got, and its body.
async fn refused(url: &str) -> (u16, String) {
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            (response.status().as_u16(), body)
        }
        Err(e) => panic!("the handshake failed otherwise: {e}"),
        Ok(_) => panic!("the handshake to {url} was accepted"),
    }
}

/// The next text message, within 10 s.
async fn next_text(ws: &mut Ws) -> String {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
            .expect("the connection is open")
            .expect("a message");
        match message {
            Message::Text(text) => return text.to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

/// The close frame's code, within `within`.
async fn close_code(ws: &mut Ws, within: Duration) -> u16 {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!("no close frame within {within:?}"),
            Ok(Some(Ok(Message::Close(frame)))) => {
                return frame.map_or(1005, |f| u16::from(f.code));
            }
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => panic!("the connection failed without a close frame: {e}"),
            Ok(None) => panic!("the connection ended without a close frame"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_take_their_routes_and_two_way_routes_answer() {
    let backend = Backend::echo();
    let key = "ws-key-0123456789-0123456789-0123456789";
    let mut connect_route = ws_route("connect", "$connect", mock(200, ""), false);
    connect_route["spec"]["apiKeyRequired"] = json!(true);
    let config = ConfigDir::with(
        "api.yaml",
        &[
            ws_gateway(json!({})),
            connect_route,
            ws_route(
                "echo",
                "echo",
                json!({"http": {"url": backend.url("/echo")}}),
                true,
            ),
            ws_route(
                "fire",
                "fire",
                json!({"http": {"url": backend.url("/fire")}}),
                false,
            ),
            ws_route(
                "default",
                "$default",
                mock(200, r#"{"message": "use an action"}"#),
                true,
            ),
            api_key("tenant-a", key, true),
            usage_plan("plan", "chat", "dev", &["tenant-a"]),
        ],
    );
    let proxy = Proxy::start_standalone(config.path(), &[]);
    let url = format!("ws://{}/dev", proxy.addr());

    // $connect's API key: refused without one, as Amazon refuses the handshake.
    let (status, body) = refused(&url).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["message"],
        "Forbidden"
    );
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            url.as_str(),
        )
        .unwrap();
    request
        .headers_mut()
        .insert("x-api-key", key.parse().unwrap());
    let (mut ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.status(), 101);

    // A two-way HTTP route: the backend gets a POST of the message with the connection's
    // context; its answer comes back.
    ws.send(Message::text(r#"{"action":"echo","n":1}"#))
        .await
        .unwrap();
    let echoed: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
    assert_eq!(echoed["method"], "POST");
    assert_eq!(echoed["path"], "/echo");
    assert_eq!(echoed["body"], r#"{"action":"echo","n":1}"#);
    assert_eq!(echoed["headers"]["x-amzn-route-key"][0], "echo");
    assert_eq!(echoed["headers"]["x-amzn-event-type"][0], "MESSAGE");
    let connection_id = echoed["headers"]["x-amzn-connection-id"][0]
        .as_str()
        .expect("the connection id header")
        .to_string();
    assert_eq!(connection_id.len(), 16);

    // A one-way route answers nothing: the next frame is the next message's answer.
    ws.send(Message::text(r#"{"action":"fire"}"#))
        .await
        .unwrap();
    ws.send(Message::text("not json")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, r#"{"message": "use an action"}"#);
    // A key naming no route, and a binary message, take $default too.
    ws.send(Message::text(r#"{"action":"nothing"}"#))
        .await
        .unwrap();
    assert_eq!(next_text(&mut ws).await, r#"{"message": "use an action"}"#);
    ws.send(Message::binary(vec![0u8, 1, 2])).await.unwrap();
    assert_eq!(next_text(&mut ws).await, r#"{"message": "use an action"}"#);

    // Each message is counted by route and outcome.
    let client = Client::new();
    let metrics = client.get(&proxy.admin_url("/metrics"), &[]).await.text();
    let counted = |route: &str, outcome: &str| -> f64 {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("tollgate_websocket_messages_total{")
                    && l.contains(&format!("route=\"{route}\""))
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    };
    assert_eq!(counted("echo", "answered"), 1.0, "{metrics}");
    assert_eq!(counted("fire", "answered"), 1.0, "{metrics}");
    assert_eq!(counted("$default", "answered"), 3.0, "{metrics}");

    // The stage's URL answers handshakes only; other paths are unknown.
    let plain = client.get(&proxy.url("/dev"), &[]).await;
    assert_eq!(plain.status, 426);
    let other = client.get(&proxy.url("/dev/elsewhere"), &[]).await;
    assert_eq!(other.status, 403);
    // @connections without a signature: Amazon's answer to an unsigned call.
    let unsigned = client
        .get(
            &proxy.url(&format!("/dev/@connections/{connection_id}")),
            &[],
        )
        .await;
    assert_eq!(unsigned.status, 403);
    assert_eq!(unsigned.json()["message"], "Missing Authentication Token");

    ws.close(None).await.unwrap();
    // One access-log line for the connection, with the route that admitted it.
    eventually_async("the connection's access-log line", || async {
        proxy
            .access_log()
            .into_iter()
            .find(|l| l.get("upgraded").is_some())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_a_default_route_is_told_forbidden_and_limits_close_with_amazons_codes() {
    let config = ConfigDir::with(
        "api.yaml",
        &[
            ws_gateway(json!({
                "maxFrameBytes": 1024,
                "maxMessageBytes": 2048,
                "idleTimeoutSeconds": 2,
                "maxConnectionSeconds": 4,
            })),
            ws_route("ping", "ping", mock(200, "pong"), true),
        ],
    );
    let proxy = Proxy::start_standalone(config.path(), &[]);
    let url = format!("ws://{}/dev", proxy.addr());

    let mut ws = connect(&url).await;
    ws.send(Message::text(r#"{"action":"ping"}"#))
        .await
        .unwrap();
    assert_eq!(next_text(&mut ws).await, "pong");
    // No route and no $default: Amazon's error frame, and the connection stays open.
    ws.send(Message::text(r#"{"action":"other"}"#))
        .await
        .unwrap();
    let error: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
    assert_eq!(error["message"], "Forbidden");
    assert!(error["connectionId"].is_string() && error["requestId"].is_string());
    ws.send(Message::text(r#"{"action":"ping"}"#))
        .await
        .unwrap();
    assert_eq!(next_text(&mut ws).await, "pong");

    // A frame over maxFrameBytes: 1009.
    ws.send(Message::text("x".repeat(1500))).await.unwrap();
    assert_eq!(
        close_code(&mut ws, Duration::from_secs(10)).await,
        u16::from(CloseCode::Size)
    );

    // Nothing either way for idleTimeoutSeconds: 1001.
    let mut idle = connect(&url).await;
    assert_eq!(
        close_code(&mut idle, Duration::from_secs(30)).await,
        u16::from(CloseCode::Away)
    );

    // Busy, but older than maxConnectionSeconds: 1001 too. (Between pings the client reads,
    // so the close is read as soon as it comes, never written over.)
    let mut busy = connect(&url).await;
    let opened = std::time::Instant::now();
    let code = 'pinging: loop {
        busy.send(Message::text(r#"{"action":"ping"}"#))
            .await
            .unwrap();
        loop {
            let wait = if opened.elapsed() > Duration::from_secs(30) {
                panic!("no close within 30 s");
            } else {
                Duration::from_millis(500)
            };
            match tokio::time::timeout(wait, busy.next()).await {
                Err(_) => continue 'pinging,
                Ok(Some(Ok(Message::Text(text)))) => assert_eq!(text.as_str(), "pong"),
                Ok(Some(Ok(Message::Close(frame)))) => {
                    break 'pinging frame.map_or(1005, |f| u16::from(f.code));
                }
                Ok(other) => panic!("neither an answer nor a close: {other:?}"),
            }
        }
    };
    assert_eq!(code, u16::from(CloseCode::Away));
    assert!(
        opened.elapsed() > Duration::from_secs(2),
        "closed as idle, not as too old"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_takes_new_routes_from_a_new_table_and_gets_1001_at_the_end_of_the_drain() {
    let resources = vec![
        ws_gateway(json!({})),
        ws_route("ping", "ping", mock(200, "pong"), true),
    ];
    let config = ConfigDir::with("api.yaml", &resources);
    let mut proxy = Proxy::start_standalone(config.path(), &["--drain-seconds", "2"]);
    let mut ws = connect(&format!("ws://{}/dev", proxy.addr())).await;
    ws.send(Message::text(r#"{"action":"ping"}"#))
        .await
        .unwrap();
    assert_eq!(next_text(&mut ws).await, "pong");

    // A new table with a new route: the open connection keeps going, and routes to it.
    let mut more = resources.clone();
    more.push(ws_route("late", "late", mock(200, "late answer"), true));
    config.write("api.yaml", &more);
    let mut answered = false;
    for _ in 0..50 {
        ws.send(Message::text(r#"{"action":"late"}"#))
            .await
            .unwrap();
        let answer = next_text(&mut ws).await;
        if answer == "late answer" {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        answered,
        "the new route never answered on the open connection"
    );

    // SIGTERM: the connection runs through the drain period, then gets 1001.
    proxy.terminate();
    ws.send(Message::text(r#"{"action":"ping"}"#))
        .await
        .unwrap();
    assert_eq!(next_text(&mut ws).await, "pong");
    assert_eq!(
        close_code(&mut ws, Duration::from_secs(20)).await,
        u16::from(CloseCode::Away)
    );
    proxy.wait_exit(Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_client_opens_a_connection_with_extended_connect() {
    let config = ConfigDir::with(
        "api.yaml",
        &[
            ws_gateway(json!({})),
            ws_route("ping", "ping", mock(200, "pong"), true),
        ],
    );
    let proxy = Proxy::start_standalone(config.path(), &[]);
    let (status, ws) = tollgate_tests::websocket::h2_websocket(proxy.addr(), "/dev").await;
    assert_eq!(status, 200);
    let mut ws = ws.expect("an HTTP/2 WebSocket");
    ws.send(Message::text(r#"{"action":"ping"}"#))
        .await
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("an answer within 10 s")
        .expect("the stream is open")
        .expect("a message");
    assert_eq!(answer, Message::text("pong"));
    ws.close(None).await.unwrap();
    let line = eventually_async("the HTTP/2 connection's line", || async {
        proxy
            .access_log()
            .into_iter()
            .find(|l| l.get("upgraded").is_some())
    })
    .await;
    assert_eq!(line["protocol"], "HTTP/2.0", "{line}");
    assert_eq!(line["status"], 200, "{line}");
}

/// A REQUEST authorizer over HTTP, answering in the simple format: `token=let-me-in` in the
/// query string is Alice, anything else is refused.
async fn start_authorizer() -> std::net::SocketAddr {
    use http_body_util::{BodyExt, Full};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = hyper::service::service_fn(
                |request: hyper::Request<hyper::body::Incoming>| async move {
                    let body = request.into_body().collect().await?.to_bytes();
                    let event: Value = serde_json::from_slice(&body).unwrap_or_default();
                    let answer = if event["queryStringParameters"]["token"] == "let-me-in" {
                        json!({"isAuthorized": true, "context": {"user": "alice"}})
                    } else {
                        json!({"isAuthorized": false})
                    };
                    Ok::<_, hyper::Error>(hyper::Response::new(Full::new(bytes::Bytes::from(
                        answer.to_string(),
                    ))))
                },
            );
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
            );
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_takes_a_request_authorizer_with_a_query_string_token() {
    let authorizer = start_authorizer().await;
    let backend = Backend::echo();
    let mut gateway = ws_gateway(json!({}));
    gateway["spec"]["authorizers"] = json!([{
        "name": "tokens",
        "type": "REQUEST",
        "identitySource": ["$request.querystring.token"],
        "resultTtlSeconds": 0,
        "http": {"url": format!("http://{authorizer}/authorize")},
    }]);
    let mut connect_route = ws_route("connect", "$connect", mock(200, ""), false);
    connect_route["spec"]["authorizer"] = json!("tokens");
    let config = ConfigDir::with(
        "api.yaml",
        &[
            gateway,
            connect_route,
            ws_route(
                "echo",
                "echo",
                json!({"http": {"url": backend.url("/echo")}}),
                true,
            ),
        ],
    );
    let proxy = Proxy::start_standalone(config.path(), &[]);
    let url = format!("ws://{}/dev", proxy.addr());

    // No identity source: 401 without asking the authorizer; a token it refuses: 403.
    assert_eq!(refused(&url).await.0, 401);
    assert_eq!(refused(&format!("{url}?token=guess")).await.0, 403);
    // Its context reaches the integrations of the connection's messages.
    let mut ws = connect(&format!("{url}?token=let-me-in")).await;
    ws.send(Message::text(r#"{"action":"echo"}"#))
        .await
        .unwrap();
    let echoed: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
    assert_eq!(echoed["headers"]["x-authorizer-context-user"][0], "alice");
}
