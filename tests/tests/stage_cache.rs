//! The stage cache (REST APIs) end to end, through a standalone `tollgate-proxy` and real HTTP
//! backends that count what reaches them: hits and misses (`x-cache`, the metric), the key
//! (path, key parameters, not other query strings), `GET` only by default, a route's own time
//! to live, answers not kept (non-2xx), a miss storm that calls the backend once, and
//! `Cache-Control: max-age=0` as each strategy answers it.
//!
//! Needs `cargo build --workspace --bins` (as `make test` does).

use std::time::Duration;

use serde_json::{Value, json};
use tollgate_tests::backend::{Backend, BackendOptions};
use tollgate_tests::client::Client;
use tollgate_tests::config::{gateway, http, route};
use tollgate_tests::proxy::serve;

fn cached_gateway(cache: Value) -> Value {
    gateway("pets", json!([{"name": "prod", "cache": cache}]))
}

fn with(mut route: Value, fields: Value) -> Value {
    for (k, v) in fields.as_object().unwrap() {
        route["spec"][k] = v.clone();
    }
    route
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_answers_are_kept_per_path_and_key_parameter() {
    let backend = Backend::echo();
    let failing = Backend::start(BackendOptions {
        status: 500,
        ..BackendOptions::default()
    });
    let proxy = serve(
        &[
            cached_gateway(json!({"ttlSeconds": 300})),
            route(
                "pets",
                "pets",
                "GET",
                "/pets/{id}",
                http(&backend.url("/pets")),
            ),
            with(
                route(
                    "search",
                    "pets",
                    "GET",
                    "/search",
                    http(&backend.url("/search")),
                ),
                json!({"cache": {"keyParameters": ["method.request.querystring.q", "method.request.header.X-Tenant"]}}),
            ),
            route(
                "create",
                "pets",
                "POST",
                "/pets",
                http(&backend.url("/create")),
            ),
            with(
                route(
                    "short",
                    "pets",
                    "GET",
                    "/short",
                    http(&backend.url("/short")),
                ),
                json!({"cache": {"ttlSeconds": 1}}),
            ),
            with(
                route("off", "pets", "GET", "/off", http(&backend.url("/off"))),
                json!({"cache": {"enabled": false}}),
            ),
            route("broken", "pets", "GET", "/broken", http(&failing.url("/"))),
        ],
        &[],
    );
    let client = Client::new();
    let calls = |path: &str| {
        backend
            .received()
            .iter()
            .filter(|r| r.echo["path"] == path)
            .count()
    };

    let first = client.get(&proxy.url("/prod/pets/1?x=1"), &[]).await;
    assert_eq!(first.header("x-cache").as_deref(), Some("Miss"));
    // Another query string is not in the key: the same answer, from the cache.
    let second = client.get(&proxy.url("/prod/pets/1?x=2"), &[]).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.header("x-cache").as_deref(), Some("Hit"));
    assert_eq!(second.text(), first.text());
    assert_ne!(
        second.header("x-amzn-requestid"),
        first.header("x-amzn-requestid")
    );
    // Another path is.
    let other = client.get(&proxy.url("/prod/pets/2"), &[]).await;
    assert_eq!(other.header("x-cache").as_deref(), Some("Miss"));
    assert_eq!(calls("/pets"), 2);

    // Key parameters tell answers apart; their order in the request does not matter.
    for (q, tenant, expect) in [
        ("dog", "a", "Miss"),
        ("dog", "a", "Hit"),
        ("cat", "a", "Miss"),
        ("dog", "b", "Miss"),
    ] {
        let url = proxy.url(&format!("/prod/search?page=1&q={q}"));
        let answer = client.get(&url, &[("x-tenant", tenant)]).await;
        assert_eq!(
            answer.header("x-cache").as_deref(),
            Some(expect),
            "q={q} tenant={tenant}"
        );
    }
    assert_eq!(calls("/search"), 3);

    // POST is not cached by default; a route may turn caching off.
    for _ in 0..2 {
        client
            .request("POST", &proxy.url("/prod/pets"), &[], "{}".to_owned())
            .await;
        let off = client.get(&proxy.url("/prod/off"), &[]).await;
        assert!(off.header("x-cache").is_none());
    }
    assert_eq!(calls("/create"), 2);
    assert_eq!(calls("/off"), 2);

    // A route's own time to live.
    client.get(&proxy.url("/prod/short"), &[]).await;
    assert_eq!(
        client
            .get(&proxy.url("/prod/short"), &[])
            .await
            .header("x-cache")
            .as_deref(),
        Some("Hit")
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        client
            .get(&proxy.url("/prod/short"), &[])
            .await
            .header("x-cache")
            .as_deref(),
        Some("Miss")
    );

    // Errors are not kept.
    for _ in 0..2 {
        let broken = client.get(&proxy.url("/prod/broken"), &[]).await;
        assert_eq!(broken.status, 500);
        assert_eq!(broken.header("x-cache").as_deref(), Some("Miss"));
    }
    assert_eq!(failing.received().len(), 2);

    let metrics = client.get(&proxy.admin_url("/metrics"), &[]).await.text();
    let line = |result: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("tollgate_cache_requests_total")
                    && l.contains("GET /search")
                    && l.contains(&format!("result=\"{result}\""))
            })
            .unwrap_or_else(|| panic!("no {result} line in {metrics}"))
            .to_owned()
    };
    assert!(line("hit").ends_with(" 1"), "{}", line("hit"));
    assert!(line("miss").ends_with(" 3"), "{}", line("miss"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_storm_calls_the_backend_once() {
    let backend = Backend::gated();
    let proxy = serve(
        &[
            cached_gateway(json!({})),
            route("pets", "pets", "GET", "/pets", http(&backend.url("/pets"))),
        ],
        &[],
    );
    let client = Client::new();
    let url = proxy.url("/prod/pets");
    let storm: Vec<_> = (0..20)
        .map(|_| {
            let client = client.clone();
            let url = url.clone();
            tokio::spawn(async move { client.get(&url, &[]).await })
        })
        .collect();
    // Every request has arrived and waits on the one call before it is answered.
    tollgate_tests::wait::eventually_async("the first request at the backend", || async {
        (!backend.received().is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    backend.release();
    let mut bodies = Vec::new();
    for answer in storm {
        let answer = answer.await.unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text());
        bodies.push(answer.text());
    }
    assert_eq!(
        backend.received().len(),
        1,
        "the storm reached the backend more than once"
    );
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_0_refreshes_only_as_the_stage_allows() {
    let backend = Backend::echo();
    let resources = |cache: Value| {
        vec![
            cached_gateway(cache),
            route("pets", "pets", "GET", "/pets", http(&backend.url("/pets"))),
        ]
    };
    let client = Client::new();
    let refresh = [("cache-control", "max-age=0")];

    // Default: authorization required; the cached answer, saying the refresh was refused.
    let proxy = serve(&resources(json!({})), &[]);
    client.get(&proxy.url("/prod/pets"), &[]).await;
    let refused = client.get(&proxy.url("/prod/pets"), &refresh).await;
    assert_eq!(refused.header("x-cache").as_deref(), Some("Hit"));
    assert_eq!(
        refused.header("x-cache-invalidation").as_deref(),
        Some("refused")
    );
    assert_eq!(backend.received().len(), 1);
    drop(proxy);

    let proxy = serve(
        &resources(json!({"unauthorizedCacheControlHeaderStrategy": "FAIL_WITH_403"})),
        &[],
    );
    let forbidden = client.get(&proxy.url("/prod/pets"), &refresh).await;
    assert_eq!(forbidden.status, 403);
    assert_eq!(
        forbidden.json()["message"],
        "User is not authorized to perform: execute-api:InvalidateCache"
    );
    drop(proxy);

    // Without the requirement, anyone refreshes: the backend is called and the entry replaced.
    let proxy = serve(
        &resources(json!({"requireAuthorizationForCacheControl": false})),
        &[],
    );
    client.get(&proxy.url("/prod/pets"), &[]).await;
    let before = backend.received().len();
    let refreshed = client.get(&proxy.url("/prod/pets"), &refresh).await;
    assert_eq!(refreshed.header("x-cache").as_deref(), Some("Miss"));
    assert_eq!(backend.received().len(), before + 1);
    let after = client.get(&proxy.url("/prod/pets"), &[]).await;
    assert_eq!(after.header("x-cache").as_deref(), Some("Hit"));
    assert_eq!(after.text(), refreshed.text());
}

/// A caching gateway whose rate limiting is `rate_limiting` (its Redis shares the cache), and
/// `GET /pets/{id}` to `backend`.
fn shared_cache_api(backend: &Backend, rate_limiting: Value) -> Vec<Value> {
    let mut gw = cached_gateway(json!({}));
    gw["spec"]["rateLimiting"] = rate_limiting;
    vec![
        gw,
        route(
            "pets",
            "pets",
            "GET",
            "/pets/{id}",
            http(&backend.url("/pets")),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_of_a_gateway_with_redis_share_their_cache_and_outlive_its_outage() {
    let backend = Backend::echo();
    let mut redis = tollgate_tests::redis::RedisServer::start();
    let resources = shared_cache_api(
        &backend,
        json!({"mode": "Redis", "redis": {"url": redis.url(), "onFailure": "Local"}}),
    );
    let one = serve(&resources, &[]);
    let two = serve(&resources, &[]);
    let client = Client::new();

    // One proxy fills; the other finds the answer in Redis.
    let first = client.get(&one.url("/prod/pets/1"), &[]).await;
    assert_eq!(first.header("x-cache").as_deref(), Some("Miss"));
    // (The fill writes to Redis in the background, after the answer.)
    tollgate_tests::wait::eventually("the answer kept in Redis", || {
        let mut redis = redis.connection().ok()?;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("tollgate:cache:*")
            .query(&mut redis)
            .ok()?;
        (!keys.is_empty()).then_some(())
    });
    let shared = client.get(&two.url("/prod/pets/1"), &[]).await;
    assert_eq!(shared.header("x-cache").as_deref(), Some("Hit"));
    assert_eq!(shared.text(), first.text());
    assert_eq!(
        backend.received().len(),
        1,
        "the second proxy called the backend"
    );

    // Redis goes away: each proxy goes on from its own memory, and fills what it lacks.
    redis.stop();
    let remembered = client.get(&two.url("/prod/pets/1"), &[]).await;
    assert_eq!(remembered.header("x-cache").as_deref(), Some("Hit"));
    let fresh = client.get(&two.url("/prod/pets/2"), &[]).await;
    assert_eq!(fresh.status, 200);
    assert_eq!(fresh.header("x-cache").as_deref(), Some("Miss"));
    let again = client.get(&two.url("/prod/pets/2"), &[]).await;
    assert_eq!(again.header("x-cache").as_deref(), Some("Hit"));
}

/// The shared cache on the Redis deployments of `tests/src/redis.rs` that need more than a URL:
/// TLS with an ACL user (credentials and CA from Secrets), and a Redis Cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_cache_works_over_tls_as_an_acl_user_and_on_a_cluster() {
    use tollgate_tests::redis::{RedisCluster, RedisOptions, RedisServer, SharedRedis};
    let tls = RedisServer::start_with(RedisOptions {
        tls: true,
        acl_user: true,
        aof: false,
    });
    let cluster = RedisCluster::start();
    for redis in [&tls as &dyn SharedRedis, &cluster] {
        let backend = Backend::echo();
        let mut resources = shared_cache_api(&backend, redis.gateway_rate_limiting("Local"));
        resources.extend(redis.secrets());
        let one = serve(&resources, &[]);
        let two = serve(&resources, &[]);
        let client = Client::new();
        let sets = redis.command_calls("set");
        let first = client.get(&one.url("/prod/pets/1"), &[]).await;
        assert_eq!(first.header("x-cache").as_deref(), Some("Miss"));
        tollgate_tests::wait::eventually("the answer kept in Redis", || {
            (redis.command_calls("set") > sets).then_some(())
        });
        let shared = client.get(&two.url("/prod/pets/1"), &[]).await;
        assert_eq!(
            shared.header("x-cache").as_deref(),
            Some("Hit"),
            "{}",
            redis.log_tail()
        );
        assert_eq!(shared.text(), first.text());
        assert_eq!(
            backend.received().len(),
            1,
            "the second proxy called the backend"
        );
    }
}
