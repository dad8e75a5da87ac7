//! Throttling and quotas: who may call how often, and how much.

use hyper::HeaderMap;
use hyper::header::HeaderValue;
use tollgate_crds::table::{GatewayTable, RouteTable, UsagePlanTable};

use crate::errors::GatewayError;

/// What `RateLimit-*` headers say about the limit closest to refusing the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitStatus {
    /// The limit: a bucket's burst, or a quota's requests per period.
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until `remaining` is back at `limit` (a bucket) or the period ends (a quota).
    pub reset_seconds: u64,
    /// Seconds until a refused request could be admitted.
    pub retry_after_seconds: u64,
}

impl RateLimitStatus {
    /// Writes `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`, and `Retry-After`
    /// when the request was refused.
    pub fn write_headers(&self, headers: &mut HeaderMap, refused: bool) {
        headers.insert("ratelimit-limit", HeaderValue::from(self.limit));
        headers.insert("ratelimit-remaining", HeaderValue::from(self.remaining));
        headers.insert("ratelimit-reset", HeaderValue::from(self.reset_seconds));
        if refused {
            headers.insert(
                hyper::header::RETRY_AFTER,
                HeaderValue::from(self.retry_after_seconds.max(1)),
            );
        }
    }
}

/// The request as the limiter sees it.
pub struct Subject<'a> {
    pub gateway: &'a GatewayTable,
    pub stage: &'a str,
    pub route: &'a RouteTable,
    /// The caller's plan and tenant, when the route took an API key.
    pub plan: Option<(&'a UsagePlanTable, &'a str)>,
}

/// Counters of every gateway this proxy serves. Lives as long as the proxy, so a new table
/// does not hand out fresh buckets.
#[derive(Default)]
pub struct Limiter {}

impl Limiter {
    /// Admits the request or refuses it with 429; on admission, the status of the tightest
    /// per-key limit, for the response headers.
    pub async fn admit(
        &self,
        _subject: &Subject<'_>,
        _fleet_size: u32,
    ) -> Result<Option<RateLimitStatus>, GatewayError> {
        Ok(None)
    }
}
