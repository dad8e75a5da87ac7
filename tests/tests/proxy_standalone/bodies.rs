//! Bodies on their way through the proxy, against clients and backends that misbehave:
//! request bodies stream to HTTP backends; a client that stops sending gets 408; bodies held
//! in memory share a budget (503 past it); a backend's response body is cut off at the
//! integration timeout; and the access log says how many bytes a client really received.

use std::io::{Read, Write};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};
use tollgate_tests::backend::{RawBackend, read_head};
use tollgate_tests::client::{connect, peer_closes, read_response};
use tollgate_tests::config::{dev_gateway, http, mock, route};
use tollgate_tests::wait::eventually;

use crate::{Running, sample_value, serve};

const HOST: &str = "bodies.default.localhost";

fn post_head(path: &str, length: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n"
    )
}

fn proxy_for(backend_url: &str, timeout_millis: u32, extra_args: &[&str]) -> Running {
    let mut upload = route("upload", "bodies", "POST", "/upload", http(backend_url));
    upload["spec"]["integration"]["timeoutMillis"] = json!(timeout_millis);
    serve(
        &[
            dev_gateway("bodies"),
            upload,
            route(
                "stash",
                "bodies",
                "POST",
                "/stash",
                mock(200, r#"{"stashed":true}"#),
            ),
        ],
        extra_args,
    )
}

/// An unlabelled sample's value.
fn metric(proxy: &Running, name: &str) -> f64 {
    metric_labelled(proxy, name, "")
}

/// The value of the first sample of `name` whose labels contain `label` ("": no labels).
fn metric_labelled(proxy: &Running, name: &str, label: &str) -> f64 {
    let text = proxy.admin_get("/metrics").text();
    text.lines()
        .find(|l| {
            let rest = l.strip_prefix(name).unwrap_or("");
            if label.is_empty() {
                rest.starts_with(' ')
            } else {
                rest.starts_with('{') && rest.contains(label)
            }
        })
        .map(sample_value)
        .unwrap_or_else(|| panic!("no sample {name}{{{label}}} in\n{text}"))
}

/// A backend that reports each request head as it arrives, then reads the declared body and
/// answers `ok`.
fn head_reporting_backend() -> (RawBackend, mpsc::Receiver<String>) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let backend = RawBackend::start(move |mut stream| {
        let Ok((head, mut body)) = read_head(&mut stream) else {
            return;
        };
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        let _ = tx.lock().unwrap().send(head);
        let mut chunk = [0u8; 65536];
        while body.len() < length {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
            }
        }
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    });
    (backend, rx)
}

#[test]
fn request_bodies_stream_to_http_backends_as_they_arrive() {
    let (backend, heads) = head_reporting_backend();
    let proxy = proxy_for(&backend.url("/in"), 29_000, &[]);

    let length = 400_000;
    let mut client = connect(proxy.addr());
    client
        .write_all(post_head("/dev/upload", length).as_bytes())
        .unwrap();
    client.write_all(&vec![b'a'; length / 2]).unwrap();
    // Half the body is sent and the client pauses: a proxy that streams has already opened the
    // backend request; one that buffers waits for the rest.
    let head = heads
        .recv_timeout(Duration::from_secs(10))
        .expect("the backend got nothing while the client was still sending its body");
    assert!(head.starts_with("POST /in HTTP/1.1"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("content-length: {length}")),
        "the declared length is passed on: {head}"
    );

    client.write_all(&vec![b'b'; length - length / 2]).unwrap();
    let response = read_response(&mut client).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "ok");
}

#[test]
fn a_client_that_stops_sending_its_body_gets_408_and_holds_nothing() {
    let (backend, _heads) = head_reporting_backend();
    let proxy = proxy_for(
        &backend.url("/in"),
        29_000,
        &["--body-read-timeout-seconds", "1"],
    );

    // Ten bytes short of what it declared, on a route whose body is read whole (a mock) and
    // on one whose body streams to a backend.
    for path in ["/dev/stash", "/dev/upload"] {
        let mut client = connect(proxy.addr());
        client.write_all(post_head(path, 1000).as_bytes()).unwrap();
        client.write_all(&[b'x'; 990]).unwrap();
        let response = read_response(&mut client)
            .unwrap_or_else(|e| panic!("{path}: no answer to a client that stopped sending: {e}"));
        assert_eq!(response.status, 408, "{path}: {}", response.text());
        assert_eq!(response.json(), json!({"message": "Request Timeout"}));
        let id = response.header("x-amzn-requestid").unwrap();
        let line = proxy.access_log_entry(&id);
        assert_eq!(line["status"], 408, "{line}");
    }
    assert_eq!(metric(&proxy, "tollgate_buffered_request_body_bytes"), 0.0);
}

#[test]
fn bodies_held_in_memory_share_a_budget() {
    let (backend, _heads) = head_reporting_backend();
    let proxy = proxy_for(
        &backend.url("/in"),
        29_000,
        &["--max-buffered-body-bytes", "1000000"],
    );

    // A holds 800,000 bytes of a 900,000-byte body.
    let mut a = connect(proxy.addr());
    a.write_all(post_head("/dev/stash", 900_000).as_bytes())
        .unwrap();
    a.write_all(&vec![b'a'; 800_000]).unwrap();
    eventually("A's bytes counted in the budget", || {
        (metric(&proxy, "tollgate_buffered_request_body_bytes") >= 800_000.0).then_some(())
    });

    // B's 300,000 bytes do not fit beside them: refused from its head, before it sends them.
    let mut b = connect(proxy.addr());
    b.write_all(post_head("/dev/stash", 300_000).as_bytes())
        .unwrap();
    let refused = read_response(&mut b).unwrap();
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.json(), json!({"message": "Service Unavailable"}));
    assert_eq!(
        metric(&proxy, "tollgate_request_body_budget_refusals_total"),
        1.0
    );
    assert!(
        proxy
            .stderr_lines()
            .iter()
            .any(|l| l.contains("buffered-body budget is spent")),
        "the refusal is logged"
    );

    // Streamed bodies take nothing from it: an upload of the same size goes through.
    let mut streamed = connect(proxy.addr());
    streamed
        .write_all(post_head("/dev/upload", 300_000).as_bytes())
        .unwrap();
    streamed.write_all(&vec![b's'; 300_000]).unwrap();
    assert_eq!(read_response(&mut streamed).unwrap().status, 200);

    // A finishes and is served; its bytes are given back, and B fits now.
    a.write_all(&vec![b'a'; 100_000]).unwrap();
    let served = read_response(&mut a).unwrap();
    assert_eq!(served.status, 200);
    assert_eq!(served.json(), json!({"stashed": true}));
    let mut b = connect(proxy.addr());
    b.write_all(post_head("/dev/stash", 300_000).as_bytes())
        .unwrap();
    b.write_all(&vec![b'b'; 300_000]).unwrap();
    assert_eq!(read_response(&mut b).unwrap().status, 200);
    assert_eq!(metric(&proxy, "tollgate_buffered_request_body_bytes"), 0.0);
}

/// Sends a GET on a raw connection and reads the response head; returns the connection, the
/// head and the request id.
fn get_head(proxy: &Running, path: &str) -> (std::net::TcpStream, String, String) {
    let mut client = connect(proxy.addr());
    client
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes())
        .unwrap();
    let (head, _) = read_head(&mut client).expect("a response head");
    let id = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-amzn-requestid:")
                .map(|v| v.trim().to_string())
        })
        .expect("a request id");
    (client, head, id)
}

fn backend_sending(then_close: bool) -> RawBackend {
    RawBackend::start(move |mut stream| {
        if read_head(&mut stream).is_err() {
            return;
        }
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
        if !then_close {
            // Stalls far past the integration timeout, connection open.
            std::thread::sleep(Duration::from_secs(60));
        }
    })
}

#[test]
fn a_response_body_that_stalls_is_cut_off_at_the_integration_timeout() {
    let backend = backend_sending(false);
    let mut stalled = route(
        "stalled",
        "bodies",
        "GET",
        "/stalled",
        http(&backend.url("/")),
    );
    stalled["spec"]["integration"]["timeoutMillis"] = json!(1000);
    let proxy = serve(&[dev_gateway("bodies"), stalled], &[]);

    let (mut client, head, id) = get_head(&proxy, "/dev/stalled");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        peer_closes(&mut client, Duration::from_secs(20)),
        "the client was kept waiting on a backend that stalled mid-body past the 1 s timeout"
    );
    let line: Value = proxy.access_log_entry(&id);
    assert_eq!(
        line["status"], 200,
        "the status the client received: {line}"
    );
    assert_eq!(
        line["responseLength"], 10,
        "the bytes the client received: {line}"
    );
    let error = line["errorMessage"].as_str().unwrap_or_default();
    assert!(error.contains("timeout"), "{line}");
}

#[test]
fn a_response_body_cut_short_is_logged_with_the_bytes_sent() {
    let backend = backend_sending(true);
    let proxy = serve(
        &[
            dev_gateway("bodies"),
            route("short", "bodies", "GET", "/short", http(&backend.url("/"))),
        ],
        &[],
    );

    let (mut client, head, id) = get_head(&proxy, "/dev/short");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(peer_closes(&mut client, Duration::from_secs(20)));
    let line = proxy.access_log_entry(&id);
    assert_eq!(
        line["responseLength"], 10,
        "logged as the 100 bytes declared, not the 10 sent: {line}"
    );
    let error = line["errorMessage"].as_str().unwrap_or_default();
    assert!(error.contains("after 10 bytes"), "{line}");
    assert_eq!(
        metric_labelled(&proxy, "tollgate_upstream_errors_total", "kind=\"body\""),
        1.0
    );
}
