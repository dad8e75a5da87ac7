//! A gateway's Redis settings, resolved: addresses checked, the CA bundle, client certificate
//! and ACL credentials read from their Secrets and ConfigMap. What is wrong is named with its
//! field; the gateway is then rejected and its proxies keep the last good table.

use k8s_openapi::api::core::v1::Secret;

use super::diagnostics::{Diagnostic, Reason};
use super::gateway::{secret_string, tls_material, truststore_config_map, truststore_secret};
use super::{Resources, validate};
use crate::resources::{REDIS_AUTH_SECRET_TYPE, RedisConnection};
use crate::table::{ObjectKey, RedisAuthTable, RedisTable, RedisTlsTable, RedisTopology};

/// `connection` (at `field`, e.g. `spec.rateLimiting.redis`) as a table, or `None` after
/// rejecting the gateway with each problem.
pub(super) fn compile(
    gw: &ObjectKey,
    connection: &RedisConnection,
    field: &str,
    resources: &Resources,
    diag: &mut Diagnostic,
) -> Option<RedisTable> {
    let mut ok = true;
    let mut reject = |reason: Reason, at: String, message: String| {
        diag.reject(reason, at, message);
        ok = false;
    };
    let topology = match (&connection.url, &connection.cluster, &connection.sentinel) {
        (Some(url), None, None) => RedisTopology::Standalone { url: url.clone() },
        (None, Some(c), None) => RedisTopology::Cluster {
            nodes: c.nodes.clone(),
        },
        (None, None, Some(s)) => RedisTopology::Sentinel {
            master_name: s.master_name.clone(),
            nodes: s.nodes.clone(),
            db: s.db,
        },
        _ => {
            reject(
                Reason::InvalidRedis,
                field.to_string(),
                "name exactly one of url (one Redis server), cluster (Redis Cluster) and \
                 sentinel (a primary found through Redis Sentinel)"
                    .into(),
            );
            return None;
        }
    };
    let (addresses, at): (Vec<&String>, String) = match &topology {
        RedisTopology::Standalone { url } => (vec![url], format!("{field}.url")),
        RedisTopology::Cluster { nodes } => {
            (nodes.iter().collect(), format!("{field}.cluster.nodes"))
        }
        RedisTopology::Sentinel {
            nodes, master_name, ..
        } => {
            if master_name.is_empty() {
                reject(
                    Reason::InvalidRedis,
                    format!("{field}.sentinel.masterName"),
                    "masterName is the name the sentinels monitor the primary under".into(),
                );
            }
            (nodes.iter().collect(), format!("{field}.sentinel.nodes"))
        }
    };
    if addresses.is_empty() {
        reject(
            Reason::InvalidRedis,
            at.clone(),
            "name at least one node".into(),
        );
    }
    let one_server = matches!(topology, RedisTopology::Standalone { .. });
    for address in &addresses {
        if let Err(e) = validate::redis_url(address) {
            reject(Reason::InvalidRedis, at.clone(), e);
        } else if !one_server && has_database(address) {
            reject(
                Reason::InvalidRedis,
                at.clone(),
                format!(
                    "{} names a database: a cluster has only database 0, and Sentinel's is \
                     sentinel.db; write the node as scheme://host:port",
                    crate::table::redact_redis_url(address)
                ),
            );
        }
    }
    let tls_schemes = addresses
        .iter()
        .filter(|a| a.starts_with("rediss://"))
        .count();
    if tls_schemes != 0 && tls_schemes != addresses.len() {
        reject(
            Reason::InvalidRedis,
            at.clone(),
            "the nodes mix redis:// and rediss://: name them all with the same scheme".into(),
        );
    }

    let tls = connection.tls.as_ref().and_then(|t| {
        if tls_schemes == 0 {
            reject(
                Reason::InvalidRedis,
                format!("{field}.tls"),
                "tls is for rediss:// addresses: write the addresses as rediss://, or remove tls"
                    .into(),
            );
            return None;
        }
        let ca_pem = match (&t.ca_secret_ref, &t.ca_config_map_ref) {
            (Some(r), None) => truststore_secret(gw, &r.name, &resources.secrets)
                .map_err(|(reason, e)| reject(reason, format!("{field}.tls.caSecretRef.name"), e))
                .ok()?
                .into(),
            (None, Some(r)) => truststore_config_map(gw, &r.name, resources)
                .map_err(|(reason, e)| {
                    reject(reason, format!("{field}.tls.caConfigMapRef.name"), e)
                })
                .ok()?
                .into(),
            (None, None) => None,
            (Some(_), Some(_)) => {
                reject(
                    Reason::InvalidRedis,
                    format!("{field}.tls"),
                    "name at most one of caSecretRef and caConfigMapRef".into(),
                );
                return None;
            }
        };
        let client = match &t.client_certificate_secret_ref {
            Some(r) => Some(
                tls_material(gw, &r.name, &resources.secrets)
                    .map_err(|(reason, e)| {
                        reject(
                            reason,
                            format!("{field}.tls.clientCertificateSecretRef.name"),
                            e,
                        )
                    })
                    .ok()?,
            ),
            None => None,
        };
        Some(RedisTlsTable {
            ca_pem,
            client_certificate_pem: client.as_ref().map(|c| c.certificate_pem.clone()),
            client_key_pem: client.map(|c| c.private_key_pem),
        })
    });

    let auth = connection.auth_secret_ref.as_ref().and_then(|r| {
        let key = ObjectKey::new(&gw.namespace, &r.name);
        credentials(&key, resources.secrets.get(&key))
            .map_err(|(reason, e)| reject(reason, format!("{field}.authSecretRef.name"), e))
            .ok()
    });
    ok.then_some(RedisTable {
        topology,
        tls,
        auth,
    })
}

/// Whether a Redis URL has a path (`/3`), beyond an empty one.
fn has_database(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split_once('/')
        .is_some_and(|(_, path)| !path.is_empty())
}

/// The ACL credentials of a `tollgate.dev/redis-auth` Secret.
fn credentials(
    key: &ObjectKey,
    secret: Option<&Secret>,
) -> Result<RedisAuthTable, (Reason, String)> {
    // The controller sees no Secret of another type: to it, such a Secret does not exist.
    let secret = secret.ok_or_else(|| {
        (
            Reason::SecretNotFound,
            format!(
                "Secret {key} does not exist, or is not of type {REDIS_AUTH_SECRET_TYPE} (the \
                 controller watches only that type for Redis credentials)"
            ),
        )
    })?;
    if secret.type_.as_deref() != Some(REDIS_AUTH_SECRET_TYPE) {
        return Err((
            Reason::InvalidSecret,
            format!("Secret {key} must be of type {REDIS_AUTH_SECRET_TYPE}"),
        ));
    }
    let value = |field: &str| secret_string(secret, field).filter(|v| !v.is_empty());
    let password = value("password").ok_or_else(|| {
        (
            Reason::InvalidSecret,
            format!("Secret {key} has no key password"),
        )
    })?;
    Ok(RedisAuthTable {
        username: value("username"),
        password,
        sentinel_username: value("sentinelUsername"),
        sentinel_password: value("sentinelPassword"),
        source: key.clone(),
    })
}

#[cfg(test)]
mod tests {
    use crate::compile::{Kind, Reason, compile_str};
    use crate::table::{ObjectKey, RedisTopology};

    const CA: &str = include_str!("../../tests/testdata/test-only-client-ca.crt");

    /// A gateway whose rate limiting uses the Redis `redis` (YAML flow), with `extra` objects.
    fn compile(redis: &str, extra: &str) -> crate::compile::Compiled {
        let yaml = format!(
            "apiVersion: tollgate.dev/v1alpha1\nkind: ApiGateway\nmetadata: {{name: api}}\n\
             spec:\n  stages: [{{name: dev}}]\n  rateLimiting: {{mode: Redis, redis: {redis}}}\n{extra}"
        );
        compile_str(&yaml, "test.yaml").expect("loads")
    }

    fn problems(compiled: &crate::compile::Compiled) -> Vec<(Reason, String)> {
        compiled
            .diagnostic(Kind::ApiGateway, &ObjectKey::new("default", "api"))
            .unwrap()
            .problems
            .iter()
            .map(|p| (p.reason, p.field.clone()))
            .collect()
    }

    #[test]
    fn a_cluster_over_tls_as_an_acl_user_resolves_its_secrets() {
        let extra = format!(
            "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: auth}}\n\
             type: tollgate.dev/redis-auth\nstringData: {{username: gw, password: s3cret}}\n\
             ---\napiVersion: v1\nkind: Secret\nmetadata: {{name: ca}}\n\
             type: tollgate.dev/truststore\nstringData:\n  ca.crt: |\n{}",
            CA.lines().map(|l| format!("    {l}\n")).collect::<String>()
        );
        let compiled = compile(
            "{cluster: {nodes: ['rediss://a:6379', 'rediss://b:6379']}, \
             tls: {caSecretRef: {name: ca}}, authSecretRef: {name: auth}}",
            &extra,
        );
        assert_eq!(problems(&compiled), []);
        let table = &compiled.tables[&ObjectKey::new("default", "api")];
        let redis = table.rate_limiting.redis.as_ref().unwrap();
        assert!(matches!(&redis.topology, RedisTopology::Cluster { nodes } if nodes.len() == 2));
        assert!(
            redis
                .tls
                .as_ref()
                .unwrap()
                .ca_pem
                .as_ref()
                .unwrap()
                .contains("BEGIN CERTIFICATE")
        );
        let auth = redis.auth.as_ref().unwrap();
        assert_eq!(
            (auth.username.as_deref(), auth.password.as_str()),
            (Some("gw"), "s3cret")
        );
        assert!(!format!("{redis} {redis:?}").contains("s3cret"));
    }

    #[test]
    fn what_cannot_work_rejects_the_gateway_naming_the_field() {
        let cases = [
            (
                "{url: 'redis://a:6379', authSecretRef: {name: missing}}",
                "",
                (
                    Reason::SecretNotFound,
                    "spec.rateLimiting.redis.authSecretRef.name",
                ),
            ),
            (
                "{url: 'redis://a:6379', tls: {}}",
                "",
                (Reason::InvalidRedis, "spec.rateLimiting.redis.tls"),
            ),
            (
                "{cluster: {nodes: ['redis://a:6379', 'rediss://b:6379']}}",
                "",
                (
                    Reason::InvalidRedis,
                    "spec.rateLimiting.redis.cluster.nodes",
                ),
            ),
            (
                "{url: 'redis://a:6379', sentinel: {masterName: m, nodes: ['redis://s:26379']}}",
                "",
                (Reason::InvalidRedis, "spec.rateLimiting.redis"),
            ),
            (
                "{cluster: {nodes: ['redis://a:6379/3']}}",
                "",
                (
                    Reason::InvalidRedis,
                    "spec.rateLimiting.redis.cluster.nodes",
                ),
            ),
            (
                "{url: 'redis://a:6379', authSecretRef: {name: auth}}",
                "---\napiVersion: v1\nkind: Secret\nmetadata: {name: auth}\n\
                 type: tollgate.dev/redis-auth\nstringData: {username: gw}\n",
                (
                    Reason::InvalidSecret,
                    "spec.rateLimiting.redis.authSecretRef.name",
                ),
            ),
        ];
        for (redis, extra, expected) in cases {
            let compiled = compile(redis, extra);
            let found = problems(&compiled);
            assert!(
                found.contains(&(expected.0, expected.1.to_string())),
                "{redis}: {found:?}"
            );
            assert!(
                compiled.tables.is_empty(),
                "{redis}: the gateway was served"
            );
        }
    }
}
