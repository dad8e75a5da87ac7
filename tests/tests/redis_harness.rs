//! The Redis harness itself (tests/src/redis.rs), not Tollgate: a TLS server with an ACL user
//! takes only mutual TLS as that user; the append-only file keeps counts across a SIGKILL and a
//! restart; a cluster serves every slot and promotes a replica when a primary dies; sentinels
//! fail over to a replica that takes writes. And what each gives a gateway to put in its
//! `spec.rateLimiting`.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::json;
use tollgate_tests::redis::{
    RedisCluster, RedisOptions, RedisSentinelSet, RedisServer, SharedRedis, cli_binary,
};

fn pings(client: redis::RedisResult<redis::Client>) -> bool {
    client
        .and_then(|c| c.get_connection_with_timeout(std::time::Duration::from_secs(2)))
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
        .is_ok_and(|pong| pong == "PONG")
}

fn stdout(mut command: Command) -> String {
    let out = command.output().expect("redis-cli runs");
    assert!(out.status.success(), "{command:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `redis-cli -c` (follows MOVED redirections) against a cluster node.
fn cluster_cli(port: u16, args: &[&str]) -> String {
    let mut cli = Command::new(cli_binary());
    cli.args(["-c", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args);
    stdout(cli)
}

#[test]
fn a_tls_server_with_an_acl_user_answers_only_that_user_over_mutual_tls() {
    let redis = RedisServer::start_with(RedisOptions {
        tls: true,
        acl_user: true,
        aof: false,
    });
    let password = redis.password().expect("a password").to_owned();
    assert_eq!(password.len(), 32);
    assert_eq!(redis.url(), format!("rediss://127.0.0.1:{}/", redis.port()));

    // The harness's own connection: the client certificate, user tollgate.
    let mut c = redis.connection().expect("mutual TLS as tollgate");
    assert_eq!(redis::cmd("PING").query::<String>(&mut c).unwrap(), "PONG");
    let n: i64 = redis::cmd("INCR").arg("tollgate:n").query(&mut c).unwrap();
    assert_eq!(n, 1);
    // Keys outside tollgate:* are not the user's.
    let denied = redis::cmd("SET").arg("other").arg("1").query::<()>(&mut c);
    assert!(
        denied
            .as_ref()
            .is_err_and(|e| e.to_string().contains("no permissions")),
        "{denied:?}"
    );
    // So does redis-cli with the same material (password in REDISCLI_AUTH).
    let mut cli = redis.cli();
    cli.arg("PING");
    assert_eq!(stdout(cli), "PONG");

    // The default user is off, a wrong password is refused, and so is a client without a
    // certificate even with the right user.
    assert!(!pings(redis.client_as(None, true)), "default user answered");
    assert!(!pings(redis.client_as(Some(("default", "x")), true)));
    assert!(!pings(redis.client_as(Some(("tollgate", "wrong")), true)));
    assert!(!pings(
        redis.client_as(Some(("tollgate", &password)), false)
    ));
    assert!(pings(redis.client_as(Some(("tollgate", &password)), true)));

    assert!(redis.command_calls("ping") >= 2);
    assert_eq!(redis.command_calls("incr"), 1);
    assert!(!redis.log_tail().contains(&password));

    let tls = redis.tls().expect("TLS material");
    assert_eq!(
        redis.gateway_rate_limiting("FailClosed"),
        json!({"mode": "Redis", "redis": {
            "url": redis.url(),
            "tls": {
                "caSecretRef": {"name": "redis-ca"},
                "clientCertificateSecretRef": {"name": "redis-client"},
            },
            "authSecretRef": {"name": "redis-auth"},
            "onFailure": "FailClosed",
        }})
    );
    assert_eq!(
        redis.secrets(),
        vec![
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "redis-ca"},
                "type": "tollgate.dev/truststore", "stringData": {"ca.crt": tls.ca_pem}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "redis-client"},
                "type": "kubernetes.io/tls",
                "stringData": {"tls.crt": tls.client.cert_pem, "tls.key": tls.client.key_pem}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "redis-auth"},
                "type": "tollgate.dev/redis-auth",
                "stringData": {"username": "tollgate", "password": password}}),
        ]
    );
}

#[test]
fn the_append_only_file_keeps_counts_across_a_kill_and_without_it_they_are_lost() {
    let mut aof = RedisServer::start_with(RedisOptions {
        aof: true,
        ..RedisOptions::default()
    });
    let mut plain = RedisServer::start();
    for redis in [&aof, &plain] {
        let mut c = redis.connection().unwrap();
        for _ in 0..3 {
            let _: i64 = redis::cmd("INCR").arg("tollgate:n").query(&mut c).unwrap();
        }
        assert!(redis.secrets().is_empty());
        assert_eq!(redis.redis_spec(), json!({"url": redis.url()}));
        assert_eq!(redis.password(), None);
    }
    let port = aof.port();
    aof.stop();
    aof.restart();
    plain.stop();
    plain.restart();
    assert_eq!(aof.port(), port);
    let count = |redis: &RedisServer| -> Option<i64> {
        redis::cmd("GET")
            .arg("tollgate:n")
            .query(&mut redis.connection().unwrap())
            .unwrap()
    };
    assert_eq!(count(&aof), Some(3), "{}", aof.log_tail());
    assert_eq!(count(&plain), None);
    assert!(aof.log_tail().contains("Ready to accept connections"));
}

#[test]
fn a_cluster_serves_every_slot_and_promotes_a_replica_when_a_primary_dies() {
    let mut cluster = RedisCluster::start();
    let ports = cluster.ports();
    assert_eq!(cluster.nodes().len(), 6);
    assert_eq!(
        cluster.nodes()[0],
        format!("redis://127.0.0.1:{}", ports[0])
    );
    let primaries = cluster.primaries();
    assert_eq!(primaries.len(), 3, "{}", cluster.log_tail());

    // Keys until every primary serves one, each written through redis-cli -c.
    let mut served = BTreeSet::new();
    let mut keys = Vec::new();
    for i in 0.. {
        let key = format!("tollgate:{i}");
        let owner = cluster
            .primary_of_slot(cluster.slot_of(&key))
            .expect("an owner");
        assert_eq!(cluster_cli(ports[0], &["SET", &key, &i.to_string()]), "OK");
        keys.push(key);
        served.insert(owner);
        if served.len() == 3 {
            break;
        }
    }
    assert_eq!(served, primaries.iter().copied().collect());
    // Counted on the primaries only (replicas apply the same SETs).
    assert_eq!(cluster.command_calls("set"), keys.len() as u64);

    let key = &keys[0];
    let slot = cluster.slot_of(key);
    let old = cluster.kill_primary_of_key(key);
    assert!(primaries.contains(&old));
    cluster.wait_healthy();
    let new = cluster.primary_of_slot(slot).expect("the slot is served");
    assert_ne!(new, old);
    assert!(!cluster.primaries().contains(&old));
    let live = *ports.iter().find(|&&p| p != old).unwrap();
    assert_eq!(cluster_cli(live, &["SET", key, "after"]), "OK");
    assert_eq!(cluster_cli(live, &["GET", key]), "after");

    // The killed node comes back as a replica; three primaries still.
    cluster.restart_node(old);
    cluster.wait_healthy();
    assert_eq!(cluster.primaries().len(), 3, "{}", cluster.log_tail());
    assert_eq!(cluster.primary_of_slot(slot), Some(new));

    assert_eq!(
        cluster.gateway_rate_limiting("Local"),
        json!({"mode": "Redis", "redis": {"cluster": {"nodes": cluster.nodes()}, "onFailure": "Local"}})
    );
    assert!(SharedRedis::secrets(&cluster).is_empty());
    assert!(cluster.log_tail().contains("Cluster state changed: ok"));
}

#[test]
fn sentinels_fail_over_to_a_replica_that_takes_writes() {
    let mut set = RedisSentinelSet::start();
    assert_eq!(set.master_name(), "tollgate");
    assert_eq!(set.sentinels().len(), 3);
    let old = set.primary_port();
    assert_eq!(old, set.data_ports()[0]);

    let client = |port: u16| redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let mut c = client(old).get_connection().unwrap();
    let _: () = redis::cmd("SET")
        .arg("tollgate:k")
        .arg("1")
        .query(&mut c)
        .unwrap();
    assert_eq!(set.command_calls("set"), 1);

    assert_eq!(set.kill_primary(), old);
    let new = set.wait_failover(old);
    assert_ne!(new, old);
    assert_eq!(set.primary_port(), new);
    let mut c = client(new).get_connection().unwrap();
    let _: () = redis::cmd("SET")
        .arg("tollgate:k")
        .arg("2")
        .query(&mut c)
        .unwrap();
    assert!(set.command_calls("set") >= 1);

    // The old primary, started again, is made a replica by the sentinels.
    set.restart_data_node(old);
    assert_eq!(set.primary_port(), new);

    assert_eq!(
        set.gateway_rate_limiting("FailOpen"),
        json!({"mode": "Redis", "redis": {
            "sentinel": {"masterName": "tollgate", "nodes": set.sentinels()},
            "onFailure": "FailOpen",
        }})
    );
    assert!(
        set.log_tail().contains("+switch-master"),
        "{}",
        set.log_tail()
    );
}

/// One accuracy test can run over every deployment through the trait.
#[test]
fn every_deployment_is_a_shared_redis() {
    let server = RedisServer::start_with(RedisOptions {
        acl_user: true,
        ..RedisOptions::default()
    });
    let shared: &dyn SharedRedis = &server;
    assert_eq!(shared.redis_spec()["url"], json!(server.url()));
    assert!(!server.url().contains(server.password().unwrap()));
    assert_eq!(shared.secrets().len(), 1);
    assert_eq!(shared.password(), server.password());
    assert!(shared.command_calls("info") >= 1);
    assert!(
        shared
            .log_tail()
            .contains(&format!("127.0.0.1:{}", server.port()))
    );
}
