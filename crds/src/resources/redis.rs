//! Where the fleet's shared state lives: a Redis server, a Redis Cluster or a primary found
//! through Redis Sentinel, reached in plain text or TLS, as the default user or an ACL user.
//! Rate limiting's `Redis` mode, the shared stage cache, usage counts and a WebSocket API's
//! `@connections` bus all connect with these settings.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::LocalRef;

/// The Secret type of a Redis ACL user's credentials: `password`, and `username` unless the
/// user is `default`. Optional `sentinelUsername` and `sentinelPassword` are what Sentinel
/// itself asks for (its own `requirepass`), when it asks.
pub const REDIS_AUTH_SECRET_TYPE: &str = "tollgate.dev/redis-auth";

/// How to reach the fleet's Redis: exactly one of `url` (one server), `cluster` or `sentinel`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(has(self.url) ? 1 : 0) + (has(self.cluster) ? 1 : 0) + (has(self.sentinel) ? 1 : 0) == 1",
        "message": "name exactly one of url (one Redis server), cluster (Redis Cluster) and sentinel (a primary found through Redis Sentinel)"
    }
]))]
pub struct RedisConnection {
    /// One Redis server: `redis://host:port/db`, or `rediss://host:port/db` for TLS. Put no
    /// password here: name a Secret in `authSecretRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^rediss?://[^\s]+$"), length(max = 2048))]
    pub url: Option<String>,
    /// A Redis Cluster (ElastiCache with cluster mode, Memorystore Cluster, the Bitnami chart
    /// `redis-cluster`): some of its nodes, from which the rest is discovered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<RedisCluster>,
    /// A primary and its replicas watched by Redis Sentinel: the proxies ask the sentinels
    /// which node is the primary, and ask again after a failover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentinel: Option<RedisSentinel>,
    /// The CA that signed the servers' certificates, and a client certificate when the servers
    /// ask for one. Only for `rediss://` addresses; without a CA, Mozilla's roots (compiled into
    /// the proxy, as for backends) are trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<RedisTls>,
    /// A Secret of type `tollgate.dev/redis-auth` with the ACL user's `username` and
    /// `password` (or only `password`, for the `default` user's `requirepass`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret_ref: Option<LocalRef>,
}

/// Some nodes of a Redis Cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisCluster {
    /// `redis://host:port` or `rediss://host:port` (all alike); any reachable one is enough
    /// to discover the cluster.
    #[schemars(length(min = 1, max = 16))]
    #[schemars(inner(regex(pattern = r"^rediss?://[^\s/]+/?$"), length(max = 2048)))]
    pub nodes: Vec<String>,
}

/// Redis Sentinel: the sentinels to ask, and the name they know the primary by.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisSentinel {
    /// The name the sentinels monitor the primary under (`sentinel monitor <name> …`).
    #[schemars(length(min = 1, max = 253))]
    pub master_name: String,
    /// The sentinels: `redis://host:26379`, or `rediss://` when they talk TLS (the data nodes
    /// are then reached over TLS too).
    #[schemars(length(min = 1, max = 16))]
    #[schemars(inner(regex(pattern = r"^rediss?://[^\s/]+/?$"), length(max = 2048)))]
    pub nodes: Vec<String>,
    /// The database the proxies use on the primary (0 to 15).
    #[serde(default)]
    #[schemars(range(min = 0, max = 15))]
    pub db: u8,
}

/// TLS to Redis beyond the scheme: whom to trust, and what to show.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisTls {
    /// A Secret of type `tollgate.dev/truststore` or `kubernetes.io/tls` whose `ca.crt` holds
    /// the PEM bundle of CAs the servers' certificates chain to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<LocalRef>,
    /// The same bundle in a ConfigMap's `ca.crt` (as trust-manager writes it); it must carry the
    /// label `tollgate.dev/truststore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_config_map_ref: Option<LocalRef>,
    /// A Secret of type `kubernetes.io/tls` (`tls.crt`, `tls.key`): the certificate the proxies
    /// present when the servers require one (`tls-auth-clients yes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate_secret_ref: Option<LocalRef>,
}
