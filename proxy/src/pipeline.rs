//! The request path, phase by phase, in the order they run:
//!
//! 1. **gateway** — host and path to gateway and stage ([`Dispatch::resolve`]), then what
//!    the host asks of the connection: the HTTPS redirect, a custom domain's own handshake
//!    and client certificate ([`transport`]);
//! 2. **policy** — the client's address against the resource policy
//!    ([`resource_policy`](crate::resource_policy));
//! 3. **preflight** — a CORS preflight is answered here ([`cors::preflight`]);
//! 4. **route** — a path with dot-segments or encoded separators refused
//!    ([`request_path::check`]), then method and path to a route
//!    ([`StageRouter::find`](crate::router::StageRouter::find));
//! 5. **auth** — stable or canary deployment ([`canary`]), the authorizer
//!    ([`auth::authorize`]), then the API key ([`api_key::check`]);
//! 6. **throttle** — gateway, route and per-key rates, and the key's quota
//!    ([`Limiter::admit`]);
//! 7. **body** — streamed to an HTTP backend, read whole for Lambda and mocks; bounded by
//!    the payload limit, a read deadline and the buffered-body budget ([`request_body`]);
//! 8. **integration** — HTTP, Lambda or mock ([`integration::invoke`]);
//! 9. **response** — deployment, rate-limit and CORS headers;
//! 10. **log** — the metrics with the response head, one access-log line when the body has
//!     been sent ([`request_log`]; 499 when the client goes away first).
//!
//! A phase that fails ends the request with its [`GatewayError`]'s status and JSON body.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Request, Response};
use tollgate_crds::resources::ApiKeySource;
use tollgate_crds::table::IntegrationTable;
use tracing::Instrument;

use crate::access_log::AccessRecord;
use crate::auth::{self, AuthRequest};
use crate::body::Body;
use crate::canary::{self, DEPLOYMENT_HEADER};
use crate::dispatch::Dispatch;
use crate::dispatch::Target;
use crate::errors::{Fault, GatewayError};
use crate::integration::{self, Call, RequestBody};
use crate::metrics::RequestLabels;
use crate::request_body;
use crate::request_log::{Logged, LoggedBody};
use crate::state::Shared;
use crate::throttle;
use crate::tls::{ClientCert, TlsSession};
use crate::{api_key, cors, head, request_path, transport};

/// The response header carrying the request id, as Amazon API Gateway's.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-amzn-requestid");

/// Where a connection comes from.
#[derive(Clone, Debug)]
pub struct Connection {
    pub peer: SocketAddr,
    /// The peer's address as text, made once per connection (`X-Forwarded-For`).
    pub peer_text: HeaderValue,
    pub scheme: &'static str,
    /// The handshake's outcome, on the TLS listener.
    pub tls: Option<Arc<TlsSession>>,
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
        }
    }
}

/// Serves one request. Never fails: every error becomes a gateway response.
pub async fn handle(
    shared: Arc<Shared>,
    conn: Connection,
    request: Request<Incoming>,
) -> Result<Response<LoggedBody>, Infallible> {
    let started = Instant::now();
    let received_at = jiff::Timestamp::now();
    let id = uuid::Uuid::new_v4();
    let mut id_text = uuid::Uuid::encode_buffer();
    let request_id: &str = id.hyphenated().encode_lower(&mut id_text);
    let dispatch = shared.dispatch.load_full();

    let (parts, body) = request.into_parts();
    // Phase 10 is armed from here: the line is written once, when the response has been
    // sent, or with 499 if the client goes away first.
    let mut log = Logged::new(
        shared.clone(),
        started,
        AccessRecord::arrived(id, received_at, conn.peer.ip(), &parts),
    );

    // Spans (per request at debug, per phase at trace) cost a level check when off.
    let span = tracing::debug_span!(
        "request",
        id = request_id,
        method = %parts.method,
        path = parts.uri.path()
    );
    let outcome = serve(
        &shared,
        &dispatch,
        &conn,
        &parts,
        body,
        request_id,
        received_at,
        &mut log,
    )
    .instrument(span)
    .await;
    let mut response = outcome.unwrap_or_else(|error| {
        log_refusal(request_id, &error);
        log.record.error_message = Some(error.to_string());
        error.into_response()
    });
    if let Ok(v) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }

    // Phase 10: log.
    Ok(log.answered(&parts.method, response))
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    shared: &Shared,
    dispatch: &Dispatch,
    conn: &Connection,
    parts: &hyper::http::request::Parts,
    body: Incoming,
    request_id: &str,
    received_at: jiff::Timestamp,
    log: &mut Logged,
) -> Result<Response<Body>, GatewayError> {
    // Phase 0: the head's limits, counted as Amazon API Gateway counts them, and one host.
    head::check(parts)?;

    // Phase 1: gateway and stage.
    let host = host_of(parts).to_ascii_lowercase();
    let target =
        tracing::trace_span!("gateway").in_scope(|| dispatch.resolve(&host, parts.uri.path()))?;
    let gateway = &target.gateway.table;
    log.record.gateway = Some(target.gateway.name.clone());
    log.record.stage = Some(target.stage.name.clone());
    if let Some(port) = shared.https_port.filter(|_| gateway.redirect_to_https)
        && conn.tls.is_none()
    {
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        return Ok(transport::https_redirect(&parts.method, &host, path, port));
    }
    let client_cert = transport::check(conn.tls.as_deref(), target.domain)?;

    // Phase 2: resource policy, on the client's address (X-Forwarded-For from trusted
    // proxies); before the preflight, so a refused client learns nothing of the API.
    let policy = &target.gateway.policy;
    let source_ip = policy.client_ip(conn.peer.ip(), &parts.headers);
    log.record.source_ip = source_ip;
    let cors = target.gateway.cors.as_ref();
    let outcome = match policy.check(source_ip) {
        Err(refused) => Err(refused),
        Ok(()) => {
            // Phase 3: CORS preflight, answered by the gateway itself.
            if let Some(answer) =
                cors.and_then(|c| cors::preflight(c, &parts.method, &parts.headers))
            {
                return Ok(answer);
            }
            admitted(
                shared,
                &target,
                conn,
                client_cert.as_deref(),
                source_ip,
                parts,
                body,
                request_id,
                received_at,
                &host,
                log,
            )
            .await
        }
    };

    // Every answer but a preflight's gets the CORS headers, errors included, so a browser
    // can read a 429 or a 403.
    let mut response = outcome.unwrap_or_else(|error| {
        log_refusal(request_id, &error);
        log.record.error_message = Some(error.to_string());
        error.into_response()
    });
    if let Some(c) = cors {
        cors::decorate(c, &parts.headers, &mut response);
    }
    Ok(response)
}

/// The phases after the preflight: route, auth, throttle, body, integration.
#[allow(clippy::too_many_arguments)]
async fn admitted(
    shared: &Shared,
    target: &Target<'_>,
    conn: &Connection,
    client_cert: Option<&ClientCert>,
    source_ip: IpAddr,
    parts: &hyper::http::request::Parts,
    body: Incoming,
    request_id: &str,
    received_at: jiff::Timestamp,
    host: &str,
    log: &mut Logged,
) -> Result<Response<Body>, GatewayError> {
    let gateway = &target.gateway.table;
    let stage = target.gateway.stage_table(target.stage);

    // Phase 4: route, on a path with no dot-segment or encoded separator, so that the route
    // matched (and authorised) is the resource the backend serves.
    let found = tracing::trace_span!("route").in_scope(|| {
        request_path::check(target.path)?;
        target
            .stage
            .router
            .find(&parts.method, target.path)
            .ok_or(GatewayError::MissingAuthenticationToken)
    })?;
    let route = &found.route.table;
    log.record.route_key = Some(found.route.key.clone());
    let metrics = found
        .route
        .metrics
        .get_or_init(|| {
            Arc::new(shared.metrics.route(&RequestLabels {
                gateway: &target.gateway.name,
                stage: &target.stage.name,
                route: &found.route.key,
            }))
        })
        .clone();
    log.route_metrics = Some(metrics.clone());

    // Phase 5: auth. The deployment is chosen first: identity sources may be stage variables.
    let (deployment, stage_variables) = canary::choose(stage, &parts.headers);
    log.record.deployment = deployment.map(|d| d.as_str());
    let query = parts.uri.query().unwrap_or("");
    let identity = auth::authorize(
        &shared.auth,
        &shared.client,
        &AuthRequest {
            request_id,
            method: &parts.method,
            headers: &parts.headers,
            query,
            raw_path: parts.uri.path(),
            path: target.path,
            source_ip,
            host,
            gateway,
            stage: &stage.name,
            route,
            params: &found.params,
            stage_variables,
            client_cert,
        },
    )
    .instrument(tracing::trace_span!("auth"))
    .await?;
    let binding = if route.api_key_required {
        let presented = match gateway.api_key_source {
            ApiKeySource::HEADER => api_key::from_header(&parts.headers),
            ApiKeySource::AUTHORIZER => identity.usage_identifier_key.as_deref(),
        };
        let binding = api_key::check(presented, target.stage)?;
        log.record.api_key_id = Some(binding.tenant.clone());
        Some(binding)
    } else {
        None
    };

    // Phase 6: throttle and quota.
    let subject = throttle::Subject {
        gateway,
        stage: &stage.name,
        route,
        route_bucket: &found.route.bucket,
        gateway_bucket: &target.gateway.bucket,
        plan: binding.map(|b| (&gateway.usage_plans[b.plan], b.tenant.as_str())),
    };
    let fleet_size = shared.fleet_size.load(Ordering::Relaxed);
    let rate_status = shared
        .limiter
        .admit(&subject, fleet_size)
        .instrument(tracing::trace_span!("throttle"))
        .await?;

    // Phase 7: body: streamed to an HTTP backend as it arrives, read whole for the others.
    let body = match route.integration {
        IntegrationTable::Http { .. } => RequestBody::Stream(request_body::stream(
            &parts.headers,
            body,
            shared.body_limits.read_timeout,
        )?),
        _ => RequestBody::Whole(
            request_body::read(&parts.headers, body, &shared.body_limits)
                .instrument(tracing::trace_span!("body"))
                .await?,
        ),
    };

    // Phase 8: integration.
    let call = Call {
        request_id,
        method: &parts.method,
        version: parts.version,
        headers: &parts.headers,
        raw_path: parts.uri.path(),
        path: target.path,
        query,
        source_ip,
        peer_ip: conn.peer.ip(),
        peer_text: &conn.peer_text,
        scheme: conn.scheme,
        host,
        authority: parts.uri.authority().map(|a| a.as_str()),
        gateway: &gateway.gateway.name,
        stage: &stage.name,
        route: found.route,
        params: &found.params,
        stage_variables,
        identity: &identity,
        client_cert,
        received_at,
    };
    let integration_started = Instant::now();
    if shared.access_log.enabled() {
        log.record.domain_name = Some(host.into());
    }
    let outcome = integration::invoke(&call, body, &shared.client)
        .instrument(tracing::trace_span!("integration"))
        .await;
    let integration_elapsed = integration_started.elapsed();
    log.record.integration_latency = Some(integration_elapsed.as_millis() as u64);
    metrics.observe_integration(integration_elapsed.as_secs_f64());
    let mut response = outcome.inspect_err(|e| {
        let kind = match e {
            GatewayError::IntegrationTimeout => "timeout",
            GatewayError::IntegrationFailure(_) => "connect",
            GatewayError::BadLambdaResult(_) => "bad_result",
            _ => "other",
        };
        shared
            .metrics
            .upstream_error(&target.gateway.name, &target.stage.name, kind);
    })?;

    // Phase 9: response headers.
    if let Some(d) = deployment {
        response
            .headers_mut()
            .insert(DEPLOYMENT_HEADER, HeaderValue::from_static(d.as_str()));
    }
    if let Some(status) = rate_status {
        status.write_headers(response.headers_mut(), false);
    }
    Ok(response)
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

/// The host the request is for, without port, lowercased: the URI's authority (HTTP/2, or an
/// absolute-form request) or the Host header.
fn host_of(parts: &hyper::http::request::Parts) -> &str {
    let raw = parts
        .uri
        .authority()
        .map(|a| a.host())
        .or_else(|| header_str(&parts.headers, header::HOST))
        .unwrap_or("");
    strip_port(raw)
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map(|(h, _)| &host[..=h.len()])
            .unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

fn header_str(headers: &hyper::HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::strip_port;

    #[test]
    fn ports_are_stripped_from_hosts() {
        assert_eq!(
            strip_port("hello.default.localhost:8080"),
            "hello.default.localhost"
        );
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
    }
}
