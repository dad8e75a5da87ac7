//! The gateway phase: the head's limits, then host and path to a gateway and stage, then what
//! the host asks of the connection: the HTTPS redirect, a custom domain's own handshake and
//! client certificate.

use std::sync::Arc;

use hyper::header;
use hyper::http::request::Parts;

use crate::body::Body;
use crate::dispatch::{Dispatch, Target};
use crate::errors::GatewayError;
use crate::request_ctx::Connection;
use crate::state::Shared;
use crate::tls::ClientCert;
use crate::{head, transport};

/// Where the gateway phase sends a request.
pub enum Resolved<'a> {
    /// On to the policy phase.
    Serve {
        target: Target<'a>,
        client_cert: Option<Arc<ClientCert>>,
    },
    /// Answered here: plain HTTP to a gateway that redirects it to HTTPS.
    Redirect(hyper::Response<Body>),
}

/// Resolves the request's gateway and stage; `host` is [`host_of`] the request.
pub fn resolve<'a>(
    shared: &Shared,
    dispatch: &'a Dispatch,
    conn: &Connection,
    parts: &'a Parts,
    host: &str,
) -> Result<Resolved<'a>, GatewayError> {
    // The head's limits, counted as Amazon API Gateway counts them, and one host.
    head::check(parts)?;
    let target = dispatch.resolve(host, parts.uri.path())?;
    if let Some(port) = shared
        .https_port
        .filter(|_| target.gateway.table.redirect_to_https)
        && conn.tls.is_none()
    {
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let redirect = transport::https_redirect(&parts.method, host, path, port);
        return Ok(Resolved::Redirect(redirect));
    }
    let client_cert = transport::check(conn.tls.as_deref(), target.domain)?;
    Ok(Resolved::Serve {
        target,
        client_cert,
    })
}

/// The host the request is for, without port, lowercased: the URI's authority (HTTP/2, or an
/// absolute-form request) or the Host header.
pub fn host_of(parts: &Parts) -> String {
    let raw = parts
        .uri
        .authority()
        .map(|a| a.host())
        .or_else(|| {
            parts
                .headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
        })
        .unwrap_or("");
    strip_port(raw).to_ascii_lowercase()
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map(|(h, _)| &host[..=h.len()])
            .unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::strip_port;

    #[test]
    fn ports_are_stripped_from_hosts() {
        assert_eq!(
            strip_port("hello.default.localhost:8080"),
            "hello.default.localhost"
        );
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
    }
}
