//! A REST API's `gatewayResponses` into the table: each type name checked, each
//! `gatewayresponse.header.NAME` value parsed into where it comes from, each body template
//! parsed (a template that does not parse is refused with its line and column). A response
//! with a wrong part is skipped and named; the others, and the gateway, are served.

use std::collections::BTreeMap;

use super::diagnostics::{Diagnostic, Reason};
use super::validate;
use crate::resources::GatewayResponse;
use crate::table::{GatewayResponseTable, GatewayResponseType, HeaderSource, ResponseHeaderTable};

pub(super) fn compile(
    responses: &BTreeMap<String, GatewayResponse>,
    rest_api: bool,
    diag: &mut Diagnostic,
) -> Vec<GatewayResponseTable> {
    if responses.is_empty() {
        return Vec::new();
    }
    if !rest_api {
        diag.skip(
            Reason::ProtocolMismatch,
            "spec.gatewayResponses",
            "gateway responses are for REST APIs: remove spec.gatewayResponses",
        );
        return Vec::new();
    }
    let mut out = Vec::new();
    for (name, response) in responses {
        let field = format!("spec.gatewayResponses.{name}");
        let Some(response_type) = GatewayResponseType::parse(name) else {
            diag.skip(
                Reason::InvalidGatewayResponse,
                field,
                format!("unknown gateway response type {name:?} (ACCESS_DENIED, THROTTLED, DEFAULT_4XX, …)"),
            );
            continue;
        };
        match one(response_type, response) {
            Ok(table) => out.push(table),
            Err((at, message)) => diag.skip(
                Reason::InvalidGatewayResponse,
                format!("{field}{at}"),
                format!("{message}; the default {name} response is served"),
            ),
        }
    }
    out.sort_by_key(|r| r.response_type);
    out
}

/// One response, or the field (relative to it) and what is wrong.
fn one(
    response_type: GatewayResponseType,
    response: &GatewayResponse,
) -> Result<GatewayResponseTable, (String, String)> {
    if let Some(code) = response.status_code
        && !(100..=599).contains(&code)
    {
        return Err((".statusCode".into(), format!("{code} is not a status code")));
    }
    let mut headers = Vec::new();
    for (key, value) in &response.response_parameters {
        let at = format!(".responseParameters.{key}");
        let header = header(key, value).map_err(|e| (at, e))?;
        headers.push(header);
    }
    headers.sort_by(|a, b| a.name.cmp(&b.name));
    let mut templates = BTreeMap::new();
    for (media, source) in &response.response_templates {
        if let Err(e) = tollgate_vtl::Template::parse(source) {
            return Err((
                format!(".responseTemplates.{media}"),
                format!("the template does not parse: {e}"),
            ));
        }
        templates.insert(media.to_ascii_lowercase(), source.clone());
    }
    Ok(GatewayResponseTable {
        response_type,
        status_code: response.status_code,
        headers,
        templates,
    })
}

fn header(key: &str, value: &str) -> Result<ResponseHeaderTable, String> {
    let name = validate::answer_header(key, "gatewayresponse.header.")?;
    Ok(ResponseHeaderTable {
        name,
        value: source(value)?,
    })
}

fn source(value: &str) -> Result<HeaderSource, String> {
    if let Some(literal) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        validate::header_value("the value", literal)?;
        return Ok(HeaderSource::Literal {
            value: literal.to_owned(),
        });
    }
    let (parsed, named) = if let Some(name) = value.strip_prefix("method.request.header.") {
        let name = name.to_ascii_lowercase();
        (HeaderSource::Header { name: name.clone() }, name)
    } else if let Some(name) = value.strip_prefix("method.request.querystring.") {
        let name = name.to_owned();
        (HeaderSource::Querystring { name: name.clone() }, name)
    } else if let Some(name) = value.strip_prefix("method.request.path.") {
        let name = name.to_owned();
        (HeaderSource::Path { name: name.clone() }, name)
    } else if let Some(path) = value.strip_prefix("context.") {
        let path = path.to_owned();
        (HeaderSource::Context { path: path.clone() }, path)
    } else if let Some(name) = value.strip_prefix("stageVariables.") {
        let name = name.to_owned();
        (HeaderSource::StageVariable { name: name.clone() }, name)
    } else {
        return Err(format!(
            "{value:?} is not a value: write a literal in single quotes ('text'), \
             method.request.header.NAME, method.request.querystring.NAME, \
             method.request.path.NAME, context.NAME or stageVariables.NAME"
        ));
    };
    if named.is_empty() || named.contains(char::is_whitespace) {
        return Err(format!("{value:?} names nothing"));
    }
    Ok(parsed)
}
