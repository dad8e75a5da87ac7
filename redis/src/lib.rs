//! The fleet's shared Redis, as every part of Tollgate that keeps state across proxies reaches
//! it: the proxies' rate limiting, shared stage cache and `@connections` bus, and the
//! controller's usage reader. One [`SharedRedis`] per [`RedisTable`] (as the compiler resolved
//! a gateway's settings) hides which of three deployments it is:
//!
//! - **one server** (`redis://` or `rediss://`): a [`ConnectionManager`] that reconnects by
//!   itself;
//! - **a Redis Cluster**: redis-rs's cluster client, which learns the slot map from any seed,
//!   follows `MOVED` and `ASK`, and learns the new map after a failover. The callers lay their
//!   keys out so that what one command or script touches is in one slot (hash tags);
//! - **Sentinel**: the sentinels are asked for the primary; a connection that drops, or a node
//!   that answers `READONLY` (a primary demoted by a failover), is forgotten, and the next call
//!   asks the sentinels again.
//!
//! Any of them over TLS (a CA bundle and a client certificate from Secrets) and as an ACL user.
//! The password lives in the table only: nothing here logs a URL with it, and [`SharedRedis`]
//! displays as the table does (addresses, user name, Secret).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, ClientTlsConfig, Cmd, ConnectionAddr, ConnectionInfo,
    IntoConnectionInfo, Pipeline, RedisFuture, RedisResult, TlsCertificates, TlsMode, Value,
};
use tollgate_crds::table::{RedisTable, RedisTopology};

/// How long connecting and each call may take.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    pub response: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the Redis settings cannot be used: {0}")]
    Settings(String),
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
}

/// A client for one gateway's Redis settings. Cheap to share (`Arc`); connects on first use.
pub struct SharedRedis {
    table: RedisTable,
    timeouts: Timeouts,
    deployment: Deployment,
}

enum Deployment {
    Standalone {
        client: Client,
        manager: ConnectionManager,
    },
    Cluster {
        client: ClusterClient,
        connection: ArcSwapOption<ClusterConnection>,
        connecting: tokio::sync::Mutex<()>,
    },
    Sentinel {
        sentinels: tokio::sync::Mutex<SentinelClient>,
        primary: Arc<ArcSwapOption<MultiplexedConnection>>,
    },
}

impl SharedRedis {
    /// A client for `table`; no connection is made until the first call.
    pub fn new(table: &RedisTable, timeouts: Timeouts) -> Result<Self, Error> {
        let deployment = match &table.topology {
            RedisTopology::Standalone { url } => {
                let client = node_client(url, table)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeouts.connect))
                    .set_response_timeout(Some(timeouts.response))
                    .set_number_of_retries(1);
                let manager = client.get_connection_manager_lazy(config)?;
                Deployment::Standalone { client, manager }
            }
            RedisTopology::Cluster { nodes } => Deployment::Cluster {
                client: cluster_builder(nodes, table, timeouts)?.build()?,
                connection: ArcSwapOption::empty(),
                connecting: tokio::sync::Mutex::new(()),
            },
            RedisTopology::Sentinel {
                master_name,
                nodes,
                db,
            } => Deployment::Sentinel {
                sentinels: tokio::sync::Mutex::new(sentinel_client(
                    master_name,
                    nodes,
                    *db,
                    table,
                )?),
                primary: Arc::new(ArcSwapOption::empty()),
            },
        };
        Ok(Self {
            table: table.clone(),
            timeouts,
            deployment,
        })
    }

    pub fn table(&self) -> &RedisTable {
        &self.table
    }

    /// Whether keys must be laid out for a cluster (what one call touches in one slot).
    pub fn is_cluster(&self) -> bool {
        matches!(self.deployment, Deployment::Cluster { .. })
    }

    /// A connection for commands, scripts and pipelines: cheap (a clone of a multiplexed
    /// connection) once connected.
    pub async fn connection(&self) -> Result<Connection, Error> {
        match self.ready() {
            Some(connection) => Ok(connection),
            // Boxed: connecting (a cluster's slot map, asking the sentinels) is a large future,
            // which every caller's future would otherwise carry (a request's included).
            None => Box::pin(self.connect()).await,
        }
    }

    /// The connection, when there is one already.
    fn ready(&self) -> Option<Connection> {
        match &self.deployment {
            Deployment::Standalone { manager, .. } => Some(Connection::Standalone(manager.clone())),
            Deployment::Cluster { connection, .. } => connection
                .load_full()
                .map(|c| Connection::Cluster((*c).clone())),
            Deployment::Sentinel { primary, .. } => {
                primary.load_full().map(|c| Connection::Sentinel {
                    connection: (*c).clone(),
                    primary: primary.clone(),
                })
            }
        }
    }

    /// Connects: one caller at a time, the others then finding its connection.
    async fn connect(&self) -> Result<Connection, Error> {
        match &self.deployment {
            Deployment::Standalone { manager, .. } => Ok(Connection::Standalone(manager.clone())),
            Deployment::Cluster {
                client,
                connection,
                connecting,
            } => {
                let _one_at_a_time = connecting.lock().await;
                if let Some(c) = connection.load_full() {
                    return Ok(Connection::Cluster((*c).clone()));
                }
                let made = self.within(client.get_async_connection()).await?;
                connection.store(Some(Arc::new(made.clone())));
                Ok(Connection::Cluster(made))
            }
            Deployment::Sentinel { sentinels, primary } => {
                let mut sentinels = sentinels.lock().await;
                if let Some(c) = primary.load_full() {
                    return Ok(Connection::Sentinel {
                        connection: (*c).clone(),
                        primary: primary.clone(),
                    });
                }
                let client = self.within(sentinels.async_get_client()).await?;
                let made = self
                    .within(client.get_multiplexed_async_connection_with_config(&self.config()))
                    .await?;
                tracing::info!(redis = %self, primary = %address(client.get_connection_info()), "connected to the primary the sentinels name");
                primary.store(Some(Arc::new(made.clone())));
                Ok(Connection::Sentinel {
                    connection: made,
                    primary: primary.clone(),
                })
            }
        }
    }

    /// Publishes `payload` on `channel`; how many subscribers received it. On a cluster the
    /// channel is sharded (`SPUBLISH`): published in the slot of its name, where its
    /// subscribers are, so the count is exact there too.
    pub async fn publish(&self, channel: &str, payload: &[u8]) -> Result<i64, Error> {
        let command = if self.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        };
        let mut connection = self.connection().await?;
        let mut publish = redis::cmd(command);
        publish.arg(channel).arg(payload);
        let call = publish.query_async(&mut connection);
        match tokio::time::timeout(self.timeouts.response, call).await {
            Ok(received) => Ok(received?),
            Err(_) => Err(Error::Timeout(self.timeouts.response)),
        }
    }

    /// Subscribes to `channel`: on one server or the primary the sentinels name, a plain
    /// subscription, which ends when that node goes away (subscribe again: Sentinel is then
    /// asked again); on a cluster, a sharded subscription (`SSUBSCRIBE`) that redis-rs makes
    /// again by itself on the slot's new primary after a failover.
    pub async fn subscribe(&self, channel: &str) -> Result<Subscription, Error> {
        match &self.deployment {
            Deployment::Standalone { client, .. } => self.plain_subscription(client, channel).await,
            Deployment::Sentinel { sentinels, .. } => {
                let client = {
                    let mut sentinels = sentinels.lock().await;
                    self.within(sentinels.async_get_client()).await?
                };
                self.plain_subscription(&client, channel).await
            }
            Deployment::Cluster { .. } => {
                let RedisTopology::Cluster { nodes } = &self.table.topology else {
                    unreachable!("a cluster deployment is made from a cluster topology");
                };
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                let client = cluster_builder(nodes, &self.table, self.timeouts)?
                    .use_protocol(redis::ProtocolVersion::RESP3)
                    .push_sender(tx)
                    .build()?;
                let mut connection = self.within(client.get_async_connection()).await?;
                self.within(connection.ssubscribe(channel)).await?;
                Ok(Subscription::Sharded {
                    _connection: connection,
                    messages: rx,
                })
            }
        }
    }

    async fn plain_subscription(
        &self,
        client: &Client,
        channel: &str,
    ) -> Result<Subscription, Error> {
        let mut pubsub = self.within(client.get_async_pubsub()).await?;
        self.within(pubsub.subscribe(channel)).await?;
        Ok(Subscription::Plain(Box::pin(pubsub.into_on_message())))
    }

    fn config(&self) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeouts.connect))
            .set_response_timeout(Some(self.timeouts.response))
    }

    /// `call`, given up after the connect timeout.
    async fn within<T>(&self, call: impl Future<Output = RedisResult<T>>) -> Result<T, Error> {
        match tokio::time::timeout(self.timeouts.connect, call).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(Error::Timeout(self.timeouts.connect)),
        }
    }
}

impl fmt::Display for SharedRedis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.table.fmt(f)
    }
}

impl fmt::Debug for SharedRedis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SharedRedis")
            .field(&format_args!("{self}"))
            .finish()
    }
}

/// Messages on a subscribed channel, as they come.
pub enum Subscription {
    Plain(std::pin::Pin<Box<dyn futures::Stream<Item = redis::Msg> + Send>>),
    Sharded {
        /// Kept open for as long as the subscription lives.
        _connection: ClusterConnection,
        messages: tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>,
    },
}

impl Subscription {
    /// The next message's payload; `None` when the subscription has ended (its node went
    /// away).
    pub async fn next(&mut self) -> Option<Vec<u8>> {
        match self {
            Subscription::Plain(messages) => {
                let message = std::future::poll_fn(|cx| messages.as_mut().poll_next(cx)).await?;
                Some(message.get_payload_bytes().to_vec())
            }
            Subscription::Sharded { messages, .. } => loop {
                // Confirmations of (re)subscriptions and disconnection notices come this way
                // too; only messages carry payloads.
                let push = messages.recv().await?;
                if let Some(message) = redis::Msg::from_push_info(push) {
                    return Some(message.get_payload_bytes().to_vec());
                }
            },
        }
    }
}

/// A connection of any deployment; scripts, commands and pipelines run on it as on any
/// redis-rs connection.
#[derive(Clone)]
pub enum Connection {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel {
        connection: MultiplexedConnection,
        /// Forgotten when this connection fails, so the next call asks the sentinels again.
        primary: Arc<ArcSwapOption<MultiplexedConnection>>,
    },
}

impl Connection {
    /// After a failed call on a Sentinel primary: forget it when the failure says it may no
    /// longer be the primary (the connection dropped, or it is now a read-only replica).
    fn failed(primary: &ArcSwapOption<MultiplexedConnection>, error: &redis::RedisError) {
        let demoted = error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly);
        if demoted || error.is_io_error() || error.is_connection_dropped() || error.is_timeout() {
            primary.store(None);
        }
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Standalone(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
            Connection::Sentinel {
                connection,
                primary,
            } => Box::pin(async move {
                let result = connection.req_packed_command(cmd).await;
                if let Err(e) = &result {
                    Connection::failed(primary, e);
                }
                result
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Standalone(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Sentinel {
                connection,
                primary,
            } => Box::pin(async move {
                let result = connection
                    .req_packed_commands(pipeline, offset, count)
                    .await;
                if let Err(e) = &result {
                    Connection::failed(primary, e);
                }
                result
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Standalone(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
            Connection::Sentinel { connection, .. } => connection.get_db(),
        }
    }
}

/// A cluster client for `nodes`, with the table's credentials and TLS material.
fn cluster_builder(
    nodes: &[String],
    table: &RedisTable,
    timeouts: Timeouts,
) -> Result<ClusterClientBuilder, Error> {
    let infos = nodes
        .iter()
        .map(|n| n.as_str().into_connection_info())
        .collect::<RedisResult<Vec<_>>>()?;
    let mut builder = ClusterClientBuilder::new(infos)
        .connection_timeout(timeouts.connect)
        .response_timeout(timeouts.response)
        .retries(2);
    if let Some(auth) = &table.auth {
        if let Some(user) = &auth.username {
            builder = builder.username(user);
        }
        builder = builder.password(&auth.password);
    }
    if nodes.iter().any(|n| n.starts_with("rediss://")) {
        builder = builder.tls(TlsMode::Secure);
        if let Some(certificates) = certificates(table) {
            builder = builder.certs(certificates);
        }
    }
    Ok(builder)
}

/// A client for one node at `url`, with the table's credentials and TLS material.
fn node_client(url: &str, table: &RedisTable) -> Result<Client, Error> {
    let mut info: ConnectionInfo = url.into_connection_info()?;
    if let Some(auth) = &table.auth {
        let mut settings = info.redis_settings().clone().set_password(&auth.password);
        if let Some(user) = &auth.username {
            settings = settings.set_username(user);
        }
        info = info.set_redis_settings(settings);
    }
    match (info.addr(), certificates(table)) {
        (ConnectionAddr::TcpTls { .. }, Some(certificates)) => {
            Ok(Client::build_with_tls(info, certificates)?)
        }
        _ => Ok(Client::open(info)?),
    }
}

fn sentinel_client(
    master_name: &str,
    nodes: &[String],
    db: u8,
    table: &RedisTable,
) -> Result<SentinelClient, Error> {
    let addresses = nodes
        .iter()
        .map(|n| Ok(n.as_str().into_connection_info()?.addr().clone()))
        .collect::<RedisResult<Vec<_>>>()?;
    let tls = addresses
        .iter()
        .any(|a| matches!(a, ConnectionAddr::TcpTls { .. }));
    let mut builder =
        SentinelClientBuilder::new(addresses, master_name, SentinelServerType::Master)?
            .set_client_to_redis_db(i64::from(db));
    if tls {
        builder = builder
            .set_client_to_redis_tls_mode(TlsMode::Secure)
            .set_client_to_sentinel_tls_mode(TlsMode::Secure);
        if let Some(certificates) = certificates(table) {
            builder = builder
                .set_client_to_redis_certificates(certificates.clone())
                .set_client_to_sentinel_certificates(certificates);
        }
    }
    if let Some(auth) = &table.auth {
        builder = builder.set_client_to_redis_password(&auth.password);
        if let Some(user) = &auth.username {
            builder = builder.set_client_to_redis_username(user);
        }
        if let Some(password) = &auth.sentinel_password {
            builder = builder.set_client_to_sentinel_password(password);
        }
        if let Some(user) = &auth.sentinel_username {
            builder = builder.set_client_to_sentinel_username(user);
        }
    }
    Ok(builder.build()?)
}

/// The table's CA bundle and client certificate, when it names either.
fn certificates(table: &RedisTable) -> Option<TlsCertificates> {
    let tls = table.tls.as_ref()?;
    let client_tls = match (&tls.client_certificate_pem, &tls.client_key_pem) {
        (Some(cert), Some(key)) => Some(ClientTlsConfig {
            client_cert: cert.as_bytes().to_vec(),
            client_key: key.as_bytes().to_vec(),
        }),
        _ => None,
    };
    Some(TlsCertificates {
        client_tls,
        root_cert: tls.ca_pem.as_ref().map(|ca| ca.as_bytes().to_vec()),
    })
}

/// `host:port` of a connection, for logs (never its credentials).
fn address(info: &ConnectionInfo) -> String {
    match info.addr() {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            format!("{host}:{port}")
        }
        other => format!("{other:?}"),
    }
}
