//! The Lambda proxy integration end to end: `tollgate-proxy` in front of the real Lambda
//! Runtime Interface Emulator running the example's Python handler. The handler echoes the
//! event it receives, so each field the proxy builds is checked as the function saw it.
//!
//! Needs `cargo build --workspace --bins` (as `make test` does); the emulator is built and
//! cached by `tests/lambda/build`.

use base64::Engine;
use serde_json::{Value, json};
use tollgate_tests::client::Client;
use tollgate_tests::config::{gateway, route};
use tollgate_tests::lambda::LambdaRuntime;
use tollgate_tests::proxy::serve;

/// A Lambda integration to the emulator's function (one invocation at a time: the emulator
/// serves no more).
fn lambda(runtime: &LambdaRuntime, version: &str) -> Value {
    json!({"lambda": {
        "endpoint": runtime.endpoint(),
        "functionName": "function",
        "payloadFormatVersion": version,
        "maxConcurrency": 1,
    }})
}

fn hello_gateway() -> Value {
    gateway(
        "hello",
        json!([{"name": "dev", "variables": {"table": "states", "region": "local"}}]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_api_is_served_by_the_python_function() {
    let runtime = LambdaRuntime::start("handler.handler");
    let proxy = serve(
        &[
            hello_gateway(),
            route("root", "hello", "GET", "/", lambda(&runtime, "1.0")),
            route("states", "hello", "GET", "/states", lambda(&runtime, "1.0")),
        ],
        &[],
    );
    let client = Client::new();

    let r = client.get(&proxy.url("/dev/"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"message": "Hello from Lambda!"}));
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );

    let states = client.get(&proxy.url("/dev/states"), &[]).await.json();
    let codes: Vec<&str> = states
        .as_array()
        .expect("a list of states")
        .iter()
        .filter_map(|s| s["code"].as_str())
        .collect();
    assert_eq!(codes, ["CA", "NY", "TX", "WA"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_1_0_carries_every_field_to_the_function() {
    let runtime = LambdaRuntime::start("handler.handler");
    let proxy = serve(
        &[
            hello_gateway(),
            route(
                "echo",
                "hello",
                "ANY",
                "/pets/{petId}/{proxy+}",
                lambda(&runtime, "1.0"),
            ),
        ],
        &[],
    );
    let r = Client::new()
        .request(
            "POST",
            &proxy.url("/dev/pets/42/toys/ball?color=red&color=blue&size=s"),
            &[
                ("x-multi", "a"),
                ("x-multi", "b"),
                ("user-agent", "tollgate-test"),
                ("content-type", "application/json"),
            ],
            r#"{"name":"Rex"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let request_id = r.header("x-amzn-requestid").expect("a request id");
    let event = &r.json()["echo"];

    assert_eq!(event["resource"], "/pets/{petId}/{proxy+}");
    assert_eq!(event["path"], "/pets/42/toys/ball");
    assert_eq!(event["httpMethod"], "POST");
    assert_eq!(
        event["headers"]["x-multi"], "b",
        "headers keep the last value"
    );
    assert_eq!(event["multiValueHeaders"]["x-multi"], json!(["a", "b"]));
    assert_eq!(
        event["queryStringParameters"],
        json!({"color": "blue", "size": "s"})
    );
    assert_eq!(
        event["multiValueQueryStringParameters"]["color"],
        json!(["red", "blue"])
    );
    assert_eq!(
        event["pathParameters"],
        json!({"petId": "42", "proxy": "toys/ball"})
    );
    assert_eq!(
        event["stageVariables"],
        json!({"table": "states", "region": "local"})
    );
    assert_eq!(event["body"], r#"{"name":"Rex"}"#);
    assert_eq!(event["isBase64Encoded"], false);

    let context = &event["requestContext"];
    assert_eq!(context["stage"], "dev");
    assert_eq!(context["resourcePath"], "/pets/{petId}/{proxy+}");
    assert_eq!(context["path"], "/dev/pets/42/toys/ball");
    assert_eq!(context["httpMethod"], "POST");
    assert_eq!(context["requestId"], request_id.as_str());
    assert_eq!(context["apiId"], "hello");
    assert_eq!(context["identity"]["sourceIp"], "127.0.0.1");
    assert_eq!(context["identity"]["userAgent"], "tollgate-test");
    assert_eq!(context["protocol"], "HTTP/1.1");
    assert!(
        context["requestTimeEpoch"]
            .as_i64()
            .is_some_and(|t| t > 1_700_000_000_000)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_2_0_joins_values_lists_cookies_and_encodes_binary_bodies() {
    let runtime = LambdaRuntime::start("handler.handler");
    let proxy = serve(
        &[
            hello_gateway(),
            route(
                "echo",
                "hello",
                "ANY",
                "/v2/{proxy+}",
                lambda(&runtime, "2.0"),
            ),
        ],
        &[],
    );
    let png = [0x89u8, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0xff];
    let r = Client::new()
        .request(
            "PUT",
            &proxy.url("/dev/v2/images/cat?a=1&a=2&b=x"),
            &[
                ("x-multi", "a"),
                ("x-multi", "b"),
                ("cookie", "c1=v1; c2=v2"),
                ("user-agent", "tollgate-test"),
                ("content-type", "image/png"),
            ],
            png.to_vec(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let event = &r.json()["echo"];

    assert_eq!(event["version"], "2.0");
    assert_eq!(event["routeKey"], "ANY /v2/{proxy+}");
    assert_eq!(event["rawPath"], "/dev/v2/images/cat");
    assert_eq!(event["rawQueryString"], "a=1&a=2&b=x");
    assert_eq!(
        event["queryStringParameters"],
        json!({"a": "1,2", "b": "x"})
    );
    assert_eq!(event["cookies"], json!(["c1=v1", "c2=v2"]));
    assert_eq!(
        event["headers"]["x-multi"], "a,b",
        "repeated headers are joined"
    );
    assert_eq!(event["pathParameters"], json!({"proxy": "images/cat"}));
    assert_eq!(event["isBase64Encoded"], true);
    let body = base64::engine::general_purpose::STANDARD
        .decode(event["body"].as_str().expect("a base64 body"))
        .expect("valid base64");
    assert_eq!(body, png);

    let http = &event["requestContext"]["http"];
    assert_eq!(http["method"], "PUT");
    assert_eq!(http["path"], "/dev/v2/images/cat");
    assert_eq!(http["sourceIp"], "127.0.0.1");
    assert_eq!(http["userAgent"], "tollgate-test");
    assert_eq!(event["requestContext"]["stage"], "dev");
    assert_eq!(event["requestContext"]["routeKey"], "ANY /v2/{proxy+}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_error_is_a_502_in_both_payload_versions() {
    let runtime = LambdaRuntime::start("handler.fail");
    let proxy = serve(
        &[
            hello_gateway(),
            route("v1", "hello", "GET", "/v1", lambda(&runtime, "1.0")),
            route("v2", "hello", "GET", "/v2", lambda(&runtime, "2.0")),
        ],
        &[],
    );
    let client = Client::new();
    for path in ["/dev/v1", "/dev/v2"] {
        let r = client.get(&proxy.url(path), &[]).await;
        assert_eq!(r.status, 502, "{path}: {}", r.text());
        assert_eq!(
            r.json(),
            json!({"message": "Internal server error"}),
            "{path}"
        );
        assert!(
            !r.text().contains("always fails"),
            "{path}: the function's error leaked"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_wait_for_the_function_instead_of_failing() {
    let runtime = LambdaRuntime::start("handler.handler");
    let proxy = serve(
        &[
            hello_gateway(),
            route("root", "hello", "GET", "/", lambda(&runtime, "1.0")),
        ],
        &[],
    );
    let url = proxy.url("/dev/");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let url = url.clone();
        tasks.spawn(async move { Client::new().get(&url, &[]).await.status });
    }
    let mut statuses = Vec::new();
    while let Some(status) = tasks.join_next().await {
        statuses.push(status.expect("request task"));
    }
    assert_eq!(
        statuses,
        vec![200; 8],
        "maxConcurrency 1 queues requests to the emulator"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_authorizer_function_decides_under_the_emulator() {
    let runtime = LambdaRuntime::start("handler.authorizer");
    let backend = tollgate_tests::backend::Backend::echo();
    let mut gw = hello_gateway();
    gw["spec"]["authorizers"] = json!([{
        "name": "blueprint",
        "type": "TOKEN",
        "identitySource": ["$request.header.Authorization"],
        "lambda": {"endpoint": runtime.endpoint(), "functionName": "function"},
        "resultTtlSeconds": 0,
    }]);
    let mut guarded = route(
        "guarded",
        "hello",
        "GET",
        "/guarded",
        json!({"http": {"url": backend.url("/guarded")}}),
    );
    guarded["spec"]["authorizer"] = json!("blueprint");
    let proxy = serve(&[gw, guarded], &[]);
    let client = Client::new();
    let url = proxy.url("/dev/guarded");

    let allowed = client.get(&url, &[("Authorization", "allow")]).await;
    assert_eq!(allowed.status, 200, "{}", allowed.text());
    let seen = &backend.received()[0].echo["headers"];
    assert_eq!(seen["x-authorizer-principal-id"], json!(["user-allow"]));
    assert_eq!(seen["x-authorizer-context-tier"], json!(["gold"]));
    assert_eq!(seen["x-authorizer-context-credits"], json!(["42"]));

    for (token, status, body) in [
        (
            "deny",
            403,
            r#"{"message":"User is not authorized to access this resource with an explicit deny"}"#,
        ),
        ("unauthorized", 401, r#"{"message":"Unauthorized"}"#),
        ("garbage", 500, r#"{"message":null}"#),
    ] {
        let r = client.get(&url, &[("Authorization", token)]).await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (status, body),
            "token {token}"
        );
    }
    assert_eq!(
        backend.received().len(),
        1,
        "only the allowed request got through"
    );
}
