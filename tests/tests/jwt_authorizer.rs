//! JWT authorizers end to end: the real `tollgate-proxy` in standalone mode verifies tokens
//! signed inside the test, with RS256, ES256 and EdDSA keys generated here, against a JWKS
//! that a test issuer on 127.0.0.1 publishes and can change, slow down or break. The issuer
//! counts its JWKS fetches, so the tests also see when the proxy fetches and when it must not.
//! The same server plays a Lambda Invoke API that answers with the event it got.
//!
//! Needs the binary: `cargo build --workspace --bins` before
//! `cargo test -p tollgate-tests --test jwt_authorizer`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tollgate_tests::backend::Backend;
use tollgate_tests::client::{Client, Response as ClientResponse};
use tollgate_tests::config::{gateway, http, route};
use tollgate_tests::proxy::{Served, free_port, serve as serve_proxy};
use tollgate_tests::wait::eventually_async;

const ISSUER: &str = "https://issuer.tollgate.test";
const UNAUTHORIZED: &str = r#"{"message":"Unauthorized"}"#;
const FORBIDDEN: &str = r#"{"message":"Forbidden"}"#;
const AUTHORIZER_ERROR: &str = r#"{"message":null}"#;

// === Keys and tokens ===

/// A private key of the issuer, the JWK of its public half, and the `kid` both carry.
struct SigningKey {
    kid: String,
    algorithm: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl SigningKey {
    fn rsa(kid: &str) -> SigningKey {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::traits::PublicKeyParts;
        let private = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).expect("RSA key");
        let der = private.to_pkcs1_der().expect("PKCS#1 DER");
        SigningKey {
            kid: kid.into(),
            algorithm: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            jwk: json!({
                "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                "n": b64(&private.n().to_bytes_be()),
                "e": b64(&private.e().to_bytes_be()),
            }),
        }
    }

    fn ec(kid: &str) -> SigningKey {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        use p256::pkcs8::EncodePrivateKey;
        let private = p256::SecretKey::random(&mut rand_core::OsRng);
        let der = private.to_pkcs8_der().expect("PKCS#8 DER");
        let point = private.public_key().to_encoded_point(false);
        SigningKey {
            kid: kid.into(),
            algorithm: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            jwk: json!({
                "kty": "EC", "kid": kid, "crv": "P-256", "use": "sig",
                "x": b64(point.x().expect("x")),
                "y": b64(point.y().expect("y")),
            }),
        }
    }

    fn ed(kid: &str) -> SigningKey {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let private = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
        let der = private.to_pkcs8_der().expect("PKCS#8 DER");
        SigningKey {
            kid: kid.into(),
            algorithm: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            jwk: json!({
                "kty": "OKP", "kid": kid, "crv": "Ed25519", "alg": "EdDSA",
                "x": b64(private.verifying_key().as_bytes()),
            }),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }

    /// Signs with this key but names `kid` in the header.
    fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("signing")
    }
}

fn jwks(keys: &[&SigningKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// Claims that pass: the issuer, audience `pets`, valid for five minutes; `extra` is merged in
/// (a null value removes a claim).
fn claims(extra: Value) -> Value {
    let mut c = json!({
        "iss": ISSUER,
        "aud": "pets",
        "sub": "user-1",
        "iat": now(),
        "nbf": now() - 5,
        "exp": now() + 300,
    });
    for (k, v) in extra.as_object().expect("an object") {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

/// A token in compact form from raw parts, for what no library would sign.
fn raw_token(header: Value, payload: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes()),
        b64(signature)
    )
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

// === The issuer ===

/// What the issuer answers to `GET /jwks.json`.
#[derive(Clone)]
struct JwksAnswer {
    status: u16,
    body: String,
    delay: Duration,
}

/// An HTTP server on 127.0.0.1 with a thread and runtime of its own: the JWKS at
/// `/jwks.json`, and a Lambda Invoke API answering any POST with a 2.0 result whose body is
/// the event received.
struct Issuer {
    addr: SocketAddr,
    answer: Arc<Mutex<JwksAnswer>>,
    fetches: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Issuer {
    fn serving(keys: &[&SigningKey]) -> Issuer {
        Self::start(JwksAnswer {
            status: 200,
            body: jwks(keys).to_string(),
            delay: Duration::ZERO,
        })
    }

    fn start(answer: JwksAnswer) -> Issuer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding the issuer");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = Arc::new(Mutex::new(answer));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let (a, f) = (answer.clone(), fetches.clone());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("issuer runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let accept = async {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        let (a, f) = (a.clone(), f.clone());
                        let service = service_fn(move |request| {
                            let (a, f) = (a.clone(), f.clone());
                            async move { Ok::<_, Infallible>(serve(request, &a, &f).await) }
                        });
                        tokio::spawn(
                            hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service),
                        );
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = stopped => {}
                }
            });
            runtime.shutdown_background();
        });
        Issuer {
            addr,
            answer,
            fetches,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn jwks_uri(&self) -> String {
        format!("http://{}/jwks.json", self.addr)
    }

    fn lambda_endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    fn set(&self, answer: JwksAnswer) {
        *self.answer.lock().unwrap() = answer;
    }

    fn publish(&self, keys: &[&SigningKey]) {
        self.set(JwksAnswer {
            status: 200,
            body: jwks(keys).to_string(),
            delay: Duration::ZERO,
        });
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    request: Request<Incoming>,
    answer: &Mutex<JwksAnswer>,
    fetches: &AtomicUsize,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let (status, body) = match (parts.method.as_str(), parts.uri.path()) {
        ("GET", "/jwks.json") => {
            fetches.fetch_add(1, Ordering::SeqCst);
            let answer = answer.lock().unwrap().clone();
            tokio::time::sleep(answer.delay).await;
            (answer.status, answer.body)
        }
        ("POST", _) => {
            let event = String::from_utf8_lossy(&body).into_owned();
            let result = json!({
                "statusCode": 200,
                "headers": {"content-type": "application/json"},
                "body": event,
            });
            (200, result.to_string())
        }
        _ => (404, String::new()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).expect("a status");
    response
}

// === The gateway ===

/// A JWT authorizer for [`ISSUER`], audiences `pets` and `stores`.
fn authorizer(name: &str, jwks_uri: &str) -> Value {
    json!({
        "name": name,
        "type": "JWT",
        "jwt": {"issuer": ISSUER, "audiences": ["pets", "stores"], "jwksUri": jwks_uri},
    })
}

fn pets_gateway(authorizers: Value) -> Value {
    let mut gw = gateway("pets", json!([{"name": "dev"}]));
    gw["spec"]["authorizers"] = authorizers;
    gw
}

/// A route of `pets` behind `authorizer`, requiring one of `scopes` when there are any.
fn guarded(name: &str, path: &str, authorizer: &str, integration: Value, scopes: &[&str]) -> Value {
    let mut r = route(name, "pets", "GET", path, integration);
    r["spec"]["authorizer"] = json!(authorizer);
    if !scopes.is_empty() {
        r["spec"]["authorizationScopes"] = json!(scopes);
    }
    r
}

/// One authorizer `issuer` and `GET /pets` behind it, to an echo backend.
fn one_route(issuer: &Issuer, backend: &Backend, scopes: &[&str]) -> Served {
    serve_proxy(
        &[
            pets_gateway(json!([authorizer("issuer", &issuer.jwks_uri())])),
            guarded(
                "pets-list",
                "/pets",
                "issuer",
                http(&backend.url("/pets")),
                scopes,
            ),
        ],
        &[],
    )
}

async fn get_with_token(client: &Client, url: &str, authorization: Option<&str>) -> ClientResponse {
    match authorization {
        Some(value) => client.get(url, &[("authorization", value)]).await,
        None => client.get(url, &[]).await,
    }
}

fn assert_unauthorized(r: &ClientResponse, what: &str) {
    assert_eq!(r.status, 401, "{what}: {}", r.text());
    assert_eq!(r.text(), UNAUTHORIZED, "{what}");
    assert_eq!(
        r.header("x-amzn-errortype").as_deref(),
        Some("UnauthorizedException"),
        "{what}"
    );
}

/// The first value of a header as the echo backend saw it.
fn seen(echo: &Value, header: &str) -> Option<String> {
    echo["headers"][header][0].as_str().map(str::to_string)
}

// === Tests ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_signed_with_rs256_es256_and_eddsa_reach_the_backend_with_their_claims() {
    let (rsa, ec, ed) = (
        SigningKey::rsa("rsa-1"),
        SigningKey::ec("ec-1"),
        SigningKey::ed("ed-1"),
    );
    let issuer = Issuer::serving(&[&rsa, &ec, &ed]);
    let backend = Backend::echo();
    let proxy = one_route(&issuer, &backend, &[]);
    let client = Client::new();
    let url = proxy.url("/dev/pets");

    let mut signatures = Vec::new();
    for (key, with_prefix) in [(&rsa, true), (&ec, false), (&ed, true)] {
        let what = format!("{:?}", key.algorithm);
        let sub = format!("user-{what}");
        let token = key.sign(&claims(json!({
            "sub": sub,
            "aud": ["other", "stores"],
            "scope": "pets:read pets:write",
            "tier": "gold",
        })));
        signatures.push(token.rsplit('.').next().unwrap().to_string());
        let value = if with_prefix { bearer(&token) } else { token };
        let r = client
            .get(
                &url,
                &[
                    ("authorization", value.as_str()),
                    // A client cannot pose as the authorizer.
                    ("x-authorizer-claim-role", "admin"),
                ],
            )
            .await;
        assert_eq!(r.status, 200, "{what}: {}", r.text());
        let echo = r.json();
        assert_eq!(
            seen(&echo, "x-authorizer-principal-id"),
            Some(sub.clone()),
            "{what}"
        );
        assert_eq!(seen(&echo, "x-authorizer-claim-sub"), Some(sub), "{what}");
        assert_eq!(
            seen(&echo, "x-authorizer-claim-iss").as_deref(),
            Some(ISSUER),
            "{what}"
        );
        assert_eq!(
            seen(&echo, "x-authorizer-claim-tier").as_deref(),
            Some("gold"),
            "{what}"
        );
        assert_eq!(
            seen(&echo, "x-authorizer-claim-aud").as_deref(),
            Some(r#"["other","stores"]"#),
            "{what}"
        );
        assert_eq!(
            seen(&echo, "x-authorizer-scopes").as_deref(),
            Some("pets:read pets:write"),
            "{what}"
        );
        assert_eq!(seen(&echo, "x-authorizer-claim-role"), None, "{what}");
    }
    assert_eq!(backend.received().len(), 3);
    assert_eq!(issuer.fetches(), 1, "one fetch brings every key of the set");

    // Tokens are never logged.
    tollgate_tests::wait::eventually("every request in the access log", || {
        (proxy.access_log_lines().len() >= 3).then_some(())
    });
    let logs = proxy.stderr_lines();
    assert!(
        logs.iter().any(|l| l.contains("fetched the JWKS")),
        "the proxy logs its fetches: {logs:?}"
    );
    for line in proxy.access_log_lines().iter().chain(&logs) {
        for signature in &signatures {
            assert!(
                !line.contains(signature.as_str()),
                "a token is logged: {line}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_tokens_get_401_and_never_reach_the_backend() {
    let (rsa, ec) = (SigningKey::rsa("rsa-1"), SigningKey::ec("ec-1"));
    let issuer = Issuer::serving(&[&rsa, &ec]);
    let backend = Backend::echo();
    let proxy = one_route(&issuer, &backend, &[]);
    let client = Client::new();
    let url = proxy.url("/dev/pets");

    // Refused on their face: no key is needed, so the JWKS is not fetched.
    let good_claims = claims(json!({}));
    let hs256 = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("rsa-1".into());
        // An HMAC "signed" with the public key's modulus: the classic algorithm confusion.
        let secret = rsa.jwk["n"].as_str().unwrap().as_bytes().to_vec();
        jsonwebtoken::encode(&header, &good_claims, &EncodingKey::from_secret(&secret)).unwrap()
    };
    let no_kid = {
        let header = Header::new(Algorithm::RS256);
        jsonwebtoken::encode(&header, &good_claims, &rsa.encoding).unwrap()
    };
    for (what, authorization) in [
        ("no Authorization header", None),
        ("an empty Bearer", Some("Bearer ".to_string())),
        ("not a JWT", Some(bearer("not-a-jwt"))),
        (
            "alg none",
            Some(bearer(&raw_token(
                json!({"alg": "none", "kid": "rsa-1"}),
                &good_claims,
                b"",
            ))),
        ),
        ("HS256 with the RSA key's kid", Some(bearer(&hs256))),
        ("no kid", Some(bearer(&no_kid))),
    ] {
        let r = get_with_token(&client, &url, authorization.as_deref()).await;
        assert_unauthorized(&r, what);
    }
    assert_eq!(
        issuer.fetches(),
        0,
        "tokens refused by their header cost no fetch"
    );

    let impostor = SigningKey::rsa("rsa-1");
    let tampered = {
        let token = rsa.sign(&good_claims);
        let parts: Vec<&str> = token.split('.').collect();
        let forged = claims(json!({"sub": "admin"}));
        format!(
            "{}.{}.{}",
            parts[0],
            b64(forged.to_string().as_bytes()),
            parts[2]
        )
    };
    for (what, token) in [
        (
            "expired",
            rsa.sign(&claims(json!({"iat": now() - 600, "exp": now() - 120}))),
        ),
        (
            "not valid yet",
            rsa.sign(&claims(json!({"nbf": now() + 3600, "exp": now() + 7200}))),
        ),
        ("no exp", rsa.sign(&claims(json!({"exp": null})))),
        (
            "exp as a string",
            rsa.sign(&claims(json!({"exp": (now() + 300).to_string()}))),
        ),
        (
            "another audience",
            rsa.sign(&claims(json!({"aud": "billing"}))),
        ),
        ("no audience", rsa.sign(&claims(json!({"aud": null})))),
        (
            "another issuer",
            rsa.sign(&claims(json!({"iss": "https://evil.example"}))),
        ),
        ("signed by another key", impostor.sign(&good_claims)),
        ("a tampered payload", tampered),
        (
            "ES256 naming the RSA key",
            ec.sign_as("rsa-1", &good_claims),
        ),
        ("an unknown kid", rsa.sign_as("rsa-9", &good_claims)),
    ] {
        let r = get_with_token(&client, &url, Some(&bearer(&token))).await;
        assert_unauthorized(&r, what);
    }
    assert!(
        backend.received().is_empty(),
        "a refused token reached the backend"
    );

    // The same key and claims, untouched, pass: the refusals above were the tokens' fault.
    let r = get_with_token(&client, &url, Some(&bearer(&rsa.sign(&good_claims)))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = get_with_token(&client, &url, Some(&ec.sign(&good_claims))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(issuer.fetches(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_with_scopes_admits_a_token_holding_one_of_them() {
    let ed = SigningKey::ed("ed-1");
    let issuer = Issuer::serving(&[&ed]);
    let backend = Backend::echo();
    let proxy = serve_proxy(
        &[
            pets_gateway(json!([authorizer("issuer", &issuer.jwks_uri())])),
            guarded(
                "pets-list",
                "/pets",
                "issuer",
                http(&backend.url("/pets")),
                &["pets:read", "pets:admin"],
            ),
            guarded("open", "/open", "issuer", http(&backend.url("/open")), &[]),
        ],
        &[],
    );
    let client = Client::new();
    let pets = proxy.url("/dev/pets");

    for (what, scopes, status) in [
        ("scope holds one", json!({"scope": "other pets:read"}), 200),
        (
            "scp array holds the other",
            json!({"scp": ["pets:admin"]}),
            200,
        ),
        ("scp string", json!({"scp": "x pets:admin"}), 200),
        ("scope holds neither", json!({"scope": "pets:write"}), 403),
        ("a prefix is not a scope", json!({"scope": "pets"}), 403),
        ("no scope at all", json!({}), 403),
    ] {
        let token = ed.sign(&claims(scopes));
        let r = get_with_token(&client, &pets, Some(&bearer(&token))).await;
        assert_eq!(r.status, status, "{what}: {}", r.text());
        if status == 403 {
            assert_eq!(r.text(), FORBIDDEN, "{what}");
            assert_eq!(
                r.header("x-amzn-errortype").as_deref(),
                Some("ForbiddenException"),
                "{what}"
            );
        } else {
            assert_eq!(r.json()["path"], "/pets", "{what}");
        }
    }

    // The token is checked before the scopes: an expired one is 401 even without scopes.
    let expired = ed.sign(&claims(json!({"exp": now() - 600, "iat": now() - 900})));
    let r = get_with_token(&client, &pets, Some(&bearer(&expired))).await;
    assert_unauthorized(&r, "an expired token on a scoped route");

    // A route without scopes admits a valid token with none.
    let r = get_with_token(
        &client,
        &proxy.url("/dev/open"),
        Some(&bearer(&ed.sign(&claims(json!({}))))),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(backend.received().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_fetched_on_its_first_token_and_refetches_are_rate_limited() {
    let (old, new) = (SigningKey::rsa("2024-01"), SigningKey::ed("2024-02"));
    let issuer = Issuer::serving(&[&old]);
    let backend = Backend::echo();
    let proxy = one_route(&issuer, &backend, &[]);
    let client = Client::new();
    let url = proxy.url("/dev/pets");
    let old_token = bearer(&old.sign(&claims(json!({}))));
    let new_token = bearer(&new.sign(&claims(json!({"sub": "user-2"}))));

    let r = get_with_token(&client, &url, Some(&old_token)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(issuer.fetches(), 1);

    // The issuer publishes a new key next to the old one.
    issuer.publish(&[&old, &new]);

    // Right after a fetch, an unknown kid does not make the proxy fetch again, however many
    // tokens name one: they are refused.
    let r = get_with_token(&client, &url, Some(&new_token)).await;
    assert_unauthorized(&r, "a new kid within the refetch interval");
    for i in 0..20 {
        let token = new.sign_as(&format!("made-up-{i}"), &claims(json!({})));
        let r = get_with_token(&client, &url, Some(&bearer(&token))).await;
        assert_unauthorized(&r, "a made-up kid");
    }
    assert_eq!(
        issuer.fetches(),
        1,
        "a flood of unknown kids fetched the JWKS"
    );

    // Once the interval (5 s) has passed, the new kid's token makes the proxy fetch the set.
    let started = Instant::now();
    let echo = eventually_async("the new key to be accepted", || async {
        let r = get_with_token(&client, &url, Some(&new_token)).await;
        (r.status == 200).then(|| r.json())
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the new key took {:?}",
        started.elapsed()
    );
    assert_eq!(
        seen(&echo, "x-authorizer-claim-sub").as_deref(),
        Some("user-2")
    );
    assert_eq!(issuer.fetches(), 2, "one refetch, however many tries");

    let r = get_with_token(&client, &url, Some(&old_token)).await;
    assert_eq!(
        r.status,
        200,
        "the old key is still published: {}",
        r.text()
    );
    assert_eq!(issuer.fetches(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_usable_jwks_the_authorizer_fails_closed_with_500() {
    let ed = SigningKey::ed("ed-1");
    let closed = format!("http://127.0.0.1:{}/jwks.json", free_port());
    let slow = Issuer::start(JwksAnswer {
        status: 200,
        body: jwks(&[&ed]).to_string(),
        delay: Duration::from_secs(5),
    });
    let huge = Issuer::start(JwksAnswer {
        status: 200,
        // Valid JSON with the key, padded past 150,000 bytes.
        body: json!({"keys": [ed.jwk.clone()], "padding": "x".repeat(150_000)}).to_string(),
        delay: Duration::ZERO,
    });
    let junk = Issuer::start(JwksAnswer {
        status: 200,
        body: "<html>sign-in</html>".into(),
        delay: Duration::ZERO,
    });
    let failing = Issuer::start(JwksAnswer {
        status: 503,
        body: String::new(),
        delay: Duration::ZERO,
    });
    let backend = Backend::echo();
    let mut resources = vec![pets_gateway(json!([
        authorizer("closed", &closed),
        authorizer("slow", &slow.jwks_uri()),
        authorizer("huge", &huge.jwks_uri()),
        authorizer("junk", &junk.jwks_uri()),
        authorizer("failing", &failing.jwks_uri()),
    ]))];
    for name in ["closed", "slow", "huge", "junk", "failing"] {
        resources.push(guarded(
            name,
            &format!("/{name}"),
            name,
            http(&backend.url("/")),
            &[],
        ));
    }
    let proxy = serve_proxy(&resources, &[]);
    let client = Client::new();
    let token = bearer(&ed.sign(&claims(json!({}))));

    for name in ["closed", "slow", "huge", "junk", "failing"] {
        let url = proxy.url(&format!("/dev/{name}"));
        // Without a token the authorizer is not consulted: 401, not 500.
        assert_unauthorized(&get_with_token(&client, &url, None).await, name);

        let started = Instant::now();
        let r = get_with_token(&client, &url, Some(&token)).await;
        let took = started.elapsed();
        assert_eq!(r.status, 500, "{name}: {}", r.text());
        assert_eq!(r.text(), AUTHORIZER_ERROR, "{name}");
        assert_eq!(
            r.header("x-amzn-errortype").as_deref(),
            Some("AuthorizerConfigurationException"),
            "{name}"
        );
        if name == "slow" {
            assert!(
                took >= Duration::from_millis(1_400) && took < Duration::from_millis(4_500),
                "the 1.5 s fetch timeout: the request took {took:?}"
            );
        }
    }
    for issuer in [&slow, &huge, &junk, &failing] {
        assert_eq!(issuer.fetches(), 1);
    }
    // Within the refetch interval a failing issuer is not asked again.
    let r = get_with_token(&client, &proxy.url("/dev/failing"), Some(&token)).await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(failing.fetches(), 1);
    assert!(backend.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_outage_after_a_fetch_keeps_known_keys_working() {
    let ed = SigningKey::ed("ed-1");
    let issuer = Issuer::serving(&[&ed]);
    let backend = Backend::echo();
    let proxy = one_route(&issuer, &backend, &[]);
    let client = Client::new();
    let url = proxy.url("/dev/pets");
    let token = bearer(&ed.sign(&claims(json!({}))));

    assert_eq!(
        get_with_token(&client, &url, Some(&token)).await.status,
        200
    );
    issuer.set(JwksAnswer {
        status: 503,
        body: String::new(),
        delay: Duration::ZERO,
    });
    let r = get_with_token(&client, &url, Some(&token)).await;
    assert_eq!(r.status, 200, "a cached key needs no issuer: {}", r.text());

    // An unknown kid is the token's problem (401), not the gateway's, while a set is cached;
    // even once the proxy may ask the issuer again and finds it down.
    let stranger = bearer(&ed.sign_as("ed-9", &claims(json!({}))));
    assert_unauthorized(
        &get_with_token(&client, &url, Some(&stranger)).await,
        "unknown kid",
    );
    eventually_async("a refetch of the failing issuer", || async {
        let r = get_with_token(&client, &url, Some(&stranger)).await;
        assert_unauthorized(&r, "unknown kid, issuer down");
        (issuer.fetches() == 2).then_some(())
    })
    .await;
    let r = get_with_token(&client, &url, Some(&token)).await;
    assert_eq!(r.status, 200, "after a failed refetch: {}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lambda_2_0_function_gets_the_claims_and_scopes() {
    let ec = SigningKey::ec("ec-1");
    let issuer = Issuer::serving(&[&ec]);
    let proxy = serve_proxy(
        &[
            pets_gateway(json!([authorizer("issuer", &issuer.jwks_uri())])),
            guarded(
                "pets-fn",
                "/pets",
                "issuer",
                json!({"lambda": {
                    "endpoint": issuer.lambda_endpoint(),
                    "functionName": "function",
                    "payloadFormatVersion": "2.0",
                }}),
                &["pets:read"],
            ),
        ],
        &[],
    );
    let token = ec.sign(&claims(json!({
        "sub": "user-7",
        "scp": ["pets:read", "pets:write"],
        "cognito:groups": ["admins"],
    })));
    let r = get_with_token(
        &Client::new(),
        &proxy.url("/dev/pets"),
        Some(&bearer(&token)),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let event = r.json();
    assert_eq!(event["version"], "2.0");
    let jwt = &event["requestContext"]["authorizer"]["jwt"];
    assert_eq!(jwt["scopes"], json!(["pets:read", "pets:write"]));
    assert_eq!(jwt["claims"]["sub"], "user-7");
    assert_eq!(jwt["claims"]["iss"], ISSUER);
    assert_eq!(jwt["claims"]["aud"], "pets");
    assert_eq!(jwt["claims"]["cognito:groups"], json!(["admins"]));
}
