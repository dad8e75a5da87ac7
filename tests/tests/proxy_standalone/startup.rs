//! Starting on files: a configuration that cannot be loaded stops the process (there are no
//! last good tables to keep serving), and typos that load are warned about at load, as
//! `kubectl apply`'s field validation and the controller's conditions would.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use tollgate_tests::client::Client;
use tollgate_tests::config::{ConfigDir, gateway, mock, route, to_yaml};
use tollgate_tests::proxy::{Proxy, binary};
use tollgate_tests::wait::eventually;

/// Runs the proxy on `config` until it exits (at most 30 s, then it is killed and the test
/// fails): its exit code and standard error.
fn run_to_exit(config: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(binary())
        .arg("--config")
        .arg(config)
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning tollgate-proxy");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("waiting").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tollgate-proxy kept running on a configuration it could not load");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("reading its output");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_config_path_that_does_not_exist_stops_the_start() {
    let dir = ConfigDir::new();
    let missing = dir.path().join("nothing-here");
    let (code, stderr) = run_to_exit(&missing);
    assert_eq!(code, Some(1), "{stderr}");
    let line = format!("--config {}: no such file or folder", missing.display());
    assert!(stderr.contains(&line), "{stderr}");
    assert!(!stderr.contains("last good tables"), "{stderr}");
}

#[test]
fn a_first_load_that_fails_stops_the_start_naming_the_file() {
    let dir = ConfigDir::new();
    let file = dir.write_raw(
        "hello.yaml",
        "apiVersion: tollgate.dev/v1alpha1\nkind: ApiGateway\nmetadata: {name: hello}\nspec: {}\n",
    );
    let (code, stderr) = run_to_exit(dir.path());
    assert_eq!(code, Some(1), "{stderr}");
    let error = format!(
        "{}: document 1: ApiGateway hello: missing field `stages`",
        file.display()
    );
    assert!(stderr.contains(&error), "{stderr}");
    // Said once, not once per cause.
    assert_eq!(
        stderr.matches("missing field `stages`").count(),
        1,
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typos_that_load_are_warned_about_with_file_document_and_field() {
    let dir = ConfigDir::new();
    let mut misspelt = route("hello-root", "hello", "GET", "/", mock(200, "x"));
    misspelt["spec"]["integration"]["mock"]["body"] =
        json!(r#"{"message": "${stageVariables.greting}"}"#);
    misspelt["spec"]["apiKeyRequred"] = json!(true);
    let text = to_yaml(&[
        gateway(
            "hello",
            json!([{"name": "dev", "variables": {"greeting": "Hello"}}]),
        ),
        misspelt,
        json!({"apiVersion": "v1", "kind": "Secrets", "metadata": {"name": "x"}}),
    ]);
    let file = dir.write_raw("hello.yaml", &text);
    let proxy = Proxy::start_standalone(dir.path(), &[]);

    // The route is served as written: the variable renders empty, no API key is asked for.
    let response = Client::new().get(&proxy.url("/dev/"), &[]).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), r#"{"message": ""}"#);

    let file = file.display().to_string();
    let warned = |needles: &[&str]| {
        let needles: Vec<String> = needles.iter().map(|n| n.to_string()).collect();
        eventually(&format!("a warning with {needles:?}"), || {
            proxy
                .stderr_lines()
                .into_iter()
                .find(|l| l.contains("WARN") && needles.iter().all(|n| l.contains(n)))
        })
    };
    warned(&[
        "unknown field \"spec.apiKeyRequred\"",
        &format!("file={file}"),
        "document=2",
        "name=hello-root",
    ]);
    warned(&[
        "v1 Secrets is passed over",
        &format!("file={file}"),
        "document=3",
    ]);
    warned(&[
        "resource=default/hello-root",
        "condition=\"ResolvedRefs\"",
        "reason=StageVariableNotFound",
        "spec.integration.mock.body: ${stageVariables.greting} is defined in no stage",
    ]);
    // /config carries the same diagnostic.
    let report = proxy.config_report();
    let problems = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["resource"]["name"] == "hello-root")
        .flat_map(|d| d["problems"].as_array().cloned().unwrap_or_default())
        .collect::<Vec<_>>();
    assert_eq!(problems.len(), 1, "{report}");
    assert_eq!(problems[0]["reason"], "StageVariableNotFound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_is_logged_once() {
    let dir = ConfigDir::new();
    let mut gw = gateway("shop", json!([{"name": "dev"}]));
    gw["spec"]["domains"] = json!([{
        "hostname": "shop.example.test",
        "certificateSecretRef": {"name": "shop-tls"},
        "basePathMappings": [{"basePath": "", "stage": "dev"}],
    }]);
    dir.write("shop.yaml", &[gw]);
    let proxy = Proxy::start_standalone(dir.path(), &[]);
    eventually("the tables to load", || {
        proxy
            .stderr_lines()
            .iter()
            .any(|l| l.contains("tables loaded"))
            .then_some(())
    });
    let said: Vec<String> = proxy
        .stderr_lines()
        .into_iter()
        .filter(|l| l.contains("Secret default/shop-tls does not exist"))
        .collect();
    assert_eq!(said.len(), 1, "{said:#?}");
}
