//! The WebSocket connections this proxy holds, by connection id, and the ids it gives out.
//!
//! A connection id is 12 random-looking bytes in URL-safe base64 (16 characters, safe in a
//! path): the first 6 are this proxy's tag, drawn at start, so any proxy of the fleet can tell
//! from an id alone which proxy holds the connection ([`bus`](super::bus)); the other 6 are
//! random, so ids cannot be guessed from one another.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// Bytes of a connection id that name its proxy.
const TAG_BYTES: usize = 6;

/// What a session is asked to do by the `@connections` API.
#[derive(Debug)]
pub enum Command {
    /// Send a message: text when it is UTF-8, binary otherwise.
    Send(Bytes),
    /// Close the connection (`DELETE`).
    Close,
}

/// A held connection, as `@connections` sees it.
#[derive(Debug)]
pub struct Handle {
    pub commands: mpsc::Sender<Command>,
    pub info: ConnectionInfo,
    /// Milliseconds since the epoch of the last message either way.
    last_active_ms: AtomicI64,
}

/// What `GET @connections/{id}` tells of a connection.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionInfo {
    /// `namespace/name` of the gateway and the stage the client connected to.
    pub gateway: String,
    pub stage: String,
    pub connected_at_ms: i64,
    pub source_ip: IpAddr,
    pub user_agent: Option<String>,
}

impl Handle {
    pub fn new(commands: mpsc::Sender<Command>, info: ConnectionInfo) -> Self {
        let now = info.connected_at_ms;
        Self {
            commands,
            info,
            last_active_ms: AtomicI64::new(now),
        }
    }

    pub fn touch(&self, now_ms: i64) {
        self.last_active_ms.store(now_ms, Ordering::Relaxed);
    }

    pub fn last_active_ms(&self) -> i64 {
        self.last_active_ms.load(Ordering::Relaxed)
    }
}

/// The connections this proxy holds. One lock over a map: taken for a connect, a disconnect
/// and an `@connections` call, never across an await.
pub struct Registry {
    tag: [u8; TAG_BYTES],
    connections: Mutex<HashMap<String, Arc<Handle>>>,
}

impl Default for Registry {
    fn default() -> Self {
        let mut tag = [0u8; TAG_BYTES];
        tag.iter_mut().for_each(|b| *b = fastrand::u8(..));
        Self {
            tag,
            connections: Mutex::new(HashMap::new()),
        }
    }
}

impl Registry {
    /// This proxy's tag, as its connection ids begin with it and its bus channel names it.
    pub fn tag(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.tag)
    }

    /// A new connection id of this proxy's.
    pub fn new_id(&self) -> String {
        let mut bytes = [0u8; 2 * TAG_BYTES];
        bytes[..TAG_BYTES].copy_from_slice(&self.tag);
        bytes[TAG_BYTES..]
            .iter_mut()
            .for_each(|b| *b = fastrand::u8(..));
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn insert(&self, id: String, handle: Arc<Handle>) {
        self.lock().insert(id, handle);
    }

    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    pub fn get(&self, id: &str) -> Option<Arc<Handle>> {
        self.lock().get(id).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Handle>>> {
        // A panic while holding the lock leaves the map as it was: keep serving.
        self.connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The tag of the proxy that gave out `id`; `None` for a string that is no connection id.
pub fn tag_of(id: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(id).ok()?;
    (bytes.len() == 2 * TAG_BYTES).then(|| URL_SAFE_NO_PAD.encode(&bytes[..TAG_BYTES]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_their_proxy_and_differ() {
        let registry = Registry::default();
        let (a, b) = (registry.new_id(), registry.new_id());
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
        assert_eq!(tag_of(&a), Some(registry.tag()));
        assert_ne!(tag_of(&Registry::default().new_id()), Some(registry.tag()));
        assert_eq!(tag_of("not-an-id"), None);
        assert_eq!(tag_of("L0SM9cOFvHcCIhw="), None);
    }
}
