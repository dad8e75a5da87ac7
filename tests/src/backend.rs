//! Real HTTP backends on 127.0.0.1: each answers every request with JSON describing what it
//! received (method, path, query, headers, body or `bodyError`, HTTP version, and which
//! accepted connection it came on), optionally after a delay or with a fixed status. One variant speaks HTTP/2
//! over TLS only (ALPN `h2`), with a certificate from a throwaway CA.
//!
//! Each backend runs its own tokio runtime on a thread of its own, so tests can be plain
//! `#[test]`s or `#[tokio::test]`s alike; dropping the backend stops it.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// How a backend behaves.
#[derive(Clone, Debug)]
pub struct BackendOptions {
    /// Reported as `server` in every answer, to tell backends apart.
    pub name: String,
    /// Wait this long before answering each request.
    pub delay: Duration,
    /// The status of every answer.
    pub status: u16,
    /// HTTP/2 over TLS (ALPN `h2` only) instead of plain HTTP/1.1.
    pub tls_h2: bool,
    /// Hold every answer until [`Backend::release`] is called.
    pub gated: bool,
}

impl Default for BackendOptions {
    fn default() -> Self {
        Self {
            name: "echo".into(),
            delay: Duration::ZERO,
            status: 200,
            tls_h2: false,
            gated: false,
        }
    }
}

/// A request as the backend received it.
#[derive(Clone, Debug)]
pub struct Received {
    /// When its head arrived.
    pub at: Instant,
    /// The JSON the backend answers with (see [`Backend`]).
    pub echo: Value,
}

/// A running backend.
pub struct Backend {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    gate: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Holds the CA certificate file of a TLS backend.
    ca_dir: Option<tempfile::TempDir>,
}

impl Backend {
    /// A plain HTTP/1.1 echo backend.
    pub fn echo() -> Backend {
        Self::start(BackendOptions::default())
    }

    /// An echo backend with a name of its own.
    pub fn named(name: &str) -> Backend {
        Self::start(BackendOptions {
            name: name.into(),
            ..BackendOptions::default()
        })
    }

    /// An echo backend that waits `delay` before each answer.
    pub fn delayed(delay: Duration) -> Backend {
        Self::start(BackendOptions {
            delay,
            ..BackendOptions::default()
        })
    }

    /// An echo backend that holds every answer until [`Backend::release`].
    pub fn gated() -> Backend {
        Self::start(BackendOptions {
            gated: true,
            ..BackendOptions::default()
        })
    }

    /// An HTTP/2-over-TLS echo backend; pass [`Backend::ca_file`] to the proxy.
    pub fn tls_h2() -> Backend {
        Self::start(BackendOptions {
            name: "h2".into(),
            tls_h2: true,
            ..BackendOptions::default()
        })
    }

    pub fn start(options: BackendOptions) -> Backend {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a backend");
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let (tls, ca_dir) = if options.tls_h2 {
            let (config, dir) = tls_config();
            (
                Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
                Some(dir),
            )
        } else {
            (None, None)
        };
        let connections = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let (gate, gate_rx) = tokio::sync::watch::channel(!options.gated);
        let state = State {
            gate: gate_rx,
            options: Arc::new(options),
            connections: connections.clone(),
            received: received.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("backend-{addr}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("backend runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(std_listener).expect("tokio listener");
                    tokio::select! {
                        () = accept_loop(listener, state, tls) => {}
                        _ = stop_rx => {}
                    }
                });
                // Drop open connections and sleeping handlers without waiting for them.
                runtime.shutdown_background();
            })
            .expect("backend thread");
        Backend {
            addr,
            connections,
            received,
            stop: Some(stop_tx),
            gate,
            thread: Some(thread),
            ca_dir,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT{path}` (`https://` for the TLS backend).
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.ca_dir.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}{path}", self.addr)
    }

    /// Lets a gated backend answer: every held request at once, and every later one at once.
    pub fn release(&self) {
        self.gate.send_replace(true);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Requests received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The PEM file of the CA that signed a TLS backend's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.ca_dir
            .as_ref()
            .map(|d| d.path().join("ca.pem"))
            .expect("only a TLS backend has a CA")
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[derive(Clone)]
struct State {
    options: Arc<BackendOptions>,
    gate: tokio::sync::watch::Receiver<bool>,
    connections: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<Received>>>,
}

async fn accept_loop(listener: TcpListener, state: State, tls: Option<tokio_rustls::TlsAcceptor>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = state.connections.fetch_add(1, Ordering::SeqCst) + 1;
        let state = state.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(answer(&state, connection, request).await) }
            });
            match tls {
                None => {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
                Some(acceptor) => {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
            }
        });
    }
}

async fn answer(
    state: &State,
    connection: usize,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let at = Instant::now();
    let (parts, body) = request.into_parts();
    // A body that fails on the way (the proxy gave up on its client) is reported as such.
    let (body, body_error) = match body.collect().await {
        Ok(b) => (b.to_bytes(), None),
        Err(e) => (Bytes::new(), Some(e.to_string())),
    };
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &parts.headers {
        headers
            .entry(name.as_str().to_string())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let echo = json!({
        "server": state.options.name,
        "connection": connection,
        "version": format!("{:?}", parts.version),
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query().unwrap_or(""),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
        "bodyError": body_error,
    });
    state.received.lock().unwrap().push(Received {
        at,
        echo: echo.clone(),
    });
    let _ = state.gate.clone().wait_for(|open| *open).await;
    if !state.options.delay.is_zero() {
        tokio::time::sleep(state.options.delay).await;
    }
    let mut response = Response::new(Full::new(Bytes::from(echo.to_string())));
    *response.status_mut() = StatusCode::from_u16(state.options.status).expect("valid status");
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// A server config for `127.0.0.1` and `localhost` signed by a new CA, ALPN `h2` only, and the
/// folder holding the CA's PEM as `ca.pem`.
pub(crate) fn tls_config() -> (rustls::ServerConfig, tempfile::TempDir) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Tollgate test CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");

    let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
    let leaf_params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("leaf params");
    let leaf = leaf_params
        .signed_by(&leaf_key, &ca, &ca_key)
        .expect("leaf certificate");

    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("writing ca.pem");

    let key =
        rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).expect("leaf key DER");
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone()], key)
    .expect("server certificate");
    config.alpn_protocols = vec![b"h2".to_vec()];
    (config, dir)
}

/// A backend that speaks raw bytes, to misbehave as real ones sometimes do (stall mid-body,
/// close early, read slowly): each accepted connection is handed to `serve` on a thread of its
/// own. Dropping it stops accepting; connections already handed over run to their end.
pub struct RawBackend {
    addr: SocketAddr,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl RawBackend {
    pub fn start(serve: impl Fn(std::net::TcpStream) + Send + Sync + 'static) -> RawBackend {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a backend");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let serve = Arc::new(serve);
        std::thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        let serve = serve.clone();
                        std::thread::spawn(move || serve(stream));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        RawBackend { addr, stop }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Reads a request head (through the blank line) from a raw connection; returns it and any
/// body bytes read with it.
pub fn read_head(stream: &mut impl std::io::Read) -> std::io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
