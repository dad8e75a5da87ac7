//! What the phases of the request path know about one request, in the order they learn it:
//! the connection it came on ([`Connection`]); the request as it arrived, its gateway, stage
//! and client ([`RequestCtx`], after the gateway and policy phases); and its route, deployment,
//! caller and API key ([`RouteCtx`], from the route phase on). The authorizers, the
//! integrations and the Lambda event all read the request from here, so nothing copies it
//! field by field.
//!
//! A data module: it depends on the tables and the dispatch, never on the phases that fill it.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::Deref;
use std::sync::Arc;

use hyper::header::HeaderValue;
use hyper::http::request::Parts;
use tollgate_crds::table::{GatewayTable, RouteTable, StageTable};

use crate::auth::Identity;
use crate::canary::Deployment;
use crate::dispatch::{KeyBinding, Target};
use crate::request_trace::{Phase, Propagate, TraceIds};
use crate::router::ServedRoute;
use crate::server::Hold;
use crate::tls::{ClientCert, TlsSession};

/// Where a connection comes from.
#[derive(Clone)]
pub struct Connection {
    pub peer: SocketAddr,
    /// The peer's address as text, made once per connection (`X-Forwarded-For`).
    pub peer_text: HeaderValue,
    pub scheme: &'static str,
    /// The handshake's outcome, on the TLS listener.
    pub tls: Option<Arc<TlsSession>>,
    /// The connection's claim on the proxy (its place under the connection cap, and the
    /// drain's wait), for what outlives the request: a WebSocket relay. `None` in tests.
    pub hold: Option<Hold>,
}

impl Connection {
    pub fn new(peer: SocketAddr, scheme: &'static str, tls: Option<Arc<TlsSession>>) -> Self {
        let peer_text = HeaderValue::from_str(&peer.ip().to_string())
            .expect("an IP address is a valid header value");
        Self {
            peer,
            peer_text,
            scheme,
            tls,
            hold: None,
        }
    }

    pub fn held(self, hold: Hold) -> Self {
        Self {
            hold: Some(hold),
            ..self
        }
    }
}

/// A request with its gateway and stage: what the phases before the route know.
pub struct RequestCtx<'a> {
    /// The request id (`x-amzn-RequestId`, `requestContext.requestId`).
    pub id: &'a str,
    pub received_at: jiff::Timestamp,
    pub conn: &'a Connection,
    /// The request's head; the body travels apart, to the body phase.
    pub parts: &'a Parts,
    /// The host the request is for: lowercased, without port.
    pub host: &'a str,
    /// The query string without '?', "" when none.
    pub query: &'a str,
    /// The gateway, the stage and the path relative to the stage.
    pub target: Target<'a>,
    /// The client's verified certificate, on a custom domain with mutual TLS.
    pub client_cert: Option<Arc<ClientCert>>,
    /// The client's address: the peer's, or from `X-Forwarded-For` when the peer is a
    /// trusted proxy (set by the policy phase).
    pub source_ip: IpAddr,
    /// Whether the request is a WebSocket handshake whose connection can be handed over
    /// ([`websocket`](crate::websocket)).
    pub websocket: bool,
    /// Its trace, on a traced stage ([`request_trace`](crate::request_trace)).
    pub trace: Option<TraceIds>,
}

impl RequestCtx<'_> {
    pub fn gateway(&self) -> &GatewayTable {
        &self.target.gateway.table
    }

    pub fn stage(&self) -> &StageTable {
        self.target.gateway.stage_table(self.target.stage)
    }

    /// The path relative to the stage.
    pub fn path(&self) -> &str {
        self.target.path
    }

    /// The path as the client sent it, with the stage or base path.
    pub fn raw_path(&self) -> &str {
        self.parts.uri.path()
    }

    /// The trace context a call made in `phase` carries, on a traced stage.
    pub fn propagate(&self, phase: Phase) -> Option<Propagate<'_>> {
        let ids = self.trace.as_ref()?;
        Some(match phase {
            Phase::Authorize => ids.call(ids.auth),
            Phase::Throttle | Phase::Integration => ids.call(ids.integration),
        })
    }
}

/// A request with its route: what the route phase on knows. Reads through to the
/// [`RequestCtx`] it extends.
pub struct RouteCtx<'a> {
    pub request: &'a RequestCtx<'a>,
    pub route: &'a ServedRoute,
    /// Path parameters, raw (as in the URL), in path order.
    pub params: Vec<(String, String)>,
    /// The stage's deployment that serves, when the stage has a canary.
    pub deployment: Option<Deployment>,
    /// The stage variables of that deployment.
    pub stage_variables: &'a BTreeMap<String, String>,
    /// Who the authorizer says the caller is (anonymous without one; set by the auth phase).
    pub identity: Arc<Identity>,
    /// The API key's binding to a usage plan, on a route that requires a key.
    pub binding: Option<&'a KeyBinding>,
}

impl<'a> Deref for RouteCtx<'a> {
    type Target = RequestCtx<'a>;

    fn deref(&self) -> &RequestCtx<'a> {
        self.request
    }
}

impl RouteCtx<'_> {
    pub fn route_table(&self) -> &RouteTable {
        &self.route.table
    }

    /// The path parameters with their values percent-decoded, as Lambda events carry them.
    pub fn decoded_params(&self) -> Vec<(String, String)> {
        self.params
            .iter()
            .map(|(name, raw)| {
                let value = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
                (name.clone(), value.into_owned())
            })
            .collect()
    }
}
