//! Reading the function's result.
//!
//! [`parse_result_for`] turns what the Invoke API returned into the HTTP response, the way
//! Amazon API Gateway really treats it (recorded behaviour wins over the developer guide's
//! tables; `docs/concepts.md`, "Lambda proxy results", gives the source of each rule).
//! [`parse_result`] is the same for callers that know only the payload version: 1.0 is read as
//! a REST API reads it, 2.0 as an HTTP API does.
//!
//! - **REST API, payload 1.0**: a JSON object whose keys are among `statusCode`, `headers`,
//!   `multiValueHeaders`, `body`, `isBase64Encoded` and `base64Encoded` (a spelling REST APIs
//!   also accept). Any other key, or a result that is not an object, is
//!   [`ResultError::Malformed`] (the caller answers 502). Every field is optional: without
//!   `statusCode` the status is 200. `statusCode` is an integer from 100 to 599 or a string
//!   of one (`"201"`). `isBase64Encoded` is a boolean or one of the strings `"true"`,
//!   `"True"`, `"false"`, `"False"`; `null` there is malformed.
//! - **HTTP API, payload 2.0**: a JSON object with `statusCode` is read as a structured
//!   response (`statusCode`, `headers`, `cookies` (each a `set-cookie` header), `body`,
//!   `isBase64Encoded`); other keys, `multiValueHeaders` included, are ignored. Any other valid
//!   JSON (a string, a number, an object without `statusCode`…) is the body itself, byte for
//!   byte, with status 200 and `content-type: application/json`. Invalid JSON is malformed.
//! - **HTTP API, payload 1.0**: as REST, except that `statusCode` is required and unknown keys
//!   are ignored.
//!
//! Details:
//! - A response without a `content-type` header gets one: `application/json` under payload
//!   1.0, `text/plain; charset=utf-8` for a structured 2.0 response. A `content-type` set to
//!   `null` keeps the response without one.
//! - When a name is in both `headers` and `multiValueHeaders` (compared without case), only
//!   the `multiValueHeaders` values are kept.
//! - Header values may be strings, numbers or booleans (numbers and booleans are sent as their
//!   JSON text); a `null` value leaves the header out. Other value types, and names or values
//!   that are not valid HTTP, are malformed. `null` for `headers`, `multiValueHeaders`,
//!   `cookies` or `body` is the same as leaving the field out; a missing or `null` body is an
//!   empty body.
//! - Framing and hop-by-hop headers the function sets (`content-length`, `transfer-encoding`,
//!   `connection`, `keep-alive`, `proxy-connection`, `te`, `trailer`, `upgrade`) are dropped:
//!   the proxy frames the body itself.
//! - A base64 body (`isBase64Encoded: true`) is decoded, except where the caller says
//!   [`Base64Body::KeepText`] (payload 1.0): a REST API whose request's `Accept` is not one of
//!   its binary media types sends the base64 text as it is, as Amazon does.
//! - An `X-Amz-Function-Error` header on the Invoke response (the function raised or
//!   crashed) is [`ResultError::FunctionError`] whatever the body says.
//!
//! Nothing here panics, whatever the bytes.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, SET_COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::{Map, Value};
use tollgate_crds::table::PayloadFormatVersion;

/// The HTTP response a function's result stands for.
#[derive(Debug, Clone, PartialEq)]
pub struct LambdaResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Why a function's result cannot be sent to the client.
#[derive(Debug, thiserror::Error)]
pub enum ResultError {
    /// The Invoke response carried `X-Amz-Function-Error` (this is its value).
    #[error("function error: {0}")]
    FunctionError(String),
    #[error("malformed Lambda proxy response: {0}")]
    Malformed(String),
}

/// Headers the function may not set: the proxy frames the response itself.
const DROPPED_HEADERS: &[&str] = &[
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Standard alphabet; padding optional, as functions' encoders differ on it.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Which kind of API reads the result: REST APIs and HTTP APIs differ on payload 1.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKind {
    Rest,
    Http,
}

/// Reads the Invoke API's answer as a REST API does under payload 1.0 and an HTTP API under
/// 2.0: `function_error` is the `X-Amz-Function-Error` response header, `body` the response
/// payload. See the module documentation for the rules.
pub fn parse_result(
    version: PayloadFormatVersion,
    function_error: Option<&str>,
    body: &[u8],
) -> Result<LambdaResponse, ResultError> {
    let api = match version {
        PayloadFormatVersion::V1 => ApiKind::Rest,
        PayloadFormatVersion::V2 => ApiKind::Http,
    };
    parse_result_for(api, version, function_error, body)
}

/// Reads the Invoke API's answer as an API of kind `api` does under payload `version`, a
/// base64 body (`isBase64Encoded: true`) decoded.
pub fn parse_result_for(
    api: ApiKind,
    version: PayloadFormatVersion,
    function_error: Option<&str>,
    body: &[u8],
) -> Result<LambdaResponse, ResultError> {
    parse_result_with(api, version, function_error, body, Base64Body::Decode)
}

/// What a result's base64 body (`isBase64Encoded: true`) becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base64Body {
    /// Decoded: the client gets the bytes (an HTTP API always; a REST API when the request's
    /// `Accept` is one of its binary media types).
    Decode,
    /// Sent as the text it is: a REST API whose client did not ask for a binary media type
    /// gets the base64 text, as on Amazon.
    KeepText,
}

/// [`parse_result_for`], saying what a base64 body becomes (payload 1.0; a 2.0 body is always
/// decoded).
pub fn parse_result_with(
    api: ApiKind,
    version: PayloadFormatVersion,
    function_error: Option<&str>,
    body: &[u8],
    base64_body: Base64Body,
) -> Result<LambdaResponse, ResultError> {
    if let Some(error) = function_error {
        return Err(ResultError::FunctionError(error.to_owned()));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| malformed(format!("result is not valid JSON: {e}")))?;
    match version {
        PayloadFormatVersion::V1 => {
            let Value::Object(object) = value else {
                return Err(malformed(format!(
                    "result must be a JSON object, got {}",
                    type_name(&value)
                )));
            };
            let dialect = match api {
                ApiKind::Rest => Dialect::Rest,
                ApiKind::Http => Dialect::HttpV1,
            };
            structured(&object, dialect, base64_body)
        }
        PayloadFormatVersion::V2 => match value {
            Value::Object(object) if object.contains_key("statusCode") => {
                structured(&object, Dialect::HttpV2, Base64Body::Decode)
            }
            _ => {
                let mut headers = HeaderMap::new();
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Ok(LambdaResponse {
                    status: StatusCode::OK,
                    headers,
                    body: Bytes::copy_from_slice(body),
                })
            }
        },
    }
}

/// The `errorType` of a Lambda runtime error document (`{"errorMessage": …, "errorType": …}`,
/// possibly with `requestId`, `stackTrace` and `cause`, and nothing else), `None` for any
/// other body.
///
/// AWS Lambda flags a failed invocation with the `X-Amz-Function-Error` header. The Lambda
/// Runtime Interface Emulator does not send that header: when the handler raises it answers
/// 200 with this document, and when the runtime process dies, 502 with it. Under payload 1.0
/// such a body is malformed anyway (no `statusCode`), but under 2.0 it would be taken as a
/// 200 JSON body and reach the client, stack trace included; a caller can pass this function's
/// answer as `function_error` to [`parse_result`] to treat it as the function error it is.
pub fn runtime_error_type(body: &[u8]) -> Option<String> {
    const KEYS: &[&str] = &[
        "errorMessage",
        "errorType",
        "requestId",
        "stackTrace",
        "cause",
    ];
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    if !object.keys().all(|k| KEYS.contains(&k.as_str())) {
        return None;
    }
    match (object.get("errorType"), object.get("errorMessage")) {
        (Some(Value::String(error_type)), Some(Value::String(_))) => Some(error_type.clone()),
        _ => None,
    }
}

/// The rules a structured result is read by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    /// REST API, payload 1.0.
    Rest,
    /// HTTP API, payload 1.0.
    HttpV1,
    /// HTTP API, payload 2.0, with `statusCode`.
    HttpV2,
}

/// The keys a REST API accepts in a 1.0 result; any other is malformed.
const REST_KEYS: &[&str] = &[
    "statusCode",
    "headers",
    "multiValueHeaders",
    "body",
    "isBase64Encoded",
    "base64Encoded",
];

/// What a 1.0 response without a `content-type` gets.
const DEFAULT_CONTENT_TYPE_V1: &str = "application/json";
/// What a structured 2.0 response without a `content-type` gets.
const DEFAULT_CONTENT_TYPE_V2: &str = "text/plain; charset=utf-8";

fn structured(
    object: &Map<String, Value>,
    dialect: Dialect,
    base64_body: Base64Body,
) -> Result<LambdaResponse, ResultError> {
    if dialect == Dialect::Rest
        && let Some(key) = object.keys().find(|k| !REST_KEYS.contains(&k.as_str()))
    {
        return Err(malformed(format!("unknown key {key:?} in a 1.0 result")));
    }
    let status = match object.get("statusCode") {
        None | Some(Value::Null) if dialect == Dialect::Rest => StatusCode::OK,
        None | Some(Value::Null) => return Err(malformed("statusCode is missing")),
        Some(value) => status_code(value)?,
    };

    // Names the function set, `null` values included: they stop the default content type.
    let mut named: Vec<HeaderName> = Vec::new();
    let mut headers = HeaderMap::new();
    match object.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (name, value) in map {
                let name = header_name(name)?;
                named.push(name.clone());
                if let Some(value) = header_value(&name, value)? {
                    headers.insert(name, value);
                }
            }
        }
        Some(other) => {
            return Err(malformed(format!(
                "headers must be an object, got {}",
                type_name(other)
            )));
        }
    }
    match object.get("multiValueHeaders") {
        _ if dialect == Dialect::HttpV2 => {}
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            let mut replaced: Vec<HeaderName> = Vec::new();
            for (name, values) in map {
                let name = header_name(name)?;
                let values = match values {
                    Value::Array(values) => values.as_slice(),
                    Value::Null => &[],
                    other => {
                        return Err(malformed(format!(
                            "multiValueHeaders.{name} must be an array, got {}",
                            type_name(other)
                        )));
                    }
                };
                named.push(name.clone());
                // multiValueHeaders win over headers for the same name; two spellings of one
                // name in multiValueHeaders add up.
                if !replaced.contains(&name) {
                    headers.remove(&name);
                    replaced.push(name.clone());
                }
                for value in values {
                    if let Some(value) = header_value(&name, value)? {
                        headers.append(name.clone(), value);
                    }
                }
            }
        }
        Some(other) => {
            return Err(malformed(format!(
                "multiValueHeaders must be an object, got {}",
                type_name(other)
            )));
        }
    }
    if dialect == Dialect::HttpV2 {
        match object.get("cookies") {
            None | Some(Value::Null) => {}
            Some(Value::Array(list)) => {
                for cookie in list {
                    let Value::String(cookie) = cookie else {
                        return Err(malformed(format!(
                            "cookies must hold strings, got {}",
                            type_name(cookie)
                        )));
                    };
                    let value = HeaderValue::from_bytes(cookie.as_bytes()).map_err(|_| {
                        malformed(format!("cookie {cookie:?} is not a valid header value"))
                    })?;
                    headers.append(SET_COOKIE, value);
                }
            }
            Some(other) => {
                return Err(malformed(format!(
                    "cookies must be an array, got {}",
                    type_name(other)
                )));
            }
        }
    }
    for name in DROPPED_HEADERS {
        headers.remove(*name);
    }
    if !named.contains(&CONTENT_TYPE) {
        let default = match dialect {
            Dialect::Rest | Dialect::HttpV1 => DEFAULT_CONTENT_TYPE_V1,
            Dialect::HttpV2 => DEFAULT_CONTENT_TYPE_V2,
        };
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(default));
    }

    let is_base64 = match dialect {
        // REST APIs read `base64Encoded` first, then `isBase64Encoded`.
        Dialect::Rest => match object.get("base64Encoded") {
            Some(flag) => base64_flag("base64Encoded", flag, true)?,
            None => match object.get("isBase64Encoded") {
                Some(flag) => base64_flag("isBase64Encoded", flag, true)?,
                None => false,
            },
        },
        Dialect::HttpV1 => match object.get("isBase64Encoded") {
            Some(flag) => base64_flag("isBase64Encoded", flag, true)?,
            None => false,
        },
        Dialect::HttpV2 => match object.get("isBase64Encoded") {
            None | Some(Value::Null) => false,
            Some(flag) => base64_flag("isBase64Encoded", flag, false)?,
        },
    };
    let body = match object.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(text)) if is_base64 && base64_body == Base64Body::Decode => Bytes::from(
            BASE64
                .decode(text.as_bytes())
                .map_err(|e| malformed(format!("body is not valid base64: {e}")))?,
        ),
        Some(Value::String(text)) => Bytes::copy_from_slice(text.as_bytes()),
        Some(other) => {
            return Err(malformed(format!(
                "body must be a string, got {}",
                type_name(other)
            )));
        }
    };

    Ok(LambdaResponse {
        status,
        headers,
        body,
    })
}

/// `statusCode`: an integer from 100 to 599, or (as Amazon API Gateway also takes) a string
/// holding one.
fn status_code(value: &Value) -> Result<StatusCode, ResultError> {
    let code = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse::<u64>().ok()
        }
        Value::String(s) => {
            return Err(malformed(format!(
                "statusCode {s:?} is not an integer from 100 to 599"
            )));
        }
        other => {
            return Err(malformed(format!(
                "statusCode must be an integer, got {}",
                type_name(other)
            )));
        }
    };
    code.and_then(|n| u16::try_from(n).ok())
        .filter(|n| (100..=599).contains(n))
        .and_then(|n| StatusCode::from_u16(n).ok())
        .ok_or_else(|| {
            malformed(format!(
                "statusCode {value} is not an integer from 100 to 599"
            ))
        })
}

/// `isBase64Encoded` (or `base64Encoded`): a boolean, or under payload 1.0 (`strings`) also
/// `"true"`, `"True"`, `"false"` or `"False"`. `null` is malformed where it reaches here.
fn base64_flag(field: &str, value: &Value, strings: bool) -> Result<bool, ResultError> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if strings && (s == "true" || s == "True") => Ok(true),
        Value::String(s) if strings && (s == "false" || s == "False") => Ok(false),
        other => Err(malformed(format!(
            "{field} must be a boolean, got {}",
            match other {
                Value::String(s) => format!("the string {s:?}"),
                other => type_name(other).to_owned(),
            }
        ))),
    }
}

fn header_name(name: &str) -> Result<HeaderName, ResultError> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| malformed(format!("{name:?} is not a valid header name")))
}

/// A header's value; `None` for `null` (the header is left out).
fn header_value(name: &HeaderName, value: &Value) -> Result<Option<HeaderValue>, ResultError> {
    let text = match value {
        Value::Null => return Ok(None),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => {
            return Err(malformed(format!(
                "header {name} must be a string, got {}",
                type_name(other)
            )));
        }
    };
    // Bytes rather than str: UTF-8 text in a value is let through, control characters are not.
    HeaderValue::from_bytes(text.as_bytes())
        .map(Some)
        .map_err(|_| malformed(format!("header {name} has an invalid value {text:?}")))
}

fn malformed(message: impl Into<String>) -> ResultError {
    ResultError::Malformed(message.into())
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const V1: PayloadFormatVersion = PayloadFormatVersion::V1;
    const V2: PayloadFormatVersion = PayloadFormatVersion::V2;

    fn ok(version: PayloadFormatVersion, value: Value) -> LambdaResponse {
        let bytes = serde_json::to_vec(&value).unwrap();
        parse_result(version, None, &bytes).unwrap_or_else(|e| panic!("{value} should parse: {e}"))
    }

    fn malformed_msg(version: PayloadFormatVersion, body: &[u8]) -> String {
        match parse_result(version, None, body) {
            Err(ResultError::Malformed(m)) => m,
            other => panic!(
                "{:?} should be malformed, got {other:?}",
                String::from_utf8_lossy(body)
            ),
        }
    }

    fn values(headers: &HeaderMap, name: &str) -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn v1_minimal() {
        let r = ok(V1, json!({"statusCode": 204}));
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(values(&r.headers, "content-type"), ["application/json"]);
        assert_eq!(r.headers.len(), 1);
        assert!(r.body.is_empty());
    }

    #[test]
    fn v1_full() {
        let r = ok(
            V1,
            json!({
                "statusCode": 201,
                "headers": {"Content-Type": "application/json", "X-Single": "one"},
                "multiValueHeaders": {"X-Multi": ["a", "b"]},
                "body": "{\"id\":7}",
                "isBase64Encoded": false,
            }),
        );
        assert_eq!(r.status, StatusCode::CREATED);
        assert_eq!(values(&r.headers, "content-type"), ["application/json"]);
        assert_eq!(values(&r.headers, "x-single"), ["one"]);
        assert_eq!(values(&r.headers, "x-multi"), ["a", "b"]);
        assert_eq!(&r.body[..], b"{\"id\":7}");
    }

    /// Rule 1: a response without a content type gets Amazon's default.
    #[test]
    fn default_content_type_per_version() {
        let r = ok(V1, json!({"statusCode": 200, "body": "hello"}));
        assert_eq!(values(&r.headers, "content-type"), ["application/json"]);
        let r = parse_result_for(ApiKind::Http, V1, None, br#"{"statusCode":200}"#).unwrap();
        assert_eq!(values(&r.headers, "content-type"), ["application/json"]);
        let r = ok(V2, json!({"statusCode": 200, "body": "hello"}));
        assert_eq!(
            values(&r.headers, "content-type"),
            ["text/plain; charset=utf-8"]
        );
        // The function's own content type, in any spelling or in multiValueHeaders, is kept.
        let r = ok(
            V1,
            json!({"statusCode": 200, "headers": {"CONTENT-TYPE": "text/html"}}),
        );
        assert_eq!(values(&r.headers, "content-type"), ["text/html"]);
        let r = ok(
            V1,
            json!({"statusCode": 200, "multiValueHeaders": {"Content-Type": ["image/png"]}}),
        );
        assert_eq!(values(&r.headers, "content-type"), ["image/png"]);
        let r = ok(
            V2,
            json!({"statusCode": 200, "headers": {"content-type": "text/csv"}}),
        );
        assert_eq!(values(&r.headers, "content-type"), ["text/csv"]);
    }

    /// Rule 8: a `null` header value leaves the header out, and a `null` content type keeps
    /// the response without one.
    #[test]
    fn null_header_values_are_left_out() {
        for version in [V1, V2] {
            let r = ok(
                version,
                json!({"statusCode": 204, "headers": {"Content-Type": null, "X-Gone": null, "X-Kept": "1"}}),
            );
            assert!(r.headers.get(CONTENT_TYPE).is_none(), "{version:?}");
            assert!(r.headers.get("x-gone").is_none());
            assert_eq!(values(&r.headers, "x-kept"), ["1"]);
        }
        let r = ok(
            V1,
            json!({"statusCode": 200, "multiValueHeaders": {"X-M": ["a", null, "b"], "X-N": null}}),
        );
        assert_eq!(values(&r.headers, "x-m"), ["a", "b"]);
        assert!(r.headers.get("x-n").is_none());
    }

    /// Rule 2: `statusCode` may be a string holding the number.
    #[test]
    fn status_code_as_a_string() {
        for version in [V1, V2] {
            assert_eq!(
                ok(version, json!({"statusCode": "201"})).status.as_u16(),
                201
            );
            assert_eq!(
                ok(version, json!({"statusCode": "404"})).status.as_u16(),
                404
            );
            for bad in [
                &br#"{"statusCode":"test"}"#[..],
                br#"{"statusCode":""}"#,
                br#"{"statusCode":" 200"}"#,
                br#"{"statusCode":"200.0"}"#,
                br#"{"statusCode":"-200"}"#,
                br#"{"statusCode":"99"}"#,
                br#"{"statusCode":"600"}"#,
                br#"{"statusCode":"99999999999999999999999"}"#,
            ] {
                malformed_msg(version, bad);
            }
        }
    }

    /// Rule 3: a REST API's result needs no `statusCode` (200); an HTTP API's 1.0 result does.
    #[test]
    fn missing_status_code() {
        let r = ok(V1, json!({"headers": {"x-only": "headers"}}));
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(values(&r.headers, "x-only"), ["headers"]);
        assert!(r.body.is_empty());
        let r = ok(V1, json!({}));
        assert_eq!(r.status, StatusCode::OK);
        let r = ok(V1, json!({"statusCode": null, "body": "x"}));
        assert_eq!((r.status, &r.body[..]), (StatusCode::OK, &b"x"[..]));
        assert!(matches!(
            parse_result_for(ApiKind::Http, V1, None, br#"{"body":"x"}"#),
            Err(ResultError::Malformed(_))
        ));
    }

    /// Rule 4: a REST API refuses unknown keys; an HTTP API ignores them.
    #[test]
    fn unknown_keys() {
        for bad in [
            &br#"{"statusCode":200,"wrongValue":"value"}"#[..],
            br#"{"statusCode":201,"statusDescription":"201 Created"}"#,
            br#"{"statusCode":200,"cookies":["a=b"]}"#,
            br#"{"statusCode":200,"StatusCode":200}"#,
        ] {
            let m = malformed_msg(V1, bad);
            assert!(m.contains("unknown key"), "{m}");
        }
        // base64Encoded is a spelling REST APIs take, and it is read before isBase64Encoded.
        let r = ok(
            V1,
            json!({"statusCode": 200, "body": "aGk=", "base64Encoded": true}),
        );
        assert_eq!(&r.body[..], b"hi");
        let r = ok(
            V1,
            json!({"body": "aGk=", "base64Encoded": false, "isBase64Encoded": true}),
        );
        assert_eq!(&r.body[..], b"aGk=");
        for api_version in [(ApiKind::Http, V1), (ApiKind::Http, V2)] {
            let r = parse_result_for(
                api_version.0,
                api_version.1,
                None,
                br#"{"statusCode":201,"statusDescription":"Created","wrongValue":1,"body":"ok"}"#,
            )
            .unwrap();
            assert_eq!((r.status.as_u16(), &r.body[..]), (201, &b"ok"[..]));
        }
    }

    #[test]
    fn multi_value_headers_win_over_headers() {
        let r = ok(
            V1,
            json!({
                "statusCode": 200,
                "headers": {"X-Both": "single", "X-Only-Single": "s"},
                "multiValueHeaders": {"x-both": ["m1", "m2"], "X-BOTH": ["m3"]},
            }),
        );
        // Both spellings add up (in the JSON object's key order); "single" is gone.
        let mut both = values(&r.headers, "x-both");
        both.sort();
        assert_eq!(both, ["m1", "m2", "m3"]);
        assert_eq!(values(&r.headers, "x-only-single"), ["s"]);
    }

    #[test]
    fn base64_body_decoded() {
        let png: &[u8] = &[
            0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d,
        ];
        for version in [V1, V2] {
            let r = ok(
                version,
                json!({
                    "statusCode": 200,
                    "headers": {"content-type": "image/png"},
                    "body": "iVBORw0KGgoAAAAN",
                    "isBase64Encoded": true,
                }),
            );
            assert_eq!(&r.body[..], png);
            assert_eq!(values(&r.headers, "content-type"), ["image/png"]);
        }
        // Unpadded base64 is accepted too.
        let r = ok(
            V1,
            json!({"statusCode": 200, "body": "aGk", "isBase64Encoded": true}),
        );
        assert_eq!(&r.body[..], b"hi");
    }

    /// A REST API whose client did not ask for a binary media type gets the base64 text, with
    /// the function's content type; the flag is still checked.
    #[test]
    fn base64_body_kept_as_text_when_asked() {
        let keep =
            |raw: &[u8]| parse_result_with(ApiKind::Rest, V1, None, raw, Base64Body::KeepText);
        let r = keep(
            br#"{"statusCode":200,"headers":{"content-type":"image/png"},"body":"aGk=","isBase64Encoded":true}"#,
        )
        .unwrap();
        assert_eq!(&r.body[..], b"aGk=");
        assert_eq!(values(&r.headers, "content-type"), ["image/png"]);
        // Not even valid base64: sent as it is, as nothing decodes it.
        let r = keep(br#"{"body":"not base64!!","isBase64Encoded":"true"}"#).unwrap();
        assert_eq!(&r.body[..], b"not base64!!");
        assert!(keep(br#"{"body":"aGk=","isBase64Encoded":null}"#).is_err());
        // 2.0 always decodes.
        let r = parse_result_with(
            ApiKind::Http,
            V2,
            None,
            br#"{"statusCode":200,"body":"aGk=","isBase64Encoded":true}"#,
            Base64Body::KeepText,
        )
        .unwrap();
        assert_eq!(&r.body[..], b"hi");
    }

    #[test]
    fn invalid_base64_is_malformed() {
        let m = malformed_msg(
            V1,
            br#"{"statusCode":200,"body":"not base64!!","isBase64Encoded":true}"#,
        );
        assert!(m.contains("base64"), "{m}");
    }

    #[test]
    fn base64_flag_false_keeps_text() {
        let r = ok(
            V1,
            json!({"statusCode": 200, "body": "aGk=", "isBase64Encoded": false}),
        );
        assert_eq!(&r.body[..], b"aGk=");
    }

    #[test]
    fn status_code_validation() {
        for bad in [
            &br#"{"statusCode":200.5}"#[..],
            br#"{"statusCode":99}"#,
            br#"{"statusCode":600}"#,
            br#"{"statusCode":-1}"#,
            br#"{"statusCode":70000}"#,
            br#"{"statusCode":true}"#,
            br#"{"statusCode":1e400}"#,
        ] {
            malformed_msg(V1, bad);
        }
        assert_eq!(ok(V1, json!({"statusCode": 100})).status.as_u16(), 100);
        assert_eq!(ok(V1, json!({"statusCode": 599})).status.as_u16(), 599);
        assert_eq!(ok(V1, json!({"statusCode": 418})).status.as_u16(), 418);
    }

    #[test]
    fn v1_not_an_object_is_malformed() {
        for bad in [
            &b"\"hello\""[..],
            b"42",
            b"null",
            b"[1,2]",
            b"",
            b"not json",
            b"{\"statusCode\":200",
            b"\xff\xfe",
        ] {
            malformed_msg(V1, bad);
        }
    }

    #[test]
    fn wrong_field_types_are_malformed() {
        for bad in [
            &br#"{"statusCode":200,"headers":"x"}"#[..],
            br#"{"statusCode":200,"headers":["x"]}"#,
            br#"{"statusCode":200,"headers":{"x":{"a":1}}}"#,
            br#"{"statusCode":200,"headers":{"x":["a"]}}"#,
            br#"{"statusCode":200,"body":42}"#,
            br#"{"statusCode":200,"body":{"a":1}}"#,
            br#"{"statusCode":200,"isBase64Encoded":"yes"}"#,
            br#"{"statusCode":200,"isBase64Encoded":1}"#,
        ] {
            malformed_msg(V1, bad);
            malformed_msg(V2, bad);
        }
        for bad in [
            &br#"{"statusCode":200,"multiValueHeaders":{"x":"a"}}"#[..],
            br#"{"statusCode":200,"multiValueHeaders":{"x":[1,{"a":1}]}}"#,
            br#"{"statusCode":200,"multiValueHeaders":[]}"#,
        ] {
            malformed_msg(V1, bad);
            // Not part of the 2.0 format: ignored.
            assert!(parse_result(V2, None, bad).is_ok());
        }
        malformed_msg(V2, br#"{"statusCode":200,"cookies":"a=b"}"#);
        malformed_msg(V2, br#"{"statusCode":200,"cookies":[1]}"#);
    }

    #[test]
    fn invalid_header_names_and_values_are_malformed() {
        for bad in [
            &br#"{"statusCode":200,"headers":{"bad name":"x"}}"#[..],
            br#"{"statusCode":200,"headers":{"":"x"}}"#,
            br#"{"statusCode":200,"headers":{"x":"line\nbreak"}}"#,
            br#"{"statusCode":200,"multiValueHeaders":{"x(y)":["a"]}}"#,
            br#"{"statusCode":200,"multiValueHeaders":{"x":["a\r\nInjected: 1"]}}"#,
        ] {
            malformed_msg(V1, bad);
        }
        malformed_msg(V2, br#"{"statusCode":200,"cookies":["a=b\nc"]}"#);
    }

    #[test]
    fn scalar_header_values_are_stringified() {
        let r = ok(
            V1,
            json!({
                "statusCode": 200,
                "headers": {"Access-Control-Allow-Credentials": true, "X-Count": 3},
                "multiValueHeaders": {"X-Flags": [false, 1.5, "s"]},
            }),
        );
        assert_eq!(
            values(&r.headers, "access-control-allow-credentials"),
            ["true"]
        );
        assert_eq!(values(&r.headers, "x-count"), ["3"]);
        assert_eq!(values(&r.headers, "x-flags"), ["false", "1.5", "s"]);
    }

    /// Rule 8: `null` and a missing field mean the same, except `isBase64Encoded` under 1.0.
    #[test]
    fn nulls_mean_absent() {
        let r = ok(
            V2,
            json!({
                "statusCode": 200,
                "headers": null,
                "cookies": null,
                "body": null,
                "isBase64Encoded": null,
            }),
        );
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers.len(), 1, "only the default content type");
        assert!(r.body.is_empty());
        let r = ok(
            V1,
            json!({"statusCode": 200, "headers": null, "multiValueHeaders": null, "body": null}),
        );
        assert_eq!(r.headers.len(), 1, "only the default content type");
        assert!(r.body.is_empty());
        let without = ok(V1, json!({"statusCode": 200}));
        assert_eq!(without.body, r.body, "a missing body is the same as null");
        // API Gateway: "Lambda body contains the wrong type for field isBase64Encoded".
        let m = malformed_msg(
            V1,
            br#"{"statusCode":200,"body":"x","isBase64Encoded":null}"#,
        );
        assert!(m.contains("isBase64Encoded"), "{m}");
    }

    /// Rule 8: under 1.0, `isBase64Encoded` may be the string `"true"` or `"false"`.
    #[test]
    fn base64_flag_as_a_string() {
        for (flag, body) in [
            ("true", &b"hi"[..]),
            ("True", b"hi"),
            ("false", b"aGk="),
            ("False", b"aGk="),
        ] {
            let r = ok(
                V1,
                json!({"statusCode": 200, "body": "aGk=", "isBase64Encoded": flag}),
            );
            assert_eq!(&r.body[..], body, "{flag}");
        }
        malformed_msg(
            V1,
            br#"{"statusCode":200,"body":"aGk=","isBase64Encoded":"TRUE"}"#,
        );
        malformed_msg(
            V2,
            br#"{"statusCode":200,"body":"aGk=","isBase64Encoded":"true"}"#,
        );
    }

    #[test]
    fn framing_headers_dropped() {
        let r = ok(
            V1,
            json!({
                "statusCode": 200,
                "headers": {"Content-Length": "999", "Connection": "close", "X-Keep": "1"},
                "multiValueHeaders": {"Transfer-Encoding": ["chunked"]},
                "body": "hi",
            }),
        );
        assert!(r.headers.get("content-length").is_none());
        assert!(r.headers.get("connection").is_none());
        assert!(r.headers.get("transfer-encoding").is_none());
        assert_eq!(values(&r.headers, "x-keep"), ["1"]);
    }

    #[test]
    fn function_error_wins() {
        let body = br#"{"errorMessage":"boom","errorType":"Exception"}"#;
        for version in [V1, V2] {
            match parse_result(version, Some("Unhandled"), body) {
                Err(ResultError::FunctionError(kind)) => assert_eq!(kind, "Unhandled"),
                other => panic!("expected FunctionError, got {other:?}"),
            }
            // Even a well-formed result is an error when the header says so.
            assert!(matches!(
                parse_result(version, Some("Handled"), br#"{"statusCode":200}"#),
                Err(ResultError::FunctionError(_))
            ));
        }
        let e = parse_result(V1, Some("Unhandled"), b"").unwrap_err();
        assert_eq!(e.to_string(), "function error: Unhandled");
    }

    #[test]
    fn v1_function_error_body_without_header_is_malformed() {
        // What a runtime returns when the handler raised, if the header got lost on the way.
        malformed_msg(
            V1,
            br#"{"errorMessage":"boom","errorType":"Exception","stackTrace":[]}"#,
        );
    }

    #[test]
    fn runtime_error_documents() {
        // What the emulator answered (200) when a Python handler raised.
        let raised = br#"{"errorMessage": "boom", "errorType": "RuntimeError", "requestId": "fc39c0ef-7fef-453a-824d-da9ea351e14e", "stackTrace": ["  File \"/tmp/fn.py\", line 6, in fail\n    raise RuntimeError(\"boom\")\n"]}"#;
        assert_eq!(runtime_error_type(raised).as_deref(), Some("RuntimeError"));
        // What it answered (502) when the runtime process exited.
        let exited = br#"{"errorType":"Runtime.ExitError","errorMessage":"RequestId: a1 Error: Runtime exited with error: exit status 3"}"#;
        assert_eq!(
            runtime_error_type(exited).as_deref(),
            Some("Runtime.ExitError")
        );
        // Proxy results and other bodies are not runtime errors.
        for other in [
            &br#"{"statusCode":500,"errorMessage":"x","errorType":"y"}"#[..],
            br#"{"errorMessage":"x"}"#,
            br#"{"errorMessage":"x","errorType":"y","extra":1}"#,
            br#"{"errorMessage":1,"errorType":"y"}"#,
            br#""errorType""#,
            b"Task timed out after 2.00 seconds",
            b"",
        ] {
            assert_eq!(
                runtime_error_type(other),
                None,
                "{}",
                String::from_utf8_lossy(other)
            );
        }
        // Fed back into parse_result, it is a function error under either version.
        let kind = runtime_error_type(raised);
        assert!(matches!(
            parse_result(V2, kind.as_deref(), raised),
            Err(ResultError::FunctionError(k)) if k == "RuntimeError"
        ));
    }

    #[test]
    fn v2_cookies_become_set_cookie() {
        let r = ok(
            V2,
            json!({
                "statusCode": 200,
                "cookies": ["session=abc; HttpOnly; Path=/", "theme=dark"],
                "headers": {"content-type": "text/plain"},
                "body": "ok",
            }),
        );
        assert_eq!(
            values(&r.headers, "set-cookie"),
            ["session=abc; HttpOnly; Path=/", "theme=dark"]
        );
        assert_eq!(&r.body[..], b"ok");
    }

    #[test]
    fn v1_http_api_ignores_cookies_field() {
        let r = parse_result_for(
            ApiKind::Http,
            V1,
            None,
            br#"{"statusCode":200,"cookies":["a=b"]}"#,
        )
        .unwrap();
        assert!(r.headers.get(SET_COOKIE).is_none());
    }

    /// Rule 5: under 2.0, `multiValueHeaders` is not part of the format and is ignored.
    #[test]
    fn v2_ignores_multi_value_headers() {
        let r = ok(
            V2,
            json!({
                "statusCode": 200,
                "headers": {"x-both": "single"},
                "multiValueHeaders": {"x-both": ["m1", "m2"], "x-multi": ["a"]},
            }),
        );
        assert_eq!(values(&r.headers, "x-both"), ["single"]);
        assert!(r.headers.get("x-multi").is_none());
    }

    #[test]
    fn v2_cookies_add_to_set_cookie_headers() {
        let r = ok(
            V2,
            json!({
                "statusCode": 200,
                "headers": {"Set-Cookie": "first=1"},
                "cookies": ["second=2"],
            }),
        );
        assert_eq!(values(&r.headers, "set-cookie"), ["first=1", "second=2"]);
    }

    #[test]
    fn v2_without_status_code_is_json_body() {
        for raw in [
            &br#"{"message":"Hello from Lambda!"}"#[..],
            br#""Hello from Lambda!""#,
            b"42",
            b"null",
            b"[1, 2, 3]",
            b" {\"statusCodes\": 200} \n",
            b"true",
        ] {
            let r = parse_result(V2, None, raw).unwrap();
            assert_eq!(r.status, StatusCode::OK);
            assert_eq!(values(&r.headers, "content-type"), ["application/json"]);
            assert_eq!(&r.body[..], raw, "body is the payload as returned");
        }
    }

    #[test]
    fn v2_structured() {
        let r = ok(
            V2,
            json!({
                "statusCode": 404,
                "headers": {"content-type": "application/json"},
                "body": "{\"message\":\"not found\"}",
            }),
        );
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(&r.body[..], b"{\"message\":\"not found\"}");
    }

    #[test]
    fn v2_bad_status_code_is_malformed() {
        malformed_msg(V2, br#"{"statusCode":"OK","body":"x"}"#);
        malformed_msg(V2, br#"{"statusCode":null}"#);
        malformed_msg(V2, br#"{"statusCode":1000}"#);
    }

    #[test]
    fn v2_invalid_json_is_malformed() {
        for bad in [&b""[..], b"{", b"hello", b"\xff", b"{\"a\":1}x"] {
            malformed_msg(V2, bad);
        }
    }

    #[test]
    fn never_panics_on_garbage() {
        // A cheap deterministic fuzz: every prefix of some tricky payloads, both versions.
        let samples: [&[u8]; 4] = [
            br#"{"statusCode":200,"headers":{"a":"b"},"multiValueHeaders":{"c":["d"]},"body":"aGk=","isBase64Encoded":true,"cookies":["x=y"]}"#,
            br#"{"statusCode":599,"body":"\ud800"}"#,
            "{\"statusCode\":200,\"headers\":{\"é\":\"ü\"}}".as_bytes(),
            &[0x7b, 0x22, 0xff, 0x00, 0x22, 0x3a, 0x31, 0x7d],
        ];
        for sample in samples {
            for end in 0..=sample.len() {
                for version in [V1, V2] {
                    let _ = parse_result(version, None, &sample[..end]);
                }
            }
        }
    }
}
