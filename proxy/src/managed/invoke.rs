//! A WebSocket route's integration, called with an [`Event`]: a mock answers from the route;
//! a Lambda function gets the event ([`event`](super::event)) and answers as a Lambda proxy
//! integration does (`statusCode`, `body`), or with any other JSON, taken as a 200 body; an
//! HTTP backend gets a `POST` of the message itself (empty for `$connect` and `$disconnect`)
//! with the connection's context in headers (`x-amzn-connection-id`, `-route-key`,
//! `-event-type`, and the `$connect` authorizer's `x-authorizer-*`), and its answer is taken as
//! it is.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode};
use serde_json::Value;
use tollgate_crds::table::{HttpBackendTable, IntegrationTable, PayloadFormatVersion};

use super::event::{Detail, Event};
use crate::errors::{GatewayError, error_chain};
use crate::integration::http::pick;
use crate::lambda::{self, Invocation, concurrency, result::parse_result};
use crate::router::ServedRoute;
use crate::template::{self, Vars};
use crate::upstream::{Deadline, Kind, Outbound, Payload, Upstream, UpstreamError};

/// Largest answer read from an integration: a message goes back in one frame at most as
/// large as what a client may send, and Lambda's own limit is 6 MB.
const MAX_ANSWER_BYTES: usize = 6 * 1024 * 1024;

pub const CONNECTION_ID_HEADER: HeaderName = HeaderName::from_static("x-amzn-connection-id");
pub const ROUTE_KEY_HEADER: HeaderName = HeaderName::from_static("x-amzn-route-key");
pub const EVENT_TYPE_HEADER: HeaderName = HeaderName::from_static("x-amzn-event-type");

/// What an integration answered.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

/// Calls the route's integration with the event.
pub async fn invoke(
    upstream: &Upstream,
    route: &ServedRoute,
    stage_variables: &BTreeMap<String, String>,
    event: &Event<'_>,
) -> Result<Answer, GatewayError> {
    let vars = Vars {
        params: &[],
        stage_variables,
    };
    match &route.table.integration {
        IntegrationTable::Mock {
            status_code, body, ..
        } => Ok(Answer {
            status: StatusCode::from_u16(*status_code).unwrap_or(StatusCode::OK),
            body: Bytes::from(template::render(body, &vars)),
        }),
        IntegrationTable::Lambda {
            invoke_url,
            region,
            timeout_millis,
            ..
        } => {
            let function = Function {
                invoke_url,
                region: region.as_deref(),
                timeout_millis: *timeout_millis,
            };
            lambda(upstream, route, function, event).await
        }
        IntegrationTable::Http {
            backends,
            request_headers,
            timeout_millis,
            ..
        } => {
            let request = http_request(backends, request_headers, &vars, event)?;
            let deadline = Deadline::after(Duration::from_millis(u64::from(*timeout_millis)));
            let call = Outbound {
                kind: Kind::Integration,
                request_id: Some(event.request_id),
                deadline,
                trace: None,
            };
            let reply = upstream
                .fetch(call, request, MAX_ANSWER_BYTES)
                .await
                .map_err(failure)?;
            Ok(Answer {
                status: reply.status,
                body: reply.body,
            })
        }
    }
}

/// A route's function, as its table gives it.
struct Function<'a> {
    invoke_url: &'a str,
    /// AWS Lambda: the region its calls are signed for.
    region: Option<&'a str>,
    timeout_millis: u32,
}

async fn lambda(
    upstream: &Upstream,
    route: &ServedRoute,
    function: Function<'_>,
    event: &Event<'_>,
) -> Result<Answer, GatewayError> {
    let Function {
        invoke_url,
        region,
        timeout_millis,
    } = function;
    let deadline = Deadline::after(Duration::from_millis(u64::from(timeout_millis)));
    let _permit = concurrency::permit(route.concurrency.as_ref(), &deadline).await?;
    let call = Outbound {
        kind: Kind::Lambda,
        request_id: Some(event.request_id),
        deadline,
        trace: None,
    };
    let payload = event.to_json().to_string();
    let Invocation {
        status,
        function_error,
        body,
    } = lambda::invoke(
        upstream,
        call,
        invoke_url,
        region,
        payload,
        MAX_ANSWER_BYTES,
    )
    .await
    .map_err(failure)?;
    if status != StatusCode::OK && function_error.is_none() {
        return Err(GatewayError::BadLambdaResult(format!(
            "the Invoke API answered {status}"
        )));
    }
    if let Some(error) = function_error {
        return Err(GatewayError::BadLambdaResult(format!(
            "function error: {error}"
        )));
    }
    // A proxy result (`statusCode`, `body`) is read as one; anything else a function returns
    // (`null` from a handler that returns nothing, a bare value) is a 200 with that body.
    let is_proxy_result =
        serde_json::from_slice::<Value>(&body).is_ok_and(|v| v.get("statusCode").is_some());
    if !is_proxy_result {
        let body = if body.as_ref() == b"null" {
            Bytes::new()
        } else {
            body
        };
        return Ok(Answer {
            status: StatusCode::OK,
            body,
        });
    }
    let result = parse_result(PayloadFormatVersion::V1, None, &body)
        .map_err(|e| GatewayError::BadLambdaResult(e.to_string()))?;
    Ok(Answer {
        status: result.status,
        body: result.body,
    })
}

/// The backend request: `POST` of the message to a backend chosen by weight, the route's
/// request headers, and the connection's context.
fn http_request(
    backends: &[HttpBackendTable],
    request_headers: &BTreeMap<String, String>,
    vars: &Vars<'_>,
    event: &Event<'_>,
) -> Result<Request<Payload>, GatewayError> {
    let backend = pick(backends)
        .map(|i| &backends[i])
        .ok_or_else(|| GatewayError::Configuration("no backend has a weight".into()))?;
    let url = template::render(&backend.url, vars);
    let uri = url
        .parse::<hyper::Uri>()
        .map_err(|e| GatewayError::Configuration(format!("backend URL {url:?}: {e}")))?;
    let body = match event.detail {
        Detail::Message { body, .. } => Payload::Whole(Bytes::copy_from_slice(body)),
        _ => Payload::Empty,
    };
    let mut request = Request::new(body);
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    for (name, value) in request_headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(template::render(value, vars)),
        ) {
            headers.insert(name, value);
        }
    }
    // Who `$connect`'s authorizer said the client is, as REST APIs' HTTP integrations get it.
    for (name, value) in event.peer.identity.headers() {
        headers.insert(name.clone(), value.clone());
    }
    for (name, value) in [
        (CONNECTION_ID_HEADER, event.peer.connection_id.as_str()),
        (ROUTE_KEY_HEADER, event.route_key),
        (EVENT_TYPE_HEADER, event.event_type().as_str()),
    ] {
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.insert(name, value);
        }
    }
    if let Detail::Message { binary, .. } = event.detail {
        let content_type = if binary {
            "application/octet-stream"
        } else {
            "text/plain; charset=utf-8"
        };
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    Ok(request)
}

fn failure(e: UpstreamError) -> GatewayError {
    match e {
        UpstreamError::BadUrl { .. } => GatewayError::Configuration(e.to_string()),
        UpstreamError::Timeout(_) => GatewayError::IntegrationTimeout,
        other => GatewayError::IntegrationFailure(error_chain(&other)),
    }
}
