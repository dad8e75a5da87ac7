//! HTTP integration: the request forwarded to a backend URL (a weighted choice when there are
//! several), with path parameters and stage variables substituted, the query string passed
//! through, hop-by-hop headers stripped and `X-Forwarded-*` added. The response streams back.

use std::collections::BTreeMap;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, Uri};
use tollgate_crds::resources::HttpMethod;
use tollgate_crds::table::HttpBackendTable;

use super::Call;
use crate::auth::identity;
use crate::body::{Body, BoxError, full};
use crate::client::HttpClient;
use crate::errors::{GatewayError, error_chain};
use crate::template::{Vars, render};

/// The request id sent to backends.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

pub async fn forward(
    call: &Call<'_>,
    client: &HttpClient,
    backends: &[HttpBackendTable],
    method: Option<HttpMethod>,
    request_headers: &BTreeMap<String, String>,
    timeout_millis: u32,
) -> Result<Response<Body>, GatewayError> {
    let backend = pick(backends)
        .ok_or_else(|| GatewayError::Configuration("no backend has a weight".into()))?;
    let vars = Vars {
        params: call.params,
        stage_variables: call.stage_variables,
    };
    let uri = target_uri(call, backend, &vars)?;
    let method = match method {
        Some(m) => {
            Method::from_bytes(m.as_str().as_bytes()).unwrap_or_else(|_| call.method.clone())
        }
        None => call.method.clone(),
    };

    let mut request = Request::new(full(call.body.clone()));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    copy_end_to_end(call.headers, headers);
    headers.remove(header::HOST);
    headers.remove(header::CONTENT_LENGTH);
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

    let response = tokio::time::timeout(
        Duration::from_millis(u64::from(timeout_millis)),
        client.request(request),
    )
    .await
    .map_err(|_| GatewayError::IntegrationTimeout)?
    .map_err(|e| GatewayError::IntegrationFailure(error_chain(&e)))?;

    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(
        parts,
        body.map_err(|e| Box::new(e) as BoxError).boxed(),
    ))
}

/// A backend chosen by weight; `None` when every weight is 0.
fn pick(backends: &[HttpBackendTable]) -> Option<&HttpBackendTable> {
    if let [only] = backends {
        return Some(only);
    }
    let total: u64 = backends.iter().map(|b| u64::from(b.weight)).sum();
    if total == 0 {
        return None;
    }
    let mut ticket = fastrand::u64(0..total);
    backends.iter().find(|b| {
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
    call: &Call<'_>,
    backend: &HttpBackendTable,
    vars: &Vars<'_>,
) -> Result<Uri, GatewayError> {
    let mut url = render(&backend.url, vars);
    if backend.forward_request_path {
        let base = url.trim_end_matches('/').len();
        url.truncate(base);
        url.push_str(call.path);
    }
    if !call.query.is_empty() {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(call.query);
    }
    url.parse::<Uri>()
        .map_err(|e| GatewayError::Configuration(format!("backend URL {url:?}: {e}")))
}

/// Headers that describe one connection, never forwarded (RFC 9110 section 7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn is_hop_by_hop(name: &HeaderName, connection: &[String]) -> bool {
    HOP_BY_HOP.contains(&name.as_str()) || connection.iter().any(|c| c == name.as_str())
}

/// Names the `Connection` header lists, which are hop-by-hop too.
fn connection_tokens(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

fn copy_end_to_end(from: &HeaderMap, to: &mut HeaderMap) {
    let connection = connection_tokens(from);
    for (name, value) in from {
        if !is_hop_by_hop(name, &connection) {
            to.append(name.clone(), value.clone());
        }
    }
}

pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let connection = connection_tokens(headers);
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_hop_by_hop(n, &connection))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

/// The authorizer's identity as `x-authorizer-*` headers; any a client sent are dropped
/// first, so the backend can trust them.
fn authorizer_headers(call: &Call<'_>, headers: &mut HeaderMap) {
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

fn client_cert_headers(call: &Call<'_>, headers: &mut HeaderMap) {
    let forged: Vec<_> = headers
        .keys()
        .filter(|n| n.as_str().starts_with(CLIENT_CERT_HEADER_PREFIX))
        .cloned()
        .collect();
    for name in forged {
        headers.remove(name);
    }
    let Some(cert) = call.client_cert else {
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
/// already named it), then `-Proto`, `-Host` and the request id.
fn forwarded_headers(call: &Call<'_>, headers: &mut HeaderMap) {
    let ip = call.peer_ip.to_string();
    // Every X-Forwarded-For line the client sent, in order, as one list.
    let prior: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    let xff = if prior.is_empty() {
        ip
    } else {
        format!("{}, {ip}", prior.join(", "))
    };
    if let Ok(v) = HeaderValue::try_from(xff) {
        headers.insert("x-forwarded-for", v);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static(call.scheme));
    // The host routing used, as the client named it (port included): the URI's authority
    // (HTTP/2's :authority, an HTTP/1.1 absolute-form target), else the Host header.
    let host = call
        .authority
        .and_then(|a| HeaderValue::try_from(a).ok())
        .or_else(|| call.headers.get(header::HOST).cloned())
        .or_else(|| HeaderValue::try_from(call.host).ok());
    if let Some(v) = host {
        headers.insert("x-forwarded-host", v);
    }
    if let Ok(v) = HeaderValue::try_from(call.request_id) {
        headers.insert(REQUEST_ID_HEADER, v);
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
            let chosen = pick(&backends).unwrap();
            counts[backends.iter().position(|b| b.url == chosen.url).unwrap()] += 1;
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
}
