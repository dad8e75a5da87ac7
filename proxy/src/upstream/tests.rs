//! The per-worker pool and the driven exchange, against real TCP servers on 127.0.0.1.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::body::BoxError;
use crate::metrics::Metrics;

/// A TCP server on 127.0.0.1 that runs `serve` on each connection it accepts, counting them.
async fn listen<F, Fut>(serve: F) -> (SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(stream));
        }
    });
    (addr, accepted)
}

/// An HTTP/1.1 server that echoes the request body (or says `ok`) and the request id (as
/// `x-seen-request-id`), counting connections; `close` answers with `Connection: close`.
async fn server(close: bool) -> (SocketAddr, Arc<AtomicUsize>) {
    listen(move |stream| async move {
        let service = service_fn(move |request: Request<Incoming>| async move {
            let id = request.headers().get(REQUEST_ID_HEADER).cloned();
            let body = request.into_body().collect().await.unwrap().to_bytes();
            let body = if body.is_empty() {
                Bytes::from_static(b"ok")
            } else {
                body
            };
            let mut response = Response::new(http_body_util::Full::new(body));
            if let Some(id) = id {
                response.headers_mut().insert("x-seen-request-id", id);
            }
            if close {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, Infallible>(response)
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .await;
    })
    .await
}

/// A raw server that answers the first request of each connection, keep-alive, and closes
/// the connection on the second without answering.
async fn one_answer_per_connection() -> (SocketAddr, Arc<AtomicUsize>) {
    listen(|mut stream| async move {
        read_head(&mut stream).await;
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await;
        read_head(&mut stream).await;
        // Dropped: closed without an answer.
    })
    .await
}

async fn read_head(stream: &mut TcpStream) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

fn upstream(limits: pool::Limits) -> (Upstream, Metrics) {
    let metrics = Metrics::new();
    let mut upstream = Upstream::build(None, metrics.upstream()).unwrap();
    upstream.pool = limits;
    (upstream, metrics)
}

fn outbound() -> Outbound<'static> {
    Outbound {
        kind: Kind::Integration,
        request_id: Some("req-1"),
        deadline: Deadline::after(Duration::from_secs(5)),
        trace: None,
    }
}

fn request(method: Method, addr: SocketAddr, payload: Payload) -> Request<Payload> {
    let mut request = Request::new(payload);
    *request.method_mut() = method;
    *request.uri_mut() = format!("http://{addr}/x").parse().unwrap();
    request
}

async fn get(upstream: &Upstream, addr: SocketAddr) -> Result<Bytes, UpstreamError> {
    let response = upstream
        .send(outbound(), request(Method::GET, addr, Payload::Empty))
        .await?;
    Ok(response.into_body().collect().await.unwrap().to_bytes())
}

fn authority(addr: SocketAddr) -> Authority {
    addr.to_string().parse().unwrap()
}

fn sample(metrics: &Metrics, prefix: &str) -> f64 {
    let text = metrics.render();
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
}

#[test]
fn kinds_and_outcomes_index_their_metrics() {
    for (i, kind) in Kind::ALL.iter().enumerate() {
        assert_eq!(*kind as usize, i);
    }
    for (i, outcome) in Outcome::ALL.iter().enumerate() {
        assert_eq!(*outcome as usize, i);
    }
}

#[tokio::test]
async fn a_connection_is_reused_for_sequential_requests() {
    let (addr, accepted) = server(false).await;
    let (upstream, metrics) = upstream(pool::Limits::for_current_runtime());
    for _ in 0..5 {
        assert_eq!(get(&upstream, addr).await.unwrap(), "ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    assert_eq!(pool::idle_count(&authority(addr)), 1);
    assert_eq!(
        sample(&metrics, "tollgate_upstream_connections_opened_total"),
        1.0
    );
    assert_eq!(
        sample(
            &metrics,
            r#"tollgate_upstream_calls_total{kind="integration",outcome="answered"}"#
        ),
        5.0
    );
}

#[tokio::test]
async fn a_streamed_request_body_is_sent_while_the_head_is_awaited() {
    /// A body whose chunks come from a channel.
    struct Chunks(tokio::sync::mpsc::Receiver<Bytes>);
    impl HttpBody for Chunks {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            self.0.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
        }
    }

    let (addr, _) = server(false).await;
    let (upstream, _) = upstream(pool::Limits::for_current_runtime());
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        for chunk in ["one ", "two ", "three"] {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tx.send(Bytes::from_static(chunk.as_bytes())).await.unwrap();
        }
    });
    let payload = Payload::Stream(Chunks(rx).boxed());
    let response = upstream
        .send(outbound(), request(Method::POST, addr, payload))
        .await
        .unwrap();
    assert_eq!(response.headers()["x-seen-request-id"], "req-1");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "one two three");
    assert_eq!(pool::idle_count(&authority(addr)), 1);
}

#[tokio::test]
async fn a_connection_the_backend_closes_is_not_pooled() {
    let (addr, accepted) = server(true).await;
    let (upstream, _) = upstream(pool::Limits::for_current_runtime());
    for _ in 0..3 {
        assert_eq!(get(&upstream, addr).await.unwrap(), "ok");
        assert_eq!(pool::idle_count(&authority(addr)), 0);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_idempotent_request_on_a_connection_closed_under_it_is_sent_again() {
    let (addr, accepted) = one_answer_per_connection().await;
    let (upstream, metrics) = upstream(pool::Limits {
        replay_after_idle: Duration::ZERO,
        ..pool::Limits::for_current_runtime()
    });
    // The first answer of each connection, then the second request finds it closed (written,
    // then the connection ends): sent again on a new connection, which answers.
    for _ in 0..4 {
        assert_eq!(get(&upstream, addr).await.unwrap(), "ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 4);
    assert_eq!(
        sample(
            &metrics,
            r#"tollgate_upstream_retries_total{kind="integration"}"#
        ),
        3.0
    );

    // Not copied for when its connection was idle for less than `replay_after_idle`: the
    // pooled connection (it answered once) fails the request. (Pools are per thread, not per
    // `Upstream`.)
    let (recent, _) = self::upstream(pool::Limits {
        replay_after_idle: Duration::from_secs(60),
        ..pool::Limits::for_current_runtime()
    });
    assert!(get(&recent, addr).await.is_err());

    // A POST is not sent twice once written.
    assert_eq!(get(&upstream, addr).await.unwrap(), "ok");
    let post = request(Method::POST, addr, Payload::Whole(Bytes::from_static(b"x")));
    let failed = upstream.send(outbound(), post).await;
    assert!(
        matches!(failed, Err(UpstreamError::Exchange(_))),
        "{failed:?}"
    );
}

#[tokio::test]
async fn an_idle_connection_the_backend_closed_is_skipped_at_checkout() {
    // Answers keep-alive, then closes a moment later.
    let (addr, accepted) = listen(|mut stream| async move {
        read_head(&mut stream).await;
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    })
    .await;
    let (upstream, metrics) = upstream(pool::Limits::for_current_runtime());
    assert_eq!(get(&upstream, addr).await.unwrap(), "ok");
    assert_eq!(pool::idle_count(&authority(addr)), 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The pooled connection is found closed before anything is written on it: even a POST
    // goes through, on a new connection, without a retry.
    let post = request(Method::POST, addr, Payload::Whole(Bytes::from_static(b"x")));
    let response = upstream.send(outbound(), post).await.unwrap();
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        "ok"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    assert_eq!(
        sample(
            &metrics,
            r#"tollgate_upstream_retries_total{kind="integration"}"#
        ),
        0.0
    );
}

#[tokio::test]
async fn idle_connections_are_bounded_per_host_and_in_age() {
    let (addr, accepted) = server(false).await;
    let limits = pool::Limits {
        max_idle_per_host: 2,
        idle_timeout: Duration::from_millis(200),
        shared: false,
        replay_after_idle: Duration::ZERO,
    };
    let (upstream, _) = upstream(limits);
    // Four at once: four connections, two kept.
    let responses = futures_join4(&upstream, addr).await;
    assert!(responses.iter().all(|r| r == "ok"));
    assert_eq!(accepted.load(Ordering::SeqCst), 4);
    assert_eq!(pool::idle_count(&authority(addr)), 2);

    // Past the idle timeout, none is reused.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get(&upstream, addr).await.unwrap(), "ok");
    assert_eq!(accepted.load(Ordering::SeqCst), 5);
    assert_eq!(pool::idle_count(&authority(addr)), 1);
}

/// Four GETs in flight at once, each on its own connection.
async fn futures_join4(upstream: &Upstream, addr: SocketAddr) -> Vec<Bytes> {
    let heads = tokio::join!(
        upstream.send(outbound(), request(Method::GET, addr, Payload::Empty)),
        upstream.send(outbound(), request(Method::GET, addr, Payload::Empty)),
        upstream.send(outbound(), request(Method::GET, addr, Payload::Empty)),
        upstream.send(outbound(), request(Method::GET, addr, Payload::Empty)),
    );
    let mut bodies = Vec::new();
    for head in [heads.0, heads.1, heads.2, heads.3] {
        bodies.push(
            head.unwrap()
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes(),
        );
    }
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_share_what_they_do_not_keep() {
    let (addr, accepted) = server(false).await;
    let (upstream, _) = upstream(pool::Limits::for_current_runtime());
    assert!(upstream.pool.shared);
    let upstream = Arc::new(upstream);
    // Each response read on a task of its own, on whichever thread runs it.
    for _ in 0..40 {
        let response = upstream
            .send(outbound(), request(Method::GET, addr, Payload::Empty))
            .await
            .unwrap();
        let body = tokio::spawn(async move { response.into_body().collect().await })
            .await
            .unwrap()
            .unwrap()
            .to_bytes();
        assert_eq!(body, "ok");
    }
    let opened = accepted.load(Ordering::SeqCst);
    assert!(
        opened <= 2 * pool::LOCAL_IDLE_PER_HOST + 1,
        "{opened} connections"
    );
}
