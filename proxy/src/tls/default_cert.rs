//! The certificate for connections whose SNI names no custom domain (or that send none):
//! read from files at start and again whenever their content changes, so a Secret mounted
//! into the pod rotates it without a restart. Its expiry is a metric, as each domain's is.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use prometheus::IntGaugeVec;
use rustls::server::ServerConfig;
use tollgate_crds::table::TlsPolicy;

use super::TlsError;
use super::certificates::{certified_key, not_after, server_config};

/// How often the files are compared with what is served.
const RELOAD_EVERY: Duration = Duration::from_secs(5);

pub struct DefaultCertificate {
    certificate: PathBuf,
    key: PathBuf,
    served: ArcSwapOption<Loaded>,
    /// `tollgate_tls_default_certificate_expiry_timestamp_seconds`, by certificate file.
    expiry: IntGaugeVec,
}

struct Loaded {
    files: (Vec<u8>, Vec<u8>),
    config: Arc<ServerConfig>,
    /// When the leaf certificate expires (Unix time).
    not_after: Option<i64>,
}

impl DefaultCertificate {
    /// Loads the files; an error here stops the proxy at start. `expiry` is the gauge that
    /// follows the served certificate's expiry.
    pub fn load(
        certificate: &Path,
        key: &Path,
        expiry: IntGaugeVec,
    ) -> Result<Arc<Self>, TlsError> {
        let this = Self {
            certificate: certificate.to_path_buf(),
            key: key.to_path_buf(),
            served: ArcSwapOption::empty(),
            expiry,
        };
        let files = this.read()?;
        let loaded = this.build(files)?;
        this.serve(loaded);
        Ok(Arc::new(this))
    }

    /// The config served now.
    pub fn config(&self) -> Option<Arc<ServerConfig>> {
        self.served.load().as_ref().map(|l| l.config.clone())
    }

    /// Re-reads the files every few seconds; a changed pair that loads replaces the served
    /// one (connections already accepted keep theirs), one that does not is logged and the
    /// previous certificate keeps serving.
    pub async fn watch(self: Arc<Self>) {
        let mut tick = tokio::time::interval(RELOAD_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let files = match self.read() {
                Ok(files) => files,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the default certificate; keeping the served one");
                    continue;
                }
            };
            let unchanged = self
                .served
                .load()
                .as_ref()
                .is_some_and(|l| l.files == files);
            if unchanged {
                continue;
            }
            match self.build(files) {
                Ok(loaded) => {
                    self.serve(loaded);
                    tracing::info!(certificate = %self.certificate.display(), "default certificate reloaded");
                }
                Err(e) => {
                    tracing::error!(error = %e, "the changed default certificate does not load; keeping the served one")
                }
            }
        }
    }

    fn read(&self) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|error| TlsError::Read {
                path: path.display().to_string(),
                error,
            })
        };
        Ok((read(&self.certificate)?, read(&self.key)?))
    }

    fn build(&self, files: (Vec<u8>, Vec<u8>)) -> Result<Loaded, TlsError> {
        let what = format!("default certificate {}", self.certificate.display());
        let provider = super::provider();
        let key = certified_key(&what, &files.0, &files.1, &provider)?;
        let not_after = not_after(&key);
        let config = server_config(TlsPolicy::TLS_1_2, key, None, provider)
            .map_err(|error| TlsError::Rustls { what, error })?;
        Ok(Loaded {
            files,
            config: Arc::new(config),
            not_after,
        })
    }

    fn serve(&self, loaded: Loaded) {
        self.expiry.reset();
        if let Some(at) = loaded.not_after {
            self.expiry
                .with_label_values(&[self.certificate.display().to_string()])
                .set(at);
        }
        self.served.store(Some(Arc::new(loaded)));
    }
}
