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

use std::io::{self, Cursor};
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
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::frame::{Frame, FrameHeader};

use crate::access_log::Upgraded;
use crate::body::Body;
use crate::errors::GatewayError;
use crate::managed;
use crate::pipeline::{self, REQUEST_ID_HEADER};
use crate::relay::{self, Boundaries, Carried, Ended};
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

/// Answers a WebSocket handshake, or any response that switches protocols: a 101 is
/// [`switch`]ed; a 2xx other than 101 to an HTTP/2 client, which would take it for an open
/// tunnel (RFC 8441, section 5), is the integration's failure to accept the WebSocket;
/// anything else is answered as it is.
pub fn answer(
    shared: Arc<Shared>,
    conn: &Connection,
    client: Option<ClientUpgrade>,
    mut response: Response<Body>,
    log: Logged,
    method: &Method,
) -> Response<LoggedBody> {
    let status = response.status();
    if let Some(accepted) = response.extensions_mut().remove::<managed::Accepted>()
        && let Some(client) = client
    {
        return managed_switch(shared, conn, client, accepted, response, log);
    }
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return switch(shared, conn, client, response, log, method);
    }
    if client.is_some_and(|c| c.h2) && status.is_success() {
        let error = GatewayError::IntegrationFailure(format!(
            "the integration answered the WebSocket handshake with {status}, not 101"
        ));
        return failed(error, log, method);
    }
    log.answered(method, response)
}

/// Answers with `error` as the pipeline answers a refusal, with the request id.
fn failed(error: GatewayError, mut log: Logged, method: &Method) -> Response<LoggedBody> {
    let id = log.record.request_id.to_string();
    let mut answer = pipeline::refused(&id, error, &mut log);
    if let Ok(id) = HeaderValue::try_from(id) {
        answer.headers_mut().insert(REQUEST_ID_HEADER, id);
    }
    log.answered(method, answer)
}

/// Answers a backend's 101: the client's and the backend's connections are joined in a task
/// of their own, which writes the access-log line when the connection ends. A 101 with no
/// backend connection behind it (a mock configured to answer 101), or to a request that did
/// not ask to switch, is a configuration error: 500.
fn switch(
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
        let error = GatewayError::Configuration(
            "the integration answered 101 with no WebSocket handshake to complete".into(),
        );
        return failed(error, log, method);
    };
    if client.h2 {
        as_h2_yes(&mut response);
    }
    let (response, log) = log.switched(response);
    tokio::spawn(relay(shared, conn.hold.clone(), client.on, backend, log));
    response
}

/// HTTP/2 says yes with 200; the handshake's own headers are HTTP/1.1's.
fn as_h2_yes(response: &mut Response<Body>) {
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

/// Answers a handshake a WebSocket API's `$connect` admitted: the session runs in a task of
/// its own ([`managed::session`]), holding the connection's place as a relay does.
fn managed_switch(
    shared: Arc<Shared>,
    conn: &Connection,
    client: ClientUpgrade,
    accepted: managed::Accepted,
    mut response: Response<Body>,
    log: Logged,
) -> Response<LoggedBody> {
    if client.h2 {
        as_h2_yes(&mut response);
    }
    let (response, log) = log.switched(response);
    let session = managed::session::run(shared, conn.hold.clone(), client.on, accepted, log);
    tokio::spawn(session);
    response
}

/// Relays bytes both ways until either side closes, then writes the line. The connection's
/// hold keeps it under the connection cap, and keeps the drain waiting for it: after SIGTERM
/// a WebSocket runs until the drain period ends; then each direction is carried to the end
/// of the frame it is in, and both sides get a close frame, 1001 `going away` (RFC 6455,
/// section 7.4.1), so clients know to reconnect elsewhere.
async fn relay(
    shared: Arc<Shared>,
    mut hold: Option<Hold>,
    client: OnUpgrade,
    backend: OnUpgrade,
    log: Logged,
) {
    let _open = OpenGuard::new(shared.metrics.websocket_connections_open.clone());
    let opened = Instant::now();
    let (carried, outcome) = match tokio::try_join!(client, backend) {
        Ok((client, backend)) => {
            let (mut client, mut backend) = (TokioIo::new(client), TokioIo::new(backend));
            let (mut to_backend, mut to_client) = (Frames::default(), Frames::default());
            let protocol = relay::Protocol {
                a_to_b: &mut to_backend,
                b_to_a: &mut to_client,
            };
            let closing = async {
                match hold.as_mut() {
                    Some(hold) => hold.closing().await,
                    None => std::future::pending().await,
                }
            };
            let idle = shared.websocket_idle_timeout;
            let (carried, ended) =
                relay::join(&mut client, &mut backend, idle, protocol, closing).await;
            let outcome = match ended {
                Ok(Ended::Stopped) => going_away(&mut client, &mut backend).await,
                Ok(Ended::Closed) => Ok(()),
                Err(e) => Err(e),
            };
            (carried, outcome)
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

/// Closes both sides of a relay stopped at frame boundaries: a close frame 1001 to each (the
/// backend's masked, as a client's must be, RFC 6455 section 5.3), then the connections.
async fn going_away<C, B>(client: &mut C, backend: &mut B) -> io::Result<()>
where
    C: AsyncWrite + Unpin,
    B: AsyncWrite + Unpin,
{
    client.write_all(&close_frame(false)).await?;
    client.shutdown().await?;
    backend.write_all(&close_frame(true)).await?;
    backend.shutdown().await
}

/// A close frame with code 1001, `going away`; masked for the backend.
fn close_frame(masked: bool) -> Vec<u8> {
    let mut frame = Frame::close(Some(CloseFrame {
        code: CloseCode::Away,
        reason: "going away".into(),
    }));
    if masked {
        frame.header_mut().mask = Some(fastrand::u32(..).to_ne_bytes());
    }
    let mut bytes = Vec::with_capacity(16);
    frame
        .format(&mut bytes)
        .expect("a frame is written whole to a Vec");
    bytes
}

/// The WebSocket frames going one way, followed as their bytes are relayed, with
/// tungstenite's frame-header parser: where the current frame ends. The payloads are not
/// read (nor unmasked, nor inflated): extensions pass through.
#[derive(Default)]
struct Frames {
    /// Payload bytes left in the current frame.
    remaining: u64,
    /// A header arriving in pieces (at most 14 bytes).
    header: Vec<u8>,
    /// A header tungstenite could not read: boundaries are lost for good.
    lost: bool,
}

impl Boundaries for Frames {
    fn carried(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && !self.lost {
            if self.remaining > 0 {
                let n = self.remaining.min(bytes.len() as u64);
                self.remaining -= n;
                bytes = &bytes[n as usize..];
                continue;
            }
            if self.header.is_empty() {
                // Usually the whole header is in the bytes at hand: read in place.
                let mut cursor = Cursor::new(bytes);
                if let Ok(Some((_, length))) = FrameHeader::parse(&mut cursor) {
                    bytes = &bytes[cursor.position() as usize..];
                    self.remaining = length;
                    continue;
                }
            }
            let before = self.header.len();
            let take = (MAX_FRAME_HEADER - before).min(bytes.len());
            self.header.extend_from_slice(&bytes[..take]);
            let mut cursor = Cursor::new(&self.header);
            match FrameHeader::parse(&mut cursor) {
                Ok(Some((_, length))) => {
                    bytes = &bytes[cursor.position() as usize - before..];
                    self.header.clear();
                    self.remaining = length;
                }
                Ok(None) => bytes = &bytes[take..],
                Err(_) => self.lost = true,
            }
        }
    }

    fn to_boundary(&self) -> u64 {
        match (self.lost, self.header.is_empty()) {
            (true, _) => u64::MAX,
            (false, false) => 1,
            (false, true) => self.remaining,
        }
    }
}

/// The longest frame header: 2 bytes, 8 of extended length, 4 of mask (RFC 6455, 5.2).
const MAX_FRAME_HEADER: usize = 14;

/// `tollgate_websocket_connections_open`, up for as long as the relay runs.
pub(crate) struct OpenGuard(IntGauge);

impl OpenGuard {
    pub(crate) fn new(gauge: IntGauge) -> Self {
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

    /// Frames as tungstenite writes them: a masked text frame, a 70,000-byte binary frame
    /// (64-bit length) and an empty ping.
    fn frames() -> Vec<Vec<u8>> {
        let mut text = Frame::message(
            "hello",
            tungstenite::protocol::frame::coding::OpCode::Data(
                tungstenite::protocol::frame::coding::Data::Text,
            ),
            true,
        );
        text.header_mut().mask = Some([1, 2, 3, 4]);
        let binary = Frame::message(
            vec![7u8; 70_000],
            tungstenite::protocol::frame::coding::OpCode::Data(
                tungstenite::protocol::frame::coding::Data::Binary,
            ),
            true,
        );
        let ping = Frame::ping(Vec::new());
        [text, binary, ping]
            .into_iter()
            .map(|f| {
                let mut bytes = Vec::new();
                f.format(&mut bytes).unwrap();
                bytes
            })
            .collect()
    }

    #[test]
    fn frame_boundaries_are_found_however_the_bytes_are_cut() {
        let frames = frames();
        let stream: Vec<u8> = frames.concat();
        let ends: Vec<usize> = frames
            .iter()
            .scan(0, |at, f| {
                *at += f.len();
                Some(*at)
            })
            .collect();
        for chunk in [1, 2, 3, 13, 14, 15, 1000, 16 * 1024] {
            let mut tracked = Frames::default();
            let mut at = 0;
            for piece in stream.chunks(chunk) {
                tracked.carried(piece);
                at += piece.len();
                let at_boundary = at == 0 || ends.contains(&at);
                assert_eq!(
                    tracked.to_boundary() == 0,
                    at_boundary,
                    "chunks of {chunk}, at byte {at}"
                );
                if let Some(end) = ends.iter().find(|e| **e > at)
                    && !at_boundary
                    && tracked.header.is_empty()
                {
                    assert_eq!(
                        tracked.to_boundary(),
                        (end - at) as u64,
                        "chunks of {chunk}"
                    );
                }
            }
        }
    }

    #[test]
    fn close_frames_are_1001_and_masked_only_for_the_backend() {
        for masked in [false, true] {
            let bytes = close_frame(masked);
            let mut cursor = Cursor::new(&bytes);
            let (header, length) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
            assert_eq!(header.mask.is_some(), masked);
            let mut payload = bytes[cursor.position() as usize..].to_vec();
            assert_eq!(payload.len() as u64, length);
            if let Some(mask) = header.mask {
                for (i, b) in payload.iter_mut().enumerate() {
                    *b ^= mask[i % 4];
                }
            }
            assert_eq!(&payload[..2], &1001u16.to_be_bytes());
            assert_eq!(&payload[2..], b"going away");
        }
    }
}
