//! One managed WebSocket connection, from the 101 to its end: the client's messages are
//! routed and answered, `@connections` commands are carried out, and the limits kept.
//!
//! - A message takes the route its route selection expression names (the JSON field at
//!   `$request.body.…`), else `$default`; with neither, the client is told
//!   `{"message": "Forbidden", …}` as Amazon API Gateway tells it. Its route's throttle
//!   applies per message (`{"message": "Too Many Requests", …}`). Messages are answered one
//!   at a time, in order: while one is with its integration the next is not read, so a client
//!   that sends faster than the backend answers is held back by TCP, not buffered.
//! - The route is looked up in the table current when the message arrives, so a new table
//!   applies to open connections and never closes them.
//! - Limits: frames and messages beyond the gateway's sizes close the connection with 1009;
//!   no message either way for the idle timeout, or the connection's maximum age, closes it
//!   with 1001 `Going away`, as the end of the drain period does. What goes to the client is
//!   bounded: a short queue of `@connections` sends, and tungstenite's write buffer; a client
//!   that reads nothing for [`SEND_TIMEOUT`] is closed (1008).
//! - When the connection ends, `$disconnect` gets the close code and reason.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tungstenite::Message;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

use super::event::{Detail, Event};
use super::registry::{Command, ConnectionInfo, Handle};
use super::{Accepted, Peer, invoke};
use crate::access_log::Upgraded as Carried;
use crate::errors::GatewayError;
use crate::request_log::Logged;
use crate::router::ServedRoute;
use crate::server::Hold;
use crate::state::Shared;
use crate::throttle::Subject;

/// `@connections` sends waiting for the client, per connection.
pub const OUTBOX: usize = 64;
/// How long a send to the client may wait for it to read.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes tungstenite reads at a time. Its default, 128 KiB, is allocated for every connection
/// up front: 1.3 GB for 10,000 idle connections. Messages larger than this still arrive, in
/// several reads.
const READ_BUFFER: usize = 2 * 1024;
/// Bytes tungstenite buffers before it writes, and at most before a send waits.
const WRITE_BUFFER: usize = 16 * 1024;
const MAX_WRITE_BUFFER: usize = 256 * 1024;

type Ws = WebSocketStream<TokioIo<Upgraded>>;
type Pending<'a> = Pin<Box<dyn Future<Output = Option<Message>> + Send + 'a>>;

/// Runs the connection to its end, then tells `$disconnect` and writes the access-log line.
pub async fn run(
    shared: Arc<Shared>,
    hold: Option<Hold>,
    client: OnUpgrade,
    accepted: Accepted,
    log: Logged,
) {
    let _open = crate::websocket::OpenGuard::new(shared.metrics.websocket_connections_open.clone());
    let opened = Instant::now();
    let upgraded = match client.await {
        Ok(upgraded) => upgraded,
        Err(e) => {
            // `$connect` has been told of the connection: `$disconnect` is told it is gone.
            let ended = Ended {
                code: 1006,
                reason: String::new(),
                error: Some(format!("the WebSocket handshake did not complete: {e}")),
            };
            disconnected(&shared, &accepted.peer, &ended).await;
            log.closed(Carried::default(), ended.error);
            return;
        }
    };
    let settings = &accepted.settings;
    let config = WebSocketConfig::default()
        .max_frame_size(Some(settings.max_frame_bytes as usize))
        .max_message_size(Some(settings.max_message_bytes as usize))
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER);
    let ws =
        WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;

    let peer = accepted.peer.clone();
    let (commands, outbox) = mpsc::channel(OUTBOX);
    let handle = Arc::new(Handle::new(
        commands,
        ConnectionInfo {
            gateway: peer.gateway.to_string(),
            stage: peer.stage.to_string(),
            connected_at_ms: peer.connected_at.as_millisecond(),
            source_ip: peer.source_ip,
            user_agent: peer.user_agent.clone(),
        },
    ));
    let registry = shared.managed.registry.clone();
    registry.insert(peer.connection_id.clone(), handle.clone());
    let mut session = Session {
        shared: &shared,
        accepted: &accepted,
        handle: &handle,
        carried: Carried::default(),
    };
    let ended = session.run(ws, outbox, hold).await;
    registry.remove(&peer.connection_id);
    let mut carried = session.carried;
    carried.duration_ms = opened.elapsed().as_millis() as u64;

    disconnected(&shared, &peer, &ended).await;
    let error = ended.error.clone();
    log.closed(carried, error);
}

/// How a connection ended, as `$disconnect` is told.
#[derive(Debug)]
struct Ended {
    code: u16,
    reason: String,
    /// What went wrong, for the access log.
    error: Option<String>,
}

impl Ended {
    fn closed(code: CloseCode, reason: &str) -> Self {
        Self {
            code: code.into(),
            reason: reason.to_string(),
            error: None,
        }
    }
}

struct Session<'a> {
    shared: &'a Shared,
    accepted: &'a Accepted,
    handle: &'a Handle,
    carried: Carried,
}

impl<'a> Session<'a> {
    async fn run(
        &mut self,
        mut ws: Ws,
        mut outbox: mpsc::Receiver<Command>,
        mut hold: Option<Hold>,
    ) -> Ended {
        let settings = &self.accepted.settings;
        let idle = Duration::from_secs(u64::from(settings.idle_timeout_seconds));
        let max_age = tokio::time::Instant::now()
            + Duration::from_secs(u64::from(settings.max_connection_seconds));
        let mut last_active = tokio::time::Instant::now();
        let mut pending: Option<Pending<'a>> = None;
        let shared = self.shared;
        let peer = self.accepted.peer.clone();

        loop {
            let closing = async {
                match hold.as_mut() {
                    Some(hold) => hold.closing().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = closing => return close(&mut ws, CloseCode::Away, "Going away").await,
                _ = tokio::time::sleep_until(max_age) => {
                    return close(&mut ws, CloseCode::Away, "Going away").await;
                }
                _ = tokio::time::sleep_until(last_active + idle) => {
                    return close(&mut ws, CloseCode::Away, "Going away").await;
                }
                command = outbox.recv() => match command {
                    Some(Command::Send(data)) => {
                        last_active = self.touch();
                        let message = outgoing(data);
                        if let Err(ended) = self.send(&mut ws, message).await {
                            return ended;
                        }
                    }
                    Some(Command::Close) | None => {
                        return close(&mut ws, CloseCode::Normal, "").await;
                    }
                },
                answer = settle(&mut pending) => {
                    pending = None;
                    if let Some(answer) = answer
                        && let Err(ended) = self.send(&mut ws, answer).await
                    {
                        return ended;
                    }
                }
                incoming = ws.next(), if pending.is_none() => match incoming {
                    Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                        last_active = self.touch();
                        let binary = matches!(message, Message::Binary(_));
                        let data = message.into_data();
                        self.carried.bytes_from_client += data.len() as u64;
                        pending = Some(Box::pin(on_message(shared, peer.clone(), data, binary)));
                    }
                    Some(Ok(Message::Close(frame))) => {
                        let (code, reason) = frame
                            .map(|f| (f.code.into(), f.reason.to_string()))
                            .unwrap_or((1005, String::new()));
                        // tungstenite has queued the echo of the close; send it.
                        let _ = ws.flush().await;
                        return Ended { code, reason, error: None };
                    }
                    // Pings are answered by tungstenite on the next write or flush.
                    Some(Ok(_)) => {
                        let _ = ws.flush().await;
                    }
                    Some(Err(tungstenite::Error::Capacity(e))) => {
                        let mut ended = close(&mut ws, CloseCode::Size, "Message too big").await;
                        ended.error = Some(format!("the client sent {e}"));
                        return ended;
                    }
                    Some(Err(tungstenite::Error::Utf8(e))) => {
                        let mut ended = close(&mut ws, CloseCode::Invalid, "Invalid UTF-8").await;
                        ended.error = Some(format!("the client sent a text message that is not UTF-8: {e}"));
                        return ended;
                    }
                    Some(Err(tungstenite::Error::Protocol(e))) => {
                        let mut ended = close(&mut ws, CloseCode::Protocol, "Protocol error").await;
                        ended.error = Some(format!("the client broke the protocol: {e}"));
                        return ended;
                    }
                    Some(Err(e)) => {
                        return Ended {
                            code: 1006,
                            reason: String::new(),
                            error: Some(format!("the connection failed: {e}")),
                        };
                    }
                    None => return Ended::closed(CloseCode::Abnormal, ""),
                },
            }
        }
    }

    /// A message to the client, within [`SEND_TIMEOUT`].
    async fn send(&mut self, ws: &mut Ws, message: Message) -> Result<(), Ended> {
        let length = message.len() as u64;
        match tokio::time::timeout(SEND_TIMEOUT, ws.send(message)).await {
            Ok(Ok(())) => {
                self.carried.bytes_to_client += length;
                Ok(())
            }
            Ok(Err(e)) => Err(Ended {
                code: 1006,
                reason: String::new(),
                error: Some(format!("sending to the client failed: {e}")),
            }),
            Err(_) => {
                let mut ended = close(ws, CloseCode::Policy, "Client too slow").await;
                ended.error = Some(format!("the client read nothing for {SEND_TIMEOUT:?}"));
                Err(ended)
            }
        }
    }

    fn touch(&self) -> tokio::time::Instant {
        self.handle.touch(jiff::Timestamp::now().as_millisecond());
        tokio::time::Instant::now()
    }
}

/// The pending answer, or never when there is none.
async fn settle(pending: &mut Option<Pending<'_>>) -> Option<Message> {
    match pending {
        Some(answer) => answer.await,
        None => std::future::pending().await,
    }
}

/// An `@connections` message: text when it is UTF-8, as the SDKs' `Data` mostly is.
fn outgoing(data: Bytes) -> Message {
    match String::from_utf8(data.to_vec()) {
        Ok(text) => Message::text(text),
        Err(_) => Message::Binary(data),
    }
}

/// Sends a close frame (within [`SEND_TIMEOUT`]) and says so.
async fn close(ws: &mut Ws, code: CloseCode, reason: &str) -> Ended {
    let frame = CloseFrame {
        code,
        reason: reason.to_string().into(),
    };
    let _ = tokio::time::timeout(SEND_TIMEOUT, ws.close(Some(frame))).await;
    Ended::closed(code, reason)
}

/// Routes one message and calls its integration; what goes back to the client, if anything.
async fn on_message(
    shared: &Shared,
    peer: Arc<Peer>,
    data: Bytes,
    binary: bool,
) -> Option<Message> {
    let id = uuid::Uuid::new_v4().to_string();
    let received_at = jiff::Timestamp::now();
    let dispatch = shared.dispatch.load_full();
    let Some(gateway) = dispatch.gateway(&peer.gateway) else {
        return Some(error_frame("Forbidden", &peer, &id));
    };
    let Some(stage) = gateway.stage(&peer.stage) else {
        return Some(error_frame("Forbidden", &peer, &id));
    };
    let selection = gateway
        .table
        .websocket
        .as_ref()
        .map(|w| w.route_selection_field.as_slice())
        .unwrap_or_default();
    let selected = (!binary).then(|| select_route(selection, &data)).flatten();
    let route = selected
        .as_deref()
        .and_then(|key| stage.router.by_key(key))
        .filter(|r| !r.table.route_key.starts_with('$'))
        .or_else(|| stage.router.by_key("$default"));
    let count = |route: &str, outcome: &str| {
        shared
            .metrics
            .websocket_message(&gateway.name, &peer.stage, route, outcome);
    };
    let Some(route) = route else {
        count("", "unrouted");
        return Some(error_frame("Forbidden", &peer, &id));
    };

    let stage_table = gateway.stage_table(stage);
    let subject = Subject {
        gateway: &gateway.table,
        stage: &stage_table.name,
        route: &route.table,
        route_bucket: &route.bucket,
        gateway_bucket: &gateway.bucket,
        plan: None,
        usage: None,
        redis: &gateway.redis,
    };
    let fleet_size = shared.fleet_size.load(Ordering::Relaxed);
    if let Err(refused) = shared.limiter.admit(&subject, fleet_size).await {
        tracing::debug!(connection_id = %peer.connection_id, error = %refused.error, "message refused");
        count(&route.key, "throttled");
        return Some(error_frame(refused.error.message(), &peer, &id));
    }

    let message_id = uuid::Uuid::new_v4().simple().to_string();
    let event = Event {
        peer: &peer,
        route_key: &route.table.route_key,
        request_id: &id,
        received_at,
        detail: Detail::Message {
            message_id: &message_id,
            body: &data,
            binary,
        },
    };
    let answer = invoke::invoke(&shared.client, route, &stage_table.variables, &event).await;
    count(
        &route.key,
        if answer.is_ok() { "answered" } else { "failed" },
    );
    reply(route, answer, &peer, &id)
}

/// What a route's answer sends back: a two-way route's body (when it has one); an error
/// frame when the integration failed, as Amazon API Gateway tells the client.
fn reply(
    route: &ServedRoute,
    answer: Result<invoke::Answer, GatewayError>,
    peer: &Peer,
    request_id: &str,
) -> Option<Message> {
    match answer {
        Ok(answer) if !route.table.two_way || answer.body.is_empty() => None,
        Ok(answer) => Some(outgoing(answer.body)),
        Err(e) => {
            tracing::warn!(
                connection_id = %peer.connection_id,
                route_key = %route.table.route_key,
                request_id,
                error = %e,
                "WebSocket message integration failed"
            );
            Some(error_frame("Internal server error", peer, request_id))
        }
    }
}

/// `{"message": …, "connectionId": …, "requestId": …}`: how Amazon API Gateway tells a client
/// its message was refused or failed.
fn error_frame(message: &str, peer: &Peer, request_id: &str) -> Message {
    let body = json!({
        "message": message,
        "connectionId": peer.connection_id,
        "requestId": request_id,
    });
    Message::text(body.to_string())
}

/// The route key a message selects: the string at the selection expression's field path of
/// the message read as JSON; `None` when the message is not JSON or the field is not a string.
pub fn select_route(fields: &[String], data: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(data).ok()?;
    let mut at = &value;
    for field in fields {
        at = at.get(field)?;
    }
    at.as_str().map(str::to_string)
}

/// Tells `$disconnect` (in the table current now), if the stage has one. Its answer goes
/// nowhere: the client is gone.
async fn disconnected(shared: &Shared, peer: &Peer, ended: &Ended) {
    let dispatch = shared.dispatch.load_full();
    let Some(gateway) = dispatch.gateway(&peer.gateway) else {
        return;
    };
    let Some(stage) = gateway.stage(&peer.stage) else {
        return;
    };
    let Some(route) = stage.router.by_key("$disconnect") else {
        return;
    };
    let id = uuid::Uuid::new_v4().to_string();
    let event = Event {
        peer,
        route_key: "$disconnect",
        request_id: &id,
        received_at: jiff::Timestamp::now(),
        detail: Detail::Disconnect {
            status_code: ended.code,
            reason: &ended.reason,
        },
    };
    let variables = &gateway.stage_table(stage).variables;
    if let Err(e) = invoke::invoke(&shared.client, route, variables, &event).await {
        tracing::warn!(
            connection_id = %peer.connection_id,
            request_id = %id,
            error = %e,
            "$disconnect integration failed"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_selection_expression_reads_a_json_field() {
        let action = ["action".to_string()];
        assert_eq!(
            select_route(&action, br#"{"action":"sendmessage","data":1}"#).as_deref(),
            Some("sendmessage")
        );
        let nested = ["type".to_string(), "name".to_string()];
        assert_eq!(
            select_route(&nested, br#"{"type":{"name":"quote"}}"#).as_deref(),
            Some("quote")
        );
        assert_eq!(select_route(&action, b"not json"), None);
        assert_eq!(select_route(&action, br#"{"action":7}"#), None);
        assert_eq!(select_route(&action, br#"{"other":"x"}"#), None);
    }
}
