//! CORS per gateway, as Amazon API Gateway HTTP APIs do it: the gateway answers preflights
//! itself, and writes the configured CORS headers on every other response, replacing any the
//! integration sent.
//!
//! - **Preflights** (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) never reach
//!   a route or a backend. An allowed origin asking for an allowed method gets `204` with
//!   `Access-Control-Allow-Origin`, `-Allow-Methods`, `-Allow-Headers`, `-Max-Age` and
//!   `-Allow-Credentials`; anything else gets a bare `204`, which the browser reads as a
//!   refusal. A method is allowed when listed, when `*` is listed, or when it is one a browser
//!   never needs permission for (`GET`, `HEAD`, `POST`). Requested headers are not checked:
//!   the browser compares them with `Access-Control-Allow-Headers`.
//! - **Other responses**, gateway errors included, lose the integration's `Access-Control-*`
//!   headers and, when the request's `Origin` is allowed, get `Access-Control-Allow-Origin`,
//!   `-Expose-Headers` and `-Allow-Credentials`.
//! - **Origins** are `scheme://host[:port]`, compared with the scheme and host in any case and
//!   the scheme's default port implied. Besides exact origins, `allowOrigins` may hold `*`
//!   (any origin; answered as `*`), `https://*` (any origin of the scheme, as in Amazon API
//!   Gateway) and `https://*.example.com` (one label under the domain, as for wildcard custom
//!   domains). An entry that is none of these is logged and never matches.
//! - **`*` with credentials**: browsers refuse `Access-Control-Allow-Origin: *` on credentialed
//!   requests, and the ApiGateway schema rejects that combination; a table holding it anyway is
//!   served with credentials off (logged). With credentials, a `*` in `allowMethods` or
//!   `allowHeaders` answers with what the preflight asked for, since browsers read `*` there
//!   literally.
//! - **`Vary: Origin`** goes on every response, since whether the CORS headers are there
//!   depends on the `Origin` header.
//!
//! Every header value is built once per table ([`Cors::build`]); a request costs a few header
//! lookups and, for an allowed origin, a copy of its `Origin` value.

use hyper::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, HeaderName, HeaderValue, ORIGIN,
    VARY,
};
use hyper::{HeaderMap, Method, Response, StatusCode};
use tollgate_crds::table::CorsTable;

use crate::body::{Body, full};

/// The response headers the gateway owns when CORS is configured.
const CORS_RESPONSE_HEADERS: [HeaderName; 6] = [
    ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_ALLOW_CREDENTIALS,
    ACCESS_CONTROL_EXPOSE_HEADERS,
    ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_HEADERS,
    ACCESS_CONTROL_MAX_AGE,
];
/// Methods a browser sends cross-origin without asking for them.
const SAFELISTED_METHODS: [&str; 3] = ["GET", "HEAD", "POST"];
const ANY: HeaderValue = HeaderValue::from_static("*");
const TRUE: HeaderValue = HeaderValue::from_static("true");
const VARY_ORIGIN: HeaderValue = HeaderValue::from_static("Origin");

/// A gateway's CORS settings with every header value prebuilt.
#[derive(Debug)]
pub struct Cors {
    origins: Origins,
    methods: Methods,
    headers: Headers,
    expose_headers: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
    credentials: bool,
}

#[derive(Debug, PartialEq)]
enum Origins {
    /// `*`: every origin, answered as `*`.
    Any,
    Listed(Vec<OriginPattern>),
}

#[derive(Debug)]
enum Methods {
    Any,
    /// Upper case, and the `Access-Control-Allow-Methods` value (none for an empty list).
    Listed(Vec<String>, Option<HeaderValue>),
}

#[derive(Debug)]
enum Headers {
    Any,
    Listed(Option<HeaderValue>),
}

/// One `allowOrigins` entry other than `*`, lower case.
#[derive(Debug, PartialEq)]
struct OriginPattern {
    scheme: String,
    host: HostPattern,
    /// `None`: the scheme's default port.
    port: Option<u16>,
}

#[derive(Debug, PartialEq)]
enum HostPattern {
    Exact(String),
    /// `*.example.com`, kept as `.example.com`: one label before it.
    Subdomain(String),
    /// `https://*`: any host, any port.
    Any,
}

/// A request's `Origin`, borrowed from the header.
#[derive(Debug, PartialEq)]
struct Origin<'a> {
    scheme: &'a str,
    host: &'a str,
    /// `None`: the scheme's default port.
    port: Option<u16>,
}

// === impl Cors ===

impl Cors {
    pub fn build(table: &CorsTable) -> Self {
        let origins = build_origins(&table.allow_origins);
        let mut credentials = table.allow_credentials;
        if credentials && origins == Origins::Any {
            tracing::warn!(
                "cors: allowCredentials with allowOrigins '*' is refused by browsers; credentials are off"
            );
            credentials = false;
        }
        Self {
            origins,
            methods: build_methods(&table.allow_methods),
            headers: build_headers(&table.allow_headers),
            expose_headers: list_value("exposeHeaders", &table.expose_headers),
            max_age: table.max_age_seconds.map(HeaderValue::from),
            credentials,
        }
    }

    /// The `Access-Control-Allow-Origin` value for a request, when its origin is allowed.
    fn allow_origin(&self, request_headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = request_headers.get(ORIGIN)?;
        match &self.origins {
            Origins::Any => Some(ANY),
            Origins::Listed(patterns) => {
                let parsed = parse_origin(origin.to_str().ok()?)?;
                patterns
                    .iter()
                    .any(|p| p.matches(&parsed))
                    .then(|| origin.clone())
            }
        }
    }

    fn allows_method(&self, requested: &str) -> bool {
        let listed = match &self.methods {
            Methods::Any => return true,
            Methods::Listed(methods, _) => methods,
        };
        listed
            .iter()
            .map(String::as_str)
            .chain(SAFELISTED_METHODS)
            .any(|m| m.eq_ignore_ascii_case(requested))
    }

    fn allow_methods(&self, requested: &HeaderValue) -> Option<HeaderValue> {
        match &self.methods {
            Methods::Any if self.credentials => Some(requested.clone()),
            Methods::Any => Some(ANY),
            Methods::Listed(_, value) => value.clone(),
        }
    }

    fn allow_headers(&self, requested: Option<&HeaderValue>) -> Option<HeaderValue> {
        match &self.headers {
            Headers::Any if self.credentials => requested.cloned(),
            Headers::Any => Some(ANY),
            Headers::Listed(value) => value.clone(),
        }
    }

    /// The headers of an accepted preflight.
    fn write_preflight_headers(
        &self,
        allow_origin: HeaderValue,
        requested_method: &HeaderValue,
        request_headers: &HeaderMap,
        out: &mut HeaderMap,
    ) {
        out.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
        if let Some(v) = self.allow_methods(requested_method) {
            out.insert(ACCESS_CONTROL_ALLOW_METHODS, v);
        }
        let requested_headers = request_headers.get(ACCESS_CONTROL_REQUEST_HEADERS);
        if let Some(v) = self.allow_headers(requested_headers) {
            out.insert(ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
        if let Some(v) = &self.max_age {
            out.insert(ACCESS_CONTROL_MAX_AGE, v.clone());
        }
        if self.credentials {
            out.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE);
        }
    }
}

/// The answer to a CORS preflight (`OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`), or `None` when the request is not one.
pub fn preflight(cors: &Cors, method: &Method, headers: &HeaderMap) -> Option<Response<Body>> {
    if method != Method::OPTIONS || !headers.contains_key(ORIGIN) {
        return None;
    }
    let requested_method = headers.get(ACCESS_CONTROL_REQUEST_METHOD)?;
    let mut response = Response::new(full(bytes::Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    let out = response.headers_mut();
    out.insert(VARY, VARY_ORIGIN);

    let allowed_method = requested_method
        .to_str()
        .is_ok_and(|m| is_method(m) && cors.allows_method(m));
    match cors.allow_origin(headers) {
        Some(allow_origin) if allowed_method => {
            cors.write_preflight_headers(allow_origin, requested_method, headers, out);
        }
        _ => tracing::debug!(
            origin = ?headers.get(ORIGIN),
            method = ?requested_method,
            "CORS preflight refused"
        ),
    }
    Some(response)
}

/// Replaces the integration's CORS headers with the gateway's for the request's `Origin`, when
/// it is allowed, and adds `Vary: Origin`.
pub fn decorate(cors: &Cors, request_headers: &HeaderMap, response: &mut Response<Body>) {
    let out = response.headers_mut();
    for name in &CORS_RESPONSE_HEADERS {
        out.remove(name);
    }
    add_vary_origin(out);
    let Some(allow_origin) = cors.allow_origin(request_headers) else {
        return;
    };
    out.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
    if let Some(v) = &cors.expose_headers {
        out.insert(ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
    }
    if cors.credentials {
        out.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE);
    }
}

/// Appends `Origin` to `Vary` unless a `Vary` line already names it (or is `*`).
fn add_vary_origin(headers: &mut HeaderMap) {
    let named = headers.get_all(VARY).iter().any(|line| {
        line.to_str().is_ok_and(|l| {
            l.split(',')
                .map(str::trim)
                .any(|t| t == "*" || t.eq_ignore_ascii_case("origin"))
        })
    });
    if !named {
        headers.append(VARY, VARY_ORIGIN);
    }
}

// === building ===

fn build_origins(entries: &[String]) -> Origins {
    if entries.iter().any(|e| e.trim() == "*") {
        return Origins::Any;
    }
    let patterns = entries
        .iter()
        .filter_map(|entry| {
            let pattern = OriginPattern::parse(entry);
            if pattern.is_none() {
                tracing::warn!(origin = %entry, "cors: allowOrigins entry skipped: not scheme://host[:port]");
            }
            pattern
        })
        .collect();
    Origins::Listed(patterns)
}

fn build_methods(entries: &[String]) -> Methods {
    if entries.iter().any(|e| e.trim() == "*") {
        return Methods::Any;
    }
    let methods: Vec<String> = entries
        .iter()
        .map(|m| m.trim().to_ascii_uppercase())
        .collect();
    let value = list_value("allowMethods", &methods);
    Methods::Listed(methods, value)
}

fn build_headers(entries: &[String]) -> Headers {
    if entries.iter().any(|e| e.trim() == "*") {
        return Headers::Any;
    }
    Headers::Listed(list_value("allowHeaders", entries))
}

/// A list as one comma-separated header value; none for an empty list or one that cannot be a
/// header value (logged).
fn list_value(field: &'static str, entries: &[String]) -> Option<HeaderValue> {
    if entries.is_empty() {
        return None;
    }
    let joined = entries
        .iter()
        .map(|e| e.trim())
        .collect::<Vec<_>>()
        .join(", ");
    HeaderValue::try_from(joined)
        .inspect_err(
            |error| tracing::warn!(field, %error, "cors: list skipped: not a header value"),
        )
        .ok()
}

// === impl OriginPattern ===

impl OriginPattern {
    /// `https://app.example.com`, `http://localhost:3000`, `https://*`,
    /// `https://*.example.com`; a trailing `/` is tolerated.
    fn parse(entry: &str) -> Option<Self> {
        let entry = entry.trim().trim_end_matches('/').to_ascii_lowercase();
        if let Some(scheme) = entry.strip_suffix("://*") {
            return valid_scheme(scheme).then(|| Self {
                scheme: scheme.to_string(),
                host: HostPattern::Any,
                port: None,
            });
        }
        let origin = parse_origin(&entry)?;
        let host = match origin.host.strip_prefix('*') {
            Some(suffix) if suffix.starts_with('.') && !suffix[1..].contains('*') => {
                HostPattern::Subdomain(suffix.to_string())
            }
            Some(_) => return None,
            None if origin.host.contains('*') => return None,
            None => HostPattern::Exact(origin.host.to_string()),
        };
        Some(Self {
            scheme: origin.scheme.to_string(),
            host,
            port: origin.port,
        })
    }

    fn matches(&self, origin: &Origin<'_>) -> bool {
        if !origin.scheme.eq_ignore_ascii_case(&self.scheme) {
            return false;
        }
        match &self.host {
            HostPattern::Any => true,
            HostPattern::Exact(host) => {
                origin.port == self.port && origin.host.eq_ignore_ascii_case(host)
            }
            HostPattern::Subdomain(suffix) => {
                origin.port == self.port && is_one_label_under(origin.host, suffix)
            }
        }
    }
}

/// `host` is `label` + `suffix` (`suffix` starting with '.'), in any case.
fn is_one_label_under(host: &str, suffix: &str) -> bool {
    let Some(split) = host.len().checked_sub(suffix.len()) else {
        return false;
    };
    let (label, tail) = host.as_bytes().split_at(split);
    !label.is_empty() && !label.contains(&b'.') && tail.eq_ignore_ascii_case(suffix.as_bytes())
}

/// An origin as browsers serialize it: `scheme://host[:port]`, the host a name, an IPv4
/// address or a bracketed IPv6 address; the port dropped when it is the scheme's default.
fn parse_origin(s: &str) -> Option<Origin<'_>> {
    let (scheme, authority) = s.split_once("://")?;
    if !valid_scheme(scheme)
        || authority.is_empty()
        || authority.contains(['/', '?', '#', '@', ' '])
    {
        return None;
    }
    let (host, port) = split_port(authority)?;
    if host.is_empty() || (!host.starts_with('[') && host.contains(':')) {
        return None;
    }
    let port = port.filter(|&p| Some(p) != default_port(scheme));
    Some(Origin { scheme, host, port })
}

/// `host:port` into its parts; `[v6]:port` keeps the brackets on the host.
fn split_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let host_end = if authority.starts_with('[') {
        authority.find(']')? + 1
    } else {
        authority.rfind(':').unwrap_or(authority.len())
    };
    let (host, rest) = authority.split_at(host_end);
    match rest.strip_prefix(':') {
        Some(port) => Some((host, Some(port.parse().ok()?))),
        None if rest.is_empty() => Some((host, None)),
        None => None,
    }
}

/// A method name (an HTTP token).
fn is_method(s: &str) -> bool {
    !s.is_empty() && Method::from_bytes(s.as_bytes()).is_ok()
}

fn valid_scheme(scheme: &str) -> bool {
    scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

fn default_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("wss") {
        Some(443)
    } else if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("ws") {
        Some(80)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    fn cors(origins: &[&str], methods: &[&str], headers: &[&str], credentials: bool) -> Cors {
        Cors::build(&CorsTable {
            allow_origins: strings(origins),
            allow_methods: strings(methods),
            allow_headers: strings(headers),
            expose_headers: strings(&["x-request-id", "date"]),
            max_age_seconds: Some(300),
            allow_credentials: credentials,
        })
    }

    fn request(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    fn header<'a>(response: &'a Response<Body>, name: &str) -> Option<&'a str> {
        response.headers().get(name).map(|v| v.to_str().unwrap())
    }

    fn allowed(cors: &Cors, origin: &str) -> bool {
        cors.allow_origin(&request(&[("origin", origin)])).is_some()
    }

    fn preflight_for(cors: &Cors, origin: &str, method: &str) -> Response<Body> {
        preflight(
            cors,
            &Method::OPTIONS,
            &request(&[
                ("origin", origin),
                ("access-control-request-method", method),
                ("access-control-request-headers", "content-type, x-trace"),
            ]),
        )
        .expect("a preflight")
    }

    fn response_with(pairs: &[(&str, &str)]) -> Response<Body> {
        let mut response = Response::new(full(bytes::Bytes::from_static(b"{}")));
        *response.headers_mut() = request(pairs);
        response
    }

    #[test]
    fn origins_parse_as_browsers_send_them() {
        let o = |scheme, host, port| Some(Origin { scheme, host, port });
        assert_eq!(
            parse_origin("https://app.example.com"),
            o("https", "app.example.com", None)
        );
        assert_eq!(
            parse_origin("https://app.example.com:443"),
            o("https", "app.example.com", None)
        );
        assert_eq!(
            parse_origin("http://localhost:3000"),
            o("http", "localhost", Some(3000))
        );
        assert_eq!(
            parse_origin("http://[::1]:8080"),
            o("http", "[::1]", Some(8080))
        );
        assert_eq!(parse_origin("http://[::1]"), o("http", "[::1]", None));
        for bad in [
            "null",
            "https://",
            "app.example.com",
            "https://app.example.com/path",
            "https://user@app.example.com",
            "https://app.example.com:99999",
            "https://app.example.com:x",
            "https://::1",
            "https://[::1]x",
            "1http://a",
        ] {
            assert_eq!(parse_origin(bad), None, "{bad}");
        }
    }

    #[test]
    fn exact_origins_compare_scheme_host_and_port() {
        let c = cors(
            &["https://App.Example.com", "http://localhost:3000/"],
            &[],
            &[],
            false,
        );
        assert!(allowed(&c, "https://app.example.com"));
        assert!(allowed(&c, "HTTPS://APP.EXAMPLE.COM"));
        assert!(allowed(&c, "https://app.example.com:443"));
        assert!(allowed(&c, "http://localhost:3000"));
        assert!(!allowed(&c, "http://app.example.com"), "another scheme");
        assert!(!allowed(&c, "https://app.example.com:8443"), "another port");
        assert!(!allowed(&c, "http://localhost"), "the default port");
        assert!(!allowed(&c, "https://evil-app.example.com"));
        assert!(!allowed(&c, "https://app.example.com.evil.net"));
        assert!(!allowed(&c, "null"));
    }

    #[test]
    fn wildcard_origins_match_one_label_or_a_whole_scheme() {
        let c = cors(&["https://*.example.com", "http://*"], &[], &[], false);
        assert!(allowed(&c, "https://pr-101.example.com"));
        assert!(allowed(&c, "https://PR-101.Example.COM"));
        assert!(!allowed(&c, "https://example.com"), "no label");
        assert!(!allowed(&c, "https://a.b.example.com"), "two labels");
        assert!(!allowed(&c, "https://evilexample.com"));
        assert!(!allowed(&c, "https://x.example.com:8443"), "another port");
        assert!(
            allowed(&c, "http://anything.test:8080"),
            "http://* allows every http origin"
        );
        assert!(!allowed(&c, "ftp://x.example.com"));
    }

    #[test]
    fn malformed_origin_entries_never_match() {
        for entry in [
            "example.com",
            "https://a*.example.com",
            "https://*.*.com",
            "https://x.*",
        ] {
            assert_eq!(OriginPattern::parse(entry), None, "{entry}");
        }
        let c = cors(&["example.com"], &[], &[], false);
        assert!(!allowed(&c, "https://example.com"));
        assert!(!allowed(&c, "http://example.com"));
    }

    #[test]
    fn an_allowed_preflight_gets_every_header() {
        let c = cors(
            &["https://app.example.com"],
            &["get", "PUT"],
            &["content-type", "x-trace"],
            true,
        );
        let r = preflight_for(&c, "https://app.example.com", "PUT");
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            header(&r, "access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert_eq!(header(&r, "access-control-allow-methods"), Some("GET, PUT"));
        assert_eq!(
            header(&r, "access-control-allow-headers"),
            Some("content-type, x-trace")
        );
        assert_eq!(header(&r, "access-control-max-age"), Some("300"));
        assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
        assert_eq!(header(&r, "vary"), Some("Origin"));
        assert_eq!(header(&r, "access-control-expose-headers"), None);
    }

    #[test]
    fn a_refused_preflight_is_a_bare_204() {
        let c = cors(&["https://app.example.com"], &["PUT"], &["x-trace"], true);
        for (origin, method) in [
            ("https://evil.example.com", "PUT"),
            ("https://app.example.com", "DELETE"),
            ("https://app.example.com", "not a method"),
        ] {
            let r = preflight_for(&c, origin, method);
            assert_eq!(r.status(), StatusCode::NO_CONTENT, "{origin} {method}");
            assert_eq!(header(&r, "vary"), Some("Origin"));
            for name in &CORS_RESPONSE_HEADERS {
                assert!(!r.headers().contains_key(name), "{origin} {method}: {name}");
            }
        }
        let r = preflight_for(&c, "https://app.example.com", "post");
        assert_eq!(
            header(&r, "access-control-allow-origin"),
            Some("https://app.example.com"),
            "a safelisted method needs no listing"
        );
    }

    #[test]
    fn only_options_with_origin_and_requested_method_is_a_preflight() {
        let c = cors(&["*"], &["*"], &["*"], false);
        let full = request(&[
            ("origin", "https://a.test"),
            ("access-control-request-method", "PUT"),
        ]);
        assert!(preflight(&c, &Method::OPTIONS, &full).is_some());
        assert!(preflight(&c, &Method::GET, &full).is_none());
        let no_method = request(&[("origin", "https://a.test")]);
        assert!(preflight(&c, &Method::OPTIONS, &no_method).is_none());
        let no_origin = request(&[("access-control-request-method", "PUT")]);
        assert!(preflight(&c, &Method::OPTIONS, &no_origin).is_none());
    }

    #[test]
    fn stars_without_credentials_are_answered_as_stars() {
        let c = cors(&["*"], &["*"], &["*"], false);
        let r = preflight_for(&c, "https://anyone.test", "PATCH");
        assert_eq!(header(&r, "access-control-allow-origin"), Some("*"));
        assert_eq!(header(&r, "access-control-allow-methods"), Some("*"));
        assert_eq!(header(&r, "access-control-allow-headers"), Some("*"));
        assert_eq!(header(&r, "access-control-allow-credentials"), None);
    }

    #[test]
    fn stars_with_credentials_echo_the_request() {
        let c = cors(&["https://app.example.com"], &["*"], &["*"], true);
        let r = preflight_for(&c, "https://app.example.com", "PATCH");
        assert_eq!(header(&r, "access-control-allow-methods"), Some("PATCH"));
        assert_eq!(
            header(&r, "access-control-allow-headers"),
            Some("content-type, x-trace")
        );
        assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
    }

    #[test]
    fn any_origin_with_credentials_is_served_without_credentials() {
        let c = cors(&["*"], &[], &[], true);
        let r = preflight_for(&c, "https://anyone.test", "GET");
        assert_eq!(header(&r, "access-control-allow-origin"), Some("*"));
        assert_eq!(header(&r, "access-control-allow-credentials"), None);
    }

    #[test]
    fn responses_get_the_gateways_headers_instead_of_the_backends() {
        let c = cors(&["https://app.example.com"], &["GET"], &[], true);
        let mut r = response_with(&[
            ("access-control-allow-origin", "*"),
            ("access-control-allow-methods", "DELETE"),
            ("access-control-max-age", "99999"),
            ("vary", "Accept-Encoding"),
            ("content-type", "application/json"),
        ]);
        decorate(
            &c,
            &request(&[("origin", "https://app.example.com")]),
            &mut r,
        );
        assert_eq!(
            header(&r, "access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert_eq!(
            header(&r, "access-control-expose-headers"),
            Some("x-request-id, date")
        );
        assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
        assert_eq!(header(&r, "access-control-allow-methods"), None);
        assert_eq!(header(&r, "access-control-max-age"), None);
        assert_eq!(header(&r, "content-type"), Some("application/json"));
        let vary: Vec<_> = r.headers().get_all("vary").iter().collect();
        assert_eq!(vary, ["Accept-Encoding", "Origin"]);
    }

    #[test]
    fn a_disallowed_origin_gets_no_cors_headers_not_even_the_backends() {
        let c = cors(&["https://app.example.com"], &[], &[], false);
        for origin in [Some("https://evil.example.com"), None] {
            let mut r = response_with(&[
                ("access-control-allow-origin", "*"),
                ("access-control-allow-credentials", "true"),
                ("vary", "origin"),
            ]);
            let headers = origin.map_or_else(HeaderMap::new, |o| request(&[("origin", o)]));
            decorate(&c, &headers, &mut r);
            for name in &CORS_RESPONSE_HEADERS {
                assert!(!r.headers().contains_key(name), "{origin:?}: {name}");
            }
            let vary: Vec<_> = r.headers().get_all("vary").iter().collect();
            assert_eq!(vary, ["origin"], "Vary: Origin is not repeated");
        }
    }

    #[test]
    fn vary_star_is_left_alone() {
        let mut headers = request(&[("vary", "*")]);
        add_vary_origin(&mut headers);
        assert_eq!(headers.get_all(VARY).iter().count(), 1);
        let mut headers = request(&[("vary", "Accept, Origin")]);
        add_vary_origin(&mut headers);
        assert_eq!(headers.get_all(VARY).iter().count(), 1);
        let mut headers = HeaderMap::new();
        add_vary_origin(&mut headers);
        assert_eq!(headers.get(VARY), Some(&VARY_ORIGIN));
    }
}
