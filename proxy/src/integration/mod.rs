//! What answers a route: an HTTP backend, a Lambda function or a mock. Each gets the same
//! [`Call`]: the request as routed, and its body ([`RequestBody`]).

pub mod http;
pub mod lambda;
pub mod mock;

use std::collections::BTreeMap;
use std::net::IpAddr;

use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::{HeaderMap, Method, Response, Version};
use tollgate_crds::table::IntegrationTable;

use crate::auth::Identity;
use crate::body::Body;
use crate::errors::GatewayError;
use crate::request_body::{Bounded, Buffered};
use crate::router::ServedRoute;
use crate::tls::ClientCert;
use crate::upstream::Upstream;

/// A routed request, as the integrations see it.
pub struct Call<'a> {
    pub request_id: &'a str,
    pub method: &'a Method,
    pub version: Version,
    pub headers: &'a HeaderMap,
    /// The path as the client sent it, with the stage or base path.
    pub raw_path: &'a str,
    /// The path relative to the stage.
    pub path: &'a str,
    /// The query string without '?', "" when none.
    pub query: &'a str,
    /// The client's address (from `X-Forwarded-For` when the peer is a trusted proxy).
    pub source_ip: IpAddr,
    /// The address of the connection's peer: the client, or a proxy in front of it.
    pub peer_ip: IpAddr,
    /// `peer_ip` as text.
    pub peer_text: &'a HeaderValue,
    pub scheme: &'static str,
    /// The Host the client asked for (without port).
    pub host: &'a str,
    /// The request URI's authority (HTTP/2's `:authority`), port included, when it has one.
    pub authority: Option<&'a str>,
    pub gateway: &'a str,
    pub stage: &'a str,
    pub route: &'a ServedRoute,
    /// Path parameters, raw (as in the URL).
    pub params: &'a [(String, String)],
    pub stage_variables: &'a BTreeMap<String, String>,
    /// Who the authorizer says the caller is (empty without an authorizer).
    pub identity: &'a Identity,
    /// The client's verified certificate, on a custom domain with mutual TLS.
    pub client_cert: Option<&'a ClientCert>,
    pub received_at: jiff::Timestamp,
}

/// A request's body as the body phase hands it on.
pub enum RequestBody<'a> {
    /// Read whole (Lambda, mock), holding its share of the buffered-body budget.
    Whole(Buffered<'a>),
    /// Still arriving: an HTTP backend gets it as it comes.
    Stream(Bounded),
}

/// Runs the route's integration.
pub async fn invoke(
    call: &Call<'_>,
    body: RequestBody<'_>,
    upstream: &Upstream,
) -> Result<Response<Body>, GatewayError> {
    match &call.route.table.integration {
        IntegrationTable::Mock {
            status_code,
            headers,
            body,
        } => mock::respond(call, *status_code, headers, body),
        IntegrationTable::Http {
            backends,
            method,
            request_headers,
            timeout_millis,
        } => {
            http::forward(
                call,
                body,
                upstream,
                backends,
                *method,
                request_headers,
                *timeout_millis,
            )
            .await
        }
        IntegrationTable::Lambda {
            invoke_url,
            payload_format_version,
            timeout_millis,
            ..
        } => {
            let empty = Bytes::new();
            let bytes = match &body {
                RequestBody::Whole(buffered) => &buffered.bytes,
                RequestBody::Stream(_) => &empty,
            };
            lambda::invoke(
                call,
                bytes,
                upstream,
                invoke_url,
                *payload_format_version,
                *timeout_millis,
            )
            .await
        }
    }
}
