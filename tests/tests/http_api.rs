//! HTTP APIs (`protocol: HTTP`) end to end, through a standalone `tollgate-proxy`: the
//! `$default` stage with no stage in the path beside a named stage, the `$default` route,
//! 404 `Not Found` where nothing matches, payload 2.0 by default to a real Python function
//! under the Lambda Runtime Interface Emulator, and 500 `Internal Server Error` when it fails.
//!
//! Needs `cargo build --workspace --bins` (as `make test` does).

use serde_json::{Value, json};
use tollgate_tests::backend::{Backend, BackendOptions};
use tollgate_tests::client::Client;
use tollgate_tests::config::{gateway, http, mock, route};
use tollgate_tests::lambda::LambdaRuntime;
use tollgate_tests::proxy::serve;

fn http_gateway(stages: Value) -> Value {
    let mut gateway = gateway("pets", stages);
    gateway["spec"]["protocol"] = json!("HTTP");
    gateway
}

fn lambda(runtime: &LambdaRuntime) -> Value {
    json!({"lambda": {"endpoint": runtime.endpoint(), "functionName": "function", "maxConcurrency": 1}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_api_serves_its_default_stage_without_a_prefix_and_its_default_route() {
    let backend = Backend::echo();
    let function = LambdaRuntime::start("handler.handler");
    let failing = LambdaRuntime::start("handler.fail");
    let mut catch_all = route(
        "catch-all",
        "pets",
        "GET",
        "/",
        mock(200, r#"{"route":"$default"}"#),
    );
    catch_all["spec"]
        .as_object_mut()
        .unwrap()
        .retain(|k, _| k != "method" && k != "path");
    catch_all["spec"]["routeKey"] = json!("$default");
    let proxy = serve(
        &[
            http_gateway(json!([{"name": "$default"}, {"name": "beta"}])),
            route("list", "pets", "GET", "/pets", http(&backend.url("/pets"))),
            route("hello", "pets", "GET", "/hello", lambda(&function)),
            route("broken", "pets", "GET", "/broken", lambda(&failing)),
            catch_all,
        ],
        &[],
    );
    let client = Client::new();

    // `$default`: no stage in the path. A named stage keeps its prefix.
    let pets = client.get(&proxy.url("/pets?type=dog"), &[]).await;
    assert_eq!(pets.status, 200, "{}", pets.text());
    assert_eq!(pets.json()["path"], "/pets");
    assert_eq!(pets.json()["query"], "type=dog");
    let beta = client.get(&proxy.url("/beta/pets"), &[]).await;
    assert_eq!(beta.status, 200, "{}", beta.text());
    assert_eq!(beta.json()["path"], "/pets");

    // What no route takes goes to the `$default` route, on either stage.
    for path in ["/nothing/here", "/beta/nothing"] {
        let other = client.get(&proxy.url(path), &[]).await;
        assert_eq!(
            (other.status, other.text()),
            (200, r#"{"route":"$default"}"#.to_string())
        );
    }

    // Lambda gets payload 2.0 without asking for it, with the $default stage.
    let hello = client.get(&proxy.url("/hello"), &[]).await;
    assert_eq!(hello.status, 200, "{}", hello.text());
    let event = &hello.json()["echo"];
    assert_eq!(event["version"], "2.0", "{event}");
    assert_eq!(event["rawPath"], "/hello");
    assert_eq!(event["requestContext"]["stage"], "$default");

    // A function that fails: an HTTP API's 500.
    let broken = client.get(&proxy.url("/broken"), &[]).await;
    assert_eq!(broken.status, 500);
    assert_eq!(broken.json(), json!({"message": "Internal Server Error"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_api_without_a_default_route_answers_404_not_found() {
    let proxy = serve(
        &[
            http_gateway(json!([{"name": "$default"}])),
            route(
                "ping",
                "pets",
                "GET",
                "/ping",
                mock(200, r#"{"pong":true}"#),
            ),
        ],
        &[],
    );
    let client = Client::new();
    assert_eq!(client.get(&proxy.url("/ping"), &[]).await.status, 200);
    let missing = client.get(&proxy.url("/pong"), &[]).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json(), json!({"message": "Not Found"}));
    assert_eq!(
        missing.header("x-amzn-errortype").as_deref(),
        Some("NotFoundException")
    );
    // A method the path has no route for is not found either.
    let post = client.request("POST", &proxy.url("/ping"), &[], "").await;
    assert_eq!(post.status, 404);
}

/// Parameter mapping of a route's HTTP integration: its `requestParameters` rewrite what the
/// backend receives (headers, query string, path) from the client's request, the context and
/// the stage variables; its `responseParameters` rewrite the answer of one status code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameter_mapping_rewrites_the_backend_request_and_the_mapped_status_of_its_answer() {
    let backend = Backend::echo();
    let missing = Backend::start(BackendOptions {
        status: 404,
        ..BackendOptions::default()
    });
    let mut pets = route(
        "pets",
        "pets",
        "GET",
        "/pets/{petId}",
        http(&backend.url("/pets/{petId}")),
    );
    pets["spec"]["integration"]["http"]["requestParameters"] = json!({
        "append:header.x-tenant": "$request.header.x-tenant-id",
        "overwrite:header.x-request": "${context.requestId}-${request.path.petId}",
        "overwrite:header.x-absent": "$request.header.not-sent",
        "remove:header.x-debug": "''",
        "overwrite:querystring.view": "full",
        "append:querystring.tag": "$stageVariables.env",
        "remove:querystring.secret": "''",
        "overwrite:path": "/v2/pets/${request.path.petId}",
    });
    let mut files = route(
        "files",
        "pets",
        "GET",
        "/files",
        http(&backend.url("/files")),
    );
    files["spec"]["integration"]["http"]["requestParameters"] = json!({
        "overwrite:path": "/public/${request.header.x-file}",
        "overwrite:querystring.name": "$request.header.x-name",
        "overwrite:header.x-q": "$request.querystring.q",
    });
    let mut gone = route("gone", "pets", "GET", "/gone", http(&missing.url("/gone")));
    gone["spec"]["integration"]["http"]["responseParameters"] = json!({
        "404": {
            "overwrite:statuscode": "410",
            "overwrite:header.x-upstream-type": "$response.header.content-type",
            "append:header.x-trace": "$context.routeKey",
        },
        "500": {"overwrite:statuscode": "503"},
    });
    let proxy = serve(
        &[
            http_gateway(json!([{"name": "$default", "variables": {"env": "prod"}}])),
            pets,
            files,
            gone,
        ],
        &[],
    );
    let client = Client::new();

    let answer = client
        .get(
            &proxy.url("/pets/42?view=short&secret=s3&tag=a"),
            &[("x-tenant", "a"), ("x-tenant-id", "acme"), ("x-debug", "1")],
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let seen = answer.json();
    assert_eq!(seen["path"], "/v2/pets/42", "{seen}");
    assert_eq!(seen["query"], "tag=a&tag=prod&view=full", "{seen}");
    let headers = &seen["headers"];
    assert_eq!(headers["x-tenant"], json!(["a,acme"]), "{seen}");
    let request_id = answer.header("x-amzn-requestid").expect("a request id");
    assert_eq!(headers["x-request"], json!([format!("{request_id}-42")]));
    assert!(headers.get("x-debug").is_none(), "{seen}");
    assert!(headers.get("x-absent").is_none(), "{seen}");

    // A mapped path that would climb out of /public is refused, as a client's would be.
    let climb = client
        .get(&proxy.url("/files"), &[("x-file", "../admin")])
        .await;
    assert_eq!(climb.status, 400, "{}", climb.text());
    let file = client
        .get(&proxy.url("/files"), &[("x-file", "a b?.txt")])
        .await;
    assert_eq!(file.json()["path"], "/public/a%20b%3F.txt");
    // A mapped value cannot add query parameters, nor a line break a header.
    let smuggled = client
        .get(
            &proxy.url("/files?q=ok%0D%0Ax-evil:%201"),
            &[("x-file", "f"), ("x-name", "a&admin=1#")],
        )
        .await;
    assert_eq!(smuggled.status, 200, "{}", smuggled.text());
    let seen = smuggled.json();
    assert_eq!(
        seen["query"], "q=ok%0D%0Ax-evil:%201&name=a%26admin%3D1%23",
        "{seen}"
    );
    assert!(seen["headers"].get("x-q").is_none(), "{seen}");
    assert!(seen["headers"].get("x-evil").is_none(), "{seen}");
    assert_eq!(
        backend.received().len(),
        3,
        "the refused request never left"
    );

    // The backend's 404 is mapped; its other headers are kept.
    let gone = client.get(&proxy.url("/gone"), &[]).await;
    assert_eq!(gone.status, 410, "{}", gone.text());
    assert_eq!(
        gone.header("x-upstream-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(gone.header("x-trace").as_deref(), Some("GET /gone"));
    assert_eq!(gone.json()["path"], "/gone");
}
