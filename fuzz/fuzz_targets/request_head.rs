//! Any bytes as an HTTP/1 request head, through hyper's own HTTP/1 server parser (in process,
//! over a `tokio::io::duplex` pair), then through the proxy's functions that read untrusted
//! head data, in the pipeline's order: host and path to gateway and stage, the domain's
//! transport demands, the client's address from `X-Forwarded-For`, the resource policy, the
//! CORS preflight and response headers, the path check, the router, canary pinning and the
//! API key. The same bytes also go straight to `request_path::check` as a path.
//!
//! Properties, beyond "never panics":
//! - `request_path::check` accepts a path only if no segment, percent-decoded once, is `.` or
//!   `..` or holds `/` or `\`;
//! - a resolved target's path starts with `/`;
//! - the client address is the peer's or one of the `X-Forwarded-For` entries;
//! - a CORS answer's `Access-Control-Allow-Origin` is `*` or the request's own `Origin`, and
//!   every decorated response varies on `Origin`.
//!
//!   fuzz/run 60   (or: cargo +nightly fuzz run request_head -- -max_total_time=60)
#![no_main]

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;

use bytes::Bytes;
use http::header::{ACCESS_CONTROL_ALLOW_ORIGIN, ORIGIN, VARY};
use http::request::Parts;
use http::{HeaderMap, Request, Response};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use libfuzzer_sys::fuzz_target;
use percent_encoding::percent_decode_str;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tollgate_crds::compile::compile_str;
use tollgate_proxy::dispatch::{Dispatch, ServedGateway};
use tollgate_proxy::pipeline::gateway;
use tollgate_proxy::{api_key, body, canary, cors, request_path, transport};

const GATEWAYS: &str = include_str!("../fixtures/head.yaml");
/// A trusted proxy of the `shop` gateway, so `X-Forwarded-For` is read.
const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));

fn dispatch() -> &'static Dispatch {
    static DISPATCH: OnceLock<Dispatch> = OnceLock::new();
    DISPATCH.get_or_init(|| {
        let compiled = compile_str(GATEWAYS, "head.yaml").expect("fixture loads");
        assert_eq!(
            compiled.tables.len(),
            2,
            "both fixture gateways compile: {:#?}",
            compiled.diagnostics
        );
        let gateways = compiled
            .tables
            .into_values()
            .map(|t| ServedGateway::build(t).expect("fixture tables build"))
            .collect();
        Dispatch::new(gateways, "localhost")
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    check_path(&String::from_utf8_lossy(data));
    runtime().block_on(serve_http1(data));
});

/// Feeds the bytes to hyper's HTTP/1 server as one connection's input; every request hyper
/// parses out of them goes through [`head`].
async fn serve_http1(data: &[u8]) {
    let (mut client, server) = tokio::io::duplex(16 * 1024);
    let mut builder = http1::Builder::new();
    // As server.rs configures it: the exact head limit.
    builder.max_header_size(tollgate_proxy::server::MAX_HEAD_BYTES);
    let connection = builder.serve_connection(
        TokioIo::new(server),
        service_fn(|request: Request<Incoming>| async move {
            let (parts, _body) = request.into_parts();
            head(&parts);
            Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
        }),
    );
    let feed = async move {
        // The server may stop reading (a malformed head): then the write fails, which is fine.
        let _ = client.write_all(data).await;
        let _ = client.shutdown().await;
        let mut answer = Vec::new();
        let _ = client.read_to_end(&mut answer).await;
    };
    let (_, ()) = tokio::join!(connection, feed);
}

/// What the pipeline does with a parsed head before the body and the integration.
fn head(parts: &Parts) {
    let dispatch = dispatch();
    let host = gateway::host_of(parts);
    let Ok(target) = dispatch.resolve(&host, parts.uri.path()) else {
        return;
    };
    assert!(
        target.path.starts_with('/'),
        "resolved path {:?} (from {:?}) does not start with '/'",
        target.path,
        parts.uri
    );
    let _ = transport::check(None, target.domain);

    let policy = &target.gateway.policy;
    let client = policy.client_ip(PEER, &parts.headers);
    assert!(
        client == PEER || forwarded_addresses(&parts.headers).any(|a| a == client),
        "client {client} is neither the peer nor in X-Forwarded-For {:?}",
        parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .collect::<Vec<_>>()
    );
    let _ = policy.check(client);

    if let Some(c) = target.gateway.cors.as_ref() {
        if let Some(answer) = cors::preflight(c, &parts.method, &parts.headers) {
            assert_eq!(answer.status(), 204);
            check_allow_origin(answer.headers(), &parts.headers);
        }
        let mut response = Response::new(body::full(Bytes::new()));
        // A backend's own CORS headers, which the gateway's replace.
        response.headers_mut().insert(
            ACCESS_CONTROL_ALLOW_ORIGIN,
            "https://evil.example".parse().unwrap(),
        );
        cors::decorate(c, &parts.headers, &mut response);
        check_allow_origin(response.headers(), &parts.headers);
        assert!(
            response
                .headers()
                .get_all(VARY)
                .iter()
                .any(|v| v == "Origin"),
            "a decorated response varies on Origin"
        );
    }

    let checked = request_path::check(target.path);
    if checked.is_ok() {
        assert_clean(target.path);
    }
    if checked.is_err() {
        return;
    }
    let Some(found) = target.stage.router.find(&parts.method, target.path) else {
        return;
    };
    for (_, value) in &found.params {
        assert_clean(value);
    }
    let stage = target.gateway.stage_table(target.stage);
    let _ = canary::choose(stage, &parts.headers);
    if found.route.table.api_key_required {
        let _ = api_key::check(api_key::from_header(&parts.headers), target.stage);
    }
}

/// The path check straight on any text, and its property.
fn check_path(path: &str) {
    if request_path::check(path).is_ok() {
        assert_clean(path);
    }
}

/// No segment of an accepted path decodes (once) to a dot-segment or holds a separator.
fn assert_clean(path: &str) {
    for segment in path.split('/') {
        let decoded: Vec<u8> = percent_decode_str(segment).collect();
        assert!(
            decoded != b"." && decoded != b"..",
            "accepted {path:?}: segment {segment:?} decodes to a dot-segment"
        );
        assert!(
            !decoded.iter().any(|&b| b == b'/' || b == b'\\'),
            "accepted {path:?}: segment {segment:?} decodes to one holding a separator"
        );
    }
}

/// `Access-Control-Allow-Origin`, when present, is `*` or the request's `Origin`, once.
fn check_allow_origin(answer: &HeaderMap, request: &HeaderMap) {
    let values: Vec<_> = answer.get_all(ACCESS_CONTROL_ALLOW_ORIGIN).iter().collect();
    assert!(values.len() <= 1, "one Access-Control-Allow-Origin at most");
    if let Some(v) = values.first() {
        assert!(
            *v == "*" || Some(*v) == request.get(ORIGIN),
            "Access-Control-Allow-Origin {v:?} for Origin {:?}",
            request.get(ORIGIN)
        );
    }
}

/// The addresses `X-Forwarded-For` names, however written (`::FFFF:10.0.0.9`, `[::1]:443`).
fn forwarded_addresses(headers: &HeaderMap) -> impl Iterator<Item = IpAddr> + '_ {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|line| line.to_str().ok())
        .flat_map(|line| line.split(','))
        .filter_map(|entry| {
            let entry = entry.trim();
            let ip = entry
                .parse::<IpAddr>()
                .ok()
                .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
                .or_else(|| {
                    let inner = entry.strip_prefix('[')?.strip_suffix(']')?;
                    inner.parse::<IpAddr>().ok()
                })?;
            Some(ip.to_canonical())
        })
}
