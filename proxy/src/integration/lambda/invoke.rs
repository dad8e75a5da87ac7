//! Calling the function: the proxy event POSTed to the Lambda Invoke API, the result read
//! (bounded) and turned into the response.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use tollgate_crds::resources::PayloadFormatVersion;

use super::event::{EventInput, event_v1, event_v2};
use super::result::{parse_result, runtime_error_type};
use crate::body::{Body, full};
use crate::client::HttpClient;
use crate::errors::GatewayError;
use crate::integration::Call;

/// Largest function result read: Lambda's own synchronous response limit is 6 MB.
const MAX_RESULT_BYTES: usize = 10 * 1024 * 1024;

pub async fn invoke(
    call: &Call<'_>,
    body: &Bytes,
    client: &HttpClient,
    invoke_url: &str,
    version: PayloadFormatVersion,
    timeout_millis: u32,
) -> Result<Response<Body>, GatewayError> {
    let path_parameters: Vec<(String, String)> = call
        .params
        .iter()
        .map(|(name, raw)| (name.clone(), percent_decode(raw)))
        .collect();
    let authorizer = match version {
        PayloadFormatVersion::V1 => call.identity.lambda_v1(),
        PayloadFormatVersion::V2 => call.identity.lambda_v2(),
    };
    let input = EventInput {
        request_id: call.request_id,
        method: call.method,
        version: call.version,
        raw_path: call.raw_path,
        path: call.path,
        raw_query: call.query,
        headers: call.headers,
        body,
        source_ip: call.source_ip,
        stage: call.stage,
        route_key: &call.route.table.route_key,
        resource_path: &call.route.table.path,
        path_parameters: &path_parameters,
        stage_variables: call.stage_variables,
        domain_name: call.host,
        api_id: call.gateway,
        received_at: call.received_at,
        authorizer: authorizer.as_ref(),
        client_cert: call.client_cert,
    };
    let event = match version {
        PayloadFormatVersion::V1 => event_v1(&input),
        PayloadFormatVersion::V2 => event_v2(&input),
    };

    let mut request = Request::new(full(event.to_string()));
    *request.method_mut() = hyper::Method::POST;
    *request.uri_mut() = invoke_url
        .parse()
        .map_err(|e| GatewayError::Configuration(format!("invoke URL {invoke_url:?}: {e}")))?;
    request.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );

    let timeout = Duration::from_millis(u64::from(timeout_millis));
    let exchange = async {
        // Waiting for a permit counts against the integration timeout.
        let _permit = match &call.route.concurrency {
            Some(limit) => Some(limit.acquire().await.map_err(|_| {
                GatewayError::Configuration("function concurrency limit closed".into())
            })?),
            None => None,
        };
        let response = client
            .request(request)
            .await
            .map_err(|e| GatewayError::IntegrationFailure(format!("Lambda Invoke API: {e}")))?;
        let status = response.status();
        let header = response
            .headers()
            .get("x-amz-function-error")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = Limited::new(response.into_body(), MAX_RESULT_BYTES)
            .collect()
            .await
            .map_err(|e| GatewayError::BadLambdaResult(format!("reading the result: {e}")))?
            .to_bytes();
        // The Lambda Runtime Interface Emulator flags no error with a header: recognise the
        // runtime's error document, or a 2.0 function's exception would reach the client.
        let function_error = header.or_else(|| runtime_error_type(&bytes));
        Ok::<_, GatewayError>((status, function_error, bytes))
    };
    let (status, function_error, bytes) = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| GatewayError::IntegrationTimeout)??;
    if status != StatusCode::OK && function_error.is_none() {
        return Err(GatewayError::BadLambdaResult(format!(
            "the Invoke API answered {status}"
        )));
    }

    let result = parse_result(version, function_error.as_deref(), &bytes)
        .map_err(|e| GatewayError::BadLambdaResult(e.to_string()))?;
    let mut response = Response::new(full(result.body));
    *response.status_mut() = result.status;
    *response.headers_mut() = result.headers;
    Ok(response)
}

fn percent_decode(raw: &str) -> String {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned()
}
