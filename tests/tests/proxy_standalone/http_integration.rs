//! HTTP integrations against real backends: what the backend receives, connection reuse,
//! timeouts and failures, HTTP/2 over TLS, and weighted backends.

use std::time::Duration;

use serde_json::json;
use tollgate_tests::backend::Backend;
use tollgate_tests::client::{Client, raw_exchange};
use tollgate_tests::config::{dev_gateway, gateway, http, route};
use tollgate_tests::proxy::free_port;

use crate::serve;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_receives_the_mapped_request_and_forwarded_headers() {
    let backend = Backend::echo();
    let mut pet = route(
        "pet",
        "pets",
        "GET",
        "/pets/{petId}",
        json!({"http": {
            "url": backend.url("/v1/pets/{petId}?src=${stageVariables.src}"),
            "requestHeaders": {"X-Pet": "{petId}"},
        }}),
    );
    pet["spec"]["integration"]["timeoutMillis"] = json!(10000);
    let proxy = serve(
        &[
            gateway(
                "pets",
                json!([{"name": "dev", "variables": {"src": "tollgate"}}]),
            ),
            pet,
            route("echo", "pets", "POST", "/echo", http(&backend.url("/echo"))),
        ],
        &[],
    );
    let client = Client::new();

    let response = client
        .get(
            &proxy.url("/dev/pets/42?q=1"),
            &[
                ("Host", "pets.default.localhost"),
                ("X-Custom", "end-to-end"),
            ],
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let seen = response.json();
    assert_eq!(seen["method"], "GET");
    assert_eq!(seen["path"], "/v1/pets/42");
    let query: Vec<&str> = seen["query"].as_str().unwrap().split('&').collect();
    assert!(query.contains(&"src=tollgate"), "query {query:?}");
    assert!(query.contains(&"q=1"), "query {query:?}");
    let headers = &seen["headers"];
    assert_eq!(headers["x-pet"], json!(["42"]));
    assert_eq!(headers["x-custom"], json!(["end-to-end"]));
    assert_eq!(headers["x-forwarded-for"], json!(["127.0.0.1"]));
    assert_eq!(headers["x-forwarded-proto"], json!(["http"]));
    assert_eq!(
        headers["x-forwarded-host"],
        json!(["pets.default.localhost"])
    );
    let request_id = response.header("x-amzn-requestid").expect("request id");
    assert_eq!(headers["x-request-id"], json!([request_id]));
    // The backend's own Host, not the client's.
    assert_eq!(headers["host"], json!([backend.addr().to_string()]));

    // A client's X-Forwarded-For is extended, not replaced.
    let chained = client
        .get(
            &proxy.url("/dev/pets/7"),
            &[("X-Forwarded-For", "203.0.113.9")],
        )
        .await;
    assert_eq!(
        chained.json()["headers"]["x-forwarded-for"],
        json!(["203.0.113.9, 127.0.0.1"])
    );

    // The body and method reach the backend.
    let posted = client
        .request(
            "POST",
            &proxy.url("/dev/echo"),
            &[("Content-Type", "text/plain")],
            "hello, backend",
        )
        .await;
    assert_eq!(posted.status, 200);
    let seen = posted.json();
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["body"], "hello, backend");
    assert_eq!(seen["headers"]["content-type"], json!(["text/plain"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_do_not_reach_the_backend() {
    let backend = Backend::echo();
    let proxy = serve(
        &[
            dev_gateway("pets"),
            route(
                "pet",
                "pets",
                "GET",
                "/pets/{petId}",
                http(&backend.url("/pets/{petId}")),
            ),
        ],
        &[],
    );
    // Sent raw: a client library would manage some of these headers itself.
    let request = "GET /dev/pets/7 HTTP/1.1\r\n\
                   Host: pets.default.localhost\r\n\
                   Connection: close, X-Hop\r\n\
                   X-Hop: 1\r\n\
                   Keep-Alive: timeout=5\r\n\
                   TE: trailers\r\n\
                   Upgrade: h2c\r\n\
                   Proxy-Authorization: Basic dXNlcjpwYXNz\r\n\
                   Proxy-Connection: keep-alive\r\n\
                   X-Custom: kept\r\n\
                   \r\n";
    let response = raw_exchange(proxy.addr(), request.as_bytes());
    assert_eq!(response.status, 200, "{}", response.text());
    let headers = response.json()["headers"].clone();
    for hop in [
        "connection",
        "x-hop",
        "keep-alive",
        "te",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
    ] {
        assert!(
            headers.get(hop).is_none(),
            "the backend saw hop-by-hop header {hop}: {headers}"
        );
    }
    assert_eq!(headers["x-custom"], json!(["kept"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_connections_are_kept_alive_and_reused() {
    let backend = Backend::echo();
    let proxy = serve(
        &[
            dev_gateway("pool"),
            route(
                "all",
                "pool",
                "ANY",
                "/{proxy+}",
                http(&backend.url("/{proxy}")),
            ),
        ],
        &[],
    );
    let client = Client::new();
    for i in 0..50 {
        let response = client.get(&proxy.url(&format!("/dev/item/{i}")), &[]).await;
        assert_eq!(response.status, 200, "request {i}: {}", response.text());
        assert_eq!(response.json()["path"], format!("/item/{i}"));
    }
    assert_eq!(backend.received().len(), 50);
    let connections = backend.connections();
    assert!(
        connections <= 5,
        "50 sequential requests opened {connections} backend connections"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_unreachable_backends_get_gateway_errors() {
    let slow = Backend::delayed(Duration::from_secs(2));
    let nothing_there = free_port();
    let mut slow_route = route("slow", "edge", "GET", "/slow", http(&slow.url("/slow")));
    slow_route["spec"]["integration"]["timeoutMillis"] = json!(200);
    let mut gone_route = route(
        "gone",
        "edge",
        "GET",
        "/gone",
        http(&format!("http://127.0.0.1:{nothing_there}/gone")),
    );
    gone_route["spec"]["integration"]["timeoutMillis"] = json!(10000);
    let proxy = serve(&[dev_gateway("edge"), slow_route, gone_route], &[]);
    let client = Client::new();

    let timed_out = client.get(&proxy.url("/dev/slow"), &[]).await;
    assert_eq!(timed_out.status, 504);
    assert_eq!(
        timed_out.text(),
        r#"{"message":"Endpoint request timed out"}"#
    );
    assert_eq!(
        timed_out.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        slow.received().len(),
        1,
        "the request did reach the backend"
    );

    let refused = client.get(&proxy.url("/dev/gone"), &[]).await;
    assert_eq!(refused.status, 504);
    assert_eq!(refused.text(), r#"{"message":"Internal server error"}"#);

    // The failures are counted by kind.
    let metrics = proxy.admin_get("/metrics").text();
    for kind in ["timeout", "connect"] {
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with("tollgate_upstream_errors_total{")
                    && l.contains(&format!("kind=\"{kind}\""))
            })
            .unwrap_or_else(|| panic!("no upstream error of kind {kind}:\n{metrics}"));
        assert_eq!(crate::sample_value(line), 1.0, "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_backends_are_reached_over_http2() {
    let backend = Backend::tls_h2();
    let config = tollgate_tests::config::ConfigDir::with(
        "resources.yaml",
        &[
            dev_gateway("secure"),
            route(
                "all",
                "secure",
                "ANY",
                "/{proxy+}",
                http(&backend.url("/h2/{proxy}")),
            ),
        ],
    );
    let ca = backend.ca_file();
    let proxy = tollgate_tests::proxy::Proxy::start_standalone(
        config.path(),
        &["--upstream-ca-file", ca.to_str().unwrap()],
    );
    let client = Client::new();
    for i in 0..3 {
        let response = client
            .request(
                "POST",
                &proxy.url(&format!("/dev/x/{i}?a=b")),
                &[],
                "over h2",
            )
            .await;
        assert_eq!(response.status, 200, "{}", response.text());
        let seen = response.json();
        assert_eq!(seen["version"], "HTTP/2.0");
        assert_eq!(seen["path"], format!("/h2/x/{i}"));
        assert_eq!(seen["query"], "a=b");
        assert_eq!(seen["body"], "over h2");
    }
    // HTTP/2 multiplexes: one connection carries them all.
    assert_eq!(backend.connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_backends_share_traffic_by_weight() {
    let heavy = Backend::named("heavy");
    let light = Backend::named("light");
    let proxy = serve(
        &[
            dev_gateway("split"),
            route(
                "split",
                "split",
                "GET",
                "/split",
                json!({"http": {"backends": [
                    {"url": heavy.url("/split"), "weight": 3},
                    {"url": light.url("/split"), "weight": 1},
                ]}}),
            ),
        ],
        &[],
    );
    let client = Client::new();
    const N: usize = 800;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let client = client.clone();
        let url = proxy.url("/dev/split");
        tasks.push(tokio::spawn(async move {
            let mut heavy = 0usize;
            for _ in 0..N / 4 {
                let response = client.get(&url, &[]).await;
                assert_eq!(response.status, 200, "{}", response.text());
                match response.json()["server"].as_str() {
                    Some("heavy") => heavy += 1,
                    Some("light") => {}
                    other => panic!("answered by {other:?}"),
                }
            }
            heavy
        }));
    }
    let mut heavy_count = 0;
    for task in tasks {
        heavy_count += task.await.unwrap();
    }
    assert_eq!(heavy.received().len(), heavy_count);
    assert_eq!(light.received().len(), N - heavy_count);
    // Binomial(800, 0.75): mean 600, sigma ~12.2; allow five sigma.
    let (mean, sigma) = (N as f64 * 0.75, (N as f64 * 0.75 * 0.25).sqrt());
    let deviation = (heavy_count as f64 - mean).abs();
    assert!(
        deviation <= 5.0 * sigma,
        "heavy served {heavy_count} of {N}, expected {mean} +- {:.0}",
        5.0 * sigma
    );
}

/// A backend that answers one request per connection without `Connection: close`, then
/// closes the connection when the next request arrives, unanswered: what a backend closing
/// idle keep-alive connections looks like to a proxy that writes onto one just then.
fn one_answer_per_connection() -> (
    tollgate_tests::backend::RawBackend,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let connections = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    let backend = tollgate_tests::backend::RawBackend::start(move |mut stream| {
        counted.fetch_add(1, Ordering::SeqCst);
        if tollgate_tests::backend::read_head(&mut stream).is_err() {
            return;
        }
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello");
        // The next request, read and left unanswered: the connection closes under it.
        let _ = tollgate_tests::backend::read_head(&mut stream);
    });
    (backend, connections)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gets_on_connections_the_backend_closed_are_sent_again_and_counted() {
    let (backend, connections) = one_answer_per_connection();
    // One worker: every request after the first finds the last one's connection pooled.
    let proxy = serve(
        &[
            dev_gateway("flaky"),
            route(
                "get",
                "flaky",
                "GET",
                "/hello",
                http(&backend.url("/hello")),
            ),
        ],
        &["--worker-threads", "1"],
    );
    let client = Client::new();
    for i in 0..3 {
        if i > 0 {
            // Idle long enough (1 s) for the proxy to expect a backend closing it, and keep a
            // copy of the request to send again.
            tokio::time::sleep(Duration::from_millis(1_100)).await;
        }
        let response = client.get(&proxy.url("/dev/hello"), &[]).await;
        assert_eq!(response.status, 200, "request {i}: {}", response.text());
        assert_eq!(response.text(), "hello");
    }
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "each request after the first went to a new connection"
    );

    let metrics = proxy.admin_get("/metrics").text();
    let sample = |prefix: &str| {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}:\n{metrics}"));
        crate::sample_value(line)
    };
    assert_eq!(
        sample(r#"tollgate_upstream_calls_total{kind="integration",outcome="answered"}"#),
        3.0
    );
    assert_eq!(
        sample(r#"tollgate_upstream_retries_total{kind="integration"}"#),
        2.0
    );
    assert_eq!(sample("tollgate_upstream_connections_opened_total"), 3.0);
}
