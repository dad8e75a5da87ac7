//! TLS for the HTTPS tests: a throwaway CA issuing server and client certificates (rcgen),
//! the Secrets that carry them, and a rustls client that reports what its handshake got
//! (leaf certificate, protocol version, ALPN) and speaks HTTP/1.1 or HTTP/2 over it.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ProtocolVersion, RootCertStore, SupportedProtocolVersion};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::client::Response;

/// A certificate authority that lives as long as the test.
pub struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
    /// Its certificate, PEM: what clients (or a truststore) trust.
    pub pem: String,
}

/// A certificate and its key.
#[derive(Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

impl Ca {
    pub fn new(common_name: &str) -> Ca {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca {
            pem: cert.pem(),
            cert,
            key,
        }
    }

    /// A server certificate for DNS names (`*.example.com` allowed), valid until the year
    /// 4096 (rcgen's default).
    pub fn server(&self, names: &[&str]) -> Issued {
        self.issue(server_params(names))
    }

    /// As [`server`](Self::server), expiring at midnight UTC on a day (year, month, day).
    pub fn server_expiring(&self, names: &[&str], (year, month, day): (i32, u8, u8)) -> Issued {
        let mut params = server_params(names);
        params.not_after = rcgen::date_time_ymd(year, month, day);
        self.issue(params)
    }

    /// A client certificate with this subject (`CN=..., O=...`).
    pub fn client(&self, common_name: &str, organization: &str) -> Issued {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, organization);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params)
    }

    fn issue(&self, params: rcgen::CertificateParams) -> Issued {
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("leaf certificate");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

fn server_params(names: &[&str]) -> rcgen::CertificateParams {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("server params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, names[0]);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params
}

/// A `kubernetes.io/tls` Secret in `default`.
pub fn tls_secret(name: &str, issued: &Issued) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "default"},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": issued.cert_pem, "tls.key": issued.key_pem},
    })
}

/// A truststore Secret (`ca.crt`) in `default`.
pub fn truststore_secret(name: &str, ca_pem: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "default"},
        "type": "tollgate.dev/truststore",
        "stringData": {"ca.crt": ca_pem},
    })
}

/// What a handshake gave the client.
#[derive(Debug)]
pub struct Handshake {
    /// The server's leaf certificate, DER.
    pub leaf: Vec<u8>,
    pub version: ProtocolVersion,
    pub alpn: Option<Vec<u8>>,
}

/// A rustls client trusting the given CAs.
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
}

impl TlsClient {
    /// TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`, no client certificate.
    pub fn trusting(ca_pems: &[&str]) -> TlsClient {
        Self::build(
            ca_pems,
            None,
            &[&rustls::version::TLS13, &rustls::version::TLS12],
            true,
        )
    }

    /// TLS 1.2 and 1.3, ALPN `http/1.1` only (as a WebSocket client offers).
    pub fn http1(ca_pems: &[&str]) -> TlsClient {
        Self::build(
            ca_pems,
            None,
            &[&rustls::version::TLS13, &rustls::version::TLS12],
            false,
        )
    }

    /// Only TLS 1.2.
    pub fn tls12_only(ca_pems: &[&str]) -> TlsClient {
        Self::build(ca_pems, None, &[&rustls::version::TLS12], true)
    }

    /// Presenting a client certificate; HTTP/1.1 only.
    pub fn with_client_cert(ca_pems: &[&str], client: &Issued) -> TlsClient {
        Self::build(
            ca_pems,
            Some(client),
            &[&rustls::version::TLS13, &rustls::version::TLS12],
            false,
        )
    }

    fn build(
        ca_pems: &[&str],
        client: Option<&Issued>,
        versions: &[&'static SupportedProtocolVersion],
        h2: bool,
    ) -> TlsClient {
        let mut roots = RootCertStore::empty();
        for pem in ca_pems {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                roots.add(cert.expect("CA PEM")).expect("CA certificate");
            }
        }
        let builder =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(versions)
                .expect("versions")
                .with_root_certificates(roots);
        let mut config = match client {
            None => builder.with_no_client_auth(),
            Some(issued) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from(issued.der.clone())],
                    PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).expect("client key"),
                )
                .expect("client certificate"),
        };
        config.alpn_protocols = if h2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        TlsClient {
            config: Arc::new(config),
        }
    }

    /// Connects and completes the handshake, sending `server_name` as SNI (and verifying the
    /// certificate against it).
    pub async fn connect(
        &self,
        addr: SocketAddr,
        server_name: &str,
    ) -> Result<(TlsStream<TcpStream>, Handshake), String> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let name = ServerName::try_from(server_name.to_string()).map_err(|e| e.to_string())?;
        let stream = TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let (_, conn) = stream.get_ref();
        let handshake = Handshake {
            leaf: conn
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.to_vec())
                .unwrap_or_default(),
            version: conn.protocol_version().expect("negotiated"),
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        };
        Ok((stream, handshake))
    }

    /// One request on a new connection (HTTP/2 when ALPN chose it), reading the answer whole.
    pub async fn request(
        &self,
        addr: SocketAddr,
        server_name: &str,
        request: http::Request<Bytes>,
    ) -> Result<(Response, Handshake), String> {
        let (stream, handshake) = self.connect(addr, server_name).await?;
        let mut sender = Sender::over(stream, handshake.alpn.as_deref() == Some(b"h2")).await?;
        let response = sender.send(request).await?;
        Ok((response, handshake))
    }

    /// `GET https://{host}{path}` over a new connection with SNI `server_name`.
    pub async fn get(
        &self,
        addr: SocketAddr,
        server_name: &str,
        host: &str,
        path: &str,
    ) -> Result<(Response, Handshake), String> {
        self.request(addr, server_name, get(host, path)).await
    }
}

/// A GET request for `host` and `path`.
pub fn get(host: &str, path: &str) -> http::Request<Bytes> {
    http::Request::get(format!("https://{host}{path}"))
        .header("host", host)
        .body(Bytes::new())
        .expect("request")
}

/// Requests over one established connection (keep-alive or HTTP/2).
pub enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    pub async fn over(stream: TlsStream<TcpStream>, h2: bool) -> Result<Sender, String> {
        let io = TokioIo::new(stream);
        if h2 {
            let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| format!("h2 handshake: {e}"))?;
            tokio::spawn(conn);
            Ok(Sender::H2(sender))
        } else {
            let (sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| format!("http1 handshake: {e}"))?;
            tokio::spawn(conn);
            Ok(Sender::H1(sender))
        }
    }

    pub async fn send(&mut self, request: http::Request<Bytes>) -> Result<Response, String> {
        let (mut parts, body) = request.into_parts();
        let request = match self {
            Sender::H1(_) => {
                // Origin form (`GET /path`), as browsers and curl send it; the host is a header.
                let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                parts.uri = path.parse().expect("origin-form URI");
                http::Request::from_parts(parts, Full::new(body))
            }
            Sender::H2(_) => {
                // HTTP/2 carries the host as :authority.
                parts.headers.remove("host");
                http::Request::from_parts(parts, Full::new(body))
            }
        };
        let response = match self {
            Sender::H1(s) => s.send_request(request).await,
            Sender::H2(s) => s.send_request(request).await,
        }
        .map_err(|e| format!("request: {e}"))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok(Response {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }
}

/// A default certificate for a standalone proxy's TLS listener, written to files, and a free
/// address for the listener.
pub struct DefaultCertificate {
    _dir: tempfile::TempDir,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    pub listen: std::net::SocketAddr,
}

impl DefaultCertificate {
    pub fn write(issued: &Issued) -> Self {
        let dir = tempfile::tempdir().expect("a folder for the certificate");
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        std::fs::write(&cert, &issued.cert_pem).expect("write the certificate");
        std::fs::write(&key, &issued.key_pem).expect("write the key");
        let listen = format!("127.0.0.1:{}", crate::proxy::free_port())
            .parse()
            .expect("an address");
        Self {
            _dir: dir,
            cert,
            key,
            listen,
        }
    }

    /// `--tls-listen`, `--tls-default-certificate` and `--tls-default-key` for it.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--tls-listen".into(),
            self.listen.to_string(),
            "--tls-default-certificate".into(),
            self.cert.display().to_string(),
            "--tls-default-key".into(),
            self.key.display().to_string(),
        ]
    }
}
