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
//! The link also remembers whether its last call reached Redis
//! ([`RedisLink::reachable`]), for `/readyz`.

use crate::metrics as names;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, FromRedisValue, RedisError};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Mutex;

/// Least time between two connection attempts.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, thiserror::Error)]
pub enum RedisFailure {
    #[error("Redis at {url} is unreachable: {message}")]
    Unreachable { url: String, message: String },
    #[error("Redis refused `{op}`: {message}")]
    Refused { op: &'static str, message: String },
}

pub struct RedisLink {
    url: String,
    client: Client,
    timeout: Duration,
    connection: Mutex<Option<MultiplexedConnection>>,
    last_connect_ms: AtomicU64,
    started: std::time::Instant,
    calls: AtomicU64,
    /// False while the last call (or subscription) could not reach Redis.
    reachable: AtomicBool,
}

impl RedisLink {
    pub fn new(url: &str, timeout: Duration) -> Result<RedisLink, RedisFailure> {
        let client = Client::open(url).map_err(|error| RedisFailure::Unreachable {
            url: url.to_owned(),
            message: error.to_string(),
        })?;
        Ok(RedisLink {
            url: url.to_owned(),
            client,
            timeout,
            connection: Mutex::new(None),
            last_connect_ms: AtomicU64::new(0),
            started: std::time::Instant::now(),
            calls: AtomicU64::new(0),
            reachable: AtomicBool::new(true),
        })
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
        command: impl AsyncFnOnce(&mut MultiplexedConnection) -> Result<T, RedisError>,
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
            Ok(Err(error)) => Err(self.broken(error.to_string()).await),
            Err(_) => Err(self
                .broken(format!("no answer within {:?}", self.timeout))
                .await),
        };
        if answer.is_ok() || matches!(answer, Err(RedisFailure::Refused { .. })) {
            self.reachable.store(true, Ordering::Release);
        }
        answer
    }

    /// A subscription to `channel` on a connection of its own (a
    /// subscribed connection can do nothing else).
    pub async fn subscribe(&self, channel: &str) -> Result<redis::aio::PubSubStream, RedisFailure> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(names::CLUSTER_REDIS_CALLS_TOTAL, "op" => "subscribe").increment(1);
        let subscribed = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
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

    async fn connection(&self) -> Result<MultiplexedConnection, RedisFailure> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let now_ms = self.started.elapsed().as_millis() as u64 + 1;
        let last = self.last_connect_ms.load(Ordering::Relaxed);
        if last != 0 && now_ms < last + RECONNECT_BACKOFF.as_millis() as u64 {
            return Err(self.unreachable("reconnecting after a failure; backing off"));
        }
        self.last_connect_ms.store(now_ms, Ordering::Relaxed);
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let connected = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|error| self.unreachable(&error.to_string()))?;
        *slot = Some(connected.clone());
        Ok(connected)
    }

    async fn broken(&self, message: String) -> RedisFailure {
        *self.connection.lock().await = None;
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

/// True for an error Redis answered (a script's error reply, a wrong type):
/// the connection is fine.
fn is_server_answer(error: &RedisError) -> bool {
    !(error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal())
}
