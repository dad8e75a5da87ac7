//! A stage's `accessLogSettings`: a preset expanded to the API Gateway console's format, a
//! format parsed once into text and `$context` variables, its kind (JSON, XML, CSV or text)
//! decided once. A variable that would log a secret, or that Tollgate does not know, refuses
//! the format with a reason that says what to write instead.

use super::diagnostics::{Diagnostic, Reason};
use crate::resources::{AccessLogPreset, AccessLogSettings, ApiProtocol};
use crate::table::{AccessLogFormatTable, AccessLogKind, AccessLogSegment, AccessLogVariable};

/// The console's presets for a REST API (`$context.resourcePath`).
pub const REST_CLF: &str = r#"$context.identity.sourceIp $context.identity.caller $context.identity.user [$context.requestTime]"$context.httpMethod $context.resourcePath $context.protocol" $context.status $context.responseLength $context.requestId $context.extendedRequestId"#;
pub const REST_JSON: &str = r#"{ "requestId":"$context.requestId", "extendedRequestId":"$context.extendedRequestId","ip": "$context.identity.sourceIp", "caller":"$context.identity.caller", "user":"$context.identity.user", "requestTime":"$context.requestTime", "httpMethod":"$context.httpMethod", "resourcePath":"$context.resourcePath", "status":"$context.status", "protocol":"$context.protocol", "responseLength":"$context.responseLength" }"#;
pub const REST_XML: &str = r#"<request id="$context.requestId"> <extendedRequestId>$context.extendedRequestId</extendedRequestId> <ip>$context.identity.sourceIp</ip> <caller>$context.identity.caller</caller> <user>$context.identity.user</user> <requestTime>$context.requestTime</requestTime> <httpMethod>$context.httpMethod</httpMethod> <resourcePath>$context.resourcePath</resourcePath> <status>$context.status</status> <protocol>$context.protocol</protocol> <responseLength>$context.responseLength</responseLength> </request>"#;
pub const REST_CSV: &str = "$context.identity.sourceIp,$context.identity.caller,$context.identity.user,$context.requestTime,$context.httpMethod,$context.resourcePath,$context.protocol,$context.status,$context.responseLength,$context.requestId,$context.extendedRequestId";

/// The console's presets for an HTTP API (`$context.routeKey`); WebSocket APIs use them too.
pub const HTTP_CLF: &str = r#"$context.identity.sourceIp - - [$context.requestTime] "$context.httpMethod $context.routeKey $context.protocol" $context.status $context.responseLength $context.requestId"#;
pub const HTTP_JSON: &str = r#"{ "requestId":"$context.requestId", "ip": "$context.identity.sourceIp", "requestTime":"$context.requestTime", "httpMethod":"$context.httpMethod","routeKey":"$context.routeKey", "status":"$context.status","protocol":"$context.protocol", "responseLength":"$context.responseLength" }"#;
pub const HTTP_XML: &str = r#"<request id="$context.requestId"> <ip>$context.identity.sourceIp</ip> <requestTime>$context.requestTime</requestTime> <httpMethod>$context.httpMethod</httpMethod> <routeKey>$context.routeKey</routeKey> <status>$context.status</status> <protocol>$context.protocol</protocol> <responseLength>$context.responseLength</responseLength> </request>"#;
pub const HTTP_CSV: &str = "$context.identity.sourceIp,$context.requestTime,$context.httpMethod,$context.routeKey,$context.protocol,$context.status,$context.responseLength,$context.requestId";

/// The format string a preset stands for on an API of this kind.
pub fn preset(preset: AccessLogPreset, protocol: ApiProtocol) -> &'static str {
    let rest = protocol == ApiProtocol::REST;
    match (preset, rest) {
        (AccessLogPreset::CLF, true) => REST_CLF,
        (AccessLogPreset::JSON, true) => REST_JSON,
        (AccessLogPreset::XML, true) => REST_XML,
        (AccessLogPreset::CSV, true) => REST_CSV,
        (AccessLogPreset::CLF, false) => HTTP_CLF,
        (AccessLogPreset::JSON, false) => HTTP_JSON,
        (AccessLogPreset::XML, false) => HTTP_XML,
        (AccessLogPreset::CSV, false) => HTTP_CSV,
    }
}

/// A stage's settings into its table's format; `Err` (reported at `field`) refuses the stage.
pub(super) fn stage(
    settings: &AccessLogSettings,
    protocol: ApiProtocol,
    field: &str,
    diag: &mut Diagnostic,
) -> Result<AccessLogFormatTable, ()> {
    let (text, field) = match (&settings.format, settings.preset) {
        (Some(format), None) => (format.as_str(), format!("{field}.format")),
        (None, Some(p)) => (preset(p, protocol), format!("{field}.preset")),
        _ => {
            diag.skip(
                Reason::InvalidStage,
                field,
                "accessLogSettings needs exactly one of format and preset; the stage is not served",
            );
            return Err(());
        }
    };
    parse(text).map_err(|e| {
        diag.skip(
            Reason::InvalidStage,
            field,
            format!("{e}; the stage is not served"),
        );
    })
}

/// Parses a format string: `$context.NAME` (letters, digits, `_` and `.`; a trailing `.` is
/// text) or `${context.NAME}` for any name.
pub fn parse(format: &str) -> Result<AccessLogFormatTable, String> {
    if format.trim().is_empty() {
        return Err("the access log format is empty".into());
    }
    if format.contains(['\n', '\r']) {
        return Err("the access log format must be one line (the proxy ends each line)".into());
    }
    let trimmed = format.trim_start();
    let json = trimmed.starts_with('{');
    let xml = trimmed.starts_with('<');

    let mut segments: Vec<AccessLogSegment> = Vec::new();
    let mut text = String::new();
    // A JSON format: whether the text so far has left us inside a string literal.
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = format;
    while let Some(c) = rest.chars().next() {
        if c == '$'
            && let Some((name, len)) = variable_at(rest)?
        {
            let variable = variable(name)?;
            if !text.is_empty() {
                segments.push(AccessLogSegment::Text(std::mem::take(&mut text)));
            }
            segments.push(if json && !in_string {
                AccessLogSegment::JsonValue(variable)
            } else {
                AccessLogSegment::Value(variable)
            });
            rest = &rest[len..];
            continue;
        }
        if json {
            match c {
                _ if escaped => escaped = false,
                '\\' if in_string => escaped = true,
                '"' => in_string = !in_string,
                _ => {}
            }
        }
        text.push(c);
        rest = &rest[c.len_utf8()..];
    }
    if !text.is_empty() {
        segments.push(AccessLogSegment::Text(text));
    }

    let variables = || {
        segments.iter().filter_map(|s| match s {
            AccessLogSegment::Value(v) | AccessLogSegment::JsonValue(v) => Some(v),
            AccessLogSegment::Text(_) => None,
        })
    };
    if !variables().any(|v| {
        matches!(
            v,
            AccessLogVariable::RequestId | AccessLogVariable::ExtendedRequestId
        )
    }) {
        return Err(
            "the access log format must include $context.requestId or $context.extendedRequestId, as Amazon API Gateway requires"
                .into(),
        );
    }
    let kind = if json {
        AccessLogKind::Json
    } else if xml {
        AccessLogKind::Xml
    } else {
        let literal = || {
            segments.iter().filter_map(|s| match s {
                AccessLogSegment::Text(t) => Some(t.as_str()),
                _ => None,
            })
        };
        if literal().any(|t| t.contains(',')) && !literal().any(|t| t.contains(' ')) {
            AccessLogKind::Csv
        } else {
            AccessLogKind::Text
        }
    };
    Ok(AccessLogFormatTable { kind, segments })
}

/// Where `text` (starting with `$`) names a variable: its name after `context.` and the
/// length of the reference. `None`: a `$` that is only text.
fn variable_at(text: &str) -> Result<Option<(&str, usize)>, String> {
    if let Some(braced) = text.strip_prefix("${") {
        let Some(end) = braced.find('}') else {
            return Err(format!(
                "{:?} has no closing brace",
                &text[..text.len().min(40)]
            ));
        };
        let inner = &braced[..end];
        return match inner.strip_prefix("context.") {
            Some(name) if !name.is_empty() => Ok(Some((name, end + 3))),
            _ => Err(format!(
                "${{{inner}}}: an access log writes only $context variables"
            )),
        };
    }
    let after = &text[1..];
    if let Some(name) = after.strip_prefix("context.") {
        let len = name
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(name.len());
        let name = name[..len].trim_end_matches('.');
        if name.is_empty() {
            return Err("$context. names no variable".into());
        }
        return Ok(Some((name, 1 + "context.".len() + name.len())));
    }
    for other in [
        "input.",
        "stageVariables.",
        "util.",
        "method.",
        "request.",
        "stage.",
    ] {
        if after.starts_with(other) {
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
                .collect();
            return Err(format!(
                "${name}: an access log writes only $context variables, as Amazon API Gateway's"
            ));
        }
    }
    Ok(None)
}

/// Names that hold a credential however they are spelt: an authorizer's context or a JWT
/// claim by one of these names is never logged.
const SECRET_WORDS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "apikey",
    "authorization",
    "credential",
    "cookie",
    "privatekey",
    "signature",
];

fn variable(name: &str) -> Result<AccessLogVariable, String> {
    use AccessLogVariable as V;
    Ok(match name {
        "requestId" => V::RequestId,
        "extendedRequestId" => V::ExtendedRequestId,
        "requestTime" => V::RequestTime,
        "requestTimeEpoch" => V::RequestTimeEpoch,
        "httpMethod" => V::HttpMethod,
        "resourcePath" => V::ResourcePath,
        "path" => V::Path,
        "protocol" => V::Protocol,
        "status" => V::Status,
        "responseLength" => V::ResponseLength,
        "responseLatency" => V::ResponseLatency,
        "integrationLatency" | "integration.latency" => V::IntegrationLatency,
        "integrationStatus" | "integration.status" => V::IntegrationStatus,
        "error.message" => V::ErrorMessage,
        "error.messageString" => V::ErrorMessageString,
        "error.responseType" => V::ErrorResponseType,
        "identity.sourceIp" => V::SourceIp,
        "identity.userAgent" => V::UserAgent,
        "identity.apiKeyId" => V::ApiKeyId,
        "identity.caller" => V::Caller,
        "identity.user" => V::User,
        "authorizer.principalId" => V::PrincipalId,
        "domainName" => V::DomainName,
        "domainPrefix" => V::DomainPrefix,
        "stage" => V::Stage,
        "apiId" => V::ApiId,
        "routeKey" => V::RouteKey,
        "deploymentId" => V::DeploymentId,
        "xrayTraceId" => V::XrayTraceId,
        "traceId" => V::TraceId,
        "connectionId" => V::ConnectionId,
        "eventType" => V::EventType,
        "identity.apiKey" => {
            return Err(
                "$context.identity.apiKey would log the API key itself, a secret: use $context.identity.apiKeyId"
                    .into(),
            );
        }
        "identity.accessKey" => {
            return Err(
                "$context.identity.accessKey would log the caller's access key: use $context.identity.caller"
                    .into(),
            );
        }
        other => {
            if let Some(rest) = other.strip_prefix("authorizer.") {
                let (claim, key) = match rest.strip_prefix("claims.") {
                    Some(claim) => (true, claim),
                    None => (false, rest),
                };
                if key.is_empty() || key.contains('.') {
                    return Err(format!(
                        "$context.{other}: name one value (authorizer.claims.NAME or authorizer.NAME)"
                    ));
                }
                let folded: String = key
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric())
                    .collect::<String>()
                    .to_ascii_lowercase();
                if let Some(word) = SECRET_WORDS.iter().find(|w| folded.contains(*w)) {
                    return Err(format!(
                        "$context.{other} would log a credential (its name says {word}): access logs never hold secrets"
                    ));
                }
                return Ok(if claim {
                    V::Claim(key.to_string())
                } else {
                    V::AuthorizerContext(key.to_string())
                });
            }
            if other.contains("header") || other.starts_with("requestOverride") {
                return Err(format!(
                    "$context.{other}: an access log writes no request headers, which can hold credentials"
                ));
            }
            return Err(format!(
                "$context.{other} is not a variable Tollgate logs (see the access log section of docs/operations.md)"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use AccessLogSegment::{JsonValue, Text, Value};
    use AccessLogVariable as V;

    #[test]
    fn every_preset_parses_to_its_kind() {
        for protocol in [ApiProtocol::REST, ApiProtocol::HTTP, ApiProtocol::WEBSOCKET] {
            for (p, kind) in [
                (AccessLogPreset::CLF, AccessLogKind::Text),
                (AccessLogPreset::JSON, AccessLogKind::Json),
                (AccessLogPreset::XML, AccessLogKind::Xml),
                (AccessLogPreset::CSV, AccessLogKind::Csv),
            ] {
                let parsed = parse(preset(p, protocol)).unwrap();
                assert_eq!(parsed.kind, kind, "{p:?} {protocol:?}");
            }
        }
        // A JSON preset quotes every value: each is inside a string.
        let json = parse(REST_JSON).unwrap();
        assert!(json.segments.iter().all(|s| !matches!(s, JsonValue(_))));
    }

    #[test]
    fn both_forms_and_text_around() {
        let parsed = parse("id=${context.requestId}. $context.status.$ $x").unwrap();
        assert_eq!(
            parsed.segments,
            vec![
                Text("id=".into()),
                Value(V::RequestId),
                Text(". ".into()),
                Value(V::Status),
                Text(".$ $x".into()),
            ]
        );
        assert_eq!(parsed.kind, AccessLogKind::Text);
    }

    #[test]
    fn json_values_outside_strings_are_marked() {
        let parsed =
            parse(r#"{"id":"$context.requestId","s":$context.status,"q":"a\"$context.path"}"#)
                .unwrap();
        let vars: Vec<_> = parsed
            .segments
            .iter()
            .filter(|s| !matches!(s, Text(_)))
            .collect();
        assert_eq!(
            vars,
            vec![&Value(V::RequestId), &JsonValue(V::Status), &Value(V::Path)]
        );
    }

    #[test]
    fn authorizer_values() {
        let parsed =
            parse("$context.requestId $context.authorizer.claims.sub $context.authorizer.tenant")
                .unwrap();
        assert!(parsed.segments.contains(&Value(V::Claim("sub".into()))));
        assert!(
            parsed
                .segments
                .contains(&Value(V::AuthorizerContext("tenant".into())))
        );
    }

    #[test]
    fn secrets_and_unknowns_are_refused_with_a_reason() {
        let refused = |f: &str| parse(f).unwrap_err();
        assert!(refused("$context.requestId $context.identity.apiKey").contains("apiKeyId"));
        assert!(refused("$context.requestId ${context.identity.apiKey}").contains("apiKeyId"));
        assert!(
            refused("$context.requestId $context.authorizer.claims.access_token")
                .contains("credential")
        );
        assert!(refused("$context.requestId $context.authorizer.apiKey").contains("credential"));
        assert!(refused("$context.requestId $context.nope").contains("not a variable"));
        assert!(refused("$context.requestId $input.body").contains("only $context"));
        assert!(refused("$context.status").contains("requestId"));
        assert!(refused("$context.requestId\n").contains("one line"));
        assert!(refused("$context.requestId ${context.status").contains("closing brace"));
    }

    #[test]
    fn csv_needs_commas_and_no_spaces() {
        assert_eq!(
            parse("$context.requestId,$context.status").unwrap().kind,
            AccessLogKind::Csv
        );
        assert_eq!(
            parse("$context.requestId, $context.status").unwrap().kind,
            AccessLogKind::Text
        );
    }
}
