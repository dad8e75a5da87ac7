//! `ApiGateway`: one API, its stages, domains, authorizers and how its proxy fleet runs.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::TracingSettings;
use super::cache::StageCache;
use super::common::{LocalRef, ThrottleSettings};
use super::gateway_response::GatewayResponse;
use super::redis::RedisConnection;
use super::route::PayloadFormatVersion;
use super::validation::{Model, RequestValidator};

/// The Secret type of custom-domain certificates (`tls.crt`, `tls.key`).
pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";
/// The Secret type of the credentials a caller of a WebSocket API's `@connections` API signs
/// its requests with (AWS Signature Version 4): `accessKeyId` and `secretAccessKey`.
pub const AWS_CREDENTIALS_SECRET_TYPE: &str = "tollgate.dev/aws-credentials";
/// The Secret type of a mutual-TLS truststore (`ca.crt`). A truststore Secret may also be of
/// type [`TLS_SECRET_TYPE`] (cert-manager writes a CA's `ca.crt` there); the controller
/// watches Secrets of these types only.
pub const TRUSTSTORE_SECRET_TYPE: &str = "tollgate.dev/truststore";
/// The label a truststore ConfigMap must carry (any value): the controller watches only
/// ConfigMaps that have it.
pub const TRUSTSTORE_LABEL: &str = "tollgate.dev/truststore";
/// The key of a truststore Secret or ConfigMap that holds the PEM bundle of client CAs.
pub const TRUSTSTORE_KEY: &str = "ca.crt";

/// An API, as Amazon API Gateway's REST API: a set of stages served by a fleet of proxies.
/// Routes attach to it with `spec.gatewayRef`; usage plans name it in `spec.apiStages`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "tollgate.dev",
    version = "v1alpha1",
    kind = "ApiGateway",
    plural = "apigateways",
    shortname = "agw",
    namespaced,
    doc = "An API, as Amazon API Gateway's REST API: stages, domains, authorizers and a proxy fleet.",
    status = "ApiGatewayStatus",
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.endpointType"}"#,
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".status.invokeUrl"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.stages.all(s, self.stages.filter(t, t.name == s.name).size() == 1)",
        "message": "stage names must be unique: rename or remove the repeated entry in spec.stages"
    },
    {
        "rule": "!has(self.authorizers) || self.authorizers.all(a, self.authorizers.filter(b, b.name == a.name).size() == 1)",
        "message": "authorizer names must be unique: rename or remove the repeated entry in spec.authorizers"
    },
    {
        "rule": "!has(self.domains) || self.domains.all(d, self.domains.filter(e, e.hostname == d.hostname).size() == 1)",
        "message": "each hostname may appear once in spec.domains: merge the base path mappings into one entry"
    },
    {
        "rule": "!has(self.apiKeySource) || self.apiKeySource != 'AUTHORIZER' || (has(self.authorizers) && self.authorizers.exists(a, a.type != 'JWT'))",
        "message": "apiKeySource AUTHORIZER needs a TOKEN or REQUEST authorizer in spec.authorizers to supply the key"
    },
    {
        "rule": "self.endpointType != 'Private' || (has(self.resourcePolicy) && ((has(self.resourcePolicy.allowCidrs) && size(self.resourcePolicy.allowCidrs) > 0) || (has(self.resourcePolicy.allowNamespaces) && size(self.resourcePolicy.allowNamespaces) > 0)))",
        "message": "a Private gateway needs spec.resourcePolicy.allowCidrs or allowNamespaces to say who may call it"
    },
    {
        "rule": "!has(self.websocket) || (has(self.protocol) && self.protocol == 'WEBSOCKET')",
        "message": "spec.websocket is for WebSocket APIs: set spec.protocol to WEBSOCKET, or remove spec.websocket"
    },
    {
        "rule": "!has(self.websocket) || !has(self.websocket.managementAuthorizer) || (has(self.authorizers) && self.authorizers.exists(a, a.name == self.websocket.managementAuthorizer && a.type == 'JWT'))",
        "message": "spec.websocket.managementAuthorizer must name a JWT authorizer in spec.authorizers"
    },
    {
        "rule": "!self.stages.exists(s, s.name == '$default') || (has(self.protocol) && self.protocol == 'HTTP')",
        "message": "a $default stage (served without a stage in the path) is for HTTP APIs: set spec.protocol to HTTP, or name the stage"
    },
    {
        "rule": "!has(self.protocol) || self.protocol != 'WEBSOCKET' || !has(self.cors)",
        "message": "CORS is for REST and HTTP APIs (browsers do not preflight a WebSocket): remove spec.cors from a WEBSOCKET API"
    },
    {
        "rule": "!has(self.protocol) || self.protocol == 'REST' || (!has(self.minimumCompressionSize) && !has(self.binaryMediaTypes))",
        "message": "minimumCompressionSize and binaryMediaTypes are for REST APIs, as on Amazon: remove them from an HTTP or WEBSOCKET API"
    }
]))]
pub struct ApiGatewaySpec {
    /// The kind of API, fixed when it is created. `REST`: routes by method and path answer
    /// requests. `HTTP`: Amazon's HTTP API: the same routes, plus a `$default` stage served
    /// without a stage in the path and a `$default` route for requests no other route
    /// takes; 404 `Not Found` where nothing matches, Lambda payload 2.0 by default.
    /// `WEBSOCKET`: the gateway holds each client's WebSocket connection, routes by
    /// route key (`$connect`, `$disconnect`, `$default` and keys chosen by
    /// `websocket.routeSelectionExpression`) answer its messages, and backends send to clients
    /// through the `@connections` API.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self == oldSelf",
        "message": "spec.protocol cannot change: create a new ApiGateway for the other kind of API"
    }]))]
    pub protocol: ApiProtocol,

    /// How a `WEBSOCKET` API routes messages, its limits, and who may call its
    /// `@connections` API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub websocket: Option<WebSocketSettings>,

    /// Where the API is reachable from. `Regional`: a Deployment behind a LoadBalancer
    /// Service. `Edge`: a DaemonSet on the nodes chosen by `fleet.nodeSelector`, Service with
    /// `externalTrafficPolicy: Local`. `Private`: a ClusterIP Service and a NetworkPolicy that
    /// admits only `resourcePolicy.allowNamespaces` and `allowCidrs`.
    #[serde(default)]
    pub endpoint_type: EndpointType,

    /// What this API is for; shown to people, not used by the proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,

    /// The stages (deployments) of the API. The stage is the first segment of the request
    /// path: `https://{host}/{stage}/{resource}`.
    #[schemars(length(min = 1, max = 10))]
    pub stages: Vec<Stage>,

    /// Gateway-wide throttle, applied to every request before any stage, route or usage plan
    /// limit. Defaults to 10,000 requests/s with a burst of 5,000, as Amazon API Gateway's
    /// account limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<ThrottleSettings>,

    /// How throttle and quota counters are kept across the proxy fleet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limiting: Option<RateLimiting>,

    /// Where the proxy reads API keys from. `HEADER`: the `x-api-key` request header.
    /// `AUTHORIZER`: the `usageIdentifierKey` a TOKEN or REQUEST authorizer returns.
    #[serde(default)]
    pub api_key_source: ApiKeySource,

    /// Authorizers that routes may name in `spec.authorizer`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub authorizers: Vec<Authorizer>,

    /// Custom domain names, each with its TLS certificate and base path mappings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub domains: Vec<CustomDomain>,

    /// Answer plain-HTTP requests for this gateway with a redirect to HTTPS (301 for GET and
    /// HEAD, 308 otherwise, so a method and body survive it), on proxies that serve TLS.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redirect_to_https: bool,

    /// Refuse requests on the default endpoint (`{gateway}.{namespace}.{base domain}`, or any
    /// host of a proxy that serves only this gateway), so the API is reachable through its
    /// custom domains only, as Amazon API Gateway's `disableExecuteApiEndpoint`. Set it with
    /// mutual TLS, or clients could skip the certificate by using the default endpoint.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disable_execute_api_endpoint: bool,

    /// Cross-origin resource sharing: the proxy answers preflight requests and adds the
    /// `Access-Control-*` headers to responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,

    /// Who may call the API, by source address. Required for `Private` gateways.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_policy: Option<ResourcePolicy>,

    /// REST API: JSON Schemas (draft 4) by model name, for routes' `requestModels`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 100))]
    pub models: BTreeMap<String, Model>,

    /// REST API: how the gateway's own answers look (refusals and failures), by Amazon API
    /// Gateway's response type: `ACCESS_DENIED`, `API_CONFIGURATION_ERROR`,
    /// `AUTHORIZER_CONFIGURATION_ERROR`, `AUTHORIZER_FAILURE`, `BAD_REQUEST_BODY`,
    /// `BAD_REQUEST_PARAMETERS`, `DEFAULT_4XX`, `DEFAULT_5XX`, `EXPIRED_TOKEN`,
    /// `INTEGRATION_FAILURE`, `INTEGRATION_TIMEOUT`, `INVALID_API_KEY`, `INVALID_SIGNATURE`,
    /// `MISSING_AUTHENTICATION_TOKEN`, `QUOTA_EXCEEDED`, `REQUEST_TOO_LARGE`,
    /// `RESOURCE_NOT_FOUND`, `THROTTLED`, `UNAUTHORIZED`, `UNSUPPORTED_MEDIA_TYPE`,
    /// `WAF_FILTERED`. A type without its own takes `DEFAULT_4XX` or `DEFAULT_5XX` by its
    /// status.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 21, "x-kubernetes-validations" = [{
        "rule": "self.all(t, t in ['ACCESS_DENIED', 'API_CONFIGURATION_ERROR', 'AUTHORIZER_CONFIGURATION_ERROR', 'AUTHORIZER_FAILURE', 'BAD_REQUEST_PARAMETERS', 'BAD_REQUEST_BODY', 'DEFAULT_4XX', 'DEFAULT_5XX', 'EXPIRED_TOKEN', 'INTEGRATION_FAILURE', 'INTEGRATION_TIMEOUT', 'INVALID_API_KEY', 'INVALID_SIGNATURE', 'MISSING_AUTHENTICATION_TOKEN', 'QUOTA_EXCEEDED', 'REQUEST_TOO_LARGE', 'RESOURCE_NOT_FOUND', 'THROTTLED', 'UNAUTHORIZED', 'UNSUPPORTED_MEDIA_TYPE', 'WAF_FILTERED'])",
        "message": "gatewayResponses keys are Amazon API Gateway's response types: ACCESS_DENIED, THROTTLED, DEFAULT_4XX, DEFAULT_5XX, …"
    }]))]
    pub gateway_responses: BTreeMap<String, GatewayResponse>,

    /// REST API: request validators by name, for routes' `requestValidator`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 10))]
    pub request_validators: BTreeMap<String, RequestValidator>,

    /// REST API: compress answers whose body is at least this many bytes (0 to 10485760;
    /// 0 compresses every answer), as Amazon's `minimumCompressionSize`: for a client whose
    /// `Accept-Encoding` allows `gzip`, `deflate` or `br`, the answer gets `Content-Encoding`
    /// and `Vary: Accept-Encoding`. An answer that already has a `Content-Encoding` is sent as
    /// it is. Unset: answers are never compressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10485760))]
    pub minimum_compression_size: Option<u32>,

    /// REST API: the media types the API treats as binary, as Amazon's `binaryMediaTypes`
    /// (`image/png`, `application/octet-stream`; `image/*` for a whole type, `*/*` for every
    /// one). For a Lambda proxy integration (payload 1.0), a request body whose `Content-Type`
    /// is one of them reaches the function base64-encoded (`isBase64Encoded: true`), any other
    /// as text; and a result's base64 body (`isBase64Encoded: true`) is decoded only when the
    /// first media type of the request's `Accept` is one of them, else the client gets the
    /// base64 text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 50),
        inner(
            length(max = 255),
            regex(
                pattern = r"^(\*/\*|[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/(\*|[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*))$"
            )
        )
    )]
    pub binary_media_types: Vec<String>,

    /// Traces of this gateway's requests, sent to an OpenTelemetry collector (where Amazon
    /// has X-Ray). Unset: stages are traced only where they set `tracingEnabled: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TracingSettings>,

    /// How the proxy fleet for this gateway runs in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetSettings>,
}

/// The kind of API.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[allow(clippy::upper_case_acronyms)]
pub enum ApiProtocol {
    #[default]
    REST,
    HTTP,
    WEBSOCKET,
}

/// A WebSocket API's settings. The limits default to Amazon API Gateway's.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.maxFrameBytes) || !has(self.maxMessageBytes) || self.maxFrameBytes <= self.maxMessageBytes",
        "message": "websocket.maxFrameBytes cannot exceed websocket.maxMessageBytes: a message is one or more frames"
    }
]))]
pub struct WebSocketSettings {
    /// Which route a message takes: `$request.body.` and a dotted path to a field of the
    /// message, read as JSON. A message that is not JSON, or whose field is not a string
    /// naming a route, takes `$default`.
    #[serde(default = "default_route_selection_expression")]
    #[schemars(
        length(max = 256),
        regex(pattern = r"^\$request\.body(\.[A-Za-z0-9_-]+)+$")
    )]
    pub route_selection_expression: String,

    /// Seconds a connection may carry no message either way before the gateway closes it
    /// (1001 `Going away`). Amazon API Gateway: 10 minutes.
    #[serde(default = "default_idle_timeout_seconds")]
    #[schemars(range(min = 1, max = 86400))]
    pub idle_timeout_seconds: u32,

    /// Seconds a connection may last at all. Amazon API Gateway: 2 hours.
    #[serde(default = "default_max_connection_seconds")]
    #[schemars(range(min = 1, max = 604800))]
    pub max_connection_seconds: u32,

    /// Largest frame a client may send, in bytes; a larger one closes the connection with
    /// 1009 `Message too big`. Amazon API Gateway: 32 KB.
    #[serde(default = "default_max_frame_bytes")]
    #[schemars(range(min = 125, max = 16777216))]
    pub max_frame_bytes: u32,

    /// Largest message (all its frames) a client may send, in bytes; a larger one closes
    /// the connection with 1009. Amazon API Gateway: 128 KB.
    #[serde(default = "default_max_message_bytes")]
    #[schemars(range(min = 125, max = 16777216))]
    pub max_message_bytes: u32,

    /// Secrets of type `tollgate.dev/aws-credentials` (`accessKeyId`, `secretAccessKey`):
    /// callers of the `@connections` API sign with one of them (AWS Signature Version 4,
    /// service `execute-api`), as an AWS SDK's `ApiGatewayManagementApi` client does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub management_credentials: Vec<LocalRef>,

    /// A JWT authorizer of the gateway (in `spec.authorizers`) whose tokens may call the
    /// `@connections` API too, as `Authorization: Bearer <token>`: for in-cluster backends,
    /// one whose issuer is the cluster's ServiceAccount issuer and whose audience their
    /// projected tokens carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]{1,64}$"), length(max = 64))]
    pub management_authorizer: Option<String>,

    /// Redis through which the proxies of the fleet reach each other's connections: a
    /// `@connections` call made to any proxy is carried to the one holding the connection.
    /// Unset (and `redis` unset): the gateway's `rateLimiting.redis` when its mode is `Redis`;
    /// else each proxy answers `@connections` for its own connections only (410 for the
    /// others'), enough for one proxy or standalone mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^rediss?://[^\s]+$"), length(max = 2048))]
    pub redis_url: Option<String>,

    /// The bus's Redis with every setting `rateLimiting.redis` takes (a cluster, Sentinel, TLS,
    /// an ACL user), in place of `redisUrl`. Unset with `redisUrl` unset: the gateway's
    /// `rateLimiting.redis`, when its mode is `Redis`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisConnection>,
}

fn default_route_selection_expression() -> String {
    "$request.body.action".into()
}

fn default_idle_timeout_seconds() -> u32 {
    600
}

fn default_max_connection_seconds() -> u32 {
    7200
}

fn default_max_frame_bytes() -> u32 {
    32 * 1024
}

fn default_max_message_bytes() -> u32 {
    128 * 1024
}

impl Default for WebSocketSettings {
    fn default() -> Self {
        Self {
            route_selection_expression: default_route_selection_expression(),
            idle_timeout_seconds: default_idle_timeout_seconds(),
            max_connection_seconds: default_max_connection_seconds(),
            max_frame_bytes: default_max_frame_bytes(),
            max_message_bytes: default_max_message_bytes(),
            management_credentials: Vec::new(),
            management_authorizer: None,
            redis_url: None,
            redis: None,
        }
    }
}

/// Where an API is reachable from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum EndpointType {
    Edge,
    #[default]
    Regional,
    Private,
}

/// Where the proxy reads API keys from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[allow(clippy::upper_case_acronyms)]
pub enum ApiKeySource {
    #[default]
    HEADER,
    AUTHORIZER,
}

/// A stage: a named deployment of the API with its own variables, throttle and canary.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stage {
    /// Stage name: the first path segment of every request to it (`dev`, `prod`, `v1`). An
    /// HTTP API's `$default` stage is served with no stage in the path.
    #[schemars(length(min = 1, max = 128), extend("x-kubernetes-validations" = [{
        "rule": "self == '$default' || self.matches(r\"^[A-Za-z0-9_-]+$\")",
        "message": "stage names use letters, digits, '_' and '-' only (or are $default, on an HTTP API)"
    }]))]
    pub name: String,

    /// What this stage is for; shown to people only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,

    /// Stage variables, referenced as `${stageVariables.name}` in integration URLs and
    /// headers and passed to Lambda functions. Names: letters, digits, underscore.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("x-kubernetes-validations" = [
        {
            "rule": "self.all(k, k.matches('^[A-Za-z0-9_]{1,64}$'))",
            "message": "stage variable names may use only letters, digits and underscores (at most 64)"
        },
        {
            "rule": "self.all(k, self[k].matches('^[A-Za-z0-9-._~:/?#&=,]{0,512}$'))",
            "message": "stage variable values may use letters, digits and -._~:/?#&=, (at most 512 characters)"
        }
    ]))]
    #[schemars(extend("maxProperties" = 100, "additionalProperties" = {"type": "string", "maxLength": 512}))]
    pub variables: BTreeMap<String, String>,

    /// Default throttle for every route of this stage. Capped by the gateway-wide throttle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<ThrottleSettings>,

    /// Whether this stage's requests are traced (Amazon's `tracingEnabled`). Unset: traced
    /// when the gateway has `tracing`. `true` on a gateway without `tracing` uses the
    /// proxies' own collector (`--otlp-endpoint`) and the default sampling ratio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing_enabled: Option<bool>,

    /// A canary release: a share of this stage's traffic served with other stage variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanarySettings>,

    /// REST API: the stage's response cache (Amazon's stage cache).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<StageCache>,

    /// The stage's access-log line, as Amazon's `accessLogSettings`: a `format` over
    /// `$context` variables, or one of the console's presets. Without it, the proxy writes its
    /// own JSON line. Where lines go is the proxy's `--access-log` setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log_settings: Option<AccessLogSettings>,
}

/// A stage's access-log line: exactly one of `format` and `preset`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.format) != has(self.preset)",
        "message": "accessLogSettings needs exactly one of format (your own line) and preset (CLF, JSON, XML or CSV)"
    }
]))]
pub struct AccessLogSettings {
    /// One line over `$context` variables (`$context.requestId` or `${context.requestId}`),
    /// which must include `$context.requestId` or `$context.extendedRequestId`. A format that
    /// starts with `{` is JSON and one that starts with `<` is XML: values are escaped as
    /// such; otherwise control characters are escaped, and in a CSV line (commas between
    /// values, no spaces) a value with a comma or a quote is quoted. A variable that would log
    /// a secret (`$context.identity.apiKey`) or that Tollgate does not know refuses the stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub format: Option<String>,
    /// One of the API Gateway console's example formats: `CLF`, `JSON`, `XML` or `CSV` (a
    /// REST API's name `$context.resourcePath`, an HTTP or WebSocket API's
    /// `$context.routeKey`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<AccessLogPreset>,
}

/// The API Gateway console's example access-log formats.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[allow(clippy::upper_case_acronyms)]
pub enum AccessLogPreset {
    CLF,
    JSON,
    XML,
    CSV,
}

/// A canary release on a stage.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.percentTraffic) || !has(self.stageVariableOverrides)",
        "message": "canary.stageVariableOverrides needs canary.percentTraffic: say what share of requests the canary takes"
    }
]))]
pub struct CanarySettings {
    /// Percent of the stage's requests (0 to 100) served by the canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub percent_traffic: Option<f64>,

    /// Stage variables that differ on the canary; the others are the stage's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("x-kubernetes-validations" = [
        {
            "rule": "self.all(k, k.matches('^[A-Za-z0-9_]{1,64}$'))",
            "message": "stage variable names may use only letters, digits and underscores (at most 64)"
        }
    ]))]
    #[schemars(extend("maxProperties" = 100, "additionalProperties" = {"type": "string", "maxLength": 512}))]
    pub stage_variable_overrides: BTreeMap<String, String>,
}

/// How throttle and quota counters are shared across the proxy fleet.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.mode != 'Redis' || has(self.redis)",
        "message": "rateLimiting.mode Redis needs rateLimiting.redis (a url, cluster or sentinel)"
    }
]))]
pub struct RateLimiting {
    /// `Local`: each proxy enforces its share of every rate (rate / number of proxies).
    /// `Redis`: counters live in Redis, exact across the fleet, one round trip per request.
    #[serde(default)]
    pub mode: RateLimitMode,
    /// The Redis server used in `Redis` mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisSettings>,
}

/// Where throttle and quota counters are kept.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RateLimitMode {
    #[default]
    Local,
    Redis,
}

/// The Redis for fleet-wide counters: where it is (see `RedisConnection`), and what the proxies
/// do while it cannot answer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisSettings {
    #[serde(flatten)]
    pub connection: RedisConnection,
    /// What the proxy does while Redis is unreachable. `FailOpen`: admit requests.
    /// `FailClosed`: answer 429. `Local`: enforce each proxy's local share meanwhile.
    #[serde(default)]
    pub on_failure: RedisFailureMode,
}

/// What the proxy does while Redis is unreachable.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RedisFailureMode {
    FailOpen,
    FailClosed,
    #[default]
    Local,
}

/// An authorizer: who the caller is, checked before the integration runs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.type != 'JWT' || (has(self.jwt) && !has(self.http) && !has(self.lambda))",
        "message": "a JWT authorizer needs jwt (issuer and audiences) and takes neither http nor lambda"
    },
    {
        "rule": "self.type == 'JWT' || self.type == 'AWS_IAM' || (!has(self.jwt) && (has(self.http) ? 1 : 0) + (has(self.lambda) ? 1 : 0) == 1)",
        "message": "a TOKEN or REQUEST authorizer needs exactly one of http or lambda, and no jwt"
    },
    {
        "rule": "(self.type == 'AWS_IAM') == has(self.iam) && (self.type != 'AWS_IAM' || (!has(self.jwt) && !has(self.http) && !has(self.lambda) && !has(self.identitySource)))",
        "message": "an AWS_IAM authorizer takes iam (credentials and statements) only, and only it takes iam"
    },
    {
        "rule": "(self.type == 'KUBERNETES') == has(self.kubernetes) && (self.type != 'KUBERNETES' || (!has(self.jwt) && !has(self.http) && !has(self.lambda)))",
        "message": "a KUBERNETES authorizer takes kubernetes (audiences, allow) and no jwt, http or lambda; only it takes kubernetes"
    },
    {
        "rule": "self.type != 'TOKEN' || (has(self.identitySource) && size(self.identitySource) == 1 && self.identitySource[0].startsWith('$request.header.'))",
        "message": "a TOKEN authorizer takes exactly one identitySource, a header: $request.header.Name"
    },
    {
        "rule": "!has(self.payloadFormatVersion) || self.type == 'REQUEST'",
        "message": "payloadFormatVersion is the event a REQUEST authorizer gets: remove it from a JWT or TOKEN authorizer"
    }
]))]
pub struct Authorizer {
    /// Name that routes use in `spec.authorizer`.
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]{1,64}$"), length(min = 1, max = 64))]
    pub name: String,

    /// `JWT`: validate a JSON Web Token against an issuer's JWKS. `TOKEN`: send one header to
    /// a custom authorizer. `REQUEST`: send the identity sources and request context to a
    /// custom authorizer (the role of Amazon's Lambda authorizer).
    #[serde(rename = "type")]
    pub type_: AuthorizerType,

    /// Where the caller's identity comes from: `$request.header.Name`,
    /// `$request.querystring.name` or `$stageVariables.name`. A request missing any of them
    /// gets 401 without the authorizer being called. JWT defaults to
    /// `$request.header.Authorization`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 10),
        inner(
            length(max = 256),
            regex(
                pattern = r"^\$(request\.(header|querystring)\.[A-Za-z0-9_.-]+|stageVariables\.[A-Za-z0-9_]+)$"
            )
        )
    )]
    pub identity_source: Vec<String>,

    /// JWT settings (type `JWT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtAuthorizer>,

    /// A custom authorizer reached over HTTP (types `TOKEN` and `REQUEST`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpAuthorizer>,

    /// A custom authorizer that is a function behind the Lambda Invoke API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda: Option<LambdaFunction>,

    /// `AWS_IAM`: the access keys that may sign, and who may call what.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam: Option<IamAuthorizer>,

    /// `KUBERNETES`: the token's issuer and audiences, and the ServiceAccounts allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesAuthorizer>,

    /// REQUEST: the event it gets, `1.0` (a REST API's: `methodArn`, `headers`,
    /// `queryStringParameters`, …) or `2.0` (an HTTP API's: `routeArn`, `identitySource`,
    /// `rawPath`, `cookies`, …). Default: `2.0` on an HTTP API, `1.0` otherwise. Either way it
    /// may answer with a policy or the simple `{"isAuthorized": …}` format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_format_version: Option<PayloadFormatVersion>,

    /// How long an answer is cached per identity, in seconds (0 disables caching).
    #[serde(default = "default_authorizer_ttl")]
    #[schemars(range(min = 0, max = 3600))]
    pub result_ttl_seconds: u32,
}

fn default_authorizer_ttl() -> u32 {
    300
}

/// The kind of an authorizer.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[allow(clippy::upper_case_acronyms)]
pub enum AuthorizerType {
    JWT,
    TOKEN,
    REQUEST,
    /// Amazon's `AWS_IAM` authorization: requests signed with SigV4 by access keys the
    /// gateway knows, and a policy of who may call what.
    #[serde(rename = "AWS_IAM")]
    AwsIam,
    /// Tollgate's own: in-cluster callers present their projected ServiceAccount token,
    /// verified against the cluster's service account issuer; the ServiceAccounts or
    /// namespaces allowed are named by the authorizer, or by each route.
    #[serde(rename = "KUBERNETES")]
    Kubernetes,
}

/// `AWS_IAM` authorization: callers sign requests with SigV4 (service `execute-api`, any
/// region) with an access key of `credentials`; `statements` say which of them may invoke
/// which routes, as an IAM policy's `execute-api:Invoke` statements do.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IamAuthorizer {
    /// Secrets of type `tollgate.dev/aws-credentials` (`accessKeyId`, `secretAccessKey`), in
    /// the gateway's namespace: the callers, each known by its Secret's name.
    #[schemars(length(min = 1, max = 50))]
    pub credentials: Vec<LocalRef>,
    /// Who may call what; a Deny wins over an Allow, and a call no statement allows is
    /// refused.
    #[schemars(length(min = 1, max = 50))]
    pub statements: Vec<IamStatement>,
}

/// One statement of an [`IamAuthorizer`]'s policy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IamStatement {
    /// `Allow` or `Deny`.
    pub effect: IamEffect,
    /// The callers it is about: names of Secrets in `credentials`, or `*` for all of them.
    #[schemars(length(min = 1, max = 50), inner(length(min = 1, max = 253)))]
    pub principals: Vec<String>,
    /// Method ARNs it covers, `arn:aws:execute-api:{region}:{account}:{gateway}/{stage}/{METHOD}/{path}`
    /// with `*` and `?` wildcards (`arn:aws:execute-api:*:*:shop/prod/GET/orders/*`). Tollgate's
    /// region is `local` and its account `tollgate`.
    #[schemars(length(min = 1, max = 50), inner(length(min = 1, max = 1600)))]
    pub resources: Vec<String>,
}

/// `KUBERNETES` authorization: callers in the cluster send `Authorization: Bearer` with a
/// ServiceAccount token projected for one of `audiences`; the proxy verifies it against the
/// service account issuer's keys (fetched and cached, as a JWT authorizer's: no API-server call
/// per request), then checks the ServiceAccount against the route's `serviceAccounts`, else
/// this `allow`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesAuthorizer {
    /// The cluster's service account issuer (the API server's `--service-account-issuer`).
    #[serde(default = "default_kubernetes_issuer")]
    #[schemars(length(min = 1, max = 2048))]
    pub issuer: String,
    /// Where the issuer's keys are: default `{issuer}/openid/v1/jwks`. The API server serves
    /// them to ServiceAccounts, or to anyone once the ClusterRole
    /// `system:service-account-issuer-discovery` is bound to `system:unauthenticated`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^\s]+$"))]
    pub jwks_uri: Option<String>,
    /// The audiences a token must carry one of (`kubectl create token --audience`, a projected
    /// volume's `audience`): choose one per gateway, so a token for another service is refused.
    #[schemars(length(min = 1, max = 20), inner(length(min = 1, max = 256)))]
    pub audiences: Vec<String>,
    /// ServiceAccounts allowed on routes that name none: `namespace/name`, or `namespace/*`
    /// for every ServiceAccount of a namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 100),
        inner(regex(
            pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?/(\*|[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?)$"
        ))
    )]
    pub allow: Vec<String>,
}

fn default_kubernetes_issuer() -> String {
    "https://kubernetes.default.svc".into()
}

/// Whether a statement allows or denies.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum IamEffect {
    Allow,
    Deny,
}

/// JSON Web Token validation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JwtAuthorizer {
    /// The `iss` claim a token must carry.
    #[schemars(length(min = 1, max = 2048))]
    pub issuer: String,
    /// Accepted `aud` values; a token must carry at least one of them.
    #[schemars(length(min = 1, max = 50), inner(length(max = 512)))]
    pub audiences: Vec<String>,
    /// Where the issuer publishes its signing keys (JWKS). Defaults to
    /// `{issuer}/.well-known/jwks.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^\s]+$"))]
    pub jwks_uri: Option<String>,
}

/// A custom authorizer reached over HTTP: it receives a JSON description of the request and
/// answers with an IAM policy document or the simple `{"isAuthorized": ...}` format.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpAuthorizer {
    /// The URL the proxy POSTs to.
    #[schemars(regex(pattern = r"^https?://[^\s]+$"))]
    pub url: String,
}

/// A function behind the Lambda Invoke API (`POST /2015-03-31/functions/{name}/invocations`):
/// AWS Lambda itself, called with SigV4-signed requests, or any endpoint serving the API, such
/// as the Lambda Runtime Interface Emulator.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.endpoint) || has(self.region) || self.functionName.startsWith('arn:')",
        "message": "say where the function runs: endpoint (an Invoke API such as the emulator), region (AWS Lambda), or a function ARN as functionName"
    }
]))]
pub struct LambdaFunction {
    /// Base URL of the Invoke API, such as `http://lambda.functions.svc:9001`. Unset: AWS
    /// Lambda in the function's region, `https://lambda.{region}.amazonaws.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), extend("x-kubernetes-validations" = [{
        "rule": "self.matches(r\"^https?://[^\\s/]+/?$\")",
        "message": "endpoint is the Invoke API's base URL, http(s)://host[:port], without a path"
    }]))]
    pub endpoint: Option<String>,
    /// The function: its name, `name:qualifier` (a version or an alias), or its ARN
    /// (`arn:aws:lambda:eu-west-1:123456789012:function:orders[:live]`), which gives the region.
    #[schemars(regex(
        pattern = r"^([A-Za-z0-9_-]{1,64}(:[A-Za-z0-9$_-]{1,128})?|arn:aws[a-z-]*:lambda:[a-z0-9-]{1,32}:[0-9]{12}:function:[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9$_-]{1,128})?)$"
    ))]
    pub function_name: String,
    /// The function's AWS region (`eu-west-1`); an ARN gives it too. With a region, every call
    /// is signed with SigV4 by credentials from the AWS credential chain the proxy runs with:
    /// environment, shared profile, web identity (EKS IAM Roles for Service Accounts), EKS Pod
    /// Identity, instance metadata. Without one, calls go unsigned to `endpoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$"), length(max = 32))]
    pub region: Option<String>,
}

/// A custom domain: a hostname with its certificate, TLS policy and base path mappings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.mutualTls) || has(self.certificateSecretRef)",
        "message": "mutualTls needs certificateSecretRef: a domain must serve TLS to ask for client certificates"
    }
]))]
pub struct CustomDomain {
    /// The domain name; `*.example.com` matches one label.
    #[schemars(length(max = 253), extend("x-kubernetes-validations" = [{
        "rule": "self.matches(r\"^(\\*\\.)?[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$\")",
        "message": "hostname must be a lowercase DNS name such as api.example.com, optionally starting with '*.'"
    }]))]
    pub hostname: String,

    /// A `kubernetes.io/tls` Secret holding the certificate and key for this hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_secret_ref: Option<LocalRef>,

    /// The lowest TLS version accepted: `TLS_1_2` (TLS 1.2 and 1.3, AEAD suites only) or
    /// `TLS_1_3`.
    #[serde(default)]
    pub security_policy: TlsPolicy,

    /// Require client certificates signed by a CA in the truststore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutual_tls: Option<MutualTls>,

    /// Which stage serves which base path. `v1/orders` maps `https://host/v1/orders/...`;
    /// an empty base path maps the whole domain.
    // Uniqueness by the API server's list-map rule: a CEL rule comparing every pair costs too
    // much for its budget at these sizes.
    #[schemars(length(min = 1, max = 100), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["basePath"]))]
    pub base_path_mappings: Vec<BasePathMapping>,
}

/// The lowest TLS version a domain accepts.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[allow(non_camel_case_types)]
pub enum TlsPolicy {
    #[default]
    TLS_1_2,
    TLS_1_3,
}

/// Mutual TLS for a domain: the client CAs come from exactly one of a Secret or a ConfigMap.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(has(self.truststoreSecretRef) ? 1 : 0) + (has(self.truststoreConfigMapRef) ? 1 : 0) == 1",
        "message": "mutualTls needs exactly one of truststoreSecretRef and truststoreConfigMapRef: keep the one that holds ca.crt"
    }
]))]
pub struct MutualTls {
    /// A Secret whose key `ca.crt` holds the PEM bundle of trusted client CAs. Its type must
    /// be `tollgate.dev/truststore` (`kubectl create secret generic NAME
    /// --type=tollgate.dev/truststore --from-file=ca.crt`) or `kubernetes.io/tls`: the
    /// controller watches Secrets of those types only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truststore_secret_ref: Option<LocalRef>,

    /// A ConfigMap whose key `ca.crt` holds the PEM bundle of trusted client CAs (as
    /// trust-manager writes them). It must carry the label `tollgate.dev/truststore` (any
    /// value): the controller watches labelled ConfigMaps only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truststore_config_map_ref: Option<LocalRef>,
}

/// Maps a base path of a custom domain to a stage.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BasePathMapping {
    /// Path segments without leading or trailing slash (`v1`, `v1/orders`), or empty for the
    /// whole domain.
    #[serde(default)]
    #[schemars(
        regex(pattern = r"^([A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*)?$"),
        length(max = 300)
    )]
    pub base_path: String,
    /// The stage that serves requests under this base path.
    #[schemars(
        regex(pattern = r"^(\$default|[A-Za-z0-9_-]{1,128})$"),
        length(min = 1, max = 128)
    )]
    pub stage: String,
}

/// Cross-origin resource sharing settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!(has(self.allowCredentials) && self.allowCredentials) || !has(self.allowOrigins) || !self.allowOrigins.exists(o, o == '*')",
        "message": "cors.allowCredentials cannot be used with allowOrigins '*': list the allowed origins"
    }
]))]
pub struct Cors {
    /// Origins allowed to call the API (`https://app.example.com`), or `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(max = 512)))]
    pub allow_origins: Vec<String>,
    /// Methods allowed in cross-origin requests, or `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20), inner(length(max = 16)))]
    pub allow_methods: Vec<String>,
    /// Request headers allowed in cross-origin requests, or `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(max = 256)))]
    pub allow_headers: Vec<String>,
    /// Response headers the browser may expose to scripts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(max = 256)))]
    pub expose_headers: Vec<String>,
    /// How long, in seconds, a browser may cache a preflight answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 86400))]
    pub max_age_seconds: Option<u32>,
    /// Whether cross-origin requests may carry credentials (cookies, authorization).
    #[serde(default)]
    pub allow_credentials: bool,
}

/// Who may call the API, by source address, and which proxies in front of the gateway are
/// trusted to report it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourcePolicy {
    /// Source CIDRs allowed to call; empty allows every source not denied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(max = 64)))]
    #[schemars(extend("x-kubernetes-validations" = [
        { "rule": "self.all(c, isCIDR(c))", "message": "allowCidrs must hold CIDRs such as 10.0.0.0/8 or 2001:db8::/32" }
    ]))]
    pub allow_cidrs: Vec<String>,
    /// Source CIDRs refused, even when also allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(max = 64)))]
    #[schemars(extend("x-kubernetes-validations" = [
        { "rule": "self.all(c, isCIDR(c))", "message": "denyCidrs must hold CIDRs such as 10.0.0.0/8 or 2001:db8::/32" }
    ]))]
    pub deny_cidrs: Vec<String>,
    /// Peers whose `X-Forwarded-For` header is believed; from anyone else the TCP peer
    /// address is the source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(max = 64)))]
    #[schemars(extend("x-kubernetes-validations" = [
        { "rule": "self.all(c, isCIDR(c))", "message": "trustedProxyCidrs must hold CIDRs such as 10.0.0.0/8" }
    ]))]
    pub trusted_proxy_cidrs: Vec<String>,
    /// Namespaces whose pods may reach a `Private` gateway (enforced by a NetworkPolicy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(max = 63)))]
    pub allow_namespaces: Vec<String>,
}

/// How the gateway's proxy fleet runs in the cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FleetSettings {
    /// Number of proxy replicas (`Regional` and `Private`; `Edge` runs one per selected node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub replicas: Option<i32>,
    /// Nodes the proxies may run on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the proxies tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// CPU and memory for each proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// The proxies' access log: `Stdout`, one JSON line per request (the default), or
    /// `Disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<FleetAccessLog>,
    /// The format of the proxies' own log (standard error): `Text` (the default) or `Json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_format: Option<FleetLogFormat>,
    /// What the proxies' own log shows: a level (`info`, the default), or levels by module
    /// separated by commas (`warn,tollgate_proxy=debug`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    #[schemars(extend("x-kubernetes-validations" = [
        {
            "rule": "self.matches('^(([A-Za-z0-9_]+(::[A-Za-z0-9_]+)*=)?(trace|debug|info|warn|error|off))(,([A-Za-z0-9_]+(::[A-Za-z0-9_]+)*=)?(trace|debug|info|warn|error|off))*$')",
            "message": "logLevel must be a level (trace, debug, info, warn, error or off) or module=level pairs separated by commas, such as warn,tollgate_proxy=debug"
        }
    ]))]
    pub log_level: Option<String>,
    /// Annotations of the proxies' ServiceAccount (`tollgate-proxy-{gateway}`), such as
    /// `eks.amazonaws.com/role-arn` for EKS IAM Roles for Service Accounts: the role whose
    /// credentials sign the proxies' calls to AWS Lambda.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 20))]
    pub service_account_annotations: BTreeMap<String, String>,
}

/// Where a fleet's proxies write their access log.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum FleetAccessLog {
    #[default]
    Stdout,
    // Not `Off`: YAML 1.1, which kubectl reads, takes an unquoted `Off` for a boolean.
    Disabled,
}

/// The format of a fleet's proxies' own log.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum FleetLogFormat {
    #[default]
    Text,
    Json,
}

/// What the controller observed of an ApiGateway.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiGatewayStatus {
    /// `Accepted`, `Programmed` and `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Invoke URL of the first stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoke_url: Option<String>,
    /// Invoke URL of each stage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageStatus>,
    /// The version (content hash) of the gateway's current table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_version: Option<String>,
    /// Connected proxies, and how many of them run the current table version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxies: Option<ProxyCounts>,
}

/// A stage's invoke URL.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageStatus {
    /// Stage name.
    pub name: String,
    /// `http://{gateway}.{namespace}.{base domain}/{stage}` (`ws://` for a WebSocket API):
    /// the default endpoint.
    pub invoke_url: String,
    /// A WebSocket API's `@connections` URL: `http://{gateway}.{namespace}.{base
    /// domain}/{stage}/@connections`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_url: Option<String>,
}

/// How many proxies are connected and how many serve the current table.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProxyCounts {
    /// Proxies serving the current table version.
    pub current: u32,
    /// Proxies connected to the controller.
    pub connected: u32,
}
