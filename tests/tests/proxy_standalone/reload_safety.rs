//! Standalone mode's reload safety: a file caught mid-write never drops routes, a big reload
//! compiles while the current tables serve, and a route added later never takes a method and
//! path from the route that serves it.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use tollgate_tests::client::Client;
use tollgate_tests::config::{ConfigDir, dev_gateway, mock, route, to_yaml};
use tollgate_tests::proxy::Proxy;
use tollgate_tests::wait::eventually_async;

/// The gateway `app` and its route `GET /a` answering `{"route":"<body>"}`, as one file.
fn gateway_and_route(body: &str) -> String {
    to_yaml(&[
        dev_gateway("app"),
        route(
            "route-a",
            "app",
            "GET",
            "/a",
            mock(200, &format!(r#"{{"route":"{body}"}}"#)),
        ),
    ])
}

/// Lines of the proxy's log containing every one of `parts`.
fn logged(proxy: &Proxy, parts: &[&str]) -> Vec<String> {
    proxy
        .stderr_lines()
        .into_iter()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .collect()
}

/// An editor saving in place: the file is truncated, stays empty a moment, gets half its text
/// (YAML that does not load), then the rest. Requests sent all along must all be answered by
/// the route, old or new; then the file is emptied for good, and its routes go, logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_rewritten_in_place_never_drops_its_routes() {
    let config = ConfigDir::new();
    let file = config.write_raw("api.yaml", &gateway_and_route("a0"));
    let proxy = Proxy::start_standalone(config.path(), &[]);
    let client = Client::new();

    // Requests in a loop, each answer kept, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let requests = {
        let (client, url, stop) = (client.clone(), proxy.url("/dev/a"), stop.clone());
        tokio::spawn(async move {
            let mut answers = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let r = client.get(&url, &[]).await;
                answers.push((r.status, r.text()));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            answers
        })
    };

    for round in 1..=3 {
        let text = gateway_and_route(&format!("a{round}"));
        let cut = text.find("method:").expect("the route has a method");
        let mut f = std::fs::File::create(&file).expect("truncating the file");
        // Long enough for the proxy to notice the change and read the empty file.
        tokio::time::sleep(Duration::from_millis(400)).await;
        f.write_all(&text.as_bytes()[..cut]).unwrap();
        f.flush().unwrap();
        // Half a file: refused as a whole, so the last good tables keep serving.
        eventually_async("/config to report the half-written file", || async {
            proxy.config_report()["lastError"]
                .as_str()
                .filter(|e| e.contains("api.yaml"))
                .map(String::from)
        })
        .await;
        f.write_all(&text.as_bytes()[cut..]).unwrap();
        f.flush().unwrap();
        drop(f);
        let expected = format!(r#"{{"route":"a{round}"}}"#);
        eventually_async(&format!("round {round}'s route to be served"), || async {
            let r = client.get(&proxy.url("/dev/a"), &[]).await;
            (r.status == 200 && r.text() == expected).then_some(())
        })
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    let answers = requests.await.expect("the request loop");
    let failed: Vec<&(u16, String)> = answers.iter().filter(|(s, _)| *s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed while the file was rewritten in place, first: {:?}",
        failed.len(),
        answers.len(),
        failed.first()
    );
    assert!(
        !logged(&proxy, &["file reads empty", "api.yaml"]).is_empty(),
        "a truncation is logged as a probable write in progress"
    );

    // Emptied for good: believed after a grace, its routes go, and the log says so.
    std::fs::File::create(&file).expect("truncating the file");
    eventually_async("the emptied file's routes to go", || async {
        let r = client.get(&proxy.url("/dev/a"), &[]).await;
        (r.status == 403).then_some(())
    })
    .await;
    let line = logged(&proxy, &["file stayed empty", "api.yaml"]);
    assert!(line.iter().any(|l| l.contains("WARN")), "{line:?}");
}

/// 20,000 routes replace a table served on a single-threaded runtime (`--worker-threads 1`):
/// a request made once the reload has started is answered, and by the old table, so the
/// compile did not run on the thread that serves requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_reload_compiles_while_the_current_tables_serve() {
    let config = ConfigDir::new();
    config.write("gateway.yaml", &[dev_gateway("app")]);
    let probe = |body: &str| {
        route(
            "probe",
            "app",
            "GET",
            "/probe",
            mock(200, &format!(r#"{{"table":"{body}"}}"#)),
        )
    };
    config.write("routes.yaml", &[probe("old")]);
    let proxy = Proxy::start_standalone(config.path(), &["--worker-threads", "1"]);
    let client = Client::new();
    let old = client.get(&proxy.url("/dev/probe"), &[]).await;
    assert_eq!(old.text(), r#"{"table":"old"}"#);

    let mut routes: Vec<Value> = (0..20_000)
        .map(|i| {
            route(
                &format!("r{i}"),
                "app",
                "GET",
                &format!("/items{i}/{{id}}"),
                mock(200, "{}"),
            )
        })
        .collect();
    routes.push(probe("new"));
    let reads_before = logged(&proxy, &["reading the configuration"]).len();
    config.write("routes.yaml", &routes);
    eventually_async("the reload to start", || async {
        (logged(&proxy, &["reading the configuration"]).len() > reads_before).then_some(())
    })
    .await;
    let during = client.get(&proxy.url("/dev/probe"), &[]).await;
    assert_eq!(
        (during.status, during.text()),
        (200, r#"{"table":"old"}"#.to_string()),
        "a request made while the reload compiles is answered by the current table"
    );
    eventually_async("the new table to be served", || async {
        let r = client.get(&proxy.url("/dev/probe"), &[]).await;
        (r.text() == r#"{"table":"new"}"#).then_some(())
    })
    .await;
    assert_eq!(proxy.config_report()["gateways"][0]["routes"], 20_001);
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
            "routeKey": "GET /x",
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
