//! The body types of the request path: the response body every phase returns (a boxed body
//! of `Bytes` whose errors are boxed, so a full buffer and a streamed backend response have
//! one type), and what a request body may be ([`ClientBody`]).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as HttpBody, Frame};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = BoxBody<Bytes, BoxError>;

/// A request body as the request path takes it: hyper's `Incoming` from a connection, or any
/// other body of bytes (the in-process tests send `Full` ones).
pub trait ClientBody:
    hyper::body::Body<Data = Bytes, Error: std::error::Error + Send + Sync + 'static>
    + Send
    + Sync
    + 'static
{
}

impl<B> ClientBody for B where
    B: hyper::body::Body<Data = Bytes, Error: std::error::Error + Send + Sync + 'static>
        + Send
        + Sync
        + 'static
{
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A body of frames already read, then an error the body gave while they were read (if
/// any), else the rest of the body they came from (if any): what a phase that looked at the
/// start of an answer (compression, the stage cache) sends on without losing a byte.
pub struct Replay {
    frames: std::vec::IntoIter<Frame<Bytes>>,
    rest: Option<Body>,
    error: Option<BoxError>,
}

impl Replay {
    pub fn new(frames: Vec<Frame<Bytes>>, rest: Option<Body>, error: Option<BoxError>) -> Self {
        Self {
            frames: frames.into_iter(),
            rest,
            error,
        }
    }
}

impl HttpBody for Replay {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(frame) = self.frames.next() {
            return Poll::Ready(Some(Ok(frame)));
        }
        if let Some(error) = self.error.take() {
            return Poll::Ready(Some(Err(error)));
        }
        match &mut self.rest {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.frames.len() == 0
            && self.error.is_none()
            && self.rest.as_ref().is_none_or(|r| r.is_end_stream())
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        let rest = self
            .rest
            .as_ref()
            .map_or_else(|| hyper::body::SizeHint::with_exact(0), |r| r.size_hint());
        let read: u64 = self
            .frames
            .as_slice()
            .iter()
            .filter_map(|f| f.data_ref())
            .map(|d| d.len() as u64)
            .sum();
        let mut hint = hyper::body::SizeHint::new();
        hint.set_lower(rest.lower().saturating_add(read));
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper.saturating_add(read));
        }
        hint
    }
}
