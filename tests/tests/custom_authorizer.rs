//! Custom authorizers (TOKEN and REQUEST, the role of Amazon's Lambda authorizer) end to end:
//! the real `tollgate-proxy` in standalone mode asks a test HTTP authorizer, started here and
//! keeping every question it is asked, about requests for an echo backend.
//!
//! The test authorizer answers by the token's first dot-separated word (`allow.alice` →
//! `allow`); see [`answer`]. Tokens are unique per case, so calls are counted per token. On
//! the Lambda Invoke API's path it answers as that API does (the result as the body, a
//! function error flagged by `X-Amz-Function-Error`), to drive a `lambda` authorizer; the
//! Runtime Interface Emulator of `tests/tests/lambda.rs` has no authorizer function to run.
//!
//! Needs the binary: `cargo build --workspace --bins` before
//! `cargo test -p tollgate-tests --test custom_authorizer`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tollgate_tests::backend::Backend;
use tollgate_tests::client::{Client, Response as ClientResponse};
use tollgate_tests::config::{api_key, gateway, http, route, usage_plan};
use tollgate_tests::proxy::{Proxy, free_port, serve as serve_proxy};

const EXPLICIT_DENY: &str =
    r#"{"message":"User is not authorized to access this resource with an explicit deny"}"#;
/// No statement of the policy allows the request.
const IMPLICIT_DENY: &str = r#"{"message":"User is not authorized to access this resource"}"#;
const UNAUTHORIZED: &str = r#"{"message":"Unauthorized"}"#;
const AUTHORIZER_FAILURE: &str = r#"{"message":null}"#;
const FORBIDDEN: &str = r#"{"message":"Forbidden"}"#;
// 40 characters each.
const GOOD_KEY: &str = "e2e-authz-0123456789abcdef0123456789abcd";
const WRONG_KEY: &str = "e2e-wrong-0123456789abcdef0123456789abcd";

// === The test authorizer ===

/// An HTTP authorizer on 127.0.0.1 with a runtime on a thread of its own; stopped when dropped.
struct TestAuthorizer {
    addr: SocketAddr,
    /// The path each question was POSTed to, and the question.
    questions: Arc<Mutex<Vec<(String, Value)>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestAuthorizer {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding an authorizer");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let questions = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let kept = questions.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("authorizer runtime");
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("tokio listener");
                tokio::select! {
                    () = serve(listener, kept) => {}
                    _ = stopped => {}
                }
            });
            runtime.shutdown_background();
        });
        Self {
            addr,
            questions,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/authorize", self.addr)
    }

    /// The base URL, as `lambda.endpoint`.
    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn questions(&self) -> Vec<Value> {
        self.questions
            .lock()
            .unwrap()
            .iter()
            .map(|(_, q)| q.clone())
            .collect()
    }

    fn paths(&self) -> Vec<String> {
        self.questions
            .lock()
            .unwrap()
            .iter()
            .map(|(p, _)| p.clone())
            .collect()
    }

    fn calls(&self) -> usize {
        self.questions.lock().unwrap().len()
    }

    /// How many questions carried `token`.
    fn calls_for(&self, token: &str) -> usize {
        self.questions()
            .iter()
            .filter(|q| token_of(q) == token)
            .count()
    }
}

impl Drop for TestAuthorizer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(listener: TcpListener, questions: Arc<Mutex<Vec<(String, Value)>>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let questions = questions.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let questions = questions.clone();
                async move {
                    let path = request.uri().path().to_string();
                    let body = request
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let question: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let response = if path.starts_with(INVOKE_API_PATH) {
                        invoke_api_answer(&question)
                    } else {
                        let (status, text) = answer(&question);
                        reply(status, text)
                    };
                    questions.lock().unwrap().push((path, question));
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The token of a TOKEN question, or the `token` query parameter of a REQUEST one.
fn token_of(question: &Value) -> &str {
    question["authorizationToken"]
        .as_str()
        .or_else(|| question["queryStringParameters"]["token"].as_str())
        // Payload 2.0: the identity sources' values.
        .or_else(|| question["identitySource"][0].as_str())
        .unwrap_or("")
}

/// The authorizer's answer (status, body) by the token's first word.
fn answer(question: &Value) -> (u16, String) {
    let token = token_of(question);
    let (word, who) = token.split_once('.').unwrap_or((token, ""));
    let method_arn = question["methodArn"].clone();
    let allow_get = json!({
        "Action": "execute-api:Invoke",
        "Effect": "Allow",
        "Resource": ["arn:aws:execute-api:*:*:*/*/GET/*"],
    });
    let policy = |statements: Value, extra: Value| {
        let mut answer = json!({
            "principalId": format!("user-{who}"),
            "policyDocument": {"Version": "2012-10-17", "Statement": statements},
            "context": {"tier": "gold", "n": 3, "ok": true},
        });
        if let (Some(fields), Value::Object(extra)) = (answer.as_object_mut(), extra) {
            fields.extend(extra);
        }
        (200, answer.to_string())
    };
    match word {
        // GET anywhere; other methods not.
        "allow" => policy(json!([allow_get]), json!({})),
        // Allowed everywhere, and explicitly denied this very method ARN: deny wins.
        "deny" => policy(
            json!([
                {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "*"},
                {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": method_arn},
            ]),
            json!({}),
        ),
        "key" => policy(json!([allow_get]), json!({"usageIdentifierKey": GOOD_KEY})),
        "badkey" => policy(json!([allow_get]), json!({"usageIdentifierKey": WRONG_KEY})),
        "nested" => policy(json!([allow_get]), json!({"context": {"a": {"b": 1}}})),
        "yes" => (
            200,
            json!({"isAuthorized": true, "context": {"plan": "simple"}}).to_string(),
        ),
        "no" => (200, json!({"isAuthorized": false}).to_string()),
        "forbidden" => (403, String::new()),
        "error" => (500, json!({"message": "authorizer broke"}).to_string()),
        "garbage" => (200, "this is not JSON".into()),
        _ => (401, json!({"message": "who are you?"}).to_string()),
    }
}

/// Where the Lambda Invoke API's invocation paths start.
const INVOKE_API_PATH: &str = "/2015-03-31/functions/";

/// As the Invoke API: the function's result with 200; a function that raised, flagged by
/// `X-Amz-Function-Error` with the runtime's error document. The function raises
/// `Unauthorized` where the HTTP authorizer answers other than 200, and fails on `crash`.
fn invoke_api_answer(question: &Value) -> Response<Full<Bytes>> {
    let (status, text) = answer(question);
    let raised = |message: &str, error_type: &str| {
        let mut response = reply(
            200,
            json!({"errorMessage": message, "errorType": error_type, "stackTrace": []}).to_string(),
        );
        response.headers_mut().insert(
            "x-amz-function-error",
            hyper::header::HeaderValue::from_static("Unhandled"),
        );
        response
    };
    match token_of(question).split('.').next() {
        Some("crash") => raised("boom", "KeyError"),
        _ if status == 200 => reply(200, text),
        _ => raised("Unauthorized", "Exception"),
    }
}

fn reply(status: u16, text: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    response
}

// === Set-up ===

/// An authorizer for a gateway's `spec.authorizers`.
fn authorizer(name: &str, type_: &str, source: &str, url: &str, ttl: u32) -> Value {
    json!({
        "name": name,
        "type": type_,
        "identitySource": [source],
        "http": {"url": url},
        "resultTtlSeconds": ttl,
    })
}

/// A GET route to the echo backend, guarded by `authorizer`.
fn guarded(name: &str, gw: &str, method: &str, path: &str, backend: &Backend, by: &str) -> Value {
    let mut r = route(name, gw, method, path, http(&backend.url(path)));
    r["spec"]["authorizer"] = json!(by);
    r
}

async fn get_as(client: &Client, url: &str, token: &str) -> ClientResponse {
    client.get(url, &[("Authorization", token)]).await
}

fn assert_refused(r: &ClientResponse, status: u16, body: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    assert_eq!(r.text(), body, "{what}");
}

/// The values of a header the echo backend received.
fn echoed(r: &ClientResponse, header: &str) -> Value {
    r.json()["headers"][header].clone()
}

/// No log line of the proxy (its own log, the access log) shows any of `secrets`.
fn assert_never_logged(proxy: &Proxy, secrets: &[&str]) {
    let lines = proxy
        .stderr_lines()
        .into_iter()
        .chain(proxy.access_log_lines());
    for line in lines {
        for secret in secrets {
            assert!(
                !line.contains(secret),
                "a log line shows {secret:?}: {line}"
            );
        }
    }
}

// === Tests ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_authorizer_allows_denies_and_fails_closed() {
    let backend = Backend::echo();
    let auth = TestAuthorizer::start();
    let mut gw = gateway("pets", json!([{"name": "dev"}]));
    gw["spec"]["authorizers"] = json!([
        authorizer(
            "tokens",
            "TOKEN",
            "$request.header.Authorization",
            &auth.url(),
            0
        ),
        authorizer(
            "down",
            "TOKEN",
            "$request.header.Authorization",
            &format!("http://127.0.0.1:{}/authorize", free_port()),
            0,
        ),
    ]);
    let running = serve_proxy(
        &[
            gw,
            guarded("get-pet", "pets", "GET", "/pets/{id}", &backend, "tokens"),
            guarded("put-pet", "pets", "PUT", "/pets/{id}", &backend, "tokens"),
            guarded("down", "pets", "GET", "/down", &backend, "down"),
        ],
        &[],
    );
    let proxy = &running.proxy;
    let client = Client::new();
    let url = proxy.url("/dev/pets/42");

    // Allowed: the backend learns who the caller is; a forged identity header is dropped.
    let allowed = client
        .get(
            &url,
            &[
                ("Authorization", "allow.alice-secret-1"),
                ("x-authorizer-principal-id", "forged"),
            ],
        )
        .await;
    assert_eq!(allowed.status, 200, "{}", allowed.text());
    assert_eq!(
        echoed(&allowed, "x-authorizer-principal-id"),
        json!(["user-alice-secret-1"])
    );
    assert_eq!(
        echoed(&allowed, "x-authorizer-context-tier"),
        json!(["gold"])
    );
    assert_eq!(echoed(&allowed, "x-authorizer-context-n"), json!(["3"]));
    assert_eq!(echoed(&allowed, "x-authorizer-context-ok"), json!(["true"]));
    assert_eq!(
        auth.questions(),
        vec![json!({
            "type": "TOKEN",
            "authorizationToken": "allow.alice-secret-1",
            "methodArn": "arn:aws:execute-api:local:tollgate:pets/dev/GET/pets/42",
        })]
    );

    // The same caller's policy allows GET only.
    let put = client
        .request(
            "PUT",
            &url,
            &[("Authorization", "allow.alice-secret-1")],
            "{}",
        )
        .await;
    assert_refused(
        &put,
        403,
        IMPLICIT_DENY,
        "a method the policy does not allow",
    );

    let denied = get_as(&client, &url, "deny.mallory-secret-2").await;
    assert_refused(&denied, 403, EXPLICIT_DENY, "an explicit deny");
    assert_eq!(
        denied.header("x-amzn-errortype").as_deref(),
        Some("AccessDeniedException")
    );
    let forbidden = get_as(&client, &url, "forbidden.oscar-secret-3").await;
    assert_refused(
        &forbidden,
        403,
        EXPLICIT_DENY,
        "an HTTP 403 from the authorizer",
    );

    let unauthorized = get_as(&client, &url, "nobody.secret-4").await;
    assert_refused(
        &unauthorized,
        401,
        UNAUTHORIZED,
        "an HTTP 401 from the authorizer",
    );

    // No identity source: 401 without asking.
    let calls = auth.calls();
    let missing = client.get(&url, &[]).await;
    assert_refused(&missing, 401, UNAUTHORIZED, "no Authorization header");
    let empty = get_as(&client, &url, " ").await;
    assert_refused(&empty, 401, UNAUTHORIZED, "an empty Authorization header");
    assert_eq!(
        auth.calls(),
        calls,
        "the authorizer was asked without a token"
    );

    // Failures fail closed, with Amazon's null message.
    for token in ["error.secret-5", "garbage.secret-6", "nested.secret-7"] {
        let r = get_as(&client, &url, token).await;
        assert_refused(&r, 500, AUTHORIZER_FAILURE, token);
        assert_eq!(
            r.header("x-amzn-errortype").as_deref(),
            Some("AuthorizerConfigurationException")
        );
        assert_eq!(auth.calls_for(token), 1, "{token}");
    }
    let down = get_as(&client, &proxy.url("/dev/down"), "allow.secret-8").await;
    assert_refused(&down, 500, AUTHORIZER_FAILURE, "an unreachable authorizer");

    // TTL 0: every request asks again.
    for _ in 0..2 {
        let again = get_as(&client, &url, "allow.alice-secret-1").await;
        assert_eq!(again.status, 200);
    }
    assert_eq!(auth.calls_for("allow.alice-secret-1"), 4);

    let reached: Vec<String> = backend
        .received()
        .iter()
        .map(|r| {
            r.echo["headers"]["authorization"][0]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(
        reached,
        vec!["allow.alice-secret-1"; 3],
        "only allowed requests reach the backend"
    );
    tollgate_tests::wait::eventually("every request in the access log", || {
        (proxy.access_log_lines().len() >= 13).then_some(())
    });
    assert_never_logged(
        proxy,
        &[
            "alice-secret-1",
            "mallory-secret-2",
            "oscar-secret-3",
            "secret-4",
            "secret-5",
            "secret-6",
            "secret-7",
            "secret-8",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_cached_per_identity_for_the_ttl() {
    let backend = Backend::echo();
    let auth = TestAuthorizer::start();
    let header = "$request.header.Authorization";
    let mut gw = gateway("pets", json!([{"name": "dev"}]));
    gw["spec"]["authorizers"] = json!([
        authorizer("cached", "TOKEN", header, &auth.url(), 300),
        authorizer("short", "TOKEN", header, &auth.url(), 1),
    ]);
    let running = serve_proxy(
        &[
            gw,
            guarded("get-pet", "pets", "GET", "/pets/{id}", &backend, "cached"),
            guarded("put-pet", "pets", "PUT", "/pets/{id}", &backend, "cached"),
            guarded("short", "pets", "GET", "/short", &backend, "short"),
        ],
        &[],
    );
    let proxy = &running.proxy;
    let client = Client::new();

    // One question for several requests with the same token, on any path.
    for path in ["/dev/pets/1", "/dev/pets/1", "/dev/pets/2"] {
        let r = get_as(&client, &proxy.url(path), "allow.bob").await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        // The cached answer still carries the identity.
        assert_eq!(echoed(&r, "x-authorizer-principal-id"), json!(["user-bob"]));
    }
    assert_eq!(auth.calls_for("allow.bob"), 1);

    // The cached policy is evaluated against each request: it allows GET only.
    let put = client
        .request(
            "PUT",
            &proxy.url("/dev/pets/1"),
            &[("Authorization", "allow.bob")],
            "",
        )
        .await;
    assert_refused(
        &put,
        403,
        IMPLICIT_DENY,
        "PUT with a cached GET-only policy",
    );
    assert_eq!(auth.calls_for("allow.bob"), 1);

    // Another token is another identity.
    let carol = get_as(&client, &proxy.url("/dev/pets/1"), "allow.carol").await;
    assert_eq!(carol.status, 200);
    assert_eq!(
        echoed(&carol, "x-authorizer-principal-id"),
        json!(["user-carol"])
    );
    assert_eq!(auth.calls_for("allow.carol"), 1);

    // Denials are cached; failures and Unauthorized are not.
    for (token, status, body, calls) in [
        ("deny.dave", 403, EXPLICIT_DENY, 1),
        ("error.eve", 500, AUTHORIZER_FAILURE, 2),
        ("nobody.frank", 401, UNAUTHORIZED, 2),
    ] {
        for _ in 0..2 {
            let r = get_as(&client, &proxy.url("/dev/pets/1"), token).await;
            assert_refused(&r, status, body, token);
        }
        assert_eq!(auth.calls_for(token), calls, "{token}");
    }

    // Answers expire with the authorizer's TTL.
    let short = proxy.url("/dev/short");
    for _ in 0..2 {
        assert_eq!(get_as(&client, &short, "allow.grace").await.status, 200);
    }
    assert_eq!(auth.calls_for("allow.grace"), 1);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(get_as(&client, &short, "allow.grace").await.status, 200);
    assert_eq!(auth.calls_for("allow.grace"), 2, "the answer expired");

    // The same token through another authorizer is asked again: caches are per authorizer.
    assert_eq!(
        get_as(&client, &proxy.url("/dev/pets/3"), "allow.grace")
            .await
            .status,
        200
    );
    assert_eq!(auth.calls_for("allow.grace"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_authorizer_gets_the_request_and_may_answer_simply() {
    let backend = Backend::echo();
    let auth = TestAuthorizer::start();
    let mut gw = gateway(
        "shop",
        json!([{"name": "dev", "variables": {"env": "test"}}]),
    );
    gw["spec"]["authorizers"] = json!([authorizer(
        "requests",
        "REQUEST",
        "$request.querystring.token",
        &auth.url(),
        300
    )]);
    let running = serve_proxy(
        &[
            gw,
            guarded("item", "shop", "GET", "/items/{id}", &backend, "requests"),
        ],
        &[],
    );
    let proxy = &running.proxy;
    let client = Client::new();

    let r = client
        .get(
            &proxy.url("/dev/items/7?token=allow.q1&color=red"),
            &[("X-Custom", "hello")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(echoed(&r, "x-authorizer-principal-id"), json!(["user-q1"]));
    let questions = auth.questions();
    assert_eq!(questions.len(), 1);
    let q = &questions[0];
    assert_eq!(q["type"], "REQUEST");
    assert_eq!(
        q["methodArn"],
        "arn:aws:execute-api:local:tollgate:shop/dev/GET/items/7"
    );
    assert_eq!(q["resource"], "/items/{id}");
    assert_eq!(q["path"], "/items/7");
    assert_eq!(q["httpMethod"], "GET");
    assert_eq!(q["headers"]["x-custom"], "hello");
    assert_eq!(
        q["queryStringParameters"],
        json!({"token": "allow.q1", "color": "red"})
    );
    assert_eq!(q["pathParameters"], json!({"id": "7"}));
    assert_eq!(q["stageVariables"], json!({"env": "test"}));
    let context = &q["requestContext"];
    assert_eq!(
        context["requestId"].as_str(),
        r.header("x-amzn-requestid").as_deref()
    );
    assert_eq!(context["stage"], "dev");
    assert_eq!(context["accountId"], "tollgate");
    assert_eq!(context["apiId"], "shop");
    assert_eq!(context["resourcePath"], "/items/{id}");
    assert_eq!(context["httpMethod"], "GET");
    assert_eq!(context["identity"]["sourceIp"], "127.0.0.1");
    assert!(
        q.get("body").is_none(),
        "the body is not read before auth: {q}"
    );

    // Without the query parameter: 401, not asked.
    let missing = client.get(&proxy.url("/dev/items/7?color=red"), &[]).await;
    assert_refused(&missing, 401, UNAUTHORIZED, "no token parameter");
    assert_eq!(auth.calls(), 1);

    // The identity source values are the cache key: another item, same token, no question.
    let other = client
        .get(&proxy.url("/dev/items/8?token=allow.q1"), &[])
        .await;
    assert_eq!(other.status, 200);
    assert_eq!(auth.calls(), 1);

    // The simple format.
    let yes = client
        .get(&proxy.url("/dev/items/7?token=yes.s1"), &[])
        .await;
    assert_eq!(yes.status, 200, "{}", yes.text());
    assert_eq!(echoed(&yes, "x-authorizer-context-plan"), json!(["simple"]));
    assert_eq!(echoed(&yes, "x-authorizer-principal-id"), Value::Null);
    let no = client
        .get(&proxy.url("/dev/items/7?token=no.s2"), &[])
        .await;
    assert_refused(&no, 403, EXPLICIT_DENY, "isAuthorized false");
    assert_eq!(auth.calls(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_usage_identifier_key_is_the_api_key() {
    let auth = TestAuthorizer::start();
    let mut gw = gateway("vault", json!([{"name": "dev"}]));
    gw["spec"]["apiKeySource"] = json!("AUTHORIZER");
    gw["spec"]["authorizers"] = json!([authorizer(
        "tokens",
        "TOKEN",
        "$request.header.Authorization",
        &auth.url(),
        300
    )]);
    let mut secret = route(
        "secret",
        "vault",
        "GET",
        "/secret",
        tollgate_tests::config::mock(200, r#"{"secret":true}"#),
    );
    secret["spec"]["apiKeyRequired"] = json!(true);
    secret["spec"]["authorizer"] = json!("tokens");
    let running = serve_proxy(
        &[
            gw,
            secret,
            api_key("acme", GOOD_KEY, true),
            usage_plan("basic", "vault", "dev", &["acme"]),
        ],
        &[],
    );
    let proxy = &running.proxy;
    let client = Client::new();
    let url = proxy.url("/dev/secret");

    let good = get_as(&client, &url, "key.acme-user").await;
    assert_eq!(good.status, 200, "{}", good.text());
    assert_eq!(good.json(), json!({"secret": true}));
    let line = proxy.access_log_entry(&good.header("x-amzn-requestid").unwrap());
    assert_eq!(line["apiKeyId"], "acme");

    let unknown = get_as(&client, &url, "badkey.someone").await;
    assert_refused(&unknown, 403, FORBIDDEN, "an unknown usage identifier key");

    // With apiKeySource AUTHORIZER the x-api-key header counts for nothing.
    let header_key = client
        .get(
            &url,
            &[("Authorization", "allow.nokey"), ("x-api-key", GOOD_KEY)],
        )
        .await;
    assert_refused(&header_key, 403, FORBIDDEN, "a key in x-api-key");

    tollgate_tests::wait::eventually("every request in the access log", || {
        (proxy.access_log_lines().len() >= 3).then_some(())
    });
    assert_never_logged(proxy, &[GOOD_KEY, WRONG_KEY]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lambda_authorizer_is_called_through_the_invoke_api() {
    let backend = Backend::echo();
    let auth = TestAuthorizer::start();
    let mut gw = gateway("pets", json!([{"name": "dev"}]));
    gw["spec"]["authorizers"] = json!([{
        "name": "function",
        "type": "TOKEN",
        "identitySource": ["$request.header.Authorization"],
        "lambda": {"endpoint": auth.endpoint(), "functionName": "authz"},
        "resultTtlSeconds": 0,
    }]);
    let running = serve_proxy(
        &[
            gw,
            guarded("get-pet", "pets", "GET", "/pets/{id}", &backend, "function"),
        ],
        &[],
    );
    let proxy = &running.proxy;
    let client = Client::new();
    let url = proxy.url("/dev/pets/42");

    let allowed = get_as(&client, &url, "allow.lambda-user").await;
    assert_eq!(allowed.status, 200, "{}", allowed.text());
    assert_eq!(
        echoed(&allowed, "x-authorizer-principal-id"),
        json!(["user-lambda-user"])
    );
    assert_eq!(
        auth.paths(),
        vec!["/2015-03-31/functions/authz/invocations".to_string()]
    );
    assert_eq!(auth.questions()[0]["type"], "TOKEN");

    let denied = get_as(&client, &url, "deny.lambda-user").await;
    assert_refused(
        &denied,
        403,
        EXPLICIT_DENY,
        "a Deny policy from the function",
    );
    let raised = get_as(&client, &url, "nobody.lambda-user").await;
    assert_refused(
        &raised,
        401,
        UNAUTHORIZED,
        "the function raised Unauthorized",
    );
    for token in ["crash.lambda-user", "garbage.lambda-user"] {
        let r = get_as(&client, &url, token).await;
        assert_refused(&r, 500, AUTHORIZER_FAILURE, token);
    }
    assert_eq!(auth.calls(), 5);
}

/// On an HTTP API a REQUEST authorizer gets the payload 2.0 event (`routeArn`,
/// `identitySource`, `rawPath`, …) and is answered as an HTTP API answers: a denial is 403
/// `Forbidden`, a failing authorizer 500 `Internal Server Error`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_apis_request_authorizer_gets_payload_2_and_simple_answers_work() {
    let backend = Backend::echo();
    let auth = TestAuthorizer::start();
    let mut gw = gateway("shop", json!([{"name": "$default"}]));
    gw["spec"]["protocol"] = json!("HTTP");
    gw["spec"]["authorizers"] = json!([authorizer(
        "requests",
        "REQUEST",
        "$request.header.Authorization",
        &auth.url(),
        0
    )]);
    let running = serve_proxy(
        &[
            gw,
            guarded("item", "shop", "GET", "/items/{id}", &backend, "requests"),
        ],
        &[],
    );
    let proxy = &running.proxy;
    let client = Client::new();

    let yes = client
        .get(
            &proxy.url("/items/7?color=red"),
            &[("Authorization", "yes.h1"), ("Cookie", "a=1")],
        )
        .await;
    assert_eq!(yes.status, 200, "{}", yes.text());
    assert_eq!(echoed(&yes, "x-authorizer-context-plan"), json!(["simple"]));
    let questions = auth.questions();
    let q = &questions[0];
    assert_eq!(q["version"], "2.0", "{q}");
    assert_eq!(q["type"], "REQUEST");
    assert_eq!(
        q["routeArn"],
        "arn:aws:execute-api:local:tollgate:shop/$default/GET/items/7"
    );
    assert_eq!(q["identitySource"], json!(["yes.h1"]));
    assert_eq!(q["routeKey"], "GET /items/{id}");
    assert_eq!(q["rawPath"], "/items/7");
    assert_eq!(q["rawQueryString"], "color=red");
    assert_eq!(q["cookies"], json!(["a=1"]));
    assert_eq!(q["pathParameters"], json!({"id": "7"}));
    assert_eq!(q["requestContext"]["http"]["method"], "GET");
    assert!(
        q.get("methodArn").is_none() && q.get("body").is_none(),
        "{q}"
    );

    let no = get_as(&client, &proxy.url("/items/7"), "no.h2").await;
    assert_refused(&no, 403, FORBIDDEN, "isAuthorized false on an HTTP API");
    let error = get_as(&client, &proxy.url("/items/7"), "error.h3").await;
    assert_refused(
        &error,
        500,
        r#"{"message":"Internal Server Error"}"#,
        "a failing authorizer on an HTTP API",
    );
    let missing = client.get(&proxy.url("/items/7"), &[]).await;
    assert_refused(&missing, 401, UNAUTHORIZED, "no identity source");
}
