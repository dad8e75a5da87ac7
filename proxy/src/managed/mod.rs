//! Managed WebSocket APIs, as Amazon API Gateway's: the gateway holds each client's WebSocket
//! connection, and the backend stays stateless. A gateway with `protocol: WEBSOCKET` serves,
//! on each stage:
//!
//! - the handshake (`GET /{stage}`, HTTP/1.1 `Upgrade` or HTTP/2 extended CONNECT), admitted
//!   by the `$connect` route: resource policy, authorizer, API key and throttle as for any
//!   request, then its integration, whose non-2xx answer refuses the connection
//!   ([`connect`]);
//! - each message, routed by the gateway's route selection expression to a route key, else
//!   `$default`, and answered by its integration; a two-way route's answer goes back to the
//!   client ([`session`]); `$disconnect` is told when a connection ends, with the close code;
//! - the `@connections` API (`POST`, `GET`, `DELETE` of `/{stage}/@connections/{id}`), signed
//!   with AWS Signature Version 4, for backends to send to a client, read its state or close
//!   it ([`management`]), on any proxy of the fleet for a connection held by any other
//!   ([`bus`]).
//!
//! Events sent to integrations are Amazon's ([`event`], [`invoke`]); connection ids name the
//! proxy that holds them ([`registry`]).

pub mod bus;
pub mod connect;
pub mod event;
pub mod invoke;
pub mod management;
pub mod registry;
pub mod session;

use std::net::IpAddr;
use std::sync::Arc;

use hyper::{Response, StatusCode};
use tollgate_crds::table::{ObjectKey, WebSocketTable};

use crate::auth::Identity;
use crate::body::{Body, ClientBody};
use crate::errors::{GatewayError, json_message};
use crate::request_ctx::RequestCtx;
use crate::request_log::Logged;
use crate::state::Shared;

pub use bus::Bus;
pub use registry::Registry;

/// A client connection of a WebSocket API, as its events describe it.
#[derive(Debug)]
pub struct Peer {
    pub connection_id: String,
    pub connected_at: jiff::Timestamp,
    pub gateway: ObjectKey,
    pub stage: Arc<str>,
    /// The host the client connected to.
    pub domain_name: String,
    pub source_ip: IpAddr,
    pub user_agent: Option<String>,
    /// Who `$connect`'s authorizer said the client is; every later event carries it.
    pub identity: Arc<Identity>,
}

/// A handshake `$connect` admitted: carried on the 101 response to
/// [`websocket::answer`](crate::websocket::answer), which starts the session.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub peer: Arc<Peer>,
    /// The gateway's limits and bus when the connection was accepted.
    pub settings: Arc<WebSocketTable>,
}

/// Serves a request to a WebSocket API's stage: a handshake, or an `@connections` call.
pub async fn serve<B: ClientBody>(
    shared: &Shared,
    ctx: &RequestCtx<'_>,
    body: B,
    log: &mut Logged,
) -> Result<Response<Body>, GatewayError> {
    let path = ctx.path();
    if let Some(id) = management::connection_id(path) {
        return Ok(management::serve(shared, ctx, id, body).await);
    }
    if !matches!(path, "" | "/") {
        return Err(GatewayError::MissingAuthenticationToken);
    }
    if !ctx.websocket {
        // A WebSocket API's URL answers WebSocket handshakes only.
        return Ok(json_message(
            StatusCode::UPGRADE_REQUIRED,
            "Upgrade Required",
            Some("UpgradeRequiredException"),
        ));
    }
    connect::admit(shared, ctx, log).await
}

/// What the proxy keeps of its WebSocket API connections: its own, and the bus to the
/// fleet's.
#[derive(Default)]
pub struct Managed {
    pub registry: Arc<Registry>,
    pub bus: Bus,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A peer for unit tests of events.
    pub fn peer() -> Peer {
        Peer {
            connection_id: "Zm9vYmFyYmF6cXV4".into(),
            connected_at: jiff::Timestamp::from_millisecond(1_586_455_428_587).unwrap(),
            gateway: ObjectKey::new("default", "chat"),
            stage: Arc::from("production"),
            domain_name: "chat.example.com".into(),
            source_ip: "192.0.2.7".parse().unwrap(),
            user_agent: Some("wscat".into()),
            identity: Arc::new(Identity::default()),
        }
    }
}
