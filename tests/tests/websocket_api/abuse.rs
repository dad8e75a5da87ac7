//! A WebSocket API under misuse: `@connections` calls that are too big, unsigned, signed with
//! the wrong key or secret, stale, or for connections that are not there; a client that
//! never reads while a backend floods it; messages over the route's throttle; a text
//! message that is not UTF-8; and the same API over TLS (`wss://`).

use std::time::{Duration, SystemTime};

use futures::SinkExt;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;
use tollgate_tests::client::{Client, Response};
use tollgate_tests::config::{ConfigDir, mock};
use tollgate_tests::proxy::Proxy;
use tollgate_tests::tls::{Ca, DefaultCertificate, TlsClient};

use super::{Ws, close_code, connect, next_text, ws_gateway, ws_route};

const KEY: &str = "AKIATOLLGATETEST0001";
const SECRET: &str = "test-secret-not-for-production";

fn credentials() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "pusher", "namespace": "default"},
        "type": "tollgate.dev/aws-credentials",
        "stringData": {"accessKeyId": KEY, "secretAccessKey": SECRET},
    })
}

fn api(extra: Vec<Value>) -> ConfigDir {
    let mut resources = vec![
        ws_gateway(json!({"managementCredentials": [{"name": "pusher"}]})),
        credentials(),
    ];
    resources.extend(extra);
    ConfigDir::with("api.yaml", &resources)
}

/// A signed `@connections` call to `proxy` for `id` on stage `dev`.
async fn call(
    client: &Client,
    proxy: &Proxy,
    method: &str,
    id: &str,
    body: &[u8],
    keys: (&str, &str),
    at: SystemTime,
) -> Response {
    let host = proxy.addr().to_string();
    let path = format!("/dev/@connections/{id}");
    let (date, authorization) =
        tollgate_tests::sigv4::sign(method, &host, &path, body, keys, "us-east-1", at);
    let headers = [
        ("x-amz-date", date.as_str()),
        ("authorization", authorization.as_str()),
    ];
    client
        .request(method, &proxy.url(&path), &headers, body.to_vec())
        .await
}

/// The connection id the gateway names in its answer to a message no route takes.
async fn id_of(ws: &mut Ws) -> String {
    ws.send(Message::text(r#"{"action":"nobody-answers-this"}"#))
        .await
        .unwrap();
    let error: Value = serde_json::from_str(&next_text(ws).await).unwrap();
    error["connectionId"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_calls_are_refused_as_amazon_refuses_them() {
    let config = api(Vec::new());
    let proxy = Proxy::start_standalone(config.path(), &[]);
    let client = Client::new();
    let mut ws = connect(&format!("ws://{}/dev", proxy.addr())).await;
    let id = id_of(&mut ws).await;
    let now = SystemTime::now();

    let info = call(&client, &proxy, "GET", &id, b"", (KEY, SECRET), now).await;
    assert_eq!(info.status, 200, "{}", info.text());
    let info = info.json();
    assert_eq!(info["identity"]["sourceIp"], "127.0.0.1");
    assert!(info["connectedAt"].as_str().unwrap().ends_with('Z'));
    assert!(info["lastActiveAt"].as_str().is_some());

    let wrong_key = call(
        &client,
        &proxy,
        "POST",
        &id,
        b"x",
        ("AKIAOTHER", SECRET),
        now,
    )
    .await;
    assert_eq!(wrong_key.status, 403);
    assert_eq!(
        wrong_key.json()["message"],
        "The security token included in the request is invalid."
    );
    assert_eq!(
        wrong_key.header("x-amzn-errortype").as_deref(),
        Some("UnrecognizedClientException")
    );
    let wrong_secret = call(&client, &proxy, "POST", &id, b"x", (KEY, "not-it"), now).await;
    assert_eq!(wrong_secret.status, 403);
    assert!(
        wrong_secret.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("The request signature we calculated does not match")
    );
    let stale = now - Duration::from_secs(600);
    let expired = call(&client, &proxy, "POST", &id, b"x", (KEY, SECRET), stale).await;
    assert_eq!(expired.status, 403);
    assert!(
        expired.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("Signature expired")
    );

    // Amazon's limit on what a backend may post: 128 KB.
    let big = vec![b'x'; 128 * 1024 + 1];
    let too_big = call(&client, &proxy, "POST", &id, &big, (KEY, SECRET), now).await;
    assert_eq!(too_big.status, 413);

    // Ids that are not (any more) there: 410 GoneException with a null message.
    for unknown in ["AAAAAAAAAAAAAAAA", "not-an-id", "%2e%2e"] {
        let gone = call(&client, &proxy, "POST", unknown, b"x", (KEY, SECRET), now).await;
        assert_eq!(gone.status, 410, "{unknown}: {}", gone.text());
        assert_eq!(
            gone.header("x-amzn-errortype").as_deref(),
            Some("GoneException")
        );
        assert_eq!(gone.json(), json!({"message": null}));
    }

    let sent = call(&client, &proxy, "POST", &id, b"for you", (KEY, SECRET), now).await;
    assert_eq!(sent.status, 200);
    assert_eq!(next_text(&mut ws).await, "for you");
    let deleted = call(&client, &proxy, "DELETE", &id, b"", (KEY, SECRET), now).await;
    assert_eq!(deleted.status, 204);
    assert_eq!(close_code(&mut ws, Duration::from_secs(10)).await, 1000);
    let after = call(&client, &proxy, "GET", &id, b"", (KEY, SECRET), now).await;
    assert_eq!(after.status, 410);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_not_buffered_for() {
    let config = api(Vec::new());
    let proxy = Proxy::start_standalone(config.path(), &[]);
    let client = Client::new();
    let mut ws = connect(&format!("ws://{}/dev", proxy.addr())).await;
    let id = id_of(&mut ws).await;

    // The client reads nothing from now on. Posts are taken until the kernel's buffers, the
    // write buffer and the queue are full; then they are refused, 429.
    let message = vec![b'x'; 100 * 1024];
    let mut refused_at = None;
    for n in 0..2_000 {
        let answer = call(
            &client,
            &proxy,
            "POST",
            &id,
            &message,
            (KEY, SECRET),
            SystemTime::now(),
        )
        .await;
        match answer.status {
            200 => continue,
            429 => {
                assert_eq!(answer.json()["message"], "Limit Exceeded");
                refused_at = Some(n);
                break;
            }
            // The proxy gave up on the client (1008) while we were posting.
            410 => {
                refused_at = Some(n);
                break;
            }
            other => panic!("post {n}: {other} {}", answer.text()),
        }
    }
    let refused_at = refused_at.expect("posts to a client that never reads are refused");
    assert!(
        refused_at < 1_000,
        "{refused_at} posts of 100 KB were taken"
    );
    // And the connection is closed as too slow: gone.
    let mut gone = false;
    for _ in 0..300 {
        let answer = call(
            &client,
            &proxy,
            "GET",
            &id,
            b"",
            (KEY, SECRET),
            SystemTime::now(),
        )
        .await;
        if answer.status == 410 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the connection that never reads was never closed");
    drop(ws);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_over_the_routes_throttle_are_refused_and_bad_utf8_closes_with_1007() {
    let mut ping = ws_route("ping", "ping", mock(200, "pong"), true);
    ping["spec"]["throttle"] = json!({"rateLimit": 0.01, "burstLimit": 1});
    let config = api(vec![ping]);
    let proxy = Proxy::start_standalone(config.path(), &[]);
    let mut ws = connect(&format!("ws://{}/dev", proxy.addr())).await;
    ws.send(Message::text(r#"{"action":"ping"}"#))
        .await
        .unwrap();
    assert_eq!(next_text(&mut ws).await, "pong");
    ws.send(Message::text(r#"{"action":"ping"}"#))
        .await
        .unwrap();
    let refused: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
    assert_eq!(refused["message"], "Too Many Requests");

    // A text frame that is not UTF-8, written by hand (masked, as a client's must be).
    let (stream, _) = tokio_tungstenite::client_async(
        format!("ws://{}/dev", proxy.addr()),
        tokio::net::TcpStream::connect(proxy.addr()).await.unwrap(),
    )
    .await
    .unwrap();
    let mut raw = stream.into_inner();
    let payload = [0xffu8, 0xfe];
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    raw.write_all(&frame).await.unwrap();
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
        raw,
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        None,
    )
    .await;
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(10), futures::StreamExt::next(&mut ws))
            .await
            .expect("an answer within 10 s")
        {
            Some(Ok(Message::Close(frame))) => break frame.map_or(1005, |f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(code, 1007);

    // A handshake without a key, or in another version, is no handshake: 400.
    let client = Client::new();
    for headers in [
        vec![
            ("upgrade", "websocket"),
            ("connection", "upgrade"),
            ("sec-websocket-version", "13"),
        ],
        vec![
            ("upgrade", "websocket"),
            ("connection", "upgrade"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "8"),
        ],
    ] {
        let answer = client.get(&proxy.url("/dev"), &headers).await;
        assert_eq!(answer.status, 400, "{headers:?}: {}", answer.text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_api_is_served_over_tls() {
    let ca = Ca::new("WebSocket API test CA");
    let certificate = ca.server(&["localhost"]);
    let tls = DefaultCertificate::write(&certificate);
    let config = api(vec![ws_route("ping", "ping", mock(200, "pong"), true)]);
    let args = tls.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let _proxy = Proxy::start_standalone(config.path(), &args);
    let (stream, _) = TlsClient::http1(&[&ca.pem])
        .connect(tls.listen, "localhost")
        .await
        .unwrap();
    let (mut ws, response) = tokio_tungstenite::client_async("wss://localhost/dev", stream)
        .await
        .expect("the handshake over TLS");
    assert_eq!(response.status(), 101);
    ws.send(Message::text(r#"{"action":"ping"}"#))
        .await
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(10), futures::StreamExt::next(&mut ws))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(answer, Message::text("pong"));
}
