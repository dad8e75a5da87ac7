//! Mock integration: the route's own status, headers and body.

use std::collections::BTreeMap;

use hyper::header::{HeaderName, HeaderValue};
use hyper::{Response, StatusCode};

use crate::body::{Body, full};
use crate::errors::GatewayError;
use crate::request_ctx::RouteCtx;
use crate::template::{Vars, render};

pub fn respond(
    call: &RouteCtx<'_>,
    status: u16,
    headers: &BTreeMap<String, String>,
    body: &str,
) -> Result<Response<Body>, GatewayError> {
    let vars = Vars {
        params: &call.params,
        stage_variables: call.stage_variables,
    };
    let mut response = Response::new(full(render(body, &vars)));
    *response.status_mut() = StatusCode::from_u16(status)
        .map_err(|_| GatewayError::Configuration(format!("mock status {status}")))?;
    for (name, value) in headers {
        let name = HeaderName::try_from(name.as_str())
            .map_err(|_| GatewayError::Configuration(format!("mock header name {name:?}")))?;
        let value = HeaderValue::try_from(render(value, &vars))
            .map_err(|_| GatewayError::Configuration(format!("mock header {name} value")))?;
        response.headers_mut().append(name, value);
    }
    Ok(response)
}
