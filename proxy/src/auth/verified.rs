//! Tokens whose signature was verified recently, so a client sending the same token again
//! costs a hash lookup instead of a signature check (an RS256 verification is ~100 µs of CPU).
//!
//! Keyed by SHA-256 of the JWKS URL and the token: nothing of the token is kept but its
//! claims. An entry lives [`VERIFIED_TTL`] at most, so a key withdrawn from the JWKS stops
//! working within that time plus the key set's refresh; the claims (expiry, issuer, audience,
//! scopes) are still checked on every request by the caller. At most [`MAX_ENTRIES`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// How long a verified signature is trusted without checking it again.
pub const VERIFIED_TTL: Duration = Duration::from_secs(60);
/// The most tokens remembered; past it, expired entries go, then the oldest tenth.
pub const MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
pub struct VerifiedTokens {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

struct Entry {
    claims: Arc<Map<String, Value>>,
    verified_at: Instant,
}

impl VerifiedTokens {
    /// The claims of `token` if its signature was verified against `jwks_uri` recently.
    pub fn get(&self, jwks_uri: &str, token: &str) -> Option<Arc<Map<String, Value>>> {
        let key = key(jwks_uri, token);
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(&key)
            .filter(|e| e.verified_at.elapsed() < VERIFIED_TTL)
            .map(|e| e.claims.clone())
    }

    pub fn insert(&self, jwks_uri: &str, token: &str, claims: &Arc<Map<String, Value>>) {
        let key = key(jwks_uri, token);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| e.verified_at.elapsed() < VERIFIED_TTL);
        }
        if entries.len() >= MAX_ENTRIES {
            let mut ages: Vec<Instant> = entries.values().map(|e| e.verified_at).collect();
            ages.sort_unstable();
            let cutoff = ages[MAX_ENTRIES / 10];
            entries.retain(|_, e| e.verified_at > cutoff);
        }
        entries.insert(
            key,
            Entry {
                claims: claims.clone(),
                verified_at: Instant::now(),
            },
        );
    }
}

fn key(jwks_uri: &str, token: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(jwks_uri.as_bytes());
    hasher.update([0]);
    hasher.update(token.as_bytes());
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_verified_token_is_remembered_per_jwks_url() {
        let tokens = VerifiedTokens::default();
        let claims = Arc::new(json!({"sub": "u"}).as_object().cloned().unwrap());
        tokens.insert("https://a/jwks", "t1", &claims);
        assert_eq!(tokens.get("https://a/jwks", "t1"), Some(claims));
        assert_eq!(tokens.get("https://b/jwks", "t1"), None);
        assert_eq!(tokens.get("https://a/jwks", "t2"), None);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let tokens = VerifiedTokens::default();
        let claims = Arc::new(Map::new());
        for i in 0..MAX_ENTRIES + 10 {
            tokens.insert("u", &i.to_string(), &claims);
        }
        let len = tokens.entries.lock().unwrap().len();
        assert!(len <= MAX_ENTRIES, "{len}");
        assert!(tokens.get("u", &(MAX_ENTRIES + 9).to_string()).is_some());
    }
}
