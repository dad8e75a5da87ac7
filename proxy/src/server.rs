//! The traffic listeners, with the connection limit, the request-head limits and a graceful
//! drain on shutdown.
//!
//! - Plain: HTTP/1.1 and HTTP/2 (prior knowledge) on one port. Each connection's first bytes
//!   are read under the header read timeout to tell HTTP/2's preface from HTTP/1 (a client
//!   that sends nothing, or half a preface, is dropped), then replayed to hyper's HTTP/1 or
//!   HTTP/2 connection.
//! - TLS (optional): the handshake ([`tls::handshake`]), under the same timeout, picks the
//!   certificate by SNI from the dispatch current at accept time; ALPN chooses HTTP/2 or
//!   HTTP/1.1. A connection keeps the config it was accepted with, so rotating a certificate
//!   never drops one.
//!
//! Connections past `--max-connections` (both listeners together) are closed at once,
//! counted and warned about ([`ConnectionLimit`]).
//!
//! HTTP/1: a first request line longer than the 10,240-byte head limit is answered 414 here,
//! before hyper parses it (hyper could only say 431); hyper then bounds heads at 10,240 bytes
//! and 512 fields (431), and closes idle keep-alive connections after the header read
//! timeout. HTTP/2: a connection with no open stream for the header read timeout
//! (a client that never sends a request, or stops) gets GOAWAY and is closed. The exact head
//! limits, for both, are [`head::check`](crate::head::check)'s.
//!
//! Shutdown: the listeners keep accepting for `--shutdown-delay-seconds` (endpoints still
//! name the proxy), then close; HTTP/2 connections get GOAWAY; HTTP/1 answers carry
//! `Connection: close`, and an idle keep-alive connection stays open for [`DRAIN_GRACE`] so
//! that a request already on its way is served; everything ends within `--drain-seconds`.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::header::{self, HeaderValue};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::access_log::AccessRecord;
use crate::connections::{Admitted, ConnectionLimit, Streams, Tracked};
use crate::errors::GatewayError;
use crate::head::{H2_MAX_HEADER_LIST_SIZE, MAX_HEADERS};
use crate::metrics::RequestLabels;
use crate::pipeline::{self, REQUEST_ID_HEADER};
use crate::request_ctx::Connection;
use crate::state::Shared;
use crate::tls::{self, DefaultCertificate};
use crate::warn_every::WarnEvery;

pub use crate::head::MAX_HEAD_BYTES;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// During the drain, how long an idle HTTP/1 keep-alive connection stays open for a request
/// its client may have sent before learning of the shutdown (at most the drain itself).
pub const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// After answering a request line too long, how long the rest of the request is read and
/// discarded, so that closing does not reset the connection before the client reads the
/// answer.
const LINGER: Duration = Duration::from_secs(2);

pub struct ServerOptions {
    /// A client must send a request's head within this time; also closes idle keep-alive
    /// connections, connections that send nothing and HTTP/2 connections with no stream.
    pub header_read_timeout: Duration,
    /// How long in-flight requests may take to finish after shutdown starts.
    pub drain: Duration,
    /// Connections served at once, plain and TLS together; past it new ones are closed.
    pub max_connections: usize,
    /// How long the listeners keep accepting after the shutdown signal, before the drain.
    pub shutdown_delay: Duration,
}

/// The sockets API traffic arrives on.
pub struct Listeners {
    pub plain: TcpListener,
    pub tls: Option<TlsListener>,
}

pub struct TlsListener {
    pub listener: TcpListener,
    /// Served when SNI names no custom domain; without it such handshakes are refused.
    pub default_certificate: Option<Arc<DefaultCertificate>>,
}

/// Whether connections serve as usual or drain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Serving,
    Draining,
    /// The drain period is over: what still runs ends now (a WebSocket with a close frame).
    Closing,
}

/// A client connection's claim on the proxy: its place under `--max-connections` and a
/// receiver of the phase, which the drain waits for. The connection's task holds it, and so
/// does each request's [`Connection`]; a WebSocket relay that outlives the task keeps it
/// (`websocket`), so an upgraded connection still counts, and still runs through the drain.
#[derive(Clone)]
pub struct Hold {
    _admitted: Arc<Admitted>,
    phase: watch::Receiver<Phase>,
}

impl Hold {
    /// Resolves when the drain period is over and what still runs must end.
    pub async fn closing(&mut self) {
        let _ = self.phase.wait_for(|p| *p == Phase::Closing).await;
    }
}

/// What every connection task shares. Each holds it (and with it a receiver of the phase)
/// until it ends, so the drain is over when the phase has no receiver left.
struct Listening {
    shared: Arc<Shared>,
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
    phase: watch::Receiver<Phase>,
    header_read_timeout: Duration,
    drain_grace: Duration,
}

/// Serves until `shutdown` resolves and the shutdown delay passes, then stops accepting, lets
/// in-flight requests finish (up to `drain`) and returns.
pub async fn serve(
    listeners: Listeners,
    shared: Arc<Shared>,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) {
    let mut h1 = http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .max_header_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS)
        .keep_alive(true);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_header_list_size(H2_MAX_HEADER_LIST_SIZE)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        // WebSockets over HTTP/2 (RFC 8441), as `websocket` serves them.
        .enable_connect_protocol();
    let limit = ConnectionLimit::new(
        options.max_connections,
        shared.metrics.connections_open.clone(),
        shared.metrics.connections_refused.clone(),
    );
    let (phase_tx, phase) = watch::channel(Phase::Serving);
    let listening = Arc::new(Listening {
        shared,
        h1,
        h2,
        phase,
        header_read_timeout: options.header_read_timeout,
        drain_grace: DRAIN_GRACE.min(options.drain),
    });

    let shutdown_delay = options.shutdown_delay;
    let accepting = async move {
        shutdown.await;
        if !shutdown_delay.is_zero() {
            tracing::info!(
                shutdown_delay_seconds = shutdown_delay.as_secs(),
                "still accepting connections for the shutdown delay"
            );
            tokio::time::sleep(shutdown_delay).await;
        }
    };
    tokio::pin!(accepting);

    let accept_failed = WarnEvery::new(Duration::from_secs(10));
    let tls_listener = listeners.tls.as_ref().map(|t| &t.listener);
    let default_certificate = listeners
        .tls
        .as_ref()
        .and_then(|t| t.default_certificate.clone());
    loop {
        tokio::select! {
            accepted = listeners.plain.accept() => {
                let Some((stream, peer)) = accepted_or_back_off(accepted, &accept_failed).await else { continue };
                let Some(admitted) = limit.admit() else {
                    limit.refuse(peer);
                    continue;
                };
                tokio::spawn(serve_plain(stream, peer, listening.clone(), admitted));
            }
            accepted = accept_if_any(tls_listener) => {
                let Some((stream, peer)) = accepted_or_back_off(accepted, &accept_failed).await else { continue };
                let Some(admitted) = limit.admit() else {
                    limit.refuse(peer);
                    continue;
                };
                tokio::spawn(serve_tls(
                    stream,
                    peer,
                    listening.clone(),
                    default_certificate.clone(),
                    admitted,
                ));
            }
            () = &mut accepting => break,
        }
    }

    drop(listeners);
    tracing::info!(
        drain_seconds = options.drain.as_secs(),
        "draining in-flight requests"
    );
    phase_tx.send_replace(Phase::Draining);
    drop(listening);
    tokio::select! {
        () = phase_tx.closed() => {
            tracing::info!("all connections drained");
            return;
        }
        () = tokio::time::sleep(options.drain) => tracing::warn!("drain period over; closing remaining connections"),
    }
    // What still runs is told to end: WebSockets send their close frames (1001) at the next
    // frame boundary. A second, bounded by CLOSING_GRACE; then the process closes the rest.
    phase_tx.send_replace(Phase::Closing);
    let _ = tokio::time::timeout(CLOSING_GRACE, phase_tx.closed()).await;
}

/// How long what still runs at the end of the drain gets to end in good order.
const CLOSING_GRACE: Duration = Duration::from_secs(1);

impl Listening {
    fn hold(&self, admitted: Admitted) -> Hold {
        Hold {
            _admitted: Arc::new(admitted),
            phase: self.phase.clone(),
        }
    }
}

async fn accept_if_any(listener: Option<&TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// An accepted connection, or `None` after a pause when accepting failed (out of file
/// descriptors and the like: back off, keep serving; warn at most every 10 s).
async fn accepted_or_back_off(
    accepted: io::Result<(TcpStream, SocketAddr)>,
    failed: &WarnEvery,
) -> Option<(TcpStream, SocketAddr)> {
    match accepted {
        Ok((stream, peer)) => {
            let _ = stream.set_nodelay(true);
            Some((stream, peer))
        }
        Err(e) => {
            if let Some(failures) = failed.due() {
                tracing::warn!(error = %e, failures, "accept failed; retrying in 50 ms");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

async fn serve_plain(
    mut stream: TcpStream,
    peer: SocketAddr,
    listening: Arc<Listening>,
    admitted: Admitted,
) {
    let timeout = listening.header_read_timeout;
    let (prefix, sniffed) = match tokio::time::timeout(timeout, sniff(&mut stream, true)).await {
        Ok(Ok(sniffed)) => sniffed,
        Ok(Err(_)) | Err(_) => return,
    };
    if sniffed == Sniffed::LineTooLong {
        answer_uri_too_long(stream, &prefix, peer, &listening.shared).await;
        return;
    }
    let io = TokioIo::new(Rewind {
        prefix,
        offset: 0,
        inner: stream,
    });
    let conn = Arc::new(Connection::new(peer, "http", None).held(listening.hold(admitted)));
    serve_http(io, sniffed == Sniffed::Http2, conn, &listening).await;
}

async fn serve_tls(
    stream: TcpStream,
    peer: SocketAddr,
    listening: Arc<Listening>,
    default_certificate: Option<Arc<DefaultCertificate>>,
    admitted: Admitted,
) {
    let shared = &listening.shared;
    let timeout = listening.header_read_timeout;
    let handshake = tls::handshake(
        stream,
        |server_name| {
            shared
                .dispatch
                .load()
                .certificates()
                .select(server_name)
                .cloned()
        },
        default_certificate.as_deref(),
    );
    let (mut stream, session) = match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => {
            shared.metrics.tls_handshake_failed();
            tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            shared.metrics.tls_handshake_failed();
            return;
        }
    };
    let is_h2 = session.h2;
    let conn = Arc::new(
        Connection::new(peer, "https", Some(Arc::new(session))).held(listening.hold(admitted)),
    );
    if is_h2 {
        serve_http(TokioIo::new(stream), true, conn, &listening).await;
        return;
    }
    // HTTP/1.1: the first request line, as on the plain listener.
    let (prefix, sniffed) = match tokio::time::timeout(timeout, sniff(&mut stream, false)).await {
        Ok(Ok(sniffed)) => sniffed,
        Ok(Err(_)) | Err(_) => return,
    };
    if sniffed == Sniffed::LineTooLong {
        answer_uri_too_long(stream, &prefix, peer, shared).await;
        return;
    }
    let io = TokioIo::new(Rewind {
        prefix,
        offset: 0,
        inner: stream,
    });
    serve_http(io, false, conn, &listening).await;
}

async fn serve_http<I>(io: TokioIo<I>, is_h2: bool, conn: Arc<Connection>, listening: &Listening)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = conn.peer;
    let result = if is_h2 {
        serve_h2(io, conn, listening).await
    } else {
        serve_h1(io, conn, listening).await
    };
    if let Err(e) = result {
        tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
    }
}

/// Resolves when the drain starts (never, if the server is gone).
async fn draining(phase: &mut watch::Receiver<Phase>) {
    if phase.wait_for(|p| *p != Phase::Serving).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn serve_h1<I>(
    io: TokioIo<I>,
    conn: Arc<Connection>,
    listening: &Listening,
) -> hyper::Result<()>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shared = listening.shared.clone();
    let phase = listening.phase.clone();
    let service = service_fn(move |request| {
        let handled = pipeline::handle(shared.clone(), conn.clone(), request);
        let phase = phase.clone();
        async move {
            let mut response = handled.await?;
            // Answered during the drain: the client must not send another request here.
            if *phase.borrow() != Phase::Serving {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, Infallible>(response)
        }
    });
    // Upgrades on: a handler may take the connection over (the WebSocket APIs build on it).
    let connection = listening.h1.serve_connection(io, service).with_upgrades();
    tokio::pin!(connection);
    let mut phase = listening.phase.clone();
    tokio::select! {
        result = connection.as_mut() => return result,
        () = draining(&mut phase) => {}
    }
    // Draining. A request already on its way is served (and its answer closes the
    // connection); an idle connection is closed after the grace.
    tokio::select! {
        result = connection.as_mut() => return result,
        () = tokio::time::sleep(listening.drain_grace) => {}
    }
    connection.as_mut().graceful_shutdown();
    connection.await
}

async fn serve_h2<I>(
    io: TokioIo<I>,
    conn: Arc<Connection>,
    listening: &Listening,
) -> hyper::Result<()>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let streams = Streams::default();
    let shared = listening.shared.clone();
    let counted = streams.clone();
    let service = service_fn(move |request| {
        let guard = counted.open();
        let handled = pipeline::handle(shared.clone(), conn.clone(), request);
        async move {
            let response = handled.await?;
            Ok::<_, Infallible>(response.map(|body| Tracked::new(body, guard)))
        }
    });
    let connection = listening.h2.serve_connection(io, service);
    tokio::pin!(connection);
    let idle = listening.header_read_timeout;
    let mut phase = listening.phase.clone();
    tokio::select! {
        result = connection.as_mut() => return result,
        () = streams.idle_for(idle) => {}
        () = draining(&mut phase) => {}
    }
    // GOAWAY: streams already open finish, no new one starts. A client that holds the
    // connection open with no stream is dropped after the idle timeout again.
    connection.as_mut().graceful_shutdown();
    tokio::select! {
        result = connection.as_mut() => result,
        () = streams.idle_for(idle) => Ok(()),
    }
}

/// What a connection's first bytes say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sniffed {
    /// HTTP/2's whole preface.
    Http2,
    /// An HTTP/1 request line, whole and within the head limit.
    Http1,
    /// More than the head limit without the request line's end.
    LineTooLong,
}

/// Reads until the bytes show whether the client speaks HTTP/2 (the whole preface, when
/// `h2_possible`) or HTTP/1 (its whole first request line, or more of it than the head
/// limit). Returns what was read, to be replayed.
async fn sniff<S: AsyncRead + Unpin>(
    stream: &mut S,
    h2_possible: bool,
) -> io::Result<(Vec<u8>, Sniffed)> {
    let mut prefix = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let before = prefix.len();
        prefix.extend_from_slice(&chunk[..n]);
        if h2_possible {
            let shared_len = prefix.len().min(H2_PREFACE.len());
            if prefix[..shared_len] == H2_PREFACE[..shared_len] {
                if prefix.len() >= H2_PREFACE.len() {
                    return Ok((prefix, Sniffed::Http2));
                }
                continue;
            }
        }
        if let Some(at) = chunk[..n].iter().position(|b| *b == b'\n') {
            // The request line's size, its line end included.
            let line = before + at + 1;
            let sniffed = if line > MAX_HEAD_BYTES {
                Sniffed::LineTooLong
            } else {
                Sniffed::Http1
            };
            return Ok((prefix, sniffed));
        }
        if prefix.len() > MAX_HEAD_BYTES {
            return Ok((prefix, Sniffed::LineTooLong));
        }
    }
}

/// Answers a request whose line alone is longer than the head limit: 414, as the pipeline
/// would, logged and counted; then reads what the client still sends for a while, so that
/// closing does not reset the connection under the answer.
async fn answer_uri_too_long<S>(mut stream: S, prefix: &[u8], peer: SocketAddr, shared: &Shared)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let error = GatewayError::UriTooLong;
    let request_id = uuid::Uuid::new_v4();
    let body = serde_json::json!({ "message": error.message() }).to_string();
    let answer = format!(
        "HTTP/1.1 414 URI Too Long\r\ncontent-type: application/json\r\n\
         x-amzn-errortype: {}\r\n{REQUEST_ID_HEADER}: {request_id}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        error.error_type(),
        body.len()
    );
    let method = prefix
        .split(|b| *b == b' ')
        .next()
        .and_then(|m| hyper::Method::from_bytes(m).ok())
        .unwrap_or_default();
    let mut record = AccessRecord::new(
        request_id,
        jiff::Timestamp::now(),
        peer.ip(),
        method,
        hyper::Uri::default(),
        hyper::Version::HTTP_11,
    );
    record.status = error.status().as_u16();
    record.response_length = Some(body.len() as u64);
    record.error_message = Some(error.to_string());
    tracing::debug!(peer = %peer, request_id = %record.request_id, "request line too long: 414");
    shared.metrics.observe_request(
        &RequestLabels {
            gateway: "",
            stage: "",
            route: "",
        },
        record.status,
        0.0,
    );
    shared.access_log.write(&record);
    if stream.write_all(answer.as_bytes()).await.is_err() || stream.shutdown().await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(LINGER, async {
        let mut discard = [0u8; 8192];
        while stream.read(&mut discard).await.is_ok_and(|n| n > 0) {}
    })
    .await;
}

/// A stream that first yields bytes already read from it.
struct Rewind<T> {
    prefix: Vec<u8>,
    offset: usize,
    inner: T,
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.offset < self.prefix.len() {
            let n = (self.prefix.len() - self.offset).min(buf.remaining());
            let start = self.offset;
            buf.put_slice(&self.prefix[start..start + n]);
            self.offset += n;
            if self.offset == self.prefix.len() {
                self.prefix = Vec::new();
                self.offset = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    async fn sniffed(bytes: &'static [u8]) -> io::Result<(Vec<u8>, Sniffed)> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut client = TcpStream::connect(addr).await.unwrap();
            client.write_all(bytes).await.unwrap();
        });
        let (mut stream, _) = listener.accept().await.unwrap();
        sniff(&mut stream, true).await
    }

    #[tokio::test]
    async fn tells_http2_from_http1_and_keeps_the_bytes() {
        let (prefix, what) = sniffed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        assert_eq!(what, Sniffed::Http1);
        assert!(prefix.starts_with(b"G"));
        let (prefix, what) = sniffed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0")
            .await
            .unwrap();
        assert_eq!(what, Sniffed::Http2);
        assert!(prefix.starts_with(H2_PREFACE));
        assert!(
            sniffed(b"PRI * HT").await.is_err(),
            "half a preface then EOF"
        );
        assert!(
            sniffed(b"GET /no-line-end").await.is_err(),
            "half a request line then EOF"
        );
    }

    #[tokio::test]
    async fn a_request_line_longer_than_the_head_limit_is_told_apart() {
        let long: &'static [u8] = Box::leak(
            format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_HEAD_BYTES))
                .into_bytes()
                .into_boxed_slice(),
        );
        let (prefix, what) = sniffed(long).await.unwrap();
        assert_eq!(what, Sniffed::LineTooLong);
        assert!(prefix.len() > MAX_HEAD_BYTES);
        let fits: &'static [u8] = Box::leak(
            format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_HEAD_BYTES - 32))
                .into_bytes()
                .into_boxed_slice(),
        );
        assert_eq!(sniffed(fits).await.unwrap().1, Sniffed::Http1);
        // Just over, its end read in the same chunk as the limit's.
        let over: &'static [u8] = Box::leak(
            format!(
                "GET /{} HTTP/1.1\r\nHost: x\r\n\r\n",
                "a".repeat(MAX_HEAD_BYTES - 10)
            )
            .into_bytes()
            .into_boxed_slice(),
        );
        assert_eq!(sniffed(over).await.unwrap().1, Sniffed::LineTooLong);
    }

    #[tokio::test]
    async fn rewind_replays_the_prefix_then_reads_on() {
        let (client, server) = tokio::io::duplex(64);
        let mut rewind = Rewind {
            prefix: b"abc".to_vec(),
            offset: 0,
            inner: server,
        };
        let mut client = client;
        client.write_all(b"def").await.unwrap();
        drop(client);
        let mut all = String::new();
        rewind.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "abcdef");
    }
}
