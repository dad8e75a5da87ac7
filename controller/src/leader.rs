//! Leader election on a `coordination.k8s.io/v1` Lease ([`LEASE_NAME`] in the controller's
//! namespace), so that one replica writes (statuses, fleet objects) while every replica serves
//! snapshots.
//!
//! kube-runtime 5 has no elector, so this is a small one, after client-go's:
//!
//! - Every write of the Lease is a `replace` carrying the `resourceVersion` last read (or a
//!   `create`, which fails if the Lease exists): of two replicas racing, the API server accepts
//!   one and answers the other 409 Conflict. Two replicas never both hold it.
//! - A replica takes the Lease when it is free (no holder) or expired. Expiry is judged on the
//!   local monotonic clock, not the holder's `renewTime`: the Lease is expired when its record
//!   has not changed for `leaseDurationSeconds` since this replica first saw that record, so
//!   clock skew between nodes does not matter.
//! - The leader renews every `duration / 3`. It considers itself leader only until
//!   `last successful renewal + 2/3 duration`, strictly less than the time another replica
//!   waits (a full duration from a moment after that renewal) before taking over; a failed
//!   renewal past that deadline, a 409, or a Lease showing another holder ends leadership at
//!   once.
//! - On shutdown the leader releases the Lease (empties `holderIdentity`), so that another
//!   replica takes over without waiting for expiry.
//!
//! [`Leadership`] is the cheap handle the rest of the controller reads.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::metrics::Metrics;

/// The Lease's name.
pub const LEASE_NAME: &str = "tollgate-controller";

/// Whether this replica leads now; cheap to clone and to read.
#[derive(Clone)]
pub struct Leadership {
    rx: watch::Receiver<bool>,
}

impl Leadership {
    /// True while this replica holds the Lease: only then may it write.
    pub fn is_leader(&self) -> bool {
        *self.rx.borrow()
    }

    /// A receiver that sees every change of leadership.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.rx.clone()
    }
}

/// Timings derived from the lease duration.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// `leaseDurationSeconds`: how long a record may stay unchanged before others take over.
    pub duration: Duration,
    /// Pause between two renewals (leader) or two looks at the Lease (others).
    pub retry: Duration,
    /// How long after its last successful renewal the leader still considers itself leader.
    pub renew_deadline: Duration,
}

impl Timing {
    pub fn new(duration_seconds: u32) -> Self {
        let duration = Duration::from_secs(u64::from(duration_seconds.max(1)));
        Self {
            duration,
            retry: duration / 3,
            renew_deadline: duration * 2 / 3,
        }
    }
}

/// The elector: runs until dropped; see the module docs.
pub struct Elector {
    api: Api<Lease>,
    identity: String,
    timing: Timing,
    tx: watch::Sender<bool>,
    metrics: Arc<Metrics>,
    /// The Lease record last seen (holder, renew time, resourceVersion) and when it was first
    /// seen so: the base of expiry.
    observed: Option<(Observed, Instant)>,
    /// While leading: the last successful renewal.
    renewed: Option<Instant>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Observed {
    holder: Option<String>,
    resource_version: Option<String>,
}

/// What one look at the Lease found.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Created, took or renewed it.
    Leading,
    /// Someone else holds it and it is not expired.
    Following,
    /// Our write lost a race (409): someone else wrote first.
    Lost,
}

impl Elector {
    pub fn new(
        client: Client,
        namespace: &str,
        identity: String,
        timing: Timing,
        metrics: Arc<Metrics>,
    ) -> (Self, Leadership) {
        let (tx, rx) = watch::channel(false);
        let elector = Self {
            api: Api::namespaced(client, namespace),
            identity,
            timing,
            tx,
            metrics,
            observed: None,
            renewed: None,
        };
        (elector, Leadership { rx })
    }

    /// Tries to acquire, then keep, the Lease; never returns.
    pub async fn run(mut self) {
        tracing::info!(identity = %self.identity, lease = LEASE_NAME, duration = ?self.timing.duration, "leader election starting");
        loop {
            let step = tokio::time::timeout(self.timing.retry, self.try_once()).await;
            let now = Instant::now();
            match step {
                Ok(Ok(Step::Leading)) => {
                    self.renewed = Some(now);
                    self.set(true);
                }
                Ok(Ok(Step::Following | Step::Lost)) => {
                    self.renewed = None;
                    self.set(false);
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, "leader election: the Lease could not be read or written");
                }
                Err(_) => tracing::warn!("leader election: the API server did not answer in time"),
            }
            // A leader that could not renew steps down at its deadline, even mid-sleep.
            let mut next = now + self.timing.retry;
            if let Some(renewed) = self.renewed {
                let deadline = renewed + self.timing.renew_deadline;
                if now >= deadline {
                    self.renewed = None;
                    self.set(false);
                } else {
                    next = next.min(deadline);
                }
            }
            tokio::time::sleep_until(next).await;
            if let Some(renewed) = self.renewed
                && Instant::now() >= renewed + self.timing.renew_deadline
            {
                tracing::warn!("leader election: no renewal before the deadline");
                self.renewed = None;
                self.set(false);
            }
        }
    }

    fn set(&self, leading: bool) {
        self.metrics.is_leader.set(i64::from(leading));
        self.tx.send_if_modified(|current| {
            if *current == leading {
                return false;
            }
            *current = leading;
            if leading {
                tracing::info!(identity = %self.identity, "became leader");
            } else {
                tracing::warn!(identity = %self.identity, "not leader any more: writes stop");
            }
            true
        });
    }

    async fn try_once(&mut self) -> Result<Step, kube::Error> {
        let now = Timestamp::now();
        let Some(lease) = self.api.get_opt(LEASE_NAME).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(LEASE_NAME.to_owned()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now, now, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Step::Leading),
                Err(e) if is_conflict(&e) => Ok(Step::Lost),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let record = Observed {
            holder: holder.clone(),
            resource_version: lease.metadata.resource_version.clone(),
        };
        let seen_at = match &self.observed {
            Some((seen, at)) if *seen == record => *at,
            _ => {
                let at = Instant::now();
                self.observed = Some((record, at));
                at
            }
        };
        let mine = holder.as_deref() == Some(self.identity.as_str());
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.timing.duration, Duration::from_secs);
        let expired = seen_at.elapsed() >= duration;
        if !mine && holder.is_some() && !expired {
            return Ok(Step::Following);
        }
        let (acquired, transitions) = if mine {
            (
                spec.acquire_time.map_or(now, |t| t.0),
                spec.lease_transitions.unwrap_or(0),
            )
        } else {
            (now, spec.lease_transitions.unwrap_or(0).saturating_add(1))
        };
        let mut lease = lease;
        lease.spec = Some(self.spec(acquired, now, transitions));
        // `replace` sends the resourceVersion read above: a concurrent write makes it 409.
        match self
            .api
            .replace(LEASE_NAME, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => {
                // Our own write is a record we know is fresh.
                self.observed = Some((
                    Observed {
                        holder: Some(self.identity.clone()),
                        resource_version: written.metadata.resource_version,
                    },
                    Instant::now(),
                ));
                if !mine {
                    tracing::info!(previous = ?holder, "took the Lease");
                }
                Ok(Step::Leading)
            }
            Err(e) if is_conflict(&e) => Ok(Step::Lost),
            Err(e) => Err(e),
        }
    }

    fn spec(&self, acquired: Timestamp, renewed: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: i32::try_from(self.timing.duration.as_secs()).ok(),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(renewed)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }
}

/// Gives the Lease up if this replica holds it, so another takes over at once (on shutdown,
/// after writes stopped). Best effort: a failure leaves the Lease to expire.
pub async fn release(client: Client, namespace: &str, identity: &str) {
    let api: Api<Lease> = Api::namespaced(client, namespace);
    let result = async {
        let Some(mut lease) = api.get_opt(LEASE_NAME).await? else {
            return Ok(false);
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(false);
        };
        if spec.holder_identity.as_deref() != Some(identity) {
            return Ok(false);
        }
        spec.holder_identity = None;
        spec.acquire_time = None;
        spec.renew_time = None;
        api.replace(LEASE_NAME, &PostParams::default(), &lease)
            .await
            .map(|_| true)
    };
    match tokio::time::timeout(Duration::from_secs(2), result).await {
        Ok(Ok(true)) => tracing::info!("released the Lease"),
        Ok(Ok(false)) => {}
        Ok(Err(error)) => tracing::warn!(%error, "the Lease could not be released"),
        Err(_) => tracing::warn!("the Lease could not be released in time"),
    }
}

fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

/// This replica's identity: `POD_NAME`, else the host name with a random suffix (two
/// processes on one host must differ).
pub fn identity() -> String {
    if let Ok(name) = std::env::var("POD_NAME")
        && !name.trim().is_empty()
    {
        return name.trim().to_owned();
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "tollgate-controller".to_owned());
    format!("{host}-{:08x}", random_u32())
}

/// A random number without a dependency: std seeds each `RandomState` randomly.
fn random_u32() -> u32 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    hasher.finish() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_keep_the_leader_deadline_before_takeover() {
        let t = Timing::new(15);
        assert_eq!(t.retry, Duration::from_secs(5));
        assert_eq!(t.renew_deadline, Duration::from_secs(10));
        assert!(t.renew_deadline < t.duration);
        let t = Timing::new(0);
        assert!(t.retry > Duration::ZERO && t.renew_deadline < t.duration);
    }

    #[test]
    fn identities_differ_without_a_pod_name() {
        if std::env::var("POD_NAME").is_err() {
            assert_ne!(identity(), identity());
        }
    }
}
