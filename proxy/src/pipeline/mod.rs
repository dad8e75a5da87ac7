//! The request path, phase by phase, in the order they run:
//!
//! 1. **gateway** — the head's limits, host and path to gateway and stage, then what the
//!    host asks of the connection: the HTTPS redirect, a custom domain's own handshake and
//!    client certificate ([`gateway`]);
//! 2. **policy** — the client's address against the resource policy
//!    ([`resource_policy`](crate::resource_policy));
//! 3. **preflight** — a CORS preflight is answered here ([`cors::preflight`]); a WebSocket
//!    API's requests go to [`managed::serve`] instead of the phases below: its handshake
//!    passes them on its `$connect` route;
//! 4. **route** — a path with dot-segments or encoded separators refused, then method and
//!    path to a route, then the stable or canary deployment ([`route`]);
//! 5. **auth** — the authorizer ([`auth::authorize`]), then the API key
//!    ([`api_key::binding`]); an `AWS_IAM` authorizer's signature covers the body, so on its
//!    routes phase 7 runs just before this one;
//! 6. **throttle** — gateway, route and per-key rates, and the key's quota
//!    ([`Limiter::admit`](crate::throttle::Limiter::admit));
//! 7. **validation and body** — a REST API route's required parameters, then the body:
//!    streamed to an HTTP proxy backend, read whole for Lambda, mocks, non-proxy integrations
//!    and a route that validates it against its model; bounded by the payload limit, a read
//!    deadline and the buffered-body budget ([`request_validation`], [`request_body`]);
//! 8. **integration** — HTTP, Lambda or mock ([`integration::invoke`]), through the stage
//!    cache on a route that caches there ([`cache::through`]);
//! 9. **response** — deployment and rate-limit headers ([`response`]), CORS headers
//!    ([`cors::decorate`]), then, on a REST API with `minimumCompressionSize`, the answer
//!    compressed for the client ([`response::compress`]);
//! 10. **log** — the metrics with the response head, one access-log line when the body has
//!     been sent ([`request_log`]; 499 when the client goes away first).
//!
//! A phase that fails ends the request with its [`GatewayError`]'s status and JSON body, as
//! the gateway's `gatewayResponses` customise it ([`crate::gateway_response`]).
//!
//! Each phase is a function of the [`Shared`] state and what the phases before it learned
//! ([`RequestCtx`], then [`RouteCtx`]); this file only runs them in order and fills the log
//! record from what they return. It is generic over the request body ([`ClientBody`]), so the
//! whole chain runs in-process in the tests below, on bodies made in the test.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use hyper::header::{HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Request, Response, StatusCode};
use tollgate_crds::table::{IntegrationTable, RateLimitMode};
use tollgate_telemetry::KeyValue;
use tollgate_telemetry::propagation::AMZN_TRACE_ID;
use tracing::Instrument;

use crate::access_log::AccessRecord;
use crate::body::{Body, ClientBody};
use crate::dispatch::Dispatch;
use crate::errors::{Fault, GatewayError};
use crate::request_ctx::{Connection, RequestCtx};
use crate::request_log::{Logged, LoggedBody};
use crate::request_trace::{Phase, Recording, StageTracing, TraceIds};
use crate::state::Shared;
use crate::throttle::Subject;
use crate::{
    api_key, auth, cache, cors, integration, managed, request_body, request_validation, websocket,
};

pub mod gateway;
pub mod response;
pub mod route;
#[cfg(test)]
mod tests;

/// The response header carrying the request id, as Amazon API Gateway's.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-amzn-requestid");

/// What is known of a request when it arrives, before any phase.
struct Arrival<'a> {
    id: &'a str,
    received_at: jiff::Timestamp,
    conn: &'a Connection,
    parts: &'a Parts,
    /// A WebSocket handshake whose connection can be handed over.
    websocket: bool,
}

/// Serves one request. Never fails: every error becomes a gateway response.
pub async fn handle<B: ClientBody>(
    shared: Arc<Shared>,
    conn: Arc<Connection>,
    request: Request<B>,
) -> Result<Response<LoggedBody>, Infallible> {
    let started = Instant::now();
    let received_at = jiff::Timestamp::now();
    let id = uuid::Uuid::new_v4();
    let mut id_text = uuid::Uuid::encode_buffer();
    let request_id: &str = id.hyphenated().encode_lower(&mut id_text);
    let dispatch = shared.dispatch.load_full();

    let (mut parts, body) = request.into_parts();
    // Phase 10 is armed from here: the line is written once, when the response has been
    // sent, or with 499 if the client goes away first.
    let mut log = Logged::new(
        shared.clone(),
        started,
        AccessRecord::arrived(id, received_at, conn.peer.ip(), &parts),
    );
    let client_upgrade = websocket::client_upgrade(&mut parts);

    // Spans (per request at debug, per phase at trace) cost a level check when off.
    let span = tracing::debug_span!(
        "request",
        id = request_id,
        method = %parts.method,
        path = parts.uri.path()
    );
    let arrival = Arrival {
        id: request_id,
        received_at,
        conn: &conn,
        parts: &parts,
        websocket: client_upgrade.is_some(),
    };
    let outcome = serve(&shared, &dispatch, arrival, body, &mut log)
        .instrument(span)
        .await;
    let mut response = outcome.unwrap_or_else(|error| refused(request_id, error, &mut log));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }

    // Phase 10: log (a WebSocket's when its connection ends).
    if client_upgrade.is_some() || response.status() == StatusCode::SWITCHING_PROTOCOLS {
        return Ok(websocket::answer(
            shared,
            &conn,
            client_upgrade,
            response,
            log,
            &parts.method,
        ));
    }
    Ok(log.answered(&parts.method, response))
}

/// Phases 1 to 3, then the rest ([`admitted`]); the CORS headers on every answer but a
/// preflight's.
async fn serve<B: ClientBody>(
    shared: &Shared,
    dispatch: &Dispatch,
    arrival: Arrival<'_>,
    body: B,
    log: &mut Logged,
) -> Result<Response<Body>, GatewayError> {
    let Arrival {
        id,
        received_at,
        conn,
        parts,
        websocket,
    } = arrival;

    // Phase 1: gateway and stage.
    let host = gateway::host_of(parts);
    if shared.access_log.enabled() {
        log.record.domain_name = Some(host.as_str().into());
    }
    let resolved = tracing::trace_span!("gateway")
        .in_scope(|| gateway::resolve(shared, dispatch, conn, parts, &host))?;
    let (target, client_cert) = match resolved {
        gateway::Resolved::Serve {
            target,
            client_cert,
        } => (target, client_cert),
        gateway::Resolved::Redirect(answer) => return Ok(answer),
    };
    log.record.gateway = Some(target.gateway.name.clone());
    log.record.stage = Some(target.stage.name.clone());
    if shared.access_log.enabled() {
        log.record.format = target.stage.access_log.clone();
    }
    // The trace, on a traced stage: the caller's continued, or a new one.
    let trace = target
        .stage
        .tracing
        .as_ref()
        .map(|tracing| begin_trace(shared, tracing, parts, received_at, log));

    // Phase 2: resource policy, on the client's address (X-Forwarded-For from trusted
    // proxies); before the preflight, so a refused client learns nothing of the API.
    let policy = &target.gateway.policy;
    let source_ip = policy.client_ip(conn.peer.ip(), &parts.headers);
    log.record.source_ip = source_ip;
    let ctx = RequestCtx {
        id,
        received_at,
        conn,
        parts,
        host: &host,
        query: parts.uri.query().unwrap_or(""),
        target,
        client_cert,
        source_ip,
        websocket,
        trace,
    };
    let cors = ctx.target.gateway.cors.as_ref();
    let outcome = match policy.check(source_ip) {
        Err(refused) => Err(refused),
        // A WebSocket API: the handshake or an `@connections` call (managed::serve).
        Ok(()) if ctx.gateway().websocket.is_some() => {
            managed::serve(shared, &ctx, body, log).await
        }
        Ok(()) => {
            // Phase 3: CORS preflight, answered by the gateway itself.
            if let Some(answer) =
                cors.and_then(|c| cors::preflight(c, &parts.method, &parts.headers))
            {
                return Ok(answer);
            }
            admitted(shared, &ctx, body, log).await
        }
    };

    // An HTTP API words some refusals its own way (404 `Not Found`, 500 `Internal Server
    // Error`).
    let http_api = ctx.gateway().http_api;
    let outcome = outcome.map_err(|e| if http_api { e.for_http_api() } else { e });
    // Every answer but a preflight's gets the CORS headers, errors included, so a browser
    // can read a 429 or a 403.
    let mut response = outcome.unwrap_or_else(|error| {
        note_refusal(id, &error, log);
        answer_refusal(&ctx, &error)
    });
    if let Some(c) = cors {
        cors::decorate(c, &parts.headers, &mut response);
    }
    // The trace the answer belongs to, as Amazon's `X-Amzn-Trace-Id`.
    if let Some(trace) = &ctx.trace {
        response
            .headers_mut()
            .insert(AMZN_TRACE_ID, trace.response_header());
    }
    // Last: the answer compressed, on a gateway that compresses (one `Option` check if not).
    if let Some(minimum) = response::compression(&ctx) {
        response = response::compress(&ctx, minimum, response).await;
    }
    Ok(response)
}

/// The phases after the preflight: route, auth, throttle, body, integration, response.
async fn admitted<B: ClientBody>(
    shared: &Shared,
    request: &RequestCtx<'_>,
    body: B,
    log: &mut Logged,
) -> Result<Response<Body>, GatewayError> {
    // Phase 4: route, and the deployment that serves it.
    let mut ctx =
        tracing::trace_span!("route").in_scope(|| route::find(request, shared.auth.anonymous()))?;
    log.record.route_key = Some(ctx.route.key.clone());
    log.record.deployment = ctx.deployment.map(|d| d.as_str());
    let metrics = route::metrics(shared, &ctx);
    log.route_metrics = Some(metrics.clone());

    // Phase 5: auth: the authorizer, then the API key (which the authorizer may give). An
    // AWS_IAM signature covers the body: on such a route phase 7 runs first, reading it whole.
    let body = if auth::reads_body(&ctx) {
        Pending::Read(
            request_body::take_whole(&ctx.parts.headers, body, &shared.body_limits)
                .instrument(tracing::trace_span!("body"))
                .await?,
        )
    } else {
        Pending::Unread(body)
    };
    let signed_payload = match &body {
        Pending::Read(read) => Some(&read.bytes[..]),
        Pending::Unread(_) => None,
    };
    // Phase spans read the clock only on a recorded request.
    let auth_started = log.trace.is_some().then(Instant::now);
    let identity = auth::authorize(&shared.auth, &shared.client, &ctx, signed_payload)
        .instrument(tracing::trace_span!("auth"))
        .await;
    if let (Some(recording), Some(name), Some(auth_started)) =
        (&mut log.trace, &ctx.route_table().authorizer, auth_started)
    {
        let attributes = vec![KeyValue::new("tollgate.authorizer", name.clone())];
        let error = identity.as_ref().err().map(ToString::to_string);
        recording.phase(Phase::Authorize, auth_started, attributes, error);
    }
    ctx.identity = identity?;
    log.record.set_identity(&ctx.identity);
    ctx.binding = api_key::binding(&ctx)?;
    log.record.api_key_id = ctx.binding.map(|b| b.tenant.clone());

    // Phase 6: throttle and quota.
    let fleet_size = shared.fleet_size.load(Ordering::Relaxed);
    let throttle_started = log.trace.is_some().then(Instant::now);
    let rate_status = shared
        .limiter
        .admit(&Subject::of(&ctx), fleet_size)
        .instrument(tracing::trace_span!("throttle"))
        .await;
    // A span when the counters are in Redis: a round trip worth seeing.
    if let (Some(recording), Some(throttle_started)) = (&mut log.trace, throttle_started)
        && ctx.gateway().rate_limiting.mode == RateLimitMode::Redis
    {
        let attributes = vec![KeyValue::new("db.system.name", "redis")];
        let error = rate_status.as_ref().err().map(|r| r.error.to_string());
        recording.phase(Phase::Throttle, throttle_started, attributes, error);
    }
    let rate_status = rate_status.inspect_err(|refused| metrics.observe_throttled(refused.by))?;

    // Phase 7: request validation, then the body (already read whole for an AWS_IAM route;
    // read whole here for a route that validates it).
    request_validation::parameters(&ctx)?;
    let integration = &ctx.route.table.integration;
    let body = match body {
        Pending::Read(read) => request_body::RequestBody::Whole(read),
        Pending::Unread(client_body) if request_validation::checks_body(&ctx) => {
            request_body::RequestBody::Whole(
                request_body::take_whole(&ctx.parts.headers, client_body, &shared.body_limits)
                    .instrument(tracing::trace_span!("body"))
                    .await?,
            )
        }
        Pending::Unread(client_body) => {
            request_body::take(
                integration,
                &ctx.parts.headers,
                client_body,
                &shared.body_limits,
            )
            .instrument(tracing::trace_span!("body"))
            .await?
        }
    };

    if let request_body::RequestBody::Whole(read) = &body {
        request_validation::body(&ctx, &ctx.target.gateway.models, &read.bytes)?;
    }

    // Phase 8: integration.
    // Through the stage cache when the route caches there.
    let started = Instant::now();
    let call = || integration::invoke(&ctx, body, &shared.client);
    let outcome = match (&ctx.target.stage.cache, &ctx.route_table().cache) {
        (Some(cache), Some(route_cache)) => {
            Box::pin(cache::through(&ctx, cache, route_cache, &metrics, call))
                .instrument(tracing::trace_span!("integration"))
                .await
        }
        _ => call().instrument(tracing::trace_span!("integration")).await,
    };
    let elapsed = started.elapsed();
    if let Some(recording) = &mut log.trace {
        recording.phase(
            Phase::Integration,
            started,
            integration_attributes(integration, &outcome),
            outcome.as_ref().err().map(ToString::to_string),
        );
    }
    log.record.integration_latency = Some(elapsed.as_millis() as u64);
    log.record.integration_status = outcome.as_ref().ok().map(|a| a.status().as_u16());
    metrics.observe_integration(elapsed.as_secs_f64());
    let mut answer = outcome.inspect_err(|e| {
        let (gateway, stage) = (&ctx.target.gateway.name, &ctx.target.stage.name);
        shared
            .metrics
            .upstream_error(gateway, stage, upstream_error_kind(e));
    })?;

    // Phase 9: response headers.
    response::decorate(&ctx, rate_status, &mut answer);
    Ok(answer)
}

/// Reads the caller's trace context, decides whether the request is recorded, and arms the
/// recording in the log phase if so.
fn begin_trace(
    shared: &Shared,
    tracing: &StageTracing,
    parts: &Parts,
    received_at: jiff::Timestamp,
    log: &mut Logged,
) -> TraceIds {
    let ids = TraceIds::begin(tracing, &parts.headers);
    log.record.trace_id = Some(ids.trace_id.to_bytes());
    log.trace = Recording::begin(
        &shared.tracers,
        tracing,
        &ids,
        SystemTime::from(received_at),
        log.started(),
    );
    ids
}

/// What the integration span says of the call.
fn integration_attributes(
    integration: &IntegrationTable,
    outcome: &Result<Response<Body>, GatewayError>,
) -> Vec<KeyValue> {
    let kind = match integration {
        IntegrationTable::Http { .. } => "http",
        IntegrationTable::Lambda { .. } => "lambda",
        IntegrationTable::Mock { .. } => "mock",
    };
    let mut attributes = vec![KeyValue::new("tollgate.integration.type", kind)];
    if let Ok(answer) = outcome {
        attributes.push(KeyValue::new(
            "http.response.status_code",
            i64::from(answer.status().as_u16()),
        ));
    }
    attributes
}

/// The body between phases 5 and 7: read whole early for an authorizer that signs it, or
/// still the client's.
enum Pending<'a, B> {
    Read(request_body::Buffered<'a>),
    Unread(B),
}

/// The gateway response for a phase's refusal, logged and put in the access record.
pub(crate) fn refused(request_id: &str, error: GatewayError, log: &mut Logged) -> Response<Body> {
    note_refusal(request_id, &error, log);
    error.into_response()
}

/// A refusal into the log and the access record.
fn note_refusal(request_id: &str, error: &GatewayError, log: &mut Logged) {
    log_refusal(request_id, error);
    log.record.error_message = Some(error.to_string());
    log.record.error_type = Some(error.response_type().as_str());
    if log.record.format.is_some() {
        log.record.gateway_message = error.full_message().map(String::from);
    }
}

/// The gateway's answer to a refusal: the default one, as its `gatewayResponses` customise it.
fn answer_refusal(ctx: &RequestCtx<'_>, error: &GatewayError) -> Response<Body> {
    let responses = &ctx.target.gateway.responses;
    if responses.is_empty() {
        return error.to_response();
    }
    // `method.request.path.NAME` needs the route's parameters: found again, on this rare path.
    let params = ctx
        .target
        .stage
        .router
        .find(&ctx.parts.method, ctx.path())
        .map(|found| found.params)
        .unwrap_or_default();
    responses.answer(error, ctx, &params, error.to_response())
}

/// How an integration failed, as `tollgate_upstream_errors_total` counts it.
fn upstream_error_kind(error: &GatewayError) -> &'static str {
    match error {
        GatewayError::IntegrationTimeout => "timeout",
        GatewayError::IntegrationFailure(_) => "connect",
        GatewayError::BadLambdaResult(_) => "bad_result",
        _ => "other",
    }
}

fn log_refusal(request_id: &str, error: &GatewayError) {
    match error.fault() {
        Fault::Client => {
            tracing::debug!(request_id = %request_id, error = %error, "request refused")
        }
        Fault::Upstream | Fault::Gateway => {
            tracing::warn!(request_id = %request_id, error = %error, fault = ?error.fault(), "request failed")
        }
    }
}
