//! Traces, end to end: real standalone proxies send spans over OTLP (gRPC and HTTP) to a real
//! OpenTelemetry Collector (`tests/otelcol`), and the test reads back what it received; real
//! backends and a real HTTP authorizer show the context each call carried.
//!
//! Needs `cargo build --workspace --bins` first; the first run builds the collector (about
//! two minutes, cached after, see `tests/otelcol/README.md`).

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tollgate_tests::backend::{Backend, RawBackend, read_head};
use tollgate_tests::client::Client;
use tollgate_tests::collector::{Collector, ReceivedSpan};
use tollgate_tests::config::{gateway, http, route};
use tollgate_tests::proxy::serve;

const SERVER: u64 = 2;
const CLIENT: u64 = 3;

/// The caller's trace: a W3C context a client would send.
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// An HTTP authorizer that allows everyone and keeps the `traceparent` of each question.
fn authorizer() -> (RawBackend, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = seen.clone();
    let server = RawBackend::start(move |mut stream| {
        let Ok((head, _)) = read_head(&mut stream) else {
            return;
        };
        let traceparent = head
            .lines()
            .find_map(|l| l.strip_prefix("traceparent: "))
            .unwrap_or("")
            .to_string();
        kept.lock().unwrap().push(traceparent);
        let body = r#"{"isAuthorized":true,"context":{"who":"tester"}}"#;
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
    });
    (server, seen)
}

fn echoed_header(body: &[u8], name: &str) -> String {
    let echo: Value = serde_json::from_slice(body).expect("echo JSON");
    match &echo["headers"][name] {
        Value::Array(values) => values[0].as_str().unwrap_or_default().to_string(),
        Value::String(s) => s.clone(),
        other => panic!("{name} not echoed: {other} in {echo}"),
    }
}

fn by_name<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span {name:?} in {spans:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traced_request_continues_its_callers_trace_through_every_call() {
    let collector = Collector::start();
    let backend = Backend::echo();
    let (auth, questions) = authorizer();
    let mut gw = gateway("pets", json!([{"name": "dev"}]));
    gw["spec"]["tracing"] = json!({"endpoint": collector.grpc_url(), "samplingRatio": 1.0});
    gw["spec"]["authorizers"] = json!([{
        "name": "allow-all",
        "type": "REQUEST",
        "identitySource": ["$request.header.X-Caller"],
        "http": {"url": auth.url("/authorize")},
        "resultTtlSeconds": 0,
    }]);
    let mut guarded = route(
        "pet",
        "pets",
        "GET",
        "/pets/{id}",
        http(&backend.url("/pets/{id}")),
    );
    guarded["spec"]["authorizer"] = json!("allow-all");
    let proxy = serve(&[gw, guarded], &[]);
    let client = Client::new();

    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let answer = client
        .get(
            &proxy.url("/dev/pets/7"),
            &[
                ("traceparent", caller.as_str()),
                ("tracestate", "vendor=opaque"),
                ("X-Caller", "me"),
            ],
        )
        .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );

    // The answer names the trace as Amazon's does.
    assert_eq!(
        answer.header("x-amzn-trace-id").unwrap(),
        "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Sampled=1"
    );

    // The collector has the request's span under the caller's, and a child per call.
    let spans = collector.trace(CALLER_TRACE, 3);
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let server = by_name(&spans, "GET /pets/{id}");
    assert_eq!(server.kind, SERVER);
    assert_eq!(server.parent_span_id, CALLER_SPAN);
    assert_eq!(server.service, "tollgate-proxy");
    assert_eq!(server.attribute("http.route").unwrap(), "/pets/{id}");
    assert_eq!(
        server.attribute("http.response.status_code").unwrap(),
        "200"
    );
    assert_eq!(server.attribute("url.path").unwrap(), "/dev/pets/7");
    assert_eq!(
        server.attribute("tollgate.gateway").unwrap(),
        "default/pets"
    );
    assert_eq!(
        server.attribute("tollgate.request_id").unwrap(),
        answer.header("x-amzn-requestid").unwrap()
    );
    let authorize = by_name(&spans, "authorize");
    let integration = by_name(&spans, "integration");
    for child in [authorize, integration] {
        assert_eq!(child.kind, CLIENT);
        assert_eq!(child.parent_span_id, server.span_id);
        assert!(child.start_nanos >= server.start_nanos && child.end_nanos <= server.end_nanos);
    }
    assert!(
        authorize.end_nanos <= integration.start_nanos,
        "authorizer before integration"
    );
    assert_eq!(
        integration.attribute("tollgate.integration.type").unwrap(),
        "http"
    );

    // Each call carried the trace from its own span: the backend's spans hang under the
    // integration's, the authorizer's under the authorize span.
    assert_eq!(
        echoed_header(&answer.body, "traceparent"),
        format!("00-{CALLER_TRACE}-{}-01", integration.span_id)
    );
    assert_eq!(echoed_header(&answer.body, "tracestate"), "vendor=opaque");
    assert_eq!(
        echoed_header(&answer.body, "x-amzn-trace-id"),
        format!(
            "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent={};Sampled=1",
            integration.span_id
        )
    );
    assert_eq!(
        questions.lock().unwrap().as_slice(),
        [format!("00-{CALLER_TRACE}-{}-01", authorize.span_id)]
    );

    // The access log line names the trace.
    let line = proxy.access_log_entry(&answer.header("x-amzn-requestid").unwrap());
    assert_eq!(line["traceId"], CALLER_TRACE, "{line}");

    // An AWS caller's X-Amzn-Trace-Id is continued the same way.
    let amzn = client
        .get(
            &proxy.url("/dev/pets/8"),
            &[
                (
                    "X-Amzn-Trace-Id",
                    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
                ),
                ("X-Caller", "me"),
            ],
        )
        .await;
    assert_eq!(amzn.status, 200);
    let spans = collector.trace("5759e988bd862e3fe1be46a994272793", 3);
    let server = by_name(&spans, "GET /pets/{id}");
    assert_eq!(server.parent_span_id, "53995c3f42cd8ad8");
    assert!(
        echoed_header(&amzn.body, "traceparent")
            .starts_with("00-5759e988bd862e3fe1be46a994272793-")
    );

    // A malformed context is ignored: the request starts a trace of its own.
    let forged = client
        .get(
            &proxy.url("/dev/pets/9"),
            &[("traceparent", "00-XYZ-123-01"), ("X-Caller", "me")],
        )
        .await;
    assert_eq!(forged.status, 200);
    let root = forged.header("x-amzn-trace-id").unwrap();
    let trace_id = root
        .strip_prefix("Root=1-")
        .and_then(|r| r.strip_suffix(";Sampled=1"))
        .unwrap()
        .replace('-', "");
    let spans = collector.trace(&trace_id, 3);
    assert_eq!(by_name(&spans, "GET /pets/{id}").parent_span_id, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_ratio_transports_and_the_proxys_own_collector() {
    let collector = Collector::start();
    let backend = Backend::echo();
    // `never`: traced at ratio 0 over OTLP/HTTP; `always`: ratio 1 over OTLP/HTTP;
    // `fallback`: no gateway tracing, one stage opts in and uses the proxy's collector.
    let mut never = gateway("never", json!([{"name": "dev"}]));
    never["spec"]["tracing"] = json!({
        "endpoint": collector.http_url(), "protocol": "http/protobuf", "samplingRatio": 0.0
    });
    let mut always = gateway("always", json!([{"name": "dev"}]));
    always["spec"]["tracing"] = json!({
        "endpoint": collector.http_url(), "protocol": "http/protobuf", "samplingRatio": 1.0
    });
    let fallback = gateway(
        "fallback",
        json!([{"name": "dev", "tracingEnabled": true}, {"name": "quiet"}]),
    );
    let resources = [
        never,
        always,
        fallback,
        route("n", "never", "GET", "/x", http(&backend.url("/x"))),
        route("a", "always", "GET", "/x", http(&backend.url("/x"))),
        route("f", "fallback", "GET", "/x", http(&backend.url("/x"))),
    ];
    let grpc = collector.grpc_url();
    let proxy = serve(&resources, &["--otlp-endpoint", &grpc]);
    let client = Client::new();
    // With three gateways loaded, the host says which: `{gateway}.default.localhost`.
    let get = async |gw: &str, path: &str, extra: &[(&str, &str)]| {
        let host = format!("{gw}.default.localhost");
        let mut headers = vec![("Host", host.as_str())];
        headers.extend_from_slice(extra);
        client.get(&proxy.url(path), &headers).await
    };
    let trace_of = |header: String| {
        header
            .strip_prefix("Root=1-")
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .replace('-', "")
    };

    // Ratio 0: the context still reaches the backend, marked unsampled, and no span is sent.
    let mut unsampled = Vec::new();
    for _ in 0..20 {
        let r = get("never", "/dev/x", &[]).await;
        assert_eq!(r.status, 200);
        let header = r.header("x-amzn-trace-id").unwrap();
        assert!(header.ends_with(";Sampled=0"), "{header}");
        let parent = echoed_header(&r.body, "traceparent");
        assert!(parent.ends_with("-00"), "{parent}");
        unsampled.push(trace_of(header));
    }
    // ... unless the caller sampled its trace: its decision is followed.
    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let r = get("never", "/dev/x", &[("traceparent", caller.as_str())]).await;
    assert!(r.header("x-amzn-trace-id").unwrap().ends_with(";Sampled=1"));
    let followed = collector.trace(CALLER_TRACE, 2);
    assert_eq!(followed.len(), 2);

    // Ratio 1 over OTLP/HTTP.
    let r = get("always", "/dev/x", &[]).await;
    let spans = collector.trace(&trace_of(r.header("x-amzn-trace-id").unwrap()), 2);
    assert_eq!(
        by_name(&spans, "GET /x")
            .attribute("tollgate.gateway")
            .unwrap(),
        "default/always"
    );

    // A stage that opts in without gateway tracing: the proxy's collector (gRPC), at the
    // default ratio (5%): send until one is sampled, and check that only sampled ones arrive.
    let mut sampled = None;
    for _ in 0..400 {
        let r = get("fallback", "/dev/x", &[]).await;
        let header = r.header("x-amzn-trace-id").unwrap();
        if header.ends_with(";Sampled=1") {
            sampled = Some(trace_of(header));
            break;
        }
    }
    let sampled = sampled.expect("one request in 400 sampled at 5%");
    let spans = collector.trace(&sampled, 2);
    assert_eq!(
        by_name(&spans, "GET /x")
            .attribute("tollgate.stage")
            .unwrap(),
        "dev"
    );

    // The stage that does not trace passes the client's context through untouched.
    let r = get("fallback", "/quiet/x", &[("traceparent", caller.as_str())]).await;
    assert!(r.header("x-amzn-trace-id").is_none());
    assert_eq!(echoed_header(&r.body, "traceparent"), caller);

    // None of the unsampled traces reached the collector.
    let all = collector.spans_after(Duration::from_secs(1));
    for trace in &unsampled {
        assert!(
            !all.iter().any(|s| &s.trace_id == trace),
            "unsampled {trace} exported"
        );
    }
    let exported = proxy.admin_get("/metrics");
    let text = String::from_utf8_lossy(&exported.body);
    assert!(
        text.contains("tollgate_trace_spans_total{outcome=\"exported\"}"),
        "{text}"
    );
}

#[test]
fn the_controller_traces_its_reconcile_passes() {
    use tollgate_tests::control_plane::ControlPlane;
    use tollgate_tests::controller::Controller;

    let collector = Collector::start();
    let cp = ControlPlane::shared();
    let grpc = collector.grpc_url();
    let controller = Controller::start(cp, &["--otlp-endpoint", &grpc]);
    let ns = cp.namespace("traced");
    ns.apply(
        r#"apiVersion: tollgate.dev/v1alpha1
kind: ApiGateway
metadata:
  name: traced
spec:
  stages: [{name: dev}]
---
apiVersion: tollgate.dev/v1alpha1
kind: Route
metadata:
  name: hello
spec:
  gatewayRef: {name: traced}
  method: GET
  path: /hello
  integration:
    mock: {statusCode: 200, body: hi}
"#,
    );

    // A pass that saw the gateway: its `reconcile` span, with a child per step.
    let (root, spans) = tollgate_tests::wait::eventually("a traced reconcile pass", || {
        let spans = collector.spans();
        let root = spans.iter().find(|s| {
            s.service == "tollgate-controller"
                && s.name == "reconcile"
                && s.attribute("tollgate.gateways").is_some_and(|n| n != "0")
        })?;
        let children: Vec<_> = spans
            .iter()
            .filter(|s| s.parent_span_id == root.span_id)
            .cloned()
            .collect();
        (children.len() >= 3).then(|| (root.clone(), children))
    });
    assert_eq!(root.parent_span_id, "");
    for step in ["compile", "publish tables", "write status"] {
        let span = by_name(&spans, step);
        assert_eq!(span.trace_id, root.trace_id);
        assert!(span.start_nanos >= root.start_nanos && span.end_nanos <= root.end_nanos);
    }
    assert!(
        by_name(&spans, "compile")
            .attribute("tollgate.tables")
            .is_some_and(|n| n != "0"),
        "{spans:#?}"
    );
    drop(controller);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lambda_function_sees_the_trace_in_its_event() {
    use tollgate_tests::lambda::LambdaRuntime;

    let collector = Collector::start();
    let runtime = LambdaRuntime::start("handler.handler");
    let mut gw = gateway("hello", json!([{"name": "dev"}]));
    gw["spec"]["tracing"] = json!({"endpoint": collector.grpc_url(), "samplingRatio": 1.0});
    let function = json!({"lambda": {
        "endpoint": runtime.endpoint(),
        "functionName": "function",
        "payloadFormatVersion": "1.0",
        "maxConcurrency": 1,
    }});
    let proxy = serve(
        &[
            gw,
            route("echo", "hello", "GET", "/pets/{petId}/{proxy+}", function),
        ],
        &[],
    );
    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let r = Client::new()
        .get(
            &proxy.url("/dev/pets/1/toys"),
            &[("traceparent", caller.as_str())],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let spans = collector.trace(CALLER_TRACE, 2);
    let integration = by_name(&spans, "integration");
    assert_eq!(
        integration.attribute("tollgate.integration.type").unwrap(),
        "lambda"
    );
    // As on Amazon, the event's headers carry `X-Amzn-Trace-Id` (here from the integration's
    // span), and `traceparent` beside it.
    let event = &r.json()["echo"];
    assert_eq!(
        event["headers"]["x-amzn-trace-id"],
        format!(
            "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent={};Sampled=1",
            integration.span_id
        ),
        "{event}"
    );
    assert_eq!(
        event["headers"]["traceparent"],
        format!("00-{CALLER_TRACE}-{}-01", integration.span_id)
    );
}
