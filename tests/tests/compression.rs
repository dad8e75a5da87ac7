//! Compressed answers on a REST API with `minimumCompressionSize` (`docs/concepts.md`,
//! "Compression and binary media types"), end to end: `tollgate-proxy` in front of a real
//! hyper backend of this file's own that answers text of a given size with or without a
//! `Content-Length`, streams slowly, sends an already-compressed body, or echoes the raw bytes
//! it got. Every answer is decoded here as a client would and compared byte for byte.
//!
//! Needs `cargo build --workspace --bins` (as `make test` does).

use std::convert::Infallible;
use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tollgate_tests::client::{Client, Response as Answer};
use tollgate_tests::config::{gateway, http, route};
use tollgate_tests::proxy::{Served, serve};

type BoxBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// `n` bytes of text, the same for every call.
fn text(n: usize) -> Vec<u8> {
    (0u64..)
        .flat_map(|i| format!("line {i} of the answer\n").into_bytes())
        .take(n)
        .collect()
}

fn decode(coding: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => flate2::read::GzDecoder::new(bytes).read_to_end(&mut out),
        "deflate" => flate2::read::ZlibDecoder::new(bytes).read_to_end(&mut out),
        "br" => brotli::Decompressor::new(bytes, 4096).read_to_end(&mut out),
        other => panic!("unexpected coding {other}"),
    }
    .unwrap_or_else(|e| panic!("{coding}: {e}"));
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// The backend: `/text/N` (N bytes with a `Content-Length`), `/chunked/N` (the same bytes in
/// 16 KiB chunks, no length), `/encoded` (5,000 bytes gzipped by the backend, with
/// `Content-Encoding: gzip`), `/drip` (a first chunk, then after 1.5 s a second), `/status/204`,
/// `/echo-raw` (the request body as received, with the request's `Content-Encoding` as
/// `x-got-content-encoding`). Runs on a runtime of its own; stops with the test process.
fn start_backend() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service_fn(answer))
                        .await;
                });
            }
        });
    });
    addr
}

async fn answer(request: Request<hyper::body::Incoming>) -> Result<Response<BoxBody>, Infallible> {
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let full = |bytes: Vec<u8>| Full::new(Bytes::from(bytes)).boxed();
    let response = match segments.as_slice() {
        ["text", n] => Response::builder()
            .header("content-type", "text/plain")
            .header("etag", "\"v1\"")
            .body(full(text(n.parse().unwrap()))),
        ["chunked", n] => {
            let body = Bytes::from(text(n.parse().unwrap()));
            let chunks: Vec<Bytes> = (0..body.len())
                .step_by(16 * 1024)
                .map(|at| body.slice(at..(at + 16 * 1024).min(body.len())))
                .collect();
            let stream = futures::stream::iter(chunks.into_iter().map(|c| Ok(Frame::data(c))));
            Response::builder()
                .header("content-type", "text/plain")
                .body(StreamBody::new(stream).boxed())
        }
        ["encoded"] => Response::builder()
            .header("content-type", "text/plain")
            .header("content-encoding", "gzip")
            .body(full(gzip(&text(5000)))),
        ["drip"] => {
            let stream = futures::stream::unfold(0u8, |step| async move {
                match step {
                    0 => Some((Ok(Frame::data(Bytes::from(text(2000)))), 1)),
                    1 => {
                        tokio::time::sleep(Duration::from_millis(1500)).await;
                        Some((Ok(Frame::data(Bytes::from_static(b"the end\n"))), 2))
                    }
                    _ => None,
                }
            });
            Response::builder()
                .header("content-type", "text/plain")
                .body(StreamBody::new(stream).boxed())
        }
        ["status", "204"] => Response::builder().status(204).body(full(Vec::new())),
        ["echo-raw"] => {
            let encoding = request
                .headers()
                .get("content-encoding")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let body = request.into_body().collect().await.unwrap().to_bytes();
            Response::builder()
                .header("content-type", "application/octet-stream")
                .header("x-got-content-encoding", encoding)
                .body(full(body.to_vec()))
        }
        _ => Response::builder().status(404).body(full(Vec::new())),
    };
    Ok(response.unwrap())
}

/// A REST API `zip` compressing from 1,000 bytes and one `plain` without compression, both
/// with stage `dev`, `ANY /{proxy+}` to the backend and `GET /mock` answering 3,000 bytes.
fn start() -> Served {
    let backend = start_backend();
    let to_backend = || http(&format!("http://{backend}/{{proxy}}"));
    let mock = json!({"mock": {
        "statusCode": 200,
        "headers": {"Content-Type": "text/plain"},
        "body": String::from_utf8(text(3000)).unwrap(),
    }});
    let mut zip = gateway("zip", json!([{"name": "dev"}]));
    zip["spec"]["minimumCompressionSize"] = json!(1000);
    serve(
        &[
            zip,
            gateway("plain", json!([{"name": "dev"}])),
            route("zip-proxy", "zip", "ANY", "/{proxy+}", to_backend()),
            route("zip-mock", "zip", "GET", "/mock", mock.clone()),
            route("plain-proxy", "plain", "ANY", "/{proxy+}", to_backend()),
            route("plain-mock", "plain", "GET", "/mock", mock),
        ],
        &[],
    )
}

async fn get(proxy: &Served, api: &str, path: &str, accept_encoding: Option<&str>) -> Answer {
    call(proxy, api, "GET", path, accept_encoding).await
}

async fn call(
    proxy: &Served,
    api: &str,
    method: &str,
    path: &str,
    accept_encoding: Option<&str>,
) -> Answer {
    let host = format!("{api}.default.localhost");
    let mut headers = vec![("host", host.as_str())];
    if let Some(a) = accept_encoding {
        headers.push(("accept-encoding", a));
    }
    Client::new()
        .request(
            method,
            &proxy.url(&format!("/dev/{path}")),
            &headers,
            Bytes::new(),
        )
        .await
}

fn varies(r: &Answer) -> bool {
    r.headers.get_all("vary").iter().any(|v| {
        v.to_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("accept-encoding")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_coding_round_trips_and_the_log_counts_compressed_bytes() {
    let proxy = start();
    let expected = text(50_000);
    for (accept, coding) in [
        ("gzip", "gzip"),
        ("deflate", "deflate"),
        ("br", "br"),
        ("gzip, deflate, br", "br"),
        ("deflate;q=0.5, gzip;q=1.0", "gzip"),
        ("*", "gzip"),
        ("gzip;q=0, deflate", "deflate"),
    ] {
        for path in ["text/50000", "chunked/50000"] {
            let r = get(&proxy, "zip", path, Some(accept)).await;
            assert_eq!(r.status, 200, "{accept} {path}");
            assert_eq!(
                r.header("content-encoding").as_deref(),
                Some(coding),
                "{accept} {path}"
            );
            assert!(varies(&r), "{accept} {path}: Vary");
            assert_eq!(r.header("content-length"), None, "{accept} {path}");
            assert!(
                r.body.len() < expected.len() / 4,
                "{accept} {path}: {}",
                r.body.len()
            );
            assert_eq!(decode(coding, &r.body), expected, "{accept} {path}");
            let line = proxy.access_log_entry(&r.header("x-amzn-requestid").unwrap());
            assert_eq!(
                line["responseLength"],
                r.body.len(),
                "{accept} {path}: bytes sent"
            );
        }
    }
    // The backend's strong ETag is weak once the bytes are not its own.
    let r = get(&proxy, "zip", "text/50000", Some("gzip")).await;
    assert_eq!(r.header("etag").as_deref(), Some("W/\"v1\""));
    // A mock's answer too.
    let r = get(&proxy, "zip", "mock", Some("gzip")).await;
    assert_eq!(r.header("content-encoding").as_deref(), Some("gzip"));
    assert_eq!(decode("gzip", &r.body), text(3000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_ask_gets_identity() {
    let proxy = start();
    for accept in [
        None,
        Some(""),
        Some("identity"),
        Some("gzip;q=0"),
        Some("*;q=0"),
        Some("zstd"),
        Some("gzip;q=0.5, identity"),
    ] {
        let r = get(&proxy, "zip", "text/50000", accept).await;
        assert_eq!(r.header("content-encoding"), None, "{accept:?}");
        assert_eq!(&r.body[..], &text(50_000)[..], "{accept:?}");
        assert_eq!(
            r.header("content-length").as_deref(),
            Some("50000"),
            "{accept:?}"
        );
        assert!(
            varies(&r),
            "{accept:?}: an answer that could be compressed varies"
        );
        assert_eq!(r.header("etag").as_deref(), Some("\"v1\""));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_the_minimum_nothing_is_compressed() {
    let proxy = start();
    for path in ["text/999", "chunked/999"] {
        let r = get(&proxy, "zip", path, Some("gzip")).await;
        assert_eq!(r.header("content-encoding"), None, "{path}");
        assert!(!varies(&r), "{path}");
        assert_eq!(&r.body[..], &text(999)[..], "{path}");
        // Measured whole, a short stream is sent with its length.
        assert_eq!(r.header("content-length").as_deref(), Some("999"), "{path}");
    }
    // At the minimum it is.
    for path in ["text/1000", "chunked/1000"] {
        let r = get(&proxy, "zip", path, Some("gzip")).await;
        assert_eq!(
            r.header("content-encoding").as_deref(),
            Some("gzip"),
            "{path}"
        );
        assert_eq!(decode("gzip", &r.body), text(1000), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_head_and_empty_answers_are_left_alone() {
    let proxy = start();
    // Compressed by the backend: passed on as it is, not compressed twice.
    let r = get(&proxy, "zip", "encoded", Some("br, gzip")).await;
    assert_eq!(r.header("content-encoding").as_deref(), Some("gzip"));
    assert_eq!(&r.body[..], &gzip(&text(5000))[..]);
    // HEAD: nothing to compress, the head says what GET without compression would.
    let r = call(&proxy, "zip", "HEAD", "text/50000", Some("gzip")).await;
    assert_eq!(r.header("content-encoding"), None);
    assert!(r.body.is_empty());
    let r = get(&proxy, "zip", "status/204", Some("gzip")).await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("content-encoding"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_without_compression_is_unchanged() {
    let proxy = start();
    for path in ["text/50000", "chunked/50000", "mock"] {
        let r = get(&proxy, "plain", path, Some("gzip, br")).await;
        assert_eq!(r.header("content-encoding"), None, "{path}");
        assert!(!varies(&r), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_request_body_passes_through_untouched() {
    let proxy = start();
    let upload = gzip(&text(20_000));
    let r = Client::new()
        .request(
            "POST",
            &proxy.url("/dev/echo-raw"),
            &[
                ("host", "zip.default.localhost"),
                ("content-type", "application/octet-stream"),
                ("content-encoding", "gzip"),
            ],
            upload.clone(),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-got-content-encoding").as_deref(), Some("gzip"));
    assert_eq!(
        &r.body[..],
        &upload[..],
        "the backend got the client's bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_stream_is_compressed_as_it_streams() {
    let proxy = start();
    let size = 24 * 1024 * 1024;
    let started = Instant::now();
    let r = get(&proxy, "zip", &format!("chunked/{size}"), Some("gzip")).await;
    assert_eq!(r.header("content-encoding").as_deref(), Some("gzip"));
    let decoded = decode("gzip", &r.body);
    assert_eq!(decoded.len(), size);
    assert!(decoded == text(size), "24 MiB come back byte for byte");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

/// A raw client that reads the answer frame by frame.
async fn stream(
    proxy: &Served,
    path: &str,
    accept_encoding: &str,
) -> Response<hyper::body::Incoming> {
    let stream = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake::<
        _,
        http_body_util::Empty<Bytes>,
    >(TokioIo::new(stream))
    .await
    .unwrap();
    tokio::spawn(connection);
    let request = Request::get(format!("/dev/{path}"))
        .header("host", "zip.default.localhost")
        .header("accept-encoding", accept_encoding)
        .body(http_body_util::Empty::new())
        .unwrap();
    sender.send_request(request).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_stream_reaches_the_client_as_it_comes() {
    let proxy = start();
    let started = Instant::now();
    let response = stream(&proxy, "drip", "gzip").await;
    assert_eq!(response.headers()["content-encoding"], "gzip");
    let mut body = response.into_body();
    let mut decoder = flate2::write::GzDecoder::new(Vec::new());
    // The first 2,000 bytes arrive, decodable, while the backend waits 1.5 s.
    while decoder.get_ref().len() < 2000 {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("a frame in time")
            .expect("a frame")
            .expect("no error");
        if let Ok(data) = frame.into_data() {
            decoder.write_all(&data).unwrap();
            decoder.flush().unwrap();
        }
    }
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "the first part waited for the rest: {:?}",
        started.elapsed()
    );
    assert_eq!(&decoder.get_ref()[..], &text(2000)[..]);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            decoder.write_all(&data).unwrap();
        }
    }
    let all = decoder.finish().unwrap();
    assert!(all.ends_with(b"the end\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_mid_stream_is_logged_and_the_proxy_serves_on() {
    let proxy = start();
    // The backend holds its second part 1.5 s: the client leaves before it.
    let response = stream(&proxy, "drip", "br").await;
    let id = response.headers()["x-amzn-requestid"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    drop(body);
    let line = proxy.access_log_entry(&id);
    let message = line["errorMessage"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains("client went away"), "{line}");
    // Everything after is served as before.
    let r = get(&proxy, "zip", "text/50000", Some("gzip")).await;
    assert_eq!(decode("gzip", &r.body), text(50_000));
}
