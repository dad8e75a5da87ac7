//! The stage cache: a REST API stage's cache settings checked, and each route's caching on
//! each stage resolved (Amazon's default: `GET` routes cache; a route's own `enabled` and
//! `ttlSeconds` win; a time to live of 0 caches nothing).

use super::diagnostics::{Diagnostic, Reason};
use super::validate;
use crate::resources::{self, ApiProtocol, HttpMethod, RouteCache, StageCache};
use crate::table::{
    CacheKeyParameter, ParameterLocation, RouteCacheTable, StageCacheTable, StageTable,
    UnauthorizedCacheControl,
};

pub const MAX_TTL_SECONDS: u32 = 3600;
pub const MIN_CAPACITY_BYTES: u64 = 1024 * 1024;
pub const MAX_CAPACITY_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// A stage's cache; `None` when it is off or cannot be served (skipped and named).
pub(super) fn stage(
    cache: &StageCache,
    protocol: ApiProtocol,
    field: &str,
    diag: &mut Diagnostic,
) -> Option<StageCacheTable> {
    if protocol != ApiProtocol::REST {
        diag.skip(
            Reason::ProtocolMismatch,
            field,
            "the stage cache is for REST APIs: remove it",
        );
        return None;
    }
    if !cache.enabled {
        return None;
    }
    if cache.ttl_seconds > MAX_TTL_SECONDS {
        diag.skip(
            Reason::InvalidStage,
            format!("{field}.ttlSeconds"),
            format!("ttlSeconds is 0 to {MAX_TTL_SECONDS}; the stage does not cache"),
        );
        return None;
    }
    if !(MIN_CAPACITY_BYTES..=MAX_CAPACITY_BYTES).contains(&cache.capacity_bytes) {
        diag.skip(
            Reason::InvalidStage,
            format!("{field}.capacityBytes"),
            "capacityBytes is 1 MiB to 4 GiB; the stage does not cache",
        );
        return None;
    }
    Some(StageCacheTable {
        capacity_bytes: cache.capacity_bytes,
        ttl_seconds: cache.ttl_seconds,
        require_authorization: cache.require_authorization_for_cache_control,
        unauthorized: match cache.unauthorized_cache_control_header_strategy {
            resources::UnauthorizedCacheControl::FailWith403 => {
                UnauthorizedCacheControl::FailWith403
            }
            resources::UnauthorizedCacheControl::SucceedWithResponseHeader => {
                UnauthorizedCacheControl::SucceedWithResponseHeader
            }
            resources::UnauthorizedCacheControl::SucceedWithoutResponseHeader => {
                UnauthorizedCacheControl::SucceedWithoutResponseHeader
            }
        },
    })
}

/// A route's cache settings, checked once: its key parameters; `Err` once the route is
/// rejected.
pub(super) fn key_parameters(
    cache: Option<&RouteCache>,
    rest_api: bool,
    diag: &mut Diagnostic,
) -> Result<Vec<CacheKeyParameter>, ()> {
    let Some(cache) = cache else {
        return Ok(Vec::new());
    };
    if !rest_api {
        diag.reject(
            Reason::ProtocolMismatch,
            "spec.cache",
            "the stage cache is for REST APIs: remove spec.cache",
        );
        return Err(());
    }
    if cache.ttl_seconds.is_some_and(|t| t > MAX_TTL_SECONDS) {
        diag.reject(
            Reason::InvalidRouteCache,
            "spec.cache.ttlSeconds",
            format!("ttlSeconds is 0 to {MAX_TTL_SECONDS}"),
        );
        return Err(());
    }
    let mut out = Vec::new();
    for (i, key) in cache.key_parameters.iter().enumerate() {
        let field = format!("spec.cache.keyParameters[{i}]");
        let parsed = if let Some(name) = key.strip_prefix("method.request.querystring.") {
            (!name.is_empty()).then(|| CacheKeyParameter {
                location: ParameterLocation::Querystring,
                name: name.to_owned(),
            })
        } else if let Some(name) = key.strip_prefix("method.request.header.") {
            validate::header_name(name)
                .ok()
                .map(|()| CacheKeyParameter {
                    location: ParameterLocation::Header,
                    name: name.to_ascii_lowercase(),
                })
        } else {
            None
        };
        match parsed {
            Some(p) => out.push(p),
            None => diag.reject(
                Reason::InvalidRouteCache,
                field,
                format!(
                    "{key:?} is not a cache key parameter: method.request.querystring.NAME or method.request.header.NAME (the path is always in the key)"
                ),
            ),
        }
    }
    if diag.accepted { Ok(out) } else { Err(()) }
}

/// How a route caches on one stage, given its method and settings.
pub(super) fn on_stage(
    stage: &StageTable,
    method: Option<HttpMethod>,
    cache: Option<&RouteCache>,
    key_parameters: &[CacheKeyParameter],
) -> Option<RouteCacheTable> {
    let stage_cache = stage.cache.as_ref()?;
    let enabled = cache
        .and_then(|c| c.enabled)
        .unwrap_or(method == Some(HttpMethod::GET));
    let ttl_seconds = cache
        .and_then(|c| c.ttl_seconds)
        .unwrap_or(stage_cache.ttl_seconds);
    (enabled && ttl_seconds > 0).then(|| RouteCacheTable {
        ttl_seconds,
        key_parameters: key_parameters.to_vec(),
    })
}
