//! The fleet's Redis as the compiler resolved it: where it is, the TLS material and the ACL
//! credentials read from their Secrets. Whoever connects (the proxies' rate limiting, stage
//! cache and `@connections` bus, the controller's usage reader) connects from this alone.
//!
//! It carries a password: its `Debug` redacts it, and [`RedisTable`]'s `Display` (what logs
//! and errors name) is the addresses without any user information.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ObjectKey;

#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct RedisTable {
    pub topology: RedisTopology,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<RedisTlsTable>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<RedisAuthTable>,
}

/// One server, a cluster, or a primary found through Sentinel.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum RedisTopology {
    /// `redis://` or `rediss://host:port/db`.
    Standalone { url: String },
    /// Seed nodes, all `redis://` or all `rediss://`.
    Cluster { nodes: Vec<String> },
    /// The sentinels and the name they monitor the primary under.
    #[serde(rename_all = "camelCase")]
    Sentinel {
        master_name: String,
        nodes: Vec<String>,
        db: u8,
    },
}

/// PEM material for TLS to Redis.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct RedisTlsTable {
    /// The CAs to trust instead of the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// A client certificate chain and its key, both or neither.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate_pem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_pem: Option<String>,
}

/// An ACL user (or the `default` user's password), from a `tollgate.dev/redis-auth` Secret.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct RedisAuthTable {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentinel_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentinel_password: Option<String>,
    /// The Secret it came from, for messages.
    pub source: ObjectKey,
}

impl RedisTable {
    /// One plain server at `url` (tests, and `redisUrl` shorthands).
    pub fn standalone(url: impl Into<String>) -> Self {
        Self {
            topology: RedisTopology::Standalone { url: url.into() },
            tls: None,
            auth: None,
        }
    }

    /// Whether keys must be laid out for a Redis Cluster (one admission's keys in one slot).
    pub fn is_cluster(&self) -> bool {
        matches!(self.topology, RedisTopology::Cluster { .. })
    }
}

impl fmt::Display for RedisTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |nodes: &[String]| {
            nodes
                .iter()
                .map(|n| redact(n))
                .collect::<Vec<_>>()
                .join(",")
        };
        match &self.topology {
            RedisTopology::Standalone { url } => f.write_str(&redact(url))?,
            RedisTopology::Cluster { nodes } => write!(f, "cluster {}", list(nodes))?,
            RedisTopology::Sentinel {
                master_name, nodes, ..
            } => write!(f, "sentinel {master_name} at {}", list(nodes))?,
        }
        if let Some(auth) = &self.auth {
            write!(
                f,
                " as {} (Secret {})",
                auth.username.as_deref().unwrap_or("default"),
                auth.source
            )?;
        }
        Ok(())
    }
}

/// A Redis URL without the user information a user may have put in it.
pub fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((_, host)) => format!("{scheme}://…@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

impl fmt::Debug for RedisTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTable")
            .field("at", &format_args!("{self}"))
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for RedisTlsTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTlsTable")
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "…"))
            .field(
                "client_certificate_pem",
                &self.client_certificate_pem.as_ref().map(|_| "…"),
            )
            .field(
                "client_key_pem",
                &self.client_key_pem.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl fmt::Debug for RedisAuthTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisAuthTable")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("sentinel_username", &self.sentinel_username)
            .field(
                "sentinel_password",
                &self.sentinel_password.as_ref().map(|_| "<redacted>"),
            )
            .field("source", &self.source)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neither_display_nor_debug_shows_a_password() {
        let table = RedisTable {
            topology: RedisTopology::Standalone {
                url: "rediss://:inline-secret@redis:6380/0".into(),
            },
            tls: None,
            auth: Some(RedisAuthTable {
                username: Some("tollgate".into()),
                password: "secret-password".into(),
                sentinel_username: None,
                sentinel_password: Some("sentinel-secret".into()),
                source: ObjectKey::new("default", "redis-auth"),
            }),
        };
        let shown = format!("{table} {table:?}");
        assert_eq!(
            table.to_string(),
            "rediss://…@redis:6380/0 as tollgate (Secret default/redis-auth)"
        );
        assert!(!shown.contains("secret-password"), "{shown}");
        assert!(!shown.contains("sentinel-secret"), "{shown}");
        assert!(!shown.contains("inline-secret"), "{shown}");
    }
}
