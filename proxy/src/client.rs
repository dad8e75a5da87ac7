//! hyper-util's pooled client, with its TLS roots: what [`crate::upstream`] uses for `https://`
//! backends (HTTP/1.1, or HTTP/2 where the backend offers it by ALPN), and the fleet's client
//! to the controller. Each connection runs as a task of its own.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use crate::body::Body;

pub type HttpClient = Client<HttpsConnector<HttpConnector>, Body>;

/// Builds the client for backends. TLS backends are verified against the Mozilla roots, plus the PEM
/// bundle at `extra_ca` (for backends signed by a private CA).
pub fn build(extra_ca: Option<&Path>) -> anyhow::Result<HttpClient> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra_ca {
        add_pem(&mut roots, path)?;
    }
    Ok(Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(1024)
        .build(connector(roots)?))
}

/// The client to the controller (fleet mode): its certificate is verified against the PEM
/// bundle at `ca` if given, else the Mozilla roots; HTTP/2 by ALPN, with keep-alive pings so
/// that a silent, dead subscription is noticed.
pub fn build_controller(ca: Option<&Path>) -> anyhow::Result<HttpClient> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let added = add_pem(&mut roots, path)?;
            anyhow::ensure!(added > 0, "{} holds no PEM certificate", path.display());
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .http2_keep_alive_interval(Duration::from_secs(20))
        .http2_keep_alive_timeout(Duration::from_secs(10))
        .http2_keep_alive_while_idle(true)
        .build(connector(roots)?))
}

/// Adds every certificate of a PEM bundle; returns how many.
fn add_pem(roots: &mut rustls::RootCertStore, path: &Path) -> anyhow::Result<usize> {
    let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.with_context(|| format!("parsing {}", path.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("adding a CA from {}", path.display()))?;
        added += 1;
    }
    Ok(added)
}

fn connector(roots: rustls::RootCertStore) -> anyhow::Result<HttpsConnector<HttpConnector>> {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_root_certificates(roots)
    .with_no_client_auth();

    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    http.set_keepalive(Some(Duration::from_secs(60)));
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http))
}
