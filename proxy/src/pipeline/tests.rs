//! The whole request path, in-process: each case sends one request through [`handle`] over
//! tables compiled from YAML, and checks the answer and the access-log line. The cases are
//! chosen so that each says which phase runs first: a request that two phases would refuse
//! gets the first one's answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use serde_json::Value;
use tokio::sync::mpsc;

use super::handle;
use crate::access_log::{AccessLog, Message};
use crate::auth::AuthState;
use crate::dispatch::{Dispatch, ServedGateway};
use crate::install::install;
use crate::metrics::Metrics;
use crate::request_body::{BodyBudget, BodyLimits};
use crate::request_ctx::Connection;
use crate::request_trace::Tracers;
use crate::state::Shared;
use crate::throttle::Limiter;
use crate::upstream::Upstream;

const TABLES: &str = r#"
apiVersion: tollgate.dev/v1alpha1
kind: ApiGateway
metadata: {name: shop, namespace: default}
spec:
  stages:
    - name: prod
      variables: {color: blue}
  resourcePolicy:
    denyCidrs: ["203.0.113.0/24"]
  cors:
    allowOrigins: ["https://app.example.com"]
    allowMethods: [GET, POST]
  authorizers:
    - name: jwt
      type: JWT
      identitySource: ["$request.header.Authorization"]
      jwt:
        issuer: https://issuer.example.com
        audiences: [shop]
        jwksUri: http://127.0.0.1:9/jwks
---
apiVersion: tollgate.dev/v1alpha1
kind: Route
metadata: {name: items, namespace: default}
spec:
  gatewayRef: {name: shop}
  method: GET
  path: /items/{id}
  integration:
    mock: {statusCode: 200, body: '${stageVariables.color} item {id}'}
---
apiVersion: tollgate.dev/v1alpha1
kind: Route
metadata: {name: orders, namespace: default}
spec:
  gatewayRef: {name: shop}
  method: POST
  path: /orders
  apiKeyRequired: true
  integration:
    mock: {statusCode: 201, body: created}
---
apiVersion: tollgate.dev/v1alpha1
kind: Route
metadata: {name: me, namespace: default}
spec:
  gatewayRef: {name: shop}
  method: GET
  path: /me
  authorizer: jwt
  apiKeyRequired: true
  integration:
    mock: {statusCode: 200, body: me}
---
apiVersion: tollgate.dev/v1alpha1
kind: Route
metadata: {name: closed, namespace: default}
spec:
  gatewayRef: {name: shop}
  method: POST
  path: /closed
  apiKeyRequired: true
  throttle: {rateLimit: 0, burstLimit: 0}
  integration:
    mock: {statusCode: 200, body: never}
---
apiVersion: tollgate.dev/v1alpha1
kind: Route
metadata: {name: switch, namespace: default}
spec:
  gatewayRef: {name: shop}
  method: GET
  path: /switch
  integration:
    mock: {statusCode: 101, body: ""}
---
apiVersion: tollgate.dev/v1alpha1
kind: UsagePlan
metadata: {name: basic, namespace: default}
spec:
  apiStages:
    - gatewayRef: {name: shop}
      stage: prod
  apiKeys:
    names: [initech]
---
apiVersion: v1
kind: Secret
metadata: {name: initech, namespace: default}
type: tollgate.dev/api-key
stringData:
  key: test-key-0000000000000000000001
"#;

const KEY: &str = "test-key-0000000000000000000001";
const ALLOWED: &str = "198.51.100.7:40000";
const DENIED: &str = "203.0.113.5:40000";

/// The proxy's shared state serving [`TABLES`], and the access-log lines it writes.
struct Proxy {
    shared: Arc<Shared>,
    lines: mpsc::Receiver<Message>,
}

impl Proxy {
    fn new() -> Self {
        let compiled = tollgate_crds::compile::compile_str(TABLES, "tables.yaml").unwrap();
        assert_eq!(compiled.tables.len(), 1, "{:#?}", compiled.diagnostics);
        let metrics = Metrics::new();
        let (access_log, lines) = AccessLog::captured(metrics.access_log_dropped.clone());
        let body_limits = BodyLimits {
            read_timeout: Duration::from_secs(10),
            budget: BodyBudget::new(
                1 << 20,
                metrics.buffered_body_bytes.clone(),
                metrics.body_budget_refusals.clone(),
            ),
        };
        let metrics_for_tracers = metrics.trace_counters();
        let shared = Arc::new(Shared {
            dispatch: ArcSwap::from_pointee(Dispatch::default()),
            client: Upstream::build(None, metrics.upstream()).unwrap(),
            metrics,
            access_log,
            fleet_size: AtomicU32::new(1),
            auth: AuthState::default(),
            limiter: Limiter::default(),
            https_port: None,
            body_limits,
            websocket_idle_timeout: Duration::from_secs(600),
            managed: Default::default(),
            tracers: Tracers::none(metrics_for_tracers),
        });
        let gateways = compiled
            .tables
            .into_values()
            .map(|t| ServedGateway::build(t).unwrap())
            .collect();
        install(&shared, gateways, "localhost");
        Self { shared, lines }
    }

    /// Sends one request through the whole path; the answer's status, headers and body, and
    /// the access-log line it wrote.
    async fn send(&mut self, request: Request<Full<Bytes>>, peer: &str) -> Answer {
        let peer: SocketAddr = peer.parse().unwrap();
        let conn = Arc::new(Connection::new(peer, "http", None));
        let response = handle(self.shared.clone(), conn, request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        let Ok(Message::Line(line)) = self.lines.try_recv() else {
            panic!("no access-log line for a request answered {}", parts.status);
        };
        assert!(self.lines.try_recv().is_err(), "one line per request");
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            log: serde_json::from_slice(&line).unwrap(),
        }
    }
}

struct Answer {
    status: StatusCode,
    headers: hyper::HeaderMap,
    body: String,
    log: Value,
}

fn request(method: &str, path: &str) -> hyper::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "shop.default.localhost:8080")
}

fn empty(builder: hyper::http::request::Builder) -> Request<Full<Bytes>> {
    builder.body(Full::new(Bytes::new())).unwrap()
}

/// One request and what must come of it.
struct Case {
    name: &'static str,
    request: fn() -> Request<Full<Bytes>>,
    peer: &'static str,
    status: u16,
    /// Text the answer's body holds.
    body: &'static str,
    /// The access-log line's `errorMessage`, if the request was refused.
    error: Option<&'static str>,
    /// The access-log line's `routeKey`, if the request got as far as a route.
    route_key: Option<&'static str>,
}

#[tokio::test]
async fn the_phases_run_in_order_and_each_refusal_is_answered_and_logged() {
    let cases = [
        Case {
            name: "a routed request reaches its integration with its stage variables",
            request: || empty(request("GET", "/prod/items/42")),
            peer: ALLOWED,
            status: 200,
            body: "blue item 42",
            error: None,
            route_key: Some("GET /items/{id}"),
        },
        Case {
            name: "an integration that answers 101 with no handshake to complete is a \
                   configuration error, never a connection handed over",
            request: || empty(request("GET", "/prod/switch")),
            peer: ALLOWED,
            status: 500,
            body: "Internal server error",
            error: Some("no WebSocket handshake to complete"),
            route_key: Some("GET /switch"),
        },
        Case {
            name: "the resource policy runs before the route: an unknown path from a denied \
                   address is refused by the policy",
            request: || empty(request("GET", "/prod/nowhere")),
            peer: DENIED,
            status: 403,
            body: "not authorized to perform",
            error: Some("the resource policy does not admit 203.0.113.5"),
            route_key: None,
        },
        Case {
            name: "the resource policy runs before the preflight",
            request: || {
                empty(
                    request("OPTIONS", "/prod/items/1")
                        .header("origin", "https://app.example.com")
                        .header("access-control-request-method", "GET"),
                )
            },
            peer: DENIED,
            status: 403,
            body: "not authorized to perform",
            error: Some("the resource policy does not admit 203.0.113.5"),
            route_key: None,
        },
        Case {
            name: "the preflight is answered before the route is looked up",
            request: || {
                empty(
                    request("OPTIONS", "/prod/nowhere")
                        .header("origin", "https://app.example.com")
                        .header("access-control-request-method", "GET"),
                )
            },
            peer: ALLOWED,
            status: 204,
            body: "",
            error: None,
            route_key: None,
        },
        Case {
            name: "an unknown resource is Missing Authentication Token",
            request: || empty(request("GET", "/prod/nowhere")),
            peer: ALLOWED,
            status: 403,
            body: "Missing Authentication Token",
            error: Some("no route matches the method and path"),
            route_key: None,
        },
        Case {
            name: "a dot-segment is refused before routing",
            request: || empty(request("GET", "/prod/items/../orders")),
            peer: ALLOWED,
            status: 400,
            body: "",
            error: Some("dot-segment"),
            route_key: None,
        },
        Case {
            name: "the authorizer runs before the API key: neither given is 401",
            request: || empty(request("GET", "/prod/me")),
            peer: ALLOWED,
            status: 401,
            body: "Unauthorized",
            error: Some("missing identity source"),
            route_key: Some("GET /me"),
        },
        Case {
            name: "a route that requires a key refuses a request without one",
            request: || empty(request("POST", "/prod/orders")),
            peer: ALLOWED,
            status: 403,
            body: "Forbidden",
            error: Some("forbidden: missing API key"),
            route_key: Some("POST /orders"),
        },
        Case {
            name: "the API key runs before the throttle: no key is 403, not 429",
            request: || empty(request("POST", "/prod/closed")),
            peer: ALLOWED,
            status: 403,
            body: "Forbidden",
            error: Some("forbidden: missing API key"),
            route_key: Some("POST /closed"),
        },
        Case {
            name: "with its key, a closed route is throttled",
            request: || empty(request("POST", "/prod/closed").header("x-api-key", KEY)),
            peer: ALLOWED,
            status: 429,
            body: "Too Many Requests",
            error: Some("throttled"),
            route_key: Some("POST /closed"),
        },
        Case {
            name: "the throttle runs before the body: a closed route refuses an oversized \
                   body with 429",
            request: || {
                empty(
                    request("POST", "/prod/closed")
                        .header("x-api-key", KEY)
                        .header("content-length", "11000000"),
                )
            },
            peer: ALLOWED,
            status: 429,
            body: "Too Many Requests",
            error: Some("throttled"),
            route_key: Some("POST /closed"),
        },
        Case {
            name: "a body over the payload limit is refused by the body phase",
            request: || {
                empty(
                    request("POST", "/prod/orders")
                        .header("x-api-key", KEY)
                        .header("content-length", "11000000"),
                )
            },
            peer: ALLOWED,
            status: 413,
            body: "Request Too Long",
            error: Some("request body exceeds the payload limit"),
            route_key: Some("POST /orders"),
        },
        Case {
            name: "a request with its key reaches the integration",
            request: || {
                Request::builder()
                    .method("POST")
                    .uri("/prod/orders")
                    .header("host", "shop.default.localhost")
                    .header("x-api-key", KEY)
                    .body(Full::new(Bytes::from_static(b"{\"item\": 42}")))
                    .unwrap()
            },
            peer: ALLOWED,
            status: 201,
            body: "created",
            error: None,
            route_key: Some("POST /orders"),
        },
    ];

    let mut proxy = Proxy::new();
    for case in &cases {
        let answer = proxy.send((case.request)(), case.peer).await;
        let name = case.name;
        assert_eq!(
            answer.status.as_u16(),
            case.status,
            "{name}: {}",
            answer.body
        );
        assert!(
            answer.body.contains(case.body),
            "{name}: body {:?}",
            answer.body
        );
        assert!(
            answer.headers.contains_key("x-amzn-requestid"),
            "{name}: every answer names its request"
        );
        let log = &answer.log;
        assert_eq!(log["status"], case.status, "{name}: logged status");
        assert_eq!(log["domainName"], "shop.default.localhost", "{name}");
        match case.error {
            Some(error) => {
                let logged = log["errorMessage"].as_str().unwrap_or_default();
                assert!(logged.contains(error), "{name}: errorMessage {logged:?}");
            }
            None => assert!(log.get("errorMessage").is_none(), "{name}: {log}"),
        }
        assert_eq!(
            log.get("routeKey").and_then(Value::as_str),
            case.route_key,
            "{name}"
        );
    }
}

#[tokio::test]
async fn every_answer_but_the_preflight_carries_the_cors_headers_and_the_key_names_its_tenant() {
    let mut proxy = Proxy::new();
    let refused = proxy
        .send(
            empty(request("POST", "/prod/orders").header("origin", "https://app.example.com")),
            ALLOWED,
        )
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        refused.headers["access-control-allow-origin"], "https://app.example.com",
        "a browser can read a refusal"
    );

    let served = proxy
        .send(
            empty(request("POST", "/prod/orders").header("x-api-key", KEY)),
            ALLOWED,
        )
        .await;
    assert_eq!(served.status, 201);
    assert_eq!(served.log["apiKeyId"], "initech");
    assert_eq!(served.log["gateway"], "default/shop");
    assert_eq!(served.log["stage"], "prod");
}

#[tokio::test]
async fn an_unknown_host_is_logged_with_the_host_it_asked_for() {
    let mut proxy = Proxy::new();
    // One gateway loaded: any host reaches it as its default host; a stage it lacks is
    // refused, and the line names the host.
    let answer = proxy
        .send(
            empty(
                Request::builder()
                    .uri("/staging/items/1")
                    .header("host", "api.example.net"),
            ),
            ALLOWED,
        )
        .await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert_eq!(answer.log["domainName"], "api.example.net");
    assert!(answer.log.get("routeKey").is_none());
}
