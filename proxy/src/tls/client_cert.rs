//! Client certificates for mutual TLS.
//!
//! The handshake asks for a certificate and proves the client holds its key, but accepts any
//! chain ([`DeferredVerifier`]); [`check`] then verifies the chain against the domain's
//! truststore. A client without a certificate fails the handshake (`certificate_required`);
//! one with an untrusted certificate gets Amazon API Gateway's 403 `Forbidden`, with the reason
//! in the access log, on every request of the connection.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

/// A client certificate that verified, as integrations receive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// The leaf certificate, PEM.
    pub pem: String,
    /// `CN=client,O=Example`: attributes in the certificate's order, joined by commas.
    pub subject_dn: String,
    pub issuer_dn: String,
    /// Colon-separated lowercase hex bytes: `0a:1b:...`.
    pub serial_number: String,
    /// OpenSSL's format, as Amazon API Gateway's: `May 28 12:30:02 2019 GMT`.
    pub not_before: String,
    pub not_after: String,
}

/// The outcome of a connection's client certificate check.
#[derive(Debug, Clone)]
pub enum ClientCertCheck {
    Verified(Arc<ClientCert>),
    /// Why the chain was refused (for the access log; the client gets a bare 403).
    Refused(String),
}

/// Verifies the chain a client presented against the truststore's verifier.
pub fn check(verifier: &dyn ClientCertVerifier, chain: &[CertificateDer<'_>]) -> ClientCertCheck {
    let Some((leaf, intermediates)) = chain.split_first() else {
        return ClientCertCheck::Refused("no client certificate".into());
    };
    if let Err(e) = verifier.verify_client_cert(leaf, intermediates, UnixTime::now()) {
        return ClientCertCheck::Refused(e.to_string());
    }
    match ClientCert::read(leaf) {
        Ok(cert) => ClientCertCheck::Verified(Arc::new(cert)),
        Err(e) => ClientCertCheck::Refused(e),
    }
}

impl ClientCert {
    pub fn read(der: &CertificateDer<'_>) -> Result<Self, String> {
        let (_, cert) = X509Certificate::from_der(der.as_ref())
            .map_err(|e| format!("unreadable client certificate: {e}"))?;
        let validity = cert.validity();
        Ok(Self {
            pem: pem(der.as_ref()),
            subject_dn: distinguished_name(cert.subject()),
            issuer_dn: distinguished_name(cert.issuer()),
            serial_number: colon_hex(cert.raw_serial()),
            not_before: openssl_time(validity.not_before.timestamp()),
            not_after: openssl_time(validity.not_after.timestamp()),
        })
    }
}

fn distinguished_name(name: &X509Name<'_>) -> String {
    let mut parts = Vec::new();
    for rdn in name.iter() {
        for attr in rdn.iter() {
            let key = x509_parser::objects::oid2abbrev(
                attr.attr_type(),
                x509_parser::objects::oid_registry(),
            )
            .map(str::to_string)
            .unwrap_or_else(|_| attr.attr_type().to_id_string());
            let value = attr
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|_| hex_string(attr.attr_value().data));
            parts.push(format!("{key}={value}"));
        }
    }
    parts.join(",")
}

fn hex_string(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("#{hex}")
}

fn colon_hex(bytes: &[u8]) -> String {
    // DER integers carry a leading zero byte when the high bit is set; OpenSSL prints without.
    let bytes = match bytes {
        [0, rest @ ..] if !rest.is_empty() => rest,
        b => b,
    };
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn openssl_time(unix_seconds: i64) -> String {
    match jiff::Timestamp::from_second(unix_seconds) {
        Ok(t) => t.strftime("%b %e %H:%M:%S %Y GMT").to_string(),
        Err(_) => unix_seconds.to_string(),
    }
}

fn pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Requires a client certificate and checks the handshake's signatures with it (so the
/// client holds its key), but leaves the chain to [`check`].
#[derive(Debug)]
pub struct DeferredVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl DeferredVerifier {
    pub fn new(inner: Arc<dyn ClientCertVerifier>) -> Self {
        Self { inner }
    }
}

impl ClientCertVerifier for DeferredVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_print_as_openssl_does() {
        assert_eq!(colon_hex(&[0x00, 0xa1, 0x02]), "a1:02");
        assert_eq!(colon_hex(&[0x00]), "00");
        assert_eq!(colon_hex(&[0x7f, 0x00]), "7f:00");
    }

    #[test]
    fn times_print_as_openssl_does() {
        // 2019-05-28T12:30:02Z and 2021-08-05T09:36:04Z: Amazon's documented example.
        assert_eq!(openssl_time(1_559_046_602), "May 28 12:30:02 2019 GMT");
        assert_eq!(openssl_time(1_628_156_164), "Aug  5 09:36:04 2021 GMT");
    }
}
