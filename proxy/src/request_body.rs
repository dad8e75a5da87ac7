//! The body phase: a request body either streams to the backend as it arrives or, when the
//! integration needs it whole (a Lambda event, a mock), is read into memory. Either way:
//! - Amazon API Gateway's payload limit: 413 past 10 MB, refused early when `Content-Length`
//!   already says so;
//! - a read deadline: a client that sends nothing for `--body-read-timeout-seconds` while the
//!   proxy waits on it gets 408 (a client that stops short of its `Content-Length` holds
//!   nothing for long);
//! - a budget for bodies held in memory, shared by every request
//!   (`--max-buffered-body-bytes`): a body that would pass it is refused with 503, counted
//!   and logged, so many large or slow bodies cannot take the proxy's memory.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::HeaderMap;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use hyper::header;
use prometheus::{IntCounter, IntGauge};
use tokio::time::Sleep;
use tollgate_crds::table::IntegrationTable;

use crate::body::ClientBody;
use crate::errors::GatewayError;
use crate::warn_every::WarnEvery;

/// Amazon API Gateway's payload limit.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// Why reading a request body stopped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the request body exceeds the 10 MB payload limit")]
    TooLong,
    #[error("the client sent no body bytes for {0:?}")]
    ReadTimeout(Duration),
    #[error("the client went away while sending the body")]
    ClientGone,
    #[error("the proxy's budget for buffered request bodies is spent")]
    OverBudget,
    #[error("reading the request body: {0}")]
    Malformed(String),
}

impl From<BodyError> for GatewayError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLong => GatewayError::RequestTooLong,
            BodyError::ReadTimeout(_) => GatewayError::RequestTimeout,
            BodyError::ClientGone => GatewayError::ClientClosed,
            BodyError::OverBudget => GatewayError::Overloaded("request body budget"),
            BodyError::Malformed(m) => GatewayError::BadRequest(m),
        }
    }
}

impl BodyError {
    /// The body error at the root of an error (a backend call that failed because the body
    /// it was sending did), if any.
    pub fn find<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyError> {
        let mut current = Some(error);
        while let Some(e) = current {
            if let Some(found) = e.downcast_ref::<BodyError>() {
                return Some(found);
            }
            current = e.source();
        }
        None
    }
}

/// What bounds request bodies, shared by every request.
pub struct BodyLimits {
    pub read_timeout: Duration,
    pub budget: BodyBudget,
}

/// Bytes of request bodies held in memory at once, across all requests.
pub struct BodyBudget {
    limit: usize,
    used: AtomicUsize,
    gauge: IntGauge,
    refused: IntCounter,
    warning: WarnEvery,
}

impl BodyBudget {
    pub fn new(limit: usize, gauge: IntGauge, refused: IntCounter) -> Self {
        Self {
            limit,
            used: AtomicUsize::new(0),
            gauge,
            refused,
            warning: WarnEvery::new(Duration::from_secs(1)),
        }
    }

    fn reserve(&self, bytes: usize) -> bool {
        let reserved = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            });
        match reserved {
            Ok(before) => {
                self.gauge.set((before + bytes) as i64);
                true
            }
            Err(_) => {
                self.refuse();
                false
            }
        }
    }

    /// Whether `bytes` more would fit now (nothing is reserved).
    fn has_room(&self, bytes: usize) -> bool {
        self.used
            .load(Ordering::Acquire)
            .checked_add(bytes)
            .is_some_and(|total| total <= self.limit)
    }

    /// Counts a refusal, and logs it (at most once a second: a flood must not flood the log).
    fn refuse(&self) {
        self.refused.inc();
        if let Some(refused) = self.warning.due() {
            tracing::warn!(
                refused,
                limit_bytes = self.limit,
                used_bytes = self.used.load(Ordering::Relaxed),
                "request body refused: the buffered-body budget is spent (--max-buffered-body-bytes)"
            );
        }
    }

    fn release(&self, bytes: usize) {
        let before = self.used.fetch_sub(bytes, Ordering::AcqRel);
        self.gauge.set((before - bytes) as i64);
    }
}

/// A body read whole, and its share of the budget, given back when it is dropped.
pub struct Buffered<'a> {
    pub bytes: Bytes,
    budget: &'a BodyBudget,
    reserved: usize,
}

impl Drop for Buffered<'_> {
    fn drop(&mut self) {
        self.budget.release(self.reserved);
    }
}

/// A request's body as the body phase hands it on.
pub enum RequestBody<'a, B> {
    /// Read whole (Lambda, mock), holding its share of the buffered-body budget.
    Whole(Buffered<'a>),
    /// Still arriving: an HTTP backend gets it as it comes.
    Stream(Bounded<B>),
}

/// The body phase: streamed to an HTTP backend as it arrives, read whole for the others.
pub async fn take<'a, B: ClientBody>(
    integration: &IntegrationTable,
    headers: &HeaderMap,
    body: B,
    limits: &'a BodyLimits,
) -> Result<RequestBody<'a, B>, BodyError> {
    Ok(match integration {
        // A non-proxy HTTP integration maps the body whole.
        IntegrationTable::Http {
            templates: None, ..
        } => RequestBody::Stream(stream(headers, body, limits.read_timeout)?),
        IntegrationTable::Http { .. } => RequestBody::Whole(read(headers, body, limits).await?),
        IntegrationTable::Lambda { .. } | IntegrationTable::Mock { .. } => {
            RequestBody::Whole(read(headers, body, limits).await?)
        }
    })
}

/// The body read whole whatever the integration: for an authorizer whose signature covers it
/// (`AWS_IAM`). An HTTP backend then gets it from memory.
pub async fn take_whole<'a, B: ClientBody>(
    headers: &HeaderMap,
    body: B,
    limits: &'a BodyLimits,
) -> Result<Buffered<'a>, BodyError> {
    read(headers, body, limits).await
}

/// Refuses a body whose `Content-Length` is over the limit before any of it is read.
pub fn check_declared(headers: &HeaderMap) -> Result<Option<u64>, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    match declared {
        Some(n) if n > MAX_BODY_BYTES as u64 => Err(BodyError::TooLong),
        _ => Ok(declared),
    }
}

/// Reads the whole body, within the limit, the read deadline and the budget.
pub async fn read<'a, B: ClientBody>(
    headers: &HeaderMap,
    body: B,
    limits: &'a BodyLimits,
) -> Result<Buffered<'a>, BodyError> {
    let declared = check_declared(headers)?;
    let mut buffered = Buffered {
        bytes: Bytes::new(),
        budget: &limits.budget,
        reserved: 0,
    };
    if declared == Some(0) || body.is_end_stream() {
        return Ok(buffered);
    }
    // A declared length that cannot fit is refused before the client sends it.
    if let Some(n) = declared
        && !limits.budget.has_room(n as usize)
    {
        limits.budget.refuse();
        return Err(BodyError::OverBudget);
    }
    // The declared length is allocated at once (pages are touched only as bytes arrive); the
    // budget is charged for what arrives.
    let mut out = BytesMut::with_capacity(declared.unwrap_or(0) as usize);
    let mut body = std::pin::pin!(Bounded::new(body, limits.read_timeout));
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue; // trailers
        };
        if !limits.budget.reserve(data.len()) {
            return Err(BodyError::OverBudget);
        }
        buffered.reserved += data.len();
        out.extend_from_slice(&data);
    }
    buffered.bytes = out.freeze();
    Ok(buffered)
}

/// The body as it arrives, for a backend, within the limit and the read deadline. A backend
/// call that fails because of it carries the [`BodyError`] (see [`BodyError::find`]).
pub fn stream<B: ClientBody>(
    headers: &HeaderMap,
    body: B,
    read_timeout: Duration,
) -> Result<Bounded<B>, BodyError> {
    check_declared(headers)?;
    Ok(Bounded::new(body, read_timeout))
}

pin_project_lite::pin_project! {
    /// A client's body with the payload limit and a read deadline: the deadline runs only
    /// while the reader waits on the client, so a backend slow to take the bytes does not
    /// count against the client.
    pub struct Bounded<B> {
        #[pin]
        inner: B,
        #[pin]
        deadline: Sleep,
        read_timeout: Duration,
        waiting: bool,
        read: usize,
    }
}

impl<B> Bounded<B> {
    fn new(inner: B, read_timeout: Duration) -> Self {
        Self {
            inner,
            deadline: tokio::time::sleep(read_timeout),
            read_timeout,
            waiting: false,
            read: 0,
        }
    }
}

impl<B: ClientBody> HttpBody for Bounded<B> {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let mut this = self.project();
        if !*this.waiting {
            *this.waiting = true;
            let at = tokio::time::Instant::now() + *this.read_timeout;
            this.deadline.as_mut().reset(at);
        }
        let frame = match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                ready!(this.deadline.poll(cx));
                return Poll::Ready(Some(Err(BodyError::ReadTimeout(*this.read_timeout))));
            }
        };
        *this.waiting = false;
        let frame = match frame {
            None => return Poll::Ready(None),
            Some(Err(e)) => return Poll::Ready(Some(Err(classify(&e)))),
            Some(Ok(frame)) => frame,
        };
        if let Some(data) = frame.data_ref() {
            *this.read += data.len();
            if *this.read > MAX_BODY_BYTES {
                return Poll::Ready(Some(Err(BodyError::TooLong)));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether reading a body failed because the client went away (an HTTP/1 body cut short by
/// the connection's end or reset, or an HTTP/2 stream the client reset), or sent something
/// malformed (a bad chunk, say).
fn classify(error: &(dyn std::error::Error + 'static)) -> BodyError {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    let Some(error) = error.downcast_ref::<hyper::Error>() else {
        return BodyError::Malformed(error.to_string());
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
    if error.is_incomplete_message() || closed || reset {
        BodyError::ClientGone
    } else {
        BodyError::Malformed(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(limit: usize) -> BodyBudget {
        BodyBudget::new(
            limit,
            IntGauge::new("g", "g").unwrap(),
            IntCounter::new("c", "c").unwrap(),
        )
    }

    #[test]
    fn the_budget_refuses_past_its_limit_and_takes_back_what_is_released() {
        let b = budget(100);
        assert!(b.reserve(60));
        assert!(!b.reserve(41), "60 + 41 is past 100");
        assert_eq!(b.refused.get(), 1);
        assert!(b.reserve(40));
        assert_eq!(b.gauge.get(), 100);
        b.release(60);
        assert_eq!(b.gauge.get(), 40);
        assert!(b.reserve(60));
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_from_the_head() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, "10485761".parse().unwrap());
        assert_eq!(check_declared(&headers), Err(BodyError::TooLong));
        headers.insert(header::CONTENT_LENGTH, "10485760".parse().unwrap());
        assert_eq!(check_declared(&headers), Ok(Some(10_485_760)));
    }

    #[test]
    fn body_errors_are_found_under_the_errors_that_carry_them() {
        #[derive(Debug, thiserror::Error)]
        #[error("sending the request")]
        struct Outer(#[source] BodyError);
        let outer = Outer(BodyError::TooLong);
        assert_eq!(BodyError::find(&outer), Some(&BodyError::TooLong));
        let plain = std::io::Error::other("x");
        assert_eq!(BodyError::find(&plain), None);
    }
}
