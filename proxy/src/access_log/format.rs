//! A stage's access-log format rendered for one request: the table's segments (parsed once by
//! the compiler) appended to one line, each value escaped for the format's kind, so that no
//! value a client sends (a User-Agent with quotes, newlines, `</ip>` or commas) can end the
//! line or break the structure around it.

use std::fmt::Write as _;

use serde_json::Value;
use tollgate_crds::table::{
    AccessLogFormatTable, AccessLogKind, AccessLogSegment, AccessLogVariable,
};

use super::AccessRecord;

/// What Amazon writes for a value the request does not have.
const ABSENT: &str = "-";

/// Appends the record's line (without its newline) to `out`.
pub fn render(format: &AccessLogFormatTable, record: &AccessRecord, out: &mut Vec<u8>) {
    let mut scratch = String::with_capacity(64);
    for segment in &format.segments {
        match segment {
            AccessLogSegment::Text(text) => out.extend_from_slice(text.as_bytes()),
            AccessLogSegment::Value(variable) => {
                scratch.clear();
                let present = value(variable, record, &mut scratch);
                let text = if present { scratch.as_str() } else { ABSENT };
                escape(format.kind, text, out);
            }
            AccessLogSegment::JsonValue(variable) => {
                scratch.clear();
                // The message itself, quoted once below.
                let variable = match variable {
                    AccessLogVariable::ErrorMessageString => &AccessLogVariable::ErrorMessage,
                    other => other,
                };
                let present = value(variable, record, &mut scratch);
                if present && is_number(variable) {
                    out.extend_from_slice(scratch.as_bytes());
                } else {
                    out.push(b'"');
                    json_escape(if present { &scratch } else { ABSENT }, out);
                    out.push(b'"');
                }
            }
        }
    }
}

fn is_number(variable: &AccessLogVariable) -> bool {
    use AccessLogVariable as V;
    matches!(
        variable,
        V::Status
            | V::ResponseLength
            | V::ResponseLatency
            | V::IntegrationLatency
            | V::IntegrationStatus
            | V::RequestTimeEpoch
    )
}

/// Writes a variable's value into `out` (empty); `false` when the request has none.
fn value(variable: &AccessLogVariable, record: &AccessRecord, out: &mut String) -> bool {
    use AccessLogVariable as V;
    let text = |out: &mut String, s: Option<&str>| match s {
        Some(s) => {
            out.push_str(s);
            true
        }
        None => false,
    };
    let number = |out: &mut String, n: Option<u64>| match n {
        Some(n) => {
            let _ = write!(out, "{n}");
            true
        }
        None => false,
    };
    let identity = record.identity.as_deref();
    match variable {
        V::RequestId | V::ExtendedRequestId => {
            let _ = write!(out, "{}", record.request_id.hyphenated());
            true
        }
        V::RequestTime => {
            let _ = write!(
                out,
                "{}",
                record.request_time.strftime("%d/%b/%Y:%H:%M:%S +0000")
            );
            true
        }
        V::RequestTimeEpoch => number(out, Some(record.request_time.as_millisecond() as u64)),
        V::HttpMethod => text(out, Some(record.http_method.as_str())),
        V::ResourcePath => text(
            out,
            record
                .route_key
                .as_deref()
                .and_then(|key| key.split_once(' '))
                .map(|(_, path)| path),
        ),
        V::Path => text(out, Some(record.path.path())),
        V::Protocol => {
            let _ = write!(out, "{:?}", record.protocol);
            true
        }
        V::Status => number(out, Some(u64::from(record.status))),
        V::ResponseLength => number(out, record.response_length),
        V::ResponseLatency => number(out, Some(record.response_latency)),
        V::IntegrationLatency => number(out, record.integration_latency),
        V::IntegrationStatus => number(out, record.integration_status.map(u64::from)),
        V::ErrorMessage => text(out, record.gateway_message.as_deref()),
        V::ErrorMessageString => match &record.gateway_message {
            Some(message) => {
                out.push('"');
                out.push_str(message);
                out.push('"');
                true
            }
            None => false,
        },
        V::ErrorResponseType => text(out, record.error_type),
        V::SourceIp => {
            let _ = write!(out, "{}", record.source_ip);
            true
        }
        V::UserAgent => match &record.user_agent {
            Some(ua) => {
                out.push_str(&String::from_utf8_lossy(ua.as_bytes()));
                true
            }
            None => false,
        },
        V::ApiKeyId => text(out, record.api_key_id.as_deref()),
        V::Caller | V::User => text(
            out,
            identity
                .and_then(|i| i.iam.as_ref())
                .map(|c| c.user.as_str()),
        ),
        V::PrincipalId => text(out, identity.and_then(|i| i.principal_id.as_deref())),
        V::Claim(name) => json_text(
            out,
            identity
                .and_then(|i| i.jwt.as_ref())
                .and_then(|jwt| jwt.claims.get(name)),
        ),
        V::AuthorizerContext(name) => json_text(out, identity.and_then(|i| i.context.get(name))),
        V::DomainName => text(out, record.domain_name.as_deref()),
        V::DomainPrefix => text(
            out,
            record
                .domain_name
                .as_deref()
                .and_then(|d| d.split(['.', ':']).next()),
        ),
        V::Stage => text(out, record.stage.as_deref()),
        V::ApiId => text(out, record.gateway.as_deref()),
        V::RouteKey => text(out, record.route_key.as_deref()),
        V::DeploymentId => text(out, record.deployment),
        V::TraceId => match &record.trace_id {
            Some(id) => {
                hex_into(out, id);
                true
            }
            None => false,
        },
        V::XrayTraceId => match &record.trace_id {
            Some(id) => {
                // X-Ray's form of a W3C id: `1-` the first 8 hex digits `-` the other 24.
                out.push_str("1-");
                hex_into(out, &id[..4]);
                out.push('-');
                hex_into(out, &id[4..]);
                true
            }
            None => false,
        },
        V::ConnectionId => text(out, record.connection_id.as_deref()),
        V::EventType => text(out, record.event_type),
    }
}

/// A claim or context value as Amazon stringifies it: a string as is, anything else as JSON.
fn json_text(out: &mut String, value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => {
            out.push_str(s);
            true
        }
        Some(other) => {
            let _ = write!(out, "{other}");
            true
        }
    }
}

pub(super) fn hex_into(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
}

fn escape(kind: AccessLogKind, value: &str, out: &mut Vec<u8>) {
    match kind {
        AccessLogKind::Json => json_escape(value, out),
        AccessLogKind::Xml => xml_escape(value, out),
        AccessLogKind::Text => text_escape(value, out, true),
        AccessLogKind::Csv => {
            if value.contains([',', '"']) {
                out.push(b'"');
                for c in value.chars() {
                    if c == '"' {
                        out.extend_from_slice(b"\"\"");
                    } else {
                        push_text_char(c, out, false);
                    }
                }
                out.push(b'"');
            } else {
                text_escape(value, out, false);
            }
        }
    }
}

/// The inside of a JSON string.
fn json_escape(value: &str, out: &mut Vec<u8>) {
    for c in value.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            // Line and paragraph separators: some readers split lines on them.
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = std::io::Write::write_fmt(out, format_args!("\\u{:04x}", c as u32));
            }
            c => push_char(c, out),
        }
    }
}

/// Text and attribute values of XML 1.0; control characters, which XML cannot carry, become
/// U+FFFD.
fn xml_escape(value: &str, out: &mut Vec<u8>) {
    for c in value.chars() {
        match c {
            '&' => out.extend_from_slice(b"&amp;"),
            '<' => out.extend_from_slice(b"&lt;"),
            '>' => out.extend_from_slice(b"&gt;"),
            '"' => out.extend_from_slice(b"&quot;"),
            '\'' => out.extend_from_slice(b"&apos;"),
            '\n' => out.extend_from_slice(b"&#10;"),
            '\r' => out.extend_from_slice(b"&#13;"),
            '\t' => out.extend_from_slice(b"&#9;"),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => push_char('\u{FFFD}', out),
            c => push_char(c, out),
        }
    }
}

/// A CLF or plain line: control characters as `\n`, `\t`, `\xHH`; with `quotes`, a quote and
/// a backslash escaped too, so a value cannot close the quoted field it is in.
fn text_escape(value: &str, out: &mut Vec<u8>, quotes: bool) {
    for c in value.chars() {
        push_text_char(c, out, quotes);
    }
}

fn push_text_char(c: char, out: &mut Vec<u8>, quotes: bool) {
    match c {
        '"' if quotes => out.extend_from_slice(b"\\\""),
        '\\' if quotes => out.extend_from_slice(b"\\\\"),
        '\n' => out.extend_from_slice(b"\\n"),
        '\r' => out.extend_from_slice(b"\\r"),
        '\t' => out.extend_from_slice(b"\\t"),
        c if c.is_control() => {
            let _ = std::io::Write::write_fmt(out, format_args!("\\x{:02x}", c as u32));
        }
        '\u{2028}' | '\u{2029}' => {
            let _ = std::io::Write::write_fmt(out, format_args!("\\u{:04x}", c as u32));
        }
        c => push_char(c, out),
    }
}

fn push_char(c: char, out: &mut Vec<u8>) {
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http::{HeaderValue, Method, Uri, Version};
    use serde_json::{Map, json};
    use tollgate_crds::compile::access_log::{self as presets, parse};

    use super::*;
    use crate::auth::Identity;
    use crate::auth::identity::JwtIdentity;

    fn sample() -> AccessRecord {
        let mut record = AccessRecord::new(
            uuid::Uuid::parse_str("8f3c2a1e-5b6d-4e7f-9a0b-1c2d3e4f5a6b").unwrap(),
            "2024-03-05T07:08:09.123Z".parse().unwrap(),
            "203.0.113.7".parse().unwrap(),
            Method::GET,
            Uri::from_static("/prod/pets/42?x=1"),
            Version::HTTP_11,
        );
        record.domain_name = Some("api.example.com".into());
        record.gateway = Some(Arc::from("default/pets"));
        record.stage = Some(Arc::from("prod"));
        record.route_key = Some(Arc::from("GET /pets/{id}"));
        record.status = 200;
        record.response_length = Some(17);
        record.response_latency = 12;
        record.integration_latency = Some(9);
        record.integration_status = Some(200);
        record.user_agent = Some(HeaderValue::from_static("curl/8.5"));
        record
    }

    fn line(format: &str, record: &AccessRecord) -> String {
        let format = parse(format).unwrap();
        let mut out = Vec::new();
        render(&format, record, &mut out);
        String::from_utf8(out).unwrap()
    }

    const ID: &str = "8f3c2a1e-5b6d-4e7f-9a0b-1c2d3e4f5a6b";

    #[test]
    fn rest_presets() {
        let r = sample();
        assert_eq!(
            line(presets::REST_CLF, &r),
            format!(
                "203.0.113.7 - - [05/Mar/2024:07:08:09 +0000]\"GET /pets/{{id}} HTTP/1.1\" 200 17 {ID} {ID}"
            )
        );
        let json: serde_json::Value = serde_json::from_str(&line(presets::REST_JSON, &r)).unwrap();
        assert_eq!(
            json,
            json!({"requestId": ID, "extendedRequestId": ID, "ip": "203.0.113.7", "caller": "-",
                   "user": "-", "requestTime": "05/Mar/2024:07:08:09 +0000", "httpMethod": "GET",
                   "resourcePath": "/pets/{id}", "status": "200", "protocol": "HTTP/1.1",
                   "responseLength": "17"})
        );
        assert_eq!(
            line(presets::REST_XML, &r),
            format!(
                "<request id=\"{ID}\"> <extendedRequestId>{ID}</extendedRequestId> <ip>203.0.113.7</ip> <caller>-</caller> <user>-</user> <requestTime>05/Mar/2024:07:08:09 +0000</requestTime> <httpMethod>GET</httpMethod> <resourcePath>/pets/{{id}}</resourcePath> <status>200</status> <protocol>HTTP/1.1</protocol> <responseLength>17</responseLength> </request>"
            )
        );
        assert_eq!(
            line(presets::REST_CSV, &r),
            format!(
                "203.0.113.7,-,-,05/Mar/2024:07:08:09 +0000,GET,/pets/{{id}},HTTP/1.1,200,17,{ID},{ID}"
            )
        );
    }

    #[test]
    fn http_presets() {
        let r = sample();
        assert_eq!(
            line(presets::HTTP_CLF, &r),
            format!(
                "203.0.113.7 - - [05/Mar/2024:07:08:09 +0000] \"GET GET /pets/{{id}} HTTP/1.1\" 200 17 {ID}"
            )
        );
        let json: serde_json::Value = serde_json::from_str(&line(presets::HTTP_JSON, &r)).unwrap();
        assert_eq!(json["routeKey"], "GET /pets/{id}");
        assert_eq!(json["status"], "200");
        assert!(line(presets::HTTP_XML, &r).contains("<routeKey>GET /pets/{id}</routeKey>"));
        assert_eq!(
            line(presets::HTTP_CSV, &r),
            format!(
                "203.0.113.7,05/Mar/2024:07:08:09 +0000,GET,GET /pets/{{id}},HTTP/1.1,200,17,{ID}"
            )
        );
    }

    #[test]
    fn every_variable_renders() {
        let mut r = sample();
        r.api_key_id = Some("tenant-a".into());
        r.deployment = Some("canary");
        r.gateway_message = Some("Forbidden".into());
        r.error_type = Some("ACCESS_DENIED");
        r.trace_id = Some([
            0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e,
            0x47, 0x36,
        ]);
        let mut claims = Map::new();
        claims.insert("sub".into(), json!("user-1"));
        claims.insert("n".into(), json!(3));
        let mut context = Map::new();
        context.insert("tenant".into(), json!("acme"));
        r.identity = Some(Arc::new(Identity::new(
            Some("principal-1".into()),
            Some(JwtIdentity {
                claims,
                scopes: vec![],
            }),
            context,
            None,
        )));
        let got = line(
            "$context.requestId|$context.requestTimeEpoch|$context.path|$context.responseLatency|$context.integration.latency|$context.integrationStatus|$context.error.message|$context.error.messageString|$context.error.responseType|$context.identity.userAgent|$context.identity.apiKeyId|$context.authorizer.principalId|$context.authorizer.claims.sub|$context.authorizer.claims.n|$context.authorizer.tenant|$context.authorizer.missing|$context.domainName|$context.domainPrefix|$context.stage|$context.apiId|$context.deploymentId|$context.traceId|$context.xrayTraceId|$context.connectionId",
            &r,
        );
        assert_eq!(
            got,
            format!(
                "{ID}|1709622489123|/prod/pets/42|12|9|200|Forbidden|\\\"Forbidden\\\"|ACCESS_DENIED|curl/8.5|tenant-a|principal-1|user-1|3|acme|-|api.example.com|api|prod|default/pets|canary|4bf92f3577b34da6a3ce929d0e0e4736|1-4bf92f35-77b34da6a3ce929d0e0e4736|-"
            )
        );
    }

    #[test]
    fn json_values_outside_strings_stay_json() {
        let mut r = sample();
        r.response_length = None;
        r.gateway_message = Some("Missing \"token\"".into());
        let got = line(
            r#"{"id":"$context.requestId","status":$context.status,"len":$context.responseLength,"err":$context.error.messageString,"ua":$context.identity.userAgent}"#,
            &r,
        );
        let json: serde_json::Value = serde_json::from_str(&got).unwrap();
        assert_eq!(json["status"], 200);
        assert_eq!(json["len"], "-");
        assert_eq!(json["err"], "Missing \"token\"");
        assert_eq!(json["ua"], "curl/8.5");
    }

    /// A client's User-Agent cannot end a line, add a field or close an element.
    #[test]
    fn no_value_breaks_the_structure() {
        let mut r = sample();
        let attack =
            "x\", \"admin\":true}\n{\"forged\":\"</ip><ip>1.2.3.4</ip>,evil,\"\r\u{2028}\\";
        r.user_agent =
            Some(HeaderValue::from_bytes(attack.replace(['\n', '\r'], "").as_bytes()).unwrap());
        // Header values cannot hold a newline; other values (an error message) can.
        r.gateway_message = Some(attack.into());
        for kind in ["json", "xml", "csv", "text"] {
            let format = match kind {
                "json" => {
                    r#"{"id":"$context.requestId","ua":"$context.identity.userAgent","e":"$context.error.message"}"#
                }
                "xml" => {
                    r#"<r id="$context.requestId"><ua>$context.identity.userAgent</ua><e a="$context.error.message"/></r>"#
                }
                "csv" => "$context.requestId,$context.identity.userAgent,$context.error.message",
                _ => r#"$context.requestId "$context.identity.userAgent" "$context.error.message""#,
            };
            let got = line(format, &r);
            assert!(!got.contains(['\n', '\r', '\u{2028}']), "{kind}: {got}");
            match kind {
                "json" => {
                    let json: serde_json::Value = serde_json::from_str(&got).unwrap();
                    assert_eq!(json.as_object().unwrap().len(), 3, "{got}");
                    assert_eq!(json["e"], attack);
                }
                "xml" => {
                    assert_eq!(got.matches('<').count(), 5, "{got}");
                    assert!(!got.contains("</ip>"), "{got}");
                }
                "csv" => {
                    // Three fields: the id, then two quoted values whose quotes are doubled.
                    let fields = csv_fields(&got);
                    assert_eq!(fields.len(), 3, "{got}");
                    assert!(fields[2].contains("</ip>"), "{got}");
                }
                _ => {
                    // Quotes inside values are escaped: exactly four bare quotes remain.
                    let (mut bare, mut chars) = (0, got.chars());
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => {
                                chars.next();
                            }
                            '"' => bare += 1,
                            _ => {}
                        }
                    }
                    assert_eq!(bare, 4, "{got}");
                }
            }
        }
    }

    /// Splits a CSV line as a reader would: quoted fields with doubled quotes.
    fn csv_fields(line: &str) -> Vec<String> {
        let mut fields = vec![String::new()];
        let mut quoted = false;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '"' if quoted && chars.peek() == Some(&'"') => {
                    chars.next();
                    fields.last_mut().unwrap().push('"');
                }
                '"' => quoted = !quoted,
                ',' if !quoted => fields.push(String::new()),
                c => fields.last_mut().unwrap().push(c),
            }
        }
        fields
    }
}
