//! The authorizer phase for routes that name one.
//!
//! As Amazon API Gateway, a request missing any of the authorizer's identity sources gets 401
//! `Unauthorized` without the authorizer being consulted. Verifying the identity itself (JWT
//! signatures and claims, custom authorizers) is not in this version of the proxy: a request
//! that has its identity sources fails closed with 500 (AUTHORIZER_CONFIGURATION_ERROR) and
//! is never passed to the integration unauthenticated.

use std::collections::BTreeMap;

use hyper::HeaderMap;
use tollgate_crds::resources::AuthorizerType;
use tollgate_crds::table::GatewayTable;

use crate::errors::GatewayError;

pub fn check(
    authorizer: &str,
    gateway: &GatewayTable,
    headers: &HeaderMap,
    query: &str,
    stage_variables: &BTreeMap<String, String>,
) -> Result<(), GatewayError> {
    let Some(table) = gateway.authorizers.iter().find(|a| a.name == authorizer) else {
        return Err(GatewayError::AuthorizerConfiguration(format!(
            "authorizer {authorizer:?} is not in the table"
        )));
    };
    for source in &table.identity_sources {
        if !present(source, headers, query, stage_variables) {
            return Err(GatewayError::Unauthorized);
        }
    }
    if table.type_ == AuthorizerType::JWT {
        let token = table
            .identity_sources
            .first()
            .and_then(|s| s.strip_prefix("$request.header."))
            .and_then(|name| headers.get(name)?.to_str().ok())
            .unwrap_or("");
        if !looks_like_jwt(token) {
            return Err(GatewayError::Unauthorized);
        }
    }
    Err(GatewayError::AuthorizerConfiguration(format!(
        "{:?} authorizer {authorizer:?}: this proxy version does not verify identities yet; refusing the request",
        table.type_
    )))
}

fn present(
    source: &str,
    headers: &HeaderMap,
    query: &str,
    stage_variables: &BTreeMap<String, String>,
) -> bool {
    if let Some(name) = source.strip_prefix("$request.header.") {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| !v.trim().is_empty())
    } else if let Some(name) = source.strip_prefix("$request.querystring.") {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
            .any(|(k, v)| k == name && !v.is_empty())
    } else if let Some(name) = source.strip_prefix("$stageVariables.") {
        stage_variables.get(name).is_some_and(|v| !v.is_empty())
    } else {
        false
    }
}

/// Three non-empty base64url segments, optionally after `Bearer `: the shape of a JWS compact
/// serialization. Anything else is refused with 401 before any key is looked at.
fn looks_like_jwt(value: &str) -> bool {
    let token = value.strip_prefix("Bearer ").unwrap_or(value).trim();
    let segments: Vec<&str> = token.split('.').collect();
    segments.len() == 3
        && segments.iter().all(|s| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::looks_like_jwt;

    #[test]
    fn only_jws_compact_tokens_look_like_jwts() {
        assert!(looks_like_jwt("Bearer eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl"));
        assert!(looks_like_jwt("eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl"));
        for bad in [
            "",
            "Bearer not-a-jwt",
            "a.b",
            "a..c",
            "a.b.c.d",
            "a.b.c d",
            "a+b.c.d",
        ] {
            assert!(!looks_like_jwt(bad), "{bad}");
        }
    }
}
