//! A real Redis Cluster for tests: `masters` `redis-server` processes on
//! free loopback ports (no replicas), each in cluster mode with its files in
//! a temp dir of its own, joined by `redis-cli --cluster create`, waited on
//! until every node says `cluster_state:ok` and agrees on the slots. Killed,
//! and its dir removed, on drop; a clear failure when `redis-server` or
//! `redis-cli` is missing.
//!
//! Shared by the library's tests (`cluster::tests`) and tests/cluster.rs
//! (included there by `#[path]`), so it uses nothing of the crate but the
//! `redis` client.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long the cluster may take to form.
const FORM_WAIT: Duration = Duration::from_secs(20);
/// Starts that lost a port to another process are retried this often.
const START_ATTEMPTS: usize = 3;

pub struct RedisCluster {
    /// The masters' ports, on 127.0.0.1.
    pub ports: Vec<u16>,
    children: Vec<Child>,
    dir: PathBuf,
}

impl RedisCluster {
    /// Starts a cluster of `masters` (3 or more) and waits until it serves.
    pub fn start(masters: usize) -> RedisCluster {
        assert!(masters >= 3, "redis-cli --cluster create needs 3 masters");
        for tool in ["redis-server", "redis-cli"] {
            let found = Command::new(tool)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if let Err(error) = found {
                panic!(
                    "the Redis Cluster tests need `{tool}` on the PATH and cannot run it \
                     ({error}); install Redis 7 (e.g. `apt-get install redis-server`)"
                );
            }
        }
        let mut problems = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match RedisCluster::try_start(masters) {
                Ok(cluster) => return cluster,
                Err(problem) => problems.push(problem),
            }
        }
        panic!(
            "no Redis Cluster could be started:\n{}",
            problems.join("\n---\n")
        );
    }

    /// The seed nodes as `cluster.redis_url` takes them: comma-separated.
    pub fn seeds(&self) -> String {
        self.urls().join(",")
    }

    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|port| format!("redis://127.0.0.1:{port}"))
            .collect()
    }

    /// A plain connection to one node (for `CLUSTER` commands).
    pub fn node(&self, index: usize) -> redis::Connection {
        connect(self.ports[index]).expect("a connection to a cluster node")
    }

    /// The slot Redis computes for `key` (`CLUSTER KEYSLOT`).
    pub fn key_slot(&self, key: &str) -> u16 {
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut self.node(0))
            .expect("CLUSTER KEYSLOT")
    }

    /// The keys matching `pattern` on the master at `index`.
    pub fn keys_on(&self, index: usize, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query(&mut self.node(index))
            .expect("KEYS");
        keys.sort();
        keys
    }

    /// Every key of the cluster matching `pattern`, from every master.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = (0..self.ports.len())
            .flat_map(|index| self.keys_on(index, pattern))
            .collect();
        keys.sort();
        keys
    }

    fn try_start(masters: usize) -> Result<RedisCluster, String> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "flashgate-redis-cluster-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(|error| format!("{}: {error}", dir.display()))?;
        let mut cluster = RedisCluster {
            ports: Vec::new(),
            children: Vec::new(),
            dir,
        };
        for _ in 0..masters {
            let port = free_cluster_port(&cluster.ports);
            let log = std::fs::File::create(cluster.dir.join(format!("redis-{port}.log")))
                .map_err(|error| error.to_string())?;
            let child = Command::new("redis-server")
                .arg("--port")
                .arg(port.to_string())
                .arg("--bind")
                .arg("127.0.0.1")
                .arg("--cluster-enabled")
                .arg("yes")
                .arg("--cluster-config-file")
                .arg(cluster.dir.join(format!("nodes-{port}.conf")))
                .arg("--dir")
                .arg(&cluster.dir)
                .arg("--save")
                .arg("")
                .arg("--appendonly")
                .arg("no")
                .arg("--daemonize")
                .arg("no")
                .stdin(Stdio::null())
                .stdout(log.try_clone().map_err(|error| error.to_string())?)
                .stderr(log)
                .spawn()
                .map_err(|error| format!("redis-server: {error}"))?;
            cluster.ports.push(port);
            cluster.children.push(child);
        }
        cluster.wait(|cluster, index| {
            let answer: String = redis::cmd("PING")
                .query(&mut connect(cluster.ports[index])?)
                .map_err(|error| error.to_string())?;
            (answer == "PONG").then_some(()).ok_or(answer)
        })?;
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for port in &cluster.ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let created = create
            .arg("--cluster-yes")
            .stdin(Stdio::null())
            .output()
            .map_err(|error| format!("redis-cli: {error}"))?;
        if !created.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&created.stdout),
                String::from_utf8_lossy(&created.stderr)
            ));
        }
        // Every node serves every slot and knows every master.
        cluster.wait(|cluster, index| {
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query(&mut connect(cluster.ports[index])?)
                .map_err(|error| error.to_string())?;
            let ok = info.contains("cluster_state:ok")
                && info.contains("cluster_slots_assigned:16384")
                && info.contains(&format!("cluster_known_nodes:{}", cluster.ports.len()));
            ok.then_some(()).ok_or(info)
        })?;
        Ok(cluster)
    }

    /// Waits until `ready` holds for every node, or a node exits, or
    /// [`FORM_WAIT`] passes.
    fn wait(
        &mut self,
        ready: impl Fn(&RedisCluster, usize) -> Result<(), String>,
    ) -> Result<(), String> {
        let deadline = Instant::now() + FORM_WAIT;
        for index in 0..self.ports.len() {
            loop {
                if let Ok(Some(status)) = self.children[index].try_wait() {
                    return Err(format!(
                        "redis-server on port {} exited ({status}): {}",
                        self.ports[index],
                        self.log(index)
                    ));
                }
                match ready(self, index) {
                    Ok(()) => break,
                    Err(last) if Instant::now() > deadline => {
                        return Err(format!(
                            "redis-server on port {} not ready within {FORM_WAIT:?}: {last}\n{}",
                            self.ports[index],
                            self.log(index)
                        ));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
        Ok(())
    }

    fn log(&self, index: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("redis-{}.log", self.ports[index])))
            .unwrap_or_default()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn connect(port: u16) -> Result<redis::Connection, String> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .map_err(|error| error.to_string())?;
    let connection = client
        .get_connection_with_timeout(Duration::from_secs(1))
        .map_err(|error| error.to_string())?;
    connection
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|error| error.to_string())?;
    Ok(connection)
}

/// A loopback port free now whose cluster bus port (+10000) is free too.
fn free_cluster_port(taken: &[u16]) -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("its address").port();
        if port > 55_000 || taken.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}
