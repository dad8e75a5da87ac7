//! One way out: every outbound call a request makes (the HTTP integration, Lambda invokes,
//! custom authorizers, JWKS fetches) goes through [`Upstream`], which owns
//! - the deadline over the whole exchange, response body included ([`Deadline`]);
//! - the limit on answers read whole ([`Upstream::fetch`]);
//! - one retry, on a new connection, of a request whose pooled connection turns out to have
//!   been closed by the backend: any request nothing of which was written; an idempotent
//!   request whose body can be sent again even if it was written, when the connection had
//!   been idle for [`pool::Limits::replay_after_idle`] (1 s) or more, as connections a backend
//!   closes for idleness have (a copy of the request is kept only then);
//! - the `x-request-id` header, when the call is made for a request;
//! - the metrics of outbound calls, by kind and outcome.
//!
//! Plain `http://` backends are reached over HTTP/1.1 connections driven by the request's
//! own task, from a pool per worker thread ([`http1`], [`pool`]). Each call's future is boxed
//! once (it is large, and would otherwise be held and copied by every future up the request
//! path). `https://` backends
//! (HTTP/2 when they offer it by ALPN) go through hyper-util's pooled client
//! ([`crate::client`]), whose connections run as tasks of their own.

mod call;
mod deadline;
pub mod http1;
pub mod pool;
#[cfg(test)]
mod tests;

use std::future::poll_fn;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderValue};
use hyper::http::uri::{Authority, Scheme};
use hyper::{Method, Request, Response, Uri};

pub use call::{Kind, Outbound, Outcome, Payload, REQUEST_ID_HEADER, Reply, UpstreamError};
use deadline::UntilDeadline;
pub use deadline::{BodyTimedOut, Deadline};
use http1::{Driven, Failure, Http1};

use crate::aws_signer::{AwsSigner, SignError};
use crate::body::Body;
use crate::client::{self, HttpClient};
use crate::errors::error_chain;
use crate::metrics::UpstreamMetrics;

/// The one way out: plain HTTP/1.1 backends through per-worker pools, TLS backends through
/// hyper-util's client, each call counted.
pub struct Upstream {
    tls: HttpClient,
    pool: pool::Limits,
    metrics: UpstreamMetrics,
    /// Signs calls to AWS ([`SigV4`]).
    aws: AwsSigner,
}

/// A call to an AWS service, signed with SigV4 for its region.
#[derive(Clone, Copy, Debug)]
pub struct SigV4<'a> {
    pub service: &'static str,
    pub region: &'a str,
}

impl Upstream {
    /// TLS backends are verified against the Mozilla roots, plus the PEM bundle at
    /// `extra_ca` (for backends signed by a private CA).
    pub fn build(extra_ca: Option<&Path>, metrics: UpstreamMetrics) -> anyhow::Result<Self> {
        Ok(Self {
            tls: client::build(extra_ca)?,
            pool: pool::Limits::for_current_runtime(),
            metrics,
            aws: AwsSigner::default(),
        })
    }

    /// Sends a request; the response body streams, cut off at the deadline. Counted when the
    /// response head arrives (or the call fails).
    ///
    /// The call's future is boxed, once per call: it holds the request and the exchange on
    /// the connection (kilobytes), and every future up the request path that awaits it would
    /// otherwise hold it too, and copy it when made.
    pub fn send<'a>(
        &'a self,
        call: Outbound<'a>,
        request: Request<Payload>,
    ) -> impl Future<Output = Result<Response<Body>, UpstreamError>> + Send + 'a {
        Box::pin(self.streamed(call, request, Way::Pooled))
    }

    /// Sends a request that asks to switch protocols (a WebSocket handshake) on a connection
    /// of its own, which never goes back to a pool. The deadline covers the response head
    /// (and the body of an answer that is not 101); after a 101, `hyper::upgrade::on` on the
    /// response gives the backend's connection, for as long as it lasts. Boxed as
    /// [`send`](Self::send) is.
    pub fn upgrade<'a>(
        &'a self,
        call: Outbound<'a>,
        request: Request<Payload>,
    ) -> impl Future<Output = Result<Response<Body>, UpstreamError>> + Send + 'a {
        Box::pin(self.streamed(call, request, Way::Upgradeable))
    }

    /// The exchange within the deadline, counted; the response body cut off at it.
    async fn streamed(
        &self,
        call: Outbound<'_>,
        request: Request<Payload>,
        way: Way,
    ) -> Result<Response<Body>, UpstreamError> {
        let deadline = call.deadline;
        let exchange = self.exchange(call, request, way);
        let result = tokio::time::timeout_at(deadline.at(), exchange)
            .await
            .unwrap_or(Err(UpstreamError::Timeout(deadline.timeout())));
        self.observe(call, result.as_ref().err());
        let response = result?;
        Ok(response.map(|body| UntilDeadline::new(body, deadline).boxed()))
    }

    /// Sends a request and reads the whole answer, at most `max_bytes` of it, within the
    /// deadline. Boxed as [`send`](Self::send) is.
    pub fn fetch<'a>(
        &'a self,
        call: Outbound<'a>,
        request: Request<Payload>,
        max_bytes: usize,
    ) -> impl Future<Output = Result<Reply, UpstreamError>> + Send + 'a {
        Box::pin(async move {
            let deadline = call.deadline;
            let exchange = async {
                let response = self.exchange(call, request, Way::Pooled).await?;
                read_whole(response, max_bytes).await
            };
            let result = tokio::time::timeout_at(deadline.at(), exchange)
                .await
                .unwrap_or(Err(UpstreamError::Timeout(deadline.timeout())));
            self.observe(call, result.as_ref().err());
            result
        })
    }

    /// POSTs a JSON document and reads the answer whole: what custom authorizers and Lambda
    /// invokes send.
    pub async fn post_json(
        &self,
        call: Outbound<'_>,
        url: &str,
        payload: String,
        max_bytes: usize,
        sigv4: Option<SigV4<'_>>,
    ) -> Result<Reply, UpstreamError> {
        let uri = url.parse::<Uri>().map_err(|e| UpstreamError::BadUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        let payload = Bytes::from(payload);
        let mut request = Request::new(Payload::Whole(payload.clone()));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        request.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(SigV4 { service, region }) = sigv4 {
            // Fetching credentials (from STS, say) is part of the call, within its deadline;
            // a failure is counted as the call's. Boxed: the signer's future (the credential
            // chain's, the first time) is large, and would otherwise make every call's future,
            // HTTP integrations' included, that large to move.
            let deadline = call.deadline;
            let sign = Box::pin(self.aws.sign(&mut request, &payload, service, region));
            let signed = tokio::time::timeout_at(deadline.at(), sign)
                .await
                .unwrap_or_else(|_| Err(SignError::Credentials("timed out".into())));
            if let Err(e) = signed {
                let e = UpstreamError::from(e);
                self.observe(call, Some(&e));
                return Err(e);
            }
        }
        self.fetch(call, request, max_bytes).await
    }

    fn observe(&self, call: Outbound<'_>, error: Option<&UpstreamError>) {
        let outcome = error.map_or(Outcome::Answered, UpstreamError::outcome);
        let elapsed = call.deadline.started().elapsed();
        self.metrics
            .observe(call.kind, outcome, elapsed.as_secs_f64());
    }

    /// The exchange up to the response head, by the way the URL's scheme asks for.
    async fn exchange(
        &self,
        call: Outbound<'_>,
        mut request: Request<Payload>,
        way: Way,
    ) -> Result<Response<Answer>, UpstreamError> {
        if let Some(id) = call.request_id
            && let Ok(value) = HeaderValue::try_from(id)
        {
            request.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        if let Some(trace) = call.trace {
            trace.inject(request.headers_mut());
        }
        let uri = request.uri();
        let Some(host) = uri.authority().cloned() else {
            return Err(bad_url(uri, "no host"));
        };
        match uri.scheme() {
            Some(s) if *s == Scheme::HTTP => match way {
                Way::Pooled => self.plain(call, request, host).await,
                // Boxed: rare, and its future would otherwise make every call's larger.
                Way::Upgradeable => Box::pin(self.upgradeable(request, host)).await,
            },
            // hyper-util's connections can be upgraded, and one that is never goes back to
            // its pool.
            Some(s) if *s == Scheme::HTTPS => {
                let response = self
                    .tls
                    .request(request.map(Payload::into_body))
                    .await
                    .map_err(|e| UpstreamError::Exchange(Box::new(e)))?;
                Ok(response.map(Answer::Pooled))
            }
            _ => Err(bad_url(uri, "the scheme is not http or https")),
        }
    }

    /// An HTTP/1.1 exchange on a new connection of its own, which can be upgraded.
    async fn upgradeable(
        &self,
        request: Request<Payload>,
        host: Authority,
    ) -> Result<Response<Answer>, UpstreamError> {
        let (mut parts, payload) = request.into_parts();
        self.metrics.connection_opened();
        let conn = Box::pin(Http1::connect(&host, host_header(&host))).await?;
        origin_form(&mut parts, conn.host_header());
        let mut sender = conn.upgradeable();
        let request = Request::from_parts(parts, payload.into_body());
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| UpstreamError::Exchange(Box::new(e)))?;
        Ok(response.map(Answer::Pooled))
    }

    /// A plain HTTP/1.1 exchange on a connection of this worker's pool, or a new one; sent
    /// again once, on a new connection, when a pooled one turns out closed (see the module's
    /// documentation).
    async fn plain(
        &self,
        call: Outbound<'_>,
        request: Request<Payload>,
        host: Authority,
    ) -> Result<Response<Answer>, UpstreamError> {
        let (mut parts, payload) = request.into_parts();
        let started = call.deadline.started().into_std();
        let pooled = poll_fn(|cx| Poll::Ready(pool::checkout(&host, started, self.pool, cx))).await;
        let host_header = match &pooled {
            Some((conn, _)) => conn.host_header().clone(),
            None => host_header(&host),
        };
        origin_form(&mut parts, &host_header);
        // A copy to send again if the connection breaks under the request (an idempotent one,
        // with a body that can be sent twice), when the connection has been idle long enough
        // for the backend to be closing it: a backend closes idle connections after its
        // keep-alive timeout, seconds; copying every request would cost more than it saves.
        let mut replay = match &pooled {
            Some((_, idle))
                if *idle >= self.pool.replay_after_idle && is_idempotent(&parts.method) =>
            {
                payload.replayable().map(|p| (parts.clone(), p))
            }
            _ => None,
        };
        let mut request = Request::from_parts(parts, payload.into_body());
        let mut pooled = pooled.map(|(conn, _)| conn);
        loop {
            let reused = pooled.is_some();
            let conn = match pooled.take() {
                Some(conn) => conn,
                None => {
                    self.metrics.connection_opened();
                    // Boxed: connecting is rare, and its future (the handshake holds the whole
                    // connection) would otherwise make every request's future larger.
                    Box::pin(Http1::connect(&host, host_header.clone())).await?
                }
            };
            let error = match http1::exchange(conn, request, &host, self.pool).await {
                Ok(response) => {
                    // The head is handed on after the worker's other ready tasks have run, as
                    // a connection task's hand-over was: on a busy worker the responses read
                    // together are then written to their clients together.
                    tokio::task::yield_now().await;
                    return Ok(response.map(Answer::Driven));
                }
                Err(Failure::Unsent(error, unsent)) if reused => {
                    request = unsent;
                    error
                }
                Err(Failure::Failed(error)) if reused && closed_early(&error) => {
                    match replay.take() {
                        Some((parts, payload)) => {
                            request = Request::from_parts(parts, payload.into_body());
                            error
                        }
                        None => return Err(UpstreamError::Exchange(Box::new(error))),
                    }
                }
                Err(Failure::Unsent(error, _) | Failure::Failed(error)) => {
                    return Err(UpstreamError::Exchange(Box::new(error)));
                }
            };
            tracing::debug!(
                request_id = call.request_id,
                %host,
                error = %error_chain(&error),
                "a pooled backend connection was closed; sending again on a new one"
            );
            self.metrics.retried(call.kind);
        }
    }
}

/// How a plain `http://` request travels: on a pooled connection driven by the request's
/// task, or on one of its own that can be upgraded.
#[derive(Clone, Copy)]
enum Way {
    Pooled,
    Upgradeable,
}

/// The `Host` a backend gets: its host, and its port unless the default.
fn host_header(host: &Authority) -> HeaderValue {
    let value = match host.port_u16() {
        Some(80) | None => HeaderValue::from_str(host.host()),
        Some(_) if !host.as_str().contains('@') => HeaderValue::from_str(host.as_str()),
        Some(port) => HeaderValue::try_from(format!("{}:{port}", host.host())),
    };
    // An authority's host and port are valid header text.
    value.unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The request as an HTTP/1.1 connection sends it: the path and query as the target, and the
/// backend's own `Host` (made once per connection), unless the caller set one.
fn origin_form(parts: &mut hyper::http::request::Parts, host: &HeaderValue) {
    if !parts.headers.contains_key(header::HOST) {
        parts.headers.insert(header::HOST, host.clone());
    }
    let target = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| hyper::http::uri::PathAndQuery::from_static("/"));
    parts.uri = Uri::from(target);
}

/// Methods a backend may see twice (RFC 9110 section 9.2.2).
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Whether an exchange broke because the connection was closed or reset before any of the
/// response arrived: what a backend closing an idle connection looks like to a request
/// written onto it.
fn closed_early(error: &hyper::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    if error.is_incomplete_message() || error.is_canceled() {
        return true;
    }
    std::error::Error::source(error)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .is_some_and(|io| matches!(io.kind(), BrokenPipe | ConnectionAborted | ConnectionReset))
}

fn bad_url(uri: &Uri, reason: &str) -> UpstreamError {
    UpstreamError::BadUrl {
        url: uri.to_string(),
        reason: reason.to_string(),
    }
}

/// Reads an answer whole, refusing it past `max_bytes` (from its `Content-Length` when it
/// says so, before reading).
async fn read_whole(response: Response<Answer>, max_bytes: usize) -> Result<Reply, UpstreamError> {
    let (parts, body) = response.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_bytes as u64) {
        return Err(UpstreamError::TooLarge(max_bytes));
    }
    let body = Limited::new(body, max_bytes)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                UpstreamError::TooLarge(max_bytes)
            } else {
                UpstreamError::Read(error_chain(e.as_ref()))
            }
        })?
        .to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// A response body from either way out.
pub enum Answer {
    Driven(Driven),
    Pooled(Incoming),
}

impl HttpBody for Answer {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Answer::Driven(body) => Pin::new(body).poll_frame(cx),
            Answer::Pooled(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Answer::Driven(body) => body.is_end_stream(),
            Answer::Pooled(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Answer::Driven(body) => body.size_hint(),
            Answer::Pooled(body) => body.size_hint(),
        }
    }
}
