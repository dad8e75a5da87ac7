//! Usage reports, all real: kube-apiserver, `tollgate-controller`, fleet proxies, Redis.
//! Requests admitted per key are counted (in Redis by the admission script, or by each proxy
//! and reported to the controller), read back through the controller's `GetUsage` API with
//! ServiceAccount tokens RBAC allows or not, and summarised in the UsagePlan's status, written
//! no more often than the configured interval.
//!
//! Needs `cargo build --workspace --bins` (as `make test` does).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use tollgate_tests::client::Client;
use tollgate_tests::control_plane::{ControlPlane, Namespace};
use tollgate_tests::controller::{self, Controller, Fleet, SnapshotClient, body_text, ca_pem};
use tollgate_tests::proxy::binary_named;
use tollgate_tests::redis::RedisServer;
use tollgate_tests::wait::eventually_async;

/// Seconds between two `status.usage` writes of a plan, for these tests (default 60).
const STATUS_EVERY: u64 = 3;
const ALICE: &str = "alice-usage-key-0123456789-abcdefghij";
const BOB: &str = "bob-usage-key-0123456789-abcdefghijkl";

fn controller() -> &'static Controller {
    static CONTROLLER: OnceLock<Controller> = OnceLock::new();
    CONTROLLER.get_or_init(|| {
        Controller::start(
            ControlPlane::shared(),
            &["--usage-status-interval-seconds", &STATUS_EVERY.to_string()],
        )
    })
}

/// Gateway `hello` (stage `dev`) with `rate_limiting`, a keyed route `/pets`, an open route
/// `/open`, the plan `gold` (1,000 a day) and the keys `alice` and `bob`.
fn resources(rate_limiting: &str) -> String {
    format!(
        r#"apiVersion: tollgate.dev/v1alpha1
kind: ApiGateway
metadata: {{name: hello}}
spec:
  apiKeySource: HEADER
  stages: [{{name: dev}}]
  rateLimiting: {rate_limiting}
---
apiVersion: tollgate.dev/v1alpha1
kind: Route
metadata: {{name: pets}}
spec:
  gatewayRef: {{name: hello}}
  method: GET
  path: /pets
  apiKeyRequired: true
  integration: {{mock: {{statusCode: 200, body: pets}}}}
---
apiVersion: tollgate.dev/v1alpha1
kind: Route
metadata: {{name: open}}
spec:
  gatewayRef: {{name: hello}}
  method: GET
  path: /open
  integration: {{mock: {{statusCode: 200, body: open}}}}
---
apiVersion: tollgate.dev/v1alpha1
kind: UsagePlan
metadata: {{name: gold}}
spec:
  apiStages: [{{gatewayRef: {{name: hello}}, stage: dev}}]
  quota: {{limit: 1000, period: DAY}}
  apiKeys: {{names: [alice, bob]}}
---
apiVersion: v1
kind: Secret
metadata: {{name: alice}}
type: tollgate.dev/api-key
stringData: {{key: {ALICE}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: bob}}
type: tollgate.dev/api-key
stringData: {{key: {BOB}}}
"#
    )
}

/// A ServiceAccount `reader` that RBAC lets get UsagePlans, and `stranger` that it does not;
/// their ordinary tokens (the API server's audience).
fn accounts(ns: &Namespace) -> (String, String) {
    ns.apply(
        r#"apiVersion: v1
kind: ServiceAccount
metadata: {name: reader}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: stranger}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: usage-reader}
rules:
  - apiGroups: [tollgate.dev]
    resources: [usageplans]
    verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: usage-reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: usage-reader}
subjects: [{kind: ServiceAccount, name: reader}]
"#,
    );
    let token = |account: &str| {
        ns.kubectl_ok(&["create", "token", account])
            .trim()
            .to_owned()
    };
    (token("reader"), token("stranger"))
}

/// Waits until every proxy serves the gateway (with requests that take no key, so that they
/// count nothing).
async fn wait_served(client: &Client, fleet: &Fleet) {
    for proxy in &fleet.proxies {
        let url = proxy.url("/dev/open");
        eventually_async("the proxy serves the gateway", || {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let r = client.send("GET", &url, &[], Vec::new()).await.ok()?;
                (r.status == 200).then_some(())
            }
        })
        .await;
    }
}

/// Sends `n` requests with `key` to `/dev/pets`, round robin over `proxies`; every one is
/// admitted.
async fn traffic(client: &Client, fleet: &Fleet, proxies: &[usize], key: &str, n: usize) {
    for i in 0..n {
        let proxy = &fleet.proxies[proxies[i % proxies.len()]];
        let r = client
            .get(&proxy.url("/dev/pets"), &[("x-api-key", key)])
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

fn today() -> String {
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .to_string()
}

/// `GET` the usage API; the status and the body.
async fn get_usage(
    api: &SnapshotClient,
    path_and_query: &str,
    token: Option<&str>,
) -> (u16, Value, Option<String>) {
    let response = api
        .send("GET", path_and_query, token, &[], Vec::new())
        .await;
    let status = response.status().as_u16();
    let error_type = response
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = body_text(response).await;
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, body, error_type)
}

fn usage_path(ns: &Namespace, plan: &str, query: &str) -> String {
    format!(
        "/usage/v1/namespaces/{}/usageplans/{plan}?{query}",
        ns.name()
    )
}

/// Each key's `[used, remaining]` pairs.
fn pairs(body: &Value, key: &str) -> Vec<(u64, i64)> {
    body["values"][key]
        .as_array()
        .unwrap_or_else(|| panic!("no values for {key}: {body}"))
        .iter()
        .map(|p| (p[0].as_u64().unwrap(), p[1].as_i64().unwrap()))
        .collect()
}

/// The controller resolves the Redis settings of a gateway through the API server (the
/// credentials in a `tollgate.dev/redis-auth` Secret, the CA and client certificate in theirs),
/// its fleet counts on that Redis, and the controller reads the counts back: over TLS as an ACL
/// user, and from a Redis Cluster (each plan's days in one slot).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_on_tls_with_an_acl_user_and_on_a_cluster_are_read_back_exactly() {
    use tollgate_tests::redis::{RedisCluster, RedisOptions, SharedRedis};
    let cp = ControlPlane::shared();
    let controller = controller();
    let tls = RedisServer::start_with(RedisOptions {
        tls: true,
        acl_user: true,
        aof: false,
    });
    let cluster = RedisCluster::start();
    for (name, redis) in [("tls", &tls as &dyn SharedRedis), ("cluster", &cluster)] {
        let ns = cp.namespace(&format!("usage-{name}"));
        for secret in redis.secrets() {
            ns.apply(&secret.to_string());
        }
        ns.apply(&resources(
            &redis.gateway_rate_limiting("FailClosed").to_string(),
        ));
        let fleet =
            controller::start_fleet(controller, &ns, "hello", "tollgate-proxy-hello", 3, &[]);
        let client = Client::new();
        wait_served(&client, &fleet).await;
        traffic(&client, &fleet, &[0, 1, 2], ALICE, 17).await;
        traffic(&client, &fleet, &[2, 1], BOB, 5).await;

        let (reader, _) = accounts(&ns);
        let api = SnapshotClient::new(&controller.snapshot_url(), &ca_pem(cp));
        let day = today();
        let query = format!("startDate={day}&endDate={day}");
        // On a cluster the usage count is written just after the answer.
        eventually_async(&format!("{name}: usage read back"), || {
            let (api, path, reader) = (&api, usage_path(&ns, "gold", &query), &reader);
            async move {
                let (status, body, _) = get_usage(api, &path, Some(reader)).await;
                (status == 200
                    && pairs(&body, "alice") == [(17, 983)]
                    && pairs(&body, "bob") == [(5, 995)])
                .then_some(())
            }
        })
        .await;
        if let Some(password) = redis.password() {
            let logs = controller.log();
            assert!(
                !logs.contains(password),
                "the controller logged the password"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_counts_are_exact_across_three_proxies_and_the_api_asks_rbac() {
    let cp = ControlPlane::shared();
    let controller = controller();
    let redis = RedisServer::start();
    let ns = cp.namespace("usage-redis");
    ns.apply(&resources(&format!(
        "{{mode: Redis, redis: {{url: \"{}\", onFailure: FailClosed}}}}",
        redis.url()
    )));
    let fleet = controller::start_fleet(controller, &ns, "hello", "tollgate-proxy-hello", 3, &[]);
    let client = Client::new();
    wait_served(&client, &fleet).await;

    traffic(&client, &fleet, &[0, 1, 2], ALICE, 31).await;
    traffic(&client, &fleet, &[2, 1], BOB, 12).await;

    let (reader, stranger) = accounts(&ns);
    let api = SnapshotClient::new(&controller.snapshot_url(), &ca_pem(cp));
    let day = today();
    let query = format!("startDate={day}&endDate={day}");
    let (status, body, _) = get_usage(&api, &usage_path(&ns, "gold", &query), Some(&reader)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["usagePlanId"], "gold");
    assert_eq!(body["startDate"], day.as_str());
    assert_eq!(body["endDate"], day.as_str());
    assert_eq!(pairs(&body, "alice"), [(31, 969)], "{body}");
    assert_eq!(pairs(&body, "bob"), [(12, 988)], "{body}");

    // One key only.
    let (_, only, _) = get_usage(
        &api,
        &usage_path(&ns, "gold", &format!("{query}&keyId=bob")),
        Some(&reader),
    )
    .await;
    assert_eq!(only["values"].as_object().unwrap().len(), 1, "{only}");

    // Refusals, with Amazon's error shape.
    let (status, body, kind) = get_usage(&api, &usage_path(&ns, "gold", &query), None).await;
    assert_eq!(
        (status, kind.as_deref()),
        (401, Some("UnauthorizedException")),
        "{body}"
    );
    let (status, body, kind) =
        get_usage(&api, &usage_path(&ns, "gold", &query), Some("not-a-token")).await;
    assert_eq!(
        (status, kind.as_deref()),
        (401, Some("UnauthorizedException")),
        "{body}"
    );
    let (status, body, kind) =
        get_usage(&api, &usage_path(&ns, "gold", &query), Some(&stranger)).await;
    assert_eq!(
        (status, kind.as_deref()),
        (403, Some("AccessDeniedException")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("stranger"),
        "{body}"
    );
    let (status, body, kind) =
        get_usage(&api, &usage_path(&ns, "silver", &query), Some(&reader)).await;
    assert_eq!(
        (status, kind.as_deref()),
        (404, Some("NotFoundException")),
        "{body}"
    );
    for bad in [
        "startDate=2026-11-24".to_string(),
        "startDate=2026-11-24&endDate=2026-11-23".to_string(),
        "startDate=2026-01-01&endDate=2026-12-31".to_string(),
        format!("startDate={day}&endDate=tomorrow"),
    ] {
        let (status, body, kind) =
            get_usage(&api, &usage_path(&ns, "gold", &bad), Some(&reader)).await;
        assert_eq!(
            (status, kind.as_deref()),
            (400, Some("BadRequestException")),
            "{bad}: {body}"
        );
        assert!(body["message"].is_string(), "{body}");
    }
    // A proxy's token (the snapshot audience) is no key to the usage API.
    let proxy_token = controller::service_account_token(cp, ns.name(), "tollgate-proxy-hello");
    let (status, _, _) =
        get_usage(&api, &usage_path(&ns, "gold", &query), Some(&proxy_token)).await;
    assert_eq!(status, 401);

    // `tollgate usage` asks the same with the kubeconfig's credentials (the admin's here),
    // the CA read from the controller's Secret.
    let cli = |start: &str| {
        std::process::Command::new(binary_named("tollgate"))
            .args(["usage", &format!("{}/gold", ns.name())])
            .args([
                "--start-date",
                start,
                "--end-date",
                &day,
                "--key-id",
                "alice",
            ])
            .args(["--controller", &controller.snapshot_url()])
            .env("KUBECONFIG", cp.kubeconfig_path())
            .output()
            .expect("the tollgate binary runs")
    };
    let out = cli(&day);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let printed: Value = serde_json::from_slice(&out.stdout).expect("JSON on standard output");
    assert_eq!(pairs(&printed, "alice"), [(31, 969)], "{printed}");
    assert_eq!(printed["values"].as_object().unwrap().len(), 1, "{printed}");
    let out = cli("2020-01-01");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("400") && stderr.contains("90 days"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_counts_are_summed_from_the_proxies_and_the_status_is_written_at_most_once_per_interval()
 {
    let cp = ControlPlane::shared();
    let controller = controller();
    let ns = cp.namespace("usage-local");
    ns.apply(&resources("{mode: Local}"));
    let fleet = controller::start_fleet(controller, &ns, "hello", "tollgate-proxy-hello", 2, &[]);
    let client = Client::new();
    wait_served(&client, &fleet).await;

    traffic(&client, &fleet, &[0], ALICE, 10).await;
    traffic(&client, &fleet, &[1], ALICE, 7).await;
    traffic(&client, &fleet, &[1], BOB, 4).await;

    // The proxies report every 10 s; the controller sums their latest reports.
    let (reader, _) = accounts(&ns);
    let api = SnapshotClient::new(&controller.snapshot_url(), &ca_pem(cp));
    let day = today();
    let path = usage_path(&ns, "gold", &format!("startDate={day}&endDate={day}"));
    let body = eventually_async("both proxies' counts reach the usage API", || {
        let (api, path, reader) = (&api, path.clone(), reader.clone());
        async move {
            let (status, body, _) = get_usage(api, &path, Some(&reader)).await;
            assert_eq!(status, 200, "{body}");
            (pairs(&body, "alice") == [(17, 983)] && pairs(&body, "bob") == [(4, 996)])
                .then_some(body)
        }
    })
    .await;
    assert_eq!(body["usagePlanId"], "gold");

    // The status summary follows.
    let usage = eventually_async("status.usage counts both keys", || {
        let ns = &ns;
        async move {
            let plan = ns.get_json("usageplan/gold");
            let usage = plan["status"]["usage"].clone();
            (usage["used"] == 21).then_some(usage)
        }
    })
    .await;
    assert_eq!(usage["keyCount"], 2, "{usage}");
    assert_eq!(usage["keys"][0]["keyId"], "alice", "{usage}");
    assert_eq!(usage["keys"][0]["used"], 17, "{usage}");
    assert_eq!(usage["keys"][0]["remaining"], 983, "{usage}");
    assert_eq!(usage["periodStart"], format!("{day}T00:00:00Z"), "{usage}");
    // The conditions written by the compile loop are still there.
    let plan = ns.get_json("usageplan/gold");
    assert!(
        controller::condition_status(&plan, "Accepted").as_deref() == Some("True"),
        "{plan}"
    );

    // While traffic goes on, the status changes, but never twice within the interval.
    let window = Duration::from_secs(14);
    let started = Instant::now();
    let mut seen: Vec<(String, jiff::Timestamp)> = Vec::new();
    let mut sent = 0;
    while started.elapsed() < window {
        traffic(&client, &fleet, &[sent % 2], ALICE, 1).await;
        sent += 1;
        let plan = ns.get_json("usageplan/gold");
        let computed: jiff::Timestamp = plan["status"]["usage"]["computedAt"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        if seen.last().is_none_or(|(_, at)| *at != computed) {
            seen.push((plan["metadata"]["resourceVersion"].to_string(), computed));
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(
        seen.len() >= 2,
        "the summary followed the traffic: {seen:?}"
    );
    for pair in seen.windows(2) {
        let gap = pair[1].1.duration_since(pair[0].1);
        assert!(
            gap.as_secs() >= STATUS_EVERY as i64,
            "two status writes {gap:?} apart, within {STATUS_EVERY} s: {seen:?}"
        );
    }
    let final_usage = ns.get_json("usageplan/gold")["status"]["usage"].clone();
    assert!(final_usage["used"].as_u64().unwrap() > 21, "{final_usage}");
}
