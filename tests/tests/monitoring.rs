//! Monitoring end to end: the chart's PrometheusRule and Grafana dashboard against the series
//! of real Tollgate processes, in a real Prometheus (Debian's package, which `scripts/setup`
//! installs): a standalone proxy in front of real backends driven through 2XX, 4XX, 5XX, 429
//! and the stage cache, with a custom domain's and a default certificate; the real controller
//! on the real control plane with a proxy in fleet mode. Every rule evaluates without error and
//! every metric a rule or a dashboard panel reads has series (so a renamed metric fails here),
//! the 5XX and throttling alerts fire, and every panel's query returns data. Also: Amazon's
//! names and CloudWatch's dimensions on `/metrics`, and the series of a route that is no longer
//! served removed with its table.
//!
//! Needs `cargo build --workspace --bins` first.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tollgate_tests::backend::{Backend, BackendOptions};
use tollgate_tests::client::Client;
use tollgate_tests::config::{api_key, dev_gateway, gateway, http, mock, route, usage_plan};
use tollgate_tests::control_plane::ControlPlane;
use tollgate_tests::controller::{self, Controller};
use tollgate_tests::helm::{CHART, Helm};
use tollgate_tests::prometheus::{self, Job, Prometheus};
use tollgate_tests::proxy::serve;
use tollgate_tests::tls::{Ca, DefaultCertificate, tls_secret};
use tollgate_tests::wait::eventually;
use tollgate_tests::workspace_root;

const KEY: &str = "monitoring-0123456789abcdef0123456789abcdef";
/// The release namespace the chart is rendered for, and the controller's scrape job labelled
/// as the chart's ServiceMonitor would label it.
const RELEASE_NAMESPACE: &str = "tollgate-system";
const DEADLINE: Duration = Duration::from_secs(90);

/// Gateway `mon` (stage `dev` with a 1 s stage cache, a custom domain with a certificate):
/// `GET /pets/{petId}` to an echo backend, `GET /broken` to a backend answering 503,
/// `GET /limited` throttled to a burst of 1, `GET /quota` behind an API key whose plan allows
/// 2 requests a day.
fn resources(echo: &Backend, broken: &Backend, ca: &Ca) -> Vec<Value> {
    let mut gw = gateway("mon", json!([{"name": "dev", "cache": {"ttlSeconds": 1}}]));
    gw["spec"]["domains"] = json!([{"hostname": "api.example.com",
        "certificateSecretRef": {"name": "api"},
        "basePathMappings": [{"basePath": "", "stage": "dev"}]}]);
    let mut limited = route("limited", "mon", "GET", "/limited", mock(200, "{}"));
    limited["spec"]["throttle"] = json!({"rateLimit": 0.01, "burstLimit": 1});
    let mut quota = route("quota", "mon", "GET", "/quota", mock(200, "{}"));
    quota["spec"]["apiKeyRequired"] = json!(true);
    let mut plan = usage_plan("plan", "mon", "dev", &["key"]);
    plan["spec"]["quota"] = json!({"limit": 2, "period": "DAY"});
    vec![
        gw,
        route(
            "pets",
            "mon",
            "GET",
            "/pets/{petId}",
            http(&echo.url("/pets/{petId}")),
        ),
        route("broken", "mon", "GET", "/broken", http(&broken.url("/"))),
        limited,
        quota,
        api_key("key", KEY, true),
        plan,
        tls_secret("api", &ca.server(&["api.example.com"])),
    ]
}

/// The chart rendered with the PrometheusRule (and the dashboard), thresholds low and windows
/// short, so that a minute of traffic makes the 5XX and throttling alerts fire.
fn chart_rules() -> String {
    let rendered = Helm::shared().template(
        "tollgate",
        RELEASE_NAMESPACE,
        &[
            "--set",
            "prometheusRule.enabled=true",
            "--set",
            "prometheusRule.rateWindow=20s",
            "--set",
            "prometheusRule.alerts.errorRatio.threshold=0.01",
            "--set",
            "prometheusRule.alerts.errorRatio.for=2s",
            "--set",
            "prometheusRule.alerts.throttlingRatio.threshold=0.01",
            "--set",
            "prometheusRule.alerts.throttlingRatio.for=2s",
        ],
    );
    prometheus::rule_file(&rendered)
}

/// Every query of the dashboard's panels, its Grafana variables replaced as Grafana would with
/// "All" selected: (panel title, query).
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(
        workspace_root()
            .join(CHART)
            .join("dashboards/tollgate.json"),
    )
    .expect("the dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("JSON");
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a PromQL target");
            let expr = expr
                .replace("$api_name", ".*")
                .replace("$stage", ".*")
                .replace("$__rate_interval", "20s")
                .replace("$__range", "1m");
            assert!(!expr.contains('$'), "a variable left in {expr}");
            out.push((panel["title"].as_str().unwrap_or("").to_owned(), expr));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_charts_rules_and_dashboard_work_on_real_series() {
    // The proxies: standalone, with every kind of answer; and a fleet proxy of the controller.
    let echo = Backend::echo();
    let broken = Backend::start(BackendOptions {
        status: 503,
        ..BackendOptions::default()
    });
    let ca = Ca::new("monitoring CA");
    let default_cert = DefaultCertificate::write(&ca.server(&["localhost"]));
    let args = default_cert.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let proxy = serve(&resources(&echo, &broken, &ca), &args);

    let cp = ControlPlane::shared();
    let ctl = Controller::start(cp, &[]);
    let ns = cp.namespace("monitoring");
    ns.apply(&ns.quickstart());
    let fleet = controller::start_fleet(&ctl, &ns, "hello", "tollgate-proxy-hello", 1, &[]);

    // Traffic until the test ends.
    let running = Arc::new(AtomicBool::new(true));
    let traffic = tokio::spawn({
        let running = running.clone();
        let base = proxy.url("/dev");
        let fleet_url = fleet.proxies[0].url("/dev/states");
        async move {
            let client = Client::new();
            let mut i = 0u64;
            while running.load(Ordering::Relaxed) {
                i += 1;
                for (path, headers) in [
                    (format!("/pets/{}", i % 3), vec![]),
                    ("/broken".to_owned(), vec![]),
                    ("/nowhere".to_owned(), vec![]),
                    ("/limited".to_owned(), vec![]),
                    ("/quota".to_owned(), vec![("x-api-key", KEY)]),
                ] {
                    let _ = client
                        .send("GET", &format!("{base}{path}"), &headers, Vec::new())
                        .await;
                }
                let _ = client.send("GET", &fleet_url, &[], Vec::new()).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });

    let rules = chart_rules();
    let server = Prometheus::start(
        &[
            Job {
                name: "tollgate-proxy",
                targets: vec![
                    proxy.admin_addr().to_string(),
                    fleet.proxies[0].admin_addr().to_string(),
                ],
                labels: vec![],
            },
            // As the chart's ServiceMonitor names it: the job is the metrics Service.
            Job {
                name: "tollgate-controller-metrics",
                targets: vec![ctl.metrics_addr().to_string()],
                labels: vec![("namespace", RELEASE_NAMESPACE)],
            },
        ],
        &[&rules],
        "1s",
    );
    let all_up = || {
        let targets = server.targets();
        (targets.len() == 3 && targets.iter().all(|t| t["health"] == "up")).then_some(())
    };
    eventually_within("every target scraped", DEADLINE, &server, all_up);

    // (b) The 5XX and throttling alerts reach pending or firing, and nothing else does once
    // the processes have started: the fleet is current, the certificates young, the controller
    // up and leading.
    let wanted = ["TollgateApiErrorRatioHigh", "TollgateApiThrottlingHigh"];
    let alerts = eventually_within(
        "the 5XX and throttling alerts only",
        DEADLINE,
        &server,
        || {
            let alerts = server.alerts();
            let names: BTreeSet<&str> = alerts
                .iter()
                .filter(|a| a["state"] == "pending" || a["state"] == "firing")
                .filter_map(|a| a["labels"]["alertname"].as_str())
                .collect();
            (names == BTreeSet::from(wanted)).then(|| alerts.clone())
        },
    );
    let error_ratio = alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == "TollgateApiErrorRatioHigh")
        .expect("the 5XX alert");
    assert_eq!(
        error_ratio["labels"]["api_name"], "default/mon",
        "{error_ratio}"
    );
    assert_eq!(error_ratio["labels"]["stage"], "dev", "{error_ratio}");
    let summary = error_ratio["annotations"]["summary"].as_str().unwrap_or("");
    assert!(
        summary.starts_with("default/mon stage dev: ")
            && summary.ends_with("% of requests answered 5XX"),
        "{error_ratio}"
    );

    // (a) Every rule evaluates without error, and every metric it reads has series.
    let loaded = eventually_within("every rule evaluated", DEADLINE, &server, || {
        let loaded = server.rules();
        loaded
            .iter()
            .all(|r| r["health"] != "unknown")
            .then_some(loaded)
    });
    assert_eq!(
        loaded.len(),
        prometheus::expressions(&rules).len(),
        "every rule of the chart loaded: {loaded:?}"
    );
    for rule in &loaded {
        assert_eq!(rule["health"], "ok", "{rule}");
        assert!(
            rule["lastError"].as_str().unwrap_or("").is_empty(),
            "{rule}"
        );
    }
    let mut read = BTreeSet::new();
    for (name, expr) in prometheus::expressions(&rules) {
        for metric in prometheus::metric_names(&expr) {
            read.insert((metric, format!("rule {name}")));
        }
    }
    for (title, expr) in dashboard_queries() {
        for metric in prometheus::metric_names(&expr) {
            read.insert((metric, format!("panel {title:?}")));
        }
    }
    for (metric, reader) in &read {
        eventually_within(
            &format!("series of {metric} (read by {reader})"),
            DEADLINE,
            &server,
            || {
                server
                    .has_data(&format!("count({{__name__=\"{metric}\"}})"))
                    .then_some(())
            },
        );
    }

    // (c) Every panel's query is valid against the real series and returns data.
    for (title, expr) in dashboard_queries() {
        eventually_within(
            &format!("data for panel {title:?}: {expr}"),
            DEADLINE,
            &server,
            || server.has_data(&expr).then_some(()),
        );
    }
    // The dashboard's variables: the APIs and their stages.
    let apis = server.api("label/api_name/values");
    for api in ["default/mon", &format!("{}/hello", ns.name())] {
        assert!(
            apis.as_array().unwrap().iter().any(|a| a == api),
            "{api} in {apis}"
        );
    }

    // CloudWatch's dimensions: the route's resource template, never the request's path.
    assert!(server.has_data(
        r#"apigateway_count_total{api_name="default/mon",stage="dev",method="GET",resource="/pets/{petId}"}"#
    ));
    assert!(!server.has_data(r#"apigateway_count_total{resource=~"/pets/[0-9]+"}"#));
    assert!(server.has_data(
        r#"apigateway_count_total{api_name="default/mon",stage="dev",method="-",resource="-"} > 0"#
    ));
    assert!(server.has_data(
        r#"tollgate_throttled_requests_total{gateway="default/mon",reason="route"} > 0"#
    ));
    assert!(server.has_data(
        r#"tollgate_throttled_requests_total{gateway="default/mon",reason="quota"} > 0"#
    ));
    assert!(server.has_data(r#"apigateway_cache_hit_count_total{api_name="default/mon"} > 0"#));

    running.store(false, Ordering::Relaxed);
    let _ = traffic.await;
    // The range API works on the same series (Grafana's panels use it).
    let range = server.query_range("sum(rate(apigateway_count_total[20s]))", 10);
    assert!(
        range["result"].as_array().is_some_and(|r| !r.is_empty()),
        "{range}"
    );
}

/// [`eventually`] with its own deadline, and Prometheus's log when it gives up.
fn eventually_within<T>(
    what: &str,
    deadline: Duration,
    server: &Prometheus,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let until = Instant::now() + deadline;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < until,
            "timed out after {deadline:?} waiting for {what}; prometheus log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The value of the sample of `metric` whose labels include every `labels` pair, if any.
fn sample(text: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Amazon's metric names with CloudWatch's dimensions beside Tollgate's own, from the same
/// counts; and when a table no longer has a route, its series (both names) go with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amazon_named_metrics_follow_the_routes_served() {
    let echo = Backend::echo();
    let proxy = serve(
        &[
            dev_gateway("pets"),
            route(
                "pet",
                "pets",
                "GET",
                "/pets/{petId}",
                http(&echo.url("/pets/{petId}")),
            ),
            route("gone", "pets", "POST", "/gone", mock(201, "{}")),
        ],
        &[],
    );
    let client = Client::new();
    for id in ["1", "2", "3"] {
        assert_eq!(
            client
                .get(&proxy.url(&format!("/dev/pets/{id}")), &[])
                .await
                .status,
            200
        );
    }
    let r = client
        .request("POST", &proxy.url("/dev/gone"), &[], "{}")
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(
        client.get(&proxy.url("/dev/nothing"), &[]).await.status,
        403
    );

    let text = proxy.admin_get("/metrics").text();
    let pet = [
        ("api_name", "default/pets"),
        ("stage", "dev"),
        ("method", "GET"),
        ("resource", "/pets/{petId}"),
    ];
    assert_eq!(
        sample(&text, "apigateway_count_total", &pet),
        Some(3.0),
        "{text}"
    );
    assert_eq!(sample(&text, "apigateway_4xx_error_total", &pet), Some(0.0));
    assert_eq!(sample(&text, "apigateway_5xx_error_total", &pet), Some(0.0));
    assert_eq!(
        sample(&text, "apigateway_latency_seconds_count", &pet),
        Some(3.0)
    );
    assert_eq!(
        sample(&text, "apigateway_integration_latency_seconds_count", &pet),
        Some(3.0)
    );
    assert!(
        text.contains("# TYPE apigateway_latency_seconds histogram"),
        "{text}"
    );
    // No route: method and resource `-`, counted on its stage.
    let unrouted = [
        ("api_name", "default/pets"),
        ("stage", "dev"),
        ("method", "-"),
        ("resource", "-"),
    ];
    assert_eq!(
        sample(&text, "apigateway_4xx_error_total", &unrouted),
        Some(1.0)
    );
    // The request's own path is never a label.
    for path in ["/pets/1", "/nothing"] {
        assert!(!text.contains(&format!("\"{path}\"")), "{path} in\n{text}");
    }
    let gone = [("method", "POST"), ("resource", "/gone")];
    assert_eq!(sample(&text, "apigateway_count_total", &gone), Some(1.0));
    assert_eq!(
        sample(
            &text,
            "tollgate_requests_total",
            &[("route", "POST /gone"), ("status_class", "2xx")]
        ),
        Some(1.0)
    );

    // A new table without `POST /gone`: its series go; the others keep counting.
    proxy.config.write(
        "resources.yaml",
        &[
            dev_gateway("pets"),
            route(
                "pet",
                "pets",
                "GET",
                "/pets/{petId}",
                http(&echo.url("/pets/{petId}")),
            ),
        ],
    );
    let text = eventually("the route's series removed", || {
        let text = proxy.admin_get("/metrics").text();
        (!text.contains("POST /gone") && !text.contains("resource=\"/gone\"")).then_some(text)
    });
    assert_eq!(
        sample(&text, "apigateway_count_total", &pet),
        Some(3.0),
        "{text}"
    );
}
