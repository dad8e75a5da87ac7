//! The response phase: what the gateway adds to an integration's answer: the deployment that
//! served (on a stage with a canary) and the caller's rate-limit status.

use hyper::Response;
use hyper::header::HeaderValue;

use crate::body::Body;
use crate::canary::DEPLOYMENT_HEADER;
use crate::request_ctx::RouteCtx;
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
