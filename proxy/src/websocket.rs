//! WebSocket pass-through. A route with an HTTP integration forwards an HTTP/1.1 WebSocket
//! handshake (`GET`, `Connection: Upgrade`, `Upgrade: websocket`) to its backend after every
//! phase an ordinary request passes: resource policy, authorizer, API key, throttle and
//! quota apply to the handshake. When the backend answers 101, the client's connection and
//! a backend connection of its own ([`Upstream::upgrade`](crate::upstream::Upstream::upgrade))
//! are joined, and bytes are relayed both ways until either side closes. Any other answer
//! goes back to the client as an ordinary response.
//!
//! The relay is a task of its own, holding nothing of the table it was admitted by: a new
//! table, a certificate rotation or the controller going away leaves it running. One
//! access-log line per connection, written when it ends, with its duration and the bytes each
//! way (`upgraded`); `tollgate_websocket_connections_open` counts the connections relayed now.
//!
//! Over HTTP/2 a client opens a WebSocket with an extended CONNECT (RFC 8441: `:method
//! CONNECT`, `:protocol websocket`), on either listener. The request is turned into the
//! HTTP/1.1 handshake before the phases run (a `GET` with `Upgrade`, `Connection` and a
//! `Sec-WebSocket-Key` of the proxy's making), so routes, phases and backends see one kind of
//! handshake; the backend's 101 goes back to the client as HTTP/2's 200, and the stream
//! carries the frames.
//!
//! Frames are relayed as bytes, not read: the backend speaks WebSocket with the client, as
//! behind nginx or HAProxy, extensions (`permessage-deflate`) included.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use hyper::ext::Protocol;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::http::request::Parts;
use hyper::upgrade::OnUpgrade;
use hyper::{Method, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;
use prometheus::IntGauge;

use crate::access_log::Upgraded;
use crate::body::Body;
use crate::errors::GatewayError;
use crate::relay::{self, Carried};
use crate::request_ctx::Connection;
use crate::request_log::{Logged, LoggedBody};
use crate::server::Hold;
use crate::state::Shared;

/// The client's side of a WebSocket handshake, taken from the request before the phases
/// run; `None` for any other request.
pub struct ClientUpgrade {
    on: OnUpgrade,
    /// An HTTP/2 extended CONNECT, answered 200 rather than 101.
    h2: bool,
}

/// Takes the client's side of a WebSocket handshake out of the request. An HTTP/2 extended
/// CONNECT is turned into the HTTP/1.1 handshake the phases and the backend know.
pub fn client_upgrade(parts: &mut Parts) -> Option<ClientUpgrade> {
    let h2 = is_extended_connect(parts);
    if !h2 && !asks_for_websocket(parts) {
        return None;
    }
    let on = parts.extensions.remove::<OnUpgrade>()?;
    if h2 {
        as_http1_handshake(parts);
    }
    Some(ClientUpgrade { on, h2 })
}

/// An HTTP/2 WebSocket: `CONNECT` with `:protocol websocket` (RFC 8441, section 4).
fn is_extended_connect(parts: &Parts) -> bool {
    parts.version == Version::HTTP_2
        && parts.method == Method::CONNECT
        && parts
            .extensions
            .get::<Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"))
}

/// RFC 8441's request as the RFC 6455 handshake: `GET`, `Upgrade: websocket`, `Connection:
/// Upgrade` and a new `Sec-WebSocket-Key` (HTTP/2 has none); `Sec-WebSocket-Version`,
/// `-Protocol` and `-Extensions` are the client's.
fn as_http1_handshake(parts: &mut Parts) {
    parts.method = Method::GET;
    let headers = &mut parts.headers;
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    let key = base64::engine::general_purpose::STANDARD.encode(fastrand::u128(..).to_le_bytes());
    if let Ok(key) = HeaderValue::try_from(key) {
        headers.insert(header::SEC_WEBSOCKET_KEY, key);
    }
}

/// Whether the request is an HTTP/1.1 WebSocket handshake (RFC 6455, section 4.1).
fn asks_for_websocket(parts: &Parts) -> bool {
    parts.version == Version::HTTP_11
        && parts.method == Method::GET
        && has_token(&parts.headers, header::UPGRADE, "websocket")
        && has_token(&parts.headers, header::CONNECTION, "upgrade")
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .to_str()
            .unwrap_or("")
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    })
}

/// The hop-by-hop headers a handshake carries on to its backend, which the HTTP integration
/// strips from every other request.
pub fn forward_handshake(from: &HeaderMap, to: &mut HeaderMap) {
    to.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Some(upgrade) = from.get(header::UPGRADE) {
        to.insert(header::UPGRADE, upgrade.clone());
    }
}

/// Answers a backend's 101: the client's and the backend's connections are joined in a task
/// of their own, which writes the access-log line when the connection ends. A 101 to a
/// request that did not ask for it, or with no backend connection behind it (a mock's),
/// is the integration's fault: 502.
pub fn switch(
    shared: Arc<Shared>,
    conn: &Connection,
    client: Option<ClientUpgrade>,
    mut response: Response<Body>,
    log: Logged,
    method: &Method,
) -> Response<LoggedBody> {
    let backend_connection = response.extensions().get::<OnUpgrade>().is_some();
    let backend = hyper::upgrade::on(&mut response);
    let (Some(client), true) = (client, backend_connection) else {
        let error = GatewayError::IntegrationFailure(
            "the integration switched protocols for a request that did not ask to".into(),
        );
        tracing::warn!(error = %error, "request failed");
        let mut log = log;
        log.record.error_message = Some(error.to_string());
        return log.answered(method, error.into_response());
    };
    if client.h2 {
        // HTTP/2 says yes with 200; the handshake's own headers are HTTP/1.1's.
        *response.status_mut() = StatusCode::OK;
        let headers = response.headers_mut();
        for name in [
            header::SEC_WEBSOCKET_ACCEPT,
            header::UPGRADE,
            header::CONNECTION,
        ] {
            headers.remove(name);
        }
    }
    let (response, log) = log.switched(response);
    tokio::spawn(relay(shared, conn.hold.clone(), client.on, backend, log));
    response
}

/// Relays bytes both ways until either side closes, then writes the line. The connection's
/// hold keeps it under the connection cap, and keeps the drain waiting for it: after SIGTERM
/// a WebSocket runs until the drain period ends, and is closed with the process.
async fn relay(
    shared: Arc<Shared>,
    _hold: Option<Hold>,
    client: OnUpgrade,
    backend: OnUpgrade,
    log: Logged,
) {
    let _open = OpenGuard::new(shared.metrics.websocket_connections_open.clone());
    let opened = Instant::now();
    let (carried, outcome) = match tokio::try_join!(client, backend) {
        Ok((client, backend)) => {
            let idle = shared.websocket_idle_timeout;
            relay::join(&mut TokioIo::new(client), &mut TokioIo::new(backend), idle).await
        }
        Err(e) => (Carried::default(), Err(io::Error::other(e))),
    };
    let error = outcome
        .err()
        .map(|e| format!("the WebSocket connection failed: {e}"));
    if let Some(error) = &error {
        tracing::debug!(request_id = %log.record.request_id, error = %error, "websocket ended");
    }
    let upgraded = Upgraded {
        duration_ms: opened.elapsed().as_millis() as u64,
        bytes_from_client: carried.a_to_b,
        bytes_to_client: carried.b_to_a,
    };
    log.closed(upgraded, error);
}

/// `tollgate_websocket_connections_open`, up for as long as the relay runs.
struct OpenGuard(IntGauge);

impl OpenGuard {
    fn new(gauge: IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(version: Version, method: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri("/chat")
            .version(version);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn a_handshake_is_an_http11_get_with_both_tokens_in_any_case_and_list() {
        let handshake = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
        ];
        assert!(asks_for_websocket(&parts(
            Version::HTTP_11,
            "GET",
            &handshake
        )));
        let not = [
            parts(Version::HTTP_11, "POST", &handshake),
            parts(Version::HTTP_10, "GET", &handshake),
            parts(Version::HTTP_11, "GET", &[("upgrade", "websocket")]),
            parts(Version::HTTP_11, "GET", &[("connection", "upgrade")]),
            parts(
                Version::HTTP_11,
                "GET",
                &[("connection", "upgrade"), ("upgrade", "h2c")],
            ),
        ];
        for p in not {
            assert!(!asks_for_websocket(&p), "{p:?}");
        }
    }
}
