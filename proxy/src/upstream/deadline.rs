//! The whole exchange's deadline, carried past the response head: a response body cut off
//! when the exchange's time is up ([`UntilDeadline`]).

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::body::BoxError;

/// When an outbound exchange must be over, head and body, and the timeout it came from (for
/// the messages that name it).
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    at: Instant,
    timeout: Duration,
}

impl Deadline {
    /// `timeout` from now.
    pub fn after(timeout: Duration) -> Self {
        Self {
            at: Instant::now() + timeout,
            timeout,
        }
    }

    pub fn at(&self) -> Instant {
        self.at
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// When the exchange started (the deadline less its timeout).
    pub fn started(&self) -> Instant {
        self.at - self.timeout
    }
}

/// A backend's response body must end before the exchange's deadline.
#[derive(Debug, thiserror::Error)]
#[error("the response body did not end within the {0:?} timeout")]
pub struct BodyTimedOut(pub Duration);

pin_project_lite::pin_project! {
    /// A backend's response body, cut off at the exchange's deadline: the reader sees an
    /// error ([`BodyTimedOut`]) and the response ends early.
    pub struct UntilDeadline<B> {
        #[pin]
        inner: B,
        #[pin]
        deadline: Sleep,
        timeout: Duration,
    }
}

impl<B> UntilDeadline<B> {
    pub fn new(inner: B, deadline: Deadline) -> Self {
        Self {
            inner,
            deadline: tokio::time::sleep_until(deadline.at),
            timeout: deadline.timeout,
        }
    }
}

impl<B> HttpBody for UntilDeadline<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => {
                ready!(this.deadline.poll(cx));
                Poll::Ready(Some(Err(Box::new(BodyTimedOut(*this.timeout)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
