//! HTTPS: certificates per custom domain chosen by SNI, TLS policies, mutual TLS.
//!
//! - [`certificates`] builds one rustls `ServerConfig` per custom domain of the tables being
//!   served (its certificate, its TLS policy, its client truststore); they are rebuilt with
//!   every table, so a rotated Secret serves new connections at once while established ones
//!   keep the config they were accepted with.
//! - [`default_cert`] is the certificate for connections whose SNI names no custom domain,
//!   read from files and re-read when they change.
//! - [`accept`] reads a connection's ClientHello, picks the config by SNI, finishes the
//!   handshake and checks the client certificate.
//! - [`client_cert`] verifies client certificates after the handshake, so an untrusted one gets
//!   Amazon API Gateway's 403 instead of a TLS alert, and reads what integrations receive of it.
//!
//! The crypto provider is *ring*: it is already the provider of the proxy's outbound client and
//! the controller, it builds without cmake or NASM, and its AES-GCM and ChaCha20-Poly1305 are
//! the assembly implementations BoringSSL uses. Every suite rustls offers is AEAD, which is
//! what the `TLS_1_2` policy asks for.

pub mod accept;
pub mod certificates;
pub mod client_cert;
pub mod default_cert;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

pub use accept::{TlsSession, handshake};
pub use certificates::{Certificates, DomainTls};
pub use client_cert::{ClientCert, ClientCertCheck};
pub use default_cert::DefaultCertificate;

/// What a certificate or truststore could not be used for. The underlying error is part of the
/// message, not a separate cause: printed as a chain, it would be said twice.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what} holds no PEM certificate")]
    NoCertificate { what: String },
    #[error("{what} holds no PEM private key")]
    NoPrivateKey { what: String },
    #[error("{what}: {error}")]
    Rustls { what: String, error: rustls::Error },
    #[error("truststore of {what}: {message}")]
    Truststore { what: String, message: String },
    #[error("reading {path}: {error}")]
    Read { path: String, error: std::io::Error },
}

/// The provider every TLS config of the proxy is built with.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_is_said_once_when_printed_with_its_causes() {
        let error = TlsError::Read {
            path: "/etc/tls/tls.crt".into(),
            error: std::io::Error::new(std::io::ErrorKind::NotFound, "No such file"),
        };
        let chain = format!("{:#}", anyhow::Error::new(error));
        assert_eq!(chain, "reading /etc/tls/tls.crt: No such file");
    }
}
