//! The gateway under test: one already running (`--url`), or `flashgate
//! serve` started here on free ports and a temp data dir, configured by
//! environment, waited for on `/healthz`, and stopped (SIGTERM, then
//! SIGKILL) with its data dir removed at the end, also when the run fails.
//! A spawned gateway's pid gives its memory (`VmRSS`).
//!
//! [`Cluster`]: N spawned nodes with `[cluster]` set by environment (the
//! run's Redis, node ids `n1`..`nN`, one key prefix of the run's own), each
//! with its own data dir; at the end every node is stopped, then every key
//! under the prefix deleted, also when the run fails.

use crate::client::{connect, exchange, request};
use crate::plan::{ClusterPlan, TargetPlan};
use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::{Method, Uri};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a spawned gateway may take to answer `/healthz`.
const START_WAIT: Duration = Duration::from_secs(60);
/// How long it may take to stop after SIGTERM before it is killed.
const STOP_WAIT: Duration = Duration::from_secs(30);
/// Start attempts (a free port can be taken between choosing and binding).
const START_ATTEMPTS: u32 = 3;
/// Lines of a failed gateway's log shown in the error.
const LOG_TAIL_LINES: usize = 20;
/// Connect and call limit of the tool's own Redis calls (set-up, clean-up).
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// Environment keys that go to cluster nodes only.
const CLUSTER_ENV_PREFIX: &str = "FLASHGATE__CLUSTER__";

pub struct Target {
    /// `host:port` of the gateway.
    pub addr: String,
    /// Base URL of the WeChat Pay simulator the gateway uses.
    pub sim_url: String,
    pub spawned: Option<Spawned>,
}

pub struct Spawned {
    child: Child,
    scratch: PathBuf,
    pub binary: PathBuf,
    pub data_dir: PathBuf,
}

impl Target {
    pub async fn open(plan: &TargetPlan) -> Result<Target, String> {
        match plan {
            TargetPlan::Url { authority, sim_url } => {
                let target = Target {
                    addr: authority.clone(),
                    sim_url: sim_url.trim_end_matches('/').to_owned(),
                    spawned: None,
                };
                wait_healthy(&target.addr, Duration::from_secs(5), None).await?;
                Ok(target)
            }
            TargetPlan::Spawn {
                binary,
                durability,
                env,
                data_parent,
            } => {
                let binary = match binary {
                    Some(binary) => binary.clone(),
                    None => find_binary()?,
                };
                spawn_retried(&binary, durability, env, data_parent.as_deref(), "").await
            }
        }
    }

    /// The single node beside a cluster: `[cluster]` settings of
    /// `--gateway-env` are for the cluster nodes, not for it.
    pub async fn open_single_beside_cluster(plan: &TargetPlan) -> Result<Target, String> {
        match plan {
            TargetPlan::Spawn {
                binary,
                durability,
                env,
                data_parent,
            } => {
                let binary = match binary {
                    Some(binary) => binary.clone(),
                    None => find_binary()?,
                };
                let env: Vec<(String, String)> = env
                    .iter()
                    .filter(|(key, _)| !key.starts_with(CLUSTER_ENV_PREFIX))
                    .cloned()
                    .collect();
                spawn_retried(&binary, durability, &env, data_parent.as_deref(), "single").await
            }
            TargetPlan::Url { .. } => Err("--cluster starts its gateways itself".into()),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.spawned.as_ref().map(|spawned| spawned.child.id())
    }

    /// The spawned gateway's resident memory, in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid()?)
    }

    /// Stops a spawned gateway and removes its data dir.
    pub fn close(mut self) -> Result<(), String> {
        match self.spawned.take() {
            Some(spawned) => spawned.stop(),
            None => Ok(()),
        }
    }
}

impl Spawned {
    fn stop(mut self) -> Result<(), String> {
        let result = terminate(&mut self.child);
        let _ = std::fs::remove_dir_all(&self.scratch);
        result
    }
}

/// N cluster nodes and the run's Redis keys.
pub struct Cluster {
    /// Declared first: on drop the nodes are killed before the keys go.
    pub nodes: Vec<Target>,
    /// `n1`..`nN`, in the order of `nodes`.
    pub node_ids: Vec<String>,
    pub redis_url: String,
    pub key_prefix: String,
    keys: RedisKeys,
}

impl Cluster {
    /// Checks Redis, then starts `cluster.nodes` nodes one after another.
    pub async fn open(plan: &TargetPlan, cluster: &ClusterPlan) -> Result<Cluster, String> {
        let TargetPlan::Spawn {
            binary,
            durability,
            env,
            data_parent,
        } = plan
        else {
            return Err("--cluster starts its gateways itself".into());
        };
        let binary = match binary {
            Some(binary) => binary.clone(),
            None => find_binary()?,
        };
        let key_prefix = format!(
            "flashgate-loadtest:{}:{}",
            crate::stream::run_id(),
            std::process::id()
        );
        let keys = RedisKeys::connect(&cluster.redis_url, &key_prefix, "--cluster")?;
        let mut opened = Cluster {
            nodes: Vec::with_capacity(cluster.nodes),
            node_ids: Vec::with_capacity(cluster.nodes),
            redis_url: cluster.redis_url.clone(),
            key_prefix,
            keys,
        };
        for number in 1..=cluster.nodes {
            let node_id = format!("n{number}");
            let mut node_env = env.clone();
            node_env.extend([
                (
                    "FLASHGATE__CLUSTER__REDIS_URL".to_owned(),
                    cluster.redis_url.clone(),
                ),
                (
                    "FLASHGATE__CLUSTER__REDIS_MODE".to_owned(),
                    "single".to_owned(),
                ),
                ("FLASHGATE__CLUSTER__NODE_ID".to_owned(), node_id.clone()),
                (
                    "FLASHGATE__CLUSTER__KEY_PREFIX".to_owned(),
                    opened.key_prefix.clone(),
                ),
            ]);
            let node = spawn_retried(
                &binary,
                durability,
                &node_env,
                data_parent.as_deref(),
                &node_id,
            )
            .await
            .map_err(|error| format!("cluster node {node_id}: {error}"))?;
            opened.nodes.push(node);
            opened.node_ids.push(node_id);
        }
        Ok(opened)
    }

    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|node| node.addr.clone()).collect()
    }

    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().filter_map(Target::pid).collect()
    }

    /// Stops every node (SIGTERM to all, then each waited for), then
    /// deletes the run's keys; how many keys went.
    pub fn close(mut self) -> Result<u64, String> {
        let mut problems = Vec::new();
        let mut stopping: Vec<(String, Spawned)> = Vec::new();
        for (node, node_id) in self.nodes.drain(..).zip(&self.node_ids) {
            if let Some(mut spawned) = node.spawned {
                if let Err(problem) = send_term(&mut spawned.child) {
                    problems.push(format!("{node_id}: {problem}"));
                }
                stopping.push((node_id.clone(), spawned));
            }
        }
        for (node_id, mut spawned) in stopping {
            if let Err(problem) = wait_stopped(&mut spawned.child) {
                problems.push(format!("{node_id}: {problem}"));
            }
        }
        let deleted = self.keys.delete();
        match (problems.is_empty(), deleted) {
            (true, Ok(count)) => Ok(count),
            (_, Err(problem)) => {
                problems.push(problem);
                Err(problems.join("; "))
            }
            (false, Ok(_)) => Err(problems.join("; ")),
        }
    }
}

/// Every key under one prefix, deleted on [`RedisKeys::delete`] or on drop.
pub(crate) struct RedisKeys {
    /// A connection of this tool's own, with timeouts, for setting up and
    /// reading back a round's keys.
    pub(crate) connection: redis::Connection,
    prefix: String,
    done: bool,
}

impl RedisKeys {
    /// `flag`: the option that needs Redis, named in the error.
    pub(crate) fn connect(url: &str, prefix: &str, flag: &str) -> Result<RedisKeys, String> {
        let unreachable = |error: redis::RedisError| {
            format!(
                "{flag} needs Redis at {url} and cannot reach it ({error}); start it \
                 (e.g. `redis-server --daemonize yes`) or name another with --redis-url"
            )
        };
        let client = redis::Client::open(url).map_err(unreachable)?;
        let mut connection = client
            .get_connection_with_timeout(REDIS_TIMEOUT)
            .map_err(unreachable)?;
        connection
            .set_read_timeout(Some(REDIS_TIMEOUT))
            .and_then(|()| connection.set_write_timeout(Some(REDIS_TIMEOUT)))
            .map_err(unreachable)?;
        redis::cmd("PING")
            .query::<String>(&mut connection)
            .map_err(unreachable)?;
        Ok(RedisKeys {
            connection,
            prefix: prefix.to_owned(),
            done: false,
        })
    }

    /// SCAN for `<prefix>:*`, DEL what it finds.
    pub(crate) fn delete(&mut self) -> Result<u64, String> {
        self.done = true;
        let pattern = format!("{}:*", self.prefix);
        let failed = |error: redis::RedisError| {
            format!("deleting the run's Redis keys ({pattern}): {error}")
        };
        let mut keys = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query(&mut self.connection)
                .map_err(failed)?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort();
        keys.dedup();
        let mut deleted = 0;
        for chunk in keys.chunks(500) {
            deleted += redis::cmd("DEL")
                .arg(chunk)
                .query::<u64>(&mut self.connection)
                .map_err(failed)?;
        }
        Ok(deleted)
    }
}

impl Drop for RedisKeys {
    /// A run that fails half-way still leaves no keys behind.
    fn drop(&mut self) {
        if !self.done {
            if let Err(problem) = self.delete() {
                eprintln!("flashgate-loadtest: {problem}");
            }
        }
    }
}

impl Drop for Spawned {
    /// A run that fails half-way still leaves no gateway and no data behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// The flashgate binary: beside this one (both built into one target dir),
/// then `$CARGO_TARGET_DIR/release`, then `target/release`.
fn find_binary() -> Result<PathBuf, String> {
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            candidates.push(dir.join("flashgate"));
        }
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(dir).join("release/flashgate"));
    }
    candidates.push(PathBuf::from("target/release/flashgate"));
    candidates
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .ok_or_else(|| {
            let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            format!(
                "no flashgate binary found (tried {}); build it with `cargo build --release -p flashgate` \
                 or name it with --spawn PATH",
                tried.join(", ")
            )
        })
}

/// A port nothing listens on now.
fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|error| format!("cannot find a free port: {error}"))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|error| error.to_string())
}

/// [`spawn`], again on other ports when a start fails.
async fn spawn_retried(
    binary: &Path,
    durability: &str,
    env: &[(String, String)],
    data_parent: Option<&Path>,
    name: &str,
) -> Result<Target, String> {
    let mut failure = String::new();
    for _ in 0..START_ATTEMPTS {
        match spawn(binary, durability, env, data_parent, name).await {
            Ok(target) => return Ok(target),
            Err(error) => failure = error,
        }
    }
    Err(failure)
}

/// `name` tells the gateways of one run apart in their scratch dirs.
async fn spawn(
    binary: &Path,
    durability: &str,
    env: &[(String, String)],
    data_parent: Option<&Path>,
    name: &str,
) -> Result<Target, String> {
    let parent = data_parent.map_or_else(std::env::temp_dir, Path::to_owned);
    let scratch = parent.join(format!(
        "flashgate-loadtest-{}-{}{}{name}",
        std::process::id(),
        crate::stream::run_id(),
        if name.is_empty() { "" } else { "-" }
    ));
    let data_dir = scratch.join("data");
    std::fs::create_dir_all(&scratch)
        .map_err(|error| format!("cannot create {}: {error}", scratch.display()))?;
    let (port, sim_port) = (free_port()?, free_port()?);
    let addr = format!("127.0.0.1:{port}");
    let log_path = scratch.join("flashgate.log");
    let log = std::fs::File::create(&log_path)
        .map_err(|error| format!("cannot create {}: {error}", log_path.display()))?;
    let log_err = log.try_clone().map_err(|error| error.to_string())?;
    let mut command = Command::new(binary);
    command
        .arg("serve")
        .env("FLASHGATE__SERVER__LISTEN", &addr)
        .env("FLASHGATE__STORAGE__DATA_DIR", &data_dir)
        .env("FLASHGATE__STORAGE__DURABILITY", durability)
        .env(
            "FLASHGATE__PAY__SIMULATOR_LISTEN",
            format!("127.0.0.1:{sim_port}"),
        )
        .env("FLASHGATE__LOG__LEVEL", "warn")
        .envs(env.iter().map(|(key, value)| (key, value)))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    let child = match command.spawn() {
        Ok(child) => child,
        Err(error) => {
            let _ = std::fs::remove_dir_all(&scratch);
            return Err(format!("cannot start {}: {error}", binary.display()));
        }
    };
    let mut spawned = Spawned {
        child,
        scratch,
        binary: binary.to_owned(),
        data_dir,
    };
    if let Err(error) = wait_healthy(&addr, START_WAIT, Some(&mut spawned.child)).await {
        let tail = log_tail(&log_path);
        return Err(format!(
            "{error}\n{} log (last lines):\n{tail}",
            binary.display()
        ));
    }
    Ok(Target {
        addr,
        sim_url: format!("http://127.0.0.1:{sim_port}"),
        spawned: Some(spawned),
    })
}

/// Polls `GET /healthz` until 200; a spawned child that exits fails at once.
async fn wait_healthy(
    addr: &str,
    wait: Duration,
    mut child: Option<&mut Child>,
) -> Result<(), String> {
    let deadline = Instant::now() + wait;
    let host = HeaderValue::from_str(addr).map_err(|_| format!("bad address {addr}"))?;
    loop {
        if let Some(child) = child.as_deref_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("the gateway exited at start-up ({status})"));
            }
        }
        if let Ok(mut sender) = connect(addr).await {
            let probe = request(
                Method::GET,
                Uri::from_static("/healthz"),
                &host,
                None,
                Bytes::new(),
            );
            if let Ok((status, _)) = exchange(&mut sender, probe).await {
                if status.is_success() {
                    return Ok(());
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the gateway at {addr} did not answer /healthz within {wait:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn terminate(child: &mut Child) -> Result<(), String> {
    send_term(child)?;
    wait_stopped(child)
}

/// SIGTERM to a child still running.
fn send_term(child: &mut Child) -> Result<(), String> {
    if let Ok(Some(status)) = child.try_wait() {
        return Err(format!("the gateway had exited during the run ({status})"));
    }
    let pid = libc::pid_t::try_from(child.id()).map_err(|_| "pid out of range".to_string())?;
    // SAFETY: kill(2) on our own child's pid; no memory is touched.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    Ok(())
}

/// Waits [`STOP_WAIT`] for a child sent SIGTERM, then kills it.
fn wait_stopped(child: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + STOP_WAIT;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(format!(
        "the gateway did not stop within {STOP_WAIT:?} of SIGTERM; killed"
    ))
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// `VmRSS` of a process, in KiB (Linux).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn rss_of_this_process_is_read() {
        let kib = super::rss_kib(std::process::id()).expect("VmRSS on Linux");
        assert!(kib > 100, "{kib} KiB");
    }
}
