//! `AWS_IAM` authorizers end to end: requests signed by botocore (the AWS SDK for Python,
//! `tests/lambda/iam_call.py`) to a standalone `tollgate-proxy`, which verifies each signature
//! with the keys of the authorizer's Secrets and decides by its statements; the caller reaches
//! an HTTP backend as `x-authorizer-principal-id` and a Lambda function (a Python handler under
//! the Runtime Interface Emulator) as `requestContext.identity`.
//!
//! Needs `cargo build --workspace --bins` (as `make test` does).

use std::process::Command;

use serde_json::{Value, json};
use tollgate_tests::backend::Backend;
use tollgate_tests::client::Client;
use tollgate_tests::config::{gateway, http, route};
use tollgate_tests::lambda::{LambdaRuntime, python};
use tollgate_tests::proxy::serve;
use tollgate_tests::workspace_root;

const ALICE: (&str, &str) = (
    "AKIAALICE00000000001",
    "alice/secret/0123456789abcdefABCDEFghij",
);
const BOB: (&str, &str) = (
    "AKIABOB0000000000002",
    "bob/secret/0123456789abcdefABCDEFghijkl",
);

fn credentials(name: &str, (id, secret): (&str, &str)) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "default"},
        "type": "tollgate.dev/aws-credentials",
        "stringData": {"accessKeyId": id, "secretAccessKey": secret},
    })
}

/// Sends one request signed by botocore with `key`; `send_body` replaces the signed body on
/// the wire. The answer: status, body, headers.
fn signed(
    method: &str,
    url: &str,
    body: Option<&str>,
    key: (&str, &str),
    send_body: Option<&str>,
) -> Value {
    let mut command = Command::new(python());
    command
        .arg(workspace_root().join("tests/lambda/iam_call.py"))
        .args(["--method", method, "--url", url])
        .args(["--access-key-id", key.0, "--secret-access-key", key.1]);
    if let Some(body) = body {
        command.args(["--body", body]);
    }
    if let Some(other) = send_body {
        command.args(["--send-body", other]);
    }
    let out = command.output().expect("running iam_call.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from iam_call.py")
}

fn message(answer: &Value) -> String {
    let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).expect("JSON body");
    body["message"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn botocore_signed_requests_are_verified_and_the_policy_decides() {
    let backend = Backend::echo();
    let function = LambdaRuntime::start("handler.handler");
    let mut gw = gateway("shop", json!([{"name": "prod"}]));
    gw["spec"]["authorizers"] = json!([{
        "name": "iam",
        "type": "AWS_IAM",
        "iam": {
            "credentials": [{"name": "alice"}, {"name": "bob"}],
            "statements": [
                {"effect": "Allow", "principals": ["*"], "resources": [
                    "arn:aws:execute-api:*:*:shop/prod/*/orders*",
                    "arn:aws:execute-api:*:*:shop/prod/GET/whoami",
                ]},
                {"effect": "Deny", "principals": ["bob"], "resources": [
                    "arn:aws:execute-api:*:*:shop/prod/POST/*",
                ]},
            ],
        },
    }]);
    let guarded = |name: &str, method: &str, path: &str, integration: Value| {
        let mut r = route(name, "shop", method, path, integration);
        r["spec"]["authorizer"] = json!("iam");
        r
    };
    let proxy = serve(
        &[
            gw,
            credentials("alice", ALICE),
            credentials("bob", BOB),
            guarded(
                "get",
                "GET",
                "/orders/{id}",
                http(&backend.url("/orders/{id}")),
            ),
            guarded("post", "POST", "/orders", http(&backend.url("/orders"))),
            guarded(
                "whoami",
                "GET",
                "/whoami",
                json!({"lambda": {"endpoint": function.endpoint(), "functionName": "function", "maxConcurrency": 1}}),
            ),
        ],
        &[],
    );
    let url = |path: &str| proxy.url(path);

    // Alice reads an order: the backend is told who she is.
    let got = signed("GET", &url("/prod/orders/7?view=full"), None, ALICE, None);
    assert_eq!(got["status"], 200, "{got}");
    let echo: Value = serde_json::from_str(got["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        echo["headers"]["x-authorizer-principal-id"],
        json!(["arn:aws:iam::tollgate:user/alice"])
    );
    // The signature covers the body: read whole before the authorizer, still sent on.
    let posted = signed(
        "POST",
        &url("/prod/orders"),
        Some(r#"{"item":"book"}"#),
        ALICE,
        None,
    );
    assert_eq!(posted["status"], 200, "{posted}");
    let echo: Value = serde_json::from_str(posted["body"].as_str().unwrap()).unwrap();
    assert_eq!(echo["body"], r#"{"item":"book"}"#);
    // A body changed after signing does not verify.
    let tampered = signed(
        "POST",
        &url("/prod/orders"),
        Some(r#"{"item":"book"}"#),
        ALICE,
        Some(r#"{"item":"car!"}"#),
    );
    assert_eq!(tampered["status"], 403, "{tampered}");
    assert!(
        message(&tampered).starts_with("The request signature we calculated does not match"),
        "{tampered}"
    );
    assert_eq!(
        tampered["headers"]["x-amzn-errortype"],
        "InvalidSignatureException"
    );

    // Bob may read, and is denied writing: an explicit deny wins over the Allow.
    assert_eq!(
        signed("GET", &url("/prod/orders/7"), None, BOB, None)["status"],
        200
    );
    let denied = signed("POST", &url("/prod/orders"), Some("{}"), BOB, None);
    assert_eq!(denied["status"], 403, "{denied}");
    assert_eq!(
        message(&denied),
        "User: arn:aws:iam::tollgate:user/bob is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:local:tollgate:shop/prod/POST/orders with an explicit deny"
    );
    assert_eq!(
        denied["headers"]["x-amzn-errortype"],
        "AccessDeniedException"
    );

    // A key the authorizer does not know, and no signature at all.
    let stranger = signed(
        "GET",
        &url("/prod/orders/7"),
        None,
        (
            "AKIASTRANGER00000003",
            "not/known/at/all/0123456789abcdefABCDEF",
        ),
        None,
    );
    assert_eq!(stranger["status"], 403);
    assert_eq!(
        stranger["headers"]["x-amzn-errortype"],
        "UnrecognizedClientException"
    );
    let unsigned = Client::new().get(&url("/prod/orders/7"), &[]).await;
    assert_eq!(unsigned.status, 403);
    assert_eq!(
        unsigned.json(),
        json!({"message": "Missing Authentication Token"})
    );

    // A Lambda function gets the signer as payload 1.0's requestContext.identity.
    let whoami = signed("GET", &url("/prod/whoami"), None, ALICE, None);
    assert_eq!(whoami["status"], 200, "{whoami}");
    let event: Value = serde_json::from_str(whoami["body"].as_str().unwrap()).unwrap();
    let identity = &event["echo"]["requestContext"]["identity"];
    assert_eq!(identity["user"], "alice", "{identity}");
    assert_eq!(identity["accessKey"], ALICE.0);
    assert_eq!(identity["userArn"], "arn:aws:iam::tollgate:user/alice");
}
