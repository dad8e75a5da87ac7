//! Standalone mode's reload safety: a route added later never takes a method and path from the
//! route that serves it.

use tollgate_tests::client::Client;
use tollgate_tests::config::{ConfigDir, dev_gateway, mock, route};
use tollgate_tests::proxy::Proxy;
use tollgate_tests::wait::eventually_async;

/// Lines of the proxy's log containing every one of `parts`.
fn logged(proxy: &Proxy, parts: &[&str]) -> Vec<String> {
    proxy
        .stderr_lines()
        .into_iter()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .collect()
}

/// A route added later asks for the method and path a served route has: the served one keeps
/// them, the log warns naming both, and `/config` lists the conflict. A fresh start, which
/// cannot know which came first, picks by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_added_later_never_takes_over_a_served_route() {
    let config = ConfigDir::new();
    config.write(
        "api.yaml",
        &[
            dev_gateway("app"),
            route("zzz", "app", "GET", "/x", mock(200, r#"{"from":"zzz"}"#)),
        ],
    );
    let proxy = Proxy::start_standalone(config.path(), &[]);
    let client = Client::new();
    let served = client.get(&proxy.url("/dev/x"), &[]).await;
    assert_eq!(served.text(), r#"{"from":"zzz"}"#);

    let write_newcomer = || {
        config.write(
            "newcomer.yaml",
            &[route(
                "aaa",
                "app",
                "GET",
                "/x",
                mock(200, r#"{"from":"aaa"}"#),
            )],
        );
    };
    write_newcomer();
    let diagnostic = eventually_async("a diagnostic for the newcomer", || async {
        proxy.config_report()["diagnostics"]
            .as_array()
            .and_then(|ds| ds.iter().find(|d| d["resource"]["name"] == "aaa").cloned())
    })
    .await;
    let after = client.get(&proxy.url("/dev/x"), &[]).await;
    assert_eq!(
        (after.status, after.text()),
        (200, r#"{"from":"zzz"}"#.to_string()),
        "the route served before keeps GET /x"
    );
    assert_eq!(diagnostic["accepted"], false, "{diagnostic}");
    let message = diagnostic["problems"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("default/zzz") && message.contains("loaded first"),
        "{message}"
    );
    assert!(!message.contains("older"), "{message}");

    let report = proxy.config_report();
    assert_eq!(
        report["conflicts"],
        serde_json::json!([{
            "gateway": {"namespace": "default", "name": "app"},
            "stage": "dev",
            "method": "GET",
            "path": "/x",
            "refused": {"namespace": "default", "name": "aaa"},
            "served": {"namespace": "default", "name": "zzz"},
            "precedence": "SeenFirst",
        }]),
        "{report}"
    );
    let warned = logged(
        &proxy,
        &["WARN", "route conflict", "default/aaa", "default/zzz"],
    );
    assert!(!warned.is_empty(), "a WARN line names both routes");

    // A fresh start reads both at once: name order decides, and says so.
    let fresh = Proxy::start_standalone(config.path(), &[]);
    let x = client.get(&fresh.url("/dev/x"), &[]).await;
    assert_eq!(x.text(), r#"{"from":"aaa"}"#);
    let conflicts = fresh.config_report()["conflicts"].clone();
    assert_eq!(conflicts[0]["served"]["name"], "aaa", "{conflicts}");
    assert_eq!(conflicts[0]["precedence"], "SortsFirst", "{conflicts}");
}
