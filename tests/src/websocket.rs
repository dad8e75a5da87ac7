//! WebSocket ends for the tests, on tungstenite (an implementation independent of the proxy):
//! an echo server that notes the handshakes it accepts, and an HTTP/2 client (RFC 8441's
//! extended CONNECT, over hyper's HTTP/2 client).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures::{SinkExt, StreamExt};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::Role;

/// A handshake a backend accepted: its target and headers.
#[derive(Clone)]
pub struct Handshake {
    pub target: String,
    pub headers: http::HeaderMap,
}

/// A WebSocket server that echoes every message, and the handshakes it accepted and the
/// close codes it received.
pub struct EchoServer {
    pub addr: SocketAddr,
    pub handshakes: Arc<Mutex<Vec<Handshake>>>,
    /// The code of each close frame received (1005 for one without a code).
    pub closes: Arc<Mutex<Vec<u16>>>,
}

impl EchoServer {
    /// Notes the handshake, and accepts it (tungstenite's callback, whose error is its own).
    #[allow(clippy::result_large_err)]
    fn record(
        seen: &Mutex<Vec<Handshake>>,
        request: &Request,
        response: Response,
    ) -> Result<Response, ErrorResponse> {
        seen.lock().unwrap().push(Handshake {
            target: request.uri().to_string(),
            headers: request.headers().clone(),
        });
        Ok(response)
    }

    #[allow(clippy::result_large_err)] // the handshake callback's type is tungstenite's
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handshakes = Arc::new(Mutex::new(Vec::new()));
        let seen = handshakes.clone();
        let closes = Arc::new(Mutex::new(Vec::new()));
        let closed = closes.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (seen, closed) = (seen.clone(), closed.clone());
                tokio::spawn(async move {
                    let record = |request: &Request, response: Response| {
                        Self::record(&seen, request, response)
                    };
                    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, record).await
                    else {
                        return;
                    };
                    while let Some(Ok(message)) = ws.next().await {
                        if let Message::Close(frame) = &message {
                            let code = frame.as_ref().map_or(1005, |f| u16::from(f.code));
                            closed.lock().unwrap().push(code);
                            break;
                        }
                        if ws.send(message).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            handshakes,
            closes,
        }
    }

    /// The server's `http://` URL for `path`, as an HTTP integration names it.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// Opens a WebSocket over HTTP/2 (RFC 8441's extended CONNECT) on a prior-knowledge h2c
/// connection to `addr`: the response head, and the stream as a WebSocket once it is 200.
pub async fn h2_websocket(addr: SocketAddr, path: &str) -> (http::StatusCode, Option<H2WebSocket>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    h2_websocket_over(tcp, &format!("http://{addr}{path}")).await
}

/// A WebSocket over an HTTP/2 stream.
pub type H2WebSocket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// [`h2_websocket`] on a connection already made (a TLS one that chose `h2`), for `url`.
pub async fn h2_websocket_over<I>(io: I, url: &str) -> (http::StatusCode, Option<H2WebSocket>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut request = http::Request::builder()
        .method(http::Method::CONNECT)
        .version(http::Version::HTTP_2)
        .uri(url)
        .header("sec-websocket-version", "13")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    request
        .extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    // The server's SETTINGS (which allow extended CONNECT) arrive before the first request
    // can be sent.
    sender.ready().await.unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    if status != http::StatusCode::OK {
        return (status, None);
    }
    let upgraded = hyper::upgrade::on(response).await.unwrap();
    let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
    (status, Some(ws))
}
