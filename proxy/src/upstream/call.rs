//! What a call is: its kind and outcome (the metrics' labels), who makes it and by when
//! ([`Outbound`]), the body it sends ([`Payload`]), the answer read whole ([`Reply`]) and why
//! there was none ([`UpstreamError`]).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::StatusCode;
use hyper::header::{HeaderMap, HeaderName};

use super::Deadline;
use super::http1;
use crate::body::{Body, BoxError};

/// The request id sent to backends, authorizers and functions.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// What an outbound call is for: its metrics' `kind` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Integration,
    Lambda,
    Authorizer,
    Jwks,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Integration,
        Kind::Lambda,
        Kind::Authorizer,
        Kind::Jwks,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Kind::Integration => "integration",
            Kind::Lambda => "lambda",
            Kind::Authorizer => "authorizer",
            Kind::Jwks => "jwks",
        }
    }
}

/// How an outbound call ended: its metrics' `outcome` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An answer (any status).
    Answered,
    Timeout,
    /// No connection could be made.
    Unreachable,
    /// The exchange broke (the backend closed or reset the connection, or the request's own
    /// body failed).
    Failed,
    /// An answer read whole was over its limit.
    TooLarge,
    /// The URL is not one a call can be made to.
    BadUrl,
}

impl Outcome {
    pub const ALL: [Outcome; 6] = [
        Outcome::Answered,
        Outcome::Timeout,
        Outcome::Unreachable,
        Outcome::Failed,
        Outcome::TooLarge,
        Outcome::BadUrl,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Timeout => "timeout",
            Outcome::Unreachable => "unreachable",
            Outcome::Failed => "failed",
            Outcome::TooLarge => "too_large",
            Outcome::BadUrl => "bad_url",
        }
    }
}

/// Who makes a call, for what, and by when.
#[derive(Clone, Copy, Debug)]
pub struct Outbound<'a> {
    pub kind: Kind,
    /// The request the call is made for, sent as `x-request-id`.
    pub request_id: Option<&'a str>,
    pub deadline: Deadline,
    /// The trace context the call carries (`traceparent`, `X-Amzn-Trace-Id`), on a traced
    /// stage.
    pub trace: Option<crate::request_trace::Propagate<'a>>,
}

/// A request's body as a call sends it.
pub enum Payload {
    Empty,
    /// Known whole: can be sent again.
    Whole(Bytes),
    /// Streamed as it comes (a client's body): sent once.
    Stream(Body),
}

impl Payload {
    /// A copy to send again, if the body can be.
    pub(super) fn replayable(&self) -> Option<Payload> {
        match self {
            Payload::Empty => Some(Payload::Empty),
            Payload::Whole(bytes) => Some(Payload::Whole(bytes.clone())),
            Payload::Stream(_) => None,
        }
    }

    pub(super) fn into_body(self) -> Body {
        match self {
            Payload::Empty => Empty::new().map_err(|never| match never {}).boxed(),
            Payload::Whole(bytes) => Full::new(bytes).map_err(|never| match never {}).boxed(),
            Payload::Stream(body) => body,
        }
    }
}

/// An answer read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Why a call got no (usable) answer.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Connect(#[from] http1::ConnectError),
    /// The exchange broke; the source says how (a request body's own failure included, see
    /// [`BodyError::find`](crate::request_body::BodyError::find)).
    #[error(transparent)]
    Exchange(BoxError),
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("reading the answer: {0}")]
    Read(String),
    /// The call to AWS could not be signed (no credentials, most often).
    #[error(transparent)]
    Signing(#[from] crate::aws_signer::SignError),
}

impl UpstreamError {
    pub(super) fn outcome(&self) -> Outcome {
        match self {
            Self::BadUrl { .. } => Outcome::BadUrl,
            Self::Timeout(_) => Outcome::Timeout,
            Self::Connect(_) => Outcome::Unreachable,
            Self::Exchange(e) => {
                // hyper-util's client reports a refused connection as a failed request.
                let connect = e
                    .downcast_ref::<hyper_util::client::legacy::Error>()
                    .is_some_and(hyper_util::client::legacy::Error::is_connect);
                if connect {
                    Outcome::Unreachable
                } else {
                    Outcome::Failed
                }
            }
            Self::TooLarge(_) => Outcome::TooLarge,
            Self::Read(_) | Self::Signing(_) => Outcome::Failed,
        }
    }
}
