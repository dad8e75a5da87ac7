//! The stage cache as the table carries it: a stage's cache, and per route on that stage
//! whether and how it caches.

use serde::{Deserialize, Serialize};

use super::validation::ParameterLocation;

/// A stage's cache.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StageCacheTable {
    pub capacity_bytes: u64,
    /// The stage's time to live; each route's own is in its `RouteCacheTable`.
    pub ttl_seconds: u32,
    pub require_authorization: bool,
    pub unauthorized: UnauthorizedCacheControl,
}

/// What an unauthorized `Cache-Control: max-age=0` gets.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UnauthorizedCacheControl {
    #[serde(rename = "FAIL_WITH_403")]
    FailWith403,
    SucceedWithResponseHeader,
    SucceedWithoutResponseHeader,
}

/// A route's caching on one stage (present only where it caches).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RouteCacheTable {
    pub ttl_seconds: u32,
    /// In the route's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_parameters: Vec<CacheKeyParameter>,
}

/// A request parameter in the cache key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CacheKeyParameter {
    pub location: ParameterLocation,
    /// Lowercase for a header.
    pub name: String,
}
