//! A fake controller for fleet-mode tests: a small hyper server (plain HTTP/1.1 or HTTP/2, or
//! HTTP/2 over TLS with a throwaway CA) on 127.0.0.1 that speaks the snapshot protocol of `tollgate_crds::snapshot` — `GET
//! /v1/subscribe?gateway=ns/name` streams the frames the test pushes (the current one at once,
//! then each new one), `POST /v1/ack` records ACKs — and refuses a wrong Bearer token with 401.
//! The tables are real: YAML resources compiled with `tollgate_crds` ([`table_of`]).
//!
//! It runs its own tokio runtime on a thread of its own; dropping it (or [`stop`]) closes the
//! listener and every open subscription at once, as a controller that dies.
//!
//! [`stop`]: FakeController::stop

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpSocket;
use tokio::sync::{mpsc, watch};
use tollgate_crds::compile::compile_str;
use tollgate_crds::snapshot::{ACK_PATH, Ack, PROXY_ID_HEADER, SUBSCRIBE_PATH, SnapshotFrame};
use tollgate_crds::table::{GatewayTable, ObjectKey};

type ResponseBody = BoxBody<Bytes, Infallible>;

/// The table `resources` compile to for `gateway` (in `default`); panics if the compiler
/// refuses the gateway.
pub fn table_of(resources: &[Value], gateway: &str) -> GatewayTable {
    let compiled = compile_str(&crate::config::to_yaml(resources), "test").expect("resources load");
    let key = ObjectKey::new("default", gateway);
    compiled
        .tables
        .get(&key)
        .cloned()
        .unwrap_or_else(|| panic!("no table for {key}: {:#?}", compiled.diagnostics))
}

/// What the controller saw of its subscribers.
struct State {
    token: String,
    /// `namespace/name` of the one gateway it knows (others: 404).
    gateway: String,
    frames: watch::Sender<Option<SnapshotFrame>>,
    acks: Mutex<Vec<Ack>>,
    /// Statuses of the subscriptions refused (401, 404, ...).
    refused: Mutex<Vec<u16>>,
    /// Proxy ids of the subscriptions accepted, in order, with their HTTP version.
    subscribers: Mutex<Vec<(String, http::Version)>>,
    open_streams: AtomicUsize,
}

pub struct FakeController {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Holds the CA certificate of a TLS controller.
    ca_dir: Option<tempfile::TempDir>,
}

impl FakeController {
    /// On a free port, for gateway `default/{gateway}`, accepting `Bearer {token}`.
    pub fn start(token: &str, gateway: &str) -> FakeController {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), token, gateway)
    }

    /// On `addr` (a controller restarted on its old port); retries the bind for a few seconds.
    pub fn start_on(addr: SocketAddr, token: &str, gateway: &str) -> FakeController {
        Self::launch(addr, token, gateway, false)
    }

    /// Over TLS (ALPN `h2` only, HTTP/2) with a certificate for 127.0.0.1 from a throwaway CA
    /// ([`ca_file`](Self::ca_file)), on a free port.
    pub fn start_tls(token: &str, gateway: &str) -> FakeController {
        Self::launch(SocketAddr::from(([127, 0, 0, 1], 0)), token, gateway, true)
    }

    fn launch(addr: SocketAddr, token: &str, gateway: &str, tls: bool) -> FakeController {
        let (acceptor, ca_dir) = if tls {
            let (config, dir) = crate::backend::tls_config();
            (
                Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
                Some(dir),
            )
        } else {
            (None, None)
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let std_listener = loop {
            match bind(addr) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("fake controller: binding {addr}: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("fake controller: binding {addr}: {e}"),
            }
        };
        let addr = std_listener.local_addr().unwrap();
        let state = Arc::new(State {
            token: token.to_string(),
            gateway: format!("default/{gateway}"),
            frames: watch::Sender::new(None),
            acks: Mutex::default(),
            refused: Mutex::default(),
            subscribers: Mutex::default(),
            open_streams: AtomicUsize::new(0),
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let served = state.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fake-controller-{addr}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("fake controller runtime");
                runtime.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(std_listener).expect("tokio listener");
                    tokio::select! {
                        () = accept_loop(listener, served, acceptor) => {}
                        _ = stop_rx => {}
                    }
                });
                // Drops every open connection at once, as a controller that dies.
                runtime.shutdown_background();
            })
            .expect("fake controller thread");
        FakeController {
            addr,
            state,
            stop: Some(stop_tx),
            thread: Some(thread),
            ca_dir,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (`https://` over TLS), for `--controller`.
    pub fn url(&self) -> String {
        let scheme = if self.ca_dir.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// The PEM file of the CA that signed a TLS controller's certificate, for `--ca-file`.
    pub fn ca_file(&self) -> std::path::PathBuf {
        self.ca_dir
            .as_ref()
            .expect("a TLS controller")
            .path()
            .join("ca.pem")
    }

    /// Makes `table` the current one: sent to every open subscription now, and first to every
    /// new one. The table is sent as it is (sealed or not).
    pub fn push(&self, table: GatewayTable, fleet_size: u32) {
        self.state
            .frames
            .send_replace(Some(SnapshotFrame { table, fleet_size }));
    }

    /// Every ACK and NACK received, in order.
    pub fn acks(&self) -> Vec<Ack> {
        self.state.acks.lock().unwrap().clone()
    }

    /// The first answer about `version`, if one came.
    pub fn ack_of(&self, version: &str) -> Option<Ack> {
        self.acks().into_iter().find(|a| a.version == version)
    }

    /// Statuses of the subscriptions refused so far.
    pub fn refused(&self) -> Vec<u16> {
        self.state.refused.lock().unwrap().clone()
    }

    /// Proxy ids of the subscriptions accepted so far.
    pub fn subscribers(&self) -> Vec<String> {
        self.subscriptions().into_iter().map(|(id, _)| id).collect()
    }

    /// Proxy ids of the subscriptions accepted so far, with the HTTP version each came over.
    pub fn subscriptions(&self) -> Vec<(String, http::Version)> {
        self.state.subscribers.lock().unwrap().clone()
    }

    /// Subscriptions open now.
    pub fn open_streams(&self) -> usize {
        self.state.open_streams.load(Ordering::SeqCst)
    }

    /// Stops at once: the listener closes and every subscription breaks.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for FakeController {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(128)?.into_std()?;
    Ok(listener)
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    state: Arc<State>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(answer(req, &state).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            match tls {
                None => {
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
                Some(acceptor) => {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let _ = builder
                        .http2_only()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
            }
        });
    }
}

async fn answer(req: Request<Incoming>, state: &Arc<State>) -> Response<ResponseBody> {
    let authorized = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t == state.token);
    let proxy_id = req
        .headers()
        .get(PROXY_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let path = req.uri().path().to_string();
    let refuse = |status: StatusCode, message: &str| {
        if path == SUBSCRIBE_PATH {
            state.refused.lock().unwrap().push(status.as_u16());
        }
        error(status, message)
    };
    if !authorized {
        return refuse(StatusCode::UNAUTHORIZED, "invalid token");
    }
    let Some(proxy_id) = proxy_id else {
        return refuse(StatusCode::BAD_REQUEST, "missing x-tollgate-proxy-id");
    };
    match (req.method(), path.as_str()) {
        (&Method::GET, SUBSCRIBE_PATH) => {
            let gateway = req
                .uri()
                .query()
                .unwrap_or_default()
                .split('&')
                .find_map(|kv| kv.strip_prefix("gateway="))
                .map(|g| g.replace("%2F", "/").replace("%2f", "/"));
            if gateway.as_deref() != Some(state.gateway.as_str()) {
                return refuse(StatusCode::NOT_FOUND, "unknown gateway");
            }
            let version = req.version();
            state.subscribers.lock().unwrap().push((proxy_id, version));
            subscribe(state.clone())
        }
        (&Method::POST, ACK_PATH) => {
            let Ok(body) = req.into_body().collect().await else {
                return error(StatusCode::BAD_REQUEST, "unreadable body");
            };
            match serde_json::from_slice::<Ack>(&body.to_bytes()) {
                Ok(ack) => {
                    state.acks.lock().unwrap().push(ack);
                    let mut response = Response::new(empty());
                    *response.status_mut() = StatusCode::NO_CONTENT;
                    response
                }
                Err(e) => error(StatusCode::BAD_REQUEST, &format!("not an Ack: {e}")),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "not found"),
    }
}

/// The frames as newline-delimited JSON: the current one, then each one pushed.
fn subscribe(state: Arc<State>) -> Response<ResponseBody> {
    let mut frames = state.frames.subscribe();
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        state.open_streams.fetch_add(1, Ordering::SeqCst);
        loop {
            let frame = frames.borrow_and_update().clone();
            if let Some(frame) = frame {
                let mut line = serde_json::to_vec(&frame).expect("frame JSON");
                line.push(b'\n');
                if tx.send(Bytes::from(line)).await.is_err() {
                    break;
                }
            }
            tokio::select! {
                changed = frames.changed() => if changed.is_err() { break },
                () = tx.closed() => break,
            }
        }
        state.open_streams.fetch_sub(1, Ordering::SeqCst);
    });
    let mut response = Response::new(ChannelBody { rx }.boxed());
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(tollgate_crds::snapshot::CONTENT_TYPE),
    );
    response
}

/// A streamed body fed from a channel; it ends when the sender goes.
struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

fn empty() -> ResponseBody {
    Full::new(Bytes::new()).boxed()
}

fn error(status: StatusCode, message: &str) -> Response<ResponseBody> {
    let body = serde_json::json!({ "message": message }).to_string();
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}
