//! AWS Lambda, as the gateway calls it: the proxy and REQUEST-authorizer events
//! ([`event`]), one call of the Invoke API ([`invoke`]) and what a function returns
//! ([`result`], function errors included). Used by the Lambda integration and by custom
//! authorizers alike, so neither depends on the other.

pub mod concurrency;
pub mod event;
pub mod result;

use bytes::Bytes;
use hyper::StatusCode;
use hyper::header::HeaderName;

use crate::upstream::{Outbound, SigV4, Upstream, UpstreamError};

/// The name AWS Lambda's calls are signed for.
const SERVICE: &str = "lambda";

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

/// POSTs `payload` to a function's Invoke API URL and reads the answer, at most `max_bytes`,
/// within the call's deadline. With a `region`, the call is AWS Lambda's: signed with SigV4.
pub async fn invoke(
    upstream: &Upstream,
    call: Outbound<'_>,
    invoke_url: &str,
    region: Option<&str>,
    payload: String,
    max_bytes: usize,
) -> Result<Invocation, UpstreamError> {
    let sigv4 = region.map(|region| SigV4 {
        service: SERVICE,
        region,
    });
    let reply = upstream
        .post_json(call, invoke_url, payload, max_bytes, sigv4)
        .await?;
    let header = reply
        .headers
        .get(FUNCTION_ERROR)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok(Invocation::new(reply.status, header, reply.body))
}
