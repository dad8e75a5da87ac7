//! The real `tollgate-controller` binary against a [`ControlPlane`], under the control plane's
//! watchdog (it stops when the test process exits, however that happens), with its snapshot
//! service on a free loopback port and its CA Secret in [`CONTROLLER_NAMESPACE`]. And a client
//! for the snapshot service ([`SnapshotClient`]) trusting that CA, speaking HTTP/2.
//!
//! Needs `cargo build --workspace --bins` first (the controller is found next to the tests).

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use tollgate_crds::snapshot::SnapshotFrame;

use crate::control_plane::{ControlPlane, GRACE_SECONDS, WATCHDOG, output_text};

/// The controller's own namespace in tests (created if missing).
pub const CONTROLLER_NAMESPACE: &str = "tollgate-system";
/// The Secret holding the snapshot CA.
pub const CA_SECRET: &str = "tollgate-snapshot-ca";

/// How long the controller may take to start listening.
const START_DEADLINE: Duration = Duration::from_secs(60);

pub struct Controller {
    log: PathBuf,
    snapshot_addr: SocketAddr,
    metrics_addr: SocketAddr,
    /// Closing it stops the controller ([`Controller::stop`]).
    stdin: Mutex<Option<ChildStdin>>,
    /// Never waited for: it ends with the test process.
    watchdog: Mutex<Child>,
}

impl Controller {
    /// Starts the controller (watching every namespace) with `extra_args`, and waits until its
    /// snapshot service accepts connections; panics with its log when it does not.
    pub fn start(cp: &ControlPlane, extra_args: &[&str]) -> Controller {
        Self::start_on(cp, crate::proxy::free_port(), extra_args)
    }

    /// As [`Controller::start`], with extra environment variables (`POD_NAME`, ...). Unless
    /// `extra_args` names `--metrics-listen`, the metrics endpoint gets a free loopback port.
    pub fn start_with_env(
        cp: &ControlPlane,
        extra_args: &[&str],
        envs: &[(&str, &str)],
    ) -> Controller {
        Self::start_full(cp, crate::proxy::free_port(), extra_args, envs)
    }

    /// As [`start`](Self::start), with the snapshot service on a given port (to restart a
    /// controller where its proxies expect it).
    pub fn start_on(cp: &ControlPlane, port: u16, extra_args: &[&str]) -> Controller {
        Self::start_full(cp, port, extra_args, &[])
    }

    fn start_full(
        cp: &ControlPlane,
        port: u16,
        extra_args: &[&str],
        envs: &[(&str, &str)],
    ) -> Controller {
        let ns =
            format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {CONTROLLER_NAMESPACE}\n");
        // Tests of one binary start controllers at once: two applies of a namespace that does
        // not exist yet both try to create it, and one gets AlreadyExists. It exists then.
        let out = cp.kubectl_with_input(&["apply", "-f", "-"], &ns);
        let raced = String::from_utf8_lossy(&out.stderr).contains("AlreadyExists");
        assert!(
            out.status.success() || raced,
            "creating namespace {CONTROLLER_NAMESPACE}: {}",
            output_text(&out)
        );
        Self::spawn(
            cp.kubeconfig_path(),
            CONTROLLER_NAMESPACE,
            port,
            extra_args,
            envs,
        )
    }

    /// Starts the controller with another identity: `KUBECONFIG={kubeconfig}` (a
    /// ServiceAccount's token, say) and `--namespace {namespace}`, which must exist.
    pub fn start_with_kubeconfig(
        kubeconfig: &Path,
        namespace: &str,
        extra_args: &[&str],
        envs: &[(&str, &str)],
    ) -> Controller {
        Self::spawn(
            kubeconfig,
            namespace,
            crate::proxy::free_port(),
            extra_args,
            envs,
        )
    }

    fn spawn(
        kubeconfig: &Path,
        namespace: &str,
        port: u16,
        extra_args: &[&str],
        envs: &[(&str, &str)],
    ) -> Controller {
        let dir = tempfile::Builder::new()
            .prefix("tollgate-controller-")
            .tempdir()
            .expect("a temporary folder")
            .keep();
        let log = dir.join("controller.log");
        let file = File::create(&log).expect("creating the controller log");
        let file2 = file.try_clone().expect("duplicating a descriptor");
        let snapshot_addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let metrics_addr: SocketAddr = match extra_args
            .iter()
            .position(|a| *a == "--metrics-listen")
            .and_then(|i| extra_args.get(i + 1))
        {
            Some(addr) => addr.parse().expect("--metrics-listen is an address"),
            None => ([127, 0, 0, 1], crate::proxy::free_port()).into(),
        };
        let metrics_arg = metrics_addr.to_string();
        let metrics_args: &[&str] = if extra_args.contains(&"--metrics-listen") {
            &[]
        } else {
            &["--metrics-listen", &metrics_arg]
        };
        let binary = crate::proxy::binary_named("tollgate-controller");
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("tollgate-watchdog-controller")
            .arg(GRACE_SECONDS.to_string())
            // The watchdog removes the folder (and the log) once the controller is gone.
            .arg(&dir)
            .arg(&binary)
            .args(["--log-level", "info,tollgate_controller=debug"])
            .args(["--snapshot-listen", &snapshot_addr.to_string()])
            .args(["--namespace", namespace])
            .args(metrics_args)
            .args(extra_args)
            .envs(envs.iter().copied())
            .env("KUBECONFIG", kubeconfig)
            .stdin(Stdio::piped())
            .stdout(file)
            .stderr(file2)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let stdin = child.stdin.take().expect("piped standard input");
        let controller = Controller {
            log,
            snapshot_addr,
            metrics_addr,
            stdin: Mutex::new(Some(stdin)),
            watchdog: Mutex::new(child),
        };
        let deadline = Instant::now() + START_DEADLINE;
        while TcpStream::connect_timeout(&snapshot_addr, Duration::from_millis(200)).is_err() {
            let exited = controller
                .watchdog
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .try_wait()
                .ok()
                .flatten();
            if let Some(status) = exited {
                panic!(
                    "the controller exited ({status}) before listening; log:\n{}",
                    controller.log_tail(60)
                );
            }
            assert!(
                Instant::now() < deadline,
                "the controller's snapshot service is not listening on {snapshot_addr} after {START_DEADLINE:?}; log:\n{}",
                controller.log_tail(60)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        controller
    }

    /// The last `lines` lines of the controller's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(lines).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// The whole log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The snapshot service's address (`127.0.0.1:port`).
    pub fn snapshot_addr(&self) -> SocketAddr {
        self.snapshot_addr
    }

    /// `https://127.0.0.1:port`
    pub fn snapshot_url(&self) -> String {
        format!("https://{}", self.snapshot_addr)
    }

    /// The metrics endpoint's address (`/metrics`, `/healthz`, `/readyz`; plain HTTP).
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// Stops the controller: its watchdog sends SIGTERM (SIGKILL after the grace), as on a
    /// pod deletion. Returns at once.
    pub fn stop(&self) {
        self.stdin
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }

    /// Stops the controller and waits until it has exited (SIGKILL comes after the grace).
    pub fn stop_and_wait(&self) {
        self.stop();
        let within = Duration::from_secs(GRACE_SECONDS + 10);
        let asked = Instant::now();
        while !self.has_exited() {
            assert!(
                asked.elapsed() < within,
                "the controller has not exited {within:?} after it was asked to stop"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the controller has exited.
    pub fn has_exited(&self) -> bool {
        self.watchdog
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .try_wait()
            .ok()
            .flatten()
            .is_some()
    }
}

/// A Route `name` of the quickstart's gateway `hello`: `GET {path}` answered by a mock with
/// `body`.
pub fn hello_mock_route(name: &str, path: &str, body: &str) -> String {
    format!(
        "apiVersion: tollgate.dev/v1alpha1\nkind: Route\nmetadata:\n  name: {name}\nspec:\n  gatewayRef:\n    name: hello\n  method: GET\n  path: \"{path}\"\n  integration:\n    mock:\n      statusCode: 200\n      body: \"{body}\"\n"
    )
}

/// The `status` of condition `type_` in a resource's `status.conditions`.
pub fn condition_status(obj: &serde_json::Value, type_: &str) -> Option<String> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .and_then(|c| c["status"].as_str().map(str::to_owned))
}

/// The snapshot CA certificate (PEM), as proxies get it: `ca.crt` of the CA Secret.
pub fn ca_pem(cp: &ControlPlane) -> String {
    let text = cp.kubectl_ok(&[
        "get",
        "secret",
        CA_SECRET,
        "-n",
        CONTROLLER_NAMESPACE,
        "-o",
        r"jsonpath={.data.ca\.crt}",
    ]);
    let der = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap_or_else(|e| panic!("ca.crt is not base64 ({e}): {text:?}"));
    String::from_utf8(der).expect("ca.crt is PEM text")
}

/// A ServiceAccount token for the snapshot service's audience, as the proxies' projected
/// tokens are (`kubectl create token --audience`), creating the ServiceAccount if missing.
pub fn service_account_token(cp: &ControlPlane, namespace: &str, account: &str) -> String {
    service_account_token_for(
        cp,
        namespace,
        account,
        tollgate_crds::snapshot::TOKEN_AUDIENCE,
    )
}

/// A ServiceAccount token for `audience`.
pub fn service_account_token_for(
    cp: &ControlPlane,
    namespace: &str,
    account: &str,
    audience: &str,
) -> String {
    let sa = format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {account}\n  namespace: {namespace}\n"
    );
    // The controller may be writing the same ServiceAccount (it is a fleet object): a
    // conflicting apply is fine once the account exists.
    let out = cp.kubectl_with_input(&["apply", "-f", "-"], &sa);
    let exists = || {
        cp.kubectl(&["get", "serviceaccount", account, "-n", namespace])
            .status
            .success()
    };
    assert!(
        out.status.success() || exists(),
        "creating ServiceAccount {namespace}/{account}: {}",
        output_text(&out)
    );
    cp.kubectl_ok(&[
        "create",
        "token",
        account,
        "-n",
        namespace,
        "--audience",
        audience,
    ])
    .trim()
    .to_owned()
}

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// An HTTP/2-only client of the snapshot service, trusting one CA.
pub struct SnapshotClient {
    base: String,
    inner: hyper_util::client::legacy::Client<Https, Full<Bytes>>,
}

impl SnapshotClient {
    pub fn new(base_url: &str, ca_pem: &str) -> SnapshotClient {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots
                .add(cert.expect("a PEM certificate"))
                .expect("a CA certificate");
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http2()
            .build();
        SnapshotClient {
            base: base_url.trim_end_matches('/').to_owned(),
            inner: hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                .http2_only(true)
                .build(https),
        }
    }

    /// Sends a request; `token` goes in `Authorization: Bearer`.
    pub async fn send(
        &self,
        method: &str,
        path_and_query: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> http::Response<Incoming> {
        let url = format!("{}{path_and_query}", self.base);
        let mut builder = http::Request::builder()
            .method(http::Method::from_bytes(method.as_bytes()).expect("a method"))
            .uri(&url);
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(Full::new(body.into())).expect("a request");
        tokio::time::timeout(Duration::from_secs(30), self.inner.request(request))
            .await
            .unwrap_or_else(|_| panic!("{method} {url}: no response within 30 s"))
            .unwrap_or_else(|e| panic!("{method} {url}: {e:?}"))
    }

    /// `GET /v1/subscribe?gateway={gateway}` as proxy `proxy_id`.
    pub async fn subscribe(
        &self,
        gateway: &str,
        token: Option<&str>,
        proxy_id: &str,
    ) -> http::Response<Incoming> {
        self.send(
            "GET",
            &format!("/v1/subscribe?gateway={gateway}"),
            token,
            &[("x-tollgate-proxy-id", proxy_id)],
            Bytes::new(),
        )
        .await
    }
}

/// The whole body of a (short) response, as text.
pub async fn body_text(response: http::Response<Incoming>) -> String {
    let body = tokio::time::timeout(Duration::from_secs(30), response.into_body().collect())
        .await
        .expect("a body within 30 s")
        .expect("a body")
        .to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

/// Reads newline-delimited [`SnapshotFrame`]s from a subscription's body.
pub struct FrameReader {
    body: Incoming,
    buffer: Vec<u8>,
}

impl FrameReader {
    pub fn new(response: http::Response<Incoming>) -> FrameReader {
        FrameReader {
            body: response.into_body(),
            buffer: Vec::new(),
        }
    }

    /// The next frame, or `None` when the stream ends; panics after `within`.
    pub async fn next(&mut self, within: Duration) -> Option<SnapshotFrame> {
        self.next_within(within)
            .await
            .unwrap_or_else(|| panic!("no frame within {within:?}"))
    }

    /// The next frame if one comes within `within` (`Some(None)`: the stream ended); `None`
    /// when none came in time. The stream stays usable either way.
    pub async fn next_within(&mut self, within: Duration) -> Option<Option<SnapshotFrame>> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                let frame = serde_json::from_slice(&line).unwrap_or_else(|e| {
                    panic!(
                        "not a SnapshotFrame ({e}): {}",
                        String::from_utf8_lossy(&line)
                    )
                });
                return Some(Some(frame));
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .ok()?;
            match frame {
                None => return Some(None),
                Some(Err(e)) => panic!("the subscription failed: {e}"),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

/// Proxies in fleet mode for one gateway, each with its own state folder; the folder holding
/// the snapshot CA and the token lives as long as they do.
pub struct Fleet {
    pub proxies: Vec<crate::proxy::Proxy>,
    _files: tempfile::TempDir,
}

/// Starts `count` proxies in fleet mode for `ns/gateway` against `controller`, authenticating
/// as the ServiceAccount `account` of `ns`.
pub fn start_fleet(
    controller: &Controller,
    ns: &crate::control_plane::Namespace,
    gateway: &str,
    account: &str,
    count: usize,
    extra_args: &[&str],
) -> Fleet {
    let cp = ns.control_plane();
    let files = tempfile::tempdir().expect("a temporary folder");
    let ca = files.path().join("ca.crt");
    std::fs::write(&ca, ca_pem(cp)).expect("write the CA");
    let token = files.path().join("token");
    std::fs::write(&token, service_account_token(cp, ns.name(), account)).expect("the token");
    let gateway = format!("{}/{gateway}", ns.name());
    let proxies = (0..count)
        .map(|i| {
            let state = files.path().join(format!("state-{i}"));
            std::fs::create_dir_all(&state).expect("a state folder");
            crate::proxy::Proxy::start_fleet(
                &controller.snapshot_url(),
                &gateway,
                &state,
                &token,
                &[&["--ca-file", ca.to_str().expect("UTF-8 path")], extra_args].concat(),
            )
        })
        .collect();
    Fleet {
        proxies,
        _files: files,
    }
}
