//! `tollgate import` end to end: the PetStore export (`cli/tests/openapi/petstore.yaml`),
//! its pet store pointed at a real local backend, imported by the real binary and served by a
//! standalone `tollgate-proxy`: the requests the export describes get their answers.
//!
//! Needs `cargo build --workspace --bins` (as `make test` does).

use std::process::Command;

use tollgate_tests::backend::Backend;
use tollgate_tests::client::Client;
use tollgate_tests::config::ConfigDir;
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
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("petstore.yaml");
    std::fs::write(&file, export).unwrap();
    let output = Command::new(binary_named("tollgate"))
        .arg("import")
        .arg(&file)
        .output()
        .expect("running tollgate import");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let config = ConfigDir::new();
    config.write_raw("petstore.yaml", &String::from_utf8(output.stdout).unwrap());
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
