//! A stage's answers in memory: moka's concurrent cache, bounded by the bytes of what it holds
//! (the least used go first), each entry expiring after its own time to live.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use moka::sync::Cache;

/// A cached answer.
#[derive(Debug)]
pub struct Entry {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub ttl: Duration,
}

impl Entry {
    /// What it weighs against the capacity: its body, its headers and its key.
    fn weight(&self, key: &str) -> u32 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 32)
            .sum();
        u32::try_from(self.body.len() + headers + key.len() + 64).unwrap_or(u32::MAX)
    }
}

/// Each entry lives for its own time to live.
struct PerEntryTtl;

impl moka::Expiry<String, Arc<Entry>> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Entry>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

pub struct Store(Cache<String, Arc<Entry>>);

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("entries", &self.0.entry_count())
            .finish()
    }
}

impl Store {
    pub fn new(capacity_bytes: u64) -> Self {
        Self(
            Cache::builder()
                .max_capacity(capacity_bytes)
                .weigher(|key: &String, entry: &Arc<Entry>| entry.weight(key))
                .expire_after(PerEntryTtl)
                .build(),
        )
    }

    pub fn get(&self, key: &str) -> Option<Arc<Entry>> {
        self.0.get(key)
    }

    pub fn insert(&self, key: String, entry: Entry) {
        self.insert_shared(key, Arc::new(entry));
    }

    pub fn insert_shared(&self, key: String, entry: Arc<Entry>) {
        self.0.insert(key, entry);
    }
}
