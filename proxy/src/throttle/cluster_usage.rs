//! Usage counts on a Redis Cluster, written in batches. On one server the admission script
//! counts a request in its plan's hash of the day; on a cluster that hash is in the plan's slot,
//! not the key's, so an admitted request is counted here and the counts go to Redis every
//! [`FLUSH_EVERY`] and at shutdown, one `HINCRBY` per plan, day and key: a round trip per
//! batch rather than per request. A batch Redis refuses is kept for the next; a proxy that is
//! killed loses at most one period's counts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use tollgate_redis::Connection;

/// How often counts go to Redis.
pub const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// How long a plan's hash of a day is kept: 91 days, as the admission script keeps it.
const TTL_SECONDS: i64 = 91 * 86_400;

/// Counts not yet in Redis: the plan's hash of the day -> key id -> requests.
type Pending = HashMap<String, HashMap<String, u64>>;

#[derive(Default)]
pub struct ClusterUsage {
    pending: Arc<Mutex<Pending>>,
    /// The connection the counts go through, set (and the writing task started) by the first
    /// count.
    connection: OnceLock<Connection>,
}

impl ClusterUsage {
    /// Counts one admitted request of `tenant` in `hash`.
    pub fn count(&self, hash: &str, tenant: &str, connection: &Connection) {
        {
            let mut pending = lock(&self.pending);
            let tenants = match pending.get_mut(hash) {
                Some(tenants) => tenants,
                None => pending.entry(hash.to_owned()).or_default(),
            };
            match tenants.get_mut(tenant) {
                Some(count) => *count += 1,
                None => {
                    tenants.insert(tenant.to_owned(), 1);
                }
            }
        }
        self.connection.get_or_init(|| {
            tokio::spawn(every_period(
                Arc::downgrade(&self.pending),
                connection.clone(),
            ));
            connection.clone()
        });
    }

    /// Writes what is pending now (at shutdown).
    pub async fn flush(&self) {
        if let Some(connection) = self.connection.get() {
            write(&self.pending, &mut connection.clone(), &mut false).await;
        }
    }
}

/// Writes the pending counts every [`FLUSH_EVERY`] for as long as their owner lives.
async fn every_period(pending: Weak<Mutex<Pending>>, mut connection: Connection) {
    let mut failing = false;
    loop {
        tokio::time::sleep(FLUSH_EVERY).await;
        let Some(pending) = pending.upgrade() else {
            return;
        };
        write(&pending, &mut connection, &mut failing).await;
    }
}

/// One `HINCRBY` per key id and an `EXPIRE` per hash, a pipeline per hash (one slot each);
/// what Redis refuses goes back to `pending`. `failing` keeps the warning to one per outage.
async fn write(pending: &Mutex<Pending>, connection: &mut Connection, failing: &mut bool) {
    let batch = std::mem::take(&mut *lock(pending));
    for (hash, tenants) in batch {
        let mut pipe = redis::pipe();
        for (tenant, count) in &tenants {
            pipe.hincr(&hash, tenant, *count).ignore();
        }
        pipe.expire(&hash, TTL_SECONDS).ignore();
        match pipe.query_async::<()>(&mut *connection).await {
            Ok(()) => *failing = false,
            Err(error) => {
                if !*failing {
                    tracing::warn!(%error, hash, "usage counts not written to the cluster; kept for the next try");
                }
                *failing = true;
                // Back with what came meanwhile.
                let mut pending = lock(pending);
                let kept = pending.entry(hash).or_default();
                for (tenant, count) in tenants {
                    *kept.entry(tenant).or_default() += count;
                }
            }
        }
    }
}

fn lock(pending: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    pending.lock().unwrap_or_else(PoisonError::into_inner)
}
