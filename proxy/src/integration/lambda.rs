//! Lambda proxy integration: the Amazon API Gateway proxy event (payload 1.0 and 2.0) POSTed
//! to the Lambda Invoke API ([`crate::lambda`]), and the function's result turned into the
//! HTTP response; on a REST API (payload 1.0) the API's binary media types decide how bodies
//! are encoded both ways.

use std::time::Duration;

use bytes::Bytes;
use hyper::{Response, StatusCode};
use tollgate_crds::table::PayloadFormatVersion;

use crate::body::{Body, full};
use crate::errors::{GatewayError, error_chain};
use crate::integration::templates::{Answer, Scope, Templates};
use crate::lambda::event::{EventInput, event_v1, event_v2, is_binary_media_type};
use crate::lambda::result::{ApiKind, Base64Body, parse_result_with};
use crate::lambda::{self, Invocation, concurrency};
use crate::request_ctx::RouteCtx;
use crate::request_trace::Phase;
use crate::upstream::{Deadline, Kind, Outbound, Upstream, UpstreamError};

/// Largest function result read: Lambda's own synchronous response limit is 6 MB.
const MAX_RESULT_BYTES: usize = 10 * 1024 * 1024;

pub async fn invoke(
    call: &RouteCtx<'_>,
    body: &Bytes,
    upstream: &Upstream,
    invoke_url: &str,
    region: Option<&str>,
    version: PayloadFormatVersion,
    timeout_millis: u32,
) -> Result<Response<Body>, GatewayError> {
    // A non-proxy (custom) integration sends its request template's output, else the body.
    let templates = call.route.templates.as_ref();
    let scope = templates.map(|_| Scope::of(call));
    let payload = match (templates, &scope) {
        (Some(t), Some(scope)) => custom_payload(call, t, scope, body)?,
        _ => proxy_event(call, body, version),
    };

    // Waiting for a permit counts against the integration timeout.
    let deadline = Deadline::after(Duration::from_millis(u64::from(timeout_millis)));
    let _permit = concurrency::permit(call.route.concurrency.as_ref(), &deadline).await?;
    let outbound = Outbound {
        kind: Kind::Lambda,
        request_id: Some(call.id),
        deadline,
        trace: call.propagate(Phase::Integration),
    };
    let Invocation {
        status,
        function_error,
        body: bytes,
    } = lambda::invoke(
        upstream,
        outbound,
        invoke_url,
        region,
        payload,
        MAX_RESULT_BYTES,
    )
    .await
    .map_err(|e| match e {
        UpstreamError::BadUrl { .. } => GatewayError::Configuration(format!("invoke {e}")),
        UpstreamError::Timeout(_) => GatewayError::IntegrationTimeout,
        UpstreamError::Connect(_) | UpstreamError::Exchange(_) | UpstreamError::Signing(_) => {
            GatewayError::IntegrationFailure(format!("Lambda Invoke API: {}", error_chain(&e)))
        }
        UpstreamError::TooLarge(_) | UpstreamError::Read(_) => {
            GatewayError::BadLambdaResult(e.to_string())
        }
    })?;
    if status != StatusCode::OK && function_error.is_none() {
        return Err(GatewayError::BadLambdaResult(format!(
            "the Invoke API answered {status}"
        )));
    }

    if let Some(t) = templates {
        let scope = scope.unwrap_or_else(|| Scope::of(call));
        return custom_answer(call, t, &scope, function_error.as_deref(), &bytes);
    }

    // An HTTP API reads a 1.0 result more leniently than a REST API (unknown keys ignored).
    let api = if call.gateway().http_api {
        ApiKind::Http
    } else {
        ApiKind::Rest
    };
    // A REST API decodes a 1.0 result's base64 body only for a client whose first `Accept`
    // media type is one of its binary media types; others get the base64 text (Amazon's rule,
    // `docs/concepts.md`, "Compression and binary media types").
    let base64_body = match api {
        ApiKind::Rest if version == PayloadFormatVersion::V1 => {
            let accept = call
                .parts
                .headers
                .get(http::header::ACCEPT)
                .map(|v| v.to_str().unwrap_or(""));
            if is_binary_media_type(accept, &call.gateway().binary_media_types) {
                Base64Body::Decode
            } else {
                Base64Body::KeepText
            }
        }
        _ => Base64Body::Decode,
    };
    let result = parse_result_with(api, version, function_error.as_deref(), &bytes, base64_body)
        .map_err(|e| GatewayError::BadLambdaResult(e.to_string()))?;
    let mut response = Response::new(full(result.body));
    *response.status_mut() = result.status;
    *response.headers_mut() = result.headers;
    Ok(response)
}

/// The proxy event (payload 1.0 or 2.0) for the request.
fn proxy_event(call: &RouteCtx<'_>, body: &Bytes, version: PayloadFormatVersion) -> String {
    let path_parameters = call.decoded_params();
    let authorizer = match version {
        PayloadFormatVersion::V1 => call.identity.lambda_v1(),
        PayloadFormatVersion::V2 => call.identity.lambda_v2(),
    };
    let mut input = EventInput::of(
        call,
        &path_parameters,
        call.parts.version,
        body,
        authorizer.as_ref(),
    );
    // On a traced stage the function sees the trace in its event's headers, as on Amazon
    // (`X-Amzn-Trace-Id`), and in `traceparent`.
    let traced;
    if let Some(trace) = call.propagate(Phase::Integration) {
        let mut headers = call.parts.headers.clone();
        trace.inject(&mut headers);
        traced = headers;
        input.headers = &traced;
    }
    let event = match version {
        PayloadFormatVersion::V1 => event_v1(&input),
        PayloadFormatVersion::V2 => event_v2(&input),
    };
    event.to_string()
}

/// A custom integration's payload: the request template's output, else the body; an empty
/// one is `{}`, which every runtime reads as an event.
fn custom_payload(
    call: &RouteCtx<'_>,
    templates: &Templates,
    scope: &Scope,
    body: &Bytes,
) -> Result<String, GatewayError> {
    let mapped = templates.map_request(call, scope, body)?;
    let text = String::from_utf8_lossy(&mapped.body);
    Ok(if text.trim().is_empty() {
        "{}".to_owned()
    } else {
        text.into_owned()
    })
}

/// A custom integration's answer: a function error selects its integration response by its
/// `errorMessage` (no match: the default, as on Amazon, with the error document as `$input`);
/// a result goes to the default.
fn custom_answer(
    call: &RouteCtx<'_>,
    templates: &Templates,
    scope: &Scope,
    function_error: Option<&str>,
    bytes: &Bytes,
) -> Result<Response<Body>, GatewayError> {
    let selector = function_error.map(|_| {
        serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|v| v.get("errorMessage")?.as_str().map(str::to_owned))
            .unwrap_or_default()
    });
    let headers = http::HeaderMap::new();
    let answer = Answer {
        status: StatusCode::OK,
        headers: &headers,
        body: bytes,
    };
    templates.map_response(call, scope, selector.as_deref(), answer)
}
