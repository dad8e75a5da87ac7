//! The stage cache (REST APIs), around the integration: a route that caches on its stage is
//! answered from the cache when it holds an answer for the request's key (the method, the
//! path, and the route's key parameters), else by its integration, whose answer is kept for
//! the route's time to live. Authorizers, API keys, throttles and validation run before, as on
//! Amazon: a cached answer is never given to a request they refuse.
//!
//! - Only one request per key calls the integration at a time: the others wait for its
//!   answer (within the integration timeout), then take it from the cache; when it could not
//!   be kept, each calls the integration itself.
//! - Kept: answers of status 2xx, at most 1 MB (Amazon's item limit), whose `Cache-Control`
//!   does not say `no-store` or `private` and that set no cookie (Amazon ignores a backend's
//!   `Cache-Control`; a shared cache that hands one user's `private` answer or session cookie
//!   to another is a leak, so Tollgate does not).
//! - A client's `Cache-Control: max-age=0` refreshes the entry when the caller may invalidate
//!   (the stage does not require authorization, or the request was signed with a key of an
//!   `AWS_IAM` authorizer); otherwise the stage's strategy answers 403, or the cached answer
//!   with `x-cache-invalidation: refused`, or the cached answer alone.
//! - Answers carry `x-cache: Hit` or `Miss`; `tollgate_cache_requests_total` counts both.

pub mod shared;
pub mod store;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CACHE_CONTROL, CONNECTION, TRANSFER_ENCODING};
use http::{HeaderName, HeaderValue, Response};
use http_body_util::BodyExt;
use hyper::body::Frame;
use tokio::sync::watch;
use tollgate_crds::table::{
    IntegrationTable, ParameterLocation, RouteCacheTable, StageCacheTable, UnauthorizedCacheControl,
};

use crate::body::{Body, BoxError, Replay, full};
use crate::errors::GatewayError;
use crate::lambda::event::parse_query;
use crate::metrics::RouteMetrics;
use crate::request_ctx::RouteCtx;
use shared::SharedCache;
use store::{Entry, Store};

/// Amazon API Gateway's largest cached item.
pub const MAX_ITEM_BYTES: usize = 1024 * 1024;

const X_CACHE: HeaderName = HeaderName::from_static("x-cache");
const X_CACHE_INVALIDATION: HeaderName = HeaderName::from_static("x-cache-invalidation");

/// A stage's cache: its answers and the keys being filled.
#[derive(Debug)]
pub struct StageCache {
    store: Store,
    /// The gateway's shared cache (Redis), and the stage's name in it.
    shared: Option<(Arc<SharedCache>, String)>,
    settings: StageCacheTable,
    /// Keys whose integration call is in flight; waiters watch for its end.
    filling: Mutex<HashMap<String, watch::Receiver<()>>>,
}

impl StageCache {
    pub fn build(settings: &StageCacheTable, shared: Option<(Arc<SharedCache>, String)>) -> Self {
        Self {
            store: Store::new(settings.capacity_bytes),
            shared,
            settings: settings.clone(),
            filling: Mutex::new(HashMap::new()),
        }
    }

    /// The answer kept for `key`: in this proxy's memory, else in the shared cache (then kept
    /// in memory too, for the time it has left).
    async fn lookup(&self, key: &str) -> Option<Arc<Entry>> {
        if let Some(hit) = self.store.get(key) {
            return Some(hit);
        }
        let (shared, stage) = self.shared.as_ref()?;
        let entry = shared.get(stage, key).await?;
        self.store.insert(key.to_owned(), entry);
        self.store.get(key)
    }

    /// Leads the fill of `key`, or follows the request already filling it.
    fn join(&self, key: &str) -> Flight<'_> {
        let mut filling = self.filling.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(done) = filling.get(key) {
            return Flight::Follow(done.clone());
        }
        let (tx, rx) = watch::channel(());
        filling.insert(key.to_owned(), rx);
        Flight::Lead(Filling {
            cache: self,
            key: key.to_owned(),
            _done: tx,
        })
    }
}

enum Flight<'a> {
    Lead(Filling<'a>),
    Follow(watch::Receiver<()>),
}

/// The fill of one key: when it ends (answered, failed or cancelled), its waiters wake.
struct Filling<'a> {
    cache: &'a StageCache,
    key: String,
    /// Dropped with the fill: its receivers see the channel close.
    _done: watch::Sender<()>,
}

impl Drop for Filling<'_> {
    fn drop(&mut self) {
        let mut filling = self.cache.filling.lock().unwrap_or_else(|e| e.into_inner());
        filling.remove(&self.key);
    }
}

/// What a client's `Cache-Control: max-age=0` asks, and whether it may.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Refresh {
    No,
    Yes,
    /// Asked without authorization; the answer says so.
    RefusedWithHeader,
}

/// The integration's answer, through the stage cache.
pub async fn through<F, Fut>(
    ctx: &RouteCtx<'_>,
    cache: &StageCache,
    route: &RouteCacheTable,
    metrics: &RouteMetrics,
    integration: F,
) -> Result<Response<Body>, GatewayError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Response<Body>, GatewayError>>,
{
    let refresh = refresh(ctx, &cache.settings)?;
    let key = key(ctx, route);
    if refresh != Refresh::Yes
        && let Some(hit) = cache.lookup(&key).await
    {
        metrics.observe_cache(true);
        return Ok(hit_response(&hit, refresh));
    }

    let lead = match cache.join(&key) {
        Flight::Lead(filling) => Some(filling),
        Flight::Follow(mut done) => {
            // The leader's call is bounded by the same timeout.
            let _ = tokio::time::timeout(timeout_of(ctx), done.changed()).await;
            if refresh != Refresh::Yes
                && let Some(hit) = cache.store.get(&key)
            {
                metrics.observe_cache(true);
                return Ok(hit_response(&hit, refresh));
            }
            // Its answer could not be kept: this request calls for itself.
            None
        }
    };
    metrics.observe_cache(false);
    let answer = integration().await?;
    let (answer, kept) = keep(&cache.store, key.clone(), route, answer).await;
    if let (Some((shared, stage)), Some(kept)) = (&cache.shared, kept) {
        shared.put(stage, &key, &kept);
    }
    drop(lead);
    Ok(with_cache_header(answer, "Miss", refresh))
}

/// The cache key: the method, the path (relative to the stage) and the route's key
/// parameters, each named so that no two requests can share a key by accident.
fn key(ctx: &RouteCtx<'_>, route: &RouteCacheTable) -> String {
    let mut key = String::with_capacity(64);
    key.push_str(ctx.parts.method.as_str());
    key.push(' ');
    key.push_str(ctx.path());
    if route.key_parameters.is_empty() {
        return key;
    }
    let reads_query = route
        .key_parameters
        .iter()
        .any(|p| p.location == ParameterLocation::Querystring);
    let query = if reads_query {
        parse_query(ctx.query)
    } else {
        Vec::new()
    };
    for parameter in &route.key_parameters {
        // Lengths first: a value cannot pass for a separator.
        let mut values: Vec<&str> = match parameter.location {
            ParameterLocation::Querystring => query
                .iter()
                .filter(|(n, _)| *n == parameter.name)
                .map(|(_, v)| v.as_str())
                .collect(),
            ParameterLocation::Header => ctx
                .parts
                .headers
                .get_all(parameter.name.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect(),
            ParameterLocation::Path => Vec::new(),
        };
        values.sort_unstable();
        key.push_str(&format!("\n{}:{}", parameter.name.len(), parameter.name));
        for v in values {
            key.push_str(&format!("={}:{v}", v.len()));
        }
    }
    key
}

/// Whether the request asks for a refresh (`Cache-Control: max-age=0`), and may.
fn refresh(ctx: &RouteCtx<'_>, settings: &StageCacheTable) -> Result<Refresh, GatewayError> {
    let asks = ctx
        .parts
        .headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| d.trim().eq_ignore_ascii_case("max-age=0"));
    if !asks {
        return Ok(Refresh::No);
    }
    if !settings.require_authorization || ctx.identity.iam.is_some() {
        return Ok(Refresh::Yes);
    }
    match settings.unauthorized {
        UnauthorizedCacheControl::FailWith403 => Err(GatewayError::AccessRefused {
            message: "User is not authorized to perform: execute-api:InvalidateCache".into(),
            error_type: "AccessDeniedException",
        }),
        UnauthorizedCacheControl::SucceedWithResponseHeader => Ok(Refresh::RefusedWithHeader),
        UnauthorizedCacheControl::SucceedWithoutResponseHeader => Ok(Refresh::No),
    }
}

fn timeout_of(ctx: &RouteCtx<'_>) -> Duration {
    let millis = match &ctx.route_table().integration {
        IntegrationTable::Http { timeout_millis, .. }
        | IntegrationTable::Lambda { timeout_millis, .. } => *timeout_millis,
        IntegrationTable::Mock { .. } => 1_000,
    };
    Duration::from_millis(u64::from(millis))
}

fn hit_response(entry: &Entry, refresh: Refresh) -> Response<Body> {
    let mut response = Response::new(full(entry.body.clone()));
    *response.status_mut() = entry.status;
    *response.headers_mut() = entry.headers.clone();
    with_cache_header(response, "Hit", refresh)
}

fn with_cache_header(
    mut response: Response<Body>,
    result: &'static str,
    refresh: Refresh,
) -> Response<Body> {
    let headers = response.headers_mut();
    headers.insert(X_CACHE, HeaderValue::from_static(result));
    if refresh == Refresh::RefusedWithHeader {
        headers.insert(X_CACHE_INVALIDATION, HeaderValue::from_static("refused"));
    }
    response
}

/// Keeps a cacheable answer (read whole, up to [`MAX_ITEM_BYTES`]) and gives it back with
/// the entry kept; any other passes on as it is (a body past the limit: what was read, then
/// the rest as it comes).
async fn keep(
    store: &Store,
    key: String,
    route: &RouteCacheTable,
    response: Response<Body>,
) -> (Response<Body>, Option<Arc<Entry>>) {
    if !cacheable(&response) {
        return (response, None);
    }
    let (parts, mut body) = response.into_parts();
    let mut frames = Vec::new();
    let mut size = 0;
    loop {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => {
                // Past the item limit, or trailers (an entry keeps no trailers): sent on, not kept.
                let data = frame.data_ref().map(Bytes::len);
                frames.push(frame);
                size += data.unwrap_or(0);
                if data.is_none() || size > MAX_ITEM_BYTES {
                    return (replayed(parts, frames, Some(body), None), None);
                }
            }
            // The body failed: the client gets what came, then the error; nothing is kept.
            Some(Err(e)) => return (replayed(parts, frames, None, Some(e)), None),
        }
    }
    let mut read = BytesMut::with_capacity(size);
    for frame in frames {
        if let Ok(data) = frame.into_data() {
            read.extend_from_slice(&data);
        }
    }
    let body = read.freeze();
    let mut headers = parts.headers.clone();
    headers.remove(CONNECTION);
    headers.remove(TRANSFER_ENCODING);
    let entry = Arc::new(Entry {
        status: parts.status,
        headers,
        body: body.clone(),
        ttl: Duration::from_secs(u64::from(route.ttl_seconds)),
    });
    store.insert_shared(key, entry.clone());
    (Response::from_parts(parts, full(body)), Some(entry))
}

/// 2xx, not `no-store` or `private`, and setting no cookie (one caller's session must not be
/// handed to the next).
fn cacheable(response: &Response<Body>) -> bool {
    response.status().is_success()
        && !response.headers().contains_key(http::header::SET_COOKIE)
        && !response
            .headers()
            .get_all(CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|d| d.trim().to_ascii_lowercase())
            .any(|d| d == "no-store" || d == "private" || d.starts_with("private="))
}

/// An answer whose start was read: what was read, then the error or the rest.
fn replayed(
    parts: http::response::Parts,
    frames: Vec<Frame<Bytes>>,
    rest: Option<Body>,
    error: Option<BoxError>,
) -> Response<Body> {
    Response::from_parts(parts, Replay::new(frames, rest, error).boxed())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, cache_control: Option<&str>) -> Response<Body> {
        let mut response = Response::new(full("x"));
        *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
        if let Some(v) = cache_control {
            response
                .headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_str(v).unwrap());
        }
        response
    }

    #[test]
    fn only_successful_answers_that_allow_a_shared_cache_are_kept() {
        assert!(cacheable(&answer(200, None)));
        assert!(cacheable(&answer(204, Some("max-age=60, public"))));
        // Amazon ignores no-cache (it only asks to revalidate); so does the stage cache.
        assert!(cacheable(&answer(200, Some("no-cache"))));
        assert!(!cacheable(&answer(200, Some("public, no-store"))));
        assert!(!cacheable(&answer(200, Some("Private"))));
        assert!(!cacheable(&answer(200, Some("private=\"set-cookie\""))));
        let mut with_cookie = answer(200, None);
        with_cookie.headers_mut().insert(
            http::header::SET_COOKIE,
            HeaderValue::from_static("session=abc"),
        );
        assert!(!cacheable(&with_cookie));
        assert!(!cacheable(&answer(404, None)));
        assert!(!cacheable(&answer(500, None)));
        assert!(!cacheable(&answer(302, None)));
    }

    #[tokio::test]
    async fn an_answer_past_the_item_limit_is_passed_on_whole_and_not_kept() {
        let store = Store::new(64 * 1024 * 1024);
        let route = RouteCacheTable {
            ttl_seconds: 60,
            key_parameters: Vec::new(),
        };
        let big = vec![b'a'; MAX_ITEM_BYTES + 10];
        let response = Response::new(full(big.clone()));
        let (passed, kept) = keep(&store, "GET /big".into(), &route, response).await;
        assert!(kept.is_none());
        let body = passed.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body.len(), big.len());
        assert!(store.get("GET /big").is_none());

        let response = Response::new(full("small"));
        keep(&store, "GET /small".into(), &route, response).await;
        assert_eq!(store.get("GET /small").unwrap().body, "small");
    }
}
