//! Building the proxy event.
//!
//! [`event_v1`] builds Amazon API Gateway's REST API Lambda proxy event (payload format 1.0),
//! [`event_v2`] the HTTP API event (payload format 2.0), as the developer guide documents them
//! ("Input format of a Lambda function for proxy integration" and "Working with AWS Lambda
//! proxy integrations for HTTP APIs").
//!
//! Where the guide and recorded events differ, the recorded events win (`docs/concepts.md`,
//! "Lambda proxy results", names the sources):
//! - 1.0 (REST API) keeps the path as the client sent it: `path` and `pathParameters` stay
//!   percent-encoded (`test%2Balias@example.com`), double slashes included; a greedy
//!   parameter (`{proxy+}`) loses one trailing slash (`/pets/` gives `proxy: "pets"`) while
//!   `path` keeps it.
//! - 2.0 (HTTP API) decodes: `rawPath`, `requestContext.http.path` and `pathParameters` are
//!   percent-decoded.
//! - `requestContext` carries every key Amazon's recorded 1.0 events carry, `deploymentId`
//!   included.
//!
//! Where Tollgate has no AWS value to give, it fills in something clearly local:
//! - `accountId` is [`ACCOUNT_ID`];
//! - `apiId` is the gateway's name, `extendedRequestId` the request id;
//! - `resourceId` is a stable six-character id derived from the route's path template
//!   (see [`resource_id`]), `deploymentId` one derived from the gateway and stage
//!   (see [`deployment_id`]).
//!
//! Header names arrive lowercased (HTTP/2 requires it and hyper lowercases HTTP/1 names), so
//! both versions carry lowercase names; Amazon API Gateway's REST APIs would keep the client's
//! spelling in 1.0 events.
//!
//! The request body, under 2.0 and on an HTTP API, goes as a plain string when it is valid
//! UTF-8 and its `Content-Type` is textual (see [`is_textual_content_type`]), otherwise
//! base64-encoded (standard alphabet) with `isBase64Encoded: true`. Under 1.0 on a REST API
//! the API's binary media types decide, as Amazon's: base64 when the `Content-Type` is one of
//! them ([`is_binary_media_type`]), text otherwise (bytes that are not UTF-8 replaced by
//! U+FFFD, as a text payload holds only UTF-8). An empty body is `null` in 1.0 and left out in
//! 2.0.

use std::collections::BTreeMap;
use std::net::IpAddr;

use base64::Engine as _;
use http::header::{CONTENT_TYPE, COOKIE, USER_AGENT};
use http::{HeaderMap, Method, Version};
use serde_json::{Map, Value, json};

use crate::auth::identity::IamCaller;
use crate::request_ctx::RouteCtx;
use crate::tls::ClientCert;

/// `requestContext.accountId` of every event: Tollgate runs no AWS account.
pub const ACCOUNT_ID: &str = "tollgate";

/// What the event is built from; the caller has matched the route and resolved the stage.
#[derive(Debug, Clone)]
pub struct EventInput<'a> {
    pub request_id: &'a str,
    pub method: &'a Method,
    /// Request protocol: `HTTP/1.1`, `HTTP/2.0` in the event.
    pub version: Version,
    /// The path exactly as the client sent it, stage or base path included: `/dev/pets/42`.
    pub raw_path: &'a str,
    /// The path without the stage or base path: `/pets/42`.
    pub path: &'a str,
    /// Query string without `?`, `""` when none; not decoded.
    pub raw_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub source_ip: IpAddr,
    pub stage: &'a str,
    /// `GET /pets/{petId}`.
    pub route_key: &'a str,
    /// The route's path template: `/pets/{petId}`.
    pub resource_path: &'a str,
    /// Name and (percent-decoded) value of each path parameter: 2.0's `pathParameters`.
    pub path_parameters: &'a [(String, String)],
    /// Name and value, as in the URL, of each path parameter: 1.0's `pathParameters`.
    pub raw_path_parameters: &'a [(String, String)],
    pub stage_variables: &'a BTreeMap<String, String>,
    /// The `Host` the request was sent to.
    pub domain_name: &'a str,
    /// The gateway's name.
    pub api_id: &'a str,
    pub received_at: jiff::Timestamp,
    /// Put as `requestContext.authorizer` when present; shaped by the caller.
    pub authorizer: Option<&'a Value>,
    /// The verified client certificate of a mutual-TLS domain.
    pub client_cert: Option<&'a ClientCert>,
    /// The signer an `AWS_IAM` authorizer verified: payload 1.0's `requestContext.identity`.
    pub iam: Option<&'a IamCaller>,
    /// A REST API's `binaryMediaTypes`: what payload 1.0 sends base64-encoded. `None` on an
    /// HTTP API, which decides by its own rule.
    pub binary_media_types: Option<&'a [String]>,
}

impl<'a> EventInput<'a> {
    /// The event's input for a routed request: the one place a request becomes an event's
    /// fields (the Lambda integration's and a REQUEST authorizer's).
    pub fn of(
        ctx: &'a RouteCtx<'a>,
        path_parameters: &'a [(String, String)],
        version: Version,
        body: &'a [u8],
        authorizer: Option<&'a Value>,
    ) -> Self {
        let route = ctx.route_table();
        Self {
            request_id: ctx.id,
            method: &ctx.parts.method,
            version,
            raw_path: ctx.raw_path(),
            path: ctx.path(),
            raw_query: ctx.query,
            headers: &ctx.parts.headers,
            body,
            source_ip: ctx.source_ip,
            stage: &ctx.stage().name,
            route_key: &route.route_key,
            resource_path: route.path.as_deref().unwrap_or("/"),
            path_parameters,
            raw_path_parameters: &ctx.params,
            stage_variables: ctx.stage_variables,
            domain_name: ctx.host,
            api_id: &ctx.gateway().gateway.name,
            received_at: ctx.received_at,
            authorizer,
            client_cert: ctx.client_cert.as_deref(),
            iam: ctx.identity.iam.as_ref(),
            binary_media_types: (!ctx.gateway().http_api)
                .then_some(ctx.gateway().binary_media_types.as_slice()),
        }
    }
}

/// `clientCert`, as both payload formats carry it.
fn client_cert(cert: &ClientCert) -> Value {
    json!({
        "clientCertPem": cert.pem,
        "subjectDN": cert.subject_dn,
        "issuerDN": cert.issuer_dn,
        "serialNumber": cert.serial_number,
        "validity": {
            "notBefore": cert.not_before,
            "notAfter": cert.not_after,
        },
    })
}

/// The REST API proxy event (payload format 1.0).
pub fn event_v1(input: &EventInput<'_>) -> Value {
    let (headers, multi_headers) = headers_v1(input.headers);
    let (query_single, query_multi) = query_v1(input.raw_query);
    let request_context = request_context_v1(input);

    let encoded = match input.binary_media_types {
        Some(types) => encode_body_rest(input.headers, input.body, types),
        None => encode_body(input.headers, input.body),
    };
    let (body, is_base64) = match encoded {
        Some((body, is_base64)) => (Value::String(body), is_base64),
        None => (Value::Null, false),
    };

    json!({
        "resource": input.resource_path,
        "path": input.path,
        "httpMethod": input.method.as_str(),
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": query_single,
        "multiValueQueryStringParameters": query_multi,
        "pathParameters": path_parameters_v1(input.raw_path_parameters, input.resource_path)
            .map_or(Value::Null, Value::Object),
        "stageVariables": stage_variables(input.stage_variables).map_or(Value::Null, Value::Object),
        "requestContext": request_context,
        "body": body,
        "isBase64Encoded": is_base64,
    })
}

/// A 1.0 event's `requestContext`: also what `$context` is in a REST API's mapping templates.
pub fn request_context_v1(input: &EventInput<'_>) -> Value {
    let user_agent = input
        .headers
        .get(USER_AGENT)
        .map_or(Value::Null, |v| Value::String(header_str(v)));

    let mut request_context = json!({
        "accountId": ACCOUNT_ID,
        "apiId": input.api_id,
        "deploymentId": deployment_id(input.api_id, input.stage),
        "domainName": input.domain_name,
        "domainPrefix": domain_prefix(input.domain_name),
        "extendedRequestId": input.request_id,
        "httpMethod": input.method.as_str(),
        "identity": {
            "accessKey": input.iam.map(|i| i.access_key.as_str()),
            "accountId": input.iam.map(|_| ACCOUNT_ID),
            "apiKey": null,
            "apiKeyId": null,
            "caller": input.iam.map(|i| i.user.as_str()),
            "clientCert": input.client_cert.map_or(Value::Null, client_cert),
            "cognitoAuthenticationProvider": null,
            "cognitoAuthenticationType": null,
            "cognitoIdentityId": null,
            "cognitoIdentityPoolId": null,
            "principalOrgId": null,
            "sourceIp": input.source_ip.to_string(),
            "user": input.iam.map(|i| i.user.as_str()),
            "userAgent": user_agent,
            "userArn": input.iam.map(|i| i.user_arn.as_str()),
        },
        "path": input.raw_path,
        "protocol": protocol(input.version),
        "requestId": input.request_id,
        "requestTime": request_time(input.received_at),
        "requestTimeEpoch": input.received_at.as_millisecond(),
        "resourceId": resource_id(input.resource_path),
        "resourcePath": input.resource_path,
        "stage": input.stage,
    });
    if let (Some(authorizer), Some(ctx)) = (input.authorizer, request_context.as_object_mut()) {
        ctx.insert("authorizer".to_owned(), authorizer.clone());
    }
    request_context
}

/// `headers` (the last value of each) and `multiValueHeaders`, as payload 1.0 and the
/// WebSocket event carry them.
pub fn headers_v1(headers: &HeaderMap) -> (Map<String, Value>, Map<String, Value>) {
    let mut single = Map::new();
    let mut multi = Map::new();
    for name in headers.keys() {
        let values: Vec<Value> = headers
            .get_all(name)
            .iter()
            .map(|v| Value::String(header_str(v)))
            .collect();
        if let Some(last) = values.last() {
            single.insert(name.as_str().to_owned(), last.clone());
        }
        multi.insert(name.as_str().to_owned(), Value::Array(values));
    }
    (single, multi)
}

/// `queryStringParameters` and `multiValueQueryStringParameters`, as payload 1.0 and the
/// WebSocket event carry them: both `null` without a query.
pub fn query_v1(raw_query: &str) -> (Value, Value) {
    let query = parse_query(raw_query);
    if query.is_empty() {
        return (Value::Null, Value::Null);
    }
    let mut single = Map::new();
    let mut multi: Map<String, Value> = Map::new();
    for (name, value) in query {
        single.insert(name.clone(), Value::String(value.clone()));
        match multi.get_mut(&name) {
            Some(Value::Array(values)) => values.push(Value::String(value)),
            _ => {
                multi.insert(name, Value::Array(vec![Value::String(value)]));
            }
        }
    }
    (Value::Object(single), Value::Object(multi))
}

/// The HTTP API proxy event (payload format 2.0).
pub fn event_v2(input: &EventInput<'_>) -> Value {
    let mut headers = Map::new();
    for name in input.headers.keys() {
        if name == COOKIE {
            continue;
        }
        let joined = input
            .headers
            .get_all(name)
            .iter()
            .map(header_str)
            .collect::<Vec<_>>()
            .join(",");
        headers.insert(name.as_str().to_owned(), Value::String(joined));
    }

    let cookies: Vec<Value> = input
        .headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|v| {
            header_str(v)
                .split(';')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(|c| Value::String(c.to_owned()))
                .collect::<Vec<_>>()
        })
        .collect();

    let mut query: Map<String, Value> = Map::new();
    for (name, value) in parse_query(input.raw_query) {
        match query.get_mut(&name) {
            Some(Value::String(joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => {
                query.insert(name, Value::String(value));
            }
        }
    }

    let user_agent = input
        .headers
        .get(USER_AGENT)
        .map(header_str)
        .unwrap_or_default();

    // HTTP APIs hand the path over percent-decoded.
    let decoded_path = percent_encoding::percent_decode_str(input.raw_path).decode_utf8_lossy();
    let mut request_context = json!({
        "accountId": ACCOUNT_ID,
        "apiId": input.api_id,
        "domainName": input.domain_name,
        "domainPrefix": domain_prefix(input.domain_name),
        "http": {
            "method": input.method.as_str(),
            "path": decoded_path,
            "protocol": protocol(input.version),
            "sourceIp": input.source_ip.to_string(),
            "userAgent": user_agent,
        },
        "requestId": input.request_id,
        "routeKey": input.route_key,
        "stage": input.stage,
        "time": request_time(input.received_at),
        "timeEpoch": input.received_at.as_millisecond(),
    });
    if let (Some(authorizer), Some(ctx)) = (input.authorizer, request_context.as_object_mut()) {
        ctx.insert("authorizer".to_owned(), authorizer.clone());
    }
    if let (Some(cert), Some(ctx)) = (input.client_cert, request_context.as_object_mut()) {
        ctx.insert(
            "authentication".to_owned(),
            json!({ "clientCert": client_cert(cert) }),
        );
    }

    let mut event = Map::new();
    event.insert("version".to_owned(), json!("2.0"));
    event.insert("routeKey".to_owned(), json!(input.route_key));
    event.insert("rawPath".to_owned(), json!(decoded_path));
    event.insert("rawQueryString".to_owned(), json!(input.raw_query));
    if !cookies.is_empty() {
        event.insert("cookies".to_owned(), Value::Array(cookies));
    }
    event.insert("headers".to_owned(), Value::Object(headers));
    if !query.is_empty() {
        event.insert("queryStringParameters".to_owned(), Value::Object(query));
    }
    if let Some(params) = path_parameters(input.path_parameters) {
        event.insert("pathParameters".to_owned(), Value::Object(params));
    }
    if let Some(vars) = stage_variables(input.stage_variables) {
        event.insert("stageVariables".to_owned(), Value::Object(vars));
    }
    event.insert("requestContext".to_owned(), request_context);
    let is_base64 = match encode_body(input.headers, input.body) {
        Some((body, is_base64)) => {
            event.insert("body".to_owned(), Value::String(body));
            is_base64
        }
        None => false,
    };
    event.insert("isBase64Encoded".to_owned(), Value::Bool(is_base64));
    Value::Object(event)
}

/// Whether a request body of this `Content-Type` goes into the event as text (when it is also
/// valid UTF-8): no content type, `text/*`, JSON, XML, JavaScript and form data, parameters
/// such as `charset` ignored. Everything else is sent base64-encoded.
pub fn is_textual_content_type(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else {
        return true;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    match kind {
        "text" => !subtype.is_empty(),
        "application" => {
            matches!(
                subtype,
                "json" | "xml" | "javascript" | "x-www-form-urlencoded"
            ) || (subtype.ends_with("+json") && subtype.len() > "+json".len())
                || (subtype.ends_with("+xml") && subtype.len() > "+xml".len())
        }
        _ => false,
    }
}

/// `requestContext.resourceId`: six characters of `[0-9a-z]` derived from the route's path
/// template (FNV-1a), so that every request to one resource reports the same id, as on AWS.
pub fn resource_id(resource_path: &str) -> String {
    const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in resource_path.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (0..6)
        .map(|_| {
            // The remainder is below 36: the cast cannot truncate.
            let c = ALPHABET[(hash % 36) as usize];
            hash /= 36;
            char::from(c)
        })
        .collect()
}

/// `requestContext.deploymentId`: six characters of `[0-9a-z]` derived from the gateway and
/// the stage, stable across requests and restarts as a deployment's id is on AWS.
pub fn deployment_id(api_id: &str, stage: &str) -> String {
    resource_id(&format!("deployment {api_id} {stage}"))
}

/// 1.0's `pathParameters`: the values as in the URL (not decoded), and a greedy parameter
/// (the last one of a template ending in `+}`) without one trailing slash, as REST APIs
/// send them.
fn path_parameters_v1(params: &[(String, String)], template: &str) -> Option<Map<String, Value>> {
    if params.is_empty() {
        return None;
    }
    let greedy = template.ends_with("+}");
    let last = params.len() - 1;
    Some(
        params
            .iter()
            .enumerate()
            .map(|(i, (name, value))| {
                let value = if greedy && i == last {
                    value.strip_suffix('/').unwrap_or(value)
                } else {
                    value
                };
                (name.clone(), Value::String(value.to_owned()))
            })
            .collect(),
    )
}

/// Whether a media type (a `Content-Type`, or the first of an `Accept`'s list; parameters
/// ignored, case ignored) is one of a REST API's binary media types, as Amazon matches them:
/// the type itself, its `type/*`, or `*/*`, which takes every request, one without the
/// header included.
pub fn is_binary_media_type(media_type: Option<&str>, binary_media_types: &[String]) -> bool {
    if binary_media_types.is_empty() {
        return false;
    }
    if binary_media_types.iter().any(|t| t == "*/*") {
        return true;
    }
    let Some(media_type) = media_type else {
        return false;
    };
    let first = media_type.split(',').next().unwrap_or_default();
    let essence = first.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    let (kind, subtype) = (kind.trim(), subtype.trim());
    binary_media_types.iter().any(|t| match t.split_once('/') {
        Some((k, "*")) => k.eq_ignore_ascii_case(kind),
        Some((k, s)) => k.eq_ignore_ascii_case(kind) && s.eq_ignore_ascii_case(subtype),
        None => false,
    })
}

/// A REST API's 1.0 body: base64 when its `Content-Type` is a binary media type, else text.
fn encode_body_rest(
    headers: &HeaderMap,
    body: &[u8],
    binary_media_types: &[String],
) -> Option<(String, bool)> {
    if body.is_empty() {
        return None;
    }
    let content_type = headers.get(CONTENT_TYPE).map(|v| v.to_str().unwrap_or(""));
    if is_binary_media_type(content_type, binary_media_types) {
        return Some((base64::engine::general_purpose::STANDARD.encode(body), true));
    }
    Some((String::from_utf8_lossy(body).into_owned(), false))
}

/// The body as it goes into the event and whether it is base64-encoded; `None` when empty.
fn encode_body(headers: &HeaderMap, body: &[u8]) -> Option<(String, bool)> {
    if body.is_empty() {
        return None;
    }
    let content_type = match headers.get(CONTENT_TYPE) {
        None => Some(None),
        Some(v) => v.to_str().ok().map(Some),
    };
    if let Some(content_type) = content_type
        && is_textual_content_type(content_type)
        && let Ok(text) = std::str::from_utf8(body)
    {
        return Some((text.to_owned(), false));
    }
    Some((base64::engine::general_purpose::STANDARD.encode(body), true))
}

/// Splits a raw query string into decoded `(name, value)` pairs, in order. `+` is a space and
/// `%XX` escapes are decoded (invalid UTF-8 replaced), as Amazon API Gateway does; a name
/// without `=` has an empty value; empty pieces (`a=1&&b=2`) are skipped.
pub fn parse_query(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            (decode_component(name), decode_component(value))
        })
        .collect()
}

fn decode_component(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

fn path_parameters(params: &[(String, String)]) -> Option<Map<String, Value>> {
    if params.is_empty() {
        return None;
    }
    Some(
        params
            .iter()
            .map(|(name, value)| (name.clone(), Value::String(value.clone())))
            .collect(),
    )
}

fn stage_variables(vars: &BTreeMap<String, String>) -> Option<Map<String, Value>> {
    if vars.is_empty() {
        return None;
    }
    Some(
        vars.iter()
            .map(|(name, value)| (name.clone(), Value::String(value.clone())))
            .collect(),
    )
}

fn header_str(value: &http::HeaderValue) -> String {
    String::from_utf8_lossy(value.as_bytes()).into_owned()
}

fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// `09/Apr/2015:12:34:56 +0000`, in UTC.
pub fn request_time(at: jiff::Timestamp) -> String {
    at.strftime("%d/%b/%Y:%H:%M:%S +0000").to_string()
}

/// The first label of the domain name (`id` of `id.execute-api.us-east-1.amazonaws.com`),
/// without a port; an IP address is kept whole.
fn domain_prefix(domain: &str) -> String {
    let host = if let Some(rest) = domain.strip_prefix('[') {
        // [v6]:port
        return rest.split(']').next().unwrap_or_default().to_owned();
    } else {
        domain.rsplit_once(':').map_or(domain, |(host, _)| host)
    };
    if host.parse::<IpAddr>().is_ok() {
        return host.to_owned();
    }
    host.split('.').next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    struct Fixture {
        method: Method,
        version: Version,
        raw_path: String,
        path: String,
        raw_query: String,
        headers: HeaderMap,
        body: Vec<u8>,
        route_key: String,
        resource_path: String,
        path_parameters: Vec<(String, String)>,
        raw_path_parameters: Vec<(String, String)>,
        stage_variables: BTreeMap<String, String>,
        authorizer: Option<Value>,
        binary_media_types: Option<Vec<String>>,
    }

    impl Fixture {
        fn new() -> Self {
            let mut headers = HeaderMap::new();
            headers.insert("host", HeaderValue::from_static("api.example.com"));
            headers.insert("user-agent", HeaderValue::from_static("curl/8.5.0"));
            Self {
                method: Method::GET,
                version: Version::HTTP_11,
                raw_path: "/dev/pets/42".to_owned(),
                path: "/pets/42".to_owned(),
                raw_query: String::new(),
                headers,
                body: Vec::new(),
                route_key: "GET /pets/{petId}".to_owned(),
                resource_path: "/pets/{petId}".to_owned(),
                path_parameters: vec![("petId".to_owned(), "42".to_owned())],
                raw_path_parameters: vec![("petId".to_owned(), "42".to_owned())],
                stage_variables: BTreeMap::new(),
                authorizer: None,
                binary_media_types: None,
            }
        }

        fn input(&self) -> EventInput<'_> {
            EventInput {
                request_id: "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
                method: &self.method,
                version: self.version,
                raw_path: &self.raw_path,
                path: &self.path,
                raw_query: &self.raw_query,
                headers: &self.headers,
                body: &self.body,
                source_ip: "203.0.113.7".parse().unwrap(),
                stage: "dev",
                route_key: &self.route_key,
                resource_path: &self.resource_path,
                path_parameters: &self.path_parameters,
                raw_path_parameters: &self.raw_path_parameters,
                stage_variables: &self.stage_variables,
                domain_name: "api.example.com",
                api_id: "petstore",
                // 2020-03-12T19:03:58.390Z
                received_at: jiff::Timestamp::from_millisecond(1_584_039_838_390).unwrap(),
                authorizer: self.authorizer.as_ref(),
                client_cert: None,
                iam: None,
                binary_media_types: self.binary_media_types.as_deref(),
            }
        }

        fn v1(&self) -> Value {
            event_v1(&self.input())
        }

        fn v2(&self) -> Value {
            event_v2(&self.input())
        }

        fn header(&mut self, name: &'static str, value: &'static str) -> &mut Self {
            self.headers.append(name, HeaderValue::from_static(value));
            self
        }
    }

    #[test]
    fn v1_top_level_fields() {
        let e = Fixture::new().v1();
        assert_eq!(e["resource"], "/pets/{petId}");
        assert_eq!(e["path"], "/pets/42");
        assert_eq!(e["httpMethod"], "GET");
        assert_eq!(e["pathParameters"], json!({"petId": "42"}));
        assert_eq!(e["queryStringParameters"], Value::Null);
        assert_eq!(e["multiValueQueryStringParameters"], Value::Null);
        assert_eq!(e["stageVariables"], Value::Null);
        assert_eq!(e["body"], Value::Null);
        assert_eq!(e["isBase64Encoded"], false);
        assert!(
            e.get("version").is_none(),
            "REST API events carry no version"
        );
        // Every documented key is present, even when null.
        let obj = e.as_object().unwrap();
        for key in [
            "resource",
            "path",
            "httpMethod",
            "headers",
            "multiValueHeaders",
            "queryStringParameters",
            "multiValueQueryStringParameters",
            "pathParameters",
            "stageVariables",
            "requestContext",
            "body",
            "isBase64Encoded",
        ] {
            assert!(obj.contains_key(key), "missing {key}");
        }
    }

    #[test]
    fn v1_request_context() {
        let e = Fixture::new().v1();
        let ctx = &e["requestContext"];
        assert_eq!(ctx["accountId"], ACCOUNT_ID);
        assert_eq!(ctx["apiId"], "petstore");
        assert_eq!(ctx["domainName"], "api.example.com");
        assert_eq!(ctx["domainPrefix"], "api");
        assert_eq!(
            ctx["extendedRequestId"],
            "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
        );
        assert_eq!(ctx["requestId"], "c6af9ac6-7b61-11e6-9a41-93e8deadbeef");
        assert_eq!(ctx["httpMethod"], "GET");
        assert_eq!(ctx["path"], "/dev/pets/42");
        assert_eq!(ctx["protocol"], "HTTP/1.1");
        assert_eq!(ctx["requestTime"], "12/Mar/2020:19:03:58 +0000");
        assert_eq!(ctx["requestTimeEpoch"], 1_584_039_838_390_i64);
        assert_eq!(ctx["resourcePath"], "/pets/{petId}");
        assert_eq!(ctx["resourceId"], resource_id("/pets/{petId}"));
        assert_eq!(ctx["stage"], "dev");
        assert!(ctx.get("authorizer").is_none());
        let identity = &ctx["identity"];
        assert_eq!(identity["sourceIp"], "203.0.113.7");
        assert_eq!(identity["userAgent"], "curl/8.5.0");
        for key in [
            "accessKey",
            "accountId",
            "apiKey",
            "apiKeyId",
            "caller",
            "cognitoAuthenticationProvider",
            "cognitoAuthenticationType",
            "cognitoIdentityId",
            "cognitoIdentityPoolId",
            "principalOrgId",
            "user",
            "userArn",
        ] {
            assert_eq!(identity.get(key), Some(&Value::Null), "identity.{key}");
        }
    }

    #[test]
    fn v1_user_agent_null_when_absent() {
        let mut f = Fixture::new();
        f.headers.remove("user-agent");
        assert_eq!(
            f.v1()["requestContext"]["identity"]["userAgent"],
            Value::Null
        );
        assert_eq!(f.v2()["requestContext"]["http"]["userAgent"], "");
    }

    #[test]
    fn v1_multi_value_headers() {
        let mut f = Fixture::new();
        f.header("x-tag", "a")
            .header("x-tag", "b")
            .header("x-tag", "c");
        let e = f.v1();
        assert_eq!(e["headers"]["x-tag"], "c", "last value wins");
        assert_eq!(e["multiValueHeaders"]["x-tag"], json!(["a", "b", "c"]));
        assert_eq!(e["headers"]["host"], "api.example.com");
        assert_eq!(e["multiValueHeaders"]["host"], json!(["api.example.com"]));
    }

    #[test]
    fn v1_multi_value_query() {
        let mut f = Fixture::new();
        f.raw_query =
            "name=me&multivalueName=you&multivalueName=me&q=a%20b+c&flag&&e=%E2%9C%93".into();
        let e = f.v1();
        assert_eq!(
            e["queryStringParameters"],
            json!({"name": "me", "multivalueName": "me", "q": "a b c", "flag": "", "e": "✓"})
        );
        assert_eq!(
            e["multiValueQueryStringParameters"],
            json!({
                "name": ["me"],
                "multivalueName": ["you", "me"],
                "q": ["a b c"],
                "flag": [""],
                "e": ["✓"],
            })
        );
    }

    #[test]
    fn v1_stage_variables_and_path_parameters() {
        let mut f = Fixture::new();
        f.raw_path_parameters.clear();
        assert_eq!(f.v1()["pathParameters"], Value::Null);
        assert_eq!(f.v1()["stageVariables"], Value::Null);
        f.stage_variables.insert("backend".into(), "blue".into());
        f.raw_path_parameters
            .push(("proxy".into(), "hello/world".into()));
        let e = f.v1();
        assert_eq!(e["stageVariables"], json!({"backend": "blue"}));
        assert_eq!(e["pathParameters"], json!({"proxy": "hello/world"}));
    }

    #[test]
    fn v1_json_body_as_text() {
        let mut f = Fixture::new();
        f.method = Method::POST;
        f.header("content-type", "application/json");
        f.body = b"{\r\n\t\"a\": 1\r\n}".to_vec();
        let e = f.v1();
        assert_eq!(e["body"], "{\r\n\t\"a\": 1\r\n}");
        assert_eq!(e["isBase64Encoded"], false);
        assert_eq!(e["httpMethod"], "POST");
    }

    #[test]
    fn text_body_with_charset() {
        let mut f = Fixture::new();
        f.header("content-type", "text/plain; charset=utf-8");
        f.body = "héllo".as_bytes().to_vec();
        assert_eq!(f.v1()["body"], "héllo");
        assert_eq!(f.v1()["isBase64Encoded"], false);
        assert_eq!(f.v2()["body"], "héllo");
        assert_eq!(f.v2()["isBase64Encoded"], false);
    }

    #[test]
    fn png_body_is_base64() {
        let png: &[u8] = &[
            0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d,
        ];
        let mut f = Fixture::new();
        f.header("content-type", "image/png");
        f.body = png.to_vec();
        for e in [f.v1(), f.v2()] {
            assert_eq!(e["isBase64Encoded"], true);
            assert_eq!(e["body"], "iVBORw0KGgoAAAAN");
        }
    }

    #[test]
    fn binary_content_type_with_utf8_bytes_is_base64() {
        let mut f = Fixture::new();
        f.header("content-type", "application/octet-stream");
        f.body = b"hello".to_vec();
        let e = f.v1();
        assert_eq!(e["isBase64Encoded"], true);
        assert_eq!(e["body"], "aGVsbG8=");
    }

    #[test]
    fn invalid_utf8_with_text_type_is_base64() {
        let mut f = Fixture::new();
        f.header("content-type", "text/plain");
        f.body = vec![0xff, 0xfe, b'a'];
        let e = f.v2();
        assert_eq!(e["isBase64Encoded"], true);
        assert_eq!(e["body"], "//5h");
    }

    /// A REST API (payload 1.0): its binary media types decide, not the bytes.
    #[test]
    fn rest_bodies_follow_the_binary_media_types() {
        let types = |list: &[&str]| Some(list.iter().map(|t| (*t).to_owned()).collect());
        let png: &[u8] = &[0x89, b'P', b'N', b'G', 0xff];
        let mut f = Fixture::new();
        f.header("content-type", "image/png");
        f.body = png.to_vec();

        // No binary media types: text, whatever the bytes (not UTF-8: U+FFFD).
        f.binary_media_types = types(&[]);
        let e = f.v1();
        assert_eq!(e["isBase64Encoded"], false);
        assert_eq!(e["body"], "\u{fffd}PNG\u{fffd}");
        // 2.0 keeps its own rule.
        assert_eq!(f.v2()["isBase64Encoded"], true);

        for list in [
            &["image/png"][..],
            &["IMAGE/*"],
            &["*/*"],
            &["text/plain", "image/png"],
        ] {
            f.binary_media_types = types(list);
            let e = f.v1();
            assert_eq!(e["isBase64Encoded"], true, "{list:?}");
            assert_eq!(e["body"], "iVBOR/8=", "{list:?}");
        }
        f.binary_media_types = types(&["image/jpeg", "application/*"]);
        assert_eq!(f.v1()["isBase64Encoded"], false);

        // A JSON body of a binary media type is base64 too.
        let mut f = Fixture::new();
        f.header("content-type", "application/json; charset=utf-8");
        f.body = br#"{"a":1}"#.to_vec();
        f.binary_media_types = types(&["application/json"]);
        assert_eq!(f.v1()["body"], "eyJhIjoxfQ==");
        // No content type: only */* takes it.
        let mut f = Fixture::new();
        f.body = b"plain".to_vec();
        f.binary_media_types = types(&["application/octet-stream"]);
        assert_eq!(f.v1()["body"], "plain");
        f.binary_media_types = types(&["*/*"]);
        assert_eq!(f.v1()["body"], "cGxhaW4=");
    }

    #[test]
    fn binary_media_type_matching() {
        let list = |l: &[&str]| l.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>();
        let types = list(&["image/png", "application/*"]);
        for (media_type, binary) in [
            (Some("image/png"), true),
            (Some("Image/PNG; q=1"), true),
            (Some("image/png, text/html"), true),
            (Some("text/html, image/png"), false),
            (Some("application/pdf"), true),
            (Some("image/jpeg"), false),
            (Some("image/*"), false),
            (Some("*/*"), false),
            (Some("image"), false),
            (Some(""), false),
            (None, false),
        ] {
            assert_eq!(
                is_binary_media_type(media_type, &types),
                binary,
                "{media_type:?}"
            );
        }
        assert!(is_binary_media_type(None, &list(&["*/*"])));
        assert!(!is_binary_media_type(Some("image/png"), &[]));
    }

    #[test]
    fn no_content_type_utf8_is_text() {
        let mut f = Fixture::new();
        f.body = b"plain".to_vec();
        assert_eq!(f.v1()["body"], "plain");
        assert_eq!(f.v1()["isBase64Encoded"], false);
    }

    #[test]
    fn textual_content_types() {
        for ct in [
            "text/plain",
            "text/html; charset=ISO-8859-1",
            "TEXT/CSV",
            "application/json",
            "application/json;charset=utf-8",
            "application/problem+json",
            "application/vnd.api+json",
            "application/xml",
            "application/atom+xml",
            "application/javascript",
            "application/x-www-form-urlencoded",
            " Application/JSON ; charset=utf-8",
        ] {
            assert!(is_textual_content_type(Some(ct)), "{ct}");
        }
        assert!(is_textual_content_type(None));
        for ct in [
            "image/png",
            "application/octet-stream",
            "application/pdf",
            "multipart/form-data; boundary=x",
            "application/+json",
            "application/jsonx",
            "text/",
            "",
            "json",
        ] {
            assert!(!is_textual_content_type(Some(ct)), "{ct}");
        }
    }

    #[test]
    fn authorizer_inserted_when_given() {
        let mut f = Fixture::new();
        f.authorizer = Some(json!({"principalId": "user-1", "tier": "gold"}));
        assert_eq!(
            f.v1()["requestContext"]["authorizer"],
            json!({"principalId": "user-1", "tier": "gold"})
        );
        f.authorizer = Some(json!({"jwt": {"claims": {"sub": "u"}, "scopes": ["read"]}}));
        assert_eq!(
            f.v2()["requestContext"]["authorizer"]["jwt"]["scopes"],
            json!(["read"])
        );
    }

    #[test]
    fn v2_top_level_fields() {
        let mut f = Fixture::new();
        f.raw_query = "a=1&a=2&b=x%2By".into();
        let e = f.v2();
        assert_eq!(e["version"], "2.0");
        assert_eq!(e["routeKey"], "GET /pets/{petId}");
        assert_eq!(e["rawPath"], "/dev/pets/42");
        assert_eq!(e["rawQueryString"], "a=1&a=2&b=x%2By");
        assert_eq!(e["queryStringParameters"], json!({"a": "1,2", "b": "x+y"}));
        assert_eq!(e["pathParameters"], json!({"petId": "42"}));
        assert_eq!(e["isBase64Encoded"], false);
        let obj = e.as_object().unwrap();
        for absent in ["body", "cookies", "stageVariables", "multiValueHeaders"] {
            assert!(!obj.contains_key(absent), "{absent} should be omitted");
        }
    }

    #[test]
    fn v2_request_context() {
        let mut f = Fixture::new();
        f.version = Version::HTTP_2;
        f.method = Method::DELETE;
        let e = f.v2();
        let ctx = &e["requestContext"];
        assert_eq!(ctx["accountId"], ACCOUNT_ID);
        assert_eq!(ctx["apiId"], "petstore");
        assert_eq!(ctx["domainName"], "api.example.com");
        assert_eq!(ctx["domainPrefix"], "api");
        assert_eq!(ctx["requestId"], "c6af9ac6-7b61-11e6-9a41-93e8deadbeef");
        assert_eq!(ctx["routeKey"], "GET /pets/{petId}");
        assert_eq!(ctx["stage"], "dev");
        assert_eq!(ctx["time"], "12/Mar/2020:19:03:58 +0000");
        assert_eq!(ctx["timeEpoch"], 1_584_039_838_390_i64);
        assert_eq!(
            ctx["http"],
            json!({
                "method": "DELETE",
                "path": "/dev/pets/42",
                "protocol": "HTTP/2.0",
                "sourceIp": "203.0.113.7",
                "userAgent": "curl/8.5.0",
            })
        );
        assert!(ctx.get("authorizer").is_none());
    }

    #[test]
    fn v2_headers_joined_and_cookies_split() {
        let mut f = Fixture::new();
        f.header("x-tag", "a")
            .header("x-tag", "b")
            .header("cookie", "session=abc; theme=dark")
            .header("cookie", "lang=en");
        let e = f.v2();
        assert_eq!(e["headers"]["x-tag"], "a,b");
        assert_eq!(e["headers"]["host"], "api.example.com");
        assert!(
            e["headers"].get("cookie").is_none(),
            "cookies carry the Cookie header"
        );
        assert_eq!(
            e["cookies"],
            json!(["session=abc", "theme=dark", "lang=en"])
        );
        // 1.0 keeps the cookie header as is.
        let v1 = f.v1();
        assert_eq!(v1["headers"]["cookie"], "lang=en");
        assert_eq!(
            v1["multiValueHeaders"]["cookie"],
            json!(["session=abc; theme=dark", "lang=en"])
        );
    }

    #[test]
    fn v2_stage_variables_present() {
        let mut f = Fixture::new();
        f.stage_variables.insert("a".into(), "1".into());
        f.stage_variables.insert("b".into(), "2".into());
        assert_eq!(f.v2()["stageVariables"], json!({"a": "1", "b": "2"}));
        f.path_parameters.clear();
        assert!(f.v2().get("pathParameters").is_none());
    }

    #[test]
    fn v2_body_present() {
        let mut f = Fixture::new();
        f.header("content-type", "application/x-www-form-urlencoded");
        f.body = b"a=1&b=2".to_vec();
        let e = f.v2();
        assert_eq!(e["body"], "a=1&b=2");
        assert_eq!(e["isBase64Encoded"], false);
    }

    #[test]
    fn non_utf8_header_value_is_lossy() {
        let mut f = Fixture::new();
        f.headers
            .insert("x-raw", HeaderValue::from_bytes(b"caf\xe9").unwrap());
        assert_eq!(f.v1()["headers"]["x-raw"], "caf\u{fffd}");
        assert_eq!(f.v2()["headers"]["x-raw"], "caf\u{fffd}");
    }

    #[test]
    fn domain_prefixes() {
        assert_eq!(
            domain_prefix("abc123.execute-api.us-east-1.amazonaws.com"),
            "abc123"
        );
        assert_eq!(domain_prefix("localhost:8080"), "localhost");
        assert_eq!(domain_prefix("api.example.com:443"), "api");
        assert_eq!(domain_prefix("127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(domain_prefix("10.0.0.1"), "10.0.0.1");
        assert_eq!(domain_prefix("[::1]:8080"), "::1");
        assert_eq!(domain_prefix(""), "");
    }

    #[test]
    fn protocols() {
        assert_eq!(protocol(Version::HTTP_10), "HTTP/1.0");
        assert_eq!(protocol(Version::HTTP_11), "HTTP/1.1");
        assert_eq!(protocol(Version::HTTP_2), "HTTP/2.0");
    }

    #[test]
    fn request_time_pads_day() {
        let at: jiff::Timestamp = "2015-04-09T02:04:05.5Z".parse().unwrap();
        assert_eq!(request_time(at), "09/Apr/2015:02:04:05 +0000");
    }

    #[test]
    fn resource_ids_are_stable_and_distinct() {
        let a = resource_id("/pets/{petId}");
        assert_eq!(a.len(), 6);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
        );
        assert_eq!(a, resource_id("/pets/{petId}"));
        assert_ne!(a, resource_id("/pets"));
    }

    #[test]
    fn query_edge_cases() {
        assert!(parse_query("").is_empty());
        assert!(parse_query("&&").is_empty());
        assert_eq!(parse_query("=v"), vec![(String::new(), "v".to_owned())]);
        assert_eq!(
            parse_query("a=b=c"),
            vec![("a".to_owned(), "b=c".to_owned())]
        );
        // Bad escapes stay as they are.
        assert_eq!(
            parse_query("a=%zz%"),
            vec![("a".to_owned(), "%zz%".to_owned())]
        );
    }

    #[test]
    fn a_verified_client_certificate_is_in_both_formats() {
        let cert = ClientCert {
            pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
            subject_dn: "CN=alice,O=Example Corp".into(),
            issuer_dn: "CN=Example CA".into(),
            serial_number: "0a:1b".into(),
            not_before: "May 28 12:30:02 2019 GMT".into(),
            not_after: "Aug  5 09:36:04 2021 GMT".into(),
        };
        let expected = json!({
            "clientCertPem": cert.pem,
            "subjectDN": "CN=alice,O=Example Corp",
            "issuerDN": "CN=Example CA",
            "serialNumber": "0a:1b",
            "validity": {"notBefore": "May 28 12:30:02 2019 GMT", "notAfter": "Aug  5 09:36:04 2021 GMT"},
        });
        let fixture = Fixture::new();
        let mut input = fixture.input();
        input.client_cert = Some(&cert);
        assert_eq!(
            event_v1(&input)["requestContext"]["identity"]["clientCert"],
            expected
        );
        assert_eq!(
            event_v2(&input)["requestContext"]["authentication"]["clientCert"],
            expected
        );
        // Without mutual TLS: null in 1.0, no `authentication` in 2.0.
        assert_eq!(
            fixture.v1()["requestContext"]["identity"]["clientCert"],
            Value::Null
        );
        assert!(
            fixture.v2()["requestContext"]
                .get("authentication")
                .is_none()
        );
    }

    /// Rule 6: a REST API's event keeps the path as sent; an HTTP API's decodes it.
    #[test]
    fn greedy_paths_encoded_in_v1_decoded_in_v2() {
        let mut f = Fixture::new();
        f.resource_path = "/{proxy+}".into();
        f.route_key = "ANY /{proxy+}".into();
        f.raw_path = "/dev/api/user/test%2Balias@example.com/a%20b".into();
        f.path = "/api/user/test%2Balias@example.com/a%20b".into();
        f.raw_path_parameters = vec![(
            "proxy".into(),
            "api/user/test%2Balias@example.com/a%20b".into(),
        )];
        f.path_parameters = vec![("proxy".into(), "api/user/test+alias@example.com/a b".into())];
        let v1 = f.v1();
        assert_eq!(v1["path"], "/api/user/test%2Balias@example.com/a%20b");
        assert_eq!(
            v1["pathParameters"]["proxy"],
            "api/user/test%2Balias@example.com/a%20b"
        );
        assert_eq!(
            v1["requestContext"]["path"],
            "/dev/api/user/test%2Balias@example.com/a%20b"
        );
        assert_eq!(v1["resource"], "/{proxy+}");
        let v2 = f.v2();
        assert_eq!(v2["rawPath"], "/dev/api/user/test+alias@example.com/a b");
        assert_eq!(
            v2["requestContext"]["http"]["path"],
            "/dev/api/user/test+alias@example.com/a b"
        );
        assert_eq!(
            v2["pathParameters"]["proxy"],
            "api/user/test+alias@example.com/a b"
        );
    }

    /// Rule 6: a trailing slash stays in `path` but not in the greedy parameter (1.0); double
    /// slashes stay in both.
    #[test]
    fn greedy_trailing_and_double_slashes_v1() {
        let mut f = Fixture::new();
        f.resource_path = "/{proxy+}".into();
        f.path = "/proxy-value/".into();
        f.raw_path = "/dev/proxy-value/".into();
        f.raw_path_parameters = vec![("proxy".into(), "proxy-value/".into())];
        let e = f.v1();
        assert_eq!(e["path"], "/proxy-value/");
        assert_eq!(e["pathParameters"]["proxy"], "proxy-value");
        assert_eq!(e["requestContext"]["path"], "/dev/proxy-value/");

        f.path = "/proxy-value//double-slash".into();
        f.raw_path_parameters = vec![("proxy".into(), "proxy-value//double-slash".into())];
        let e = f.v1();
        assert_eq!(e["path"], "/proxy-value//double-slash");
        assert_eq!(e["pathParameters"]["proxy"], "proxy-value//double-slash");

        // Not greedy: a parameter keeps what it matched.
        f.resource_path = "/pets/{petId}".into();
        f.raw_path_parameters = vec![("petId".into(), "a%2Fb/".into())];
        assert_eq!(f.v1()["pathParameters"]["petId"], "a%2Fb/");
    }

    /// Rule 7: every key of Amazon's recorded 1.0 `requestContext` and `identity`, and of the
    /// 2.0 `requestContext`.
    #[test]
    fn request_context_has_every_recorded_key() {
        let f = Fixture::new();
        let v1 = f.v1();
        let ctx = v1["requestContext"].as_object().unwrap();
        for key in [
            "accountId",
            "apiId",
            "deploymentId",
            "domainName",
            "domainPrefix",
            "extendedRequestId",
            "httpMethod",
            "identity",
            "path",
            "protocol",
            "requestId",
            "requestTime",
            "requestTimeEpoch",
            "resourceId",
            "resourcePath",
            "stage",
        ] {
            assert!(ctx.contains_key(key), "1.0 requestContext.{key}");
        }
        let identity = ctx["identity"].as_object().unwrap();
        for key in [
            "accessKey",
            "accountId",
            "caller",
            "cognitoAuthenticationProvider",
            "cognitoAuthenticationType",
            "cognitoIdentityId",
            "cognitoIdentityPoolId",
            "principalOrgId",
            "sourceIp",
            "user",
            "userAgent",
            "userArn",
        ] {
            assert!(identity.contains_key(key), "1.0 identity.{key}");
        }
        assert_eq!(ctx["deploymentId"], deployment_id("petstore", "dev"));
        assert!(ctx["requestTimeEpoch"].is_i64());
        let v2 = f.v2();
        let ctx = v2["requestContext"].as_object().unwrap();
        for key in [
            "accountId",
            "apiId",
            "domainName",
            "domainPrefix",
            "http",
            "requestId",
            "routeKey",
            "stage",
            "time",
            "timeEpoch",
        ] {
            assert!(ctx.contains_key(key), "2.0 requestContext.{key}");
        }
        for key in ["method", "path", "protocol", "sourceIp", "userAgent"] {
            assert!(ctx["http"].get(key).is_some(), "2.0 http.{key}");
        }
    }

    #[test]
    fn deployment_ids_are_stable_per_stage() {
        let a = deployment_id("petstore", "dev");
        assert_eq!(a.len(), 6);
        assert_eq!(a, deployment_id("petstore", "dev"));
        assert_ne!(a, deployment_id("petstore", "prod"));
    }

    /// Rule 8: an empty body is `null` in 1.0 and left out in 2.0, and `isBase64Encoded` is a
    /// boolean in both.
    #[test]
    fn empty_body_null_in_v1_missing_in_v2() {
        let f = Fixture::new();
        let v1 = f.v1();
        assert_eq!(v1.get("body"), Some(&Value::Null));
        assert_eq!(v1["isBase64Encoded"], Value::Bool(false));
        let v2 = f.v2();
        assert!(v2.get("body").is_none());
        assert_eq!(v2["isBase64Encoded"], Value::Bool(false));
    }
}
