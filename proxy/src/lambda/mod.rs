//! AWS Lambda, as the gateway calls it: the proxy and REQUEST-authorizer events
//! ([`event`]), one call of the Invoke API ([`invoke`]) and what a function returns
//! ([`result`], function errors included). Used by the Lambda integration and by custom
//! authorizers alike, so neither depends on the other.

pub mod event;
pub mod result;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};

use crate::body::full;
use crate::client::HttpClient;
use crate::errors::error_chain;

const FUNCTION_ERROR: HeaderName = HeaderName::from_static("x-amz-function-error");

/// What one call of the Invoke API returned.
#[derive(Debug)]
pub struct Invocation {
    pub status: StatusCode,
    /// The function's error type when it failed: `X-Amz-Function-Error`, or, from the Lambda
    /// Runtime Interface Emulator, which sends no such header, the runtime's error document
    /// ([`result::runtime_error_type`]).
    pub function_error: Option<String>,
    pub body: Bytes,
}

impl Invocation {
    /// An answer from its status, its `X-Amz-Function-Error` header and its body.
    pub fn new(status: StatusCode, function_error_header: Option<String>, body: Bytes) -> Self {
        let function_error = function_error_header.or_else(|| result::runtime_error_type(&body));
        Self {
            status,
            function_error,
            body,
        }
    }
}

/// Why a call of the Invoke API got no answer.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("invoke URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("{0}")]
    Unreachable(String),
    #[error("reading the result: {0}")]
    Read(String),
}

/// POSTs `payload` to a function's Invoke API URL and reads the answer, at most `max_bytes`.
/// The caller bounds the time.
pub async fn invoke(
    client: &HttpClient,
    invoke_url: &str,
    payload: String,
    max_bytes: usize,
) -> Result<Invocation, InvokeError> {
    let uri = invoke_url.parse::<Uri>().map_err(|e| InvokeError::BadUrl {
        url: invoke_url.to_string(),
        reason: e.to_string(),
    })?;
    let mut request = Request::new(full(payload));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri;
    request.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let response = client
        .request(request)
        .await
        .map_err(|e| InvokeError::Unreachable(error_chain(&e)))?;
    let status = response.status();
    let header = response
        .headers()
        .get(FUNCTION_ERROR)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = Limited::new(response.into_body(), max_bytes)
        .collect()
        .await
        .map_err(|e| InvokeError::Read(e.to_string()))?
        .to_bytes();
    Ok(Invocation::new(status, header, body))
}
