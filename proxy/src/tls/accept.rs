//! One TLS handshake: the ClientHello's SNI picks the domain's config (or the default
//! certificate's), the handshake completes, and a client certificate is checked.

use std::io;
use std::sync::Arc;

use rustls::server::{Acceptor, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

use super::certificates::{ALPN, DomainTls};
use super::client_cert::{self, ClientCertCheck};
use super::default_cert::DefaultCertificate;

/// What a TLS connection's requests are checked against.
#[derive(Debug)]
pub struct TlsSession {
    /// The custom domain SNI chose; `None` when the default certificate served.
    pub domain: Option<Arc<DomainTls>>,
    /// The client certificate's check, on domains with mutual TLS.
    pub client_cert: Option<ClientCertCheck>,
    /// HTTP/2 was chosen by ALPN.
    pub h2: bool,
}

impl TlsSession {
    /// Whether a domain's requests may use this connection: the handshake must have been
    /// made under that domain's own config when it asks more than the default (mutual TLS or
    /// TLS 1.3 only), so a client cannot pass one domain's handshake and then name another in
    /// `Host`.
    pub fn negotiated_for(&self, hostname: &str) -> bool {
        self.domain.as_ref().is_some_and(|d| d.hostname == hostname)
    }
}

/// Why a handshake did not complete.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("no certificate for server name {0:?}")]
    NoCertificate(Option<String>),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Runs the handshake on an accepted connection.
pub async fn handshake(
    stream: TcpStream,
    certificates: impl FnOnce(&str) -> Option<Arc<DomainTls>>,
    default: Option<&DefaultCertificate>,
) -> Result<(TlsStream<TcpStream>, TlsSession), HandshakeError> {
    let start = LazyConfigAcceptor::new(Acceptor::default(), stream).await?;
    let server_name = start
        .client_hello()
        .server_name()
        .map(str::to_ascii_lowercase);
    let domain = server_name.as_deref().and_then(certificates);
    let config: Arc<ServerConfig> = match &domain {
        Some(d) => d.config.clone(),
        None => default
            .and_then(DefaultCertificate::config)
            .ok_or(HandshakeError::NoCertificate(server_name))?,
    };
    let stream = start.into_stream(config).await?;
    let (_, conn) = stream.get_ref();
    let client_cert = domain
        .as_ref()
        .and_then(|d| d.client_verifier.as_deref())
        .map(|verifier| client_cert::check(verifier, conn.peer_certificates().unwrap_or(&[])));
    let session = TlsSession {
        h2: conn.alpn_protocol() == Some(ALPN[0]),
        client_cert,
        domain,
    };
    Ok((stream, session))
}
