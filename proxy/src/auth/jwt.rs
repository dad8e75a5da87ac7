//! JWT authorizers: verify a bearer token against the issuer's JWKS.
//!
//! A token passes, as with Amazon API Gateway's HTTP API JWT authorizers, when:
//! - it is a JWS compact token, sent with or without a `Bearer ` prefix;
//! - its header names `alg` RS256, ES256 or EdDSA (never `none` nor an HMAC) and a `kid` that
//!   is a key of the issuer's JWKS of the matching type (RSA of 2,048 bits or more, EC P-256,
//!   OKP Ed25519; a key that declares another `alg` or a `use` other than `sig` is ignored);
//! - the signature verifies with that key;
//! - `iss` equals the issuer; `aud` holds one of the audiences (`client_id` stands in when
//!   there is no `aud`, as in Cognito access tokens);
//! - `exp` is there and not past, and `nbf` and `iat`, when there, are not in the future, each
//!   with [`LEEWAY_SECONDS`] (30 s) of tolerance for clock skew between issuer and proxy;
//! - when the route names `authorizationScopes`, the token's `scope` (space-separated) or
//!   `scp` (array or string) holds AT LEAST ONE of them (Amazon's rule, not all of them).
//!
//! The identity it yields has `sub` as principal, every claim of the payload, and all of the
//! token's scopes (not only those the route asks for).
//!
//! A token that fails gets 401 `Unauthorized` (the reason goes to the log only), a missing
//! scope 403 `Forbidden`. The keys come from [`JwksCache`]: when none can be had for the
//! issuer (never fetched, unreachable, or not a key set), the request gets 500 with a null
//! message, as an authorizer configuration error; once a key set is cached, an issuer outage
//! only means unknown `kid`s get 401 while the known keys go on working.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hyper::Request;
use hyper::header::ACCEPT;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::MutexGuard;
use tollgate_crds::table::JwtTable;

use super::Identity;
use super::identity::JwtIdentity;
use super::verified::VerifiedTokens;
use crate::errors::{GatewayError, error_chain};
use crate::upstream::{Deadline, Kind, Outbound, Payload, Upstream, UpstreamError};

/// How long fetching a JWKS may take, connection and body included.
pub const FETCH_TIMEOUT: Duration = Duration::from_millis(1_500);
/// The largest JWKS document read.
pub const MAX_JWKS_BYTES: usize = 150_000;
/// A JWKS URL is fetched at most once per this interval, whatever the tokens say: a flood of
/// tokens with made-up `kid`s costs the issuer one request every few seconds.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(5);
/// A key set older than this is fetched again on the next token, so a key the issuer
/// withdraws stops being accepted; while the issuer cannot be reached, the old set serves.
pub const MAX_KEY_SET_AGE: Duration = Duration::from_secs(600);
/// Tolerance for `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECONDS: f64 = 30.0;
/// RSA keys with a shorter modulus are ignored.
const MIN_RSA_BITS: usize = 2048;

/// Verifies `token` (the identity source's value, `Bearer ` optional). The identity of a
/// token verified in the last [`VERIFIED_TTL`](super::verified::VERIFIED_TTL) is reused: no
/// signature check, no copy; its claims are checked again on every request.
pub async fn verify(
    cache: &JwksCache,
    client: &Upstream,
    table: &JwtTable,
    token: &str,
    required_scopes: &[String],
) -> Result<Arc<Identity>, GatewayError> {
    let token = strip_bearer(token);
    let (identity, just_verified) = match cache.verified.get(&table.jwks_uri, token) {
        Some(identity) => (identity, false),
        None => {
            let claims = verified_claims(cache, client, table, token).await?;
            (Arc::new(identity_of(claims)), true)
        }
    };
    let jwt = identity.jwt.as_ref().ok_or_else(|| {
        GatewayError::AuthorizerConfiguration("a verified token without claims".into())
    })?;
    // Checked on every request, signature cached or not: the token may have expired since.
    check_claims(&jwt.claims, table, unix_now())?;
    if !grants(&jwt.scopes, required_scopes) {
        return Err(GatewayError::Forbidden("missing scope"));
    }
    if just_verified {
        cache.verified.insert(&table.jwks_uri, token, &identity);
    }
    Ok(identity)
}

/// The identity a token's claims give: `sub` as the principal, its scopes.
fn identity_of(claims: Map<String, Value>) -> Identity {
    let scopes = token_scopes(&claims);
    let principal = claims
        .get("sub")
        .and_then(Value::as_str)
        .map(str::to_string);
    Identity::new(
        principal,
        Some(JwtIdentity { claims, scopes }),
        Map::new(),
        None,
    )
}

/// The claims of a token whose signature checks out against the issuer's key.
async fn verified_claims(
    cache: &JwksCache,
    client: &Upstream,
    table: &JwtTable,
    token: &str,
) -> Result<Map<String, Value>, GatewayError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| Invalid::Malformed)?;
    let algorithm = accepted_algorithm(header.alg)?;
    let kid = header.kid.ok_or(Invalid::NoKid)?;
    let key = cache
        .key(client, &table.jwks_uri, &kid)
        .await
        .map_err(|e| match e {
            KeyError::UnknownKid => GatewayError::from(Invalid::UnknownKid),
            KeyError::Unavailable(e) => {
                GatewayError::AuthorizerConfiguration(format!("JWKS {}: {e}", table.jwks_uri))
            }
        })?;
    if key.algorithm != algorithm {
        return Err(Invalid::KeyMismatch.into());
    }
    Ok(verify_signature(token, &key)?)
}

/// Why a token is refused with 401; the text goes to the log, never to the client.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
enum Invalid {
    #[error("not a JWS compact token")]
    Malformed,
    #[error("algorithm {0:?} is not accepted (RS256, ES256 and EdDSA are)")]
    Algorithm(Algorithm),
    #[error("no kid in the token header")]
    NoKid,
    #[error("the issuer's JWKS has no usable key with the token's kid")]
    UnknownKid,
    #[error("the token's algorithm does not fit the key its kid names")]
    KeyMismatch,
    #[error("bad signature")]
    Signature,
    #[error("the payload is not a JSON object")]
    Payload,
    #[error("no {0} claim")]
    MissingClaim(&'static str),
    #[error("the {0} claim is not a number")]
    NotANumber(&'static str),
    #[error("expired")]
    Expired,
    #[error("not valid yet (nbf)")]
    NotYetValid,
    #[error("issued in the future (iat)")]
    IssuedInTheFuture,
    #[error("wrong issuer")]
    Issuer,
    #[error("no accepted audience in aud or client_id")]
    Audience,
}

impl From<Invalid> for GatewayError {
    fn from(invalid: Invalid) -> Self {
        GatewayError::InvalidToken(invalid.to_string())
    }
}

/// The token without a `Bearer ` prefix (any case) and surrounding blanks.
fn strip_bearer(value: &str) -> &str {
    let value = value.trim();
    match value.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("bearer ") => value[7..].trim_start(),
        _ => value,
    }
}

fn accepted_algorithm(algorithm: Algorithm) -> Result<Algorithm, Invalid> {
    match algorithm {
        Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA => Ok(algorithm),
        other => Err(Invalid::Algorithm(other)),
    }
}

/// Checks the signature only; the claims are checked by [`check_claims`] with API Gateway's
/// rules.
fn verify_signature(token: &str, key: &VerifyKey) -> Result<Map<String, Value>, Invalid> {
    let mut validation = Validation::new(key.algorithm);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
        .map(|data| data.claims)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => Invalid::Signature,
            jsonwebtoken::errors::ErrorKind::Json(_) => Invalid::Payload,
            _ => Invalid::Malformed,
        })
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `iss`, `aud` (or `client_id`), `exp`, `nbf` and `iat` at `now` (Unix seconds).
fn check_claims(claims: &Map<String, Value>, table: &JwtTable, now: f64) -> Result<(), Invalid> {
    match claims.get("iss") {
        Some(Value::String(iss)) if *iss == table.issuer => {}
        Some(_) => return Err(Invalid::Issuer),
        None => return Err(Invalid::MissingClaim("iss")),
    }
    check_audience(claims, &table.audiences)?;
    let exp = numeric_date(claims, "exp")?.ok_or(Invalid::MissingClaim("exp"))?;
    if now >= exp + LEEWAY_SECONDS {
        return Err(Invalid::Expired);
    }
    if numeric_date(claims, "nbf")?.is_some_and(|nbf| nbf > now + LEEWAY_SECONDS) {
        return Err(Invalid::NotYetValid);
    }
    if numeric_date(claims, "iat")?.is_some_and(|iat| iat > now + LEEWAY_SECONDS) {
        return Err(Invalid::IssuedInTheFuture);
    }
    Ok(())
}

/// `aud` (a string or an array of strings) must hold one of `audiences`; a token without `aud`
/// is judged by `client_id` instead.
fn check_audience(claims: &Map<String, Value>, audiences: &[String]) -> Result<(), Invalid> {
    let accepted = |v: &Value| v.as_str().is_some_and(|a| audiences.iter().any(|x| x == a));
    let ok = match claims.get("aud") {
        Some(Value::Array(values)) => values.iter().any(accepted),
        Some(value) => accepted(value),
        None => claims.get("client_id").is_some_and(accepted),
    };
    if ok { Ok(()) } else { Err(Invalid::Audience) }
}

/// A NumericDate claim: absent, or a JSON number (a string is refused, not ignored).
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<f64>, Invalid> {
    claims
        .get(name)
        .map(|v| v.as_f64().ok_or(Invalid::NotANumber(name)))
        .transpose()
}

/// The token's scopes: `scope` then `scp`, each a space-separated string or an array of
/// strings, without repeats.
fn token_scopes(claims: &Map<String, Value>) -> Vec<String> {
    let mut scopes: Vec<String> = Vec::new();
    for name in ["scope", "scp"] {
        let words: Vec<&str> = match claims.get(name) {
            Some(Value::String(s)) => s.split_whitespace().collect(),
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => continue,
        };
        for word in words {
            if !scopes.iter().any(|s| s == word) {
                scopes.push(word.to_string());
            }
        }
    }
    scopes
}

/// A route without scopes admits every valid token; one with scopes, a token holding at least
/// one of them.
fn grants(scopes: &[String], required: &[String]) -> bool {
    required.is_empty() || required.iter().any(|r| scopes.contains(r))
}

// === impl JwksCache ===

/// Signing keys fetched per JWKS URL. Lookups of a known `kid` take no lock held across an
/// await; fetches of one URL are one at a time, no more often than [`REFETCH_INTERVAL`].
pub struct JwksCache {
    sources: Mutex<HashMap<String, Arc<Source>>>,
    /// Tokens whose signature was checked recently.
    verified: VerifiedTokens,
    refetch_interval: Duration,
    max_age: Duration,
}

impl Default for JwksCache {
    fn default() -> Self {
        Self::with_intervals(REFETCH_INTERVAL, MAX_KEY_SET_AGE)
    }
}

/// Why no key could be had for a `kid`.
#[derive(Debug)]
enum KeyError {
    /// The (cached or just fetched) key set has no usable key with that `kid`.
    UnknownKid,
    /// There is no key set at all.
    Unavailable(JwksError),
}

/// Why fetching a JWKS failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
enum JwksError {
    #[error("no answer within {} ms", FETCH_TIMEOUT.as_millis())]
    Timeout,
    #[error("request failed: {0}")]
    Request(String),
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("not a JSON key set: {0}")]
    Malformed(String),
    #[error("no key set fetched yet")]
    NotFetched,
}

/// One JWKS URL: its last good key set and its fetch history.
#[derive(Default)]
struct Source {
    keys: RwLock<Option<Arc<KeySet>>>,
    fetches: tokio::sync::Mutex<Fetches>,
}

#[derive(Default)]
struct Fetches {
    last: Option<Instant>,
    failure: Option<JwksError>,
}

struct KeySet {
    fetched_at: Instant,
    keys: HashMap<String, Arc<VerifyKey>>,
}

/// A usable key and the one algorithm it verifies.
#[derive(Debug)]
struct VerifyKey {
    algorithm: Algorithm,
    key: DecodingKey,
}

impl JwksCache {
    fn with_intervals(refetch_interval: Duration, max_age: Duration) -> Self {
        Self {
            sources: Mutex::default(),
            verified: VerifiedTokens::default(),
            refetch_interval,
            max_age,
        }
    }

    fn source(&self, uri: &str) -> Arc<Source> {
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        sources.entry(uri.to_string()).or_default().clone()
    }

    /// The key `kid` of the JWKS at `uri`, fetching the set when it is not cached, is older
    /// than the maximum age, or lacks `kid`.
    async fn key(
        &self,
        client: &Upstream,
        uri: &str,
        kid: &str,
    ) -> Result<Arc<VerifyKey>, KeyError> {
        let source = self.source(uri);
        if let Some(set) = source.current() {
            match set.keys.get(kid) {
                Some(key) if set.fetched_at.elapsed() < self.max_age => return Ok(key.clone()),
                // Stale: one request refreshes the set, the others go on with the key.
                Some(key) => match source.fetches.try_lock() {
                    Ok(fetches) => return self.refresh(&source, fetches, client, uri, kid).await,
                    Err(_) => return Ok(key.clone()),
                },
                None => {}
            }
        }
        let fetches = source.fetches.lock().await;
        self.refresh(&source, fetches, client, uri, kid).await
    }

    /// Fetches the set unless the last try is too recent, then looks `kid` up in the newest
    /// set there is.
    async fn refresh(
        &self,
        source: &Source,
        mut fetches: MutexGuard<'_, Fetches>,
        client: &Upstream,
        uri: &str,
        kid: &str,
    ) -> Result<Arc<VerifyKey>, KeyError> {
        let now = Instant::now();
        let recent = fetches
            .last
            .is_some_and(|last| now.duration_since(last) < self.refetch_interval);
        if !recent {
            fetches.last = Some(now);
            match fetch(client, uri).await {
                Ok(keys) => {
                    tracing::info!(jwks_uri = %uri, keys = keys.len(), "fetched the JWKS");
                    let set = KeySet {
                        fetched_at: Instant::now(),
                        keys,
                    };
                    *source.keys.write().unwrap_or_else(PoisonError::into_inner) =
                        Some(Arc::new(set));
                    fetches.failure = None;
                }
                Err(error) => {
                    tracing::warn!(jwks_uri = %uri, %error, "fetching the JWKS failed");
                    fetches.failure = Some(error);
                }
            }
        }
        match source.current() {
            Some(set) => set.keys.get(kid).cloned().ok_or(KeyError::UnknownKid),
            None => Err(KeyError::Unavailable(
                fetches.failure.clone().unwrap_or(JwksError::NotFetched),
            )),
        }
    }
}

impl Source {
    fn current(&self) -> Option<Arc<KeySet>> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// GETs the JWKS, bounded in time and size, and keeps its usable keys.
async fn fetch(
    upstream: &Upstream,
    uri: &str,
) -> Result<HashMap<String, Arc<VerifyKey>>, JwksError> {
    // The JWK Set media type first: Kubernetes' `/openid/v1/jwks` answers nothing else (406).
    let request = Request::get(uri)
        .header(ACCEPT, "application/jwk-set+json, application/json")
        .body(Payload::Empty)
        .map_err(|e| JwksError::Request(e.to_string()))?;
    // Fetched once for every request that needs the set: no request id.
    let call = Outbound {
        kind: Kind::Jwks,
        request_id: None,
        deadline: Deadline::after(FETCH_TIMEOUT),
        trace: None,
    };
    let reply = upstream
        .fetch(call, request, MAX_JWKS_BYTES)
        .await
        .map_err(|e| match e {
            UpstreamError::Timeout(_) => JwksError::Timeout,
            UpstreamError::TooLarge(_) => JwksError::TooLarge,
            other => JwksError::Request(error_chain(&other)),
        })?;
    if !reply.status.is_success() {
        return Err(JwksError::Status(reply.status.as_u16()));
    }
    parse_jwks(&reply.body, uri)
}

#[derive(Deserialize)]
struct RawKeySet {
    keys: Vec<Value>,
}

/// The usable keys of a JWKS document by `kid`; a key that is not usable is skipped (and
/// logged), the first of two keys with one `kid` wins.
fn parse_jwks(body: &[u8], uri: &str) -> Result<HashMap<String, Arc<VerifyKey>>, JwksError> {
    let raw: RawKeySet =
        serde_json::from_slice(body).map_err(|e| JwksError::Malformed(e.to_string()))?;
    let mut keys = HashMap::new();
    for value in raw.keys {
        let kid = value.get("kid").and_then(Value::as_str).map(str::to_string);
        match usable_key(value) {
            Ok((kid, key)) => {
                keys.entry(kid).or_insert_with(|| Arc::new(key));
            }
            Err(reason) => {
                tracing::warn!(jwks_uri = %uri, kid = ?kid, %reason, "skipping a JWKS key");
            }
        }
    }
    Ok(keys)
}

/// Why a key of the set is not used.
#[derive(Debug, PartialEq, thiserror::Error)]
enum Skip {
    #[error("not a JWK this proxy can read")]
    Malformed,
    #[error("no kid")]
    NoKid,
    #[error("not a signature key (use)")]
    NotForSignatures,
    #[error("RSA modulus shorter than {MIN_RSA_BITS} bits")]
    WeakRsa,
    #[error("coordinates of the wrong length for the curve")]
    BadCoordinates,
    #[error("a key type or curve other than RSA, EC P-256 and OKP Ed25519")]
    Unsupported,
    #[error("its alg is not the one its type verifies here")]
    AlgorithmMismatch,
}

fn usable_key(value: Value) -> Result<(String, VerifyKey), Skip> {
    let jwk: Jwk = serde_json::from_value(value).map_err(|_| Skip::Malformed)?;
    let kid = jwk.common.key_id.clone().ok_or(Skip::NoKid)?;
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return Err(Skip::NotForSignatures);
    }
    let algorithm = match &jwk.algorithm {
        AlgorithmParameters::RSA(p) => {
            let n = decoded(&p.n)?;
            let leading_zeros = n.iter().take_while(|b| **b == 0).count();
            if (n.len() - leading_zeros) * 8 < MIN_RSA_BITS {
                return Err(Skip::WeakRsa);
            }
            Algorithm::RS256
        }
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
            if decoded(&p.x)?.len() != 32 || decoded(&p.y)?.len() != 32 {
                return Err(Skip::BadCoordinates);
            }
            Algorithm::ES256
        }
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            if decoded(&p.x)?.len() != 32 {
                return Err(Skip::BadCoordinates);
            }
            Algorithm::EdDSA
        }
        _ => return Err(Skip::Unsupported),
    };
    if jwk
        .common
        .key_algorithm
        .is_some_and(|declared| declared != KeyAlgorithm::from(algorithm))
    {
        return Err(Skip::AlgorithmMismatch);
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| Skip::Malformed)?;
    Ok((kid, VerifyKey { algorithm, key }))
}

fn decoded(b64: &str) -> Result<Vec<u8>, Skip> {
    URL_SAFE_NO_PAD.decode(b64).map_err(|_| Skip::Malformed)
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use hyper::Response;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use serde_json::json;

    use super::*;

    const NOW: f64 = 1_800_000_000.0;

    fn table() -> JwtTable {
        JwtTable {
            issuer: "https://issuer.example".into(),
            audiences: vec!["pets".into(), "stores".into()],
            jwks_uri: "https://issuer.example/.well-known/jwks.json".into(),
        }
    }

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("an object")
    }

    fn good() -> Map<String, Value> {
        claims(json!({
            "iss": "https://issuer.example",
            "aud": "pets",
            "sub": "user-1",
            "exp": NOW + 300.0,
            "nbf": NOW - 10.0,
            "iat": NOW - 10.0,
        }))
    }

    fn with(key: &str, value: Value) -> Map<String, Value> {
        let mut c = good();
        c.insert(key.into(), value);
        c
    }

    fn without(key: &str) -> Map<String, Value> {
        let mut c = good();
        c.remove(key);
        c
    }

    #[test]
    fn the_bearer_prefix_is_optional() {
        assert_eq!(strip_bearer("Bearer a.b.c"), "a.b.c");
        assert_eq!(strip_bearer("bearer  a.b.c "), "a.b.c");
        assert_eq!(strip_bearer("BEARER a.b.c"), "a.b.c");
        assert_eq!(strip_bearer("a.b.c"), "a.b.c");
        assert_eq!(strip_bearer("Bearer"), "Bearer");
        assert_eq!(strip_bearer("Bearera.b.c"), "Bearera.b.c");
    }

    #[test]
    fn only_rs256_es256_and_eddsa_are_accepted() {
        for ok in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
            assert_eq!(accepted_algorithm(ok), Ok(ok));
        }
        for refused in [
            Algorithm::HS256,
            Algorithm::HS512,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::ES384,
        ] {
            assert_eq!(
                accepted_algorithm(refused),
                Err(Invalid::Algorithm(refused))
            );
        }
    }

    #[test]
    fn claims_are_checked_with_thirty_seconds_of_leeway() {
        let t = table();
        assert_eq!(check_claims(&good(), &t, NOW), Ok(()));
        for (what, c, expected) in [
            (
                "expired within the leeway",
                with("exp", json!(NOW - 20.0)),
                Ok(()),
            ),
            (
                "expired beyond the leeway",
                with("exp", json!(NOW - 31.0)),
                Err(Invalid::Expired),
            ),
            (
                "exp exactly at the end of the leeway",
                with("exp", json!(NOW - 30.0)),
                Err(Invalid::Expired),
            ),
            ("a fractional exp", with("exp", json!(NOW + 0.5)), Ok(())),
            ("no exp", without("exp"), Err(Invalid::MissingClaim("exp"))),
            (
                "exp as a string",
                with("exp", json!("9999999999")),
                Err(Invalid::NotANumber("exp")),
            ),
            (
                "nbf within the leeway",
                with("nbf", json!(NOW + 20.0)),
                Ok(()),
            ),
            (
                "nbf in the future",
                with("nbf", json!(NOW + 31.0)),
                Err(Invalid::NotYetValid),
            ),
            (
                "nbf as a string",
                with("nbf", json!("99999999999")),
                Err(Invalid::NotANumber("nbf")),
            ),
            ("no nbf", without("nbf"), Ok(())),
            (
                "iat in the future",
                with("iat", json!(NOW + 120.0)),
                Err(Invalid::IssuedInTheFuture),
            ),
            ("no iat", without("iat"), Ok(())),
            (
                "another issuer",
                with("iss", json!("https://evil.example")),
                Err(Invalid::Issuer),
            ),
            (
                "the issuer with a trailing slash",
                with("iss", json!("https://issuer.example/")),
                Err(Invalid::Issuer),
            ),
            (
                "the issuer in an array",
                with("iss", json!(["https://issuer.example"])),
                Err(Invalid::Issuer),
            ),
            (
                "no issuer",
                without("iss"),
                Err(Invalid::MissingClaim("iss")),
            ),
        ] {
            assert_eq!(check_claims(&c, &t, NOW), expected, "{what}");
        }
    }

    #[test]
    fn aud_must_hold_one_audience_and_client_id_stands_in_only_without_aud() {
        let t = table();
        for (what, c, ok) in [
            ("aud a string", with("aud", json!("stores")), true),
            ("aud an array", with("aud", json!(["other", "pets"])), true),
            ("aud another", with("aud", json!("other")), false),
            (
                "aud an array of others",
                with("aud", json!(["a", "b"])),
                false,
            ),
            ("aud empty", with("aud", json!([])), false),
            ("aud a number", with("aud", json!(7)), false),
            ("no aud and no client_id", without("aud"), false),
            (
                "client_id without aud",
                {
                    let mut c = without("aud");
                    c.insert("client_id".into(), json!("pets"));
                    c
                },
                true,
            ),
            (
                "client_id does not rescue a wrong aud",
                {
                    let mut c = with("aud", json!("other"));
                    c.insert("client_id".into(), json!("pets"));
                    c
                },
                false,
            ),
        ] {
            let expected = if ok { Ok(()) } else { Err(Invalid::Audience) };
            assert_eq!(check_claims(&c, &t, NOW), expected, "{what}");
        }
    }

    #[test]
    fn scopes_come_from_scope_and_scp_and_one_required_scope_is_enough() {
        let c = claims(json!({"scope": "read  write", "scp": ["write", "admin"]}));
        assert_eq!(token_scopes(&c), ["read", "write", "admin"]);
        assert_eq!(token_scopes(&claims(json!({"scp": "a b"}))), ["a", "b"]);
        assert_eq!(
            token_scopes(&claims(json!({"scope": ["a", 3, "b"]}))),
            ["a", "b"]
        );
        assert!(token_scopes(&claims(json!({"scope": 3}))).is_empty());

        let has = |scopes: &[&str], required: &[&str]| {
            let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
            let required: Vec<String> = required.iter().map(|s| s.to_string()).collect();
            grants(&scopes, &required)
        };
        assert!(has(&[], &[]), "a route without scopes admits any token");
        assert!(has(&["read"], &[]));
        assert!(has(&["read"], &["write", "read"]), "one of them is enough");
        assert!(!has(&["read"], &["write", "admin"]));
        assert!(!has(&[], &["read"]));
        assert!(!has(&["Read"], &["read"]), "scopes are case-sensitive");
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn rsa_jwk(kid: &str, modulus_bytes: usize) -> Value {
        let mut n = vec![0xc5; modulus_bytes];
        n.insert(0, 0);
        json!({"kty": "RSA", "kid": kid, "n": b64(&n), "e": "AQAB"})
    }

    fn ec_jwk(kid: &str, crv: &str, len: usize) -> Value {
        json!({"kty": "EC", "kid": kid, "crv": crv, "x": b64(&vec![1; len]), "y": b64(&vec![2; len])})
    }

    fn ed_jwk(kid: &str) -> Value {
        json!({"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64(&[3; 32])})
    }

    #[test]
    fn a_jwks_keeps_its_usable_signature_keys() {
        let mut rsa_sig = rsa_jwk("rsa-sig", 256);
        rsa_sig["use"] = json!("sig");
        rsa_sig["alg"] = json!("RS256");
        let mut rsa_enc = rsa_jwk("rsa-enc", 256);
        rsa_enc["use"] = json!("enc");
        let mut rsa_ps = rsa_jwk("rsa-ps", 256);
        rsa_ps["alg"] = json!("PS256");
        let doc = json!({"keys": [
            rsa_jwk("rsa", 256),
            rsa_sig,
            rsa_jwk("rsa-1024", 128),
            rsa_enc,
            rsa_ps,
            ec_jwk("ec", "P-256", 32),
            ec_jwk("ec-short", "P-256", 31),
            ec_jwk("ec-384", "P-384", 48),
            ed_jwk("ed"),
            // A second key with the same kid: the first one wins.
            ec_jwk("ed", "P-256", 32),
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "RSA", "n": b64(&[0xc5; 256]), "e": "AQAB"},
            {"kty": "XYZ", "kid": "odd"},
            "not a key",
        ]});
        let keys = parse_jwks(doc.to_string().as_bytes(), "test").unwrap();
        let mut found: Vec<(&str, Algorithm)> = keys
            .iter()
            .map(|(kid, key)| (kid.as_str(), key.algorithm))
            .collect();
        found.sort_by_key(|(kid, _)| *kid);
        assert_eq!(
            found,
            [
                ("ec", Algorithm::ES256),
                ("ed", Algorithm::EdDSA),
                ("rsa", Algorithm::RS256),
                ("rsa-sig", Algorithm::RS256),
            ]
        );

        assert!(matches!(
            parse_jwks(b"<html>", "test"),
            Err(JwksError::Malformed(_))
        ));
        assert!(matches!(
            parse_jwks(br#"{"kids": []}"#, "test"),
            Err(JwksError::Malformed(_))
        ));
        assert!(parse_jwks(br#"{"keys": []}"#, "test").unwrap().is_empty());
    }

    fn token(header: Value, payload: Value) -> String {
        format!(
            "{}.{}.{}",
            b64(header.to_string().as_bytes()),
            b64(payload.to_string().as_bytes()),
            b64(b"signature")
        )
    }

    #[tokio::test]
    async fn tokens_refused_by_their_header_cost_no_fetch() {
        let cache = JwksCache::default();
        let client = Upstream::build(None, crate::metrics::Metrics::new().upstream()).unwrap();
        let payload = json!({"iss": "https://issuer.example", "aud": "pets", "exp": NOW});
        for (what, value) in [
            ("empty", String::new()),
            ("not a JWT", "Bearer not-a-jwt".to_string()),
            (
                "alg none",
                token(json!({"alg": "none", "kid": "k"}), payload.clone()),
            ),
            (
                "HS256",
                token(json!({"alg": "HS256", "kid": "k"}), payload.clone()),
            ),
            (
                "RS384",
                token(json!({"alg": "RS384", "kid": "k"}), payload.clone()),
            ),
            ("no kid", token(json!({"alg": "RS256"}), payload.clone())),
        ] {
            let err = verify(&cache, &client, &table(), &value, &[])
                .await
                .unwrap_err();
            assert!(
                matches!(err, GatewayError::InvalidToken(_)),
                "{what}: {err:?}"
            );
        }
        assert!(cache.sources.lock().unwrap().is_empty(), "nothing fetched");
    }

    /// A JWKS server on 127.0.0.1 answering with whatever `answer` holds, counting requests.
    struct FakeIssuer {
        uri: String,
        answer: Arc<Mutex<(u16, String)>>,
        fetches: Arc<AtomicUsize>,
    }

    impl FakeIssuer {
        async fn start(keys: Value) -> FakeIssuer {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let uri = format!("http://{}/jwks.json", listener.local_addr().unwrap());
            let answer = Arc::new(Mutex::new((200, keys.to_string())));
            let fetches = Arc::new(AtomicUsize::new(0));
            let (a, f) = (answer.clone(), fetches.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let (a, f) = (a.clone(), f.clone());
                    let service = service_fn(move |_request| {
                        f.fetch_add(1, Ordering::SeqCst);
                        let (status, body) = a.lock().unwrap().clone();
                        let mut response = Response::new(crate::body::full(body));
                        *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        async move { Ok::<_, Infallible>(response) }
                    });
                    tokio::spawn(
                        hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service),
                    );
                }
            });
            FakeIssuer {
                uri,
                answer,
                fetches,
            }
        }

        fn answer(&self, status: u16, body: String) {
            *self.answer.lock().unwrap() = (status, body);
        }

        fn fetches(&self) -> usize {
            self.fetches.load(Ordering::SeqCst)
        }
    }

    fn kids(result: Result<Arc<VerifyKey>, KeyError>) -> Result<Algorithm, String> {
        result.map(|k| k.algorithm).map_err(|e| format!("{e:?}"))
    }

    #[tokio::test]
    async fn an_unknown_kid_refetches_at_most_once_per_interval() {
        let issuer = FakeIssuer::start(json!({"keys": [ed_jwk("one")]})).await;
        let cache = JwksCache::with_intervals(Duration::from_millis(300), MAX_KEY_SET_AGE);
        let client = Upstream::build(None, crate::metrics::Metrics::new().upstream()).unwrap();

        assert_eq!(
            kids(cache.key(&client, &issuer.uri, "one").await),
            Ok(Algorithm::EdDSA)
        );
        assert_eq!(
            kids(cache.key(&client, &issuer.uri, "one").await),
            Ok(Algorithm::EdDSA)
        );
        assert_eq!(issuer.fetches(), 1, "a known kid is served from the cache");

        // A flood of unknown kids right after a fetch costs the issuer nothing.
        issuer.answer(
            200,
            json!({"keys": [ed_jwk("one"), ec_jwk("two", "P-256", 32)]}).to_string(),
        );
        for i in 0..20 {
            let kid = format!("random-{i}");
            assert!(matches!(
                cache.key(&client, &issuer.uri, &kid).await,
                Err(KeyError::UnknownKid)
            ));
        }
        assert!(matches!(
            cache.key(&client, &issuer.uri, "two").await,
            Err(KeyError::UnknownKid)
        ));
        assert_eq!(issuer.fetches(), 1);

        // Past the interval, an unknown kid fetches the set again and finds the new key.
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(
            kids(cache.key(&client, &issuer.uri, "two").await),
            Ok(Algorithm::ES256)
        );
        assert_eq!(issuer.fetches(), 2);
        assert!(matches!(
            cache.key(&client, &issuer.uri, "random-0").await,
            Err(KeyError::UnknownKid)
        ));
        assert_eq!(issuer.fetches(), 2);
    }

    #[tokio::test]
    async fn without_a_key_set_a_failing_issuer_is_unavailable_and_not_hammered() {
        let issuer = FakeIssuer::start(json!({})).await;
        let cache = JwksCache::with_intervals(Duration::from_millis(300), MAX_KEY_SET_AGE);
        let client = Upstream::build(None, crate::metrics::Metrics::new().upstream()).unwrap();

        issuer.answer(503, "down".into());
        for _ in 0..5 {
            let err = cache.key(&client, &issuer.uri, "one").await.unwrap_err();
            assert!(
                matches!(&err, KeyError::Unavailable(JwksError::Status(503))),
                "{err:?}"
            );
        }
        assert_eq!(issuer.fetches(), 1);

        tokio::time::sleep(Duration::from_millis(350)).await;
        issuer.answer(200, "x".repeat(MAX_JWKS_BYTES + 1));
        let err = cache.key(&client, &issuer.uri, "one").await.unwrap_err();
        assert!(
            matches!(&err, KeyError::Unavailable(JwksError::TooLarge)),
            "{err:?}"
        );

        tokio::time::sleep(Duration::from_millis(350)).await;
        issuer.answer(200, "{\"keys\": 3}".into());
        let err = cache.key(&client, &issuer.uri, "one").await.unwrap_err();
        assert!(
            matches!(&err, KeyError::Unavailable(JwksError::Malformed(_))),
            "{err:?}"
        );

        // A closed port.
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}/jwks.json", listener.local_addr().unwrap())
        };
        let err = cache.key(&client, &closed, "one").await.unwrap_err();
        assert!(
            matches!(&err, KeyError::Unavailable(JwksError::Request(_))),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_stale_set_is_refreshed_and_serves_while_the_issuer_is_down() {
        let issuer = FakeIssuer::start(json!({"keys": [ed_jwk("one"), ed_jwk("two")]})).await;
        let cache = JwksCache::with_intervals(Duration::ZERO, Duration::from_millis(200));
        let client = Upstream::build(None, crate::metrics::Metrics::new().upstream()).unwrap();
        assert!(cache.key(&client, &issuer.uri, "one").await.is_ok());

        // Stale, and the issuer is down: the known key goes on working.
        tokio::time::sleep(Duration::from_millis(250)).await;
        issuer.answer(500, String::new());
        assert!(cache.key(&client, &issuer.uri, "one").await.is_ok());
        assert_eq!(issuer.fetches(), 2, "the stale set was refetched");

        // Back up without key "two": once refreshed, "two" is refused.
        issuer.answer(200, json!({"keys": [ed_jwk("one")]}).to_string());
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(matches!(
            cache.key(&client, &issuer.uri, "two").await,
            Err(KeyError::UnknownKid)
        ));
        assert!(cache.key(&client, &issuer.uri, "one").await.is_ok());
        assert_eq!(issuer.fetches(), 3);
    }
}
