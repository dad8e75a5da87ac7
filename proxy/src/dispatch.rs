//! Everything the proxy serves, built once per set of tables and swapped atomically: which
//! host and base path reach which gateway and stage, each stage's router and API keys.
//!
//! Hosts, in order: a custom domain (exact, then `*.` wildcard) with its base path mappings;
//! the gateway's default host `{gateway}.{namespace}.{base domain}`, whose first path segment
//! is the stage; and, when exactly one gateway is loaded, any host at all, as its default host.

use std::collections::HashMap;
use std::sync::Arc;

use tollgate_crds::table::{AccessLogFormatTable, RateLimitMode, TlsPolicy};
use tollgate_crds::table::{DEFAULT_STAGE, GatewayTable, ObjectKey, StageTable, UsagePlanTable};

use crate::cache::StageCache;
use crate::cache::shared::SharedCache;
use crate::cors::Cors;
use crate::errors::GatewayError;
use crate::gateway_response::GatewayResponses;
use crate::lambda;
use crate::request_trace::StageTracing;
use crate::request_validation::Models;
use crate::resource_policy::Policy;
use crate::router::{RouterError, StageRouter};
use crate::throttle;
use crate::tls::{Certificates, DomainTls};

/// One gateway, ready to serve.
#[derive(Debug)]
pub struct ServedGateway {
    pub table: Arc<GatewayTable>,
    /// `namespace/name`, shared by the access log and the metrics.
    pub name: Arc<str>,
    /// The name of the gateway-wide throttle bucket, made once.
    pub bucket: Arc<str>,
    pub policy: Policy,
    /// The gateway's CORS settings with their header values prebuilt, when it has any.
    pub cors: Option<Cors>,
    /// The TLS config of each custom domain that has a certificate.
    pub tls: Vec<Arc<DomainTls>>,
    /// The models its routes validate bodies against, compiled.
    pub models: Models,
    /// Its customised gateway responses, templates parsed.
    pub responses: GatewayResponses,
    /// The client for its counters in Redis, found on its first limited request.
    pub redis: throttle::RedisSlot,
    stages: HashMap<String, ServedStage>,
}

/// One stage of a gateway.
#[derive(Debug)]
pub struct ServedStage {
    /// Index into `ServedGateway::table.stages`.
    index: usize,
    /// The stage's name, shared by the access log and the metrics.
    pub name: Arc<str>,
    pub router: StageRouter,
    /// The stage's response cache (empty with each new table).
    pub cache: Option<StageCache>,
    /// API keys bound on this stage, by SHA-256 of the key.
    keys: HashMap<String, KeyBinding>,
    /// How its requests are traced, on a traced stage.
    pub tracing: Option<StageTracing>,
    /// The stage's access-log format (`accessLogSettings`), shared by its requests' records.
    pub access_log: Option<Arc<AccessLogFormatTable>>,
}

/// An API key bound to a usage plan on a stage.
#[derive(Debug, Clone)]
pub struct KeyBinding {
    /// Index into the gateway table's `usage_plans`.
    pub plan: usize,
    pub tenant: String,
    pub enabled: bool,
    /// The key's usage counter (Local mode), found on its first admitted request.
    pub usage: throttle::usage::UsageSlot,
}

impl ServedGateway {
    pub fn build(table: GatewayTable) -> Result<Self, RouterError> {
        let limits = lambda::concurrency::limits(&table);
        let shared_cache = shared_cache(&table);
        let mut stages = HashMap::new();
        for (index, stage) in table.stages.iter().enumerate() {
            let router = StageRouter::build(&stage.routes, &limits, |route_key| {
                throttle::names::route_bucket(&table.gateway, &stage.name, route_key)
            })?;
            let keys = keys_of(&table.usage_plans, &stage.name);
            stages.insert(
                stage.name.clone(),
                ServedStage {
                    index,
                    name: Arc::from(stage.name.as_str()),
                    router,
                    cache: stage.cache.as_ref().map(|settings| {
                        let shared = shared_cache.clone().map(|c| (c, stage.name.clone()));
                        StageCache::build(settings, shared)
                    }),
                    keys,
                    tracing: stage.tracing.as_ref().map(StageTracing::build),
                    access_log: stage.access_log.clone().map(Arc::new),
                },
            );
        }
        let models = Models::build(&table).map_err(RouterError::Table)?;
        let responses = GatewayResponses::build(&table).map_err(RouterError::Table)?;
        Ok(Self {
            models,
            responses,
            redis: throttle::RedisSlot::new(),
            tls: domains_tls(&table),
            bucket: throttle::names::gateway_bucket(&table.gateway),
            name: Arc::from(table.gateway.to_string()),
            policy: Policy::build(table.resource_policy.as_ref(), table.endpoint_type),
            cors: table.cors.as_ref().map(Cors::build),
            table: Arc::new(table),
            stages,
        })
    }

    pub fn key(&self) -> &ObjectKey {
        &self.table.gateway
    }

    pub fn stage(&self, name: &str) -> Option<&ServedStage> {
        self.stages.get(name)
    }

    pub fn stages(&self) -> impl Iterator<Item = &ServedStage> {
        self.stages.values()
    }

    pub fn stage_table(&self, stage: &ServedStage) -> &StageTable {
        &self.table.stages[stage.index]
    }
}

impl ServedStage {
    pub fn key(&self, sha256: &str) -> Option<&KeyBinding> {
        self.keys.get(sha256)
    }
}

/// The gateway's stage cache shared through Redis: when a stage caches and the gateway's rate
/// limiting uses Redis.
fn shared_cache(table: &GatewayTable) -> Option<Arc<SharedCache>> {
    if !table.stages.iter().any(|s| s.cache.is_some())
        || table.rate_limiting.mode != RateLimitMode::Redis
    {
        return None;
    }
    let redis = table.rate_limiting.redis.as_ref()?;
    Some(Arc::new(SharedCache::new(
        redis,
        &table.gateway.to_string(),
        &table.version,
    )))
}

/// Each domain's TLS config. A certificate that does not load (its key does not match it, say)
/// leaves that domain without TLS, logged, rather than the whole gateway unserved; a domain
/// with mutual TLS then refuses every request, as none can have passed its handshake.
fn domains_tls(table: &GatewayTable) -> Vec<Arc<DomainTls>> {
    let mut out = Vec::new();
    for domain in &table.domains {
        match DomainTls::build(domain) {
            Ok(Some(tls)) => out.push(Arc::new(tls)),
            Ok(None) => {}
            Err(e) => tracing::error!(
                gateway = %table.gateway,
                domain = %domain.hostname,
                error = %e,
                "custom domain not served over TLS"
            ),
        }
    }
    out
}

fn keys_of(plans: &[UsagePlanTable], stage: &str) -> HashMap<String, KeyBinding> {
    let mut keys = HashMap::new();
    for (plan_index, plan) in plans.iter().enumerate() {
        if !plan.stages.iter().any(|s| s.stage == stage) {
            continue;
        }
        for key in &plan.keys {
            // The compiler binds a key to one plan per stage; keep the first if not.
            keys.entry(key.sha256.clone())
                .or_insert_with(|| KeyBinding {
                    plan: plan_index,
                    tenant: key.tenant.clone(),
                    enabled: key.enabled,
                    usage: Default::default(),
                });
        }
    }
    keys
}

/// Where a request goes: its gateway, stage, and the path relative to the stage.
#[derive(Debug)]
pub struct Target<'a> {
    pub gateway: &'a ServedGateway,
    pub stage: &'a ServedStage,
    /// The path after the stage or base path, always starting with '/'.
    pub path: &'a str,
    /// The custom domain the host matched, if any.
    pub domain: Option<&'a DomainPolicy>,
}

/// What a custom domain asks of the connections its requests arrive on.
#[derive(Debug)]
pub struct DomainPolicy {
    /// As configured: `api.example.com`, `*.example.com`.
    pub hostname: String,
    /// Requests need a verified client certificate.
    pub mutual_tls: bool,
    /// Requests must arrive on a connection whose handshake was this domain's own: it asks
    /// more than the default certificate's (mutual TLS, or TLS 1.3 only).
    pub own_handshake: bool,
}

/// All served gateways and how hosts reach them.
#[derive(Debug, Default)]
pub struct Dispatch {
    gateways: Vec<ServedGateway>,
    default_hosts: HashMap<String, usize>,
    domains: HashMap<String, DomainEntry>,
    wildcard_domains: HashMap<String, DomainEntry>,
    certificates: Certificates,
}

#[derive(Debug)]
struct DomainEntry {
    gateway: usize,
    policy: DomainPolicy,
    /// (base path, stage), longest base path first.
    mappings: Vec<(String, String)>,
}

impl Dispatch {
    /// Builds the dispatch for a set of already-built gateways. A custom domain claimed by two
    /// gateways goes to the first by namespace/name; the clash is logged.
    pub fn new(mut gateways: Vec<ServedGateway>, base_domain: &str) -> Self {
        gateways.sort_by(|a, b| a.key().cmp(b.key()));
        let mut dispatch = Self::default();
        for (index, gw) in gateways.iter().enumerate() {
            let key = gw.key();
            let host =
                format!("{}.{}.{}", key.name, key.namespace, base_domain).to_ascii_lowercase();
            dispatch.default_hosts.insert(host, index);
            for domain in &gw.table.domains {
                let entry = DomainEntry {
                    gateway: index,
                    policy: DomainPolicy {
                        hostname: domain.hostname.clone(),
                        mutual_tls: domain.client_ca_pem.is_some(),
                        own_handshake: domain.client_ca_pem.is_some()
                            || domain.security_policy == TlsPolicy::TLS_1_3,
                    },
                    mappings: domain
                        .mappings
                        .iter()
                        .map(|m| (m.base_path.clone(), m.stage.clone()))
                        .collect(),
                };
                let (map, name) = match domain.hostname.strip_prefix("*.") {
                    Some(suffix) => (&mut dispatch.wildcard_domains, suffix.to_string()),
                    None => (&mut dispatch.domains, domain.hostname.clone()),
                };
                if let Some(existing) = map.get(&name) {
                    tracing::warn!(
                        domain = %domain.hostname,
                        kept = %gateways[existing.gateway].key(),
                        ignored = %key,
                        "two gateways claim the same custom domain; the first keeps it"
                    );
                    continue;
                }
                map.insert(name, entry);
                if let Some(tls) = gw.tls.iter().find(|t| t.hostname == domain.hostname) {
                    dispatch.certificates.insert(tls.clone());
                }
            }
        }
        dispatch.gateways = gateways;
        dispatch
    }

    pub fn gateways(&self) -> &[ServedGateway] {
        &self.gateways
    }

    pub fn is_empty(&self) -> bool {
        self.gateways.is_empty()
    }

    /// A gateway by its `namespace/name` (gateways are sorted by it).
    pub fn gateway(&self, key: &ObjectKey) -> Option<&ServedGateway> {
        self.gateways
            .binary_search_by(|g| g.key().cmp(key))
            .ok()
            .map(|i| &self.gateways[i])
    }

    /// The TLS configs of the custom domains served, by server name.
    pub fn certificates(&self) -> &Certificates {
        &self.certificates
    }

    /// Resolves a request's host (without port) and path to a gateway and stage.
    pub fn resolve<'a>(&'a self, host: &str, path: &'a str) -> Result<Target<'a>, GatewayError> {
        let host = host.trim_end_matches('.');
        let domain = self.domains.get(host).or_else(|| {
            let (_, parent) = host.split_once('.')?;
            self.wildcard_domains.get(parent)
        });
        if let Some(entry) = domain {
            return self.via_domain(entry, path);
        }
        let gateway = match self.default_hosts.get(host) {
            Some(&i) => &self.gateways[i],
            None if self.gateways.len() == 1 => &self.gateways[0],
            None => return Err(GatewayError::Forbidden("no gateway serves this host")),
        };
        if gateway.table.disable_execute_api_endpoint {
            return Err(GatewayError::Forbidden("the default endpoint is disabled"));
        }
        let rest = path.strip_prefix('/').unwrap_or(path);
        let (stage_name, remainder) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        // A named stage first; an HTTP API's `$default` stage takes the whole path otherwise.
        let (stage, path) = match gateway.stage(stage_name) {
            Some(stage) => (stage, remainder),
            None => match gateway.stage(DEFAULT_STAGE) {
                Some(stage) if path.starts_with('/') => (stage, path),
                _ => return Err(GatewayError::Forbidden("no such stage")),
            },
        };
        Ok(Target {
            gateway,
            stage,
            path,
            domain: None,
        })
    }

    fn via_domain<'a>(
        &'a self,
        entry: &'a DomainEntry,
        path: &'a str,
    ) -> Result<Target<'a>, GatewayError> {
        let gateway = &self.gateways[entry.gateway];
        let rest = path.strip_prefix('/').unwrap_or(path);
        for (base, stage_name) in &entry.mappings {
            let remainder = if base.is_empty() {
                // Not the asterisk form (`OPTIONS *`): a target's path starts with '/'.
                Some(path).filter(|p| p.starts_with('/'))
            } else {
                rest.strip_prefix(base.as_str())
                    .filter(|r| r.is_empty() || r.starts_with('/'))
                    .map(|r| if r.is_empty() { "/" } else { r })
            };
            if let Some(remainder) = remainder {
                let stage = gateway
                    .stage(stage_name)
                    .ok_or(GatewayError::Forbidden("no such stage"))?;
                return Ok(Target {
                    gateway,
                    stage,
                    path: if remainder.is_empty() { "/" } else { remainder },
                    domain: Some(&entry.policy),
                });
            }
        }
        Err(GatewayError::Forbidden("no base path mapping matches"))
    }
}

#[cfg(test)]
mod tests {
    use tollgate_crds::compile::compile_str;

    use super::*;

    fn dispatch(yaml: &str) -> Dispatch {
        let gateways = compile_str(yaml, "test")
            .unwrap()
            .tables
            .into_values()
            .map(|t| ServedGateway::build(t).unwrap())
            .collect();
        Dispatch::new(gateways, "localhost")
    }

    const TWO: &str = r#"
apiVersion: tollgate.dev/v1alpha1
kind: ApiGateway
metadata: {name: hello}
spec:
  stages: [{name: dev}, {name: prod}]
  domains:
    - hostname: api.example.com
      basePathMappings: [{basePath: "", stage: prod}, {basePath: "v1/orders", stage: dev}]
    - hostname: "*.shop.example"
      basePathMappings: [{basePath: "v2", stage: dev}]
---
apiVersion: tollgate.dev/v1alpha1
kind: ApiGateway
metadata: {name: other, namespace: team}
spec:
  stages: [{name: dev}]
"#;

    fn resolved(
        d: &Dispatch,
        host: &str,
        path: &str,
    ) -> Result<(String, String, String), GatewayError> {
        d.resolve(host, path).map(|t| {
            (
                t.gateway.key().to_string(),
                t.gateway.stage_table(t.stage).name.clone(),
                t.path.to_string(),
            )
        })
    }

    #[test]
    fn default_hosts_take_the_stage_from_the_first_segment() {
        let d = dispatch(TWO);
        let ok = |g: &str, s: &str, p: &str| Ok((g.to_string(), s.to_string(), p.to_string()));
        assert_eq!(
            resolved(&d, "hello.default.localhost", "/dev/pets/1"),
            ok("default/hello", "dev", "/pets/1")
        );
        assert_eq!(
            resolved(&d, "hello.default.localhost", "/prod"),
            ok("default/hello", "prod", "/")
        );
        assert_eq!(
            resolved(&d, "other.team.localhost", "/dev/"),
            ok("team/other", "dev", "/")
        );
        assert_eq!(
            resolved(&d, "hello.default.localhost", "/qa/x"),
            Err(GatewayError::Forbidden("no such stage"))
        );
        assert!(
            resolved(&d, "unknown.example", "/dev/x").is_err(),
            "two gateways: an unknown host is refused"
        );
    }

    #[test]
    fn custom_domains_map_base_paths_to_stages() {
        let d = dispatch(TWO);
        let ok = |s: &str, p: &str| Ok(("default/hello".to_string(), s.to_string(), p.to_string()));
        assert_eq!(
            resolved(&d, "api.example.com", "/v1/orders/7"),
            ok("dev", "/7")
        );
        assert_eq!(
            resolved(&d, "api.example.com", "/v1/orders"),
            ok("dev", "/")
        );
        assert_eq!(
            resolved(&d, "api.example.com", "/v1/ordersx"),
            ok("prod", "/v1/ordersx")
        );
        assert_eq!(
            resolved(&d, "eu.shop.example", "/v2/cart"),
            ok("dev", "/cart")
        );
        assert!(resolved(&d, "eu.shop.example", "/v3/cart").is_err());
        assert!(
            resolved(&d, "a.eu.shop.example", "/v2/cart").is_err(),
            "a wildcard matches one label"
        );
    }

    /// Found by `fuzz/fuzz_targets/request_head.rs`: `OPTIONS * HTTP/1.1` to a domain with an
    /// empty base path gave the target path `*`.
    #[test]
    fn the_asterisk_form_maps_to_no_stage() {
        let d = dispatch(TWO);
        assert_eq!(
            resolved(&d, "api.example.com", "*"),
            Err(GatewayError::Forbidden("no base path mapping matches"))
        );
        assert!(resolved(&d, "hello.default.localhost", "*").is_err());
    }

    #[test]
    fn a_disabled_default_endpoint_leaves_only_the_custom_domains() {
        // hello (the first gateway) disables its default endpoint; other keeps its own.
        let d = dispatch(&TWO.replacen("spec:\n", "spec:\n  disableExecuteApiEndpoint: true\n", 1));
        assert!(resolved(&d, "api.example.com", "/v1/orders/7").is_ok());
        assert_eq!(
            d.resolve("hello.default.localhost", "/dev/x").err(),
            Some(GatewayError::Forbidden("the default endpoint is disabled"))
        );
        assert!(resolved(&d, "other.team.localhost", "/dev/x").is_ok());
    }

    #[test]
    fn a_single_gateway_answers_any_host() {
        let d = dispatch(
            "apiVersion: tollgate.dev/v1alpha1\nkind: ApiGateway\nmetadata: {name: hello}\nspec: {stages: [{name: dev}]}\n",
        );
        assert_eq!(resolved(&d, "127.0.0.1", "/dev/x").unwrap().1, "dev");
    }
}
