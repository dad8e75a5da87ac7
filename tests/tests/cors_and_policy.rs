//! CORS and the resource policy, end to end: the real `tollgate-proxy` in standalone mode in
//! front of a real echo backend, driven by a real client from 127.0.0.1.
//!
//! - CORS: preflights are answered by the gateway (never by a backend, before route lookup),
//!   refused ones without CORS headers; every other response, gateway errors included, carries
//!   the gateway's CORS headers for an allowed origin and never the backend's.
//! - Resource policy: allow and deny lists on the client's address; `X-Forwarded-For` believed
//!   from trusted proxies only; a Private gateway without an allow list admits private-range
//!   clients (loopback among them) and nobody else.
//!
//! Needs the binary: `cargo build --workspace --bins` before
//! `cargo test -p tollgate-tests --test cors_and_policy`.

use serde_json::{Value, json};
use tollgate_tests::backend::Backend;
use tollgate_tests::client::{Client, Response};
use tollgate_tests::config::{dev_gateway, http, mock, route};
use tollgate_tests::proxy::{Proxy, serve};

const APP: &str = "https://app.example.com";
const POLICY_DENIED: &str = r#"{"message":"User: anonymous is not authorized to perform: execute-api:Invoke on this resource"}"#;
const MISSING_TOKEN: &str = r#"{"message":"Missing Authentication Token"}"#;
const FORBIDDEN: &str = r#"{"message":"Forbidden"}"#;
/// The CORS response headers a gateway with CORS owns.
const CORS_HEADERS: [&str; 6] = [
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "access-control-expose-headers",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-max-age",
];

/// A `dev`-stage gateway with extra `spec` fields.
fn gateway_with(name: &str, spec: Value) -> Value {
    let mut gw = dev_gateway(name);
    for (field, value) in spec.as_object().expect("a spec object") {
        gw["spec"][field] = value.clone();
    }
    gw
}

fn vary_names_origin(r: &Response) -> bool {
    r.headers
        .get_all("vary")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("origin"))
}

fn assert_no_cors_headers(r: &Response, what: &str) {
    for name in CORS_HEADERS {
        assert_eq!(r.header(name), None, "{what}: {name}");
    }
}

// === CORS ===

/// A gateway with CORS for `APP` and `*.preview.example.com`, credentials allowed, in front of
/// `backend`; a route with a mock that sends CORS headers of its own, and one that needs an
/// API key.
fn shop(backend: &Backend) -> Vec<Value> {
    let mut secret = route("secret", "shop", "GET", "/secret", mock(200, "{}"));
    secret["spec"]["apiKeyRequired"] = json!(true);
    let legacy = route(
        "legacy",
        "shop",
        "GET",
        "/legacy",
        json!({"mock": {
            "statusCode": 200,
            "headers": {
                "Content-Type": "application/json",
                "Access-Control-Allow-Origin": "*",
                "Access-Control-Allow-Methods": "DELETE",
                "Access-Control-Max-Age": "99999",
            },
            "body": "{\"legacy\":true}",
        }}),
    );
    vec![
        gateway_with(
            "shop",
            json!({"cors": {
                "allowOrigins": [APP, "https://*.preview.example.com"],
                "allowMethods": ["GET", "PUT"],
                "allowHeaders": ["content-type", "x-api-key"],
                "exposeHeaders": ["x-amzn-requestid"],
                "maxAgeSeconds": 600,
                "allowCredentials": true,
            }}),
        ),
        route(
            "items",
            "shop",
            "GET",
            "/items",
            http(&backend.url("/items")),
        ),
        route(
            "item",
            "shop",
            "ANY",
            "/items/{id}",
            http(&backend.url("/items/{id}")),
        ),
        legacy,
        secret,
    ]
}

async fn preflight(client: &Client, url: &str, origin: &str, method: &str) -> Response {
    client
        .request(
            "OPTIONS",
            url,
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", method),
                ("Access-Control-Request-Headers", "content-type"),
            ],
            "",
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflights_are_answered_by_the_gateway() {
    let backend = Backend::echo();
    let proxy = serve(&shop(&backend), &[]);
    let client = Client::new();

    for (what, path, origin) in [
        ("a route's path", "/dev/items/7", APP),
        ("a path no route has", "/dev/nowhere", APP),
        (
            "a wildcard origin",
            "/dev/items/7",
            "https://pr-42.preview.example.com",
        ),
    ] {
        let r = preflight(&client, &proxy.url(path), origin, "PUT").await;
        assert_eq!(r.status, 204, "{what}: {}", r.text());
        assert!(r.body.is_empty(), "{what}");
        assert_eq!(
            r.header("access-control-allow-origin").as_deref(),
            Some(origin),
            "{what}"
        );
        assert_eq!(
            r.header("access-control-allow-methods").as_deref(),
            Some("GET, PUT"),
            "{what}"
        );
        assert_eq!(
            r.header("access-control-allow-headers").as_deref(),
            Some("content-type, x-api-key"),
            "{what}"
        );
        assert_eq!(
            r.header("access-control-max-age").as_deref(),
            Some("600"),
            "{what}"
        );
        assert_eq!(
            r.header("access-control-allow-credentials").as_deref(),
            Some("true"),
            "{what}"
        );
        assert!(vary_names_origin(&r), "{what}: Vary: Origin");
    }

    for (what, origin, method) in [
        ("an origin not allowed", "https://evil.example.com", "PUT"),
        (
            "a wildcard two labels deep",
            "https://a.b.preview.example.com",
            "PUT",
        ),
        ("another scheme", "http://app.example.com", "PUT"),
        ("a method not allowed", APP, "DELETE"),
    ] {
        let r = preflight(&client, &proxy.url("/dev/items/7"), origin, method).await;
        assert_eq!(r.status, 204, "{what}: {}", r.text());
        assert_no_cors_headers(&r, what);
    }
    assert!(
        backend.received().is_empty(),
        "a preflight reached the backend: {:?}",
        backend.received()
    );

    // An OPTIONS that is not a preflight is an ordinary request for the ANY route.
    let plain = client
        .request(
            "OPTIONS",
            &proxy.url("/dev/items/7"),
            &[("Origin", APP)],
            "",
        )
        .await;
    assert_eq!(plain.status, 200, "{}", plain.text());
    assert_eq!(plain.json()["method"], "OPTIONS");
    assert_eq!(
        plain.header("access-control-allow-origin").as_deref(),
        Some(APP)
    );
    assert_eq!(backend.received().len(), 1);

    let id = preflight(&client, &proxy.url("/dev/items/7"), APP, "GET")
        .await
        .header("x-amzn-requestid")
        .expect("a request id on a preflight");
    let line = proxy.access_log_entry(&id);
    assert_eq!(line["status"], 204);
    assert_eq!(line["httpMethod"], "OPTIONS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_and_errors_carry_the_gateways_cors_headers() {
    let backend = Backend::echo();
    let proxy = serve(&shop(&backend), &[]);
    let client = Client::new();
    let from_app = [("Origin", APP)];

    let ok = client.get(&proxy.url("/dev/items"), &from_app).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(
        ok.header("access-control-allow-origin").as_deref(),
        Some(APP)
    );
    assert_eq!(
        ok.header("access-control-expose-headers").as_deref(),
        Some("x-amzn-requestid")
    );
    assert_eq!(
        ok.header("access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert_eq!(ok.header("access-control-allow-methods"), None);
    assert!(vary_names_origin(&ok));

    for (what, path, status, body) in [
        ("no route", "/dev/nowhere", 403, MISSING_TOKEN),
        ("no API key", "/dev/secret", 403, FORBIDDEN),
    ] {
        let r = client.get(&proxy.url(path), &from_app).await;
        assert_eq!(r.status, status, "{what}");
        assert_eq!(r.text(), body, "{what}");
        assert_eq!(
            r.header("access-control-allow-origin").as_deref(),
            Some(APP),
            "{what}: a browser must be able to read the error"
        );
        assert_eq!(
            r.header("access-control-allow-credentials").as_deref(),
            Some("true"),
            "{what}"
        );
        assert!(vary_names_origin(&r), "{what}");
    }

    // The integration's own CORS headers give way to the gateway's.
    let legacy = client.get(&proxy.url("/dev/legacy"), &from_app).await;
    assert_eq!(legacy.status, 200);
    assert_eq!(legacy.json(), json!({"legacy": true}));
    assert_eq!(
        legacy.header("access-control-allow-origin").as_deref(),
        Some(APP)
    );
    assert_eq!(legacy.header("access-control-allow-methods"), None);
    assert_eq!(legacy.header("access-control-max-age"), None);
    let stranger = client
        .get(
            &proxy.url("/dev/legacy"),
            &[("Origin", "https://evil.example.com")],
        )
        .await;
    assert_eq!(stranger.status, 200, "CORS is the browser's to enforce");
    assert_no_cors_headers(&stranger, "an origin not allowed, backend CORS headers");

    let no_origin = client.get(&proxy.url("/dev/items"), &[]).await;
    assert_eq!(no_origin.status, 200);
    assert_no_cors_headers(&no_origin, "no Origin");
    assert!(
        vary_names_origin(&no_origin),
        "a cache must keep them apart"
    );
}

// === Resource policy ===

/// One proxy, one gateway per policy, each with `GET /whoami` to the echo backend; reached by
/// the `Host` header `{name}.default.localhost`.
fn policy_gateways(backend: &Backend) -> Vec<Value> {
    let gateways = [
        (
            "allowlist",
            json!({
                "resourcePolicy": {"allowCidrs": ["10.0.0.0/8", "2001:db8::/32"]},
                "cors": {"allowOrigins": [APP]},
            }),
        ),
        (
            "denylist",
            json!({"resourcePolicy": {"denyCidrs": ["127.0.0.0/8"]}}),
        ),
        (
            "proxied",
            json!({"resourcePolicy": {
                "trustedProxyCidrs": ["127.0.0.0/8"],
                "denyCidrs": ["203.0.113.0/24"],
            }}),
        ),
        (
            "spoofdeny",
            json!({"resourcePolicy": {"denyCidrs": ["203.0.113.0/24"]}}),
        ),
        (
            "spoofallow",
            json!({"resourcePolicy": {"allowCidrs": ["203.0.113.0/24"]}}),
        ),
        (
            "internal",
            json!({
                "endpointType": "Private",
                "resourcePolicy": {"allowNamespaces": ["default"]},
            }),
        ),
        (
            "internalproxied",
            json!({
                "endpointType": "Private",
                "resourcePolicy": {
                    "allowNamespaces": ["default"],
                    "trustedProxyCidrs": ["127.0.0.0/8"],
                },
            }),
        ),
    ];
    let mut resources = Vec::new();
    for (name, spec) in gateways {
        resources.push(gateway_with(name, spec));
        resources.push(route(
            &format!("{name}-whoami"),
            name,
            "GET",
            "/whoami",
            http(&backend.url("/whoami")),
        ));
    }
    resources
}

/// `GET /dev/whoami` on gateway `name`, with extra headers.
async fn whoami(client: &Client, proxy: &Proxy, name: &str, extra: &[(&str, &str)]) -> Response {
    let host = format!("{name}.default.localhost");
    let mut headers = vec![("Host", host.as_str())];
    headers.extend_from_slice(extra);
    client.get(&proxy.url("/dev/whoami"), &headers).await
}

fn assert_policy_denied(r: &Response, what: &str) {
    assert_eq!(r.status, 403, "{what}: {}", r.text());
    assert_eq!(r.text(), POLICY_DENIED, "{what}");
    assert_eq!(
        r.header("x-amzn-errortype").as_deref(),
        Some("AccessDeniedException"),
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_and_deny_lists_judge_the_client_address() {
    let backend = Backend::echo();
    let proxy = serve(&policy_gateways(&backend), &[]);
    let client = Client::new();

    let outside = whoami(&client, &proxy, "allowlist", &[("Origin", APP)]).await;
    assert_policy_denied(&outside, "127.0.0.1 outside the allow list");
    assert_eq!(
        outside.header("access-control-allow-origin").as_deref(),
        Some(APP),
        "a policy refusal carries the CORS headers"
    );
    let line = proxy.access_log_entry(&outside.header("x-amzn-requestid").unwrap());
    assert_eq!(line["status"], 403);
    assert_eq!(line["sourceIp"], "127.0.0.1");

    let denied = whoami(&client, &proxy, "denylist", &[]).await;
    assert_policy_denied(&denied, "127.0.0.1 in the deny list");

    let admitted = whoami(&client, &proxy, "spoofdeny", &[]).await;
    assert_eq!(admitted.status, 200, "{}", admitted.text());
    assert_eq!(
        backend.received().len(),
        1,
        "refused requests never reach it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_is_believed_from_trusted_proxies_only() {
    let backend = Backend::echo();
    let proxy = serve(&policy_gateways(&backend), &[]);
    let client = Client::new();

    // 127.0.0.1 is a trusted proxy: the client is the rightmost untrusted hop.
    for (xff, client_ip) in [
        ("203.0.113.7", "203.0.113.7"),
        ("198.51.100.7, 203.0.113.7", "203.0.113.7"),
        ("203.0.113.7, 127.0.0.9", "203.0.113.7"),
    ] {
        let r = whoami(&client, &proxy, "proxied", &[("X-Forwarded-For", xff)]).await;
        assert_policy_denied(&r, &format!("X-Forwarded-For: {xff}"));
        let line = proxy.access_log_entry(&r.header("x-amzn-requestid").unwrap());
        assert_eq!(line["sourceIp"], client_ip, "X-Forwarded-For: {xff}");
    }
    for (xff, client_ip) in [
        ("198.51.100.7", "198.51.100.7"),
        ("203.0.113.7, 198.51.100.7", "198.51.100.7"),
    ] {
        let r = whoami(&client, &proxy, "proxied", &[("X-Forwarded-For", xff)]).await;
        assert_eq!(r.status, 200, "X-Forwarded-For: {xff}: {}", r.text());
        assert_eq!(
            r.json()["headers"]["x-forwarded-for"],
            json!([format!("{xff}, 127.0.0.1")]),
            "the backend sees the chain with the peer appended"
        );
        let line = proxy.access_log_entry(&r.header("x-amzn-requestid").unwrap());
        assert_eq!(line["sourceIp"], client_ip, "X-Forwarded-For: {xff}");
    }
    let direct = whoami(&client, &proxy, "proxied", &[]).await;
    assert_eq!(
        direct.status, 200,
        "the trusted peer itself, without a header"
    );

    // Without trusted proxies, X-Forwarded-For neither refuses nor admits anyone.
    let spoofed = [("X-Forwarded-For", "203.0.113.7")];
    let r = whoami(&client, &proxy, "spoofdeny", &spoofed).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["headers"]["x-forwarded-for"],
        json!(["203.0.113.7, 127.0.0.1"])
    );
    let line = proxy.access_log_entry(&r.header("x-amzn-requestid").unwrap());
    assert_eq!(line["sourceIp"], "127.0.0.1");
    let r = whoami(&client, &proxy, "spoofallow", &spoofed).await;
    assert_policy_denied(&r, "a spoofed address in the allow list");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_gateway_admits_private_clients_only() {
    let backend = Backend::echo();
    let proxy = serve(&policy_gateways(&backend), &[]);
    let client = Client::new();

    let loopback = whoami(&client, &proxy, "internal", &[]).await;
    assert_eq!(
        loopback.status,
        200,
        "loopback is private: {}",
        loopback.text()
    );

    for (xff, admitted) in [
        ("10.1.2.3", true),
        ("100.64.0.9", true),
        ("fd00::1", true),
        ("8.8.8.8", false),
        ("2001:db8::1", false),
    ] {
        let r = whoami(
            &client,
            &proxy,
            "internalproxied",
            &[("X-Forwarded-For", xff)],
        )
        .await;
        if admitted {
            assert_eq!(r.status, 200, "{xff}: {}", r.text());
        } else {
            assert_policy_denied(&r, xff);
        }
    }
}
