//! What operators see: the JSON access log, the Prometheus metrics and the admin endpoints.

use std::io::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::channel::Channel;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tollgate_tests::backend::Backend;
use tollgate_tests::client::Client;
use tollgate_tests::config::{ConfigDir, dev_gateway, http, mock, route};
use tollgate_tests::proxy::Proxy;
use tollgate_tests::wait::{eventually, eventually_async};

use crate::{sample_value, serve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_metrics_and_admin_endpoints_describe_the_traffic() {
    let backend = Backend::echo();
    let proxy = serve(
        &[
            dev_gateway("obs"),
            route("ok", "obs", "GET", "/ok", mock(200, r#"{"ok":true}"#)),
            route(
                "item",
                "obs",
                "POST",
                "/items/{id}",
                http(&backend.url("/items/{id}")),
            ),
        ],
        &[],
    );
    let client = Client::new();

    let mut ok_ids = Vec::new();
    for _ in 0..3 {
        let r = client
            .get(&proxy.url("/dev/ok"), &[("User-Agent", "e2e-tests/1.0")])
            .await;
        assert_eq!(r.status, 200);
        ok_ids.push(r.header("x-amzn-requestid").unwrap());
    }
    let posted = client
        .request("POST", &proxy.url("/dev/items/9"), &[], "{\"n\":1}")
        .await;
    assert_eq!(posted.status, 200);
    let missing = client.get(&proxy.url("/dev/missing"), &[]).await;
    assert_eq!(missing.status, 403);

    // The access log: one JSON line per request, keyed by the request id the client got.
    let line = proxy.access_log_entry(&ok_ids[0]);
    assert_eq!(line["requestId"], ok_ids[0].as_str());
    assert_eq!(line["routeKey"], "GET /ok");
    assert_eq!(line["stage"], "dev");
    assert_eq!(line["gateway"], "default/obs");
    assert_eq!(line["status"], 200);
    assert_eq!(line["httpMethod"], "GET");
    assert_eq!(line["path"], "/dev/ok");
    assert_eq!(line["sourceIp"], "127.0.0.1");
    assert_eq!(line["userAgent"], "e2e-tests/1.0");
    assert_eq!(line["protocol"], "HTTP/1.1");
    assert!(line["requestTime"].is_string());

    let line = proxy.access_log_entry(&posted.header("x-amzn-requestid").unwrap());
    assert_eq!(line["routeKey"], "POST /items/{id}");
    assert_eq!(line["httpMethod"], "POST");
    assert!(line["integrationLatency"].is_u64(), "{line}");

    let line = proxy.access_log_entry(&missing.header("x-amzn-requestid").unwrap());
    assert_eq!(line["status"], 403);
    // A gateway response's length is logged too (hyper adds its Content-Length later).
    assert_eq!(line["responseLength"], missing.body.len(), "{line}");
    assert_eq!(line["stage"], "dev");
    assert!(line.get("routeKey").is_none(), "{line}");

    let all = eventually("five access log lines", || {
        let lines = proxy.access_log();
        (lines.len() >= 5).then_some(lines)
    });
    assert_eq!(all.len(), 5, "one line per request: {all:?}");

    // Metrics.
    let metrics = proxy.admin_get("/metrics");
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    let sample = |route: &str, class: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("tollgate_requests_total{")
                    && l.contains("gateway=\"default/obs\"")
                    && l.contains("stage=\"dev\"")
                    && l.contains(&format!("route=\"{route}\""))
                    && l.contains(&format!("status_class=\"{class}\""))
            })
            .map(sample_value)
    };
    assert_eq!(sample("GET /ok", "2xx"), Some(3.0), "{text}");
    assert_eq!(sample("POST /items/{id}", "2xx"), Some(1.0), "{text}");
    assert_eq!(sample("", "4xx"), Some(1.0), "{text}");
    assert!(text.contains("tollgate_request_duration_seconds_bucket{"));
    assert!(text.contains("tollgate_table_info{"));

    // Health, readiness and the loaded configuration.
    let healthz = proxy.admin_get("/healthz");
    assert_eq!((healthz.status, healthz.text()), (200, "ok\n".to_string()));
    assert_eq!(proxy.admin_get("/readyz").status, 200);
    assert_eq!(proxy.admin_get("/nothing").status, 404);
    let config = proxy.config_report();
    let gateways = config["gateways"].as_array().unwrap();
    assert_eq!(gateways.len(), 1, "{config}");
    assert_eq!(gateways[0]["gateway"], "default/obs");
    assert_eq!(gateways[0]["stages"], json!(["dev"]));
    assert_eq!(gateways[0]["routes"], 2);
    let version = gateways[0]["version"].as_str().unwrap();
    assert!(
        version.len() == 16 && version.chars().all(|c| c.is_ascii_hexdigit()),
        "version {version:?} is not 16 hex digits"
    );
    assert!(
        text.contains(&format!("version=\"{version}\"")),
        "tollgate_table_info carries the served version"
    );
}

/// A client that goes away before its response (HTTP/1 connection closed, HTTP/2 stream reset,
/// while the backend holds the answer or while the body is still coming) is logged once, as
/// 499 with the route it asked for, the way nginx logs it; not left out, not called a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_is_logged_as_499() {
    let backend = Backend::gated();
    let proxy = serve(
        &[
            dev_gateway("gone"),
            route("held", "gone", "GET", "/held", http(&backend.url("/held"))),
            route(
                "upload",
                "gone",
                "POST",
                "/upload",
                http(&backend.url("/upload")),
            ),
        ],
        &[],
    );
    // GETs the backend holds (uploads stream to it too, and end when their client goes).
    let held_by_backend = |n: usize| {
        let backend = &backend;
        eventually_async("requests held by the backend", move || async move {
            let held = backend
                .received()
                .iter()
                .filter(|r| r.echo["path"] == "/held")
                .count();
            (held == n).then_some(())
        })
    };

    // HTTP/1: the connection closes while the backend holds the answer, then mid-body.
    let mut held = tollgate_tests::client::connect(proxy.addr());
    held.write_all(b"GET /dev/held HTTP/1.1\r\nHost: gone\r\n\r\n")
        .unwrap();
    held_by_backend(1).await;
    drop(held);
    let mut upload = tollgate_tests::client::connect(proxy.addr());
    upload
        .write_all(
            b"POST /dev/upload HTTP/1.1\r\nHost: gone\r\nContent-Length: 100\r\n\r\nten bytes.",
        )
        .unwrap();
    drop(upload);

    // HTTP/2 (prior knowledge on the plain port): a stream cancelled while the backend holds
    // the answer, then a stream reset mid-body.
    let tcp = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    let (mut h2, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(connection);
    let get = hyper::Request::get(proxy.url("/dev/held"))
        .body(Channel::<Bytes, std::io::Error>::new(1).1)
        .unwrap();
    let pending = tokio::spawn(h2.send_request(get));
    held_by_backend(2).await;
    pending.abort();
    let (mut body, channel) = Channel::<Bytes, std::io::Error>::new(1);
    let post = hyper::Request::post(proxy.url("/dev/upload"))
        .body(channel)
        .unwrap();
    let pending = tokio::spawn(h2.send_request(post));
    body.send_data(Bytes::from_static(b"ten bytes."))
        .await
        .unwrap();
    // Time for the proxy to start reading; the line is 499 whether the reset comes before or
    // during the read.
    tokio::time::sleep(Duration::from_millis(200)).await;
    body.abort(std::io::Error::other("the client gives up"));
    let _ = pending.await;

    let lines = eventually("four access log lines", || {
        let lines = proxy.access_log();
        (lines.len() >= 4).then_some(lines)
    });
    backend.release();
    let mut seen: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            assert_eq!(l["status"], 499, "{l}");
            assert_eq!(l["gateway"], "default/gone", "{l}");
            assert_eq!(
                l["errorMessage"], "the client went away before the response",
                "{l}"
            );
            let route = l["routeKey"].as_str().unwrap_or_default().to_string();
            (
                route,
                l["protocol"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    seen.sort();
    let expected = [
        ("GET /held", "HTTP/1.1"),
        ("GET /held", "HTTP/2.0"),
        ("POST /upload", "HTTP/1.1"),
        ("POST /upload", "HTTP/2.0"),
    ];
    assert_eq!(
        seen,
        expected.map(|(r, p)| (r.to_string(), p.to_string())),
        "{lines:?}"
    );
    // Counted in the metrics as the 4xx they are.
    let text = proxy.admin_get("/metrics").text();
    for route in ["GET /held", "POST /upload"] {
        let line = text
            .lines()
            .find(|l| {
                l.starts_with("tollgate_requests_total{")
                    && l.contains(&format!("route=\"{route}\""))
                    && l.contains("status_class=\"4xx\"")
            })
            .unwrap_or_else(|| panic!("no 4xx sample for {route}: {text}"));
        assert_eq!(sample_value(line), 2.0, "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_waits_for_a_table() {
    // An empty folder: the proxy runs, has nothing to serve, and says so.
    let config = ConfigDir::new();
    let proxy = Proxy::start_unready(config.path(), &[]);
    let readyz = proxy.admin_get("/readyz");
    assert_eq!(
        (readyz.status, readyz.text()),
        (503, "no table loaded\n".to_string())
    );
    assert_eq!(proxy.admin_get("/healthz").status, 200);
    let nothing = Client::new().get(&proxy.url("/dev/ok"), &[]).await;
    assert_eq!(nothing.status, 403);
    assert_eq!(nothing.text(), r#"{"message":"Forbidden"}"#);

    // A gateway appears: ready, and serving. (Written again every few seconds while not
    // seen: a change made while the proxy starts its file watcher is missed.)
    let write = || {
        config.write(
            "api.yaml",
            &[
                dev_gateway("late"),
                route("ok", "late", "GET", "/ok", mock(200, r#"{"ok":true}"#)),
            ],
        );
    };
    write();
    let mut written = Instant::now();
    eventually("/readyz to answer 200", || {
        if written.elapsed() > Duration::from_secs(5) {
            write();
            written = Instant::now();
        }
        proxy.is_ready().then_some(())
    });
    let ok = Client::new().get(&proxy.url("/dev/ok"), &[]).await;
    assert_eq!((ok.status, ok.text()), (200, r#"{"ok":true}"#.to_string()));
}

/// With `--log-level` at trace for the pipeline, each request is a span and each phase a span
/// inside it, written when they close with their timings; at the default level, none is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_and_phase_spans_close_in_order_when_traced() {
    let backend = Backend::echo();
    let resources = [
        dev_gateway("traced"),
        route(
            "hello",
            "traced",
            "GET",
            "/hello",
            http(&backend.url("/hello")),
        ),
    ];
    let traced = serve(
        &resources,
        &[
            "--log-level",
            "warn,tollgate_proxy::pipeline=trace",
            "--log-format",
            "json",
        ],
    );
    let response = Client::new().get(&traced.url("/dev/hello"), &[]).await;
    assert_eq!(response.status, 200);
    let id = response.header("x-amzn-requestid").unwrap();

    let closed = eventually("the request span's close", || {
        let closed: Vec<serde_json::Value> = traced
            .stderr_lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|l| l["fields"]["message"] == "close")
            .collect();
        closed
            .iter()
            .any(|l| l["span"]["name"] == "request")
            .then_some(closed)
    });
    let names: Vec<&str> = closed
        .iter()
        .filter_map(|l| l["span"]["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "gateway",
            "route",
            "auth",
            "throttle",
            "body",
            "integration",
            "request"
        ],
        "{closed:?}"
    );
    let request = closed.last().unwrap();
    assert_eq!(request["span"]["id"], id.as_str(), "{request}");
    assert_eq!(request["span"]["path"], "/dev/hello", "{request}");
    for phase in &closed[..6] {
        assert_eq!(phase["spans"][0]["name"], "request", "{phase}");
        assert!(phase["fields"]["time.busy"].is_string(), "{phase}");
    }

    // At the default level no span is recorded.
    let quiet = serve(&resources, &["--log-format", "json"]);
    let response = Client::new().get(&quiet.url("/dev/hello"), &[]).await;
    assert_eq!(response.status, 200);
    assert!(
        !quiet
            .stderr_lines()
            .iter()
            .any(|l| l.contains(r#""message":"close""#)),
        "spans written at the default level"
    );
}
