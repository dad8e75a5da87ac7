//! Amazon's non-proxy integrations (REST APIs): the request body replaced by the mapping
//! template for its content type (or passed through, or refused with 415, as the passthrough
//! behaviour says), and the answer reshaped by the first integration response its selector
//! (the backend's status code, or a function's `errorMessage`) selects. Templates and patterns
//! are parsed once per table ([`Templates::build`]).
//!
//! `$context` in these templates is the request context a Lambda proxy event (1.0) carries
//! (`requestId`, `stage`, `resourcePath`, `httpMethod`, `identity.sourceIp`, `authorizer`, …);
//! `$input.params()` the request's path, query-string and header parameters, in response
//! templates too; `$input` the request body, then the answer's.

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use regex::Regex;
use serde_json::Value;
use tollgate_crds::table::{Passthrough, ResponseValue, TemplatesTable};
use tollgate_vtl::{Input, Overrides, RenderError, Template, Vars};

use crate::body::{Body, full};
use crate::errors::GatewayError;
use crate::lambda::event::{EventInput, parse_query, request_context_v1};
use crate::request_ctx::RouteCtx;
use crate::template::json_text_at;

/// A route's templates and integration responses, parsed.
#[derive(Debug)]
pub struct Templates {
    request: Vec<(String, Template)>,
    passthrough: Passthrough,
    responses: Vec<Selected>,
}

/// One integration response, ready to use.
#[derive(Debug)]
struct Selected {
    /// `None`: the default.
    pattern: Option<Regex>,
    status: StatusCode,
    headers: Vec<(HeaderName, ResponseValue)>,
    templates: Vec<(String, HeaderValue, Template)>,
}

/// What every template of one request reads besides its body: the request's parameters
/// (`$input.params()`), `$context` and `$stageVariables`, made once for the request and its
/// answer.
pub struct Scope {
    params: Input<'static>,
    vars: Vars,
}

impl Scope {
    pub fn of(call: &RouteCtx<'_>) -> Self {
        Self {
            params: Input {
                body: "",
                path: call.decoded_params(),
                querystring: parse_query(call.query),
                header: call
                    .parts
                    .headers
                    .iter()
                    .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                    .collect(),
            },
            vars: vars(call),
        }
    }

    /// `$input`: `body` with the request's parameters.
    fn input<'b>(&self, body: &'b str) -> Input<'b> {
        Input {
            body,
            ..self.params.clone()
        }
    }
}

/// The request as the integration gets it.
pub struct MappedRequest {
    pub body: Bytes,
    /// What the template set under `$context.requestOverride`.
    pub overrides: Overrides,
}

/// The integration's answer, read whole.
pub struct Answer<'a> {
    pub status: StatusCode,
    pub headers: &'a HeaderMap,
    pub body: &'a Bytes,
}

impl Templates {
    /// The table's templates; the compiler checked them, so one that does not build means a
    /// table from an incompatible writer, and the table is refused.
    pub fn build(table: &TemplatesTable) -> Result<Self, String> {
        let request = table
            .request
            .iter()
            .map(|(media, source)| Ok((media.clone(), parse(source)?)))
            .collect::<Result<_, String>>()?;
        let responses = table
            .responses
            .iter()
            .map(|r| {
                let pattern = r
                    .anchored_pattern()
                    .map(|p| Regex::new(&p).map_err(|e| e.to_string()))
                    .transpose()?;
                let headers = r
                    .headers
                    .iter()
                    .map(|h| {
                        let name =
                            HeaderName::from_bytes(h.name.as_bytes()).map_err(|e| e.to_string())?;
                        Ok((name, h.value.clone()))
                    })
                    .collect::<Result<_, String>>()?;
                let templates = r
                    .templates
                    .iter()
                    .map(|(media, source)| {
                        let value = HeaderValue::from_str(media).map_err(|e| e.to_string())?;
                        Ok((media.clone(), value, parse(source)?))
                    })
                    .collect::<Result<_, String>>()?;
                Ok(Selected {
                    pattern,
                    status: StatusCode::from_u16(r.status_code).map_err(|e| e.to_string())?,
                    headers,
                    templates,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Self {
            request,
            passthrough: table.passthrough,
            responses,
        })
    }

    /// The body the integration gets: the template for the request's content type rendered,
    /// else the body as it came (or 415, as the passthrough behaviour says).
    pub fn map_request(
        &self,
        call: &RouteCtx<'_>,
        scope: &Scope,
        body: &Bytes,
    ) -> Result<MappedRequest, GatewayError> {
        let media = media_type(call.parts.headers.get(CONTENT_TYPE));
        let Some((_, template)) = self
            .request
            .iter()
            .find(|(m, _)| m.eq_ignore_ascii_case(media))
        else {
            let passes = match self.passthrough {
                Passthrough::WhenNoMatch => true,
                Passthrough::WhenNoTemplates => self.request.is_empty(),
                Passthrough::Never => false,
            };
            return if passes {
                Ok(MappedRequest {
                    body: body.clone(),
                    overrides: Overrides::default(),
                })
            } else {
                Err(GatewayError::UnsupportedMediaType)
            };
        };
        let text = String::from_utf8_lossy(body);
        let rendered = template
            .render(&scope.input(&text), &scope.vars)
            .map_err(|e| render_error(call, "request", e))?;
        Ok(MappedRequest {
            body: Bytes::from(rendered.body),
            overrides: rendered.overrides,
        })
    }

    /// The answer as the client gets it, through the integration response `selector` selects
    /// (`None`: a function's result, which only the default takes), else the default; neither:
    /// 500, as Amazon's API_CONFIGURATION_ERROR.
    pub fn map_response(
        &self,
        call: &RouteCtx<'_>,
        scope: &Scope,
        selector: Option<&str>,
        answer: Answer<'_>,
    ) -> Result<Response<Body>, GatewayError> {
        let selected = selector.and_then(|s| {
            self.responses
                .iter()
                .find(|r| r.pattern.as_ref().is_some_and(|p| p.is_match(s)))
        });
        let chosen = selected
            .or_else(|| self.responses.iter().find(|r| r.pattern.is_none()))
            .ok_or_else(|| {
                GatewayError::Configuration(format!(
                    "no integration response selects {selector:?} and there is no default"
                ))
            })?;
        let mut response = Response::new(full(answer.body.clone()));
        *response.status_mut() = chosen.status;
        let json = || serde_json::from_slice::<Value>(answer.body).ok();
        let mut body_json: Option<Option<Value>> = None;
        for (name, source) in &chosen.headers {
            let value = match source {
                ResponseValue::Literal { value } => Some(value.clone()),
                ResponseValue::Header { name } => answer
                    .headers
                    .get(name.as_str())
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                ResponseValue::Body { path } => body_json
                    .get_or_insert_with(json)
                    .as_ref()
                    .and_then(|v| json_text_at(v, path)),
            };
            if let Some(v) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
                response.headers_mut().insert(name.clone(), v);
            }
        }
        let Some((media, template)) = template_for(&chosen.templates, &call.parts.headers) else {
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            return Ok(response);
        };
        let text = String::from_utf8_lossy(answer.body);
        let rendered = template
            .render(&scope.input(&text), &scope.vars)
            .map_err(|e| render_error(call, "response", e))?;
        response.headers_mut().insert(CONTENT_TYPE, media.clone());
        *response.body_mut() = full(Bytes::from(rendered.body));
        apply_response_overrides(&rendered.overrides, &mut response);
        Ok(response)
    }
}

fn parse(source: &str) -> Result<Template, String> {
    Template::parse(source).map_err(|e| e.to_string())
}

/// The media type of a `Content-Type`, without parameters; none is `application/json`, as
/// Amazon API Gateway reads it.
fn media_type(value: Option<&HeaderValue>) -> &str {
    value
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim())
        .filter(|m| !m.is_empty())
        .unwrap_or("application/json")
}

/// The template for the request's `Accept`, else `application/json`, else the first.
fn template_for<'t>(
    templates: &'t [(String, HeaderValue, Template)],
    headers: &HeaderMap,
) -> Option<(&'t HeaderValue, &'t Template)> {
    let accepts = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    accepts
        .split(',')
        .map(|m| m.split(';').next().unwrap_or("").trim())
        .find_map(|m| templates.iter().find(|(t, ..)| t.eq_ignore_ascii_case(m)))
        .or_else(|| templates.iter().find(|(t, ..)| t == "application/json"))
        .or_else(|| templates.first())
        .map(|(_, value, template)| (value, template))
}

/// `$context` (the request context of a 1.0 proxy event) and `$stageVariables`.
fn vars(call: &RouteCtx<'_>) -> Vars {
    let params = call.decoded_params();
    let authorizer = call.identity.lambda_v1();
    let context = request_context_v1(&EventInput::of(
        call,
        &params,
        call.parts.version,
        &[],
        authorizer.as_ref(),
    ));
    Vars {
        context,
        stage_variables: call
            .stage_variables
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// A body that is not the JSON a template reads is the client's (400, or the backend's:
/// 500); a template that fails or runs past a limit is the API's configuration (500).
fn render_error(call: &RouteCtx<'_>, which: &str, e: RenderError) -> GatewayError {
    tracing::debug!(request_id = %call.id, template = which, error = %e, "mapping template failed");
    match e {
        RenderError::InvalidJsonBody(_) if which == "request" => {
            GatewayError::BadRequest(format!("the body is not JSON: {e}"))
        }
        _ => GatewayError::Configuration(format!("{which} mapping template: {e}")),
    }
}

/// `$context.responseOverride.status` and `.header.NAME`.
fn apply_response_overrides(overrides: &Overrides, response: &mut Response<Body>) {
    if let Some(status) = overrides.status.and_then(|s| StatusCode::from_u16(s).ok()) {
        *response.status_mut() = status;
    }
    for (name, value) in &overrides.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) && !is_framing(&name)
        {
            response.headers_mut().insert(name, value);
        }
    }
}

/// Headers a template may not set: the proxy frames the answer.
pub fn is_framing(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "content-length"
            | "transfer-encoding"
            | "connection"
            | "keep-alive"
            | "upgrade"
            | "te"
            | "trailer"
    )
}
