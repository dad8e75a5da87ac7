//! HTTP/1.1 connections to plain `http://` backends, driven by the request that uses them:
//! no connection task, no channel between tasks. While a request waits for its response
//! head, its task polls the connection (which writes the request and its body as they come,
//! then reads the head); the response body ([`Driven`]) then owns the connection and polls
//! it alongside the body. When the body ends and the connection can take another request,
//! it goes back to the worker's pool ([`super::pool`]); a connection whose exchange
//! failed, that the backend closes (`Connection: close`), or that was upgraded, is dropped.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{Connection, SendRequest, handshake};
use hyper::header::HeaderValue;
use hyper::http::uri::Authority;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::pool::{self, Limits};
use crate::body::Body;

/// How long connecting to a backend may take (as hyper-util's connector was set).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// TCP keep-alive on backend connections (as hyper-util's connector was set).
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Why no connection to a backend could be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connecting to {host}")]
    Io {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("connecting to {0}: no connection within {CONNECT_TIMEOUT:?}")]
    Timeout(String),
    #[error("connecting to {host}")]
    Handshake {
        host: String,
        #[source]
        source: hyper::Error,
    },
}

/// One HTTP/1.1 connection: the handle requests are sent on, and the connection itself,
/// which makes progress only when polled. The connection (its buffers and state, hundreds of
/// bytes) is boxed once when made, so that handing it between the pool, the request and the
/// response body moves a pointer, not the whole.
pub struct Http1 {
    sender: SendRequest<Body>,
    conn: Box<Connection<TokioIo<TcpStream>, Body>>,
    /// The `Host` its requests carry, made once.
    host_header: HeaderValue,
}

impl Http1 {
    /// Connects to `host` (port 80 unless it names one), trying each address it resolves to;
    /// its requests will carry `host_header`.
    pub async fn connect(host: &Authority, host_header: HeaderValue) -> Result<Self, ConnectError> {
        let name = host.host();
        let name = name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(name);
        let port = host.port_u16().unwrap_or(80);
        let io_error = |source| ConnectError::Io {
            host: host.to_string(),
            source,
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((name, port)))
            .await
            .map_err(|_| ConnectError::Timeout(host.to_string()))?
            .map_err(io_error)?;
        stream.set_nodelay(true).map_err(io_error)?;
        let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE);
        socket2::SockRef::from(&stream)
            .set_tcp_keepalive(&keepalive)
            .map_err(io_error)?;
        let (sender, conn) =
            handshake(TokioIo::new(stream))
                .await
                .map_err(|source| ConnectError::Handshake {
                    host: host.to_string(),
                    source,
                })?;
        Ok(Self {
            sender,
            conn: Box::new(conn),
            host_header,
        })
    }

    pub fn host_header(&self) -> &HeaderValue {
        &self.host_header
    }

    /// Hands the connection to a task of its own that can upgrade it, for a request that
    /// asks to switch protocols (a WebSocket handshake): such a connection never goes back
    /// to a pool. After a 101, `hyper::upgrade::on` on the response gives the connection.
    pub fn upgradeable(self) -> SendRequest<Body> {
        let conn = *self.conn;
        tokio::spawn(async move {
            if let Err(error) = conn.with_upgrades().await {
                tracing::debug!(error = %error, "an upgradeable backend connection failed");
            }
        });
        self.sender
    }

    /// Polls the connection: `Ready` once it is over (closed, failed or upgraded).
    fn poll_conn(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut *self.conn).poll(cx).map(|_| ())
    }

    /// Whether the connection can take a request now: polled once, so that a backend that
    /// closed it is noticed.
    pub fn is_open(&mut self, cx: &mut Context<'_>) -> bool {
        self.poll_conn(cx).is_pending() && self.sender.is_ready()
    }
}

/// Why an exchange gave no response head.
// Returned once per failed exchange, never stored: the size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Failure {
    /// Nothing of the request was written: it comes back, to be sent elsewhere.
    Unsent(hyper::Error, Request<Body>),
    /// The exchange broke after the request (or part of it) was handed to the connection.
    Failed(hyper::Error),
}

/// Sends `request` on `conn`, polling the connection in this task until the response head
/// arrives (the request body is written meanwhile). The response body drives the connection
/// from then on, and returns it to the pool for `host` when it ends cleanly.
pub async fn exchange(
    conn: Http1,
    request: Request<Body>,
    host: &Authority,
    limits: Limits,
) -> Result<Response<Driven>, Failure> {
    let Http1 {
        mut sender,
        conn,
        host_header,
    } = conn;
    // Sending only queues the request: the connection writes it when polled.
    let mut response = std::pin::pin!(sender.try_send_request(request));
    // Written after the worker's other ready tasks have run (and its I/O been polled), not at
    // once: on a busy worker the requests that became ready together reach their backends
    // together, and a backend is woken once for several, as when a connection task of its
    // own wrote them. Writing at once measured 20-25% more CPU per request at 50 connections
    // (bench/RESULTS.md, issue 13: the upstream layer).
    tokio::task::yield_now().await;
    let mut conn = Some(Http1 {
        sender,
        conn,
        host_header,
    });
    let head = poll_fn(|cx| {
        if let Some(c) = conn.as_mut()
            && c.poll_conn(cx).is_ready()
        {
            conn = None;
        }
        let head = ready!(response.as_mut().poll(cx));
        // A response without a body (204, 304, a HEAD, Content-Length: 0) is not read: its
        // connection goes back now.
        if let Ok(r) = &head
            && r.body().is_end_stream()
        {
            release(conn.take(), host, limits, cx);
        }
        Poll::Ready(head)
    })
    .await;
    match head {
        Ok(response) => Ok(response.map(|body| Driven {
            body,
            conn,
            host: host.clone(),
            limits,
        })),
        Err(mut e) => match e.take_message() {
            Some(request) => Err(Failure::Unsent(e.into_error(), request)),
            None => Err(Failure::Failed(e.into_error())),
        },
    }
}

/// Returns a connection to the pool if it can take another request; drops it otherwise.
fn release(conn: Option<Http1>, host: &Authority, limits: Limits, cx: &mut Context<'_>) {
    let Some(mut conn) = conn else {
        return;
    };
    // The connection usually turns idle in the poll that read the body's end; once more
    // otherwise, to let it.
    if conn.sender.is_ready() || conn.is_open(cx) {
        pool::checkin(host, conn, limits);
    }
}

pin_project_lite::pin_project! {
    /// A response body that drives its connection: each poll polls the connection (which
    /// reads the body and writes what is left of the request's), then the body. At the
    /// body's end the connection goes back to the pool, if it can take another request.
    pub struct Driven {
        #[pin]
        body: Incoming,
        conn: Option<Http1>,
        host: Authority,
        limits: Limits,
    }
}

impl HttpBody for Driven {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let mut this = self.project();
        if let Some(c) = this.conn.as_mut()
            && c.poll_conn(cx).is_ready()
        {
            *this.conn = None;
        }
        let frame = ready!(this.body.as_mut().poll_frame(cx));
        match &frame {
            // The reader may stop at `is_end_stream` without asking for the end: the
            // connection goes back with the last frame.
            Some(Ok(_)) if !this.body.is_end_stream() => {}
            Some(Err(_)) => *this.conn = None,
            _ => release(this.conn.take(), this.host, *this.limits, cx),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
