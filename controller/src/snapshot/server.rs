//! The snapshot service's HTTPS endpoints (HTTP/2, or HTTP/1.1 with chunked bodies), as
//! `tollgate_crds::snapshot` describes them:
//!
//! - `GET /v1/subscribe?gateway={namespace}/{name}` (header `x-tollgate-proxy-id`): 401 without
//!   an authenticated bearer token, 403 when the token is not the gateway's proxy
//!   ServiceAccount, 404 for an unknown gateway, 503 while the controller starts; otherwise a
//!   newline-delimited JSON stream of `SnapshotFrame`s: the current table at once (when the
//!   gateway has one), then one frame each time its version or the fleet size changes. The
//!   proxy is part of the fleet while the stream is open.
//! - `POST /v1/ack` with an `Ack`: authenticated the same way, for the ack's gateway; 204.
//! - `POST /v1/usage` with a `UsageReport` (a proxy's usage counts, `crate::usage`):
//!   authenticated the same way, for the report's gateway; 204.
//! - `GET /usage/v1/namespaces/{namespace}/usageplans/{name}?startDate=&endDate=`: Amazon's
//!   `GetUsage` (`crate::usage::api`), for anyone whose ordinary Kubernetes token RBAC lets
//!   `get` the UsagePlan: 401 without a valid token, 403 when RBAC says no, 404 for an unknown
//!   plan, 400 for bad dates; errors as Amazon's, `{"message"}` with `x-amzn-ErrorType`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tollgate_crds::snapshot::{ACK_PATH, Ack, CONTENT_TYPE, PROXY_ID_HEADER, SUBSCRIBE_PATH};
use tollgate_crds::table::{GatewayTable, ObjectKey};
use tollgate_crds::usage::{API_PREFIX, REPORT_PATH, UsageReport};

use super::auth::{AuthError, Authenticator, may_serve};
use super::{Snapshots, SubscribeError, Subscription};

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Time a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2 pings on idle connections, so that a vanished proxy leaves the fleet.
const KEEP_ALIVE: Duration = Duration::from_secs(20);
/// Largest ACK body read.
const ACK_MAX: usize = 64 * 1024;
/// Largest usage report read (90 days of 1,000 keys is about 3 MB).
const REPORT_MAX: usize = 32 * 1024 * 1024;
/// Frames queued per subscriber before the sender waits for the connection.
const QUEUE: usize = 4;

/// What every request needs.
pub struct Service {
    pub snapshots: Arc<Snapshots>,
    pub auth: Authenticator,
    pub usage: Arc<crate::usage::Usage>,
    pub index: Arc<crate::index::Index>,
}

/// Accepts connections until the listener fails (never, in practice).
pub async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, service: Arc<Service>) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "snapshot service: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let service = service.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "snapshot service: TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "snapshot service: TLS handshake timed out");
                    return;
                }
            };
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http2()
                .timer(hyper_util::rt::TokioTimer::new())
                .keep_alive_interval(Some(KEEP_ALIVE))
                .keep_alive_timeout(KEEP_ALIVE);
            let svc = hyper::service::service_fn(move |req| {
                let service = service.clone();
                async move { Ok::<_, Infallible>(service.handle(req).await) }
            });
            if let Err(error) = builder.serve_connection(TokioIo::new(tls), svc).await {
                tracing::debug!(%peer, %error, "snapshot service: connection ended");
            }
        });
    }
}

impl Service {
    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        match (req.method(), req.uri().path()) {
            (&Method::GET, SUBSCRIBE_PATH) => self.subscribe(req).await,
            (&Method::POST, ACK_PATH) => self.ack(req).await,
            (&Method::POST, REPORT_PATH) => self.report(req).await,
            (&Method::GET, path) if path.starts_with(API_PREFIX) => self.get_usage(req).await,
            (_, SUBSCRIBE_PATH | ACK_PATH | REPORT_PATH) => {
                message(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
            }
            _ => message(StatusCode::NOT_FOUND, "Not Found"),
        }
    }

    /// The authenticated user, or the response refusing the request.
    async fn user(&self, req: &Request<Incoming>) -> Result<String, Response<Body>> {
        match self.auth.user(req.headers()).await {
            Ok(user) => Ok(user),
            Err(AuthError::Unauthenticated) => {
                Err(message(StatusCode::UNAUTHORIZED, "Unauthorized"))
            }
            Err(AuthError::Review(error)) => {
                tracing::warn!(%error, "snapshot service: TokenReview failed");
                Err(message(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the token could not be reviewed; retry",
                ))
            }
        }
    }

    async fn subscribe(&self, req: Request<Incoming>) -> Response<Body> {
        let user = match self.user(&req).await {
            Ok(user) => user,
            Err(response) => return response,
        };
        let Some(gateway) = gateway_param(req.uri().query().unwrap_or_default()) else {
            return message(
                StatusCode::BAD_REQUEST,
                "the gateway query parameter must be namespace/name",
            );
        };
        if !may_serve(&user, &gateway) {
            tracing::info!(%gateway, %user, "snapshot service: subscription refused to another gateway's token");
            return message(StatusCode::FORBIDDEN, "Forbidden");
        }
        let proxy_id = req
            .headers()
            .get(PROXY_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= 253);
        let Some(proxy_id) = proxy_id else {
            return message(
                StatusCode::BAD_REQUEST,
                &format!("the {PROXY_ID_HEADER} header is required"),
            );
        };
        let subscription = match self.snapshots.subscribe(&gateway, proxy_id) {
            Ok(s) => s,
            Err(SubscribeError::NotReady) => {
                return message(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the controller is starting; retry",
                );
            }
            Err(SubscribeError::UnknownGateway) => {
                return message(
                    StatusCode::NOT_FOUND,
                    &format!("gateway {gateway} not found"),
                );
            }
        };
        let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE);
        tokio::spawn(stream_frames(subscription, tx));
        let frames = futures::stream::poll_fn(move |cx| {
            rx.poll_recv(cx)
                .map(|b| b.map(|b| Ok::<_, Infallible>(Frame::data(b))))
        });
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, CONTENT_TYPE)
            .header(header::CACHE_CONTROL, "no-store")
            .body(StreamBody::new(frames).boxed_unsync())
            .unwrap_or_else(|_| message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"))
    }

    async fn ack(&self, req: Request<Incoming>) -> Response<Body> {
        let user = match self.user(&req).await {
            Ok(user) => user,
            Err(response) => return response,
        };
        let body = match Limited::new(req.into_body(), ACK_MAX).collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => return message(StatusCode::BAD_REQUEST, "the body could not be read"),
        };
        let ack: Ack = match serde_json::from_slice(&body) {
            Ok(ack) => ack,
            Err(error) => {
                return message(
                    StatusCode::BAD_REQUEST,
                    &format!("the body is not an Ack: {error}"),
                );
            }
        };
        if !may_serve(&user, &ack.gateway) {
            return message(StatusCode::FORBIDDEN, "Forbidden");
        }
        self.snapshots.ack(&ack);
        Response::builder()
            .status(StatusCode::NO_CONTENT)
            .body(Full::new(Bytes::new()).boxed_unsync())
            .unwrap_or_else(|_| message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"))
    }
}

impl Service {
    /// A proxy's usage counts, kept as its latest report.
    async fn report(&self, req: Request<Incoming>) -> Response<Body> {
        let user = match self.user(&req).await {
            Ok(user) => user,
            Err(response) => return response,
        };
        let body = match Limited::new(req.into_body(), REPORT_MAX).collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => return message(StatusCode::BAD_REQUEST, "the body could not be read"),
        };
        let report: UsageReport = match serde_json::from_slice(&body) {
            Ok(report) => report,
            Err(error) => {
                return message(
                    StatusCode::BAD_REQUEST,
                    &format!("the body is not a UsageReport: {error}"),
                );
            }
        };
        if !may_serve(&user, &report.gateway) {
            return message(StatusCode::FORBIDDEN, "Forbidden");
        }
        let today = crate::usage::today(jiff::Timestamp::now());
        self.usage.record(report, today);
        Response::builder()
            .status(StatusCode::NO_CONTENT)
            .body(Full::new(Bytes::new()).boxed_unsync())
            .unwrap_or_else(|_| message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"))
    }

    /// Amazon's `GetUsage` for one plan, for a caller RBAC lets read it.
    async fn get_usage(&self, req: Request<Incoming>) -> Response<Body> {
        use crate::usage::api;
        let person = match self.auth.person(req.headers()).await {
            Ok(person) => person,
            Err(AuthError::Unauthenticated) => {
                return amazon_error(
                    StatusCode::UNAUTHORIZED,
                    "UnauthorizedException",
                    "Unauthorized: a valid Kubernetes bearer token is required",
                );
            }
            Err(AuthError::Review(error)) => {
                tracing::warn!(%error, "usage API: TokenReview failed");
                return amazon_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailableException",
                    "the token could not be reviewed; retry",
                );
            }
        };
        let Some(plan_key) = api::plan_of(req.uri().path()) else {
            return amazon_error(
                StatusCode::NOT_FOUND,
                "NotFoundException",
                "the path must be /usage/v1/namespaces/{namespace}/usageplans/{name}",
            );
        };
        match self.auth.may_read_plan(&person, &plan_key).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(plan = %plan_key, user = person.username.as_deref().unwrap_or(""), "usage API: refused by RBAC");
                return amazon_error(
                    StatusCode::FORBIDDEN,
                    "AccessDeniedException",
                    &format!(
                        "{} may not get usageplans.tollgate.dev {plan_key}",
                        person.username.as_deref().unwrap_or("the caller")
                    ),
                );
            }
            Err(error) => {
                tracing::warn!(?error, "usage API: SubjectAccessReview failed");
                return amazon_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailableException",
                    "the access could not be reviewed; retry",
                );
            }
        }
        let Some(plan) = crate::usage::plan(&self.index, &plan_key) else {
            return amazon_error(
                StatusCode::NOT_FOUND,
                "NotFoundException",
                &format!("Invalid Usage Plan ID specified: {plan_key}"),
            );
        };
        let params = match api::params(req.uri().query().unwrap_or_default()) {
            Ok(params) => params,
            Err(reason) => {
                return amazon_error(StatusCode::BAD_REQUEST, "BadRequestException", &reason);
            }
        };
        let view = crate::usage::PlanView::of(&plan, &plan_key, &self.snapshots);
        match api::get_usage(&self.usage, &view, &params).await {
            Ok(answer) => {
                let body = serde_json::to_vec(&answer).unwrap_or_default();
                Response::builder()
                    .status(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(header::CACHE_CONTROL, "no-store")
                    .body(Full::new(Bytes::from(body)).boxed_unsync())
                    .unwrap_or_else(|_| {
                        message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
                    })
            }
            Err(error) => {
                tracing::warn!(plan = %plan_key, %error, "usage API: counts not read");
                amazon_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailableException",
                    &error.to_string(),
                )
            }
        }
    }
}

/// Amazon's error answer: `{"message": ...}` with the error's type in `x-amzn-ErrorType`.
fn amazon_error(status: StatusCode, error_type: &'static str, text: &str) -> Response<Body> {
    let mut response = message(status, text);
    response.headers_mut().insert(
        "x-amzn-errortype",
        header::HeaderValue::from_static(error_type),
    );
    response
}

/// Sends one frame per table version or fleet size, until the gateway is removed or the
/// subscriber goes (its body, and so `tx`'s receiver, is dropped). Dropping the subscription
/// takes the proxy out of the fleet.
async fn stream_frames(mut sub: Subscription, tx: mpsc::Sender<Bytes>) {
    let mut last: Option<(String, u32)> = None;
    loop {
        let table = sub.table.borrow_and_update().clone();
        let fleet_size = *sub.fleet_size.borrow_and_update();
        if let Some(table) = table {
            let sent = (table.version.clone(), fleet_size);
            if last.as_ref() != Some(&sent) {
                if tx.send(frame_line(&table, fleet_size)).await.is_err() {
                    break;
                }
                sub.sent(&table.version);
                last = Some(sent);
            }
        }
        tokio::select! {
            changed = sub.table.changed() => if changed.is_err() { break },
            changed = sub.fleet_size.changed() => if changed.is_err() { break },
            () = tx.closed() => break,
        }
    }
}

/// A `SnapshotFrame` as one JSON line, serialized without copying the table.
fn frame_line(table: &GatewayTable, fleet_size: u32) -> Bytes {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct FrameRef<'a> {
        table: &'a GatewayTable,
        fleet_size: u32,
    }
    let mut line =
        serde_json::to_vec(&FrameRef { table, fleet_size }).expect("a table always serializes");
    line.push(b'\n');
    Bytes::from(line)
}

/// `namespace/name` from the `gateway` query parameter (`/` may be written `%2F`).
fn gateway_param(query: &str) -> Option<ObjectKey> {
    let value = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("gateway="))?;
    let value = value.replace("%2F", "/").replace("%2f", "/");
    let (namespace, name) = value.split_once('/')?;
    let valid = |s: &str| {
        !s.is_empty()
            && s.len() <= 253
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    };
    (valid(namespace) && valid(name)).then(|| ObjectKey::new(namespace, name))
}

/// A JSON `{"message": ...}` response.
fn message(status: StatusCode, text: &str) -> Response<Body> {
    let body = serde_json::json!({ "message": text }).to_string();
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use tollgate_crds::compile::compile_str;
    use tollgate_crds::snapshot::{SnapshotFrame, verify};

    use super::*;

    #[test]
    fn the_gateway_parameter() {
        assert_eq!(
            gateway_param("gateway=shop/hello"),
            Some(ObjectKey::new("shop", "hello"))
        );
        assert_eq!(
            gateway_param("x=1&gateway=shop%2Fhello"),
            Some(ObjectKey::new("shop", "hello"))
        );
        assert_eq!(gateway_param("gateway=hello"), None);
        assert_eq!(gateway_param("gateway=/hello"), None);
        assert_eq!(gateway_param("gateway=a/b/c"), None);
        assert_eq!(gateway_param(""), None);
    }

    #[test]
    fn a_frame_line_is_a_snapshot_frame() {
        let table = compile_str("apiVersion: tollgate.dev/v1alpha1\nkind: ApiGateway\nmetadata: {name: hello}\nspec: {stages: [{name: dev}]}\n", "t")
            .unwrap()
            .tables
            .into_values()
            .next()
            .unwrap();
        let line = frame_line(&table, 3);
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        let frame: SnapshotFrame = serde_json::from_slice(&line).unwrap();
        assert_eq!(frame.fleet_size, 3);
        verify(&frame.table).unwrap();
        assert_eq!(frame.table, table);
    }
}
