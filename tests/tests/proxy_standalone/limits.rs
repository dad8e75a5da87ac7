//! Amazon API Gateway's limits, as a client meets them: a 10,240-byte request head, a 10 MB
//! body, and clients too slow to send their request.

use std::io::Write;
use std::time::Duration;

use serde_json::json;
use tollgate_tests::backend::Backend;
use tollgate_tests::client::{Client, connect, peer_closes, raw_exchange, read_response};
use tollgate_tests::config::{dev_gateway, http, mock, route};

use crate::{Running, serve};

const TOO_LONG: &str = r#"{"message":"Request Too Long"}"#;
const LIMIT: usize = 10 * 1024 * 1024;

fn echo_proxy(backend: &Backend, extra_args: &[&str]) -> Running {
    serve(
        &[
            dev_gateway("limits"),
            route(
                "echo",
                "limits",
                "POST",
                "/echo",
                http(&backend.url("/echo")),
            ),
            route(
                "hello",
                "limits",
                "GET",
                "/hello",
                mock(200, r#"{"ok":true}"#),
            ),
        ],
        extra_args,
    )
}

#[test]
fn request_heads_over_10240_bytes_get_431() {
    let backend = Backend::echo();
    let proxy = echo_proxy(&backend, &[]);

    let big = "a".repeat(11_000);
    let request = format!(
        "GET /dev/hello HTTP/1.1\r\nHost: limits.default.localhost\r\nX-Big: {big}\r\nConnection: close\r\n\r\n"
    );
    let response = raw_exchange(proxy.addr(), request.as_bytes());
    assert_eq!(
        response.status,
        431,
        "a {}-byte request head was answered {} (limit 10,240 bytes)",
        request.len(),
        response.status
    );

    // A head within the limit is served.
    let fits = "a".repeat(9_000);
    let request = format!(
        "GET /dev/hello HTTP/1.1\r\nHost: limits.default.localhost\r\nX-Big: {fits}\r\nConnection: close\r\n\r\n"
    );
    let response = raw_exchange(proxy.addr(), request.as_bytes());
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json(), json!({"ok": true}));
}

#[test]
fn bodies_over_10_mb_get_413_with_or_without_content_length() {
    let backend = Backend::echo();
    let proxy = echo_proxy(&backend, &[]);

    // Declared too long: refused from the head alone, the body need not be sent.
    let head = format!(
        "POST /dev/echo HTTP/1.1\r\nHost: limits.default.localhost\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        LIMIT + 1
    );
    let response = raw_exchange(proxy.addr(), head.as_bytes());
    assert_eq!(response.status, 413);
    assert_eq!(response.text(), TOO_LONG);

    // Chunked, no length: refused once the body passes the limit. Exactly one byte too many
    // is sent, then nothing, and the answer is read.
    let mut stream = connect(proxy.addr());
    stream
        .write_all(
            b"POST /dev/echo HTTP/1.1\r\nHost: limits.default.localhost\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
    framed.extend_from_slice(&chunk);
    framed.extend_from_slice(b"\r\n");
    for _ in 0..LIMIT / chunk.len() {
        stream.write_all(&framed).unwrap();
    }
    stream.write_all(b"1\r\nx\r\n").unwrap();
    let response = read_response(&mut stream).expect("a response to the chunked body");
    assert_eq!(response.status, 413);
    assert_eq!(response.text(), TOO_LONG);

    // Bodies stream to HTTP backends: the backend may see the chunked request begin, but
    // never a body past the limit (the proxy aborts the upstream request at it).
    for received in backend.received() {
        assert!(
            received.echo["bodyError"].is_string(),
            "a too-long body reached the backend whole: {}",
            received.echo
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_under_the_limit_reaches_the_backend_whole() {
    let backend = Backend::echo();
    let proxy = echo_proxy(&backend, &[]);
    let body: String = (0..1024 * 1024)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let response = Client::new()
        .request("POST", &proxy.url("/dev/echo"), &[], body.clone())
        .await;
    assert_eq!(response.status, 200);
    let seen = response.json();
    assert_eq!(seen["body"].as_str().map(str::len), Some(body.len()));
    assert!(seen["body"] == body.as_str(), "the body arrived altered");
    assert_eq!(
        seen["headers"]["content-length"],
        json!([body.len().to_string()])
    );
}

#[test]
fn a_client_that_stops_mid_head_is_disconnected() {
    let backend = Backend::echo();
    let proxy = echo_proxy(&backend, &["--header-read-timeout-seconds", "1"]);

    let mut stream = connect(proxy.addr());
    stream
        .write_all(b"GET /dev/hello HTTP/1.1\r\nHost: limits.default.localhost\r\nX-Slow: ")
        .unwrap();
    assert!(
        peer_closes(&mut stream, Duration::from_secs(15)),
        "the proxy kept a half-sent request open"
    );

    // The proxy still serves well-behaved clients.
    let response = raw_exchange(
        proxy.addr(),
        b"GET /dev/hello HTTP/1.1\r\nHost: limits.default.localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(response.status, 200);
}

#[test]
fn a_client_that_sends_nothing_is_disconnected() {
    let backend = Backend::echo();
    let proxy = echo_proxy(&backend, &["--header-read-timeout-seconds", "1"]);

    // Connected, and not one byte sent: holds a connection as surely as a half-sent head.
    let mut silent = connect(proxy.addr());
    // Fewer bytes than the HTTP/2 preface, all matching it.
    let mut preface = connect(proxy.addr());
    preface.write_all(b"PRI * HTTP/2.0").unwrap();
    assert!(
        peer_closes(&mut silent, Duration::from_secs(15)),
        "the proxy kept open a connection that sent nothing, past --header-read-timeout-seconds"
    );
    assert!(
        peer_closes(&mut preface, Duration::from_secs(15)),
        "the proxy kept open a connection that sent part of the HTTP/2 preface"
    );
}
