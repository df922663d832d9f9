//! The machine's Redis for unit tests: a unique key prefix per test, every
//! key under it deleted on drop, and a clear failure when Redis is absent.

use crate::cluster::{RedisLink, Registry};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// A key prefix of its own; its keys are deleted when dropped.
pub struct TestPrefix {
    pub prefix: String,
}

impl TestPrefix {
    pub fn new(tag: &str) -> TestPrefix {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let client = redis::Client::open(REDIS_URL).expect("a valid Redis URL");
        if let Err(error) = client.get_connection_with_timeout(Duration::from_secs(1)) {
            panic!(
                "the cluster tests need Redis at {REDIS_URL} and cannot reach it ({error}); \
                 start it (e.g. `redis-server --daemonize yes`)"
            );
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.subsec_nanos())
            .unwrap_or(0);
        let prefix = format!(
            "flashgate-test:{tag}:{}:{}:{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        TestPrefix { prefix }
    }

    pub fn registry(&self) -> Registry {
        let link = RedisLink::new(REDIS_URL, Duration::from_secs(2)).expect("a Redis link");
        Registry::new(link, &self.prefix)
    }

    /// Keys under the prefix, for checks.
    pub fn keys(&self) -> Vec<String> {
        let client = redis::Client::open(REDIS_URL).expect("a valid Redis URL");
        let Ok(mut connection) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
            return Vec::new();
        };
        let pattern = format!("{}:*", self.prefix);
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(&pattern)
            .query(&mut connection)
            .unwrap_or_default();
        keys
    }
}

impl Drop for TestPrefix {
    fn drop(&mut self) {
        let keys = self.keys();
        if keys.is_empty() {
            return;
        }
        let client = redis::Client::open(REDIS_URL).expect("a valid Redis URL");
        if let Ok(mut connection) = client.get_connection_with_timeout(Duration::from_secs(1)) {
            let _: Result<i64, _> = redis::cmd("DEL").arg(&keys).query(&mut connection);
        }
    }
}
