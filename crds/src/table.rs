//! The compiled table: everything one gateway's proxies need to serve it, and nothing else.
//!
//! This is the wire format between the controller and the proxies, and what standalone mode
//! serves. A table is self-contained (TLS material and resolved backends are inside it), its
//! version is a content hash, and every collection in it is sorted so that the same resources
//! always give the same bytes. API keys appear only as SHA-256 hashes.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

mod access_log;
mod cache;
mod gateway_response;
mod mapping;
mod redis;
mod templates;
mod validation;
mod wire;

pub use mapping::{
    ContextVariable, MappingAction, MappingPart, MappingRule, MappingTarget, ParameterMappingTable,
    ResponseMapping,
};

pub use access_log::{AccessLogFormatTable, AccessLogKind, AccessLogSegment, AccessLogVariable};
pub use redis::{
    RedisAuthTable, RedisTable, RedisTlsTable, RedisTopology, redact as redact_redis_url,
};

pub use cache::{CacheKeyParameter, RouteCacheTable, StageCacheTable, UnauthorizedCacheControl};

pub use gateway_response::{
    GatewayResponseTable, GatewayResponseType, HeaderSource, ResponseHeaderTable,
};

pub use templates::{
    IntegrationHeaderTable, IntegrationResponseTable, Passthrough, ResponseValue, TemplatesTable,
};

pub use validation::{
    DEFAULT_MODEL_KEY, MODEL_URI_BASE, ParameterLocation, RequiredParameter, ValidationTable,
    model_uri,
};

pub use wire::{
    ApiKeySource, AuthorizerType, EndpointType, HttpMethod, PayloadFormatVersion, QuotaPeriod,
    RateLimitMode, RedisFailureMode, ThrottleSettings, TlsPolicy,
};

/// The table format this crate reads and writes. A proxy refuses (NACKs) any other.
///
/// 2: the fleet's Redis is `redis` (where it is, its TLS material and credentials) in
/// `rateLimiting` and `webSocket`, in place of format 1's `redisUrl`.
pub const TABLE_FORMAT: u32 = 2;

/// An HTTP API's stage served without a stage in the path.
pub const DEFAULT_STAGE: &str = "$default";

/// Amazon API Gateway's account-level throttle, used when a gateway sets none.
pub const DEFAULT_GATEWAY_THROTTLE: ThrottleSettings = ThrottleSettings {
    rate_limit: 10_000.0,
    burst_limit: 5_000,
};

/// `namespace/name` of a Kubernetes object.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One gateway's compiled table.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GatewayTable {
    /// [`TABLE_FORMAT`] of the writer.
    pub format: u32,
    /// Content hash of everything else in the table (see [`GatewayTable::seal`]).
    pub version: String,
    pub gateway: ObjectKey,
    pub endpoint_type: EndpointType,
    pub api_key_source: ApiKeySource,
    /// Gateway-wide throttle, applied before any other.
    pub throttle: ThrottleSettings,
    pub rate_limiting: RateLimitingTable,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_policy: Option<ResourcePolicyTable>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsTable>,
    /// Sorted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorizers: Vec<AuthorizerTable>,
    /// Sorted by hostname.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<DomainTable>,
    /// Plain-HTTP requests get a redirect to HTTPS (where the proxy serves TLS).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redirect_to_https: bool,
    /// Only custom domains reach the gateway; the default host is refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disable_execute_api_endpoint: bool,
    /// In the order the gateway lists them (the first is the default for invoke URLs).
    pub stages: Vec<StageTable>,
    /// Sorted by plan name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usage_plans: Vec<UsagePlanTable>,
    /// Amazon's HTTP API: a `$default` stage without a stage in the path, a `$default` route,
    /// 404 `Not Found` where no route matches, 500 `Internal Server Error` for a failed
    /// integration.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub http_api: bool,
    /// A WebSocket API's settings; `None` for a REST or HTTP API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub websocket: Option<WebSocketTable>,
    /// REST API: the models routes validate bodies against (JSON Schema draft 4), by name;
    /// only those that compiled.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, serde_json::Value>,
    /// REST API: customised gateway responses, sorted by type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateway_responses: Vec<GatewayResponseTable>,
    /// REST API: answers of at least this many bytes are compressed for clients that accept
    /// it; `None`: never compressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_compression_size: Option<u32>,
    /// REST API: the binary media types (`type/subtype`, `type/*` or `*/*`), lowercase,
    /// sorted, each once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub binary_media_types: Vec<String>,
}

/// A WebSocket API: how messages pick routes, its limits, and who may call `@connections`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebSocketTable {
    /// The dotted path of the message's JSON field naming the route (`action`, from
    /// `$request.body.action`).
    pub route_selection_field: Vec<String>,
    pub idle_timeout_seconds: u32,
    pub max_connection_seconds: u32,
    pub max_frame_bytes: u32,
    pub max_message_bytes: u32,
    /// Sorted by access key id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub management_credentials: Vec<AwsCredentialsTable>,
    /// A JWT authorizer (in the table's `authorizers`) whose bearer tokens may call
    /// `@connections`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management_authorizer: Option<String>,
    /// The fleet's bus for `@connections` calls to other proxies' connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisTable>,
}

/// An access key that may sign requests (`@connections`, or routes of an AWS_IAM
/// authorizer).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AwsCredentialsTable {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// The Secret it came from, for the access log.
    pub source: ObjectKey,
}

impl GatewayTable {
    /// Sets `version` to the content hash of the table: the first 16 hex digits of the
    /// SHA-256 of its JSON with an empty version. Same content, same version, on any replica.
    pub fn seal(mut self) -> Self {
        self.version = self.content_hash();
        self
    }

    /// The hash [`seal`](Self::seal) stores; a reader can recompute it to check a table.
    pub fn content_hash(&self) -> String {
        let unsealed = GatewayTable {
            version: String::new(),
            ..self.clone()
        };
        // A table is plain data (strings, numbers, maps with string keys): serialising it to
        // JSON cannot fail.
        let bytes = serde_json::to_vec(&unsealed).expect("a table serialises to JSON");
        hex::encode(&Sha256::digest(&bytes)[..8])
    }

    pub fn stage(&self, name: &str) -> Option<&StageTable> {
        self.stages.iter().find(|s| s.name == name)
    }
}

/// How throttle and quota counters are kept.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitingTable {
    pub mode: RateLimitMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisTable>,
    pub on_redis_failure: RedisFailureMode,
}

/// Source address rules, as CIDR strings the compiler has checked.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResourcePolicyTable {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_cidrs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny_cidrs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxy_cidrs: Vec<String>,
}

/// CORS settings, ready to write into headers.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CorsTable {
    pub allow_origins: Vec<String>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<u32>,
    pub allow_credentials: bool,
}

/// An authorizer routes may name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerTable {
    pub name: String,
    #[serde(rename = "type")]
    pub type_: AuthorizerType,
    /// `$request.header.X`, `$request.querystring.x` or `$stageVariables.x`; all must be
    /// present or the request gets 401.
    pub identity_sources: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtTable>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<AuthorizerEndpoint>,
    /// AWS_IAM: the keys that may sign and the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam: Option<IamTable>,
    /// KUBERNETES: the ServiceAccounts allowed on routes that name none (`namespace/name`,
    /// `namespace/*`); the token is checked as `jwt` says.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<String>,
    /// REQUEST: the event format it gets (1.0 is not written).
    #[serde(default = "v1", skip_serializing_if = "is_v1")]
    pub payload_format_version: PayloadFormatVersion,
    pub result_ttl_seconds: u32,
}

fn v1() -> PayloadFormatVersion {
    PayloadFormatVersion::V1
}

fn is_v1(v: &PayloadFormatVersion) -> bool {
    *v == PayloadFormatVersion::V1
}

/// An `AWS_IAM` authorizer: its callers' keys and its statements.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IamTable {
    /// Sorted by access key id.
    pub credentials: Vec<AwsCredentialsTable>,
    pub statements: Vec<IamStatementTable>,
}

/// One statement: principals are Secret names (`*`: all), resources method-ARN patterns.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IamStatementTable {
    pub allow: bool,
    pub principals: Vec<String>,
    pub resources: Vec<String>,
}

/// JWT validation settings with the JWKS URL resolved.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JwtTable {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub jwks_uri: String,
}

/// Where a custom authorizer is reached.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum AuthorizerEndpoint {
    Http {
        url: String,
    },
    // `invoke_url` as the field has always been on the wire (older proxies read it so).
    Lambda {
        invoke_url: String,
        /// AWS Lambda: calls are signed with SigV4 for this region.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        region: Option<String>,
    },
}

/// A custom domain with its TLS material.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DomainTable {
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsMaterial>,
    pub security_policy: TlsPolicy,
    /// PEM bundle of client CAs; present when mutual TLS is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_pem: Option<String>,
    /// Sorted by base path, longest first, so the first prefix that matches wins.
    pub mappings: Vec<BasePathTable>,
}

/// A certificate chain and its private key, from a `kubernetes.io/tls` Secret.
#[derive(Serialize, Deserialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TlsMaterial {
    /// The Secret it came from (`namespace/name`), for logs.
    pub secret: String,
    pub certificate_pem: String,
    pub private_key_pem: String,
}

impl fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("secret", &self.secret)
            .field("private_key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// A base path of a domain and the stage it reaches.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BasePathTable {
    /// Without slashes at either end; empty maps the whole domain.
    pub base_path: String,
    pub stage: String,
}

/// A stage with its routes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StageTable {
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// The stage's default throttle, capped by the gateway's.
    pub throttle: ThrottleSettings,
    /// Whether and where the stage's requests are traced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TracingTable>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryTable>,
    /// REST API: the stage's response cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<StageCacheTable>,
    /// The stage's access-log format; none: the proxy's own JSON line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<AccessLogFormatTable>,
    /// Sorted by path, then method.
    pub routes: Vec<RouteTable>,
}

/// A traced stage: the gateway's `tracing` (or the defaults) as this stage uses it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TracingTable {
    /// The collector; `None`: the proxy's own (`--otlp-endpoint`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    pub protocol: crate::resources::OtlpProtocol,
    /// 0 to 1.
    pub sampling_ratio: f64,
}

/// A stage's canary: the share it takes and its full set of stage variables.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CanaryTable {
    /// 0 to 100.
    pub percent: f64,
    /// The stage's variables with the canary's overrides applied.
    pub variables: BTreeMap<String, String>,
}

/// A route as served on one stage.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RouteTable {
    /// `METHOD /path` (REST API) or the route key (`$connect`, `sendmessage`: WebSocket API),
    /// as Amazon API Gateway's `routeKey`; unique within a stage.
    pub route_key: String,
    /// REST API only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<HttpMethod>,
    /// The path template: `/pets/{petId}`, `/files/{proxy+}`. REST API only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// WebSocket API: the integration's answer goes back to the client.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub two_way: bool,
    /// The Route resource it came from.
    pub source: ObjectKey,
    pub api_key_required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorizer: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_scopes: Vec<String>,
    /// KUBERNETES authorizer: the ServiceAccounts allowed here, in place of its own list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<String>,
    /// The route's throttle: its own, else the stage's, capped by the gateway's.
    pub throttle: ThrottleSettings,
    /// What the route's request validator checks; `None` without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<Box<ValidationTable>>,
    /// How the route caches on this stage; `None` where it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<RouteCacheTable>,
    pub integration: IntegrationTable,
}

/// What answers a route, with every reference resolved.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum IntegrationTable {
    #[serde(rename_all = "camelCase")]
    Http {
        /// One or more backends; the proxy picks by weight.
        backends: Vec<HttpBackendTable>,
        /// Method sent to the backend; `None` keeps the request's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        method: Option<HttpMethod>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        request_headers: BTreeMap<String, String>,
        /// Parameter mapping of the request and the response; `None` when the route maps
        /// nothing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parameter_mapping: Option<Box<ParameterMappingTable>>,
        /// Amazon's non-proxy HTTP integration; `None` for the proxy (streaming) one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        templates: Option<Box<TemplatesTable>>,
        timeout_millis: u32,
    },
    #[serde(rename_all = "camelCase")]
    Lambda {
        /// `{endpoint}/2015-03-31/functions/{name}/invocations`.
        invoke_url: String,
        function_name: String,
        /// AWS Lambda: calls are signed with SigV4 for this region.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        region: Option<String>,
        payload_format_version: PayloadFormatVersion,
        /// Invocations in flight per proxy; `None`: no limit.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_concurrency: Option<u32>,
        /// Amazon's non-proxy (`AWS`) Lambda integration; `None` for the proxy event.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        templates: Option<Box<TemplatesTable>>,
        timeout_millis: u32,
    },
    #[serde(rename_all = "camelCase")]
    Mock {
        status_code: u16,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
        body: String,
    },
}

/// One HTTP backend.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpBackendTable {
    /// URL template (`{param}`, `{proxy}`, `${stageVariables.x}`).
    pub url: String,
    /// Append the request path (without the stage) to `url`.
    pub forward_request_path: bool,
    pub weight: u32,
}

/// A usage plan as it applies to this gateway.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UsagePlanTable {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<ThrottleSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaTable>,
    /// Stages of this gateway the plan covers, sorted by stage name.
    pub stages: Vec<PlanStageTable>,
    /// Sorted by tenant.
    pub keys: Vec<ApiKeyTable>,
}

/// A quota per key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QuotaTable {
    pub limit: u64,
    pub period: QuotaPeriod,
    pub offset: u32,
}

/// A stage in a plan, with per-key throttles for single routes (by route key).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlanStageTable {
    pub stage: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub route_throttles: BTreeMap<String, ThrottleSettings>,
}

/// An API key: never its value, only the SHA-256 of it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyTable {
    /// The tenant id: the key Secret's name.
    pub tenant: String,
    /// Lowercase hex SHA-256 of the key value.
    pub sha256: String,
    pub enabled: bool,
}

/// The hash under which an API key value is stored in a table.
pub fn hash_api_key(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}
