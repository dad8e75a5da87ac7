//! The body types of the request path: the response body every phase returns (a boxed body
//! of `Bytes` whose errors are boxed, so a full buffer and a streamed backend response have
//! one type), and what a request body may be ([`ClientBody`]).

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};

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
