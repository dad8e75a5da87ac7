//! The response phase: what the gateway adds to an integration's answer: the deployment that
//! served (on a stage with a canary) and the caller's rate-limit status; and, last of all, on
//! a REST API with `minimumCompressionSize`, the answer compressed for the client
//! ([`compress`]).

use hyper::Response;
use hyper::header::HeaderValue;

use crate::body::Body;
use crate::canary::DEPLOYMENT_HEADER;
use crate::compression;
use crate::request_ctx::{RequestCtx, RouteCtx};
use crate::throttle::RateLimitStatus;

pub fn decorate(
    ctx: &RouteCtx<'_>,
    rate_status: Option<RateLimitStatus>,
    response: &mut Response<Body>,
) {
    if let Some(d) = ctx.deployment {
        response
            .headers_mut()
            .insert(DEPLOYMENT_HEADER, HeaderValue::from_static(d.as_str()));
    }
    if let Some(status) = rate_status {
        status.write_headers(response.headers_mut(), false);
    }
}

/// The minimum body size a gateway compresses answers from (REST APIs with
/// `minimumCompressionSize`); `None` for a gateway that does not, and for an upgrade. A
/// gateway without a minimum pays this one `Option` check.
pub fn compression(ctx: &RequestCtx<'_>) -> Option<u32> {
    ctx.gateway()
        .minimum_compression_size
        .filter(|_| !ctx.websocket)
}

/// The answer compressed for the client ([`compression::compress`]); run on every answer but
/// a preflight's, after everything else that changes it. The compressing future is boxed,
/// so the request's own future keeps its size on gateways that never compress.
pub async fn compress(
    ctx: &RequestCtx<'_>,
    minimum: u32,
    response: Response<Body>,
) -> Response<Body> {
    Box::pin(compression::compress(
        minimum,
        &ctx.parts.method,
        &ctx.parts.headers,
        response,
    ))
    .await
}
