//! Gateway responses: a REST API's own answer to what the gateway refuses or fails, as the
//! gateway's `gatewayResponses` customise it. The default answer ([`GatewayError::into_response`])
//! is the starting point; a customisation of the error's type (else `DEFAULT_4XX` or
//! `DEFAULT_5XX` by its status) changes its status, adds its headers and replaces its body with
//! the template for the request's `Accept` (else `application/json`, else the first). Templates
//! are parsed once per table ([`GatewayResponses::build`]).
//!
//! A template that fails to render leaves the default body: the answer to an error must not
//! become another error.

use std::collections::HashMap;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, Response, StatusCode};
use serde_json::{Value, json};
use tollgate_crds::table::{GatewayResponseTable, GatewayResponseType, GatewayTable, HeaderSource};
use tollgate_vtl::{Input, Template, Vars};

use crate::body::{Body, full};
use crate::errors::GatewayError;
use crate::lambda::event::parse_query;
use crate::request_ctx::RequestCtx;
use crate::template::json_text_at;

/// A gateway's customised responses, ready to use.
#[derive(Debug, Default)]
pub struct GatewayResponses(HashMap<GatewayResponseType, Customised>);

#[derive(Debug)]
struct Customised {
    status: Option<StatusCode>,
    headers: Vec<(HeaderName, HeaderSource)>,
    /// By media type, in the table's order.
    templates: Vec<(String, HeaderValue, Template)>,
}

impl GatewayResponses {
    /// The table's responses; the compiler checked them, so one that does not build means a
    /// table from an incompatible writer, and the table is refused.
    pub fn build(table: &GatewayTable) -> Result<Self, String> {
        let mut out = HashMap::new();
        for response in &table.gateway_responses {
            let customised = Customised::build(response)
                .map_err(|e| format!("gateway response {}: {e}", response.response_type))?;
            out.insert(response.response_type, customised);
        }
        Ok(Self(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The answer to `error` for a request of this gateway: the default one, customised.
    /// `params` are the route's path parameters, when a route was found.
    pub fn answer(
        &self,
        error: &GatewayError,
        ctx: &RequestCtx<'_>,
        params: &[(String, String)],
        response: Response<Body>,
    ) -> Response<Body> {
        let response_type = error.response_type();
        let default = if response.status().is_server_error() {
            GatewayResponseType::Default5xx
        } else {
            GatewayResponseType::Default4xx
        };
        let Some(customised) = self.0.get(&response_type).or_else(|| self.0.get(&default)) else {
            return response;
        };
        customised.apply(error, response_type, ctx, params, response)
    }
}

impl Customised {
    fn build(table: &GatewayResponseTable) -> Result<Self, String> {
        let status = table
            .status_code
            .map(|c| StatusCode::from_u16(c).map_err(|e| e.to_string()))
            .transpose()?;
        let headers = table
            .headers
            .iter()
            .map(|h| {
                let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|e| e.to_string())?;
                Ok((name, h.value.clone()))
            })
            .collect::<Result<_, String>>()?;
        let templates = table
            .templates
            .iter()
            .map(|(media, source)| {
                let value = HeaderValue::from_str(media).map_err(|e| e.to_string())?;
                let template = Template::parse(source).map_err(|e| e.to_string())?;
                Ok((media.clone(), value, template))
            })
            .collect::<Result<_, String>>()?;
        Ok(Self {
            status,
            headers,
            templates,
        })
    }

    fn apply(
        &self,
        error: &GatewayError,
        response_type: GatewayResponseType,
        ctx: &RequestCtx<'_>,
        params: &[(String, String)],
        mut response: Response<Body>,
    ) -> Response<Body> {
        if let Some(status) = self.status {
            *response.status_mut() = status;
        }
        let context = context(error, response_type, ctx);
        for (name, source) in &self.headers {
            let value = match source {
                HeaderSource::Literal { value } => Some(value.clone()),
                HeaderSource::Header { name } => ctx
                    .parts
                    .headers
                    .get(name.as_str())
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                HeaderSource::Querystring { name } => parse_query(ctx.query)
                    .into_iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v),
                HeaderSource::Path { name } => params
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone()),
                HeaderSource::Context { path } => json_text_at(&context, path),
                HeaderSource::StageVariable { name } => ctx.stage().variables.get(name).cloned(),
            };
            if let Some(v) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
                response.headers_mut().insert(name.clone(), v);
            }
        }
        if let Some((media, template)) = self.template_for(ctx) {
            let vars = Vars {
                context,
                stage_variables: ctx
                    .stage()
                    .variables
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            };
            match template.render(&Input::new(""), &vars) {
                Ok(rendered) => {
                    response.headers_mut().insert(CONTENT_TYPE, media.clone());
                    *response.body_mut() = full(Bytes::from(rendered.body));
                }
                Err(e) => tracing::warn!(
                    request_id = %ctx.id,
                    response_type = %response_type,
                    error = %e,
                    "gateway response template failed; the default body is sent"
                ),
            }
        }
        response
    }

    /// The template for the request's `Accept`, else `application/json`, else the first.
    fn template_for(&self, ctx: &RequestCtx<'_>) -> Option<(&HeaderValue, &Template)> {
        let accepts = ctx
            .parts
            .headers
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let accepted = accepts
            .split(',')
            .map(|m| m.split(';').next().unwrap_or("").trim())
            .find_map(|m| {
                self.templates
                    .iter()
                    .find(|(t, ..)| t.eq_ignore_ascii_case(m))
            });
        accepted
            .or_else(|| {
                self.templates
                    .iter()
                    .find(|(t, ..)| t == "application/json")
            })
            .or_else(|| self.templates.first())
            .map(|(_, value, template)| (value, template))
    }
}

/// `$context` as a gateway response sees it: the request's, with `error`.
fn context(
    error: &GatewayError,
    response_type: GatewayResponseType,
    ctx: &RequestCtx<'_>,
) -> Value {
    let message = error.full_message();
    json!({
        "requestId": ctx.id,
        "extendedRequestId": ctx.id,
        "stage": ctx.target.stage.name.as_ref(),
        "httpMethod": ctx.parts.method.as_str(),
        "path": ctx.raw_path(),
        "domainName": ctx.host,
        "requestTimeEpoch": ctx.received_at.as_millisecond(),
        "identity": {
            "sourceIp": ctx.source_ip.to_string(),
            "userAgent": ctx.parts.headers.get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()),
        },
        "error": {
            "message": message.as_deref(),
            "messageString": serde_json::to_string(&message.as_deref()).unwrap_or_default(),
            "responseType": response_type.as_str(),
            "validationErrorString": error.validation_errors().unwrap_or(""),
        },
    })
}
