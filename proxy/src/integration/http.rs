//! HTTP integration: the request forwarded to a backend URL (a weighted choice when there are
//! several), with path parameters and stage variables substituted, the query string passed
//! through, hop-by-hop headers stripped and `X-Forwarded-*` added. The response streams back.

use std::collections::BTreeMap;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Body as _;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use tollgate_crds::table::{HttpBackendTable, HttpMethod, ParameterMappingTable};

use crate::auth::identity;
use crate::body::{Body, BoxError, ClientBody};
use crate::errors::{GatewayError, error_chain};
use crate::integration::templates::{self, Answer, Scope, Templates};
use crate::mapping::{self, UrlChange};
use crate::request_body::{BodyError, RequestBody};
use crate::request_ctx::RouteCtx;
use crate::request_trace::Phase;
use crate::template::{Vars, render};
use crate::upstream::{Deadline, Kind, Outbound, Payload, Upstream, UpstreamError};
use crate::websocket;
use tollgate_vtl::Overrides;
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// A route's HTTP integration, as its table gives it.
pub struct HttpTarget<'a> {
    pub backends: &'a [HttpBackendTable],
    /// The method sent; `None` keeps the request's.
    pub method: Option<HttpMethod>,
    pub request_headers: &'a BTreeMap<String, String>,
    pub parameter_mapping: Option<&'a ParameterMappingTable>,
    /// A non-proxy integration's templates (the body then comes whole).
    pub templates: Option<&'a Templates>,
    pub timeout_millis: u32,
}

/// The largest answer a non-proxy integration reads whole (Amazon API Gateway's payload
/// limit).
const MAX_MAPPED_RESPONSE_BYTES: usize = 10 * 1024 * 1024;

pub async fn forward<B: ClientBody>(
    call: &RouteCtx<'_>,
    body: RequestBody<'_, B>,
    upstream: &Upstream,
    target: HttpTarget<'_>,
) -> Result<Response<Body>, GatewayError> {
    let HttpTarget {
        backends,
        method,
        request_headers,
        parameter_mapping,
        templates,
        timeout_millis,
    } = target;
    let chosen = pick(backends)
        .ok_or_else(|| GatewayError::Configuration("no backend has a weight".into()))?;
    // A non-proxy integration: the body through its request template.
    let mapped = match (templates, &body) {
        (Some(t), RequestBody::Whole(buffered)) => {
            let scope = Scope::of(call);
            let mapped = t.map_request(call, &scope, &buffered.bytes)?;
            Some((mapped, scope))
        }
        _ => None,
    };
    let overrides = mapped.as_ref().map(|(m, _)| &m.overrides);
    let params = match overrides {
        Some(o) if !o.request_path.is_empty() => overridden_params(&call.params, &o.request_path)?,
        _ => call.params.clone(),
    };
    let vars = Vars {
        params: &params,
        stage_variables: call.stage_variables,
    };
    let url_change = url_change(call, parameter_mapping, overrides)?;
    let fixed = call.route.fixed_urls.get(chosen).cloned().flatten();
    let uri = match fixed {
        Some(uri) if call.query.is_empty() && url_change.is_none() => uri,
        _ => target_uri(call, &backends[chosen], &vars, url_change.as_ref())?,
    };
    let method = match method {
        Some(m) => {
            Method::from_bytes(m.as_str().as_bytes()).unwrap_or_else(|_| call.parts.method.clone())
        }
        None => call.parts.method.clone(),
    };

    let body = match body {
        _ if mapped.is_some() => Payload::Whole(
            mapped
                .as_ref()
                .map(|(m, _)| m.body.clone())
                .unwrap_or_default(),
        ),
        RequestBody::Whole(buffered) => Payload::Whole(buffered.bytes.clone()),
        // Nothing to stream (a GET, say): a body that can be sent again if need be.
        RequestBody::Stream(stream) if stream.is_end_stream() => Payload::Empty,
        RequestBody::Stream(stream) => {
            Payload::Stream(stream.map_err(|e| Box::new(e) as BoxError).boxed())
        }
    };
    let mut request = Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = end_to_end(&call.parts.headers);
    let headers = request.headers_mut();
    headers.remove(header::HOST);
    headers.remove(header::CONTENT_LENGTH);
    if call.websocket {
        websocket::forward_handshake(&call.parts.headers, headers);
    }
    forwarded_headers(call, headers);
    authorizer_headers(call, headers);
    client_cert_headers(call, headers);
    for (name, value) in request_headers {
        let name = HeaderName::try_from(name.as_str())
            .map_err(|_| GatewayError::Configuration(format!("request header name {name:?}")))?;
        let value = HeaderValue::try_from(render(value, &vars))
            .map_err(|_| GatewayError::Configuration(format!("request header {name} value")))?;
        headers.insert(name, value);
    }
    if let Some(mapping) = parameter_mapping {
        mapping::request_headers(call, &mapping.request, headers);
    }
    for (name, value) in overrides.map_or(&[][..], |o| &o.request_headers[..]) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) && !templates::is_framing(&name)
            && name != header::HOST
        {
            headers.insert(name, value);
        }
    }

    // The timeout covers the whole exchange: the request body, the response head and the
    // response body.
    let outbound = Outbound {
        kind: Kind::Integration,
        request_id: Some(call.id),
        deadline: Deadline::after(Duration::from_millis(u64::from(timeout_millis))),
        trace: call.propagate(Phase::Integration),
    };
    let sent = if call.websocket {
        upstream.upgrade(outbound, request).await
    } else {
        upstream.send(outbound, request).await
    };
    let mut response = sent.map_err(|e| match e {
        UpstreamError::Timeout(_) => GatewayError::IntegrationTimeout,
        UpstreamError::BadUrl { .. } => GatewayError::Configuration(e.to_string()),
        // The client's body failed on the way: the client's fault, not the backend's.
        e => match BodyError::find(&e) {
            Some(body_error) => GatewayError::from(body_error.clone()),
            None => GatewayError::IntegrationFailure(error_chain(&e)),
        },
    })?;
    let switched = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    let upgrade = switched.then(|| response.headers().get(header::UPGRADE).cloned());
    strip_hop_by_hop(response.headers_mut());
    // A 101 tells the client which protocol the connection now speaks.
    if let Some(upgrade) = upgrade {
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        if let Some(upgrade) = upgrade {
            headers.insert(header::UPGRADE, upgrade);
        }
    } else if let Some(rules) =
        parameter_mapping.and_then(|m| m.for_status(response.status().as_u16()))
    {
        mapping::response(call, rules, &mut response)?;
    }
    match templates {
        Some(t) => {
            let scope = match mapped {
                Some((_, scope)) => scope,
                None => Scope::of(call),
            };
            map_response(call, t, &scope, response).await
        }
        None => Ok(response),
    }
}

/// A non-proxy integration's answer: read whole, then through the integration response its
/// status code selects.
async fn map_response(
    call: &RouteCtx<'_>,
    templates: &Templates,
    scope: &Scope,
    response: Response<Body>,
) -> Result<Response<Body>, GatewayError> {
    let (parts, mut body) = response.into_parts();
    let mut read = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            if e.downcast_ref::<crate::upstream::BodyTimedOut>().is_some() {
                GatewayError::IntegrationTimeout
            } else {
                GatewayError::IntegrationFailure(format!("reading the answer: {e}"))
            }
        })?;
        if let Ok(data) = frame.into_data() {
            if read.len() + data.len() > MAX_MAPPED_RESPONSE_BYTES {
                return Err(GatewayError::IntegrationFailure(
                    "the answer exceeds 10 MB".into(),
                ));
            }
            read.extend_from_slice(&data);
        }
    }
    let body = read.freeze();
    let answer = Answer {
        status: parts.status,
        headers: &parts.headers,
        body: &body,
    };
    templates.map_response(call, scope, Some(parts.status.as_str()), answer)
}

/// How the backend URL's path and query string change: parameter mapping's rules, then a
/// mapping template's overrides (a path override forces the URL to be built).
fn url_change(
    call: &RouteCtx<'_>,
    parameter_mapping: Option<&ParameterMappingTable>,
    overrides: Option<&Overrides>,
) -> Result<Option<UrlChange>, GatewayError> {
    let mut change = match parameter_mapping {
        Some(m) if m.maps_url() => Some(mapping::url(call, &m.request)?),
        _ => None,
    };
    let Some(o) = overrides else {
        return Ok(change);
    };
    if o.request_querystring.is_empty() && o.request_path.is_empty() {
        return Ok(change);
    }
    let query = match &change {
        Some(c) => mapping::query_with_overrides(&c.query, &o.request_querystring),
        None => mapping::query_with_overrides(call.query, &o.request_querystring),
    };
    match change.as_mut() {
        Some(c) => c.query = query,
        None => change = Some(UrlChange { path: None, query }),
    }
    Ok(change)
}

/// The path parameters with the values a mapping template set, each encoded as one segment.
fn overridden_params(
    params: &[(String, String)],
    overrides: &[(String, String)],
) -> Result<Vec<(String, String)>, GatewayError> {
    let mut out = params.to_vec();
    for (name, value) in overrides {
        let encoded = mapping::path_segment(value)?;
        match out.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = encoded,
            None => out.push((name.clone(), encoded)),
        }
    }
    Ok(out)
}

/// The index of a backend chosen by weight; `None` when every weight is 0.
pub(crate) fn pick(backends: &[HttpBackendTable]) -> Option<usize> {
    if backends.len() == 1 {
        return Some(0);
    }
    let total: u64 = backends.iter().map(|b| u64::from(b.weight)).sum();
    if total == 0 {
        return None;
    }
    let mut ticket = fastrand::u64(0..total);
    backends.iter().position(|b| {
        let w = u64::from(b.weight);
        if ticket < w {
            true
        } else {
            ticket -= w;
            false
        }
    })
}

fn target_uri(
    call: &RouteCtx<'_>,
    backend: &HttpBackendTable,
    vars: &Vars<'_>,
    change: Option<&UrlChange>,
) -> Result<Uri, GatewayError> {
    let mut url = render(&backend.url, vars);
    if backend.forward_request_path {
        let base = url.trim_end_matches('/').len();
        url.truncate(base);
        url.push_str(call.path());
    }
    if let Some(path) = change.and_then(|c| c.path.as_deref()) {
        // The path runs from the first '/' after the authority to the query or the end.
        let authority = url.find("://").map_or(0, |i| i + 3);
        let start = url[authority..]
            .find('/')
            .map_or(url.len(), |i| authority + i);
        let end = url[start..].find('?').map_or(url.len(), |i| start + i);
        url.replace_range(start..end, path);
    }
    let query = change.map_or(call.query, |c| c.query.as_str());
    if !query.is_empty() {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(query);
    }
    url.parse::<Uri>()
        .map_err(|e| GatewayError::Configuration(format!("backend URL {url:?}: {e}")))
}

/// Headers that describe one connection, never forwarded (RFC 9110 section 7.6.1).
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The names a `Connection` header lists, which are hop-by-hop too.
fn connection_tokens(value: &HeaderValue) -> impl Iterator<Item = &str> {
    value
        .to_str()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The end-to-end headers of `from`, in a map sized for them and the few the proxy adds.
fn end_to_end(from: &HeaderMap) -> HeaderMap {
    let mut to = HeaderMap::with_capacity(from.len() + 8);
    // The names a Connection header lists are hop-by-hop too; most requests list none, and
    // then no name is compared with them.
    let listed = from.get_all(header::CONNECTION);
    let lists_any = listed.iter().next().is_some();
    for (name, value) in from {
        let hop_by_hop = HOP_BY_HOP.contains(name)
            || (lists_any
                && listed
                    .iter()
                    .flat_map(connection_tokens)
                    .any(|t| t.eq_ignore_ascii_case(name.as_str())));
        if !hop_by_hop {
            to.append(name.clone(), value.clone());
        }
    }
    to
}

pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names says which hop-by-hop headers are present (most responses
    // carry one, `Connection: keep-alive`, or none): only those are looked up and removed.
    let mut present = 0u16;
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    // The Connection values are shared, not copied, while the names they list are removed
    // (one value needs no list).
    let mut values = headers.get_all(header::CONNECTION).iter();
    let first = values.next().cloned();
    let more: Vec<HeaderValue> = values.cloned().collect();
    for value in first.iter().chain(&more) {
        for token in connection_tokens(value) {
            headers.remove(token);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
}

/// The authorizer's identity as `x-authorizer-*` headers; any a client sent are dropped
/// first, so the backend can trust them.
fn authorizer_headers(call: &RouteCtx<'_>, headers: &mut HeaderMap) {
    let forged: Vec<_> = headers
        .keys()
        .filter(|n| n.as_str().starts_with(identity::HEADER_PREFIX))
        .cloned()
        .collect();
    for name in forged {
        headers.remove(name);
    }
    for (name, value) in call.identity.headers() {
        headers.append(name.clone(), value.clone());
    }
}

/// Headers that describe the client certificate of a mutual-TLS domain (what Lambda events
/// carry as `clientCert`); any a client sent are dropped first, so the backend can trust them.
pub const CLIENT_CERT_HEADER_PREFIX: &str = "x-client-cert";

fn client_cert_headers(call: &RouteCtx<'_>, headers: &mut HeaderMap) {
    let forged: Vec<_> = headers
        .keys()
        .filter(|n| n.as_str().starts_with(CLIENT_CERT_HEADER_PREFIX))
        .cloned()
        .collect();
    for name in forged {
        headers.remove(name);
    }
    let Some(cert) = call.client_cert.as_deref() else {
        return;
    };
    // URL-encoded as nginx's $ssl_client_escaped_cert: everything but RFC 3986's unreserved.
    const ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let pem = percent_encoding::utf8_percent_encode(&cert.pem, ESCAPED).to_string();
    let fields = [
        ("x-client-cert", pem.as_str()),
        ("x-client-cert-subject-dn", cert.subject_dn.as_str()),
        ("x-client-cert-issuer-dn", cert.issuer_dn.as_str()),
        ("x-client-cert-serial-number", cert.serial_number.as_str()),
        ("x-client-cert-not-before", cert.not_before.as_str()),
        ("x-client-cert-not-after", cert.not_after.as_str()),
    ];
    for (name, value) in fields {
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

/// `X-Forwarded-For` gets the peer appended (the client itself, or the trusted proxy that
/// already named it), then `-Proto` and `-Host` (the request id is the upstream layer's).
fn forwarded_headers(call: &RouteCtx<'_>, headers: &mut HeaderMap) {
    // Every X-Forwarded-For line the client sent, in order, as one list, then the peer.
    let prior: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if prior.is_empty() {
        headers.insert(X_FORWARDED_FOR, call.conn.peer_text.clone());
    } else {
        let ip = call.conn.peer_text.to_str().unwrap_or_default();
        if let Ok(v) = HeaderValue::try_from(format!("{}, {ip}", prior.join(", "))) {
            headers.insert(X_FORWARDED_FOR, v);
        }
    }
    headers.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(call.conn.scheme),
    );
    // The host routing used, as the client named it (port included): the URI's authority
    // (HTTP/2's :authority, an HTTP/1.1 absolute-form target), else the Host header.
    let host = call
        .parts
        .uri
        .authority()
        .and_then(|a| HeaderValue::try_from(a.as_str()).ok())
        .or_else(|| call.parts.headers.get(header::HOST).cloned())
        .or_else(|| HeaderValue::try_from(call.host).ok());
    if let Some(v) = host {
        headers.insert(X_FORWARDED_HOST, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(url: &str, weight: u32) -> HttpBackendTable {
        HttpBackendTable {
            url: url.into(),
            forward_request_path: false,
            weight,
        }
    }

    #[test]
    fn weighted_choice_follows_the_weights() {
        let backends = [backend("a", 90), backend("b", 10), backend("c", 0)];
        let mut counts = [0u32; 3];
        for _ in 0..20_000 {
            counts[pick(&backends).unwrap()] += 1;
        }
        assert_eq!(counts[2], 0, "weight 0 is never chosen");
        // 10% of 20,000 = 2,000; five standard deviations is about 212.
        assert!(
            (1_788..=2_212).contains(&counts[1]),
            "b chosen {} times",
            counts[1]
        );
        assert!(
            pick(&[backend("z", 0)]).is_some(),
            "a single backend is always used"
        );
        assert!(pick(&[backend("y", 0), backend("z", 0)]).is_none());
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_stripped() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, X-Secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(
            h.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            vec!["x-kept"]
        );
    }

    #[test]
    fn the_request_keeps_its_end_to_end_headers_only() {
        let mut from = HeaderMap::new();
        from.append("connection", HeaderValue::from_static("keep-alive, X-Hop"));
        from.append("connection", HeaderValue::from_static("x-also"));
        from.insert("x-hop", HeaderValue::from_static("1"));
        from.insert("x-also", HeaderValue::from_static("1"));
        from.insert("te", HeaderValue::from_static("trailers"));
        from.append("x-kept", HeaderValue::from_static("1"));
        from.append("x-kept", HeaderValue::from_static("2"));
        let to = end_to_end(&from);
        assert_eq!(
            to.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            ["x-kept"]
        );
        assert_eq!(
            to.get_all("x-kept").iter().count(),
            2,
            "repeated values kept"
        );

        let mut plain = HeaderMap::new();
        plain.insert("accept", HeaderValue::from_static("*/*"));
        assert_eq!(end_to_end(&plain), plain, "nothing listed, nothing dropped");
        let mut response = plain.clone();
        strip_hop_by_hop(&mut response);
        assert_eq!(response, plain);
    }
}
