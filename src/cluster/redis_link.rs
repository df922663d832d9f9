//! One multiplexed Redis connection with a time limit on every call, a
//! reconnect on the next call after a broken one, and the call count.
//!
//! The multiplexed connection pipelines every caller's commands over one
//! socket, so the refill task, the poller and the host actions share it
//! without a pool. A call that fails on the connection (I/O, timeout) drops
//! it; the next call connects again, at most one connect per
//! `RECONNECT_BACKOFF`, so a Redis that is down costs one refused connect
//! per back-off, not one per caller.
//!
//! On a Redis Cluster (`cluster.redis_mode = "cluster"`) the connection is
//! the `redis` crate's cluster connection instead: it learns the slots from
//! the seed nodes, keeps one multiplexed connection per master, sends each
//! command (a script call by its first key) to the master of its slot and
//! follows `MOVED`/`ASK` redirections. Every command the registry sends
//! stays within one slot ([`super::registry`]'s hash tags). The time
//! limit, the reconnect back-off and the call count are the same.
//!
//! The link also remembers whether its last call reached Redis
//! ([`RedisLink::reachable`]), for `/readyz`.

use crate::config::{ClusterConfig, RedisMode};
use crate::metrics as names;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Client, Cmd, FromRedisValue, Pipeline, RedisError};
use redis::{RedisFuture, Value};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Least time between two connection attempts.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, thiserror::Error)]
pub enum RedisFailure {
    #[error("Redis at {url} is unreachable: {message}")]
    Unreachable { url: String, message: String },
    #[error("Redis refused `{op}`: {message}")]
    Refused { op: &'static str, message: String },
}

/// What a link connects to.
enum Target {
    Single(Client),
    /// A Redis Cluster: the client for commands, and a plain client per
    /// seed node for the subscription (see [`RedisLink::subscribe`]).
    Cluster {
        client: Box<ClusterClient>,
        seeds: Vec<Client>,
        next_seed: AtomicUsize,
    },
}

/// The connection a call runs on: one Redis's multiplexed connection or a
/// Redis Cluster's connection, both cheap to clone (every clone shares the
/// sockets).
#[derive(Clone)]
pub enum RedisConnection {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConnection::Single(connection) => connection.req_packed_command(cmd),
            RedisConnection::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConnection::Single(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            RedisConnection::Cluster(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConnection::Single(connection) => connection.get_db(),
            RedisConnection::Cluster(connection) => connection.get_db(),
        }
    }
}

pub struct RedisLink {
    url: String,
    target: Target,
    timeout: Duration,
    /// The live connection, cloned by every call under a lock held for
    /// the clone only (the order path's limit checks take it: a lock held
    /// across an await would queue and park them).
    connection: Mutex<Option<RedisConnection>>,
    /// One connect at a time.
    connecting: tokio::sync::Mutex<()>,
    last_connect_ms: AtomicU64,
    started: std::time::Instant,
    calls: AtomicU64,
    /// False while the last call (or subscription) could not reach Redis.
    reachable: AtomicBool,
}

impl RedisLink {
    /// A link to one Redis at `url`.
    pub fn new(url: &str, timeout: Duration) -> Result<RedisLink, RedisFailure> {
        let client = Client::open(url).map_err(|error| invalid(url, error))?;
        Ok(RedisLink::with_target(url, Target::Single(client), timeout))
    }

    /// A link to the Redis Cluster that `seeds` (one or more of its nodes)
    /// belong to.
    pub fn cluster(seeds: &[&str], timeout: Duration) -> Result<RedisLink, RedisFailure> {
        let url = seeds.join(",");
        let client = ClusterClientBuilder::new(seeds.to_vec())
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .build()
            .map_err(|error| invalid(&url, error))?;
        let seeds = seeds
            .iter()
            .map(|seed| Client::open(*seed).map_err(|error| invalid(seed, error)))
            .collect::<Result<Vec<_>, _>>()?;
        let target = Target::Cluster {
            client: Box::new(client),
            seeds,
            next_seed: AtomicUsize::new(0),
        };
        Ok(RedisLink::with_target(&url, target, timeout))
    }

    /// The link `[cluster]` names: `redis_url` by `redis_mode`, with
    /// `redis_timeout_ms`.
    pub fn for_config(config: &ClusterConfig) -> Result<RedisLink, RedisFailure> {
        let timeout = Duration::from_millis(config.redis_timeout_ms);
        match config.redis_mode {
            RedisMode::Single => RedisLink::new(config.redis_url.trim(), timeout),
            RedisMode::Cluster => RedisLink::cluster(&config.redis_urls(), timeout),
        }
    }

    /// True on a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster { .. })
    }

    fn with_target(url: &str, target: Target, timeout: Duration) -> RedisLink {
        RedisLink {
            url: url.to_owned(),
            target,
            timeout,
            connection: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            last_connect_ms: AtomicU64::new(0),
            started: std::time::Instant::now(),
            calls: AtomicU64::new(0),
            reachable: AtomicBool::new(true),
        }
    }

    /// Whether the last call reached Redis: false from a call that could
    /// not (no connection, a broken one, no answer in time, or refused by
    /// the reconnect back-off) until one that does. An error Redis answered
    /// (a script refusing) counts as reached.
    pub fn reachable(&self) -> bool {
        self.reachable.load(Ordering::Acquire)
    }

    /// Calls made so far (every op, successful or not).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Runs one command or script invocation, labelled `op` in
    /// `flashgate_cluster_redis_calls_total`.
    pub async fn call<T: FromRedisValue>(
        &self,
        op: &'static str,
        command: impl AsyncFnOnce(&mut RedisConnection) -> Result<T, RedisError>,
    ) -> Result<T, RedisFailure> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(names::CLUSTER_REDIS_CALLS_TOTAL, "op" => op).increment(1);
        let mut connection = self.connection().await?;
        let answer = match tokio::time::timeout(self.timeout, command(&mut connection)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) if is_server_answer(&error) => Err(RedisFailure::Refused {
                op,
                message: error.to_string(),
            }),
            Ok(Err(error)) => Err(self.broken(error.to_string())),
            Err(_) => Err(self.broken(format!("no answer within {:?}", self.timeout))),
        };
        let reached = answer.is_ok() || matches!(answer, Err(RedisFailure::Refused { .. }));
        // Written only on a change: every order's limit check comes here.
        if reached && !self.reachable.load(Ordering::Acquire) {
            self.reachable.store(true, Ordering::Release);
        }
        answer
    }

    /// A subscription to `channel` on a connection of its own (a
    /// subscribed connection can do nothing else).
    ///
    /// On a Redis Cluster, a `PUBLISH` on any node reaches the subscribers
    /// of every node (it travels the cluster bus), so the subscription is a
    /// plain connection to one seed node; each new subscription takes the
    /// next seed, so a seed that is down is passed over on the reconnect.
    pub async fn subscribe(&self, channel: &str) -> Result<redis::aio::PubSubStream, RedisFailure> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(names::CLUSTER_REDIS_CALLS_TOTAL, "op" => "subscribe").increment(1);
        let client = match &self.target {
            Target::Single(client) => client,
            Target::Cluster {
                seeds, next_seed, ..
            } => &seeds[next_seed.fetch_add(1, Ordering::Relaxed) % seeds.len()],
        };
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(channel).await?;
            Ok::<_, RedisError>(pubsub.into_on_message())
        };
        match tokio::time::timeout(self.timeout, subscribed).await {
            Ok(Ok(stream)) => {
                self.reachable.store(true, Ordering::Release);
                Ok(stream)
            }
            Ok(Err(error)) => Err(self.unreachable(&error.to_string())),
            Err(_) => Err(self.unreachable(&format!("no answer within {:?}", self.timeout))),
        }
    }

    async fn connection(&self) -> Result<RedisConnection, RedisFailure> {
        if let Some(connection) = self.current() {
            return Ok(connection);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(connection) = self.current() {
            return Ok(connection); // another call connected meanwhile
        }
        let now_ms = self.started.elapsed().as_millis() as u64 + 1;
        let last = self.last_connect_ms.load(Ordering::Relaxed);
        if last != 0 && now_ms < last + RECONNECT_BACKOFF.as_millis() as u64 {
            return Err(self.unreachable("reconnecting after a failure; backing off"));
        }
        self.last_connect_ms.store(now_ms, Ordering::Relaxed);
        let connected = match &self.target {
            Target::Single(client) => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout));
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map(RedisConnection::Single)
            }
            Target::Cluster { client, .. } => {
                match tokio::time::timeout(self.timeout, client.get_async_connection()).await {
                    Ok(connected) => connected.map(RedisConnection::Cluster),
                    Err(_) => {
                        let message = format!("no cluster connection within {:?}", self.timeout);
                        return Err(self.unreachable(&message));
                    }
                }
            }
        }
        .map_err(|error| self.unreachable(&error.to_string()))?;
        *self.slot() = Some(connected.clone());
        Ok(connected)
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<RedisConnection>> {
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn current(&self) -> Option<RedisConnection> {
        self.slot().clone()
    }

    fn broken(&self, message: String) -> RedisFailure {
        *self.slot() = None;
        self.unreachable(&message)
    }

    fn unreachable(&self, message: &str) -> RedisFailure {
        self.reachable.store(false, Ordering::Release);
        RedisFailure::Unreachable {
            url: self.url.clone(),
            message: message.to_owned(),
        }
    }
}

fn invalid(url: &str, error: RedisError) -> RedisFailure {
    RedisFailure::Unreachable {
        url: url.to_owned(),
        message: error.to_string(),
    }
}

/// True for an error Redis answered (a script's error reply, a wrong type):
/// the connection is fine. On a Redis Cluster, a redirection or
/// `CLUSTERDOWN`/`TRYAGAIN` left after the client's own retries, or no
/// connection to a slot's master, counts as unreachable: the connection is
/// dropped and the next call learns the slots again.
fn is_server_answer(error: &RedisError) -> bool {
    !(error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_cluster_error()
        || error.kind() == redis::ErrorKind::ClusterConnectionNotFound)
}
