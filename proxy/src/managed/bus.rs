//! The fleet's bus for `@connections`: Redis publish/subscribe, one channel per proxy.
//!
//! Each proxy subscribes to `tollgate:ws:{tag}`, its own tag being the first bytes of every
//! connection id it gives out ([`registry`](super::registry)). A call for a connection held
//! elsewhere is published to the holder's channel with the caller's channel to answer on;
//! the holder carries it out as its own `@connections` call and publishes the outcome back.
//! `PUBLISH` says how many subscribers got a message: none means the holder is gone (it
//! stopped, and its connections with it), which is 410 at once, with no registry of
//! connections in Redis to keep true.
//!
//! Why not proxy-to-proxy HTTP: proxies would have to find each other (addresses of pods
//! that come and go) and be reachable from each other; every proxy of a fleet that serves
//! WebSockets already reaches one Redis. Why not a registry of connections in Redis: each
//! connect and disconnect would be a write, and a proxy that dies would leave its entries;
//! here a dead proxy's connections are gone the moment its subscription is.
//!
//! On a Redis Cluster the channels are sharded (`SSUBSCRIBE`/`SPUBLISH`): each lives in the
//! slot of its name, so `SPUBLISH`'s count of receivers is exact, as `PUBLISH`'s is on one
//! server. With Sentinel, a subscription that ends with its node asks the sentinels again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tollgate_crds::table::RedisTable;
use tollgate_redis::{SharedRedis, Subscription, Timeouts};

use super::management::{self, Op, Outcome};
use super::registry::Registry;

/// How long a call waits for the holder's answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long connecting to Redis may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a lost subscription is tried again.
const RESUBSCRIBE_EVERY: Duration = Duration::from_secs(1);

/// A call for another proxy's connection.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Call {
    /// `namespace/name` of the gateway and the stage it was made to.
    pub gateway: String,
    pub stage: String,
    pub id: String,
    pub op: Op,
}

/// What travels on the bus.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
enum Envelope {
    #[serde(rename_all = "camelCase")]
    Call {
        reply_to: String,
        correlation: u64,
        call: Call,
    },
    Reply {
        correlation: u64,
        outcome: Outcome,
    },
}

/// The bus, by Redis settings (each WebSocket API names its own; most fleets share one).
#[derive(Default)]
pub struct Bus {
    links: tokio::sync::Mutex<HashMap<RedisTable, Arc<Link>>>,
}

/// This proxy on one Redis: a client to publish with, and its subscription.
struct Link {
    redis: SharedRedis,
    own_channel: String,
    next: AtomicU64,
    waiting: Arc<Mutex<HashMap<u64, oneshot::Sender<Outcome>>>>,
}

fn channel(tag: &str) -> String {
    format!("tollgate:ws:{tag}")
}

impl Bus {
    /// Makes sure this proxy listens on `url` for calls to its connections. A Redis that
    /// cannot be reached is logged: the connection is still served, and `@connections`
    /// calls made to this proxy still reach it.
    pub async fn listen(&self, redis: &RedisTable, registry: &Arc<Registry>) {
        if let Err(e) = self.link(redis, registry).await {
            tracing::warn!(%redis, error = %e, "the @connections bus is unreachable");
        }
    }

    /// Carries a call to the proxy whose tag is `tag`, and its outcome back.
    pub async fn call(
        &self,
        redis: &RedisTable,
        registry: &Arc<Registry>,
        tag: &str,
        call: Call,
    ) -> Outcome {
        let link = match self.link(redis, registry).await {
            Ok(link) => link,
            Err(e) => {
                tracing::warn!(%redis, error = %e, "the @connections bus is unreachable");
                return Outcome::Unreachable;
            }
        };
        let correlation = link.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&link.waiting).insert(correlation, tx);
        let envelope = Envelope::Call {
            reply_to: link.own_channel.clone(),
            correlation,
            call,
        };
        let outcome = async {
            let received = publish(&link.redis, &channel(tag), &envelope).await?;
            if received == 0 {
                // Nobody listens on the holder's channel: the proxy is gone, and so are its
                // connections.
                return Ok(Outcome::Gone);
            }
            Ok::<_, BusError>(
                tokio::time::timeout(CALL_TIMEOUT, rx)
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or(Outcome::Unreachable),
            )
        }
        .await;
        lock(&link.waiting).remove(&correlation);
        outcome.unwrap_or_else(|e| {
            tracing::warn!(%redis, error = %e, "@connections call not carried");
            Outcome::Unreachable
        })
    }

    /// The link to `redis`, made (and subscribed) on first use.
    async fn link(
        &self,
        redis: &RedisTable,
        registry: &Arc<Registry>,
    ) -> Result<Arc<Link>, BusError> {
        let mut links = self.links.lock().await;
        if let Some(link) = links.get(redis) {
            return Ok(link.clone());
        }
        let timeouts = Timeouts {
            connect: CONNECT_TIMEOUT,
            response: CALL_TIMEOUT,
        };
        let link = Arc::new(Link {
            redis: SharedRedis::new(redis, timeouts)?,
            own_channel: channel(&registry.tag()),
            next: AtomicU64::new(0),
            waiting: Arc::default(),
        });
        let (subscribed, first) = oneshot::channel();
        tokio::spawn(subscribe(link.clone(), registry.clone(), subscribed));
        // A connection is reachable through the bus once the subscription is made.
        tokio::time::timeout(CONNECT_TIMEOUT, first)
            .await
            .map_err(|_| BusError::Timeout)?
            .map_err(|_| BusError::Timeout)?;
        links.insert(redis.clone(), link.clone());
        tracing::info!(%redis, channel = %link.own_channel, "listening on the @connections bus");
        Ok(link)
    }
}

/// Keeps this proxy subscribed to its channel for as long as the proxy runs: when Redis goes
/// away the subscription is made again (every [`RESUBSCRIBE_EVERY`]), so this proxy's
/// connections become reachable again with it. `subscribed` is told of the first one.
async fn subscribe(link: Arc<Link>, registry: Arc<Registry>, subscribed: oneshot::Sender<()>) {
    let mut subscribed = Some(subscribed);
    loop {
        match link.redis.subscribe(&link.own_channel).await {
            Ok(subscription) => {
                if let Some(tx) = subscribed.take() {
                    let _ = tx.send(());
                }
                serve(subscription, &link, &registry).await;
                tracing::warn!(channel = %link.own_channel, "the @connections bus subscription ended; subscribing again");
            }
            Err(e) => {
                tracing::warn!(redis = %link.redis, error = %e, "the @connections bus is unreachable")
            }
        }
        tokio::time::sleep(RESUBSCRIBE_EVERY).await;
    }
}

/// Answers the calls that come for this proxy's connections and hands replies to the calls
/// waiting for them, for as long as the subscription lasts.
async fn serve(mut subscription: Subscription, link: &Arc<Link>, registry: &Arc<Registry>) {
    while let Some(payload) = subscription.next().await {
        let envelope: Envelope = match serde_json::from_slice(&payload) {
            Ok(envelope) => envelope,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable message on the @connections bus");
                continue;
            }
        };
        match envelope {
            Envelope::Reply {
                correlation,
                outcome,
            } => {
                if let Some(tx) = lock(&link.waiting).remove(&correlation) {
                    let _ = tx.send(outcome);
                }
            }
            Envelope::Call {
                reply_to,
                correlation,
                call,
            } => {
                let (registry, link) = (registry.clone(), link.clone());
                tokio::spawn(async move {
                    let outcome =
                        management::local(&registry, &call.gateway, &call.stage, &call.id, call.op)
                            .await;
                    let reply = Envelope::Reply {
                        correlation,
                        outcome,
                    };
                    if let Err(e) = publish(&link.redis, &reply_to, &reply).await {
                        tracing::warn!(error = %e, "@connections reply not sent");
                    }
                });
            }
        }
    }
}

async fn publish(redis: &SharedRedis, channel: &str, envelope: &Envelope) -> Result<i64, BusError> {
    let payload = serde_json::to_vec(envelope)?;
    Ok(redis.publish(channel, &payload).await?)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug, thiserror::Error)]
enum BusError {
    #[error(transparent)]
    Redis(#[from] tollgate_redis::Error),
    #[error("connecting to Redis timed out")]
    Timeout,
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}
