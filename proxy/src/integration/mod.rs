//! What answers a route: an HTTP backend, a Lambda function or a mock. Each gets the request
//! as routed ([`RouteCtx`]) and its body ([`RequestBody`]).

pub mod http;
pub mod lambda;
pub mod mock;
pub mod templates;

use bytes::Bytes;
use hyper::Response;
use tollgate_crds::table::IntegrationTable;

use crate::body::{Body, ClientBody};
use crate::errors::GatewayError;
use crate::request_body::RequestBody;
use crate::request_ctx::RouteCtx;
use crate::upstream::Upstream;

/// Runs the route's integration.
pub async fn invoke<B: ClientBody>(
    call: &RouteCtx<'_>,
    body: RequestBody<'_, B>,
    upstream: &Upstream,
) -> Result<Response<Body>, GatewayError> {
    match &call.route_table().integration {
        IntegrationTable::Mock {
            status_code,
            headers,
            body,
        } => mock::respond(call, *status_code, headers, body),
        IntegrationTable::Http {
            backends,
            method,
            request_headers,
            parameter_mapping,
            timeout_millis,
            ..
        } => {
            let target = http::HttpTarget {
                backends,
                method: *method,
                request_headers,
                parameter_mapping: parameter_mapping.as_deref(),
                templates: call.route.templates.as_ref(),
                timeout_millis: *timeout_millis,
            };
            http::forward(call, body, upstream, target).await
        }
        IntegrationTable::Lambda {
            invoke_url,
            region,
            payload_format_version,
            timeout_millis,
            ..
        } => {
            let empty = Bytes::new();
            let bytes = match &body {
                RequestBody::Whole(buffered) => &buffered.bytes,
                RequestBody::Stream(_) => &empty,
            };
            lambda::invoke(
                call,
                bytes,
                upstream,
                invoke_url,
                region.as_deref(),
                *payload_format_version,
                *timeout_millis,
            )
            .await
        }
    }
}
