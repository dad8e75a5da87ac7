//! The snapshot service's TLS: the certificate and key given on the command line, or else a
//! serving certificate the controller issues itself from a CA kept in the Secret
//! [`CA_SECRET`] (keys `ca.crt`, `ca.key`) of the controller's namespace. The Secret is
//! created when missing and reused when present, so every replica signs with the same CA and
//! proxies trust that one CA (`ca.crt`).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The Secret holding the snapshot CA.
pub const CA_SECRET: &str = "tollgate-snapshot-ca";
const CA_CERT_KEY: &str = "ca.crt";
const CA_KEY_KEY: &str = "ca.key";
const CA_COMMON_NAME: &str = "Tollgate snapshot CA";

/// The server configuration of the snapshot service (ALPN: `h2`, then `http/1.1`).
pub async fn server_config(
    client: &Client,
    cert_file: Option<&Path>,
    key_file: Option<&Path>,
    namespace: &str,
    names: &[String],
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let (chain, key) = match (cert_file, key_file) {
        (Some(cert), Some(key)) => from_files(cert, key)?,
        (None, None) => {
            let ca = ca_from_secret(client, namespace).await?;
            tracing::info!(
                namespace,
                secret = CA_SECRET,
                ?names,
                "serving certificate issued by the snapshot CA"
            );
            ca.issue(names)?
        }
        _ => bail!("--tls-cert-file and --tls-key-file go together"),
    };
    config(chain, key)
}

fn config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .context("the snapshot service's certificate and key do not fit together")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
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

/// The certificate (PEM) proxies trust for the snapshot service: the `--tls-cert-file` chain
/// when given, else `ca.crt` of the CA Secret (which [`server_config`] made sure exists).
pub async fn proxy_ca_pem(
    client: &Client,
    cert_file: Option<&Path>,
    namespace: &str,
) -> anyhow::Result<String> {
    if let Some(cert) = cert_file {
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

    use super::*;

    /// A CA read back from its PEM (as another replica, or a restart, does) issues
    /// certificates that a client trusting the stored CA certificate accepts.
    #[tokio::test]
    async fn a_stored_ca_issues_certificates_its_certificate_verifies() {
        let original = Ca::generate().unwrap();
        let stored = Ca::from_pem(original.cert_pem(), &original.key.serialize_pem()).unwrap();
        let (chain, key) = stored
            .issue(&["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let server = config(chain, key).unwrap();

        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(original.cert_pem().as_bytes()).unwrap())
            .unwrap();
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();

        let (a, b) = tokio::io::duplex(64 * 1024);
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let serve = tokio::spawn(async move {
            let mut tls = acceptor.accept(a).await.unwrap();
            tls.write_all(b"ok").await.unwrap();
            tls.shutdown().await.unwrap();
        });
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut tls = connector.connect(name, b).await.unwrap();
        let mut got = Vec::new();
        tls.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"ok");
        serve.await.unwrap();
    }
}
