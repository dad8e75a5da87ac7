//! `$connect`: whether a WebSocket handshake is admitted. The phases an ordinary request
//! passes run on the `$connect` route (authorizer, API key, throttle and quota; the resource
//! policy has run before), then its integration gets the `CONNECT` event: a 2xx answer
//! accepts the connection, any other is the handshake's answer, as Amazon API Gateway
//! refuses a connection. Without a `$connect` route every handshake that reaches the stage is
//! accepted.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use tracing::Instrument;

use super::event::{Detail, Event};
use super::{Accepted, Peer, invoke};
use crate::body::{Body, full};
use crate::errors::GatewayError;
use crate::request_ctx::{RequestCtx, RouteCtx};
use crate::request_log::Logged;
use crate::state::Shared;
use crate::throttle::Subject;
use crate::{api_key, auth, canary};

/// Admits the handshake or refuses it; an admitted one is answered 101 with the
/// [`Accepted`] connection on the response.
pub async fn admit(
    shared: &Shared,
    ctx: &RequestCtx<'_>,
    log: &mut Logged,
) -> Result<Response<Body>, GatewayError> {
    let Some(settings) = ctx.gateway().websocket.clone() else {
        return Err(GatewayError::Configuration("not a WebSocket API".into()));
    };
    // RFC 6455, section 4.2.1: without a key (or in another version) there is no handshake
    // to answer. (An HTTP/2 one has been given a key of the proxy's making.)
    let headers = &ctx.parts.headers;
    if !headers.contains_key(header::SEC_WEBSOCKET_KEY)
        || headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err(GatewayError::BadRequest(
            "a WebSocket handshake needs Sec-WebSocket-Key and Sec-WebSocket-Version: 13".into(),
        ));
    }
    let mut peer = Peer {
        connection_id: shared.managed.registry.new_id(),
        connected_at: ctx.received_at,
        gateway: ctx.gateway().gateway.clone(),
        stage: ctx.target.stage.name.clone(),
        domain_name: ctx.host.to_string(),
        source_ip: ctx.source_ip,
        user_agent: ctx
            .parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        identity: shared.auth.anonymous(),
    };

    if log.record.format.is_some() {
        log.record.connection_id = Some(peer.connection_id.as_str().into());
        log.record.event_type = Some("CONNECT");
    }

    if let Some(route) = ctx.target.stage.router.by_key("$connect") {
        log.record.route_key = Some(route.key.clone());
        let (deployment, stage_variables) = canary::choose(ctx.stage(), &ctx.parts.headers);
        let mut call = RouteCtx {
            request: ctx,
            route,
            params: Vec::new(),
            deployment,
            stage_variables,
            identity: shared.auth.anonymous(),
            binding: None,
        };
        // A handshake has no body: an AWS_IAM signature covers the empty one.
        call.identity = auth::authorize(&shared.auth, &shared.client, &call, Some(&[]))
            .instrument(tracing::trace_span!("auth"))
            .await?;
        log.record.set_identity(&call.identity);
        call.binding = api_key::binding(&call)?;
        log.record.api_key_id = call.binding.map(|b| b.tenant.clone());
        let fleet_size = shared.fleet_size.load(Ordering::Relaxed);
        shared
            .limiter
            .admit(&Subject::of(&call), fleet_size)
            .instrument(tracing::trace_span!("throttle"))
            .await?;
        peer.identity = call.identity.clone();

        let event = Event {
            peer: &peer,
            route_key: "$connect",
            request_id: ctx.id,
            received_at: ctx.received_at,
            detail: Detail::Connect {
                headers: &ctx.parts.headers,
                raw_query: ctx.query,
            },
        };
        let answer = invoke::invoke(&shared.client, route, stage_variables, &event)
            .instrument(tracing::trace_span!("integration"))
            .await?;
        if !answer.status.is_success() {
            let mut refused = Response::new(full(answer.body));
            *refused.status_mut() = answer.status;
            return Ok(refused);
        }
    }

    // Prepared for the session, which is made sure to be reachable through the bus before
    // the client learns it is connected.
    if let Some(redis) = &settings.redis {
        shared
            .managed
            .bus
            .listen(redis, &shared.managed.registry)
            .await;
    }
    let mut response = switching(&ctx.parts.headers);
    response.extensions_mut().insert(Accepted {
        peer: Arc::new(peer),
        settings: Arc::new(settings),
    });
    Ok(response)
}

/// The 101 answer to an HTTP/1.1 handshake (an HTTP/2 one has been given a key of the
/// proxy's making, and gets 200 instead: [`websocket`](crate::websocket)).
fn switching(request: &hyper::HeaderMap) -> Response<Body> {
    let mut response = Response::new(full(bytes::Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Some(key) = request.get(header::SEC_WEBSOCKET_KEY) {
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        if let Ok(accept) = HeaderValue::try_from(accept) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
    }
    response
}
