//! The fleet-wide accuracy checks of rate limiting in `Redis` mode, for any Redis deployment
//! ([`SharedRedis`]: one server, TLS with an ACL user, a cluster, Sentinel): three proxies
//! share one key's rate (offered 3R for 10 s, split evenly then 80/10/10, admitted 10·R ± 5%)
//! and its quota (exactly the limit, however many requests race for it).
//!
//! The gateway is `api` (stage `dev`): `GET /pets` needs a key, `GET /open` does not; keys
//! `alice` ([`KEY_A`]) and `bobby` ([`KEY_B`]) are in plan `gold`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::client::{Client, Response};
use crate::config::{ConfigDir, api_key, dev_gateway, mock, route, usage_plan};
use crate::proxy::Proxy;
use crate::redis::SharedRedis;

pub const TOO_MANY: &str = r#"{"message":"Too Many Requests"}"#;
pub const LIMIT_EXCEEDED: &str = r#"{"message":"Limit Exceeded"}"#;
// 40 characters each.
pub const KEY_A: &str = "throttle-alice-0123456789abcdef012345678";
pub const KEY_B: &str = "throttle-bobby-0123456789abcdef012345678";

/// Gateway `api` (stage `dev`, extra spec fields from `spec`), route `GET /pets` needing a
/// key and `GET /open` not, keys `alice` and `bobby` in plan `gold` (fields from `plan`).
pub fn resources(spec: Value, plan: Value) -> Vec<Value> {
    let mut gw = dev_gateway("api");
    for (k, v) in spec.as_object().cloned().unwrap_or_default() {
        gw["spec"][k] = v;
    }
    let mut pets = route("pets", "api", "GET", "/pets", mock(200, r#"{"pets":[]}"#));
    pets["spec"]["apiKeyRequired"] = json!(true);
    let mut gold = usage_plan("gold", "api", "dev", &["alice", "bobby"]);
    for (k, v) in plan.as_object().cloned().unwrap_or_default() {
        gold["spec"][k] = v;
    }
    vec![
        gw,
        pets,
        route("open", "api", "GET", "/open", mock(200, r#"{"open":true}"#)),
        api_key("alice", KEY_A, true),
        api_key("bobby", KEY_B, true),
        gold,
    ]
}

pub fn throttle(rate: f64, burst: u32) -> Value {
    json!({"rateLimit": rate, "burstLimit": burst})
}

pub async fn get(client: &Client, proxy: &Proxy, path: &str, key: Option<&str>) -> Response {
    let headers: Vec<(&str, &str)> = key.map(|k| ("x-api-key", k)).into_iter().collect();
    client.get(&proxy.url(path), &headers).await
}

pub fn header_u64(r: &Response, name: &str) -> Option<u64> {
    r.header(name).and_then(|v| v.parse().ok())
}

/// Three standalone proxies on the same resources (`--fleet-size 3`): [`resources`] with the
/// gateway's rate limiting on `redis` (failure mode `on_failure`) and the plan's fields
/// `plan`, plus the deployment's Secrets.
pub struct Fleet {
    _config: ConfigDir,
    pub proxies: Vec<Arc<Proxy>>,
}

impl Fleet {
    pub fn start(redis: &dyn SharedRedis, on_failure: &str, plan: Value) -> Self {
        let mut all = resources(
            json!({"rateLimiting": redis.gateway_rate_limiting(on_failure)}),
            plan,
        );
        all.extend(redis.secrets());
        let config = ConfigDir::with("resources.yaml", &all);
        let proxies = (0..3)
            .map(|_| {
                Arc::new(Proxy::start_standalone(
                    config.path(),
                    &["--fleet-size", "3"],
                ))
            })
            .collect();
        Self {
            _config: config,
            proxies,
        }
    }

    pub fn refs(&self) -> Vec<&Proxy> {
        self.proxies.iter().map(|p| &**p).collect()
    }

    /// Stops the proxies as Kubernetes would (SIGTERM) and waits for them to exit: what they
    /// write at shutdown (a cluster's usage counts) is then written.
    pub fn stop(self) {
        for proxy in &self.proxies {
            proxy.terminate();
        }
        for proxy in self.proxies {
            let mut proxy = Arc::into_inner(proxy).expect("no request in flight");
            proxy.wait_exit(Duration::from_secs(15));
        }
    }

    /// Every line the proxies wrote to stderr (their logs).
    pub fn logs(&self) -> String {
        self.proxies
            .iter()
            .flat_map(|p| p.stderr_lines())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Offers `rate` requests/s for `seconds` with KEY_A, spread over `proxies` in proportion
/// to `weights`; returns how many each proxy admitted (200) and refused (429).
pub async fn offer(
    client: &Client,
    proxies: &[&Proxy],
    weights: [usize; 3],
    rate: f64,
    seconds: f64,
) -> (Vec<u64>, u64) {
    let pattern: Vec<usize> = (0..3)
        .flat_map(|p| std::iter::repeat_n(p, weights[p]))
        .collect();
    let total = (rate * seconds) as usize;
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
        let target = pattern[i % pattern.len()];
        let url = proxies[target].url("/dev/pets");
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let r = client.get(&url, &[("x-api-key", KEY_A)]).await;
            (target, r.status, r.text())
        }));
    }
    let mut admitted = vec![0u64; 3];
    let mut refused = 0;
    for task in tasks {
        match task.await.unwrap() {
            (p, 200, _) => admitted[p] += 1,
            (_, 429, _) => refused += 1,
            (_, other, body) => panic!("unexpected {other} {body}"),
        }
    }
    (admitted, refused)
}

/// How many admission-script calls a keyed request costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Calls {
    /// One server or Sentinel's primary: one call per request.
    One,
    /// A cluster: the key's slot for every request, the gateway's for those the key admits.
    PerSlot,
}

/// R requests/s for one key across three proxies on `redis`: 10·R ± 5% admitted of 3R
/// offered, split evenly and 80/10/10, with the script calls `calls` says. Returns how many
/// were admitted in all.
pub async fn rate_is_shared_across_three_proxies(redis: &dyn SharedRedis, calls: Calls) -> u64 {
    const R: f64 = 20.0;
    const SECONDS: f64 = 10.0;
    // A burst of 2 absorbs the jitter of arrivals (a request a few ms early is not refused)
    // and adds at most 2 to the 10·R admitted.
    let fleet = Fleet::start(redis, "FailClosed", json!({"throttle": throttle(R, 2)}));
    let refs = fleet.refs();
    let client = Client::new();
    // Each proxy loads the script into Redis on its first call; do that on a keyless route.
    for proxy in &refs {
        let r = get(&client, proxy, "/dev/open", None).await;
        assert_eq!(r.status, 200, "{}\n{}", r.text(), redis.log_tail());
    }
    let script_calls = || redis.command_calls("evalsha") + redis.command_calls("eval");

    let mut all = 0;
    for (name, weights) in [("even", [1, 1, 1]), ("80/10/10", [8, 1, 1])] {
        let calls_before = script_calls();
        let (admitted, refused) = offer(&client, &refs, weights, 3.0 * R, SECONDS).await;
        let total: u64 = admitted.iter().sum();
        all += total;
        let expected = R * SECONDS;
        let error = (total as f64 - expected) / expected;
        println!(
            "{name} split: offered {} over {SECONDS} s, admitted {total} (per proxy \
             {admitted:?}), refused {refused}; expected {expected}: {:+.1}%",
            3.0 * R * SECONDS,
            error * 100.0
        );
        assert!(
            error.abs() <= 0.05,
            "{name}: admitted {total}, expected {expected} ± 5%\n{}",
            fleet.logs()
        );
        let made = script_calls() - calls_before;
        match calls {
            Calls::One => assert_eq!(made, total + refused, "script calls per request"),
            Calls::PerSlot => {
                // A node that has not seen the script yet answers NOSCRIPT once per proxy,
                // and the proxy sends it whole (EVALSHA, then EVAL).
                let least = 2 * total + refused;
                assert!(
                    (least..=least + 6).contains(&made),
                    "{made} script calls for {total} admitted and {refused} refused: two per \
                     admitted request, one per refused"
                );
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    all
}

/// A quota of 150 raced for by 400 requests over three proxies on `redis`: exactly 150 are
/// admitted, the rest get `Limit Exceeded`; another key's quota is its own.
pub async fn quota_is_exact_across_three_proxies(redis: &dyn SharedRedis) {
    const QUOTA: u64 = 150;
    let fleet = Fleet::start(
        redis,
        "FailClosed",
        json!({"quota": {"limit": QUOTA, "period": "MONTH", "offset": 3}}),
    );
    let client = Client::new();
    let (admitted, refused) = race(&client, &fleet.proxies, 400).await;
    println!("quota {QUOTA}: admitted {admitted}, refused {refused} (Limit Exceeded)");
    assert_eq!(
        admitted,
        QUOTA,
        "a quota is exact across the fleet\n{}",
        fleet.logs()
    );
    let last = get(&client, &fleet.proxies[1], "/dev/pets", Some(KEY_B)).await;
    assert_eq!(last.status, 200, "another key has its own quota");
    assert_eq!(header_u64(&last, "ratelimit-limit"), Some(QUOTA));
    assert_eq!(header_u64(&last, "ratelimit-remaining"), Some(QUOTA - 1));
    fleet.stop();
}

/// About `requests` requests with KEY_A at once, 8 concurrent streams per proxy; how many
/// were admitted and how many got `Limit Exceeded` (anything else fails the test).
pub async fn race(client: &Client, proxies: &[Arc<Proxy>], requests: usize) -> (u64, u64) {
    let streams = 8 * proxies.len();
    let mut tasks = Vec::new();
    for worker in 0..streams {
        let proxy = proxies[worker % proxies.len()].clone();
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut counts = (0u64, 0u64);
            for _ in 0..(requests / streams + 1) {
                let r = client
                    .get(&proxy.url("/dev/pets"), &[("x-api-key", KEY_A)])
                    .await;
                match (r.status, r.text().as_str()) {
                    (200, _) => counts.0 += 1,
                    (429, LIMIT_EXCEEDED) => counts.1 += 1,
                    (s, body) => panic!("unexpected {s} {body}"),
                }
            }
            counts
        }));
    }
    let (mut admitted, mut refused) = (0, 0);
    for t in tasks {
        let (a, r) = t.await.unwrap();
        admitted += a;
        refused += r;
    }
    (admitted, refused)
}
