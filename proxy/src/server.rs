//! The traffic listeners, with the request-head limits and a graceful drain on shutdown.
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
//! HTTP/1 heads over 10,240 bytes get 431 from hyper itself; HTTP/2 header lists are bounded
//! the same.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::pipeline::{self, Connection, Shared};
use crate::tls::{self, DefaultCertificate};

/// Amazon API Gateway's limit on the request line and headers together.
pub const MAX_HEAD_BYTES: usize = 10_240;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub struct ServerOptions {
    /// A client must send a request's head within this time; also closes idle keep-alive
    /// connections and connections that send nothing.
    pub header_read_timeout: Duration,
    /// How long in-flight requests may take to finish after shutdown starts.
    pub drain: Duration,
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

/// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests finish
/// (up to `drain`) and returns.
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
        .keep_alive(true);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_header_list_size(MAX_HEAD_BYTES as u32)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let protocols = Arc::new(Protocols { h1, h2 });
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);

    let tls_listener = listeners.tls.as_ref().map(|t| &t.listener);
    let default_certificate = listeners
        .tls
        .as_ref()
        .and_then(|t| t.default_certificate.clone());
    loop {
        tokio::select! {
            accepted = listeners.plain.accept() => {
                let Some((stream, peer)) = accepted_or_back_off(accepted).await else { continue };
                tokio::spawn(serve_plain(
                    stream,
                    peer,
                    shared.clone(),
                    protocols.clone(),
                    graceful.watcher(),
                    options.header_read_timeout,
                ));
            }
            accepted = accept_if_any(tls_listener) => {
                let Some((stream, peer)) = accepted_or_back_off(accepted).await else { continue };
                tokio::spawn(serve_tls(
                    stream,
                    peer,
                    shared.clone(),
                    default_certificate.clone(),
                    protocols.clone(),
                    graceful.watcher(),
                    options.header_read_timeout,
                ));
            }
            () = &mut shutdown => break,
        }
    }

    drop(listeners);
    tracing::info!(
        drain_seconds = options.drain.as_secs(),
        "draining in-flight requests"
    );
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(options.drain) => tracing::warn!("drain period over; closing remaining connections"),
    }
}

struct Protocols {
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
}

async fn accept_if_any(listener: Option<&TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// An accepted connection, or `None` after a pause when accepting failed (out of file
/// descriptors and the like: back off, keep serving).
async fn accepted_or_back_off(
    accepted: io::Result<(TcpStream, SocketAddr)>,
) -> Option<(TcpStream, SocketAddr)> {
    match accepted {
        Ok((stream, peer)) => {
            let _ = stream.set_nodelay(true);
            Some((stream, peer))
        }
        Err(e) => {
            tracing::warn!(error = %e, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

async fn serve_plain(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    protocols: Arc<Protocols>,
    watcher: Watcher,
    first_bytes_timeout: Duration,
) {
    let (prefix, is_h2) = match tokio::time::timeout(first_bytes_timeout, sniff(&mut stream)).await
    {
        Ok(Ok(sniffed)) => sniffed,
        Ok(Err(_)) | Err(_) => return,
    };
    let io = TokioIo::new(Rewind {
        prefix,
        offset: 0,
        inner: stream,
    });
    let conn = Connection::new(peer, "http", None);
    serve_http(io, is_h2, conn, shared, &protocols, watcher).await;
}

async fn serve_tls(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    default_certificate: Option<Arc<DefaultCertificate>>,
    protocols: Arc<Protocols>,
    watcher: Watcher,
    handshake_timeout: Duration,
) {
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
    let (stream, session) = match tokio::time::timeout(handshake_timeout, handshake).await {
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
    let conn = Connection::new(peer, "https", Some(Arc::new(session)));
    serve_http(
        TokioIo::new(stream),
        is_h2,
        conn,
        shared,
        &protocols,
        watcher,
    )
    .await;
}

async fn serve_http<I>(
    io: TokioIo<I>,
    is_h2: bool,
    conn: Connection,
    shared: Arc<Shared>,
    protocols: &Protocols,
    watcher: Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = conn.peer;
    let service =
        service_fn(move |request| pipeline::handle(shared.clone(), conn.clone(), request));
    let result = if is_h2 {
        watcher
            .watch(protocols.h2.serve_connection(io, service))
            .await
    } else {
        watcher
            .watch(protocols.h1.serve_connection(io, service))
            .await
    };
    if let Err(e) = result {
        tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
    }
}

/// Reads until the bytes show whether the client speaks HTTP/2 (the whole preface) or not
/// (anything that is not a prefix of it). Returns what was read, to be replayed.
async fn sniff(stream: &mut TcpStream) -> io::Result<(Vec<u8>, bool)> {
    let mut prefix = Vec::with_capacity(H2_PREFACE.len());
    let mut chunk = [0u8; 64];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        prefix.extend_from_slice(&chunk[..n]);
        let shared_len = prefix.len().min(H2_PREFACE.len());
        if prefix[..shared_len] != H2_PREFACE[..shared_len] {
            return Ok((prefix, false));
        }
        if prefix.len() >= H2_PREFACE.len() {
            return Ok((prefix, true));
        }
    }
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

    async fn sniffed(bytes: &'static [u8]) -> io::Result<(Vec<u8>, bool)> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut client = TcpStream::connect(addr).await.unwrap();
            client.write_all(bytes).await.unwrap();
        });
        let (mut stream, _) = listener.accept().await.unwrap();
        sniff(&mut stream).await
    }

    #[tokio::test]
    async fn tells_http2_from_http1_and_keeps_the_bytes() {
        let (prefix, h2) = sniffed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        assert!(!h2);
        assert!(prefix.starts_with(b"G"));
        let (prefix, h2) = sniffed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0")
            .await
            .unwrap();
        assert!(h2);
        assert!(prefix.starts_with(H2_PREFACE));
        assert!(
            sniffed(b"PRI * HT").await.is_err(),
            "half a preface then EOF"
        );
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
