//! The request path, phase by phase, in the order they run:
//!
//! 1. **gateway** — host and path to gateway and stage ([`Dispatch::resolve`]), then what
//!    the host asks of the connection: the HTTPS redirect, a custom domain's own handshake
//!    and client certificate ([`transport`]);
//! 2. **policy** — the client's address against the resource policy
//!    ([`resource_policy`](crate::resource_policy));
//! 3. **preflight** — a CORS preflight is answered here ([`cors::preflight`]);
//! 4. **route** — method and path to a route
//!    ([`StageRouter::find`](crate::router::StageRouter::find));
//! 5. **auth** — stable or canary deployment ([`canary`]), the authorizer
//!    ([`auth::authorize`]), then the API key ([`api_key::check`]);
//! 6. **throttle** — gateway, route and per-key rates, and the key's quota
//!    ([`Limiter::admit`]);
//! 7. **body** — read, bounded by the payload limit;
//! 8. **integration** — HTTP, Lambda or mock ([`integration::invoke`]);
//! 9. **response** — deployment, rate-limit and CORS headers;
//! 10. **log** — one access-log line and the metrics (`Logged`; 499 when the client goes
//!     away first).
//!
//! A phase that fails ends the request with its [`GatewayError`]'s status and JSON body.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response};
use tollgate_crds::resources::ApiKeySource;

use crate::access_log::{AccessLog, AccessRecord};
use crate::auth::{self, AuthRequest, AuthState};
use crate::body::Body;
use crate::canary::{self, DEPLOYMENT_HEADER};
use crate::client::HttpClient;
use crate::dispatch::Dispatch;
use crate::dispatch::Target;
use crate::errors::{Fault, GatewayError};
use crate::integration::{self, Call};
use crate::metrics::{Metrics, RequestLabels};
use crate::throttle::{self, Limiter};
use crate::tls::{ClientCert, TlsSession};
use crate::{api_key, cors, head, transport};

/// Amazon API Gateway's payload limit.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// The response header carrying the request id, as Amazon API Gateway's.
pub const REQUEST_ID_HEADER: &str = "x-amzn-requestid";

/// What every request shares: the tables being served and the proxy's plumbing.
pub struct Shared {
    /// The current dispatch; a request holds the one it started with until it ends.
    pub dispatch: ArcSwap<Dispatch>,
    pub client: HttpClient,
    pub metrics: Metrics,
    pub access_log: AccessLog,
    /// How many proxies serve the gateway (fleet mode, from the controller; 1 otherwise): in
    /// local rate-limiting mode each proxy enforces `1 / fleet_size` of every rate.
    pub fleet_size: AtomicU32,
    /// Signing keys and cached authorizer answers.
    pub auth: AuthState,
    /// Throttle and quota counters.
    pub limiter: Limiter,
    /// The port HTTPS redirects name, when the proxy serves TLS.
    pub https_port: Option<u16>,
}

/// Where a connection comes from.
#[derive(Clone, Debug)]
pub struct Connection {
    pub peer: SocketAddr,
    pub scheme: &'static str,
    /// The handshake's outcome, on the TLS listener.
    pub tls: Option<Arc<TlsSession>>,
}

/// Serves one request. Never fails: every error becomes a gateway response.
pub async fn handle(
    shared: Arc<Shared>,
    conn: Connection,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let received_at = jiff::Timestamp::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let dispatch = shared.dispatch.load_full();

    let (parts, body) = request.into_parts();
    // Phase 10 is armed from here: the line is written once, with the response, or with 499
    // if the client goes away first.
    let mut log = Logged {
        shared: &shared,
        started,
        record: AccessRecord {
            request_id: request_id.clone(),
            request_time: received_at.to_string(),
            source_ip: conn.peer.ip().to_string(),
            http_method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            protocol: format!("{:?}", parts.version),
            user_agent: header_str(&parts.headers, header::USER_AGENT).map(str::to_string),
            ..AccessRecord::default()
        },
        written: false,
    };

    let outcome = serve(
        &shared,
        &dispatch,
        &conn,
        &parts,
        body,
        &request_id,
        received_at,
        &mut log.record,
    )
    .await;
    let mut response = outcome.unwrap_or_else(|error| {
        log_refusal(&request_id, &error);
        log.record.error_message = Some(error.to_string());
        error.into_response()
    });
    if let Ok(v) = HeaderValue::try_from(request_id.as_str()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }

    // Phase 10: log.
    log.answered(&response);
    Ok(response)
}

/// Phase 10, armed when the request arrives: its access-log line and metrics, written exactly
/// once. [`answered`](Self::answered) writes them with the response. When hyper drops the
/// request first, because its client went away (the connection closed, or the HTTP/2 stream
/// was reset), `Drop` writes them with 499, as nginx logs a request nobody waits for any
/// more. (Requests still running when the drain ends are dropped after the access log's last
/// flush, so their lines may be lost.)
struct Logged<'a> {
    shared: &'a Shared,
    started: Instant,
    record: AccessRecord,
    written: bool,
}

impl Logged<'_> {
    fn answered(mut self, response: &Response<Body>) {
        // The header when a backend sent one; else the body's size when it is known (mocks
        // and gateway responses, whose Content-Length hyper adds later).
        self.record.response_length = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .or_else(|| hyper::body::Body::size_hint(response.body()).exact());
        self.write(response.status().as_u16());
    }

    fn write(&mut self, status: u16) {
        let elapsed = self.started.elapsed();
        self.record.status = status;
        self.record.response_latency = elapsed.as_millis() as u64;
        let record = &self.record;
        self.shared.metrics.observe_request(
            &RequestLabels {
                gateway: record.gateway.as_deref().unwrap_or(""),
                stage: record.stage.as_deref().unwrap_or(""),
                route: record.route_key.as_deref().unwrap_or(""),
            },
            record.status,
            elapsed.as_secs_f64(),
        );
        self.shared.access_log.write(record);
        self.written = true;
    }
}

impl Drop for Logged<'_> {
    fn drop(&mut self) {
        if !self.written {
            let gone = GatewayError::ClientClosed;
            self.record.error_message = Some(gone.to_string());
            self.write(gone.status().as_u16());
        }
    }
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
    record: &mut AccessRecord,
) -> Result<Response<Body>, GatewayError> {
    // Phase 0: the head's limits, counted as Amazon API Gateway counts them, and one host.
    head::check(parts)?;

    // Phase 1: gateway and stage.
    let host = host_of(parts).to_ascii_lowercase();
    let target = dispatch.resolve(&host, parts.uri.path())?;
    let gateway = &target.gateway.table;
    let stage = target.gateway.stage_table(target.stage);
    record.gateway = Some(gateway.gateway.to_string());
    record.stage = Some(stage.name.clone());
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
    record.source_ip = source_ip.to_string();
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
                record,
            )
            .await
        }
    };

    // Every answer but a preflight's gets the CORS headers, errors included, so a browser
    // can read a 429 or a 403.
    let mut response = outcome.unwrap_or_else(|error| {
        log_refusal(request_id, &error);
        record.error_message = Some(error.to_string());
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
    record: &mut AccessRecord,
) -> Result<Response<Body>, GatewayError> {
    let gateway = &target.gateway.table;
    let stage = target.gateway.stage_table(target.stage);

    // Phase 4: route.
    let found = target
        .stage
        .router
        .find(&parts.method, target.path)
        .ok_or(GatewayError::MissingAuthenticationToken)?;
    let route = &found.route.table;
    record.route_key = Some(route.route_key.clone());

    // Phase 5: auth. The deployment is chosen first: identity sources may be stage variables.
    let (deployment, stage_variables) = canary::choose(stage, &parts.headers);
    record.deployment = deployment.map(|d| d.as_str());
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
    .await?;
    let binding = if route.api_key_required {
        let presented = match gateway.api_key_source {
            ApiKeySource::HEADER => api_key::from_header(&parts.headers),
            ApiKeySource::AUTHORIZER => identity.usage_identifier_key.as_deref(),
        };
        let binding = api_key::check(presented, target.stage)?;
        record.api_key_id = Some(binding.tenant.clone());
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
    let rate_status = shared.limiter.admit(&subject, fleet_size).await?;

    // Phase 7: body.
    let body = read_body(&parts.headers, body).await?;

    // Phase 8: integration.
    let call = Call {
        request_id,
        method: &parts.method,
        version: parts.version,
        headers: &parts.headers,
        raw_path: parts.uri.path(),
        path: target.path,
        query,
        body,
        source_ip,
        peer_ip: conn.peer.ip(),
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
    record.domain_name = Some(host.to_string());
    let outcome = integration::invoke(&call, &shared.client).await;
    let integration_elapsed = integration_started.elapsed();
    record.integration_latency = Some(integration_elapsed.as_millis() as u64);
    let labels = RequestLabels {
        gateway: record.gateway.as_deref().unwrap_or(""),
        stage: &stage.name,
        route: &route.route_key,
    };
    shared
        .metrics
        .observe_integration(&labels, integration_elapsed.as_secs_f64());
    let mut response = outcome.inspect_err(|e| {
        let kind = match e {
            GatewayError::IntegrationTimeout => "timeout",
            GatewayError::IntegrationFailure(_) => "connect",
            GatewayError::BadLambdaResult(_) => "bad_result",
            _ => "other",
        };
        shared
            .metrics
            .upstream_error(labels.gateway, labels.stage, kind);
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

/// Reads the body up to the payload limit: 413 `Request Too Long` past it, refused early when
/// `Content-Length` already says so.
async fn read_body(headers: &hyper::HeaderMap, body: Incoming) -> Result<Bytes, GatewayError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(GatewayError::RequestTooLong);
    }
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(GatewayError::RequestTooLong),
        Err(e) if client_went_away(&*e) => Err(GatewayError::ClientClosed),
        Err(e) => Err(GatewayError::BadRequest(format!(
            "reading the request body: {e}"
        ))),
    }
}

/// Whether reading a body failed because the client went away: an HTTP/1 body cut short by
/// the connection's end or reset, or an HTTP/2 stream the client reset. Anything else (a
/// malformed chunk, say) is the client's bad request.
fn client_went_away(error: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    let Some(error) = error.downcast_ref::<hyper::Error>() else {
        return false;
    };
    let source = std::error::Error::source(error);
    let closed = source
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .is_some_and(|io| {
            matches!(
                io.kind(),
                UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
            )
        });
    let reset = source
        .and_then(|s| s.downcast_ref::<h2::Error>())
        .is_some_and(|h2| h2.is_reset() && h2.is_remote());
    error.is_incomplete_message() || closed || reset
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
