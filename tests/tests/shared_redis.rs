//! Fleet-wide counters on the Redis deployments platform teams run, all real Debian
//! `redis-server` processes: TLS with an ACL user, a Redis Cluster of three primaries and three
//! replicas, a primary and two replicas under three sentinels, and a server with an append-only
//! file. On each, the accuracy checks of `tollgate_tests::throttling` (three proxies, one key:
//! its rate ± 5%, its quota exactly); then what a failover, a restart and an outage do to the
//! counts, against what `docs/operations.md` promises.
//!
//! Needs the binary: `cargo build --workspace --bins` before `cargo test -p tollgate-tests`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tollgate_tests::client::Client;
use tollgate_tests::proxy::Proxy;
use tollgate_tests::redis::{
    RedisCluster, RedisOptions, RedisSentinelSet, RedisServer, SharedRedis,
};
use tollgate_tests::throttling::{
    Calls, Fleet, KEY_A, KEY_B, LIMIT_EXCEEDED, TOO_MANY, get, offer,
    quota_is_exact_across_three_proxies, rate_is_shared_across_three_proxies, throttle,
};

const TLS_ACL: RedisOptions = RedisOptions {
    tls: true,
    acl_user: true,
    aof: false,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_as_an_acl_user_rates_and_quotas_stay_exact_and_the_password_unlogged() {
    let redis = RedisServer::start_with(TLS_ACL);
    assert!(redis.url().starts_with("rediss://"));
    rate_is_shared_across_three_proxies(&redis, Calls::One).await;
    quota_is_exact_across_three_proxies(&redis).await;

    // A wrong password: every request meets the failure mode, and the log says why without
    // the password.
    let mut secrets = redis.secrets();
    let auth = secrets
        .iter_mut()
        .find(|s| s["type"] == "tollgate.dev/redis-auth")
        .unwrap();
    auth["stringData"]["password"] = json!("not-the-password-0123456789");
    let fleet = Fleet::start(&WithSecrets(&redis, secrets), "FailClosed", json!({}));
    let client = Client::new();
    let r = get(&client, &fleet.proxies[0], "/dev/pets", Some(KEY_A)).await;
    assert_eq!((r.status, r.text().as_str()), (429, TOO_MANY));
    let logs = fleet.logs();
    assert!(
        logs.contains("redis for rate limiting is unavailable"),
        "{logs}"
    );
    assert!(
        logs.contains("as tollgate (Secret default/redis-auth)"),
        "{logs}"
    );
    let password = redis.password().unwrap();
    assert!(!logs.contains(password), "a log shows the password");
    assert!(
        !logs.contains("not-the-password"),
        "a log shows the password"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_redis_cluster_rates_and_quotas_stay_exact() {
    let cluster = RedisCluster::start();
    let by_rate = rate_is_shared_across_three_proxies(&cluster, Calls::PerSlot).await;
    quota_is_exact_across_three_proxies(&cluster).await;

    // The usage of the plan's day, in the plan's slot: every admitted request counted once
    // (the rate test's, the quota's 150, bobby's 1), written after each answer.
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let key = format!("tollgate:{{default/gold}}:u|default/gold|{today}");
    let client = redis::cluster::ClusterClient::new(cluster.nodes()).unwrap();
    tollgate_tests::wait::eventually("usage counted in the cluster", || {
        let mut c = client.get_connection().ok()?;
        let counts: std::collections::HashMap<String, u64> =
            redis::cmd("HGETALL").arg(&key).query(&mut c).ok()?;
        println!("usage on the cluster: {counts:?}");
        (counts.get("bobby") == Some(&1) && counts.get("alice") == Some(&(by_rate + 150)))
            .then_some(())
    });
}

/// One command on the node at `port`.
fn on_node<T: redis::FromRedisValue>(port: u16, cmd: &mut redis::Cmd) -> T {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let mut c = client.get_connection().unwrap();
    cmd.query(&mut c)
        .unwrap_or_else(|e| panic!("{cmd:?} on {port}: {e}"))
}

/// Alice's slot moves to another primary while her quota is being spent: first marked
/// migrating (her counters still on the old primary), then her counters moved (the old primary
/// answers `ASK`, the proxies ask the new one), then the slot handed over (`MOVED`). Every
/// request meets the right counters: the quota is admitted exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_migrating_under_load_is_followed_through_ask_and_moved_and_the_quota_stays_exact() {
    const QUOTA: u64 = 200;
    let cluster = RedisCluster::start();
    let fleet = Fleet::start(
        &cluster,
        "FailClosed",
        json!({"quota": {"limit": QUOTA, "period": "DAY"}}),
    );
    let client = Client::new();
    let mut outcomes = (0u64, 0u64, 0u64);
    let mut send = async |n: usize| {
        for i in 0..n {
            let r = get(&client, &fleet.proxies[i % 3], "/dev/pets", Some(KEY_A)).await;
            match (r.status, r.text().as_str()) {
                (200, _) => outcomes.0 += 1,
                (429, LIMIT_EXCEEDED) => outcomes.1 += 1,
                (429, TOO_MANY) => outcomes.2 += 1,
                (s, body) => panic!("unexpected {s} {body}"),
            }
        }
    };
    send(50).await;

    let slot = cluster.slot_of("{default/gold|alice}");
    let source = cluster.primary_of_slot(slot).unwrap();
    let target = *cluster.primaries().iter().find(|&&p| p != source).unwrap();
    let id = |port: u16| -> String { on_node(port, redis::cmd("CLUSTER").arg("MYID")) };
    let (source_id, target_id) = (id(source), id(target));
    println!("moving slot {slot} from {source} to {target}");
    let _: () = on_node(
        target,
        redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("IMPORTING")
            .arg(&source_id),
    );
    let _: () = on_node(
        source,
        redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("MIGRATING")
            .arg(&target_id),
    );
    send(30).await;

    let keys: Vec<String> = on_node(
        source,
        redis::cmd("CLUSTER")
            .arg("GETKEYSINSLOT")
            .arg(slot)
            .arg(100),
    );
    assert!(!keys.is_empty(), "alice's counters are in her slot");
    let _: () = on_node(
        source,
        redis::cmd("MIGRATE")
            .arg("127.0.0.1")
            .arg(target)
            .arg("")
            .arg(0)
            .arg(5000)
            .arg("KEYS")
            .arg(&keys),
    );
    let asking_before = cluster.command_calls("asking");
    send(30).await;
    let asked = cluster.command_calls("asking") - asking_before;

    for port in cluster.primaries() {
        let _: () = on_node(
            port,
            redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg("NODE")
                .arg(&target_id),
        );
    }
    send(200).await;
    println!(
        "slot migration: admitted {}, Limit Exceeded {}, refused (Redis unavailable) {}; \
         ASKING sent {asked} times",
        outcomes.0, outcomes.1, outcomes.2
    );
    assert!(asked > 0, "no proxy followed an ASK redirection");
    assert_eq!(cluster.primary_of_slot(slot), Some(target));
    assert_eq!(
        outcomes.0,
        QUOTA,
        "the quota is exact across the migration\n{}",
        fleet.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_sentinel_rates_and_quotas_stay_exact() {
    let sentinels = RedisSentinelSet::start();
    rate_is_shared_across_three_proxies(&sentinels, Calls::One).await;
    quota_is_exact_across_three_proxies(&sentinels).await;
}

/// The key's rate, offered at 3R over three proxies for `seconds`, while `fail` runs after
/// `fail_after`: (admitted, refused).
async fn offered_while(
    fleet: &Fleet,
    r: f64,
    seconds: f64,
    fail_after: Duration,
    fail: impl FnOnce() + Send + 'static,
) -> (u64, u64) {
    let failing = tokio::spawn(async move {
        tokio::time::sleep(fail_after).await;
        tokio::task::spawn_blocking(fail).await.unwrap();
    });
    let client = Client::new();
    let (admitted, refused) = offer(&client, &fleet.refs(), [1, 1, 1], 3.0 * r, seconds).await;
    failing.await.unwrap();
    (admitted.iter().sum(), refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_primary_killed_mid_run_leaves_the_rate_to_local_shares_until_the_failover() {
    const R: f64 = 20.0;
    const SECONDS: f64 = 14.0;
    let cluster = Arc::new(std::sync::Mutex::new(RedisCluster::start()));
    let fleet = Fleet::start(
        &*cluster.lock().unwrap(),
        "Local",
        json!({"throttle": throttle(R, 3)}),
    );
    let client = Client::new();
    for proxy in fleet.refs() {
        assert_eq!(
            get(&client, proxy, "/dev/pets", Some(KEY_A)).await.status,
            200
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let killer = cluster.clone();
    let (admitted, refused) =
        offered_while(&fleet, R, SECONDS, Duration::from_secs(3), move || {
            let mut cluster = killer.lock().unwrap();
            let port =
                cluster.kill_primary_of_key("tollgate:{default/gold|alice}:k|default/gold|alice");
            println!("killed the primary of alice's slot, port {port}");
        })
        .await;
    let expected = R * SECONDS;
    println!(
        "cluster, primary killed at 3 s of {SECONDS} s: admitted {admitted} of {} offered \
         (refused {refused}); the rate allows {expected}",
        3.0 * R * SECONDS
    );
    // docs/operations.md: while a slot fails over, each proxy enforces its share (here R/3,
    // burst 1), so the fleet admits about the rate; at most a burst per proxy more.
    assert!(
        admitted as f64 <= expected * 1.05 + 3.0 * 3.0,
        "over-admission during the failover: {admitted} > {expected}\n{}",
        fleet.logs()
    );
    assert!(
        admitted as f64 >= expected * 0.8,
        "the fleet stopped serving the key during the failover: {admitted} of {expected}"
    );
    // Redis decides again once the replica has taken over.
    let cluster = Arc::into_inner(cluster)
        .expect("the killer is done")
        .into_inner()
        .unwrap();
    cluster.wait_healthy();
    let before = cluster.command_calls("evalsha") + cluster.command_calls("eval");
    tollgate_tests::wait::eventually_async("the cluster deciding again", || async {
        let r = get(&client, &fleet.proxies[0], "/dev/pets", Some(KEY_A)).await;
        let after = cluster.command_calls("evalsha") + cluster.command_calls("eval");
        (r.status == 200 && after > before).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_sentinel_failover_the_proxies_follow_the_new_primary() {
    const QUOTA: u64 = 120;
    let sentinels = Arc::new(std::sync::Mutex::new(RedisSentinelSet::start()));
    let fleet = Fleet::start(
        &*sentinels.lock().unwrap(),
        "FailClosed",
        json!({"quota": {"limit": QUOTA, "period": "DAY"}}),
    );
    let client = Client::new();
    let mut admitted = 0;
    for i in 0..60 {
        let proxy = &fleet.proxies[i % 3];
        if get(&client, proxy, "/dev/pets", Some(KEY_A)).await.status == 200 {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 60);
    // Replication is asynchronous: let the replicas have the count before the primary dies.
    std::thread::sleep(Duration::from_millis(500));
    let (old, new) = {
        let mut set = sentinels.lock().unwrap();
        let old = set.kill_primary();
        (old, set.wait_failover(old))
    };
    println!("sentinel failover: primary {old} killed, {new} promoted");
    // Requests meet FailClosed until each proxy asks the sentinels again; then the new
    // primary decides, with the count the replica had.
    let mut outcomes = (0u64, 0u64, 0u64);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while outcomes.1 < QUOTA && tokio::time::Instant::now() < deadline {
        for proxy in &fleet.proxies {
            let r = get(&client, proxy, "/dev/pets", Some(KEY_A)).await;
            match (r.status, r.text().as_str()) {
                (200, _) => outcomes.0 += 1,
                (429, LIMIT_EXCEEDED) => outcomes.1 += 1,
                (429, TOO_MANY) => outcomes.2 += 1,
                (s, body) => panic!("unexpected {s} {body}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "after the failover: admitted {}, Limit Exceeded {}, refused while Redis was away {}",
        outcomes.0, outcomes.1, outcomes.2
    );
    assert_eq!(
        admitted + outcomes.0,
        QUOTA,
        "the quota is exact across the failover\n{}",
        fleet.logs()
    );
    let calls = sentinels.lock().unwrap().command_calls("evalsha");
    assert!(calls > 0, "the new primary ran no admission");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_survive_a_redis_restart_with_an_append_only_file_and_not_without() {
    for aof in [true, false] {
        const QUOTA: u64 = 50;
        let mut redis = RedisServer::start_with(RedisOptions {
            aof,
            ..RedisOptions::default()
        });
        let fleet = Fleet::start(
            &redis,
            "FailClosed",
            json!({"quota": {"limit": QUOTA, "period": "DAY"}}),
        );
        let client = Client::new();
        let proxies: Vec<&Proxy> = fleet.refs();
        for i in 0..30 {
            let r = get(&client, proxies[i % 3], "/dev/pets", Some(KEY_A)).await;
            assert_eq!(r.status, 200);
        }
        redis.stop();
        redis.restart();
        // Until each proxy has tried Redis again, FailClosed answers Too Many Requests: those
        // are asked again; the others count.
        let mut admitted = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let mut answered = 0;
        while answered < 90 {
            let r = get(&client, proxies[answered % 3], "/dev/pets", Some(KEY_A)).await;
            match (r.status, r.text().as_str()) {
                (200, _) => admitted += 1,
                (429, LIMIT_EXCEEDED) => {}
                (429, TOO_MANY) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "Redis not deciding again"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                (s, body) => panic!("unexpected {s} {body}"),
            }
            answered += 1;
        }
        println!("append-only file {aof}: 30 admitted before the restart, {admitted} after");
        if aof {
            assert_eq!(30 + admitted, QUOTA, "the count survived the restart");
        } else {
            assert_eq!(
                admitted, QUOTA,
                "without persistence the period starts over"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_shares_during_an_outage_and_the_redis_count_add_up_to_the_quota() {
    const QUOTA: u64 = 90;
    let mut redis = RedisServer::start_with(RedisOptions {
        aof: true,
        ..RedisOptions::default()
    });
    let fleet = Fleet::start(
        &redis,
        "Local",
        json!({"quota": {"limit": QUOTA, "period": "DAY"}}),
    );
    let client = Client::new();
    let proxies = fleet.refs();
    let mut admitted = 0u64;
    let send = async |i: usize, admitted: &mut u64| {
        let r = get(&client, proxies[i % 3], "/dev/pets", Some(KEY_A)).await;
        match (r.status, r.text().as_str()) {
            (200, _) => *admitted += 1,
            (429, LIMIT_EXCEEDED) => {}
            (s, body) => panic!("unexpected {s} {body}"),
        }
    };
    for i in 0..60 {
        send(i, &mut admitted).await;
    }
    assert_eq!(admitted, 60);
    // Redis away: each proxy goes on with its share of what was left (30 / 3), not a fresh
    // third of the quota.
    redis.stop();
    for i in 0..60 {
        send(i, &mut admitted).await;
    }
    let during = admitted - 60;
    println!("while Redis was away the three proxies admitted {during}");
    assert!(
        (27..=33).contains(&during),
        "local shares should follow what Redis had counted: {during} admitted of the 30 left"
    );
    // Back (its count kept by the append-only file): what the proxies admitted meanwhile is
    // added to it, so the period ends at the quota.
    redis.restart();
    tollgate_tests::wait::eventually_async("Redis counting again", || async {
        let mut c = redis.connection().ok()?;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("tollgate:q|default/gold|alice|*")
            .query(&mut c)
            .ok()?;
        let key = keys.first()?;
        let used: u64 = redis::cmd("GET").arg(key).query(&mut c).ok()?;
        // Each proxy's first call after the outage flushes what it admitted meanwhile.
        let _ = get(&client, proxies[0], "/dev/pets", Some(KEY_B)).await;
        let _ = get(&client, proxies[1], "/dev/pets", Some(KEY_B)).await;
        let _ = get(&client, proxies[2], "/dev/pets", Some(KEY_B)).await;
        (used >= 60 + during).then_some(())
    })
    .await;
    let before = admitted;
    for i in 0..30 {
        send(i, &mut admitted).await;
    }
    println!(
        "after the outage: {} more admitted, {admitted} in all",
        admitted - before
    );
    assert!(
        admitted <= QUOTA + 3,
        "{admitted} admitted for a quota of {QUOTA}: at most one request per proxy over"
    );
}

/// A deployment with its Secrets replaced (a wrong password, say).
struct WithSecrets<'a>(&'a RedisServer, Vec<serde_json::Value>);

impl SharedRedis for WithSecrets<'_> {
    fn redis_spec(&self) -> serde_json::Value {
        self.0.redis_spec()
    }
    fn secrets(&self) -> Vec<serde_json::Value> {
        self.1.clone()
    }
    fn password(&self) -> Option<&str> {
        self.0.password()
    }
    fn command_calls(&self, command: &str) -> u64 {
        self.0.command_calls(command)
    }
    fn log_tail(&self) -> String {
        self.0.log_tail()
    }
}
