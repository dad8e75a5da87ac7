//! The API key phase: a route with `apiKeyRequired` needs a key bound to a usage plan of the
//! stage, sent in `x-api-key` or given by the authorizer as its usage identifier. Keys are compared by SHA-256; the value is never logged.

use hyper::HeaderMap;
use tollgate_crds::table::ApiKeySource;
use tollgate_crds::table::hash_api_key;

use crate::dispatch::{KeyBinding, ServedStage};
use crate::errors::GatewayError;
use crate::request_ctx::RouteCtx;

pub const HEADER: &str = "x-api-key";

/// The request's key binding when its route requires a key (`None` when it does not): the
/// key comes from the header or the authorizer, as the gateway's `apiKeySource` says.
pub fn binding<'a>(ctx: &RouteCtx<'a>) -> Result<Option<&'a KeyBinding>, GatewayError> {
    if !ctx.route_table().api_key_required {
        return Ok(None);
    }
    let presented = match ctx.gateway().api_key_source {
        ApiKeySource::HEADER => from_header(&ctx.parts.headers),
        ApiKeySource::AUTHORIZER => ctx.identity.usage_identifier_key.as_deref(),
    };
    check(presented, ctx.request.target.stage).map(Some)
}

/// The key a client sent in `x-api-key` (`apiKeySource: HEADER`).
pub fn from_header(headers: &HeaderMap) -> Option<&str> {
    headers.get(HEADER).and_then(|v| v.to_str().ok())
}

/// The binding of the presented key (from the header, or an authorizer's usage identifier),
/// or 403 `Forbidden` for a missing, unknown or disabled one.
pub fn check<'a>(
    presented: Option<&str>,
    stage: &'a ServedStage,
) -> Result<&'a KeyBinding, GatewayError> {
    let value = presented.ok_or(GatewayError::Forbidden("missing API key"))?;
    let binding = stage
        .key(&hash_api_key(value))
        .ok_or(GatewayError::Forbidden("invalid API key"))?;
    if !binding.enabled {
        return Err(GatewayError::Forbidden("disabled API key"));
    }
    Ok(binding)
}
