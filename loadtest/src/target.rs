//! The gateway under test: one already running (`--url`), or `flashgate
//! serve` started here on free ports and a temp data dir, configured by
//! environment, waited for on `/healthz`, and stopped (SIGTERM, then
//! SIGKILL) with its data dir removed at the end, also when the run fails.
//! A spawned gateway's pid gives its memory (`VmRSS`).

use crate::client::{connect, exchange, request};
use crate::plan::TargetPlan;
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
                let mut failure = String::new();
                for _ in 0..START_ATTEMPTS {
                    match spawn(&binary, durability, env, data_parent.as_deref()).await {
                        Ok(target) => return Ok(target),
                        Err(error) => failure = error,
                    }
                }
                Err(failure)
            }
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

async fn spawn(
    binary: &Path,
    durability: &str,
    env: &[(String, String)],
    data_parent: Option<&Path>,
) -> Result<Target, String> {
    let parent = data_parent.map_or_else(std::env::temp_dir, Path::to_owned);
    let scratch = parent.join(format!(
        "flashgate-loadtest-{}-{}",
        std::process::id(),
        crate::stream::run_id()
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
    if let Ok(Some(status)) = child.try_wait() {
        return Err(format!("the gateway had exited during the run ({status})"));
    }
    let pid = libc::pid_t::try_from(child.id()).map_err(|_| "pid out of range".to_string())?;
    // SAFETY: kill(2) on our own child's pid; no memory is touched.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
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
