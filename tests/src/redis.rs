//! Real Redis deployments for the fleet-wide rate-limiting tests, started as child processes
//! from Debian's `redis-server` and `redis-cli` (no Docker), every socket on 127.0.0.1, each
//! deployment in its own temporary folder, every process SIGKILLed when the value is dropped.
//!
//! - [`RedisServer`]: one server. [`RedisServer::start`] as before (no persistence);
//!   [`RedisServer::start_with`] takes [`RedisOptions`]: TLS only with mutual TLS (a CA, a server
//!   certificate for `127.0.0.1` and `localhost`, a client certificate, all from rcgen), an ACL
//!   user `tollgate` with a random password and the `default` user off, an append-only file
//!   fsynced on every write (so [`stop`](RedisServer::stop) then
//!   [`restart`](RedisServer::restart), same port and folder, keeps the data). It can be stopped
//!   and started again on the same port to test what proxies do while it is away.
//! - [`RedisCluster`]: six cluster nodes (three primaries, three replicas) made by
//!   `redis-cli --cluster create`; kill the primary of a key's slot, wait for its replica to take
//!   over, start the killed node again.
//! - [`RedisSentinelSet`]: a primary, two replicas and three sentinels monitoring `tollgate`;
//!   kill the primary, wait for the sentinels' failover.
//! - [`SharedRedis`], implemented by all three: what a test puts in the gateway
//!   (`spec.rateLimiting.redis` and the Secrets it names), `INFO commandstats` counts summed over
//!   the live data nodes, and the tail of every server's log (each logs to a file in its folder)
//!   for a failing test to print.
//!
//! Every wait polls every 50 ms against a deadline and panics with the logs' tails when it
//! passes.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::proxy::free_port;
use crate::tls::{Ca, Issued};

/// The ACL user of [`RedisOptions::acl_user`].
pub const ACL_USER: &str = "tollgate";
/// The master name the sentinels of [`RedisSentinelSet`] monitor.
pub const MASTER_NAME: &str = "tollgate";

const POLL: Duration = Duration::from_millis(50);

/// What a test puts in its gateway, for any of the three deployments.
pub trait SharedRedis {
    /// `spec.rateLimiting.redis` without `onFailure`.
    fn redis_spec(&self) -> Value;
    /// The Secrets [`redis_spec`](Self::redis_spec) names (Kubernetes Secret objects with
    /// `stringData`, loaded from the same YAML as the gateway); none without TLS or ACL.
    fn secrets(&self) -> Vec<Value>;
    /// The ACL password, to assert it appears in no log.
    fn password(&self) -> Option<&str>;
    /// `INFO commandstats` calls of `command` (lowercase: `evalsha`), summed over the live
    /// primaries: a replica counts the writes it applies from its primary as calls too, so
    /// replicas are left out (a promoted replica's count includes what it applied before; a
    /// node's counts start again when it restarts).
    fn command_calls(&self, command: &str) -> u64;
    /// The last 40 lines of each server's log, labelled.
    fn log_tail(&self) -> String;
    /// `spec.rateLimiting`: `{"mode": "Redis", "redis": redis_spec + onFailure}`.
    fn gateway_rate_limiting(&self, on_failure: &str) -> Value {
        let mut redis = self.redis_spec();
        redis["onFailure"] = json!(on_failure);
        json!({"mode": "Redis", "redis": redis})
    }
}

/// How [`RedisServer::start_with`] configures the server. The default is the plain server of
/// [`RedisServer::start`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RedisOptions {
    /// TLS only (`port 0`, `tls-port`), client certificates required (`tls-auth-clients yes`).
    pub tls: bool,
    /// User `tollgate` with a random password, `~tollgate:* &* +@all`; user `default` off.
    pub acl_user: bool,
    /// `appendonly yes`, `appendfsync always`: a SIGKILL loses no acknowledged write.
    pub aof: bool,
}

/// The TLS material of a [`RedisServer`] with [`RedisOptions::tls`], PEM.
pub struct RedisTls {
    /// The CA that issued the server and client certificates.
    pub ca_pem: String,
    /// The server's certificate (`127.0.0.1`, `localhost`).
    pub server: Issued,
    /// A client certificate (`CN=tollgate`) the server accepts.
    pub client: Issued,
    ca_file: PathBuf,
    client_cert_file: PathBuf,
    client_key_file: PathBuf,
}

/// One `redis-server`.
pub struct RedisServer {
    port: u16,
    options: RedisOptions,
    tls: Option<RedisTls>,
    password: Option<String>,
    process: Process,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a plain `redis-server` (no TLS, no ACL, no persistence) and waits until it answers.
    pub fn start() -> Self {
        Self::start_with(RedisOptions::default())
    }

    /// Starts `redis-server` configured by `options` and waits until it answers.
    pub fn start_with(options: RedisOptions) -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder for redis");
        let port = free_port();
        let path = dir.path();
        let mut conf = base_config(port, path, options.tls);
        if options.aof {
            conf.push_str("appendonly yes\nappendfsync always\nsave \"\"\n");
        } else {
            conf.push_str("appendonly no\nsave \"\"\n");
        }
        let tls = options.tls.then(|| {
            let ca = Ca::new("Tollgate test Redis CA");
            let server = ca.server(&["127.0.0.1", "localhost"]);
            let client = ca.client(ACL_USER, "Tollgate tests");
            let write = |name: &str, text: &str| {
                let file = path.join(name);
                std::fs::write(&file, text).expect("writing TLS material");
                file
            };
            let tls = RedisTls {
                ca_file: write("ca.crt", &ca.pem),
                client_cert_file: write("client.crt", &client.cert_pem),
                client_key_file: write("client.key", &client.key_pem),
                ca_pem: ca.pem.clone(),
                server,
                client,
            };
            let cert = write("server.crt", &tls.server.cert_pem);
            let key = write("server.key", &tls.server.key_pem);
            writeln!(conf, "tls-cert-file {}", cert.display()).unwrap();
            writeln!(conf, "tls-key-file {}", key.display()).unwrap();
            writeln!(conf, "tls-ca-cert-file {}", tls.ca_file.display()).unwrap();
            conf.push_str("tls-auth-clients yes\n");
            tls
        });
        let password = options.acl_user.then(|| {
            let password = random_hex();
            // In the configuration file rather than on the command line, where `ps` shows it.
            conf.push_str("user default off\n");
            writeln!(conf, "user {ACL_USER} on >{password} ~tollgate:* &* +@all").unwrap();
            password
        });
        let process = Process::new("redis", port, path.to_path_buf(), &conf, false);
        let mut server = Self {
            port,
            options,
            tls,
            password,
            process,
            dir,
        };
        server.restart();
        server
    }

    /// `redis://127.0.0.1:{port}/`, or `rediss://` with TLS; never with the password.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn options(&self) -> RedisOptions {
        self.options
    }

    /// The server's folder (its configuration, log, append-only file and TLS material).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA, server and client certificates, with [`RedisOptions::tls`].
    pub fn tls(&self) -> Option<&RedisTls> {
        self.tls.as_ref()
    }

    /// The password of user `tollgate`, with [`RedisOptions::acl_user`].
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// Stops the server (SIGKILL): connections drop at once, as in a crash.
    pub fn stop(&mut self) {
        self.process.kill();
    }

    /// Starts the server again on the same port and in the same folder (so with
    /// [`RedisOptions::aof`] the data comes back; without, it starts empty), and waits until it
    /// answers and has loaded its data.
    pub fn restart(&mut self) {
        self.process.spawn();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ready = self.connection().is_ok_and(|mut c| {
                redis::cmd("INFO")
                    .arg("persistence")
                    .query::<String>(&mut c)
                    .is_ok_and(|info| info.contains("loading:0"))
            });
            if ready {
                return;
            }
            self.process.assert_running();
            assert!(
                Instant::now() < deadline,
                "redis-server did not become ready within 10 s\n{}",
                self.log_tail()
            );
            std::thread::sleep(POLL);
        }
    }

    /// A connection as the harness makes them: as user `tollgate` with ACL, with the client
    /// certificate and the CA with TLS.
    pub fn connection(&self) -> redis::RedisResult<redis::Connection> {
        let auth = self.password.as_deref().map(|p| (ACL_USER, p));
        connect(&self.client_as(auth, true)?)
    }

    /// A client for this server as `auth` (user, password; none: unauthenticated, i.e. user
    /// `default`) and, with TLS, presenting the client certificate or not. The harness's own is
    /// `client_as(Some(("tollgate", password)), true)`; the others prove what the server refuses.
    pub fn client_as(
        &self,
        auth: Option<(&str, &str)>,
        client_certificate: bool,
    ) -> redis::RedisResult<redis::Client> {
        let url = self.url();
        let url = match auth {
            // Hex passwords and a plain user name need no escaping in the URL.
            Some((user, password)) => url.replacen("://", &format!("://{user}:{password}@"), 1),
            None => url,
        };
        match &self.tls {
            None => redis::Client::open(url),
            Some(tls) => redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: client_certificate.then(|| redis::ClientTlsConfig {
                        client_cert: tls.client.cert_pem.clone().into_bytes(),
                        client_key: tls.client.key_pem.clone().into_bytes(),
                    }),
                    root_cert: Some(tls.ca_pem.clone().into_bytes()),
                },
            ),
        }
    }

    /// `redis-cli` connected as the harness connects (TLS files, user; the password in
    /// `REDISCLI_AUTH`, not on the command line); add the command's arguments.
    pub fn cli(&self) -> Command {
        let mut cli = Command::new(cli_binary());
        cli.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(tls) = &self.tls {
            cli.arg("--tls")
                .arg("--cacert")
                .arg(&tls.ca_file)
                .arg("--cert")
                .arg(&tls.client_cert_file)
                .arg("--key")
                .arg(&tls.client_key_file);
        }
        if let Some(password) = &self.password {
            cli.args(["--user", ACL_USER])
                .env("REDISCLI_AUTH", password);
        }
        cli.stdin(Stdio::null());
        cli
    }

    /// How many times each command ran since start (`INFO commandstats`), e.g. `evalsha`.
    pub fn command_calls(&self, command: &str) -> u64 {
        let mut c = self.connection().expect("connected to redis");
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut c)
            .expect("INFO");
        calls_in(&info, command)
    }

    /// `{"url": url()}`, with TLS the CA and client certificate Secrets, with ACL the
    /// credentials Secret.
    pub fn redis_spec(&self) -> Value {
        let mut spec = json!({"url": self.url()});
        if self.tls.is_some() {
            spec["tls"] = json!({
                "caSecretRef": {"name": "redis-ca"},
                "clientCertificateSecretRef": {"name": "redis-client"},
            });
        }
        if self.password.is_some() {
            spec["authSecretRef"] = json!({"name": "redis-auth"});
        }
        spec
    }

    /// The Secrets [`redis_spec`](Self::redis_spec) names: `redis-ca`
    /// (`tollgate.dev/truststore`) and `redis-client` (`kubernetes.io/tls`) with TLS,
    /// `redis-auth` (`tollgate.dev/redis-auth`) with ACL.
    pub fn secrets(&self) -> Vec<Value> {
        let mut secrets = Vec::new();
        if let Some(tls) = &self.tls {
            secrets.push(json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "redis-ca"},
                "type": "tollgate.dev/truststore",
                "stringData": {"ca.crt": tls.ca_pem},
            }));
            secrets.push(json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "redis-client"},
                "type": "kubernetes.io/tls",
                "stringData": {"tls.crt": tls.client.cert_pem, "tls.key": tls.client.key_pem},
            }));
        }
        if let Some(password) = &self.password {
            secrets.push(json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "redis-auth"},
                "type": "tollgate.dev/redis-auth",
                "stringData": {"username": ACL_USER, "password": password},
            }));
        }
        secrets
    }

    /// `spec.rateLimiting`: `{"mode": "Redis", "redis": redis_spec + onFailure}`.
    pub fn gateway_rate_limiting(&self, on_failure: &str) -> Value {
        SharedRedis::gateway_rate_limiting(self, on_failure)
    }

    /// The last 40 lines of the server's log.
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }
}

/// Six cluster nodes: three primaries with a replica each, made by `redis-cli --cluster create`.
pub struct RedisCluster {
    nodes: Vec<Process>,
    dir: tempfile::TempDir,
}

impl RedisCluster {
    /// Starts six nodes, creates the cluster and waits until every node says `cluster_state:ok`
    /// with all 16384 slots served, knows the five others, and every replica is in sync.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder for the redis cluster");
        let mut ports: Vec<u16> = Vec::new();
        while ports.len() < 6 {
            let port = free_port();
            // The cluster bus listens on port + 10000.
            if port < 55535
                && !ports.contains(&port)
                && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok()
            {
                ports.push(port);
            }
        }
        let nodes = ports
            .iter()
            .map(|&port| {
                let node_dir = subfolder(dir.path(), &format!("node-{port}"));
                let mut conf = base_config(port, &node_dir, false);
                conf.push_str("appendonly no\nsave \"\"\ncluster-enabled yes\n");
                writeln!(
                    conf,
                    "cluster-config-file {}",
                    node_dir.join("nodes.conf").display()
                )
                .unwrap();
                conf.push_str("cluster-node-timeout 2000\n");
                // A replica takes over however long ago it last heard from its primary.
                conf.push_str("cluster-replica-validity-factor 0\n");
                let mut node = Process::new("cluster node", port, node_dir, &conf, false);
                node.spawn();
                node
            })
            .collect();
        let cluster = Self { nodes, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        for node in &cluster.nodes {
            cluster.wait_until(deadline, "every node answers PING", || ping(node.port));
        }
        let log = cluster.dir.path().join("create.log");
        let log_file = std::fs::File::create(&log).expect("create.log");
        let status = Command::new(cli_binary())
            .arg("--cluster")
            .arg("create")
            .args(ports.iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("create.log"))
            .stderr(log_file)
            .status()
            .expect("redis-cli runs (scripts/setup installs it)");
        assert!(
            status.success(),
            "redis-cli --cluster create failed:\n{}\n{}",
            tail(&log, 40),
            cluster.log_tail()
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        cluster.wait_until(deadline, "the cluster is healthy and in sync", || {
            cluster.is_healthy()
                && cluster.nodes.iter().all(|n| {
                    query::<String>(n.port, redis::cmd("INFO").arg("replication")).is_ok_and(
                        |info| {
                            info.contains("role:master") || info.contains("master_link_status:up")
                        },
                    )
                })
        });
        cluster
    }

    /// `redis://127.0.0.1:{port}` of all six nodes, dead or alive.
    pub fn nodes(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    /// The ports of all six nodes.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// The live nodes that say they are a primary serving slots (`CLUSTER NODES`, `myself`).
    pub fn primaries(&self) -> Vec<u16> {
        self.live()
            .filter(|&port| {
                query::<String>(port, redis::cmd("CLUSTER").arg("NODES")).is_ok_and(|nodes| {
                    parse_cluster_nodes(&nodes).iter().any(|n| {
                        n.flags.contains(&"myself") && n.flags.contains(&"master") && n.serves_any()
                    })
                })
            })
            .collect()
    }

    /// The slot of `key` (`CLUSTER KEYSLOT`).
    pub fn slot_of(&self, key: &str) -> u16 {
        let port = self.live().next().expect("a live node");
        query::<u16>(port, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key)).expect("CLUSTER KEYSLOT")
    }

    /// The port of the primary serving `slot` in the view of the first live node that has one
    /// (a primary not flagged failed whose slot ranges hold it).
    pub fn primary_of_slot(&self, slot: u16) -> Option<u16> {
        self.live().find_map(|port| {
            let nodes = query::<String>(port, redis::cmd("CLUSTER").arg("NODES")).ok()?;
            parse_cluster_nodes(&nodes)
                .into_iter()
                .find(|n| {
                    n.flags.contains(&"master")
                        && !n.flags.iter().any(|f| f.starts_with("fail"))
                        && n.serves(slot)
                })
                .map(|n| n.port)
        })
    }

    /// SIGKILLs the primary serving `key`'s slot; returns its port.
    pub fn kill_primary_of_key(&mut self, key: &str) -> u16 {
        let slot = self.slot_of(key);
        let port = self
            .primary_of_slot(slot)
            .unwrap_or_else(|| panic!("no primary serves slot {slot}\n{}", self.log_tail()));
        self.node_mut(port).kill();
        port
    }

    /// Waits (up to 30 s) until every live node says `cluster_state:ok` with all slots served,
    /// and sees every slot owned by a live primary (after a kill: the replica was promoted).
    pub fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        self.wait_until(deadline, "the cluster is healthy again", || {
            self.is_healthy()
        });
    }

    /// Starts a killed node again with its folder and `nodes.conf` (it rejoins as a replica
    /// if its slots were taken over), and waits until it answers and says `cluster_state:ok`.
    pub fn restart_node(&mut self, port: u16) {
        self.node_mut(port).spawn();
        let deadline = Instant::now() + Duration::from_secs(30);
        self.wait_until(
            deadline,
            "the restarted node is back in the cluster",
            || {
                query::<String>(port, redis::cmd("CLUSTER").arg("INFO"))
                    .is_ok_and(|info| info.contains("cluster_state:ok"))
            },
        );
    }

    /// `INFO commandstats` calls of `command`, summed over the live primaries (see
    /// [`SharedRedis::command_calls`]).
    pub fn command_calls(&self, command: &str) -> u64 {
        sum_calls(self.live(), command)
    }

    /// `{"cluster": {"nodes": nodes()}}`.
    pub fn redis_spec(&self) -> Value {
        json!({"cluster": {"nodes": self.nodes()}})
    }

    /// None: the cluster has no TLS and no ACL.
    pub fn secrets(&self) -> Vec<Value> {
        Vec::new()
    }

    /// `spec.rateLimiting`: `{"mode": "Redis", "redis": redis_spec + onFailure}`.
    pub fn gateway_rate_limiting(&self, on_failure: &str) -> Value {
        SharedRedis::gateway_rate_limiting(self, on_failure)
    }

    /// The last 40 lines of every node's log (and of `redis-cli --cluster create`'s output).
    pub fn log_tail(&self) -> String {
        let mut out = format!(
            "--- redis-cli --cluster create ---\n{}",
            tail(&self.dir.path().join("create.log"), 40)
        );
        for node in &self.nodes {
            out.push_str(&node.log_tail());
        }
        out
    }

    /// Every live node says `cluster_state:ok` with all 16384 slots served and knows all six
    /// nodes; all see the same three primaries serving slots, all alive, and those are the
    /// nodes that say so of themselves.
    fn is_healthy(&self) -> bool {
        let live: Vec<u16> = self.live().collect();
        let mut agreed: Option<BTreeSet<u16>> = None;
        let mut say_primary = BTreeSet::new();
        for &port in &live {
            let ok = query::<String>(port, redis::cmd("CLUSTER").arg("INFO")).is_ok_and(|info| {
                info.contains("cluster_state:ok")
                    && info.contains("cluster_slots_ok:16384")
                    && info.contains("cluster_known_nodes:6")
            });
            let Ok(text) = query::<String>(port, redis::cmd("CLUSTER").arg("NODES")) else {
                return false;
            };
            let nodes = parse_cluster_nodes(&text);
            let owners: BTreeSet<u16> = nodes
                .iter()
                .filter(|n| n.flags.contains(&"master") && n.serves_any())
                .map(|n| n.port)
                .collect();
            if nodes.iter().any(|n| {
                n.flags.contains(&"myself") && n.flags.contains(&"master") && n.serves_any()
            }) {
                say_primary.insert(port);
            }
            if !ok || *agreed.get_or_insert_with(|| owners.clone()) != owners {
                return false;
            }
        }
        agreed.is_some_and(|owners| {
            owners.len() == 3 && owners == say_primary && owners.iter().all(|p| live.contains(p))
        })
    }

    fn live(&self) -> impl Iterator<Item = u16> + '_ {
        self.nodes.iter().filter(|n| n.alive()).map(|n| n.port)
    }

    fn node_mut(&mut self, port: u16) -> &mut Process {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no cluster node on port {port}"))
    }

    fn wait_until(&self, deadline: Instant, what: &str, done: impl FnMut() -> bool) {
        wait_until(deadline, what, done, || self.log_tail());
    }
}

/// A primary, two replicas and three sentinels monitoring it as `tollgate` (quorum 2, down
/// after 1 s, failover timeout 5 s).
pub struct RedisSentinelSet {
    data: Vec<Process>,
    sentinels: Vec<Process>,
    dir: tempfile::TempDir,
}

impl RedisSentinelSet {
    /// Starts the primary, the replicas (until the primary sees both online), then the
    /// sentinels, and waits until every sentinel knows the primary, both replicas and the two
    /// other sentinels.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder for redis sentinel");
        let primary = free_port();
        let mut ports = vec![primary];
        let mut data = Vec::new();
        for i in 0..3 {
            let port = if i == 0 {
                primary
            } else {
                distinct_port(&mut ports)
            };
            let node_dir = subfolder(dir.path(), &format!("redis-{port}"));
            let mut conf = base_config(port, &node_dir, false);
            conf.push_str("appendonly no\nsave \"\"\n");
            if i > 0 {
                writeln!(conf, "replicaof 127.0.0.1 {primary}").unwrap();
            }
            let mut node = Process::new("redis", port, node_dir, &conf, false);
            node.spawn();
            data.push(node);
        }
        let mut set = Self {
            data,
            sentinels: Vec::new(),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        set.wait_until(deadline, "the primary sees both replicas online", || {
            query::<String>(primary, redis::cmd("INFO").arg("replication")).is_ok_and(|info| {
                info.lines()
                    .filter(|l| l.starts_with("slave") && l.contains("state=online"))
                    .count()
                    == 2
            })
        });
        for _ in 0..3 {
            let port = distinct_port(&mut ports);
            let sentinel_dir = subfolder(set.dir.path(), &format!("sentinel-{port}"));
            let mut conf = base_config(port, &sentinel_dir, false);
            conf.push_str("sentinel resolve-hostnames no\n");
            writeln!(conf, "sentinel monitor {MASTER_NAME} 127.0.0.1 {primary} 2").unwrap();
            writeln!(conf, "sentinel down-after-milliseconds {MASTER_NAME} 1000").unwrap();
            writeln!(conf, "sentinel failover-timeout {MASTER_NAME} 5000").unwrap();
            let mut sentinel = Process::new("sentinel", port, sentinel_dir, &conf, true);
            sentinel.spawn();
            set.sentinels.push(sentinel);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        set.wait_until(deadline, "every sentinel knows the set", || {
            set.sentinels.iter().all(|s| {
                sentinel_primary(s.port) == Some(primary)
                    && sentinel_entries(s.port, "replicas")
                        .is_some_and(|r| r.len() == 2 && r.iter().all(|e| healthy_entry(e)))
                    && sentinel_entries(s.port, "sentinels").is_some_and(|r| r.len() == 2)
            })
        });
        set
    }

    /// `tollgate`.
    pub fn master_name(&self) -> &str {
        MASTER_NAME
    }

    /// `redis://127.0.0.1:{port}` of the three sentinels.
    pub fn sentinels(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|s| format!("redis://127.0.0.1:{}", s.port))
            .collect()
    }

    /// The ports of the three data nodes (primary first at start).
    pub fn data_ports(&self) -> Vec<u16> {
        self.data.iter().map(|n| n.port).collect()
    }

    /// The primary's port as the first sentinel that answers names it
    /// (`SENTINEL get-master-addr-by-name tollgate`).
    pub fn primary_port(&self) -> u16 {
        self.sentinels
            .iter()
            .filter(|s| s.alive())
            .find_map(|s| sentinel_primary(s.port))
            .unwrap_or_else(|| panic!("no sentinel names a primary\n{}", self.log_tail()))
    }

    /// SIGKILLs the current primary; returns its port.
    pub fn kill_primary(&mut self) -> u16 {
        let port = self.primary_port();
        self.data
            .iter_mut()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("the sentinels name an unknown primary {port}"))
            .kill();
        port
    }

    /// Waits (up to 30 s) until every live sentinel names the same primary, other than `old`,
    /// and that node answers `ROLE` as master; returns its port. (All of them, so that
    /// [`primary_port`](Self::primary_port) agrees afterwards.)
    pub fn wait_failover(&self, old: u16) -> u16 {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut new = None;
        self.wait_until(deadline, "the sentinels fail over", || {
            let named: Vec<Option<u16>> = self
                .sentinels
                .iter()
                .filter(|s| s.alive())
                .map(|s| sentinel_primary(s.port))
                .collect();
            new = named.first().copied().flatten().filter(|&p| {
                p != old
                    && named.iter().all(|n| *n == Some(p))
                    && role(p).as_deref() == Some("master")
            });
            new.is_some()
        });
        new.expect("a new primary")
    }

    /// Starts a killed data node again in its folder (the sentinels make it a replica of the
    /// current primary) and waits until it answers PING.
    pub fn restart_data_node(&mut self, port: u16) {
        self.data
            .iter_mut()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no data node on port {port}"))
            .spawn();
        let deadline = Instant::now() + Duration::from_secs(10);
        self.wait_until(deadline, "the restarted node answers", || ping(port));
    }

    /// `INFO commandstats` calls of `command`, summed over the live data nodes that are primary
    /// (see [`SharedRedis::command_calls`]).
    pub fn command_calls(&self, command: &str) -> u64 {
        sum_calls(
            self.data.iter().filter(|n| n.alive()).map(|n| n.port),
            command,
        )
    }

    /// `{"sentinel": {"masterName": "tollgate", "nodes": sentinels()}}`.
    pub fn redis_spec(&self) -> Value {
        json!({"sentinel": {"masterName": MASTER_NAME, "nodes": self.sentinels()}})
    }

    /// None: the set has no TLS and no ACL.
    pub fn secrets(&self) -> Vec<Value> {
        Vec::new()
    }

    /// `spec.rateLimiting`: `{"mode": "Redis", "redis": redis_spec + onFailure}`.
    pub fn gateway_rate_limiting(&self, on_failure: &str) -> Value {
        SharedRedis::gateway_rate_limiting(self, on_failure)
    }

    /// The last 40 lines of every data node's and sentinel's log.
    pub fn log_tail(&self) -> String {
        self.data
            .iter()
            .chain(&self.sentinels)
            .map(Process::log_tail)
            .collect()
    }

    fn wait_until(&self, deadline: Instant, what: &str, done: impl FnMut() -> bool) {
        wait_until(deadline, what, done, || self.log_tail());
    }
}

impl SharedRedis for RedisServer {
    fn redis_spec(&self) -> Value {
        RedisServer::redis_spec(self)
    }
    fn secrets(&self) -> Vec<Value> {
        RedisServer::secrets(self)
    }
    fn password(&self) -> Option<&str> {
        RedisServer::password(self)
    }
    fn command_calls(&self, command: &str) -> u64 {
        RedisServer::command_calls(self, command)
    }
    fn log_tail(&self) -> String {
        RedisServer::log_tail(self)
    }
}

impl SharedRedis for RedisCluster {
    fn redis_spec(&self) -> Value {
        RedisCluster::redis_spec(self)
    }
    fn secrets(&self) -> Vec<Value> {
        RedisCluster::secrets(self)
    }
    fn password(&self) -> Option<&str> {
        None
    }
    fn command_calls(&self, command: &str) -> u64 {
        RedisCluster::command_calls(self, command)
    }
    fn log_tail(&self) -> String {
        RedisCluster::log_tail(self)
    }
}

impl SharedRedis for RedisSentinelSet {
    fn redis_spec(&self) -> Value {
        RedisSentinelSet::redis_spec(self)
    }
    fn secrets(&self) -> Vec<Value> {
        RedisSentinelSet::secrets(self)
    }
    fn password(&self) -> Option<&str> {
        None
    }
    fn command_calls(&self, command: &str) -> u64 {
        RedisSentinelSet::command_calls(self, command)
    }
    fn log_tail(&self) -> String {
        RedisSentinelSet::log_tail(self)
    }
}

/// One `redis-server` process (a data node or a sentinel): its port, folder, configuration file
/// and log (`redis.log` in the folder, standard output and error appended, across restarts).
struct Process {
    label: &'static str,
    port: u16,
    dir: PathBuf,
    config: PathBuf,
    sentinel: bool,
    child: Option<Child>,
}

impl Process {
    fn new(label: &'static str, port: u16, dir: PathBuf, config: &str, sentinel: bool) -> Self {
        let file = dir.join(if sentinel {
            "sentinel.conf"
        } else {
            "redis.conf"
        });
        std::fs::write(&file, config).expect("writing a redis configuration");
        Self {
            label,
            port,
            dir,
            config: file,
            sentinel,
            child: None,
        }
    }

    fn log(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    /// Starts the process (killing it first if it runs), without waiting.
    fn spawn(&mut self) {
        self.kill();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .expect("a redis log file");
        let mut command = Command::new(binary());
        command.arg(&self.config);
        if self.sentinel {
            command.arg("--sentinel");
        }
        let child = command
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the redis log file"))
            .stderr(log)
            .spawn()
            .expect("redis-server starts (scripts/setup installs it)");
        self.child = Some(child);
    }

    /// SIGKILL, then reaps it.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn alive(&self) -> bool {
        self.child.is_some()
    }

    /// Panics with the log's tail if the process has exited by itself.
    fn assert_running(&mut self) {
        if let Some(child) = &mut self.child
            && let Ok(Some(status)) = child.try_wait()
        {
            panic!(
                "{} on port {} exited ({status})\n{}",
                self.label,
                self.port,
                self.log_tail()
            );
        }
    }

    fn log_tail(&self) -> String {
        format!(
            "--- {} 127.0.0.1:{} ({}) ---\n{}",
            self.label,
            self.port,
            self.log().display(),
            tail(&self.log(), 40)
        )
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The configuration every process shares: loopback, port (or TLS port), folder, no daemon.
fn base_config(port: u16, dir: &Path, tls: bool) -> String {
    let mut conf = String::from("bind 127.0.0.1\ndaemonize no\nloglevel notice\n");
    if tls {
        writeln!(conf, "port 0\ntls-port {port}").unwrap();
    } else {
        writeln!(conf, "port {port}").unwrap();
    }
    writeln!(conf, "dir {}", dir.display()).unwrap();
    conf
}

/// A free port not in `taken`, added to it.
fn distinct_port(taken: &mut Vec<u16>) -> u16 {
    loop {
        let port = free_port();
        if !taken.contains(&port) {
            taken.push(port);
            return port;
        }
    }
}

/// Creates `base/name` and returns it.
fn subfolder(base: &Path, name: &str) -> PathBuf {
    let path = base.join(name);
    std::fs::create_dir(&path).expect("a folder for a redis process");
    path
}

/// 32 hex characters from the kernel's random source.
fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("reading /dev/urandom");
    hex::encode(bytes)
}

/// Connects with a 2 s timeout on connecting and on every reply.
fn connect(client: &redis::Client) -> redis::RedisResult<redis::Connection> {
    let connection = client.get_connection_with_timeout(Duration::from_secs(2))?;
    connection.set_read_timeout(Some(Duration::from_secs(2)))?;
    connection.set_write_timeout(Some(Duration::from_secs(2)))?;
    Ok(connection)
}

/// Runs `cmd` on a plain (no TLS, no ACL) node.
fn query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> redis::RedisResult<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    cmd.query(&mut connect(&client)?)
}

fn ping(port: u16) -> bool {
    query::<String>(port, &redis::cmd("PING")).is_ok()
}

/// The first element of `ROLE`: `master`, `slave` or `sentinel`.
fn role(port: u16) -> Option<String> {
    let reply: Vec<redis::Value> = query(port, &redis::cmd("ROLE")).ok()?;
    redis::from_redis_value_ref(reply.first()?).ok()
}

fn calls_in(info: &str, command: &str) -> u64 {
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

/// Summed over the nodes of `ports` whose `ROLE` is master: a replica counts the writes it
/// applies from its primary's stream as calls too.
fn sum_calls(ports: impl Iterator<Item = u16>, command: &str) -> u64 {
    ports
        .filter(|&port| role(port).as_deref() == Some("master"))
        .map(|port| {
            let info: String = query(port, redis::cmd("INFO").arg("commandstats"))
                .unwrap_or_else(|e| panic!("INFO commandstats on {port}: {e}"));
            calls_in(&info, command)
        })
        .sum()
}

/// The primary's port per this sentinel.
fn sentinel_primary(sentinel: u16) -> Option<u16> {
    let addr: Vec<String> = query(
        sentinel,
        redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(MASTER_NAME),
    )
    .ok()?;
    addr.get(1)?.parse().ok()
}

/// `SENTINEL replicas|sentinels tollgate`: one field map (as pairs) per entry.
fn sentinel_entries(sentinel: u16, what: &str) -> Option<Vec<Vec<(String, String)>>> {
    let entries: Vec<Vec<String>> =
        query(sentinel, redis::cmd("SENTINEL").arg(what).arg(MASTER_NAME)).ok()?;
    Some(
        entries
            .into_iter()
            .map(|fields| {
                fields
                    .chunks(2)
                    .filter_map(|kv| Some((kv.first()?.clone(), kv.get(1)?.clone())))
                    .collect()
            })
            .collect(),
    )
}

/// An entry whose `flags` say neither down nor disconnected.
fn healthy_entry(entry: &[(String, String)]) -> bool {
    entry
        .iter()
        .find(|(k, _)| k == "flags")
        .is_some_and(|(_, flags)| !flags.contains("down") && !flags.contains("disconnected"))
}

/// A line of `CLUSTER NODES`.
struct ClusterNode<'a> {
    port: u16,
    flags: Vec<&'a str>,
    /// Inclusive slot ranges (`5461-10922` or a single `42`).
    slots: Vec<(u16, u16)>,
}

impl ClusterNode<'_> {
    fn serves(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(a, b)| (a..=b).contains(&slot))
    }

    fn serves_any(&self) -> bool {
        !self.slots.is_empty()
    }
}

/// `<id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch> <link> <slot>...`;
/// importing/migrating markers (`[...]`) are skipped.
fn parse_cluster_nodes(text: &str) -> Vec<ClusterNode<'_>> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let addr = fields.get(1)?;
            let port = addr.split('@').next()?.rsplit(':').next()?.parse().ok()?;
            let flags = fields.get(2)?.split(',').collect();
            let slots = fields
                .iter()
                .skip(8)
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => {
                        let n = s.parse().ok()?;
                        Some((n, n))
                    }
                })
                .collect();
            Some(ClusterNode { port, flags, slots })
        })
        .collect()
}

/// Polls `done` every 50 ms until it holds; past `deadline`, panics with `logs()`.
fn wait_until(
    deadline: Instant,
    what: &str,
    mut done: impl FnMut() -> bool,
    logs: impl Fn() -> String,
) {
    loop {
        if done() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting until {what}\n{}",
            logs()
        );
        std::thread::sleep(POLL);
    }
}

/// The last `n` lines of a file (empty if it does not exist).
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = lines[lines.len().saturating_sub(n)..].join("\n");
    out.push('\n');
    out
}

/// `redis-server` on the PATH, or Debian's location.
fn binary() -> PathBuf {
    ["/usr/bin/redis-server", "/usr/sbin/redis-server"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("redis-server"))
}

/// `redis-cli`, Debian's location or on the PATH.
pub fn cli_binary() -> PathBuf {
    let debian = PathBuf::from("/usr/bin/redis-cli");
    if debian.exists() {
        debian
    } else {
        PathBuf::from("redis-cli")
    }
}
