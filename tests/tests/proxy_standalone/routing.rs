//! Which request reaches which gateway, stage and route: the quickstart, route precedence,
//! greedy paths, mocks, and host routing across gateways.

use serde_json::json;
use tollgate_tests::backend::Backend;
use tollgate_tests::client::Client;
use tollgate_tests::config::{dev_gateway, gateway, mock, route};
use tollgate_tests::proxy::Proxy;
use tollgate_tests::workspace_root;

use crate::serve;

const MISSING_TOKEN: &str = r#"{"message":"Missing Authentication Token"}"#;
const FORBIDDEN: &str = r#"{"message":"Forbidden"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_serves_the_getting_started_api() {
    let proxy = Proxy::start_standalone(&workspace_root().join("deploy/examples/quickstart"), &[]);
    let client = Client::new();
    let host = [("Host", "hello.default.localhost")];

    let root = client.get(&proxy.url("/dev/"), &host).await;
    assert_eq!(root.status, 200, "{}", root.text());
    assert_eq!(root.text(), r#"{"message": "Hello from Tollgate!"}"#);
    assert_eq!(
        root.header("content-type").as_deref(),
        Some("application/json")
    );
    let request_id = root.header("x-amzn-requestid").expect("x-amzn-requestid");
    assert_eq!(request_id.len(), 36, "a UUID: {request_id}");

    let states = client.get(&proxy.url("/dev/states"), &host).await;
    assert_eq!(states.status, 200);
    assert_eq!(
        states.json(),
        json!([
            {"code": "WA", "name": "Washington"},
            {"code": "OR", "name": "Oregon"},
            {"code": "CA", "name": "California"}
        ])
    );

    let nope = client.get(&proxy.url("/dev/nope"), &host).await;
    assert_eq!(nope.status, 403);
    assert_eq!(nope.text(), MISSING_TOKEN);
    assert_eq!(
        nope.header("x-amzn-errortype").as_deref(),
        Some("MissingAuthenticationTokenException")
    );
    assert!(nope.header("x-amzn-requestid").is_some());

    let post = client
        .request("POST", &proxy.url("/dev/states"), &host, "{}")
        .await;
    assert_eq!(post.status, 403);
    assert_eq!(post.text(), MISSING_TOKEN);

    let prod = client.get(&proxy.url("/prod/"), &host).await;
    assert_eq!(prod.status, 403);
    assert_eq!(prod.text(), FORBIDDEN);
    assert!(prod.header("x-amzn-requestid").is_some());

    // Each response has its own request id.
    assert_ne!(
        root.header("x-amzn-requestid"),
        states.header("x-amzn-requestid")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn literal_beats_parameter_beats_greedy() {
    let backend = Backend::echo();
    let proxy = serve(
        &[
            dev_gateway("shop"),
            route(
                "pets-mine",
                "shop",
                "GET",
                "/pets/mine",
                mock(200, r#"{"route":"mine"}"#),
            ),
            route(
                "pet",
                "shop",
                "GET",
                "/pets/{petId}",
                mock(200, r#"{"route":"petId","petId":"{petId}"}"#),
            ),
            route(
                "catch-all",
                "shop",
                "ANY",
                "/{proxy+}",
                json!({"http": {"url": backend.url("/{proxy}")}}),
            ),
        ],
        &[],
    );
    let client = Client::new();

    let mine = client.get(&proxy.url("/dev/pets/mine"), &[]).await;
    assert_eq!((mine.status, mine.json()), (200, json!({"route": "mine"})));

    let pet = client.get(&proxy.url("/dev/pets/42"), &[]).await;
    assert_eq!(
        (pet.status, pet.json()),
        (200, json!({"route": "petId", "petId": "42"}))
    );

    // Deeper than /pets/{petId}: only the greedy route matches, and {proxy} is the whole rest.
    let deep = client.get(&proxy.url("/dev/a/b/c"), &[]).await;
    assert_eq!(deep.status, 200, "{}", deep.text());
    assert_eq!(deep.json()["path"], "/a/b/c");
    let toys = client
        .request("DELETE", &proxy.url("/dev/pets/42/toys"), &[], "")
        .await;
    assert_eq!(toys.status, 200, "{}", toys.text());
    let echo = toys.json();
    assert_eq!(echo["path"], "/pets/42/toys");
    assert_eq!(echo["method"], "DELETE");
    assert_eq!(backend.received().len(), 2, "mocks never reach the backend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_answers_with_its_status_headers_and_substituted_body() {
    let mut teapot = route(
        "teapot",
        "kitchen",
        "GET",
        "/teapot/{kind}",
        json!({"mock": {
            "statusCode": 418,
            "headers": {
                "Content-Type": "application/json",
                "Cache-Control": "no-store",
                "X-Kind": "{kind}",
                "X-Env": "${stageVariables.x}",
            },
            "body": r#"{"message":"I am a {kind} teapot","env":"${stageVariables.x}","raw":{"json":true}}"#,
        }}),
    );
    teapot["spec"]["integration"]["timeoutMillis"] = json!(1000);
    let proxy = serve(
        &[
            gateway(
                "kitchen",
                json!([{"name": "dev", "variables": {"x": "staging"}}]),
            ),
            teapot,
        ],
        &[],
    );

    let response = Client::new()
        .get(&proxy.url("/dev/teapot/earl-grey"), &[])
        .await;
    assert_eq!(response.status, 418);
    assert_eq!(
        response.text(),
        r#"{"message":"I am a earl-grey teapot","env":"staging","raw":{"json":true}}"#
    );
    assert_eq!(
        response.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        response.header("cache-control").as_deref(),
        Some("no-store")
    );
    assert_eq!(response.header("x-kind").as_deref(), Some("earl-grey"));
    assert_eq!(response.header("x-env").as_deref(), Some("staging"));
    assert!(response.header("x-amzn-requestid").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_select_the_gateway() {
    let proxy = serve(
        &[
            dev_gateway("a"),
            dev_gateway("b"),
            route("who-a", "a", "GET", "/who", mock(200, r#"{"gateway":"a"}"#)),
            route("who-b", "b", "GET", "/who", mock(200, r#"{"gateway":"b"}"#)),
        ],
        &[],
    );
    let client = Client::new();
    let url = proxy.url("/dev/who");

    let a = client.get(&url, &[("Host", "a.default.localhost")]).await;
    assert_eq!((a.status, a.json()), (200, json!({"gateway": "a"})));
    let b = client.get(&url, &[("Host", "b.default.localhost")]).await;
    assert_eq!((b.status, b.json()), (200, json!({"gateway": "b"})));
    // A port in Host and a different case do not matter.
    let b_port = client
        .get(&url, &[("Host", "B.Default.Localhost:8080")])
        .await;
    assert_eq!(
        (b_port.status, b_port.json()),
        (200, json!({"gateway": "b"}))
    );

    for host in ["c.default.localhost", "127.0.0.1", "a.other.localhost"] {
        let unknown = client.get(&url, &[("Host", host)]).await;
        assert_eq!(unknown.status, 403, "Host {host}");
        assert_eq!(unknown.text(), FORBIDDEN, "Host {host}");
    }
}
