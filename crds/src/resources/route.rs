//! `Route`: a method and path of a REST API, or a route key of a WebSocket API, and the
//! integration that answers it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::cache::RouteCache;
use super::common::{HttpMethod, LocalRef, ThrottleSettings};
use super::gateway::LambdaFunction;
use super::templates::MappingTemplates;

/// Regular expression for route paths: literal segments, `{param}` segments and an optional
/// greedy `{name+}` last segment. The compiler checks the same shape (and more) itself.
macro_rules! path_regex {
    () => {
        r"^/$|^(/([A-Za-z0-9._~!$&'()*,;=:@-]+|\{[A-Za-z_][A-Za-z0-9_]{0,63}\}))*(/\{[A-Za-z_][A-Za-z0-9_]{0,63}\+\})?$"
    };
}
pub const PATH_PATTERN: &str = path_regex!();

/// The CEL rule checking [`PATH_PATTERN`], as a CEL raw string so the regex keeps its
/// backslashes.
const PATH_RULE: &str = concat!(r#"self.matches(r""#, path_regex!(), r#"")"#);
const PATH_MESSAGE: &str = "path must be '/' or '/'-separated segments, each literal text (letters, digits, -._~!$&'()*,;=:@) \
     or a whole {parameter}, with an optional greedy {name+} last; no empty segment or trailing '/'";

/// A resource and method of an API, as Amazon API Gateway's resource + method: which requests
/// it matches and which integration answers them.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "tollgate.dev",
    version = "v1alpha1",
    kind = "Route",
    plural = "routes",
    shortname = "rt",
    namespaced,
    doc = "A method and path of an ApiGateway and the integration that answers it.",
    status = "RouteStatus",
    printcolumn = r#"{"name":"Gateway","type":"string","jsonPath":".spec.gatewayRef.name"}"#,
    printcolumn = r#"{"name":"Method","type":"string","jsonPath":".spec.method"}"#,
    printcolumn = r#"{"name":"Path","type":"string","jsonPath":".spec.path"}"#,
    printcolumn = r#"{"name":"Key","type":"string","jsonPath":".spec.routeKey"}"#,
    printcolumn = r#"{"name":"Accepted","type":"string","jsonPath":".status.conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.authorizationScopes) || size(self.authorizationScopes) == 0 || has(self.authorizer)",
        "message": "authorizationScopes need an authorizer: set spec.authorizer to a JWT authorizer of the gateway"
    },
    {
        "rule": "!has(self.serviceAccounts) || size(self.serviceAccounts) == 0 || has(self.authorizer)",
        "message": "serviceAccounts need an authorizer: set spec.authorizer to a KUBERNETES authorizer of the gateway"
    },
    {
        "rule": "!has(self.stages) || self.stages.all(s, self.stages.filter(t, t == s).size() == 1)",
        "message": "each stage may be listed once in spec.stages"
    },
    {
        "rule": "has(self.routeKey) ? !has(self.method) && !has(self.path) : has(self.method) && has(self.path)",
        "message": "a Route has spec.method and spec.path (REST API) or spec.routeKey (WebSocket API), not both"
    },
    {
        "rule": "!has(self.routeResponseSelectionExpression) || (has(self.routeKey) && self.routeKey != '$disconnect')",
        "message": "routeResponseSelectionExpression is for WebSocket routes other than $disconnect (whose client is gone)"
    },
    {
        "rule": "!has(self.routeKey) || self.routeKey == '$connect' || self.routeKey == '$default' || (!has(self.authorizer) && !(has(self.apiKeyRequired) && self.apiKeyRequired))",
        "message": "a WebSocket API authorizes a connection once, on $connect: move spec.authorizer and spec.apiKeyRequired to the $connect route"
    }
]))]
pub struct RouteSpec {
    /// The ApiGateway (in this namespace) the route belongs to.
    pub gateway_ref: LocalRef,

    /// REST API: the HTTP method, or `ANY` for every method not matched by a route of its
    /// own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<HttpMethod>,

    /// REST API: the resource path: `/`, literal segments, `{param}` segments, and a greedy `{name+}`
    /// last segment that matches the rest of the path (`/pets/{petId}`, `/files/{proxy+}`).
    /// The most specific route wins: literal over parameter over greedy.
    #[schemars(length(min = 1, max = 1024), extend("x-kubernetes-validations" = [
        { "rule": PATH_RULE, "message": PATH_MESSAGE }
    ]))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,

    /// HTTP API: `$default`, the route for requests no other route takes. WebSocket API:
    /// `$connect` (the handshake: authorizer, API key and usage plan apply here, and a non-2xx
    /// answer from its integration refuses the connection), `$disconnect` (told when a
    /// connection ends), `$default` (messages no other route
    /// takes), or the value of the gateway's `websocket.routeSelectionExpression` that
    /// selects this route (`sendmessage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 128),
        regex(pattern = r"^(\$connect|\$disconnect|\$default|[^$\s][^\s]*)$")
    )]
    pub route_key: Option<String>,

    /// WebSocket API: `$default` makes the route two-way, sending its integration's answer
    /// back to the client; unset, the route is one-way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^\$default$"))]
    pub route_response_selection_expression: Option<String>,

    /// Stages that serve this route; empty means every stage of the gateway.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 10),
        inner(
            regex(pattern = r"^(\$default|[A-Za-z0-9_-]{1,128})$"),
            length(max = 128)
        )
    )]
    pub stages: Vec<String>,

    /// Whether callers must send an API key bound to a usage plan of the stage.
    #[serde(default)]
    pub api_key_required: bool,

    /// Name of an authorizer in the gateway's `spec.authorizers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]{1,64}$"), length(max = 64))]
    pub authorizer: Option<String>,

    /// OAuth scopes the JWT must carry (at least one of them) for this route.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50), inner(length(max = 256)))]
    pub authorization_scopes: Vec<String>,

    /// With a KUBERNETES authorizer: the ServiceAccounts that may call this route
    /// (`namespace/name`, or `namespace/*`), in place of the authorizer's `allow`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 100),
        inner(regex(
            pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?/(\*|[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?)$"
        ))
    )]
    pub service_accounts: Vec<String>,

    /// REST API: the parameters of the request, as Amazon API Gateway's method request
    /// parameters: `method.request.path.NAME`, `method.request.querystring.NAME` or
    /// `method.request.header.NAME`, each `true` when it is required. A request validator that
    /// validates parameters refuses a request without a required one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 50))]
    pub request_parameters: BTreeMap<String, bool>,

    /// REST API: the model of the request body by content type (`application/json: Pet`;
    /// `$default` for any other), from the gateway's `models`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 10))]
    pub request_models: BTreeMap<String, String>,

    /// REST API: the gateway's request validator (in `spec.requestValidators`) that checks
    /// this route's requests before its integration is called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub request_validator: Option<String>,

    /// REST API: how the route uses its stages' caches: on or off (default: `GET` routes
    /// only), its own time to live, and the parameters in its cache key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<RouteCache>,

    /// Throttle for this route on every stage it is served on; overrides the stage default,
    /// capped by the gateway-wide throttle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<ThrottleSettings>,

    /// What answers the request: exactly one of `http`, `lambda` or `mock`.
    pub integration: Integration,
}

/// What answers a route's requests.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(has(self.http) ? 1 : 0) + (has(self.lambda) ? 1 : 0) + (has(self.mock) ? 1 : 0) == 1",
        "message": "set exactly one of integration.http, integration.lambda or integration.mock"
    }
]))]
pub struct Integration {
    /// Forward the request to an HTTP backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpIntegration>,
    /// Invoke a function with the Amazon API Gateway proxy event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda: Option<LambdaIntegration>,
    /// Answer from the route itself, without a backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mock: Option<MockIntegration>,
    /// How long the proxy waits for the backend, in milliseconds (50 to 29,000); then it
    /// answers 504 `Endpoint request timed out`.
    #[serde(default = "default_timeout_millis")]
    #[schemars(range(min = 50, max = 29000))]
    pub timeout_millis: u32,
}

/// Amazon API Gateway's default (and largest) integration timeout for REST APIs.
pub const DEFAULT_TIMEOUT_MILLIS: u32 = 29_000;

fn default_timeout_millis() -> u32 {
    DEFAULT_TIMEOUT_MILLIS
}

/// An HTTP backend, or several with weights.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(has(self.url) ? 1 : 0) + (has(self.service) ? 1 : 0) + (has(self.backends) ? 1 : 0) == 1",
        "message": "set exactly one of http.url, http.service or http.backends"
    }
]))]
pub struct HttpIntegration {
    /// The backend URL, a template: `{param}` and `{proxy}` take the route's path
    /// parameters, `${stageVariables.name}` the stage's variables
    /// (`https://${stageVariables.host}/pets/{petId}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^\s]+$"), length(max = 2048))]
    pub url: Option<String>,

    /// A Service in this namespace; the request path is forwarded unless `service.path` is
    /// set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceBackend>,

    /// Several backends sharing the traffic by weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 16))]
    pub backends: Option<Vec<WeightedBackend>>,

    /// The method sent to the backend; defaults to the request's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<HttpMethod>,

    /// Headers added to the backend request (templates, like `url`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 50))]
    pub request_headers: BTreeMap<String, String>,

    /// Parameter mapping of the request sent to the backend, written as Amazon's HTTP APIs
    /// write it. Keys: `overwrite:`, `append:` or `remove:` followed by `header.NAME` or
    /// `querystring.NAME`, or `overwrite:path`. Values: text with `$request.header.NAME`,
    /// `$request.querystring.NAME`, `$request.path`, `$request.path.NAME`, `$context.NAME`
    /// or `$stageVariables.NAME` (as `${request.header.NAME}` inside other text); `''` for
    /// `remove`. Headers the gateway owns (`Host`, `Content-Length`, `X-Forwarded-*`, …)
    /// cannot be mapped.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 50))]
    pub request_parameters: BTreeMap<String, String>,

    /// Mapping of the backend's response, by its status code (`"404"`): `overwrite:statuscode`
    /// and the header keys of `requestParameters`; values can also read
    /// `$response.header.NAME`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 50))]
    pub response_parameters: BTreeMap<String, BTreeMap<String, String>>,

    /// REST API: mapping templates and integration responses (Amazon's non-proxy `HTTP`
    /// integration); see `MappingTemplates`.
    #[serde(flatten)]
    pub templates: MappingTemplates,
}

/// A Service as an HTTP backend.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceBackend {
    /// Name of the Service, in the route's namespace.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// The Service port: its number.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Path template sent to the backend; defaults to the request path without the stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^/[^\s]*$"))]
    pub path: Option<String>,
}

/// One of several weighted HTTP backends.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(has(self.url) ? 1 : 0) + (has(self.service) ? 1 : 0) == 1",
        "message": "each backend needs exactly one of url or service"
    }
]))]
pub struct WeightedBackend {
    /// Backend URL template, as `http.url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^\s]+$"), length(max = 2048))]
    pub url: Option<String>,
    /// A Service backend, as `http.service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceBackend>,
    /// Relative share of requests (0 to 1000). 0 sends none.
    #[serde(default = "default_weight")]
    #[schemars(range(min = 0, max = 1000))]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

/// A function invoked with the Amazon API Gateway proxy event.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LambdaIntegration {
    /// The function and the Invoke API endpoint that runs it.
    #[serde(flatten)]
    pub function: LambdaFunction,
    /// Event format: `1.0` (REST API) or `2.0` (HTTP API). Default: `2.0` on an HTTP API,
    /// `1.0` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_format_version: Option<PayloadFormatVersion>,
    /// Most invocations each proxy has in flight to this function at once (as Lambda's
    /// reserved concurrency); more wait, within the integration timeout. Unset: no limit. The
    /// Lambda Runtime Interface Emulator serves one invocation at a time: set 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_concurrency: Option<u32>,
    /// REST API: mapping templates and integration responses (Amazon's non-proxy `AWS`
    /// integration of a function): the function gets the request template's output (or the
    /// request body) instead of the proxy event, and its result goes through the integration
    /// responses.
    #[serde(flatten)]
    pub templates: MappingTemplates,
}

/// The Lambda proxy event format.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PayloadFormatVersion {
    #[default]
    #[serde(rename = "1.0")]
    V1,
    #[serde(rename = "2.0")]
    V2,
}

/// A fixed answer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MockIntegration {
    /// Status code of the answer.
    #[serde(default = "default_mock_status")]
    #[schemars(range(min = 100, max = 599))]
    pub status_code: u16,
    /// Response headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 50))]
    pub headers: BTreeMap<String, String>,
    /// Response body; `${stageVariables.name}` and `{param}` are substituted.
    #[serde(default)]
    #[schemars(length(max = 262144))]
    pub body: String,
}

fn default_mock_status() -> u16 {
    200
}

/// What the controller observed of a Route.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteStatus {
    /// `Accepted`, `ResolvedRefs` and `Conflicted`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
