//! WebSocket pass-through: a real WebSocket client (tokio-tungstenite) through the real proxy
//! to a real WebSocket backend (tokio-tungstenite's server), on a route with an HTTP
//! integration. The handshake passes the request path's phases; frames are relayed both
//! ways; the connection outlives a table swap; one access-log line per connection.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tollgate_tests::client::Client;
use tollgate_tests::config::{ConfigDir, api_key, dev_gateway, http, mock, route, usage_plan};
use tollgate_tests::proxy::Proxy;
use tollgate_tests::tls::{Ca, DefaultCertificate, TlsClient};
use tollgate_tests::wait::eventually_async;
use tollgate_tests::websocket::{EchoServer, h2_websocket, h2_websocket_over};

fn resources(echo: &EchoServer, extra: Option<Value>) -> Vec<Value> {
    let mut closed = route("closed", "chat", "GET", "/closed", http(&echo.url("/ws")));
    closed["spec"]["throttle"] = json!({"rateLimit": 0, "burstLimit": 0});
    let mut all = vec![
        dev_gateway("chat"),
        route("chat", "chat", "GET", "/chat", http(&echo.url("/ws"))),
        closed,
    ];
    all.extend(extra);
    all
}

/// A standalone proxy serving [`resources`] in front of an echo server.
struct Chat {
    echo: EchoServer,
    config: ConfigDir,
    proxy: Proxy,
}

impl Chat {
    async fn start(args: &[&str]) -> Chat {
        let echo = EchoServer::start().await;
        let config = ConfigDir::new();
        config.write("api.yaml", &resources(&echo, None));
        let proxy = Proxy::start_standalone(config.path(), args);
        Chat {
            echo,
            config,
            proxy,
        }
    }
}

async fn open_gauge(client: &Client, proxy: &Proxy) -> f64 {
    let metrics = client.get(&proxy.admin_url("/metrics"), &[]).await.text();
    metrics
        .lines()
        .find(|l| l.starts_with("tollgate_websocket_connections_open "))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .expect("the open WebSocket gauge")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_passes_through_an_http_route_and_outlives_a_table_swap() {
    let Chat {
        echo,
        config,
        proxy,
    } = Chat::start(&[]).await;
    let client = Client::new();

    let url = format!("ws://{}/dev/chat?room=1", proxy.addr());
    let (mut ws, response) = tokio_tungstenite::connect_async(url.into_client_request().unwrap())
        .await
        .expect("the handshake through the proxy");
    assert_eq!(response.status(), 101);
    assert!(response.headers().contains_key("x-amzn-requestid"));

    // The backend saw the handshake on its own path, with the forwarding headers.
    let handshake = echo.handshakes.lock().unwrap()[0].clone();
    assert_eq!(handshake.target, "/ws?room=1");
    assert_eq!(handshake.headers["x-forwarded-for"], "127.0.0.1");
    assert!(handshake.headers.contains_key("sec-websocket-key"));

    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hello"));
    let big = vec![7u8; 100_000];
    ws.send(Message::binary(big.clone())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(big));
    assert_eq!(open_gauge(&client, &proxy).await, 1.0);

    // A new table (a route added) does not touch the open connection.
    let added = route(
        "more",
        "chat",
        "GET",
        "/more",
        mock(200, r#"{"more":true}"#),
    );
    config.write("api.yaml", &resources(&echo, Some(added)));
    eventually_async("the new table to serve /dev/more", || async {
        let r = client.get(&proxy.url("/dev/more"), &[]).await;
        (r.status == 200).then_some(())
    })
    .await;
    ws.send(Message::text("still here")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("still here")
    );

    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}
    eventually_async("the connection's access-log line", || async {
        let line = proxy
            .access_log()
            .into_iter()
            .find(|l| l["status"] == 101 && l.get("upgraded").is_some())?;
        Some(line)
    })
    .await;
    let line = proxy
        .access_log()
        .into_iter()
        .find(|l| l["status"] == 101)
        .unwrap();
    assert_eq!(line["routeKey"], "GET /chat", "{line}");
    let upgraded = &line["upgraded"];
    // The two messages, the close frame and the framing (client frames are masked).
    let from_client = upgraded["bytesFromClient"].as_u64().unwrap();
    let to_client = upgraded["bytesToClient"].as_u64().unwrap();
    assert!((100_015..100_100).contains(&from_client), "{line}");
    assert!((100_010..100_100).contains(&to_client), "{line}");
    assert!(upgraded["durationMs"].as_u64().is_some(), "{line}");
    assert_eq!(open_gauge(&client, &proxy).await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_is_refused_by_the_phases_before_any_backend_sees_it() {
    let Chat {
        echo,
        config: _config,
        proxy,
    } = Chat::start(&[]).await;

    // The throttle phase refuses a route with no rate to spend.
    let url = format!("ws://{}/dev/closed", proxy.addr());
    match tokio_tungstenite::connect_async(url).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 429),
        other => panic!("expected 429, got {:?}", other.map(|(_, r)| r.status())),
    }
    // No route: Amazon's 403 for a path nothing serves.
    let url = format!("ws://{}/dev/nowhere", proxy.addr());
    match tokio_tungstenite::connect_async(url).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("expected 403, got {:?}", other.map(|(_, r)| r.status())),
    }
    assert!(echo.handshakes.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_needs_the_api_key_a_route_requires() {
    const KEY: &str = "ws-key-00000000000000000000000001";
    let echo = EchoServer::start().await;
    let mut keyed = route("keyed", "chat", "GET", "/keyed", http(&echo.url("/ws")));
    keyed["spec"]["apiKeyRequired"] = json!(true);
    let config = ConfigDir::new();
    config.write(
        "api.yaml",
        &[
            dev_gateway("chat"),
            keyed,
            api_key("acme", KEY, true),
            usage_plan("basic", "chat", "dev", &["acme"]),
        ],
    );
    let proxy = Proxy::start_standalone(config.path(), &[]);
    let url = format!("ws://{}/dev/keyed", proxy.addr());

    match tokio_tungstenite::connect_async(url.clone()).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("expected 403, got {:?}", other.map(|(_, r)| r.status())),
    }
    assert!(echo.handshakes.lock().unwrap().is_empty());

    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("x-api-key", KEY.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    ws.send(Message::text("keyed")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("keyed"));
    // The line names the key's tenant, as for any request.
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}
    let line = eventually_async("the connection's access-log line", || async {
        proxy
            .access_log()
            .into_iter()
            .find(|l| l.get("upgraded").is_some())
    })
    .await;
    assert_eq!(line["apiKeyId"], "acme", "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_does_not_switch_protocols_answers_as_any_request() {
    // A plain HTTP backend answers the handshake with its own 200: the client gets it, and
    // no connection is relayed.
    let backend = tollgate_tests::backend::Backend::echo();
    let config = ConfigDir::new();
    config.write(
        "api.yaml",
        &[
            dev_gateway("chat"),
            route("plain", "chat", "GET", "/plain", http(&backend.url("/p"))),
        ],
    );
    let proxy = Proxy::start_standalone(config.path(), &[]);
    let url = format!("ws://{}/dev/plain", proxy.addr());
    match tokio_tungstenite::connect_async(url).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 200),
        other => panic!("expected 200, got {:?}", other.map(|(_, r)| r.status())),
    }
    // The backend was asked to upgrade, as the client asked.
    let received = backend.received();
    assert_eq!(received[0].echo["headers"]["upgrade"], json!(["websocket"]));
    // Over HTTP/2 a 200 would open the tunnel (RFC 8441): the client is told the
    // integration failed instead.
    let (status, ws) = h2_websocket(proxy.addr(), "/dev/plain").await;
    assert_eq!(status, 504);
    assert!(ws.is_none());
    let line = eventually_async("the refused HTTP/2 handshake's line", || async {
        proxy
            .access_log()
            .into_iter()
            .find(|l| l["protocol"] == "HTTP/2.0")
    })
    .await;
    let error = line["errorMessage"].as_str().unwrap_or_default();
    assert!(error.contains("with 200 OK, not 101"), "{line}");
    let client = Client::new();
    assert_eq!(open_gauge(&client, &proxy).await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sigterm_a_websocket_runs_until_the_drain_period_ends_then_gets_1001() {
    let Chat {
        echo,
        config: _config,
        mut proxy,
    } = Chat::start(&["--drain-seconds", "3"]).await;
    let url = format!("ws://{}/dev/chat", proxy.addr());
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();

    proxy.terminate();
    eventually_async("the proxy to start draining", || async {
        let lines = proxy.stderr_lines();
        lines.iter().any(|l| l.contains("draining")).then_some(())
    })
    .await;
    // Draining: no new connection, but the open WebSocket still carries messages.
    assert!(tokio::net::TcpStream::connect(proxy.addr()).await.is_err());
    ws.send(Message::text("during the drain")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("during the drain")
    );
    // The drain waited for it, and ended it when its period was over, with 1001 `going
    // away` to both sides.
    let closed = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                other => panic!("the connection ended without a close frame: {other:?}"),
            }
        }
    })
    .await
    .expect("the WebSocket outlived the drain period");
    let frame = closed.expect("a close frame with a code");
    assert_eq!(u16::from(frame.code), 1001);
    assert_eq!(frame.reason.as_str(), "going away");
    eventually_async("the backend to get its close frame", || async {
        (echo.closes.lock().unwrap().as_slice() == [1001]).then_some(())
    })
    .await;
    let lines = proxy.stderr_lines();
    assert!(
        lines.iter().any(|l| l.contains("drain period over")),
        "the drain did not wait for the WebSocket: {lines:?}"
    );
    assert!(proxy.wait_exit(Duration::from_secs(15)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_counts_against_max_connections_while_it_is_open() {
    let Chat {
        echo: _echo,
        config: _config,
        proxy,
    } = Chat::start(&["--max-connections", "1"]).await;
    let url = format!("ws://{}/dev/chat", proxy.addr());
    let (mut ws, _) = tokio_tungstenite::connect_async(url.clone()).await.unwrap();

    // The relayed connection holds the only place: a second client is turned away.
    assert!(tokio_tungstenite::connect_async(url.clone()).await.is_err());
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}
    drop(ws);
    // Its place is free once it has ended.
    eventually_async("a new connection to be served", || async {
        tokio_tungstenite::connect_async(url.clone())
            .await
            .ok()
            .map(|_| ())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_passes_through_the_tls_listener_and_outlives_a_certificate_renewal() {
    let ca = Ca::new("websocket test CA");
    let certificate = ca.server(&["localhost"]);
    let default = DefaultCertificate::write(&certificate);
    let (tls, cert, key) = (default.listen, &default.cert, &default.key);
    let args = default.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let Chat {
        echo,
        config: _config,
        proxy: _proxy,
    } = Chat::start(&args).await;

    let (stream, handshake) = TlsClient::http1(&[&ca.pem])
        .connect(tls, "localhost")
        .await
        .unwrap();
    assert_eq!(handshake.alpn.as_deref(), Some(&b"http/1.1"[..]));
    let (mut ws, response) = tokio_tungstenite::client_async("wss://localhost/dev/chat", stream)
        .await
        .expect("the handshake over TLS");
    assert_eq!(response.status(), 101);
    ws.send(Message::text("over TLS")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("over TLS"));
    // The backend was told the client came over HTTPS.
    let handshake = echo.handshakes.lock().unwrap()[0].clone();
    assert_eq!(handshake.headers["x-forwarded-proto"], "https");

    // The default certificate is renewed under the open WebSocket: new handshakes get the
    // new one, and the WebSocket carries on.
    let renewed = ca.server(&["localhost"]);
    std::fs::write(key, &renewed.key_pem).unwrap();
    std::fs::write(cert, &renewed.cert_pem).unwrap();
    eventually_async("the renewed certificate to be served", || async {
        let (_, handshake) = TlsClient::http1(&[&ca.pem])
            .connect(tls, "localhost")
            .await
            .ok()?;
        (handshake.leaf == renewed.der).then_some(())
    })
    .await;
    ws.send(Message::text("after the rotation")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("after the rotation")
    );

    // HTTP/2 over TLS: extended CONNECT on a connection that chose h2 by ALPN.
    let (stream, handshake) = TlsClient::trusting(&[&ca.pem])
        .connect(tls, "localhost")
        .await
        .unwrap();
    assert_eq!(handshake.alpn.as_deref(), Some(&b"h2"[..]));
    let url = format!("https://localhost:{}/dev/chat", tls.port());
    let (status, ws) = h2_websocket_over(stream, &url).await;
    assert_eq!(status, 200);
    let mut ws = ws.unwrap();
    ws.send(Message::text("h2 over TLS")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("h2 over TLS")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_over_http2_extended_connect_reaches_an_http11_backend() {
    let Chat {
        echo,
        config: _config,
        proxy,
    } = Chat::start(&[]).await;

    let (status, ws) = h2_websocket(proxy.addr(), "/dev/chat").await;
    assert_eq!(status, 200);
    let mut ws = ws.unwrap();
    ws.send(Message::text("over h2")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("over h2"));
    let big = vec![1u8; 70_000];
    ws.send(Message::binary(big.clone())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(big));
    // The backend got an HTTP/1.1 handshake with a key of the proxy's making.
    let handshake = echo.handshakes.lock().unwrap()[0].clone();
    assert_eq!(handshake.headers["upgrade"], "websocket");
    assert_eq!(handshake.headers["sec-websocket-version"], "13");
    assert!(handshake.headers.contains_key("sec-websocket-key"));
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}

    // The phases refuse an HTTP/2 handshake as they do an HTTP/1.1 one.
    let (status, _) = h2_websocket(proxy.addr(), "/dev/closed").await;
    assert_eq!(status, 429);
    eventually_async("the HTTP/2 WebSocket's access-log line", || async {
        proxy
            .access_log()
            .into_iter()
            .find(|l| l["protocol"] == "HTTP/2.0" && l.get("upgraded").is_some())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_that_carries_nothing_for_the_idle_timeout_is_closed() {
    let Chat {
        echo: _echo,
        config: _config,
        proxy,
    } = Chat::start(&["--websocket-idle-timeout-seconds", "1"]).await;
    let url = format!("ws://{}/dev/chat", proxy.addr());
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::text("once")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("once"));

    // Then nothing, either way: the proxy closes the connection.
    let closed = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    assert!(closed.is_ok(), "an idle WebSocket was kept open");
    let line = eventually_async("the connection's access-log line", || async {
        proxy
            .access_log()
            .into_iter()
            .find(|l| l.get("upgraded").is_some())
    })
    .await;
    let error = line["errorMessage"].as_str().unwrap_or_default();
    assert!(error.contains("nothing sent either way"), "{line}");
}
