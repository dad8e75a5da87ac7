//! The snapshot service's TLS: the certificate and key given on the command line, or else a
//! serving certificate the controller issues itself from a CA kept in the Secret
//! [`CA_SECRET`] (keys `ca.crt`, `ca.key`) of the controller's namespace. The Secret is
//! created when missing and reused when present, so every replica signs with the same CA and
//! proxies trust that one CA (`ca.crt`).
//!
//! The serving certificate rotates without a restart ([`Renewal`]): one the controller issues
//! is valid [`SERVING_VALIDITY_DAYS`] and replaced every [`RENEW_EVERY`]; files are re-read
//! when they change. New connections get the new certificate; established ones keep theirs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The Secret holding the snapshot CA.
pub const CA_SECRET: &str = "tollgate-snapshot-ca";
const CA_CERT_KEY: &str = "ca.crt";
const CA_KEY_KEY: &str = "ca.key";
const CA_COMMON_NAME: &str = "Tollgate snapshot CA";
/// How long a CA the controller creates is valid.
const CA_VALIDITY_DAYS: i64 = 10 * 365;
/// How long a serving certificate the controller issues itself is valid: a leaked key is of
/// use for a month at most.
pub const SERVING_VALIDITY_DAYS: i64 = 30;
/// How often that certificate is replaced: with a third of its life left, a controller that
/// cannot renew (its CA Secret deleted, say) logs errors for ten days before proxies notice.
pub const RENEW_EVERY: Duration = Duration::from_secs(10 * 24 * 3600);
/// How often certificate files given on the command line are compared with what is served.
const RELOAD_EVERY: Duration = Duration::from_secs(30);

/// The server configuration of the snapshot service (ALPN: `h2`, then `http/1.1`), and what
/// keeps its certificate current (run it: [`Renewal::run`]).
pub async fn server_config(
    client: &Client,
    cert_file: Option<&Path>,
    key_file: Option<&Path>,
    namespace: &str,
    names: &[String],
) -> anyhow::Result<(Arc<rustls::ServerConfig>, Renewal)> {
    let source = match (cert_file, key_file) {
        (Some(cert), Some(key)) => Source::Files {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            served: Vec::new(),
        },
        (None, None) => {
            let ca = ca_from_secret(client, namespace).await?;
            tracing::info!(
                namespace,
                secret = CA_SECRET,
                ?names,
                "serving certificate issued by the snapshot CA"
            );
            Source::Ca {
                ca: Box::new(ca),
                names: names.to_vec(),
            }
        }
        _ => bail!("--tls-cert-file and --tls-key-file go together"),
    };
    let mut renewal = Renewal {
        serving: Arc::new(ServingCertificate(RwLock::new(None))),
        source,
    };
    renewal.renew()?;
    Ok((config(renewal.serving.clone())?, renewal))
}

fn config(serving: Arc<ServingCertificate>) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_cert_resolver(serving);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate served now; replaced whole, so a handshake sees one or the other.
#[derive(Debug)]
struct ServingCertificate(RwLock<Option<Arc<CertifiedKey>>>);

impl ResolvesServerCert for ServingCertificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

enum Source {
    /// `--tls-cert-file`, `--tls-key-file`, and the bytes of both last served.
    Files {
        cert: PathBuf,
        key: PathBuf,
        served: Vec<u8>,
    },
    /// Issued by the snapshot CA.
    Ca { ca: Box<Ca>, names: Vec<String> },
}

/// Keeps the snapshot service's certificate current.
pub struct Renewal {
    serving: Arc<ServingCertificate>,
    source: Source,
}

impl Renewal {
    /// Renews forever: a new certificate from the CA every [`RENEW_EVERY`], or the files again
    /// when they change. A failure is logged and the served certificate kept.
    pub async fn run(mut self) {
        let every = match self.source {
            Source::Files { .. } => RELOAD_EVERY,
            Source::Ca { .. } => RENEW_EVERY,
        };
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = self.renew() {
                tracing::error!(error = %format!("{e:#}"), "renewing the snapshot service's certificate failed; the served one is kept");
            }
        }
    }

    /// Puts a new certificate in service (files: only when they changed); `true` if it did.
    fn renew(&mut self) -> anyhow::Result<bool> {
        let (chain, key) = match &mut self.source {
            Source::Ca { ca, names } => ca.issue(names)?,
            Source::Files { cert, key, served } => {
                let read =
                    |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
                let now = [read(cert)?, read(key)?].concat();
                if now == *served {
                    return Ok(false);
                }
                let loaded = from_files(cert, key)?;
                *served = now;
                loaded
            }
        };
        let certified = CertifiedKey::from_der(chain, key, &provider())
            .context("the snapshot service's certificate and key do not fit together")?;
        *self
            .serving
            .0
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(certified));
        tracing::info!("snapshot service certificate in service");
        Ok(true)
    }
}

/// `rcgen`'s validity bounds: from yesterday (clocks differ) to `days` from today, UTC.
fn validity(params: &mut rcgen::CertificateParams, days: i64) -> anyhow::Result<()> {
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let at = |days: i64| -> anyhow::Result<_> {
        let d = today
            .checked_add(jiff::Span::new().days(days))
            .context("a certificate date")?;
        Ok(rcgen::date_time_ymd(
            i32::from(d.year()),
            d.month().unsigned_abs(),
            d.day().unsigned_abs(),
        ))
    };
    params.not_before = at(-1)?;
    params.not_after = at(days)?;
    Ok(())
}

fn from_files(
    cert: &Path,
    key: &Path,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading certificates from {}", cert.display()))?;
    if chain.is_empty() {
        bail!("{} holds no certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading a private key from {}", key.display()))?;
    Ok((chain, key))
}

/// A CA that issues serving certificates.
pub struct Ca {
    /// As stored (and as proxies trust it).
    cert_pem: String,
    key: rcgen::KeyPair,
}

impl Ca {
    /// A new CA.
    pub fn generate() -> anyhow::Result<Ca> {
        let key = rcgen::KeyPair::generate().context("generating the CA key")?;
        let cert = ca_params()?
            .self_signed(&key)
            .context("self-signing the CA")?;
        Ok(Ca {
            cert_pem: cert.pem(),
            key,
        })
    }

    /// A CA as stored: its certificate and its key (PEM).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> anyhow::Result<Ca> {
        let key = rcgen::KeyPair::from_pem(key_pem).context("the CA key is not a PEM key")?;
        CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .context("the CA certificate is not a PEM certificate")?;
        Ok(Ca {
            cert_pem: cert_pem.to_owned(),
            key,
        })
    }

    /// A serving certificate for `names` (DNS names or IP addresses), with the CA after it.
    pub fn issue(
        &self,
        names: &[String],
    ) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
        // rcgen signs with an issuer certificate object; the stored certificate cannot be
        // parsed back without x509-parser, so the issuer is rebuilt from the same subject and
        // key: the leaf's issuer name and signature then match the stored certificate.
        let issuer = ca_params()?
            .self_signed(&self.key)
            .context("rebuilding the CA")?;
        let key = rcgen::KeyPair::generate().context("generating the serving key")?;
        let mut params = rcgen::CertificateParams::new(names.to_vec())
            .context("the serving certificate's names")?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "tollgate-controller");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        validity(&mut params, SERVING_VALIDITY_DAYS)?;
        let leaf = params
            .signed_by(&key, &issuer, &self.key)
            .context("signing the serving certificate")?;
        let ca = CertificateDer::from_pem_slice(self.cert_pem.as_bytes())
            .context("the CA certificate")?;
        let key = PrivateKeyDer::try_from(key.serialize_der())
            .map_err(|e| anyhow::anyhow!("the serving key: {e}"))?;
        Ok((vec![leaf.der().clone(), ca], key))
    }

    #[cfg(test)]
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }
}

fn ca_params() -> anyhow::Result<rcgen::CertificateParams> {
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).context("the CA's parameters")?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, CA_COMMON_NAME);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, CA_VALIDITY_DAYS)?;
    Ok(params)
}

/// The CA of the Secret, created first if missing (another replica may create it at the same
/// time: then its CA is used).
async fn ca_from_secret(client: &Client, namespace: &str) -> anyhow::Result<Ca> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    for _ in 0..3 {
        if let Some(secret) = api
            .get_opt(CA_SECRET)
            .await
            .with_context(|| format!("reading Secret {namespace}/{CA_SECRET}"))?
        {
            return ca_of(&secret)
                .with_context(|| format!("Secret {namespace}/{CA_SECRET} holds no usable CA"));
        }
        let ca = Ca::generate()?;
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(CA_SECRET.into()),
                namespace: Some(namespace.into()),
                labels: Some(
                    [(
                        "app.kubernetes.io/managed-by".to_owned(),
                        "tollgate-controller".to_owned(),
                    )]
                    .into(),
                ),
                ..Default::default()
            },
            type_: Some("Opaque".into()),
            data: Some(
                [
                    (
                        CA_CERT_KEY.to_owned(),
                        ByteString(ca.cert_pem.clone().into_bytes()),
                    ),
                    (
                        CA_KEY_KEY.to_owned(),
                        ByteString(ca.key.serialize_pem().into_bytes()),
                    ),
                ]
                .into(),
            ),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &secret).await {
            Ok(_) => {
                tracing::info!(namespace, secret = CA_SECRET, "snapshot CA created");
                return Ok(ca);
            }
            // Created by another replica meanwhile: read theirs.
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(kube::Error::Api(e)) if e.code == 404 => bail!(
                "namespace {namespace:?} does not exist: create it, or give the controller's namespace with --namespace (POD_NAMESPACE)"
            ),
            Err(e) => {
                return Err(e).with_context(|| format!("creating Secret {namespace}/{CA_SECRET}"));
            }
        }
    }
    bail!("Secret {namespace}/{CA_SECRET} could not be created or read")
}

/// The certificate (PEM) proxies trust for the snapshot service: `trusted_file` when given
/// (`--tls-ca-file`, else `--tls-cert-file`), else `ca.crt` of the CA Secret (which
/// [`server_config`] made sure exists).
pub async fn proxy_ca_pem(
    client: &Client,
    trusted_file: Option<&Path>,
    namespace: &str,
) -> anyhow::Result<String> {
    if let Some(cert) = trusted_file {
        return std::fs::read_to_string(cert)
            .with_context(|| format!("reading {}", cert.display()));
    }
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = api
        .get(CA_SECRET)
        .await
        .with_context(|| format!("reading Secret {namespace}/{CA_SECRET}"))?;
    Ok(ca_of(&secret)
        .with_context(|| format!("Secret {namespace}/{CA_SECRET} holds no usable CA"))?
        .cert_pem)
}

fn ca_of(secret: &Secret) -> anyhow::Result<Ca> {
    let data = secret.data.as_ref();
    let field = |key: &str| -> anyhow::Result<String> {
        let bytes = data
            .and_then(|d| d.get(key))
            .with_context(|| format!("no {key}"))?;
        String::from_utf8(bytes.0.clone()).with_context(|| format!("{key} is not text"))
    };
    Ca::from_pem(&field(CA_CERT_KEY)?, &field(CA_KEY_KEY)?)
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio_rustls::client::TlsStream;

    use super::*;

    fn names() -> Vec<String> {
        vec!["localhost".into(), "127.0.0.1".into()]
    }

    fn renewal(source: Source) -> (Arc<rustls::ServerConfig>, Renewal) {
        let mut renewal = Renewal {
            serving: Arc::new(ServingCertificate(RwLock::new(None))),
            source,
        };
        assert!(renewal.renew().unwrap());
        (config(renewal.serving.clone()).unwrap(), renewal)
    }

    /// A client trusting `ca_pem` completes a handshake with `server` over an in-memory pipe;
    /// returns its stream and the leaf certificate it was shown. The server end echoes.
    async fn connect(
        server: &Arc<rustls::ServerConfig>,
        ca_pem: &str,
    ) -> (TlsStream<tokio::io::DuplexStream>, Vec<u8>) {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let (a, b) = tokio::io::duplex(64 * 1024);
        let acceptor = tokio_rustls::TlsAcceptor::from(server.clone());
        tokio::spawn(async move {
            let mut tls = acceptor.accept(a).await.unwrap();
            let mut buf = [0u8; 64];
            while let Ok(n) = tls.read(&mut buf).await {
                if n == 0 || tls.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(client))
            .connect(name, b)
            .await
            .unwrap();
        let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
        (tls, leaf)
    }

    async fn echo(tls: &mut TlsStream<tokio::io::DuplexStream>) -> Vec<u8> {
        tls.write_all(b"ok").await.unwrap();
        let mut got = [0u8; 2];
        tls.read_exact(&mut got).await.unwrap();
        got.to_vec()
    }

    /// A CA read back from its PEM (as another replica, or a restart, does) issues
    /// certificates that a client trusting the stored CA certificate accepts.
    #[tokio::test]
    async fn a_stored_ca_issues_certificates_its_certificate_verifies() {
        let original = Ca::generate().unwrap();
        let stored = Ca::from_pem(original.cert_pem(), &original.key.serialize_pem()).unwrap();
        let (server, _) = renewal(Source::Ca {
            ca: Box::new(stored),
            names: names(),
        });
        let (mut tls, _) = connect(&server, original.cert_pem()).await;
        assert_eq!(echo(&mut tls).await, b"ok");
    }

    /// Serving certificates are short-lived and their CA long-lived, not rcgen's default
    /// (1975 to 4096).
    #[test]
    fn issued_certificates_expire() {
        let ca = Ca::generate().unwrap();
        let (chain, _) = ca.issue(&names()).unwrap();
        let days_left = |der: &[u8]| {
            let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
            (cert.validity().not_after.timestamp() - jiff::Timestamp::now().as_second()) / 86_400
        };
        // Dates are whole days (UTC midnight): today's part of a day is gone.
        let within = |days: i64| (days - 1)..=days;
        assert!(within(SERVING_VALIDITY_DAYS).contains(&days_left(&chain[0])));
        assert!(within(CA_VALIDITY_DAYS).contains(&days_left(&chain[1])));
    }

    /// A renewal serves new connections the new certificate; a connection from before it
    /// goes on with the old one.
    #[tokio::test]
    async fn renewal_replaces_the_certificate_without_dropping_a_connection() {
        let ca = Ca::generate().unwrap();
        let ca_pem = ca.cert_pem().to_owned();
        let (server, mut renewal) = renewal(Source::Ca {
            ca: Box::new(ca),
            names: names(),
        });
        let (mut before, first) = connect(&server, &ca_pem).await;
        assert!(renewal.renew().unwrap());
        let (_, second) = connect(&server, &ca_pem).await;
        assert_ne!(
            first, second,
            "a new connection gets the renewed certificate"
        );
        assert_eq!(
            echo(&mut before).await,
            b"ok",
            "the older connection still works"
        );
    }

    /// Files given on the command line are served again when they change, and only then.
    #[tokio::test]
    async fn changed_files_are_served_unchanged_ones_are_not_reloaded() {
        let ca = Ca::generate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let write = |ca: &Ca| {
            let (chain, key_der) = ca.issue(&names()).unwrap();
            let pem: String = chain
                .iter()
                .map(|c| pem_block("CERTIFICATE", c.as_ref()))
                .collect();
            std::fs::write(&cert, pem).unwrap();
            std::fs::write(&key, pem_block("PRIVATE KEY", key_der.secret_der())).unwrap();
        };
        write(&ca);
        let (server, mut renewal) = renewal(Source::Files {
            cert: cert.clone(),
            key: key.clone(),
            served: Vec::new(),
        });
        let (_, first) = connect(&server, ca.cert_pem()).await;
        assert!(
            !renewal.renew().unwrap(),
            "unchanged files are not reloaded"
        );
        write(&ca);
        assert!(renewal.renew().unwrap());
        let (_, second) = connect(&server, ca.cert_pem()).await;
        assert_ne!(first, second);
        // A broken file is refused and the served certificate kept.
        std::fs::write(&key, "not a key").unwrap();
        assert!(renewal.renew().is_err());
        let (_, third) = connect(&server, ca.cert_pem()).await;
        assert_eq!(second, third);
    }

    fn pem_block(label: &str, der: &[u8]) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }
}
