//! The API key phase: a route with `apiKeyRequired` needs a key bound to a usage plan of the
//! stage, sent in `x-api-key`. Keys are compared by SHA-256; the value is never logged.

use hyper::HeaderMap;
use tollgate_crds::table::hash_api_key;

use crate::dispatch::{KeyBinding, ServedStage};
use crate::errors::GatewayError;

pub const HEADER: &str = "x-api-key";

/// The binding of the request's key, or 403 `Forbidden` for a missing, unknown or disabled one.
pub fn check<'a>(
    headers: &HeaderMap,
    stage: &'a ServedStage,
) -> Result<&'a KeyBinding, GatewayError> {
    let value = headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or(GatewayError::Forbidden("missing API key"))?;
    let binding = stage
        .key(&hash_api_key(value))
        .ok_or(GatewayError::Forbidden("invalid API key"))?;
    if !binding.enabled {
        return Err(GatewayError::Forbidden("disabled API key"));
    }
    Ok(binding)
}
