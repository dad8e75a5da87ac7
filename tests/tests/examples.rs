//! The examples under `deploy/examples/` do what their comments say, served by the real
//! `tollgate-proxy` in standalone mode. (`kubernetes_resources.rs` applies every one of them
//! to a real API server; `throttling.rs` sells the tenancy example's plans; `lambda.rs` runs
//! the Lambda example.)
//!
//! Needs the binary: `cargo build --workspace --bins` before
//! `cargo test -p tollgate-tests --test examples`.

use std::path::Path;
use std::process::Command;

use tollgate_tests::backend::{Backend, BackendOptions};
use tollgate_tests::client::Client;
use tollgate_tests::proxy::{Proxy, free_port};
use tollgate_tests::workspace_root;

fn example(name: &str) -> std::path::PathBuf {
    workspace_root().join("deploy/examples").join(name)
}

/// Copies an example folder, so files a script writes stay out of the work tree.
fn copy_of(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(example(name)).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    dir
}

fn curl_https(ca: &Path, host: &str, port: u16, path: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
        .arg(format!("https://{host}:{port}{path}"))
        .output()
        .expect("running curl");
    assert!(
        out.status.success(),
        "curl {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn custom_domain_serves_https_by_base_path_and_redirects_plain_http() {
    let dir = copy_of("custom-domain");
    // Run by bash rather than executed: the copy was just written, and a process another test
    // forks meanwhile may hold it open for writing for an instant (exec then fails, ETXTBSY).
    let status = Command::new("bash")
        .arg(dir.path().join("make-certificate.sh"))
        .status()
        .expect("running make-certificate.sh");
    assert!(status.success());
    let tls = free_port();
    let proxy = Proxy::start_standalone(
        dir.path(),
        &[
            "--tls-listen",
            &format!("127.0.0.1:{tls}"),
            "--https-port",
            &tls.to_string(),
        ],
    );
    let ca = dir.path().join("ca.crt");
    let body = curl_https(&ca, "api.example.test", tls, "/products");
    assert!(body.contains(r#""apiVersion": "2""#), "{body}");
    let body = curl_https(&ca, "api.example.test", tls, "/v1/products");
    assert!(body.contains(r#""apiVersion": "1""#), "{body}");
    let response = Client::new()
        .get(&proxy.url("/products"), &[("host", "api.example.test")])
        .await;
    assert_eq!(response.status, 301);
    assert_eq!(
        response.header("location").as_deref(),
        Some(format!("https://api.example.test:{tls}/products").as_str())
    );
}

#[tokio::test]
async fn the_private_api_refuses_sources_outside_its_policy() {
    let proxy = Proxy::start_standalone(&example("private"), &[]);
    let response = Client::new()
        .get(&proxy.url("/prod/inventory/42"), &[])
        .await;
    assert_eq!(response.status, 403, "127.0.0.1 is not in allowCidrs");
    assert!(
        response.text().contains("not authorized"),
        "{}",
        response.text()
    );
}

#[tokio::test]
async fn the_canary_serves_its_share_and_can_be_pinned() {
    let proxy = Proxy::start_standalone(&example("canary"), &[]);
    let client = Client::new();
    let url = proxy.url("/prod/version");
    let pinned = client.get(&url, &[("x-tollgate-canary", "canary")]).await;
    assert_eq!(pinned.text(), r#"{"version": "2.1"}"#);
    assert_eq!(
        pinned.header("x-tollgate-deployment").as_deref(),
        Some("canary")
    );
    let mut canary = 0;
    let n = 1000;
    for _ in 0..n {
        if client.get(&url, &[]).await.text().contains("2.1") {
            canary += 1;
        }
    }
    // 10% of 1000: mean 100, standard deviation 9.5; 5 sigma either side.
    assert!(
        (52..=148).contains(&canary),
        "{canary} of {n} on the canary"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_maps_parameters_sells_keys_and_has_a_default_route() {
    // The example's backend is whatever listens on 127.0.0.1:9000: here, an echo backend that
    // answers 404, to see the response mapping.
    let backend = Backend::start(BackendOptions {
        status: 404,
        ..BackendOptions::default()
    });
    let dir = copy_of("http-api");
    let file = dir.path().join("pets.yaml");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("127.0.0.1:9000", &backend.addr().to_string());
    std::fs::write(&file, text).unwrap();
    let proxy = Proxy::start_standalone(dir.path(), &[]);
    let client = Client::new();

    let pet = client
        .get(&proxy.url("/pets/7"), &[("cookie", "session=secret")])
        .await;
    assert_eq!(pet.status, 410, "{}", pet.text());
    assert_eq!(pet.header("x-pet-status").as_deref(), Some("gone"));
    let seen = pet.json();
    assert_eq!(seen["path"], "/v2/pets/7");
    assert_eq!(seen["query"], "source=tollgate");
    assert!(seen["headers"].get("cookie").is_none(), "{seen}");
    assert_eq!(
        seen["headers"]["x-request-id"][0].as_str(),
        pet.header("x-amzn-requestid").as_deref()
    );

    let key = ("x-api-key", "example-http-api-key-do-not-use-001");
    let no_key = client.get(&proxy.url("/reports"), &[]).await;
    assert_eq!(no_key.status, 403);
    let statuses = [
        client.get(&proxy.url("/reports"), &[key]).await.status,
        client.get(&proxy.url("/reports"), &[key]).await.status,
        client.get(&proxy.url("/reports"), &[key]).await.status,
    ];
    assert_eq!(statuses[0], 200);
    assert!(
        statuses.contains(&429),
        "burst 2, then throttled: {statuses:?}"
    );

    let other = client.get(&proxy.url("/anything"), &[]).await;
    assert_eq!(
        (other.status, other.text().as_str()),
        (404, r#"{"message": "no such pet resource"}"#)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_transformations_example_validates_maps_answers_in_its_format_and_caches() {
    // The example's backend is whatever listens on 127.0.0.1:9000: here, an echo backend.
    let backend = Backend::echo();
    let dir = copy_of("rest-transformations");
    let file = dir.path().join("orders.yaml");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("127.0.0.1:9000", &backend.addr().to_string());
    std::fs::write(&file, text).unwrap();
    let proxy = Proxy::start_standalone(dir.path(), &[]);
    let client = Client::new();

    // The catalogue: cached per category and `lang`.
    let first = client
        .get(&proxy.url("/v1/catalogue/books?lang=en&page=1"), &[])
        .await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.header("x-cache").as_deref(), Some("Miss"));
    let again = client
        .get(&proxy.url("/v1/catalogue/books?lang=en&page=2"), &[])
        .await;
    assert_eq!(again.header("x-cache").as_deref(), Some("Hit"));
    let other = client
        .get(&proxy.url("/v1/catalogue/books?lang=fr"), &[])
        .await;
    assert_eq!(other.header("x-cache").as_deref(), Some("Miss"));
    assert_eq!(backend.received().len(), 2);

    // An order that breaks the model: the API's own error format, naming what is wrong.
    let json = ("content-type", "application/json");
    let refused = client
        .request(
            "POST",
            &proxy.url("/v1/orders"),
            &[json],
            r#"{"sku": "B-1", "quantity": 0}"#,
        )
        .await;
    assert_eq!(refused.status, 400);
    let error = refused.json();
    assert_eq!(error["error"]["code"], "invalid_order");
    assert!(
        error["error"]["details"]
            .as_str()
            .unwrap()
            .contains("quantity"),
        "{error}"
    );
    assert_eq!(
        error["error"]["requestId"].as_str(),
        refused.header("x-amzn-requestid").as_deref()
    );
    assert_eq!(
        backend.received().len(),
        2,
        "the invalid order reached the backend"
    );

    // A good order: the backend gets the legacy form; the client a 201 with it wrapped.
    let placed = client
        .request(
            "POST",
            &proxy.url("/v1/orders"),
            &[json, ("x-tenant", "acme")],
            r#"{"sku": "B-1", "quantity": 2, "note": "gift \"wrap\""}"#,
        )
        .await;
    assert_eq!(placed.status, 201, "{}", placed.text());
    assert_eq!(placed.header("location").as_deref(), Some("/v1/orders"));
    let answer = placed.json();
    assert_eq!(answer["accepted"], true);
    assert_eq!(answer["order"]["path"], "/legacy/orders");
    let legacy: serde_json::Value =
        serde_json::from_str(answer["order"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(legacy["item"], "B-1");
    assert_eq!(legacy["count"], 2);
    assert_eq!(legacy["note"], "gift \"wrap\"");
    assert_eq!(legacy["tenant"], "acme");
    assert_eq!(
        legacy["reference"].as_str(),
        placed.header("x-amzn-requestid").as_deref()
    );

    // Any other refusal in the same format (DEFAULT_4XX).
    let missing = client.get(&proxy.url("/v1/nothing"), &[]).await;
    assert_eq!(missing.status, 403);
    assert_eq!(
        missing.json()["error"]["code"],
        "MISSING_AUTHENTICATION_TOKEN"
    );
    assert_eq!(
        missing.json()["error"]["message"],
        "Missing Authentication Token"
    );
}
