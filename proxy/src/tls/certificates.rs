//! One rustls `ServerConfig` per custom domain, and the SNI lookup among them.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{RootCertStore, SupportedProtocolVersion};
use tollgate_crds::table::DomainTable;
use tollgate_crds::table::TlsPolicy;

use super::TlsError;
use super::client_cert::DeferredVerifier;

/// ALPN, in the server's order of preference (`http/1.0` too, served as HTTP/1, so a client
/// offering only it is not refused).
pub const ALPN: [&[u8]; 3] = [b"h2", b"http/1.1", b"http/1.0"];

/// A custom domain's TLS: what the handshake uses and what requests are checked against.
pub struct DomainTls {
    /// The domain as configured (`api.example.com`, `*.example.com`).
    pub hostname: String,
    pub config: Arc<ServerConfig>,
    /// When the leaf certificate expires (Unix time), for the metrics.
    pub not_after: Option<i64>,
    /// The truststore's verifier, run on the client's chain after the handshake; `None`
    /// without mutual TLS.
    pub client_verifier: Option<Arc<dyn ClientCertVerifier>>,
}

impl std::fmt::Debug for DomainTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DomainTls")
            .field("hostname", &self.hostname)
            .field("mutual_tls", &self.client_verifier.is_some())
            .finish_non_exhaustive()
    }
}

impl DomainTls {
    /// The domain's config, or `None` when it has no certificate (served over plain HTTP only).
    pub fn build(domain: &DomainTable) -> Result<Option<Self>, TlsError> {
        let Some(material) = &domain.tls else {
            return Ok(None);
        };
        let provider = super::provider();
        let what = format!(
            "certificate of {} (Secret {})",
            domain.hostname, material.secret
        );
        let key = certified_key(
            &what,
            material.certificate_pem.as_bytes(),
            material.private_key_pem.as_bytes(),
            &provider,
        )?;
        let not_after = not_after(&key);
        let client_verifier = match &domain.client_ca_pem {
            None => None,
            Some(pem) => Some(truststore_verifier(&domain.hostname, pem, &provider)?),
        };
        let config = server_config(
            domain.security_policy,
            key,
            client_verifier.clone(),
            provider,
        )
        .map_err(|error| TlsError::Rustls {
            what: what.clone(),
            error,
        })?;
        Ok(Some(Self {
            hostname: domain.hostname.clone(),
            not_after,
            config: Arc::new(config),
            client_verifier,
        }))
    }
}

/// Every custom domain's TLS, by the name SNI carries.
#[derive(Debug, Default)]
pub struct Certificates {
    exact: HashMap<String, Arc<DomainTls>>,
    /// `*.example.com` under `example.com`: one label, as certificates match.
    wildcard: HashMap<String, Arc<DomainTls>>,
}

impl Certificates {
    /// Adds a domain; a name already taken keeps its first owner (the dispatch decides owners
    /// in the same order).
    pub fn insert(&mut self, domain: Arc<DomainTls>) {
        let (map, name) = match domain.hostname.strip_prefix("*.") {
            Some(parent) => (&mut self.wildcard, parent.to_string()),
            None => (&mut self.exact, domain.hostname.clone()),
        };
        map.entry(name).or_insert(domain);
    }

    /// The domain a server name reaches: exact first, then a wildcard one label up.
    pub fn select(&self, server_name: &str) -> Option<&Arc<DomainTls>> {
        let name = server_name.trim_end_matches('.');
        self.exact.get(name).or_else(|| {
            let (_, parent) = name.split_once('.')?;
            self.wildcard.get(parent)
        })
    }
}

/// A certificate chain and its key, checked to belong together.
/// When the leaf certificate expires (Unix time), for the metrics.
pub fn not_after(key: &CertifiedKey) -> Option<i64> {
    let leaf = key.end_entity_cert().ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    Some(cert.validity().not_after.timestamp())
}

pub fn certified_key(
    what: &str,
    chain_pem: &[u8],
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .ok()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| TlsError::NoCertificate {
            what: what.to_string(),
        })?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| TlsError::NoPrivateKey {
        what: what.to_string(),
    })?;
    // Parses the key and checks it matches the leaf certificate's public key.
    let key = CertifiedKey::from_der(chain, key, provider).map_err(|error| TlsError::Rustls {
        what: what.to_string(),
        error,
    })?;
    Ok(Arc::new(key))
}

/// The policy's protocol versions. Every suite of the provider is AEAD.
fn versions(policy: TlsPolicy) -> &'static [&'static SupportedProtocolVersion] {
    static TLS_1_2_AND_UP: [&SupportedProtocolVersion; 2] =
        [&rustls::version::TLS13, &rustls::version::TLS12];
    static TLS_1_3_ONLY: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    match policy {
        TlsPolicy::TLS_1_2 => &TLS_1_2_AND_UP,
        TlsPolicy::TLS_1_3 => &TLS_1_3_ONLY,
    }
}

/// A server config for one certificate, with HTTP/2 and HTTP/1.1 by ALPN. With a client
/// verifier, a client certificate is required; its chain is checked after the handshake.
pub fn server_config(
    policy: TlsPolicy,
    key: Arc<CertifiedKey>,
    client_verifier: Option<Arc<dyn ClientCertVerifier>>,
    provider: Arc<CryptoProvider>,
) -> Result<ServerConfig, rustls::Error> {
    let builder =
        ServerConfig::builder_with_provider(provider).with_protocol_versions(versions(policy))?;
    let builder = match client_verifier {
        Some(inner) => builder.with_client_cert_verifier(Arc::new(DeferredVerifier::new(inner))),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(key)));
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

fn truststore_verifier(
    hostname: &str,
    pem: &str,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let error = |message: String| TlsError::Truststore {
        what: hostname.to_string(),
        message,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| error(format!("unreadable PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| error(format!("a CA certificate is not usable: {e}")))?;
    }
    if roots.is_empty() {
        return Err(error("holds no CA certificate".into()));
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| error(e.to_string()))
}
