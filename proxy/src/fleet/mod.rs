//! Fleet mode: the proxy serves one gateway's table as the controller sends it.
//!
//! At start, the last table accepted (kept in the state directory) is served at once, so the
//! proxy serves within moments even while the controller is down (static stability). Then it
//! subscribes; each frame is checked (`snapshot::verify`, then built as the router would serve
//! it), swapped in atomically, persisted, and ACKed; a frame refused is NACKed with the reason
//! and the previous table keeps serving. Any error or end of stream: reconnect with backoff,
//! serving meanwhile whatever is loaded.

mod backoff;
pub mod state;
pub mod subscribe;
pub mod usage;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arc_swap::ArcSwap;
use tollgate_crds::snapshot::{Ack, SnapshotFrame, verify};
use tollgate_crds::table::{GatewayTable, ObjectKey};

use crate::admin::ConfigReport;
use crate::args::FleetArgs;
use crate::dispatch::ServedGateway;
use crate::install::install;
use crate::state::Shared;
use backoff::Backoff;
use subscribe::{Channel, SubscribeError, Subscription};

pub struct Fleet {
    channel: Channel,
    state_dir: PathBuf,
    base_domain: String,
    shared: Arc<Shared>,
    report: Arc<ArcSwap<ConfigReport>>,
    /// The version being served, if any.
    served: Option<String>,
}

/// What became of one frame.
enum Outcome {
    /// Now served (or already was).
    Accepted,
    Refused(String),
}

impl Fleet {
    /// Reads the CA bundle (an error stops the start); nothing is contacted yet.
    pub fn new(
        args: FleetArgs,
        base_domain: String,
        shared: Arc<Shared>,
        report: Arc<ArcSwap<ConfigReport>>,
    ) -> anyhow::Result<Self> {
        let client = crate::client::build_controller(args.ca_file.as_deref())?;
        report.store(Arc::new(ConfigReport {
            source: args.controller.clone(),
            ..ConfigReport::default()
        }));
        Ok(Self {
            channel: Channel {
                client,
                controller: args.controller,
                gateway: args.gateway,
                proxy_id: uuid::Uuid::new_v4().to_string(),
                token_file: args.token_file,
            },
            state_dir: args.state_dir,
            base_domain,
            shared,
            report,
            served: None,
        })
    }

    pub fn proxy_id(&self) -> &str {
        &self.channel.proxy_id
    }

    /// What reports this proxy's usage counts to the controller.
    pub fn usage_reporter(&self) -> usage::Reporter {
        usage::Reporter::new(self.channel.clone(), self.shared.clone())
    }

    /// Serves the last-known-good table if there is one, then follows the controller until
    /// the process ends.
    pub async fn run(mut self) {
        if let Err(e) = std::fs::create_dir_all(&self.state_dir) {
            tracing::error!(dir = %self.state_dir.display(), error = %e, "cannot create the state directory; tables received will not survive a restart");
        }
        self.serve_last_known_good().await;
        let mut backoff = Backoff::default();
        loop {
            let ended = match self.channel.connect().await {
                Ok(mut subscription) => {
                    tracing::info!(controller = %self.channel.controller, gateway = %self.channel.gateway, proxy_id = %self.channel.proxy_id, "subscribed");
                    self.follow(&mut subscription, &mut backoff).await
                }
                Err(e) => Err(e),
            };
            let delay = backoff.next_delay();
            match ended {
                Ok(()) => {
                    tracing::warn!(
                        retry_ms = delay.as_millis(),
                        serving = self.serving(),
                        "the controller ended the subscription; reconnecting"
                    );
                }
                Err(e) if e.is_auth() => {
                    tracing::error!(controller = %self.channel.controller, error = %e, retry_ms = delay.as_millis(), serving = self.serving(), "subscription refused: check the ServiceAccount token and the gateway; retrying");
                    self.set_error(e.to_string());
                }
                Err(e) => {
                    tracing::warn!(controller = %self.channel.controller, error = %e, retry_ms = delay.as_millis(), serving = self.serving(), "subscription failed; retrying");
                    self.set_error(e.to_string());
                }
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// The table in the state directory, if it still checks out.
    async fn serve_last_known_good(&mut self) {
        let table = match state::load(&self.state_dir) {
            Ok(Some(table)) => table,
            Ok(None) => {
                tracing::info!(dir = %self.state_dir.display(), "no last-known-good table; waiting for the controller");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "the last-known-good table cannot be read; waiting for the controller");
                return;
            }
        };
        let version = table.version.clone();
        match self.check_and_install(table).await {
            Ok(()) => {
                tracing::info!(version = %version, gateway = %self.channel.gateway, "serving last-known-good table version {version}");
            }
            Err(reason) => {
                tracing::warn!(version = %version, reason = %reason, "the last-known-good table is refused; waiting for the controller");
                self.set_error(format!("last-known-good table refused: {reason}"));
            }
        }
    }

    /// Reads frames until the stream ends or fails.
    async fn follow(
        &mut self,
        subscription: &mut Subscription,
        backoff: &mut Backoff,
    ) -> Result<(), SubscribeError> {
        while let Some(line) = subscription.next_line().await? {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let (version, outcome) = match serde_json::from_slice::<SnapshotFrame>(&line) {
                Ok(frame) => {
                    let version = frame.table.version.clone();
                    (version, self.apply(frame).await)
                }
                Err(e) => {
                    // Not a frame this proxy understands: NACK it if it names a version.
                    let value: serde_json::Value = serde_json::from_slice(&line).map_err(|_| {
                        SubscribeError::Failed(format!(
                            "the stream carries a line that is not JSON: {e}"
                        ))
                    })?;
                    let version = value["table"]["version"].as_str().unwrap_or_default();
                    (
                        version.to_string(),
                        Outcome::Refused(format!("the frame does not parse: {e}")),
                    )
                }
            };
            backoff.reset();
            let ack = match outcome {
                Outcome::Accepted => Ack {
                    gateway: self.channel.gateway.clone(),
                    proxy_id: self.channel.proxy_id.clone(),
                    version,
                    accepted: true,
                    reason: None,
                },
                Outcome::Refused(reason) => {
                    tracing::error!(version = %version, reason = %reason, served = ?self.served, "table refused; the previous table keeps serving");
                    self.shared
                        .metrics
                        .reloads
                        .with_label_values(&["error"])
                        .inc();
                    self.set_error(format!("table version {version} refused: {reason}"));
                    Ack {
                        gateway: self.channel.gateway.clone(),
                        proxy_id: self.channel.proxy_id.clone(),
                        version,
                        accepted: false,
                        reason: Some(reason),
                    }
                }
            };
            if let Err(e) = self.channel.ack(subscription, &ack).await {
                // The next subscription sends the table again, and it is answered again.
                tracing::warn!(version = %ack.version, accepted = ack.accepted, error = %e, "the ACK was not delivered");
            }
        }
        Ok(())
    }

    /// Checks, installs and persists a frame's table.
    async fn apply(&mut self, frame: SnapshotFrame) -> Outcome {
        if frame.table.gateway != self.channel.gateway {
            return Outcome::Refused(format!(
                "the table is for gateway {}; this proxy serves {}",
                frame.table.gateway, self.channel.gateway
            ));
        }
        // Local rate limiting: each proxy takes 1/fleet_size of every rate.
        self.shared
            .fleet_size
            .store(frame.fleet_size.max(1), Ordering::Relaxed);
        if self.served.as_deref() == Some(frame.table.version.as_str()) {
            // A reconnection: the controller sends the current table again.
            return match verify(&frame.table) {
                Ok(()) => {
                    tracing::debug!(version = %frame.table.version, "table already served");
                    self.clear_error();
                    Outcome::Accepted
                }
                Err(reason) => Outcome::Refused(reason),
            };
        }
        let table = frame.table;
        let version = table.version.clone();
        let persisted = table.clone();
        if let Err(reason) = self.check_and_install(table).await {
            return Outcome::Refused(reason);
        }
        let dir = self.state_dir.clone();
        let written = tokio::task::spawn_blocking(move || state::persist(&dir, &persisted)).await;
        match written {
            Ok(Ok(())) => {
                tracing::info!(version = %version, fleet_size = frame.fleet_size, "table received, served and persisted")
            }
            Ok(Err(e)) => {
                tracing::error!(version = %version, dir = %self.state_dir.display(), error = %e, "table served but not persisted: a restart without the controller will serve an older one");
                self.set_error(format!("persisting table version {version}: {e}"));
            }
            Err(e) => tracing::error!(error = %e, "the persisting task failed"),
        }
        Outcome::Accepted
    }

    /// verify + build + install; on error nothing changes. Verifying (hashing the table) and
    /// building (routers, TLS configs, policies) take long for a large table, so they run on
    /// tokio's blocking pool while the async workers go on serving the current one.
    async fn check_and_install(&mut self, table: GatewayTable) -> Result<(), String> {
        let expected = self.channel.gateway.clone();
        let (gateway, version) =
            tokio::task::spawn_blocking(move || checked_build(&expected, table))
                .await
                .map_err(|e| format!("the table build task failed: {e}"))??;
        let reports = install(&self.shared, vec![gateway], &self.base_domain);
        self.served = Some(version);
        self.shared.metrics.reloads.with_label_values(&["ok"]).inc();
        self.report.store(Arc::new(ConfigReport {
            source: self.channel.controller.clone(),
            loaded_at: Some(jiff::Timestamp::now().to_string()),
            gateways: reports,
            diagnostics: Vec::new(),
            conflicts: Vec::new(),
            last_error: None,
        }));
        Ok(())
    }

    /// The version served, for logs ("nothing" before the first table).
    fn serving(&self) -> &str {
        self.served.as_deref().unwrap_or("nothing")
    }

    fn set_error(&self, error: String) {
        let mut report = (**self.report.load()).clone();
        report.last_error = Some(error);
        self.report.store(Arc::new(report));
    }

    fn clear_error(&self) {
        let current = self.report.load();
        if current.last_error.is_some() {
            let mut report = (**current).clone();
            report.last_error = None;
            self.report.store(Arc::new(report));
        }
    }
}

/// The table, checked (for this proxy's gateway, in this format, its version its content's)
/// and built ready to serve, with its version.
fn checked_build(
    expected: &ObjectKey,
    table: GatewayTable,
) -> Result<(ServedGateway, String), String> {
    if &table.gateway != expected {
        return Err(format!(
            "the table is for gateway {}; this proxy serves {expected}",
            table.gateway
        ));
    }
    verify(&table)?;
    let version = table.version.clone();
    let gateway =
        ServedGateway::build(table).map_err(|e| format!("the table cannot be served: {e}"))?;
    Ok((gateway, version))
}
