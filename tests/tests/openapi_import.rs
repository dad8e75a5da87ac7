//! `tollgate import` end to end: the REST PetStore export (`cli/tests/openapi/petstore.yaml`)
//! and the HTTP API one (`http-api.yaml`), their pet store pointed at a real local backend and
//! their Lambda functions at a real Python function under the Runtime Interface Emulator,
//! imported by the real binary and served by a standalone `tollgate-proxy`: the requests the
//! exports describe get their answers.
//!
//! Needs `cargo build --workspace --bins` (as `make test` does).

use std::process::Command;

use tollgate_tests::backend::Backend;
use tollgate_tests::client::Client;
use tollgate_tests::config::ConfigDir;
use tollgate_tests::lambda::LambdaRuntime;
use tollgate_tests::proxy::{Proxy, binary_named};
use tollgate_tests::workspace_root;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_export_is_served_as_it_describes() {
    let backend = Backend::echo();
    let export = std::fs::read_to_string(workspace_root().join("cli/tests/openapi/petstore.yaml"))
        .expect("the PetStore export")
        .replace(
            "http://petstore.execute-api.us-east-1.amazonaws.com",
            &backend.url(""),
        );
    let config = import(&export, &[]);
    let proxy = Proxy::start_standalone(config.path(), &[]);
    let client = Client::new();

    // The mock at the root of stage `test`.
    let root = client.get(&proxy.url("/test/"), &[]).await;
    assert_eq!(
        (root.status, root.text().as_str()),
        (200, r#"{"message": "Welcome to the PetStore"}"#)
    );
    // The HTTP proxy integration, query string passed through.
    let pets = client
        .get(&proxy.url("/test/pets?type=dog&page=2"), &[])
        .await;
    assert_eq!(pets.status, 200, "{}", pets.text());
    let echo = pets.json();
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["path"], "/petstore/pets");
    assert_eq!(echo["query"], "type=dog&page=2");
    // The path parameter in the integration's URI.
    let pet = client.get(&proxy.url("/test/pets/7"), &[]).await;
    assert_eq!(pet.json()["path"], "/petstore/pets/7");
    // The POST is API-key protected, as the export's security says.
    let post = client
        .request("POST", &proxy.url("/test/pets"), &[], "{}")
        .await;
    assert_eq!(post.status, 403);
    // The operation whose integration could not be carried over is not served.
    let legacy = client.get(&proxy.url("/test/legacy"), &[]).await;
    assert_eq!(legacy.status, 403);
}

/// `tollgate import` of `export` with `args`: a folder holding the resources it wrote.
fn import(export: &str, args: &[&str]) -> ConfigDir {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("export.yaml");
    std::fs::write(&file, export).unwrap();
    let output = Command::new(binary_named("tollgate"))
        .arg("import")
        .arg(&file)
        .args(args)
        .output()
        .expect("running tollgate import");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let config = ConfigDir::new();
    config.write_raw("imported.yaml", &String::from_utf8(output.stdout).unwrap());
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_http_api_is_served_as_amazon_serves_it() {
    let backend = Backend::echo();
    let function = LambdaRuntime::start("handler.handler");
    let export = std::fs::read_to_string(workspace_root().join("cli/tests/openapi/http-api.yaml"))
        .expect("the HTTP API export")
        .replace(
            "http://petstore.execute-api.us-west-1.amazonaws.com",
            &backend.url(""),
        )
        // The emulator serves one function, named `function`.
        .replace("function:petstore-fallback", "function:function");
    let config = import(&export, &["--lambda-endpoint", &function.endpoint()]);
    let proxy = Proxy::start_standalone(config.path(), &[]);
    let client = Client::new();

    // The $default stage: no stage in the path. The mapping adds a header and a query
    // parameter from the context.
    let pets = client.get(&proxy.url("/pets?type=dog"), &[]).await;
    assert_eq!(pets.status, 200, "{}", pets.text());
    let echo = pets.json();
    assert_eq!(echo["path"], "/petstore/pets");
    assert_eq!(echo["query"], "type=dog&caller=127.0.0.1", "{echo}");
    assert_eq!(
        echo["headers"]["x-source"],
        serde_json::json!(["tollgate-import"])
    );
    let pet = client.get(&proxy.url("/pets/7"), &[]).await;
    assert_eq!(pet.json()["headers"]["x-pet-id"], serde_json::json!(["7"]));

    // The JWT authorizer guards POST: no token, 401 as an HTTP API answers.
    let post = client.request("POST", &proxy.url("/pets"), &[], "{}").await;
    assert_eq!(post.status, 401, "{}", post.text());
    assert_eq!(post.text(), r#"{"message":"Unauthorized"}"#);
    // So does the Lambda authorizer on /admin (its identity source is missing).
    let admin = client.get(&proxy.url("/admin/users"), &[]).await;
    assert_eq!(admin.status, 401, "{}", admin.text());

    // CORS, as the export's x-amazon-apigateway-cors says.
    let preflight = client
        .request(
            "OPTIONS",
            &proxy.url("/pets"),
            &[
                ("origin", "https://shop.example.com"),
                ("access-control-request-method", "POST"),
            ],
            "",
        )
        .await;
    assert_eq!(
        preflight.header("access-control-allow-origin").as_deref(),
        Some("https://shop.example.com")
    );
    assert_eq!(
        preflight.header("access-control-max-age").as_deref(),
        Some("600")
    );

    // Everything else goes to the $default route: the function, with payload 2.0.
    let other = client.get(&proxy.url("/toys/12"), &[]).await;
    assert_eq!(other.status, 200, "{}", other.text());
    let event = &other.json()["echo"];
    assert_eq!(event["version"], "2.0", "{event}");
    assert_eq!(event["routeKey"], "$default");
    assert_eq!(event["rawPath"], "/toys/12");
    // The VPC link route was left out (no --vpc-link): its path goes to $default too.
    let inventory = client.get(&proxy.url("/inventory"), &[]).await;
    assert_eq!(inventory.json()["echo"]["rawPath"], "/inventory");
}
