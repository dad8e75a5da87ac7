//! Lambda proxy results and events as Amazon API Gateway really treats them (`docs/concepts.md`,
//! "Lambda proxy results"), end to end: `tollgate-proxy` in front of the Lambda Runtime
//! Interface Emulator running `tests/lambda/functions/results.py`, which answers each request
//! with the result its path names. A REST API (payload 1.0) and an HTTP API (payload 2.0) share
//! the one function; each test checks what a client of either sees.
//!
//! Needs `cargo build --workspace --bins` (as `make test` does); the emulator is built and
//! cached by `tests/lambda/build`.

use serde_json::{Value, json};
use tollgate_tests::client::{Client, Response};
use tollgate_tests::config::{gateway, route};
use tollgate_tests::lambda::LambdaRuntime;
use tollgate_tests::proxy::{Served, free_port, serve};

/// The function, a REST API `rest` and an HTTP API `http`, each with stage `dev` and one route
/// `ANY /{proxy+}` to the function.
struct Apis {
    _runtime: LambdaRuntime,
    proxy: Served,
    client: Client,
}

impl Apis {
    fn start() -> Self {
        let runtime = LambdaRuntime::start_example(
            "tests/lambda/functions",
            "results.handler",
            free_port(),
            &[],
        );
        let lambda = |version: &str| {
            json!({"lambda": {
                "endpoint": runtime.endpoint(),
                "functionName": "function",
                "payloadFormatVersion": version,
                "maxConcurrency": 1,
            }})
        };
        let mut http = gateway("http", json!([{"name": "dev"}]));
        http["spec"]["protocol"] = json!("HTTP");
        let proxy = serve(
            &[
                gateway("rest", json!([{"name": "dev"}])),
                http,
                route("rest-proxy", "rest", "ANY", "/{proxy+}", lambda("1.0")),
                route("http-proxy", "http", "ANY", "/{proxy+}", lambda("2.0")),
            ],
            &[],
        );
        Self {
            _runtime: runtime,
            proxy,
            client: Client::new(),
        }
    }

    /// `GET /dev/<path>` on the REST API.
    async fn rest(&self, path: &str) -> Response {
        self.get("rest", path).await
    }

    /// `GET /dev/<path>` on the HTTP API.
    async fn http(&self, path: &str) -> Response {
        self.get("http", path).await
    }

    async fn get(&self, api: &str, path: &str) -> Response {
        // Both gateways answer on the proxy's one port, each on its default host
        // `{gateway}.{namespace}.localhost`.
        let url = self.proxy.url(&format!("/dev/{path}"));
        let host = format!("{api}.default.localhost");
        self.client.get(&url, &[("host", host.as_str())]).await
    }
}

fn assert_internal_error(r: &Response, what: &str) {
    assert!(
        r.status == 502 || r.status == 500,
        "{what}: {} {}",
        r.status,
        r.text()
    );
}

/// Rule 1: without a content type from the function, a REST API answers `application/json`
/// and an HTTP API `text/plain; charset=utf-8`; a content type set to `null` means none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_without_a_content_type_gets_amazons_default() {
    let apis = Apis::start();
    let r = apis.rest("no-content-type").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(r.text(), r#"{"a":1}"#);

    let r = apis.http("no-content-type").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/plain; charset=utf-8")
    );

    let r = apis.rest("content-type-null").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), None);
    assert_eq!(r.text(), "x");
}

/// Rule 2: `"statusCode": "201"` is 201 in both; a word is a malformed result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_code_given_as_a_string_is_used() {
    let apis = Apis::start();
    for api in ["rest", "http"] {
        let r = apis.get(api, "status-string").await;
        assert_eq!((r.status, r.text().as_str()), (201, "created"), "{api}");
        let r = apis.get(api, "status-word").await;
        assert_internal_error(&r, api);
    }
    assert_eq!(apis.rest("status-word").await.status, 502);
    assert_eq!(apis.http("status-word").await.status, 500);
}

/// Rule 3: a REST API answers 200 for a result without `statusCode`; an HTTP API takes such a
/// result as the JSON body itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_without_a_status_code_is_a_200() {
    let apis = Apis::start();
    let r = apis.rest("no-status").await;
    assert_eq!((r.status, r.text().as_str()), (200, "no status"));
    assert_eq!(r.header("x-only").as_deref(), Some("headers"));

    let r = apis.http("no-status-object").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(r.json(), json!({"message": "no status"}));
}

/// Rule 4: a REST API refuses a result with a key the format does not have (502); an HTTP API
/// ignores the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_key_is_refused_by_rest_and_ignored_by_http() {
    let apis = Apis::start();
    let r = apis.rest("unknown-key").await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json(), json!({"message": "Internal server error"}));
    assert!(!r.text().contains("extra"));

    let r = apis.http("unknown-key").await;
    assert_eq!((r.status, r.text().as_str()), (201, "extra"));
}

/// Rule 5: one name in `headers` and `multiValueHeaders`: a REST API sends the
/// `multiValueHeaders` values only; an HTTP API (2.0 has no `multiValueHeaders`) the `headers`
/// value only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_value_headers_win_under_1_0_and_are_ignored_under_2_0() {
    let apis = Apis::start();
    let r = apis.rest("both-headers").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let both: Vec<&str> = r
        .headers
        .get_all("x-both")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(both, ["m1", "m2"]);
    assert_eq!(r.header("x-single").as_deref(), Some("s"));

    let r = apis.http("both-headers").await;
    let both: Vec<&str> = r
        .headers
        .get_all("x-both")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(both, ["single"]);
}

/// Rule 6: a REST API's event keeps the path percent-encoded (path and greedy parameter) and
/// drops one trailing slash from the greedy parameter only; an HTTP API's event decodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greedy_paths_reach_the_function_as_each_api_sends_them() {
    let apis = Apis::start();
    let event = apis
        .rest("echo/user/test%2Balias@example.com/a%20b")
        .await
        .json();
    assert_eq!(event["path"], "/echo/user/test%2Balias@example.com/a%20b");
    assert_eq!(
        event["pathParameters"]["proxy"],
        "echo/user/test%2Balias@example.com/a%20b"
    );
    assert_eq!(event["resource"], "/{proxy+}");
    assert_eq!(
        event["requestContext"]["path"],
        "/dev/echo/user/test%2Balias@example.com/a%20b"
    );

    let event = apis.rest("echo/trailing/").await.json();
    assert_eq!(event["path"], "/echo/trailing/");
    assert_eq!(event["pathParameters"]["proxy"], "echo/trailing");

    let event = apis
        .http("echo/user/test%2Balias@example.com/a%20b")
        .await
        .json();
    assert_eq!(
        event["rawPath"],
        "/dev/echo/user/test+alias@example.com/a b"
    );
    assert_eq!(
        event["pathParameters"]["proxy"],
        "echo/user/test+alias@example.com/a b"
    );
}

/// Rule 7: the function sees every `requestContext` key of Amazon's recorded events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_context_carries_every_recorded_key() {
    let apis = Apis::start();
    let event = apis.rest("echo").await.json();
    let context = event["requestContext"].as_object().expect("requestContext");
    for key in [
        "accountId",
        "apiId",
        "deploymentId",
        "domainName",
        "domainPrefix",
        "extendedRequestId",
        "httpMethod",
        "identity",
        "path",
        "protocol",
        "requestId",
        "requestTime",
        "requestTimeEpoch",
        "resourceId",
        "resourcePath",
        "stage",
    ] {
        assert!(context.contains_key(key), "1.0 requestContext.{key}");
    }
    let deployment = context["deploymentId"].as_str().expect("a deploymentId");
    assert_eq!(deployment.len(), 6);
    let again = apis.rest("echo").await.json();
    assert_eq!(again["requestContext"]["deploymentId"], deployment);

    let event = apis.http("echo").await.json();
    let context = event["requestContext"].as_object().expect("requestContext");
    for key in [
        "accountId",
        "apiId",
        "domainName",
        "domainPrefix",
        "http",
        "requestId",
        "routeKey",
        "stage",
        "time",
        "timeEpoch",
    ] {
        assert!(context.contains_key(key), "2.0 requestContext.{key}");
    }
}

/// Rule 8: `body` null or missing is an empty body; `isBase64Encoded` may be the string
/// `"true"` under 1.0 but not `null`; a `null` header value leaves the header out; and the
/// event's empty body is `null` (1.0) or missing (2.0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_and_string_fields_are_read_as_amazon_reads_them() {
    let apis = Apis::start();
    for case in ["body-null", "body-missing"] {
        let r = apis.rest(case).await;
        assert_eq!((r.status, r.text().as_str()), (200, ""), "{case}");
    }
    let r = apis.rest("base64-string").await;
    // No binary media type matches: a REST API sends the base64 text as it is.
    assert_eq!((r.status, r.text().as_str()), (200, "aGk="));
    let r = apis.rest("base64-null").await;
    assert_eq!(r.status, 502, "{}", r.text());
    let r = apis.rest("header-null").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-null"), None);
    assert_eq!(r.header("x-kept").as_deref(), Some("1"));

    let event: Value = apis.rest("echo").await.json();
    assert_eq!(event.get("body"), Some(&Value::Null));
    assert_eq!(event["isBase64Encoded"], false);
    let event: Value = apis.http("echo").await.json();
    assert!(event.get("body").is_none());
    assert_eq!(event["isBase64Encoded"], false);
}
