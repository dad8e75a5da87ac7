//! The stage cache (REST APIs), as Amazon API Gateway's: a stage's cache settings and a
//! route's method settings for it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A stage's response cache. Each proxy keeps its own, in memory; a new table starts empty.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageCache {
    /// Whether the stage caches. Routes cache their `GET` answers unless they say otherwise
    /// (`Route` `spec.cache`), as Amazon's default method settings do.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How many bytes of answers each proxy keeps for the stage (headers and body); the least
    /// used go first. Default 64 MiB; at most 4 GiB.
    #[serde(default = "default_capacity")]
    #[schemars(range(min = 1048576, max = 4294967296_u64))]
    pub capacity_bytes: u64,
    /// How long an answer is kept, in seconds (0 to 3600; default 300, Amazon's). 0: nothing is
    /// cached.
    #[serde(default = "default_ttl")]
    #[schemars(range(min = 0, max = 3600))]
    pub ttl_seconds: u32,
    /// Whether a client's `Cache-Control: max-age=0` (which refreshes the entry) needs the
    /// caller to be authorized to invalidate: signed with a key of the route's `AWS_IAM`
    /// authorizer. Default true, as Amazon's.
    #[serde(default = "yes")]
    pub require_authorization_for_cache_control: bool,
    /// What an unauthorized `Cache-Control: max-age=0` gets. `FAIL_WITH_403`: 403.
    /// `SUCCEED_WITH_RESPONSE_HEADER` (the default): the cached answer, with
    /// `x-cache-invalidation: refused`. `SUCCEED_WITHOUT_RESPONSE_HEADER`: the cached answer.
    #[serde(default)]
    pub unauthorized_cache_control_header_strategy: UnauthorizedCacheControl,
}

/// Amazon API Gateway's `UnauthorizedCacheControlHeaderStrategy`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UnauthorizedCacheControl {
    #[serde(rename = "FAIL_WITH_403")]
    FailWith403,
    #[default]
    SucceedWithResponseHeader,
    SucceedWithoutResponseHeader,
}

/// How a route uses its stages' caches (Amazon's method settings and cache key parameters).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteCache {
    /// Whether the route's answers are cached on stages with a cache. Default: for `GET`
    /// routes only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Seconds an answer of this route is kept (0 to 3600), in place of the stage's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub ttl_seconds: Option<u32>,
    /// What besides the method and the path tells answers apart:
    /// `method.request.querystring.NAME` and `method.request.header.NAME` (Amazon's
    /// `cacheKeyParameters`). Query strings and headers not listed do not: two requests that
    /// differ only there share an answer, as on Amazon.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub key_parameters: Vec<String>,
}

fn yes() -> bool {
    true
}

fn default_capacity() -> u64 {
    64 * 1024 * 1024
}

fn default_ttl() -> u32 {
    300
}
