//! The listener and the request head, as an attacker or an unlucky client meets them: idle
//! HTTP/2 connections, a full proxy, many headers, long URIs, the host a request is for, and
//! keep-alive connections across a shutdown.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::task::JoinHandle;
use tollgate_tests::backend::Backend;
use tollgate_tests::client::{Response, connect, peer_closes, raw_exchange, read_response};
use tollgate_tests::config::{dev_gateway, http, mock, route};
use tollgate_tests::wait::{eventually, eventually_async};

use crate::{Running, sample_value, serve};

const HOST: &str = "edge.default.localhost";

fn hello_proxy(extra_args: &[&str]) -> Running {
    serve(
        &[
            dev_gateway("edge"),
            route(
                "hello",
                "edge",
                "GET",
                "/hello",
                mock(200, r#"{"ok":true}"#),
            ),
        ],
        extra_args,
    )
}

/// An HTTP/2 connection with prior knowledge (h2c); the task ends when the connection does.
/// hyper's client answers the server's PINGs, as a live client does.
async fn h2c(addr: SocketAddr) -> (SendRequest<Full<Bytes>>, JoinHandle<()>) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    (
        sender,
        tokio::spawn(async move {
            let _ = conn.await;
        }),
    )
}

async fn h2_send(
    sender: &mut SendRequest<Full<Bytes>>,
    request: http::Request<Full<Bytes>>,
) -> Response {
    let response = sender.send_request(request).await.expect("h2 response");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("h2 body").to_bytes();
    Response {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

fn h2_get(addr: SocketAddr, path: &str) -> http::request::Builder {
    http::Request::get(format!("http://{HOST}:{}{path}", addr.port()))
}

/// One request on a new connection, or why there was no response.
fn try_exchange(addr: SocketAddr, request: &[u8]) -> io::Result<Response> {
    let mut stream = connect(addr);
    stream.write_all(request)?;
    read_response(&mut stream)
}

fn get_hello(connection: &str) -> String {
    format!("GET /dev/hello HTTP/1.1\r\nHost: {HOST}\r\nConnection: {connection}\r\n\r\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connections_are_closed() {
    let proxy = hello_proxy(&["--header-read-timeout-seconds", "1"]);

    // Connected, settings exchanged, pings answered, and never a request.
    let (_silent, silent) = h2c(proxy.addr()).await;
    // One request, then nothing.
    let (mut used_sender, used) = h2c(proxy.addr()).await;
    let request = h2_get(proxy.addr(), "/dev/hello")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = h2_send(&mut used_sender, request).await;
    assert_eq!(response.status, 200, "{}", response.text());

    for (what, connection) in [("never used", silent), ("used once", used)] {
        tokio::time::timeout(Duration::from_secs(20), connection)
            .await
            .unwrap_or_else(|_| {
                panic!("an idle HTTP/2 connection ({what}) was kept open past the idle timeout")
            })
            .unwrap();
    }

    // New connections are served as before.
    let (mut sender, _connection) = h2c(proxy.addr()).await;
    let request = h2_get(proxy.addr(), "/dev/hello")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(h2_send(&mut sender, request).await.status, 200);
}

#[test]
fn connections_past_max_connections_are_refused_until_others_close() {
    let proxy = hello_proxy(&[
        "--max-connections",
        "3",
        "--header-read-timeout-seconds",
        "30",
    ]);

    // Three kept-alive connections, each served once and left open.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect(proxy.addr());
        stream
            .write_all(get_hello("keep-alive").as_bytes())
            .unwrap();
        let response = read_response(&mut stream).expect("a held connection is served");
        assert_eq!(response.status, 200);
        held.push(stream);
    }

    // A fourth is closed without an answer, and the proxy says why.
    let refused = try_exchange(proxy.addr(), get_hello("close").as_bytes());
    assert!(
        refused.is_err(),
        "a connection past --max-connections was served: {refused:?}"
    );
    let metrics = proxy.admin_get("/metrics").text();
    let sample = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .map(sample_value)
            .unwrap_or_else(|| panic!("no {name} in:\n{metrics}"))
    };
    assert!(sample("tollgate_connections_refused_total") >= 1.0);
    assert_eq!(sample("tollgate_connections_open"), 3.0);
    eventually("a warning about the connection limit", || {
        proxy
            .stderr_lines()
            .iter()
            .any(|l| l.contains("WARN") && l.contains("max-connections"))
            .then_some(())
    });

    // Once they close, clients are served again.
    drop(held);
    let response = eventually("a connection to be served again", || {
        try_exchange(proxy.addr(), get_hello("close").as_bytes()).ok()
    });
    assert_eq!(response.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_headers_within_the_head_limit_are_served() {
    let proxy = hello_proxy(&[]);
    for (count, expected) in [(500, 200), (600, 431)] {
        // 9 bytes each: far more than 100 headers, the whole head under 10,240 bytes. Up to
        // 512 fields are served; more is 431, as a head over 10,240 bytes.
        let names: Vec<String> = (0..count).map(|i| format!("h{i:03}")).collect();

        let mut request =
            format!("GET /dev/hello HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n");
        for name in &names {
            request.push_str(&format!("{name}: 1\r\n"));
        }
        request.push_str("\r\n");
        assert!(request.len() < 10_240, "{} bytes", request.len());
        let response =
            tokio::task::block_in_place(|| raw_exchange(proxy.addr(), request.as_bytes()));
        assert_eq!(
            response.status,
            expected,
            "HTTP/1.1, {count} headers: {}",
            response.text()
        );

        let mut builder = h2_get(proxy.addr(), "/dev/hello");
        for name in &names {
            builder = builder.header(name.as_str(), "1");
        }
        let (mut sender, _connection) = h2c(proxy.addr()).await;
        let response = h2_send(&mut sender, builder.body(Full::new(Bytes::new())).unwrap()).await;
        assert_eq!(
            response.status,
            expected,
            "HTTP/2, {count} headers: {}",
            response.text()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_lines_over_the_head_limit_get_414() {
    let proxy = hello_proxy(&[]);
    for length in [11_000, 64 * 1024, 1024 * 1024] {
        let request = format!(
            "GET /dev/hello?q={} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n",
            "a".repeat(length)
        );
        let response =
            tokio::task::block_in_place(|| raw_exchange(proxy.addr(), request.as_bytes()));
        assert_eq!(
            (response.status, response.json()),
            (414, json!({"message": "Request-URI Too Long"})),
            "HTTP/1.1, a {length}-byte query"
        );
    }

    let (mut sender, _connection) = h2c(proxy.addr()).await;
    let path = format!("/dev/hello?q={}", "a".repeat(11_000));
    let request = h2_get(proxy.addr(), &path)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = h2_send(&mut sender, request).await;
    assert_eq!(
        (response.status, response.json()),
        (414, json!({"message": "Request-URI Too Long"})),
        "HTTP/2"
    );

    // The limit is on the request line: a short one is served.
    let response =
        tokio::task::block_in_place(|| raw_exchange(proxy.addr(), get_hello("close").as_bytes()));
    assert_eq!(response.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_is_told_the_host_routing_used() {
    let backend = Backend::echo();
    let proxy = serve(
        &[
            dev_gateway("alpha"),
            dev_gateway("beta"),
            route("a", "alpha", "GET", "/echo", http(&backend.url("/alpha"))),
            route("b", "beta", "GET", "/echo", http(&backend.url("/beta"))),
        ],
        &[],
    );
    let port = proxy.addr().port();
    let beta = format!("beta.default.localhost:{port}");

    // HTTP/1.1 absolute form: the target's authority wins over the Host header (RFC 9112,
    // section 3.2.2), for routing and for the backend alike.
    let request = format!(
        "GET http://{beta}/dev/echo HTTP/1.1\r\nHost: alpha.default.localhost\r\nConnection: close\r\n\r\n"
    );
    let response = tokio::task::block_in_place(|| raw_exchange(proxy.addr(), request.as_bytes()));
    assert_eq!(response.status, 200, "{}", response.text());
    let seen = response.json();
    assert_eq!(seen["path"], "/beta");
    assert_eq!(seen["headers"]["x-forwarded-host"], json!([beta]));

    // Two Host headers: which is meant cannot be told.
    let request = "GET /dev/echo HTTP/1.1\r\nHost: alpha.default.localhost\r\nHost: beta.default.localhost\r\nConnection: close\r\n\r\n";
    let response = tokio::task::block_in_place(|| raw_exchange(proxy.addr(), request.as_bytes()));
    assert_eq!(
        (response.status, response.json()),
        (400, json!({"message": "Bad Request"}))
    );

    // HTTP/2: the :authority.
    let (mut sender, _connection) = h2c(proxy.addr()).await;
    let request = http::Request::get(format!("http://{beta}/dev/echo"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = h2_send(&mut sender, request).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.json()["headers"]["x-forwarded-host"],
        json!([beta])
    );
    assert_eq!(
        backend.received().len(),
        2,
        "only the two unambiguous requests reach the backend"
    );
}

#[test]
fn after_sigterm_a_kept_alive_connection_gets_its_next_request_served() {
    let mut proxy = hello_proxy(&["--drain-seconds", "10"]);
    let mut stream = connect(proxy.addr());
    stream
        .write_all(get_hello("keep-alive").as_bytes())
        .unwrap();
    let first = read_response(&mut stream).unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(
        first.header("connection"),
        None,
        "kept alive before SIGTERM"
    );

    proxy.terminate();
    eventually("the proxy to start draining", || {
        proxy
            .stderr_lines()
            .iter()
            .any(|l| l.contains("draining"))
            .then_some(())
    });
    // The client knows nothing of the shutdown: its connection was kept alive.
    stream
        .write_all(get_hello("keep-alive").as_bytes())
        .unwrap();
    let next = read_response(&mut stream)
        .expect("the next request on a kept-alive connection is served during the drain");
    assert_eq!(next.status, 200);
    assert_eq!(next.header("connection").as_deref(), Some("close"));
    assert!(
        peer_closes(&mut stream, Duration::from_secs(15)),
        "the connection stays open after an answer with Connection: close"
    );
    let status = proxy.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "the proxy exited with {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_connections_are_served_during_the_shutdown_delay() {
    let mut proxy = hello_proxy(&["--shutdown-delay-seconds", "3", "--drain-seconds", "5"]);
    proxy.terminate();
    eventually_async("the proxy to see SIGTERM", || async {
        proxy
            .stderr_lines()
            .iter()
            .any(|l| l.contains("SIGTERM received"))
            .then_some(())
    })
    .await;
    // Endpoints still name the proxy for a while: a client that connects now is served.
    let response =
        tokio::task::block_in_place(|| try_exchange(proxy.addr(), get_hello("close").as_bytes()))
            .expect("a connection opened just after SIGTERM is served");
    assert_eq!(response.status, 200);
    let status = tokio::task::block_in_place(|| proxy.wait_exit(Duration::from_secs(30)));
    assert!(status.success(), "the proxy exited with {status}");
}
