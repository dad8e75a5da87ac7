//! The log phase: one access-log line and the request metrics, written exactly once.
//!
//! [`Logged`] is armed when a request arrives. The metrics are taken when the response head
//! is ready (`tollgate_request_duration_seconds` is time to headers). The access-log line is
//! written when the response body has been sent in full, so its `responseLength` is what the
//! client received: a response whose body fails on the way (a backend that stalls past the
//! integration timeout, or closes early) is logged with the bytes sent and the reason, and a
//! client that leaves mid-body is named too. When hyper drops the request before an answer,
//! because its client went away, the line says 499, as nginx logs a request nobody waits for
//! any more. (Requests still running when the drain ends are dropped after the access log's
//! last flush, so their lines may be lost.)

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use hyper::header;
use hyper::{Method, Response, StatusCode};

use crate::access_log::{AccessRecord, Upgraded};
use crate::body::{Body, BoxError};
use crate::errors::GatewayError;
use crate::metrics::{RequestLabels, RouteMetrics};
use crate::request_trace::Recording;
use crate::state::Shared;

/// A request's log, until it is written.
pub struct Logged {
    shared: Arc<Shared>,
    started: Instant,
    pub record: AccessRecord,
    /// The route's metrics, once the request has a route.
    pub route_metrics: Option<Arc<RouteMetrics>>,
    /// The spans of a sampled request on a traced stage, sent with the line (boxed: every
    /// request's log is moved into its response body, and most are not recorded).
    pub trace: Option<Box<Recording>>,
    written: bool,
}

impl Logged {
    pub fn new(shared: Arc<Shared>, started: Instant, record: AccessRecord) -> Self {
        Self {
            shared,
            started,
            record,
            route_metrics: None,
            trace: None,
            written: false,
        }
    }

    /// Takes the metrics now and hands the line to the response's body, which writes it when
    /// the body ends (at once for a response without a body to send).
    pub fn answered(mut self, method: &Method, response: Response<Body>) -> Response<LoggedBody> {
        let status = response.status();
        self.record.status = status.as_u16();
        self.observe();
        // The header when a backend sent one; else the body's size when it is known (mocks
        // and gateway responses, whose Content-Length hyper adds later).
        self.record.response_length = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .or_else(|| response.body().size_hint().exact());
        // Nothing more to send: no body, or (499) nobody left to send it to.
        let no_body = *method == Method::HEAD
            || status == GatewayError::ClientClosed.status()
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
            || response.body().is_end_stream();
        let log = if no_body {
            self.write();
            None
        } else {
            Some(self)
        };
        response.map(|inner| LoggedBody {
            inner,
            log,
            sent: 0,
            held: None,
        })
    }

    /// Takes the metrics for a response that switches protocols (101) and holds the line
    /// back: the connection it upgrades writes it when it ends ([`Logged::closed`]).
    pub fn switched(mut self, response: Response<Body>) -> (Response<LoggedBody>, Logged) {
        self.record.status = response.status().as_u16();
        self.observe();
        let response = response.map(|inner| LoggedBody {
            inner,
            log: None,
            sent: 0,
            held: None,
        });
        (response, self)
    }

    /// Writes the line of an upgraded connection that has ended, with what it carried and,
    /// if it ended on an error, which.
    pub fn closed(mut self, upgraded: Upgraded, error: Option<String>) {
        self.record.upgraded = Some(upgraded);
        self.record.error_message = error;
        self.write();
    }

    /// The latency so far into the record, and the request into the metrics.
    fn observe(&mut self) {
        let elapsed = self.started.elapsed();
        self.record.response_latency = elapsed.as_millis() as u64;
        let (status, seconds) = (self.record.status, elapsed.as_secs_f64());
        match &self.route_metrics {
            Some(route) => route.observe_request(status, seconds),
            None => self
                .shared
                .metrics
                .observe_request(&labels(&self.record), status, seconds),
        }
    }

    /// When the request arrived.
    pub fn started(&self) -> Instant {
        self.started
    }

    fn write(&mut self) {
        self.shared.access_log.write(&self.record);
        if let Some(recording) = self.trace.take() {
            recording.finish(&self.record);
        }
        self.written = true;
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        if !self.written {
            let gone = GatewayError::ClientClosed;
            self.record.error_message = Some(gone.to_string());
            self.record.status = gone.status().as_u16();
            self.observe();
            self.write();
        }
    }
}

fn labels(record: &AccessRecord) -> RequestLabels<'_> {
    RequestLabels {
        gateway: record.gateway.as_deref().unwrap_or(""),
        stage: record.stage.as_deref().unwrap_or(""),
        route: record.route_key.as_deref().unwrap_or(""),
    }
}

/// A response body that writes its request's access-log line when it ends.
///
/// A body that fails right after sending data (a backend that closes mid-body) has its error
/// held back one turn: the server flushes what it was given before it is told to cut the
/// connection, so the client receives the head and bytes the log says it did.
pub struct LoggedBody {
    inner: Body,
    log: Option<Logged>,
    sent: u64,
    /// The body's error, logged, waiting for the bytes before it to be flushed.
    held: Option<BoxError>,
}

impl LoggedBody {
    /// Writes the line: the body ended (`None`), failed, or was dropped unfinished.
    fn finish(&mut self, error: Option<String>) {
        let Some(mut log) = self.log.take() else {
            return;
        };
        log.record.response_length = Some(self.sent);
        if let Some(error) = error {
            log.record.error_message = Some(error);
        }
        log.write();
    }
}

impl HttpBody for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(error) = self.held.take() {
            return Poll::Ready(Some(Err(error)));
        }
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.sent += data.len() as u64;
                }
                // hyper stops polling once the body says it has ended.
                if self.inner.is_end_stream() {
                    self.finish(None);
                }
            }
            Poll::Ready(None) => self.finish(None),
            Poll::Ready(Some(Err(e))) => {
                let message = format!("the response body failed after {} bytes: {e}", self.sent);
                if let Some(log) = &self.log {
                    let l = labels(&log.record);
                    log.shared
                        .metrics
                        .upstream_error(l.gateway, l.stage, "body");
                }
                tracing::warn!(
                    request_id = %self.log.as_ref().map(|l| l.record.request_id).unwrap_or_default(),
                    error = %message,
                    "response cut short"
                );
                self.finish(Some(message));
                if self.sent > 0
                    && let Poll::Ready(Some(Err(error))) = polled
                {
                    self.held = Some(error);
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        // A held error is still to be said.
        self.held.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        if self.log.is_some() {
            let error = (!self.inner.is_end_stream()).then(|| {
                format!(
                    "the client went away after {} bytes of the response body",
                    self.sent
                )
            });
            self.finish(error);
        }
    }
}
