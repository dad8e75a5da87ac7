//! Throttling and quotas end to end: the real proxy binary, real clients, real Redis.
//!
//! - Standalone (`Local` mode, one proxy): per-key buckets with `RateLimit-*` headers, 429
//!   `Too Many Requests` with `Retry-After`, quotas ending in 429 `Limit Exceeded` until the
//!   period ends, per-route plan overrides, stage and gateway limits for every caller.
//! - Three proxies sharing one Redis (`Redis` mode): one key limited to R requests/s, offered
//!   3R for 10 s split evenly and 80/10/10, admits 10·R ± 5%; a quota is exact; what happens
//!   while Redis is down follows `onFailure`.
//! - Three fleet proxies told the fleet size (`Local` mode): each takes a third of the rate,
//!   with no Redis round trip.
//!
//! Needs the binary: `cargo build --workspace --bins` before `cargo test -p tollgate-tests`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tollgate_tests::client::Client;
use tollgate_tests::config::{mock, route};
use tollgate_tests::fake_controller::{FakeController, table_of};
use tollgate_tests::proxy::{Proxy, Served, serve};
use tollgate_tests::redis::RedisServer;
use tollgate_tests::throttling::{
    Calls, KEY_A, KEY_B, LIMIT_EXCEEDED, TOO_MANY, get, header_u64, offer,
    quota_is_exact_across_three_proxies, rate_is_shared_across_three_proxies, resources, throttle,
};

fn standalone(resources: &[Value]) -> Served {
    serve(resources, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_past_its_burst_gets_429_with_rate_limit_headers() {
    // Rate 0.01/s: no token comes back during the test.
    let s = standalone(&resources(
        json!({}),
        json!({"throttle": throttle(0.01, 3)}),
    ));
    let client = Client::new();

    for remaining in [2, 1, 0] {
        let r = get(&client, &s.proxy, "/dev/pets", Some(KEY_A)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(header_u64(&r, "ratelimit-limit"), Some(3));
        assert_eq!(header_u64(&r, "ratelimit-remaining"), Some(remaining));
        assert!(header_u64(&r, "ratelimit-reset").is_some());
        assert!(r.header("retry-after").is_none());
    }
    let refused = get(&client, &s.proxy, "/dev/pets", Some(KEY_A)).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.text(), TOO_MANY);
    assert_eq!(header_u64(&refused, "ratelimit-remaining"), Some(0));
    let retry = header_u64(&refused, "retry-after").expect("Retry-After on a 429");
    assert!(retry >= 1, "Retry-After {retry}");

    // Another key of the same plan has a bucket of its own; routes without a key are not
    // limited by the plan.
    let other = get(&client, &s.proxy, "/dev/pets", Some(KEY_B)).await;
    assert_eq!(other.status, 200);
    assert_eq!(header_u64(&other, "ratelimit-remaining"), Some(2));
    assert_eq!(get(&client, &s.proxy, "/dev/open", None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_quota_answers_limit_exceeded_until_the_period_ends() {
    let s = standalone(&resources(
        json!({}),
        json!({"quota": {"limit": 4, "period": "DAY"}}),
    ));
    let client = Client::new();
    for remaining in [3, 2, 1, 0] {
        let r = get(&client, &s.proxy, "/dev/pets", Some(KEY_A)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(header_u64(&r, "ratelimit-limit"), Some(4));
        assert_eq!(header_u64(&r, "ratelimit-remaining"), Some(remaining));
    }
    let refused = get(&client, &s.proxy, "/dev/pets", Some(KEY_A)).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.text(), LIMIT_EXCEEDED);
    // The period is the UTC day: Retry-After points at the next midnight.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let to_midnight = 86_400 - now.rem_euclid(86_400);
    let retry = header_u64(&refused, "retry-after").unwrap() as i64;
    assert!(
        (retry - to_midnight).abs() <= 5,
        "Retry-After {retry} s, next UTC midnight in {to_midnight} s"
    );
    assert_eq!(header_u64(&refused, "ratelimit-reset"), Some(retry as u64));
    // The other key's quota is untouched.
    assert_eq!(
        get(&client, &s.proxy, "/dev/pets", Some(KEY_B))
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_route_override_replaces_the_plan_throttle_on_its_route() {
    let mut res = resources(json!({}), json!({"throttle": throttle(1000.0, 1000)}));
    let mut slow = route("slow", "api", "GET", "/slow", mock(200, "{}"));
    slow["spec"]["apiKeyRequired"] = json!(true);
    res.push(slow);
    let plan = res.iter_mut().find(|r| r["kind"] == "UsagePlan").unwrap();
    plan["spec"]["apiStages"][0]["routeThrottles"] = json!([
        {"method": "GET", "path": "/slow", "throttle": throttle(0.01, 1)}
    ]);
    let s = standalone(&res);
    let client = Client::new();

    assert_eq!(
        get(&client, &s.proxy, "/dev/slow", Some(KEY_A))
            .await
            .status,
        200
    );
    let refused = get(&client, &s.proxy, "/dev/slow", Some(KEY_A)).await;
    assert_eq!((refused.status, refused.text().as_str()), (429, TOO_MANY));
    for _ in 0..20 {
        let r = get(&client, &s.proxy, "/dev/pets", Some(KEY_A)).await;
        assert_eq!(r.status, 200, "the plan's own throttle still governs /pets");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stage_route_and_gateway_limits_apply_to_every_caller() {
    // The stage's default: burst 2 per route, shared by all callers, with or without keys.
    let mut res = resources(json!({}), json!({}));
    res[0]["spec"]["stages"][0]["throttle"] = throttle(0.01, 2);
    let s = standalone(&res);
    let client = Client::new();
    let statuses = [
        get(&client, &s.proxy, "/dev/open", None).await.status,
        get(&client, &s.proxy, "/dev/open", None).await.status,
        get(&client, &s.proxy, "/dev/open", None).await.status,
    ];
    assert_eq!(statuses, [200, 200, 429]);
    // Another route has its own bucket.
    assert_eq!(
        get(&client, &s.proxy, "/dev/pets", Some(KEY_A))
            .await
            .status,
        200
    );
    drop(s);

    // The gateway-wide limit caps everything.
    let s = standalone(&resources(
        json!({"throttle": throttle(0.01, 3)}),
        json!({}),
    ));
    let mut statuses = Vec::new();
    for (path, key) in [
        ("/dev/open", None),
        ("/dev/pets", Some(KEY_A)),
        ("/dev/pets", Some(KEY_B)),
        ("/dev/open", None),
    ] {
        statuses.push(get(&client, &s.proxy, path, key).await.status);
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
}

fn redis_gateway(url: &str, on_failure: &str) -> Value {
    json!({"rateLimiting": {"mode": "Redis", "redis": {"url": url, "onFailure": on_failure}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_mode_admits_the_plan_rate_across_three_proxies() {
    let redis = RedisServer::start();
    rate_is_shared_across_three_proxies(&redis, Calls::One).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_mode_quotas_are_exact_across_three_proxies() {
    let redis = RedisServer::start();
    quota_is_exact_across_three_proxies(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_down_the_failure_mode_decides() {
    let mut redis = RedisServer::start();
    let client = Client::new();
    for (mode, expect) in [("FailOpen", 200), ("FailClosed", 429), ("Local", 429)] {
        // Burst 2 at 0.01/s: a third request within the test is over the limit.
        let s = standalone(&resources(
            redis_gateway(&redis.url(), mode),
            json!({"throttle": throttle(0.01, 2)}),
        ));
        assert_eq!(
            get(&client, &s.proxy, "/dev/pets", Some(KEY_A))
                .await
                .status,
            200
        );
        redis.stop();
        let statuses = [
            get(&client, &s.proxy, "/dev/pets", Some(KEY_A)).await,
            get(&client, &s.proxy, "/dev/pets", Some(KEY_A)).await,
            get(&client, &s.proxy, "/dev/pets", Some(KEY_A)).await,
        ];
        let last = &statuses[2];
        assert_eq!(
            last.status,
            expect,
            "{mode}: third request while Redis is down: {}",
            last.text()
        );
        if mode == "Local" {
            // The local bucket (burst 2) admitted two before refusing.
            assert_eq!(statuses[0].status, 200, "{mode}");
            assert_eq!(statuses[1].status, 200, "{mode}");
        }
        if expect == 429 {
            assert_eq!(last.text(), TOO_MANY);
        }
        redis.restart();
        // Back: Redis decides again (its counters were lost with the restart).
        tollgate_tests::wait::eventually_async(
            &format!("{mode}: Redis deciding again"),
            || async {
                let before = redis.command_calls("evalsha") + redis.command_calls("eval");
                let r = get(&client, &s.proxy, "/dev/pets", Some(KEY_B)).await;
                let after = redis.command_calls("evalsha") + redis.command_calls("eval");
                (r.status == 200 && after > before).then_some(())
            },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_mode_shares_the_rate_over_the_fleet_without_asking_redis() {
    const R: f64 = 30.0;
    const SECONDS: f64 = 10.0;
    const TOKEN: &str = "fleet-token";
    // A Redis is configured but the mode is Local: no request may touch it.
    let redis = RedisServer::start();
    let table = table_of(
        &resources(
            json!({"rateLimiting": {"mode": "Local", "redis": {"url": redis.url()}}}),
            // Burst 6: 2 per proxy, absorbing the jitter of arrivals.
            json!({"throttle": throttle(R, 6)}),
        ),
        "api",
    );
    let controller = FakeController::start(TOKEN, "api");
    controller.push(table, 3);
    let folders: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let proxies: Vec<Proxy> = folders
        .iter()
        .map(|dir| {
            std::fs::create_dir(dir.path().join("state")).unwrap();
            std::fs::write(dir.path().join("token"), TOKEN).unwrap();
            Proxy::start_fleet(
                &controller.url(),
                "default/api",
                &dir.path().join("state"),
                &dir.path().join("token"),
                &[],
            )
        })
        .collect();
    let refs: Vec<&Proxy> = proxies.iter().collect();
    let client = Client::new();
    for proxy in &refs {
        tollgate_tests::wait::eventually("a fleet proxy serving the table", || {
            proxy.is_ready().then_some(())
        });
    }

    // Each proxy enforces a third of the rate: evenly spread traffic gets the whole rate.
    let (admitted, refused) = offer(&client, &refs, [1, 1, 1], 3.0 * R, SECONDS).await;
    let total: u64 = admitted.iter().sum();
    let expected = R * SECONDS;
    let error = (total as f64 - expected) / expected;
    println!(
        "local mode, 3 proxies, even split: offered {} over {SECONDS} s, admitted {total} \
         (per proxy {admitted:?}), refused {refused}; expected {expected}: {:+.1}%",
        3.0 * R * SECONDS,
        error * 100.0
    );
    assert!(
        error.abs() <= 0.05,
        "admitted {total}, expected {expected} ± 5%"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Uneven traffic: the busy proxy's third caps it; the whole is under the rate.
    let (admitted, refused) = offer(&client, &refs, [8, 1, 1], 3.0 * R, SECONDS).await;
    let total: u64 = admitted.iter().sum();
    println!(
        "local mode, 3 proxies, 80/10/10 split: admitted {total} (per proxy {admitted:?}), \
         refused {refused}; the even share admits at most {expected} (Redis mode is exact)"
    );
    assert!(
        (total as f64) <= expected * 1.05,
        "local shares never admit more than the rate"
    );
    assert!(
        (admitted[0] as f64) <= R / 3.0 * SECONDS * 1.1,
        "the busy proxy keeps to its third: {admitted:?}"
    );

    assert_eq!(
        redis.command_calls("evalsha") + redis.command_calls("eval"),
        0,
        "Local mode asked Redis"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenancy_example_sells_its_plans() {
    let example = tollgate_tests::workspace_root().join("deploy/examples/tenancy");
    let proxy = Proxy::start_standalone(&example, &[]);
    let client = Client::new();
    let url = proxy.url("/v1/pets");
    let free = [("x-api-key", "example-initech-key-do-not-use-0001")];
    let pro = [("x-api-key", "example-acme-key-do-not-use-00000001")];

    assert_eq!(client.get(&url, &[]).await.status, 403, "no key");
    assert_eq!(client.get(&proxy.url("/v1/health"), &[]).await.status, 200);
    // The free plan's burst of 5, then 429.
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(client.get(&url, &free).await.status);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429]);
    // The pro plan's own bucket: 100 at once on GET, its POST override 5.
    for _ in 0..20 {
        assert_eq!(client.get(&url, &pro).await.status, 200);
    }
    let mut created = Vec::new();
    for _ in 0..6 {
        created.push(client.send("POST", &url, &pro, "{}").await.unwrap().status);
    }
    assert_eq!(created, [201, 201, 201, 201, 201, 429]);
}
