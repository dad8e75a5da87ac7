//! Signed calls to AWS Lambda end to end: a standalone `tollgate-proxy` invokes a function
//! named by its ARN, signing each Invoke call with SigV4 by credentials from the AWS SDK's
//! credential chain; the calls go to a stand-in for AWS (`tests/lambda/aws_double.py`) that
//! checks every signature with botocore's signer, an implementation independent of Tollgate's,
//! before running the function under the Lambda Runtime Interface Emulator.
//!
//! Credentials come from the environment (static keys), from web identity (a token file and
//! a role traded at STS for temporary credentials, as EKS IAM Roles for Service Accounts
//! work) or from a container credentials endpoint (EKS Pod Identity), with the double playing
//! STS and that endpoint. Nothing reads the machine's own AWS configuration.
//!
//! Needs `cargo build --workspace --bins` (as `make test` does).

use serde_json::{Value, json};
use tollgate_tests::client::Client;
use tollgate_tests::config::{ConfigDir, gateway, route};
use tollgate_tests::lambda::{AwsDouble, AwsDoubleOptions, LambdaRuntime};
use tollgate_tests::proxy::Proxy;

const FUNCTION_ARN: &str = "arn:aws:lambda:eu-west-1:123456789012:function:hello";
const ACCESS_KEY: &str = "AKIATOLLGATETEST0001";
const SECRET: &str = "tollgate/test/secret/0123456789abcdefABCDEF";

/// The environment of a proxy whose AWS credential chain sees only `extra`: no shared files,
/// no instance metadata.
fn aws_env<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("AWS_CONFIG_FILE", "/nonexistent/aws-config"),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        ),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    env.extend_from_slice(extra);
    env
}

/// A gateway whose route `GET /hello` invokes the function by ARN through `endpoint`.
fn resources(endpoint: &str) -> Vec<Value> {
    vec![
        gateway("shop", json!([{"name": "dev"}])),
        route(
            "hello",
            "shop",
            "GET",
            "/hello",
            json!({"lambda": {"functionName": FUNCTION_ARN, "endpoint": endpoint, "maxConcurrency": 1}}),
        ),
    ]
}

/// A double that knows the static key, in front of `function`.
fn double_with_key(function: &LambdaRuntime) -> AwsDouble {
    AwsDouble::start(
        &function.endpoint(),
        AwsDoubleOptions {
            access_key: Some((ACCESS_KEY, SECRET)),
            ..AwsDoubleOptions::default()
        },
    )
}

/// A proxy serving `config` whose credential chain holds the static key with `secret`.
fn proxy_with_key(config: &ConfigDir, secret: &str) -> Proxy {
    Proxy::start_standalone_with_env(
        config.path(),
        &[],
        &aws_env(&[
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", secret),
        ]),
    )
}

fn invocations(double: &AwsDouble) -> Vec<Value> {
    double.calls()["invoke"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invokes_are_signed_with_the_environments_keys_and_verified_by_botocore() {
    let function = LambdaRuntime::start("handler.handler");
    let double = double_with_key(&function);
    let config = ConfigDir::with("shop.yaml", &resources(&double.url()));
    let proxy = proxy_with_key(&config, SECRET);
    let client = Client::new();

    for _ in 0..2 {
        let hello = client.get(&proxy.url("/dev/hello?name=x"), &[]).await;
        assert_eq!(hello.status, 200, "{}", hello.text());
        assert_eq!(hello.json()["echo"]["path"], "/hello");
    }
    let calls = invocations(&double);
    assert_eq!(calls.len(), 2, "{calls:?}");
    for call in &calls {
        assert_eq!(call["verified"], true, "{call}");
        assert_eq!(call["accessKeyId"], ACCESS_KEY);
        // The function travels as its ARN, one percent-encoded path segment, as the SDKs send it.
        assert_eq!(
            call["function"],
            "arn%3Aaws%3Alambda%3Aeu-west-1%3A123456789012%3Afunction%3Ahello"
        );
    }
    // The secret never reaches a log line.
    assert!(
        !proxy.stderr_lines().iter().any(|l| l.contains(SECRET)),
        "the secret was logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_refused_by_the_verifier_and_answered_as_a_failed_integration() {
    let function = LambdaRuntime::start("handler.handler");
    let double = double_with_key(&function);
    let config = ConfigDir::with("shop.yaml", &resources(&double.url()));
    let proxy = proxy_with_key(&config, "not-the-secret");
    let refused = Client::new().get(&proxy.url("/dev/hello"), &[]).await;
    assert_eq!(refused.status, 502, "{}", refused.text());
    assert_eq!(refused.json(), json!({"message": "Internal server error"}));
    let calls = invocations(&double);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["verified"], false);
    assert_eq!(calls[0]["why"], "signature mismatch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_identity_credentials_are_fetched_from_sts_reused_and_refreshed_before_expiry() {
    let function = LambdaRuntime::start("handler.handler");
    let work = tempfile::tempdir().unwrap();
    let token_file = work.path().join("token");
    std::fs::write(
        &token_file,
        "eyJhbGciOiJSUzI1NiJ9.service-account-token.signature",
    )
    .unwrap();
    let role = "arn:aws:iam::123456789012:role/tollgate-proxy";

    // Credentials good for an hour: fetched once, used for every call.
    let lasting = AwsDouble::start(
        &function.endpoint(),
        AwsDoubleOptions {
            web_identity: Some((&token_file, role, 3600)),
            ..AwsDoubleOptions::default()
        },
    );
    // Credentials that expire within the refresh margin (5 minutes): fetched for every call.
    let brief = AwsDouble::start(
        &function.endpoint(),
        AwsDoubleOptions {
            web_identity: Some((&token_file, role, 120)),
            ..AwsDoubleOptions::default()
        },
    );
    let client = Client::new();
    for (double, sts_calls) in [(&lasting, 1), (&brief, 3)] {
        let config = ConfigDir::with("shop.yaml", &resources(&double.url()));
        let sts = double.url();
        let token = token_file.to_str().unwrap();
        let proxy = Proxy::start_standalone_with_env(
            config.path(),
            &[],
            &aws_env(&[
                ("AWS_WEB_IDENTITY_TOKEN_FILE", token),
                ("AWS_ROLE_ARN", role),
                ("AWS_ROLE_SESSION_NAME", "tollgate-proxy"),
                ("AWS_REGION", "eu-west-1"),
                ("AWS_ENDPOINT_URL_STS", &sts),
            ]),
        );
        for _ in 0..3 {
            let hello = client.get(&proxy.url("/dev/hello"), &[]).await;
            assert_eq!(hello.status, 200, "{}", hello.text());
        }
        let calls = double.calls();
        let sts = calls["sts"].as_array().unwrap();
        assert_eq!(sts.len(), sts_calls, "{calls}");
        assert!(
            sts.iter()
                .all(|c| c["tokenMatches"] == true && c["roleArn"] == role)
        );
        let invoke = calls["invoke"].as_array().unwrap();
        assert_eq!(invoke.len(), 3);
        for call in invoke {
            assert_eq!(call["verified"], true, "{call}");
            assert!(
                call["accessKeyId"]
                    .as_str()
                    .is_some_and(|k| k.starts_with("ASIATEST")),
                "{call}"
            );
        }
    }
}

/// EKS Pod Identity: the pods get a container credentials endpoint and a token file; the
/// chain presents the token and signs with what the endpoint gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_identity_credentials_come_from_the_container_endpoint() {
    let function = LambdaRuntime::start("handler.handler");
    let work = tempfile::tempdir().unwrap();
    let token_file = work.path().join("eks-pod-identity-token");
    std::fs::write(&token_file, "pod-identity-token-0123456789").unwrap();
    let role = "arn:aws:iam::123456789012:role/tollgate-proxy";
    let double = AwsDouble::start(
        &function.endpoint(),
        AwsDoubleOptions {
            web_identity: Some((&token_file, role, 3600)),
            ..AwsDoubleOptions::default()
        },
    );
    let config = ConfigDir::with("shop.yaml", &resources(&double.url()));
    let endpoint = format!("{}/v1/credentials", double.url());
    let proxy = Proxy::start_standalone_with_env(
        config.path(),
        &[],
        &aws_env(&[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &endpoint),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                token_file.to_str().unwrap(),
            ),
        ]),
    );
    let client = Client::new();
    for _ in 0..2 {
        let hello = client.get(&proxy.url("/dev/hello"), &[]).await;
        assert_eq!(hello.status, 200, "{}", hello.text());
    }
    let calls = double.calls();
    assert_eq!(
        calls["sts"],
        json!([{"action": "PodIdentity", "roleArn": role, "tokenMatches": true}])
    );
    for call in calls["invoke"].as_array().unwrap() {
        assert_eq!(call["verified"], true, "{call}");
    }
}

/// A custom authorizer that is an AWS Lambda function is called the same way: signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lambda_authorizer_on_aws_is_called_with_signed_requests() {
    let function = LambdaRuntime::start("handler.authorizer");
    let double = double_with_key(&function);
    let mut gw = gateway("shop", json!([{"name": "dev"}]));
    gw["spec"]["authorizers"] = json!([{
        "name": "tokens",
        "type": "TOKEN",
        "identitySource": ["$request.header.Authorization"],
        "resultTtlSeconds": 0,
        "lambda": {
            "functionName": "arn:aws:lambda:eu-west-1:123456789012:function:authorizer",
            "endpoint": double.url(),
        },
    }]);
    let mut guarded = route(
        "orders",
        "shop",
        "GET",
        "/orders",
        json!({"mock": {"statusCode": 200, "body": "[]"}}),
    );
    guarded["spec"]["authorizer"] = json!("tokens");
    let config = ConfigDir::with("shop.yaml", &[gw, guarded]);
    let proxy = proxy_with_key(&config, SECRET);
    let client = Client::new();
    let allowed = client
        .get(&proxy.url("/dev/orders"), &[("authorization", "allow")])
        .await;
    assert_eq!(allowed.status, 200, "{}", allowed.text());
    let denied = client
        .get(&proxy.url("/dev/orders"), &[("authorization", "deny")])
        .await;
    assert_eq!(denied.status, 403, "{}", denied.text());
    let calls = invocations(&double);
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(calls.iter().all(|c| c["verified"] == true), "{calls:?}");
}
