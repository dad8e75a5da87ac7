//! Parameter mapping of an HTTP integration, as Amazon's HTTP APIs apply it: the compiled rules
//! ([`ParameterMappingTable`]) rewrite the headers, query string and path of the request sent
//! to the backend, and the status code and headers of the response, by its status code.
//!
//! Values read the client's request as it arrived (never what an earlier rule made of it), the
//! response as the backend sent it, the stage variables and the context. A value whose every
//! source is missing (a header the client did not send) leaves its target as it is; text
//! around a missing source keeps its place. A value a header cannot carry (a decoded query
//! parameter with a line break) is left out rather than sent.

use hyper::Response;
use hyper::StatusCode;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde_json::Value;
use tollgate_crds::table::{
    ContextVariable, MappingAction, MappingPart, MappingRule, MappingTarget,
};

use crate::body::Body;
use crate::errors::GatewayError;
use crate::lambda::event::{parse_query, request_time};
use crate::request_ctx::RouteCtx;
use crate::request_path;

/// Characters a mapped path segment or query component is sent percent-encoded.
const QUERY_COMPONENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// The backend URL's path and query string after the request rules, when they change them.
#[derive(Debug, PartialEq)]
pub struct UrlChange {
    /// The new path (percent-encoded), or `None` to keep the one the URL template gives.
    pub path: Option<String>,
    /// The query string sent, without `?`.
    pub query: String,
}

/// The path and query string the request rules give the backend URL. A mapped path with a
/// dot-segment or an encoded separator is refused as a client's would be.
pub fn url(call: &RouteCtx<'_>, rules: &[MappingRule]) -> Result<UrlChange, GatewayError> {
    let mut path = None;
    // The query string's `name=value` pieces, kept as sent.
    let mut query: Vec<String> = call
        .query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(str::to_string)
        .collect();
    for rule in rules {
        match &rule.target {
            MappingTarget::Path => {
                if let Some(value) = render(&rule.value, call, None) {
                    let mut mapped = utf8_percent_encode(&value, PATH).to_string();
                    if !mapped.starts_with('/') {
                        mapped.insert(0, '/');
                    }
                    request_path::check(&mapped)?;
                    path = Some(mapped);
                }
            }
            MappingTarget::Querystring(name) => {
                let value = match rule.action {
                    MappingAction::Remove => None,
                    _ => match render(&rule.value, call, None) {
                        Some(value) => Some(value),
                        None => continue,
                    },
                };
                if rule.action != MappingAction::Append {
                    query.retain(|piece| decoded_name(piece) != *name);
                }
                if let Some(value) = value {
                    query.push(format!(
                        "{}={}",
                        utf8_percent_encode(name, QUERY_COMPONENT),
                        utf8_percent_encode(&value, QUERY_COMPONENT)
                    ));
                }
            }
            MappingTarget::Header(_) | MappingTarget::Statuscode => {}
        }
    }
    Ok(UrlChange {
        path,
        query: query.join("&"),
    })
}

/// Applies the request rules' header changes to the headers sent to the backend.
pub fn request_headers(call: &RouteCtx<'_>, rules: &[MappingRule], headers: &mut HeaderMap) {
    for rule in rules {
        if let MappingTarget::Header(name) = &rule.target {
            apply_header(rule, name, call, None, headers);
        }
    }
}

/// Applies the rules for the response's status code, if any: its headers, then its status.
pub fn response(
    call: &RouteCtx<'_>,
    rules: &[MappingRule],
    response: &mut Response<Body>,
) -> Result<(), GatewayError> {
    let backend_headers = response.headers().clone();
    let mut status = None;
    for rule in rules {
        match &rule.target {
            MappingTarget::Header(name) => {
                apply_header(
                    rule,
                    name,
                    call,
                    Some(&backend_headers),
                    response.headers_mut(),
                );
            }
            MappingTarget::Statuscode => {
                if let Some(value) = render(&rule.value, call, Some(&backend_headers)) {
                    status = Some(
                        value
                            .trim()
                            .parse::<u16>()
                            .ok()
                            .and_then(|s| StatusCode::from_u16(s).ok())
                            .filter(|s| (200..=599).contains(&s.as_u16()))
                            .ok_or_else(|| {
                                GatewayError::Configuration(format!(
                                    "response mapping gave {value:?} as the status code"
                                ))
                            })?,
                    );
                }
            }
            MappingTarget::Path | MappingTarget::Querystring(_) => {}
        }
    }
    if let Some(status) = status {
        *response.status_mut() = status;
    }
    Ok(())
}

fn apply_header(
    rule: &MappingRule,
    name: &str,
    call: &RouteCtx<'_>,
    response: Option<&HeaderMap>,
    headers: &mut HeaderMap,
) {
    // The compiler checked the name; a name hyper refuses all the same is left alone.
    let Ok(name) = HeaderName::try_from(name) else {
        return;
    };
    if rule.action == MappingAction::Remove {
        headers.remove(&name);
        return;
    }
    let Some(value) = render(&rule.value, call, response) else {
        return;
    };
    let value = match (rule.action, joined(headers, &name)) {
        (MappingAction::Append, Some(existing)) => format!("{existing},{value}"),
        _ => value,
    };
    if let Ok(value) = HeaderValue::try_from(value) {
        headers.insert(name, value);
    }
}

/// A value's text; `None` when it reads sources and every one of them is missing.
fn render(
    parts: &[MappingPart],
    call: &RouteCtx<'_>,
    response: Option<&HeaderMap>,
) -> Option<String> {
    let mut out = String::new();
    let mut sources = 0;
    let mut found = 0;
    for part in parts {
        let value = match part {
            MappingPart::Text(text) => {
                out.push_str(text);
                continue;
            }
            MappingPart::RequestHeader(name) => joined(&call.parts.headers, name),
            MappingPart::RequestQuerystring(name) => {
                let values: Vec<String> = parse_query(call.query)
                    .into_iter()
                    .filter(|(n, _)| n == name)
                    .map(|(_, v)| v)
                    .collect();
                (!values.is_empty()).then(|| values.join(","))
            }
            MappingPart::RequestPath => Some(call.path().to_string()),
            MappingPart::RequestPathParameter(name) => call
                .params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone()),
            MappingPart::ResponseHeader(name) => response.and_then(|h| joined(h, name)),
            MappingPart::StageVariable(name) => call.stage_variables.get(name).cloned(),
            MappingPart::Context(variable) => context(variable, call),
        };
        sources += 1;
        if let Some(value) = value {
            found += 1;
            out.push_str(&value);
        }
    }
    (sources == 0 || found > 0).then_some(out)
}

fn context(variable: &ContextVariable, call: &RouteCtx<'_>) -> Option<String> {
    let identity = &call.identity;
    let text = |value: &Value| match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Some(match variable {
        ContextVariable::RequestId => call.id.to_string(),
        ContextVariable::ApiId => call.gateway().gateway.name.clone(),
        ContextVariable::Stage => call.stage().name.clone(),
        ContextVariable::HttpMethod => call.parts.method.to_string(),
        ContextVariable::Path => call.raw_path().to_string(),
        ContextVariable::Protocol => format!("{:?}", call.parts.version),
        ContextVariable::DomainName => call.host.to_string(),
        ContextVariable::RouteKey => call.route_table().route_key.clone(),
        ContextVariable::RequestTime => request_time(call.received_at),
        ContextVariable::RequestTimeEpoch => call.received_at.as_millisecond().to_string(),
        ContextVariable::SourceIp => call.source_ip.to_string(),
        ContextVariable::UserAgent => joined(&call.parts.headers, "user-agent")?,
        ContextVariable::PrincipalId => identity.principal_id.clone()?,
        ContextVariable::Claim(name) => text(identity.jwt.as_ref()?.claims.get(name)?),
        ContextVariable::AuthorizerContext(name) => text(identity.context.get(name)?),
    })
}

/// A header's values joined with commas, `None` when it has none or one is not text.
fn joined(headers: &HeaderMap, name: impl hyper::header::AsHeaderName) -> Option<String> {
    let mut out: Option<String> = None;
    for value in headers.get_all(name) {
        let value = value.to_str().ok()?;
        match &mut out {
            Some(joined) => {
                joined.push(',');
                joined.push_str(value);
            }
            None => out = Some(value.to_string()),
        }
    }
    out
}

/// The decoded name of a query-string piece (`name=value`).
fn decoded_name(piece: &str) -> String {
    let raw = piece.split_once('=').map_or(piece, |(name, _)| name);
    percent_encoding::percent_decode_str(&raw.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// The query string with the values a mapping template set
/// (`$context.requestOverride.querystring.NAME`) in place of the request's.
pub fn query_with_overrides(raw: &str, overrides: &[(String, String)]) -> String {
    let mut query: Vec<String> = raw
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(str::to_owned)
        .collect();
    for (name, value) in overrides {
        query.retain(|piece| decoded_name(piece) != *name);
        query.push(format!(
            "{}={}",
            utf8_percent_encode(name, QUERY_COMPONENT),
            utf8_percent_encode(value, QUERY_COMPONENT)
        ));
    }
    query.join("&")
}

/// A path parameter's value as a mapping template set it
/// (`$context.requestOverride.path.NAME`), encoded as one segment (a `/` too); `.` and `..`
/// are refused as a client's dot-segments are.
pub fn path_segment(value: &str) -> Result<String, GatewayError> {
    const SEGMENT: &AsciiSet = &PATH.add(b'/').add(b'%').add(b'\\');
    if value == "." || value == ".." {
        return Err(GatewayError::InvalidPath(
            request_path::PathError::DotSegment,
        ));
    }
    Ok(utf8_percent_encode(value, SEGMENT).to_string())
}
