//! The stage cache shared through Redis, for a gateway whose rate limiting uses Redis: what one
//! proxy keeps, the others find. Each proxy still keeps what it read in its own memory (the
//! first place it looks), so Redis is asked once per key and proxy while the answer lives.
//!
//! Entries live under `tollgate:cache:{gateway}:{table version}:{stage}:{SHA-256 of the key}`
//! with Redis's own expiry (`PX`), so a new table never serves another table's answers. Each
//! call touches one key, so a Redis Cluster spreads the entries over its slots as it likes. A
//! Redis that fails or is slow ([`CALL_TIMEOUT`]) is left alone for [`DOWN_FOR`]: the cache then
//! works from memory, and a request never waits on Redis longer than that.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use sha2::{Digest, Sha256};
use tollgate_crds::table::RedisTable;
use tollgate_redis::{Connection, SharedRedis, Timeouts};

use super::store::Entry;
use crate::outage::Outage;

/// The longest a request waits for the shared cache.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(100);
/// How long Redis is left alone after a failed call.
pub const DOWN_FOR: Duration = Duration::from_secs(1);

/// One gateway's connection to the shared cache.
pub struct SharedCache {
    redis: Result<SharedRedis, String>,
    /// `tollgate:cache:{gateway}:`.
    prefix: String,
    outage: Outage,
}

impl std::fmt::Debug for SharedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCache")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl SharedCache {
    /// A lazily connected client for `redis` (it reconnects by itself).
    pub fn new(redis: &RedisTable, gateway: &str, version: &str) -> Self {
        let timeouts = Timeouts {
            connect: CALL_TIMEOUT,
            response: CALL_TIMEOUT,
        };
        let client = SharedRedis::new(redis, timeouts).map_err(|e| e.to_string());
        if let Err(error) = &client {
            tracing::error!(%error, gateway, redis = %redis, "redis client for the stage cache cannot be made; the cache works from memory");
        }
        Self {
            redis: client,
            prefix: format!("tollgate:cache:{gateway}:{version}:"),
            outage: Outage::new(DOWN_FOR),
        }
    }

    fn redis_key(&self, stage: &str, key: &str) -> String {
        let digest = Sha256::digest(key.as_bytes());
        format!("{}{stage}:{}", self.prefix, hex::encode(digest))
    }

    /// The entry kept for `key`, with the time it has left; `None` when there is none or
    /// Redis cannot say in time.
    pub async fn get(&self, stage: &str, key: &str) -> Option<Entry> {
        let mut connection = self.usable().await?;
        let redis_key = self.redis_key(stage, key);
        let mut pipe = redis::pipe();
        pipe.get(&redis_key).cmd("PTTL").arg(&redis_key);
        let call = pipe.query_async::<(Option<Vec<u8>>, i64)>(&mut connection);
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok((Some(bytes), ttl_ms))) if ttl_ms > 0 => {
                let ttl = Duration::from_millis(u64::try_from(ttl_ms).unwrap_or(0));
                decode(Bytes::from(bytes), ttl)
            }
            Ok(Ok(_)) => None,
            Ok(Err(e)) => self.failed(&e.to_string()),
            Err(_) => self.failed("no answer in time"),
        }
    }

    /// Keeps `entry` for its time to live, in the background: the request that filled it
    /// does not wait.
    pub fn put(self: &std::sync::Arc<Self>, stage: &str, key: &str, entry: &Entry) {
        if self.redis.is_err() || self.outage.is_down() {
            return;
        }
        let redis_key = self.redis_key(stage, key);
        let value = encode(entry);
        let ttl_ms = u64::try_from(entry.ttl.as_millis()).unwrap_or(u64::MAX);
        let this = self.clone();
        tokio::spawn(async move {
            let Some(mut connection) = this.usable().await else {
                return;
            };
            let mut set = redis::cmd("SET");
            set.arg(&redis_key)
                .arg(value.as_ref())
                .arg("PX")
                .arg(ttl_ms);
            let call = set.query_async::<()>(&mut connection);
            match tokio::time::timeout(CALL_TIMEOUT, call).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    this.failed::<()>(&e.to_string());
                }
                Err(_) => {
                    this.failed::<()>("no answer in time");
                }
            }
        });
    }

    async fn usable(&self) -> Option<Connection> {
        let redis = self.redis.as_ref().ok()?;
        if self.outage.is_down() {
            return None;
        }
        match redis.connection().await {
            Ok(connection) => Some(connection),
            Err(e) => self.failed(&e.to_string()),
        }
    }

    /// Leaves Redis alone for [`DOWN_FOR`]; logs when it was up, so an outage logs about
    /// once a second.
    fn failed<T>(&self, error: &str) -> Option<T> {
        if self.outage.failed() {
            tracing::warn!(error, retry_in = ?DOWN_FOR, "redis for the stage cache is unavailable; the cache works from memory");
        }
        None
    }
}

/// `status (u16) | header count (u16) | per header: name length (u16), name, value length
/// (u32), value | body`.
fn encode(entry: &Entry) -> Bytes {
    let mut out = BytesMut::with_capacity(entry.body.len() + 256);
    out.put_u16(entry.status.as_u16());
    out.put_u16(u16::try_from(entry.headers.len()).unwrap_or(u16::MAX));
    for (name, value) in entry.headers.iter().take(usize::from(u16::MAX)) {
        out.put_u16(u16::try_from(name.as_str().len()).unwrap_or(0));
        out.put_slice(name.as_str().as_bytes());
        out.put_u32(u32::try_from(value.len()).unwrap_or(0));
        out.put_slice(value.as_bytes());
    }
    out.put_slice(&entry.body);
    out.freeze()
}

/// The entry `encode` wrote; `None` for anything else (a value another writer put there).
fn decode(mut bytes: Bytes, ttl: Duration) -> Option<Entry> {
    let take = |bytes: &mut Bytes, n: usize| (bytes.remaining() >= n).then(|| bytes.split_to(n));
    if bytes.remaining() < 4 {
        return None;
    }
    let status = StatusCode::from_u16(bytes.get_u16()).ok()?;
    let count = bytes.get_u16();
    let mut headers = HeaderMap::with_capacity(usize::from(count));
    for _ in 0..count {
        if bytes.remaining() < 2 {
            return None;
        }
        let name_len = usize::from(bytes.get_u16());
        let name = HeaderName::from_bytes(&take(&mut bytes, name_len)?).ok()?;
        if bytes.remaining() < 4 {
            return None;
        }
        let value_len = usize::try_from(bytes.get_u32()).ok()?;
        let value = HeaderValue::from_maybe_shared(take(&mut bytes, value_len)?).ok()?;
        headers.append(name, value);
    }
    Some(Entry {
        status,
        headers,
        body: bytes,
        ttl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_the_wire_and_garbage_is_refused() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.append("set-cookie", HeaderValue::from_static("a=1"));
        headers.append("set-cookie", HeaderValue::from_static("b=2"));
        let entry = Entry {
            status: StatusCode::CREATED,
            headers,
            body: Bytes::from_static(b"{\"ok\":true}"),
            ttl: Duration::from_secs(60),
        };
        let back = decode(encode(&entry), Duration::from_secs(5)).unwrap();
        assert_eq!(back.status, StatusCode::CREATED);
        assert_eq!(back.headers, entry.headers);
        assert_eq!(back.body, entry.body);
        assert_eq!(back.ttl, Duration::from_secs(5));

        let whole = encode(&entry);
        for cut in 0..whole.len() - entry.body.len() {
            assert!(
                decode(whole.slice(..cut), Duration::ZERO).is_none(),
                "cut at {cut}"
            );
        }
        assert!(decode(Bytes::from_static(b"\x00\x00\x00\x00"), Duration::ZERO).is_none());
    }
}
