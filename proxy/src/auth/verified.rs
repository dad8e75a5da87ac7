//! Tokens whose signature was verified recently, with the identity they give, so a client sending the same token again
//! costs a hash lookup instead of a signature check (an RS256 verification is ~100 µs of CPU).
//!
//! Keyed by SHA-256 of the JWKS URL and the token: nothing of the token is kept but its
//! claims. An entry lives [`VERIFIED_TTL`] at most, so a key withdrawn from the JWKS stops
//! working within that time plus the key set's refresh; the claims (expiry, issuer, audience,
//! scopes) are still checked on every request by the caller. At most [`MAX_ENTRIES`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::Identity;

/// How long a verified signature is trusted without checking it again.
pub const VERIFIED_TTL: Duration = Duration::from_secs(60);
/// The most tokens remembered; past it, expired entries go, then the oldest tenth.
pub const MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
pub struct VerifiedTokens {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

struct Entry {
    identity: Arc<Identity>,
    verified_at: Instant,
}

impl VerifiedTokens {
    /// The identity of `token` if its signature was verified against `jwks_uri` recently.
    pub fn get(&self, jwks_uri: &str, token: &str) -> Option<Arc<Identity>> {
        let key = key(jwks_uri, token);
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(&key)
            .filter(|e| e.verified_at.elapsed() < VERIFIED_TTL)
            .map(|e| e.identity.clone())
    }

    pub fn insert(&self, jwks_uri: &str, token: &str, identity: &Arc<Identity>) {
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
                identity: identity.clone(),
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
    use serde_json::Map;

    use super::*;

    #[test]
    fn a_verified_token_is_remembered_per_jwks_url() {
        let tokens = VerifiedTokens::default();
        let identity = Arc::new(Identity::new(Some("u".into()), None, Map::new(), None));
        tokens.insert("https://a/jwks", "t1", &identity);
        assert_eq!(tokens.get("https://a/jwks", "t1"), Some(identity));
        assert_eq!(tokens.get("https://b/jwks", "t1"), None);
        assert_eq!(tokens.get("https://a/jwks", "t2"), None);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let tokens = VerifiedTokens::default();
        let identity = Arc::new(Identity::default());
        for i in 0..MAX_ENTRIES + 10 {
            tokens.insert("u", &i.to_string(), &identity);
        }
        let len = tokens.entries.lock().unwrap().len();
        assert!(len <= MAX_ENTRIES, "{len}");
        assert!(tokens.get("u", &(MAX_ENTRIES + 9).to_string()).is_some());
    }
}
