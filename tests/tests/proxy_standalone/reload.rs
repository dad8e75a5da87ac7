//! Standalone mode's hot reload: files added, broken, fixed and made invalid while serving.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tollgate_tests::client::Client;
use tollgate_tests::config::{ConfigDir, dev_gateway, mock, route, to_yaml};
use tollgate_tests::proxy::Proxy;
use tollgate_tests::wait::eventually_async;

const MISSING_TOKEN: &str = r#"{"message":"Missing Authentication Token"}"#;

/// GET `path` until it answers `status` with `body`. The file is written again every few
/// seconds while it does not: a change made while the proxy is still starting its file watcher
/// is not seen (the watcher starts after the first load), and this test is about reloads.
async fn until_served(
    client: &Client,
    proxy: &Proxy,
    path: &str,
    status: u16,
    body: &str,
    rewrite: impl Fn(),
) {
    let mut last_write = Instant::now();
    eventually_async(&format!("{path} to answer {status} {body}"), || {
        if last_write.elapsed() > Duration::from_secs(5) {
            rewrite();
            last_write = Instant::now();
        }
        async {
            let r = client.get(&proxy.url(path), &[]).await;
            (r.status == status && r.text() == body).then_some(())
        }
    })
    .await;
}

fn route_b(body: &str, path: &str) -> Value {
    route("route-b", "app", "GET", path, mock(200, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_served_and_bad_ones_are_refused_without_downtime() {
    let config = ConfigDir::new();
    config.write("gateway.yaml", &[dev_gateway("app")]);
    config.write(
        "route-a.yaml",
        &[route(
            "route-a",
            "app",
            "GET",
            "/a",
            mock(200, r#"{"route":"a"}"#),
        )],
    );
    let proxy = Proxy::start_standalone(config.path(), &[]);
    let client = Client::new();
    let a = client.get(&proxy.url("/dev/a"), &[]).await;
    assert_eq!((a.status, a.text()), (200, r#"{"route":"a"}"#.to_string()));
    let b = client.get(&proxy.url("/dev/b"), &[]).await;
    assert_eq!((b.status, b.text()), (403, MISSING_TOKEN.to_string()));
    let first_version = proxy.config_report()["gateways"][0]["version"].clone();

    // 1. A new file: its route is served, the gateway's table version changes.
    let write_b1 = || {
        config.write("route-b.yaml", &[route_b(r#"{"route":"b1"}"#, "/b")]);
    };
    write_b1();
    until_served(
        &client,
        &proxy,
        "/dev/b",
        200,
        r#"{"route":"b1"}"#,
        write_b1,
    )
    .await;
    let report = proxy.config_report();
    assert_ne!(report["gateways"][0]["version"], first_version);
    assert_eq!(report["gateways"][0]["routes"], 2);

    // 2. Broken YAML: refused as a whole; everything keeps being served and /config says why.
    let broken =
        "apiVersion: tollgate.dev/v1alpha1\nkind: Route\nmetadata: {name: route-b\nspec: [\n";
    config.write_raw("route-b.yaml", broken);
    let last_error = eventually_async("/config to report lastError", || async {
        proxy.config_report()["lastError"]
            .as_str()
            .map(String::from)
    })
    .await;
    assert!(
        last_error.contains("route-b.yaml"),
        "lastError names the file: {last_error}"
    );
    for (path, body) in [
        ("/dev/a", r#"{"route":"a"}"#),
        ("/dev/b", r#"{"route":"b1"}"#),
    ] {
        let r = client.get(&proxy.url(path), &[]).await;
        assert_eq!((r.status, r.text()), (200, body.to_string()), "{path}");
    }

    // 3. Fixed, with new content: served, and the error is gone.
    let write_b2 = || {
        config.write("route-b.yaml", &[route_b(r#"{"route":"b2"}"#, "/b")]);
    };
    write_b2();
    until_served(
        &client,
        &proxy,
        "/dev/b",
        200,
        r#"{"route":"b2"}"#,
        write_b2,
    )
    .await;
    eventually_async("lastError to clear", || async {
        proxy
            .config_report()
            .get("lastError")
            .is_none()
            .then_some(())
    })
    .await;

    // 4. A resource the compiler rejects (a path without its leading '/'): that route stops
    // being served, the others go on, and the reason is logged with the field at fault.
    let write_invalid = || {
        config.write("route-b.yaml", &[route_b(r#"{"route":"b3"}"#, "b")]);
    };
    write_invalid();
    until_served(&client, &proxy, "/dev/b", 403, MISSING_TOKEN, write_invalid).await;
    let a = client.get(&proxy.url("/dev/a"), &[]).await;
    assert_eq!((a.status, a.text()), (200, r#"{"route":"a"}"#.to_string()));
    let logged = eventually_async("the rejection in the proxy's log", || async {
        proxy
            .stderr_lines()
            .into_iter()
            .find(|l| l.contains("InvalidPath") && l.contains("route-b"))
    })
    .await;
    assert!(logged.contains("spec.path"), "{logged}");
    let report = proxy.config_report();
    let diagnostic = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["resource"]["name"] == "route-b")
        .cloned()
        .unwrap_or_else(|| panic!("no diagnostic for route-b: {report}"));
    assert_eq!(diagnostic["accepted"], false);
    assert_eq!(diagnostic["problems"][0]["reason"], "InvalidPath");
    assert_eq!(diagnostic["problems"][0]["field"], "spec.path");
    assert_eq!(report["gateways"][0]["routes"], 1);
    assert!(report.get("lastError").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_naming_an_unknown_authorizer_is_not_served() {
    let config = ConfigDir::new();
    let mut guarded = route(
        "guarded",
        "app",
        "GET",
        "/guarded",
        mock(200, r#"{"open":true}"#),
    );
    guarded["spec"]["authorizer"] = json!("okta");
    config.write_raw(
        "all.yaml",
        &to_yaml(&[
            dev_gateway("app"),
            route("open", "app", "GET", "/open", mock(200, r#"{"open":true}"#)),
            guarded,
        ]),
    );
    let proxy = Proxy::start_standalone(config.path(), &[]);
    let client = Client::new();

    let open = client.get(&proxy.url("/dev/open"), &[]).await;
    assert_eq!(open.status, 200);
    let guarded = client.get(&proxy.url("/dev/guarded"), &[]).await;
    assert_eq!(
        (guarded.status, guarded.text()),
        (403, MISSING_TOKEN.to_string()),
        "a route whose authorizer does not exist must not be served unauthenticated"
    );
    let logged = eventually_async("the rejection in the proxy's log", || async {
        proxy
            .stderr_lines()
            .into_iter()
            .find(|l| l.contains("AuthorizerNotFound"))
    })
    .await;
    assert!(logged.contains("guarded"), "{logged}");
    assert!(logged.contains("spec.authorizer"), "{logged}");
}
