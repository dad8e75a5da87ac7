//! The request head's limits and host, checked before anything else (phase 0 of
//! [`pipeline`](crate::pipeline)), the same for HTTP/1.1 and HTTP/2:
//!
//! - the request line and headers together fit Amazon API Gateway's 10,240 bytes, counted as
//!   HTTP/1.1 writes them: a request line longer than that alone is 414 `Request-URI Too
//!   Long`, a longer head 431, as is one of more than [`MAX_HEADERS`] fields;
//! - the request names its host once: two `Host` headers, or an HTTP/2 `Host` naming another
//!   host than `:authority` (RFC 9113, section 8.3.1), are 400. An HTTP/1.1 request in
//!   absolute form is for its target's authority, whatever its `Host` says (RFC 9112, section
//!   3.2.2): routing and the backend's `X-Forwarded-Host` use that authority.
//!
//! The connection-level share of these limits (hyper's HTTP/1 parser bounds, a first request
//! line too long to parse) is in [`server`](crate::server).

use http::request::Parts;
use http::{Version, header};

use crate::errors::GatewayError;

/// Amazon API Gateway's limit on the request line and headers together.
pub const MAX_HEAD_BYTES: usize = 10_240;

/// The most header fields a request may have (hyper's default is 100, which refused heads of
/// 3 KB). Not every head within [`MAX_HEAD_BYTES`] fits (2,555 fields of 4 bytes would):
/// hyper's HTTP/1 parser then allocates room for every field on each parse, and at 2,555 those
/// two 80 KB allocations cost about a third of the throughput (glibc returns them to the
/// system and faults them in again on every request); 512 stays in malloc's caches.
pub const MAX_HEADERS: usize = 512;

/// The HTTP/2 header list size that lets every head within [`MAX_HEAD_BYTES`] and
/// [`MAX_HEADERS`] through: HTTP/2 counts 32 bytes more per field than HTTP/1.1 writes (RFC
/// 9113, section 6.5.2), pseudo-headers included. The exact limits are then [`check`]'s.
pub const H2_MAX_HEADER_LIST_SIZE: u32 = (MAX_HEAD_BYTES + 32 * (MAX_HEADERS + 4)) as u32;

/// Refuses a head over the limits or naming its host ambiguously.
pub fn check(parts: &Parts) -> Result<(), GatewayError> {
    let line = request_line_size(parts);
    if line > MAX_HEAD_BYTES {
        return Err(GatewayError::UriTooLong);
    }
    if head_size(parts) > MAX_HEAD_BYTES || parts.headers.len() > MAX_HEADERS {
        return Err(GatewayError::HeadersTooLarge);
    }
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(GatewayError::BadRequest("more than one Host header".into()));
    }
    if let (Version::HTTP_2, Some(authority), Some(host)) =
        (parts.version, parts.uri.authority(), host)
    {
        let same = host
            .to_str()
            .is_ok_and(|h| same_host(h, authority.as_str()));
        if !same {
            return Err(GatewayError::BadRequest(
                "the Host header names another host than :authority".into(),
            ));
        }
    }
    Ok(())
}

/// `METHOD SP target SP HTTP/1.1 CRLF`.
fn request_line_size(parts: &Parts) -> usize {
    let target = parts.uri.path_and_query().map_or(1, |pq| pq.as_str().len());
    parts.method.as_str().len() + 1 + target + " HTTP/1.1\r\n".len()
}

/// The size of the request line and headers as HTTP/1.1 writes them.
fn head_size(parts: &Parts) -> usize {
    let headers: usize = parts
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    request_line_size(parts) + headers + 2
}

/// Whether two `host[:port]` values name the same host (case aside); a port on one side only
/// is not a difference.
fn same_host(a: &str, b: &str) -> bool {
    let (host_a, port_a) = split_port(a);
    let (host_b, port_b) = split_port(b);
    host_a.eq_ignore_ascii_case(host_b)
        && (port_a.is_none() || port_b.is_none() || port_a == port_b)
}

fn split_port(value: &str) -> (&str, Option<&str>) {
    let bracket_end = value.rfind(']').map_or(0, |i| i + 1);
    match value[bracket_end..].rsplit_once(':') {
        Some((_, port)) => {
            let cut = value.len() - port.len() - 1;
            (&value[..cut], Some(port))
        }
        None => (value, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(version: Version, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::get(uri).version(version);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_request_line_alone_over_the_limit_is_414_else_431() {
        let long = format!("/x?{}", "a".repeat(MAX_HEAD_BYTES));
        let p = parts(Version::HTTP_11, &long, &[("host", "h")]);
        assert_eq!(check(&p), Err(GatewayError::UriTooLong));
        let big = "a".repeat(MAX_HEAD_BYTES);
        let p = parts(Version::HTTP_11, "/x", &[("host", "h"), ("x-big", &big)]);
        assert_eq!(check(&p), Err(GatewayError::HeadersTooLarge));
        let p = parts(Version::HTTP_11, "/x", &[("host", "h")]);
        assert_eq!(check(&p), Ok(()));
    }

    #[test]
    fn the_host_is_named_once() {
        let p = parts(Version::HTTP_11, "/", &[("host", "a"), ("host", "b")]);
        assert!(matches!(check(&p), Err(GatewayError::BadRequest(_))));
        // Absolute form: the target's authority, whatever the Host header says.
        let p = parts(Version::HTTP_11, "http://b:8080/", &[("host", "a")]);
        assert_eq!(check(&p), Ok(()));
        // HTTP/2: a Host header must agree with :authority.
        let p = parts(Version::HTTP_2, "http://b:8080/", &[("host", "a")]);
        assert!(matches!(check(&p), Err(GatewayError::BadRequest(_))));
        for agreeing in ["B", "b:8080", "b"] {
            let p = parts(Version::HTTP_2, "http://b:8080/", &[("host", agreeing)]);
            assert_eq!(check(&p), Ok(()), "{agreeing}");
        }
        let p = parts(Version::HTTP_2, "http://b:8080/", &[("host", "b:9090")]);
        assert!(matches!(check(&p), Err(GatewayError::BadRequest(_))));
    }

    #[test]
    fn hosts_compare_without_a_missing_port() {
        assert!(same_host("[::1]:80", "[::1]"));
        assert!(!same_host("[::1]:80", "[::2]:80"));
        assert_eq!(split_port("[::1]"), ("[::1]", None));
        assert_eq!(split_port("[::1]:8"), ("[::1]", Some("8")));
    }

    #[test]
    fn more_header_fields_than_hyper_takes_are_431_on_http2_too() {
        let names: Vec<String> = (0..=MAX_HEADERS).map(|i| format!("h{i}")).collect();
        let mut builder = http::Request::get("/").version(Version::HTTP_2);
        for name in &names {
            builder = builder.header(name.as_str(), "1");
        }
        let p = builder.body(()).unwrap().into_parts().0;
        assert_eq!(check(&p), Err(GatewayError::HeadersTooLarge));
    }
}
