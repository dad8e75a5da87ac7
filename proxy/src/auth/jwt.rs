//! JWT authorizers: verify a bearer token against the issuer's JWKS.

use tollgate_crds::table::JwtTable;

use super::Identity;
use crate::client::HttpClient;
use crate::errors::GatewayError;

/// Signing keys fetched per JWKS URL.
#[derive(Default)]
pub struct JwksCache {}

/// Verifies `token` (the identity source's value, `Bearer ` optional).
pub async fn verify(
    _cache: &JwksCache,
    _client: &HttpClient,
    _table: &JwtTable,
    token: &str,
    _required_scopes: &[String],
) -> Result<Identity, GatewayError> {
    let token = token.strip_prefix("Bearer ").unwrap_or(token).trim();
    if token.split('.').count() != 3 {
        return Err(GatewayError::InvalidToken("not a JWS compact token".into()));
    }
    Err(GatewayError::AuthorizerConfiguration(
        "JWT verification is not built yet; refusing the request".into(),
    ))
}
