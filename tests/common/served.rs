//! A real `flashgate serve` process, for the tests that kill it, restart it
//! or run several: spawned with none of the caller's `FLASHGATE__` settings,
//! on free ports for the gateway and its embedded WeChat Pay simulator,
//! probed on `/healthz`, stopped with SIGTERM (a zero exit required), and
//! killed and reaped on drop, so a failing test never leaves one behind.

use super::{free_port, Client, WAIT};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;
use tokio::time::Instant;

pub const BINARY: &str = env!("CARGO_BIN_EXE_flashgate");
/// Starts that lose their ports to another process are retried this often.
const START_ATTEMPTS: usize = 3;

pub struct Served {
    pub child: Child,
    pub addr: SocketAddr,
    /// The embedded WeChat Pay simulator (no merchant is configured).
    pub sim_addr: SocketAddr,
    stderr_path: PathBuf,
}

impl Served {
    /// Spawns `flashgate serve` with its data in `data_dir`, its stderr in
    /// `stderr_path` and `env` on top of the test settings; does not wait.
    pub fn spawn(data_dir: &Path, stderr_path: PathBuf, env: &[(String, String)]) -> Served {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let sim_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let mut command = Command::new(BINARY);
        command.arg("serve");
        for (name, _) in std::env::vars() {
            if name.starts_with("FLASHGATE__") {
                command.env_remove(name);
            }
        }
        let child = command
            .env("FLASHGATE__SERVER__LISTEN", addr.to_string())
            .env("FLASHGATE__PAY__SIMULATOR_LISTEN", sim_addr.to_string())
            .env(
                "FLASHGATE__STORAGE__DATA_DIR",
                data_dir.display().to_string(),
            )
            .env("FLASHGATE__LOG__LEVEL", "warn")
            .envs(env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).expect("stderr log"))
            .spawn()
            .expect("spawn flashgate");
        Served {
            child,
            addr,
            sim_addr,
            stderr_path,
        }
    }

    /// Spawns with `spawn(attempt)` until one answers `/healthz`; a start
    /// whose ports were taken meanwhile is retried on others.
    pub async fn start(mut spawn: impl FnMut(usize) -> Served) -> Served {
        for attempt in 0..START_ATTEMPTS {
            let mut served = spawn(attempt);
            match served.wait_healthy().await {
                Ok(()) => return served,
                Err(stderr) if stderr.contains("cannot listen") || stderr.contains("simulator") => {
                    continue
                }
                Err(stderr) => panic!("flashgate exited before serving; stderr:\n{stderr}"),
            }
        }
        panic!("flashgate could not bind free ports in {START_ATTEMPTS} attempts");
    }

    /// `Err(stderr)` if the process exited; panics if it neither exits nor
    /// answers within [`WAIT`].
    pub async fn wait_healthy(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + WAIT;
        loop {
            if self.child.try_wait().expect("try_wait").is_some() {
                return Err(self.stderr());
            }
            if healthz_ok(self.addr).await {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "flashgate did not answer /healthz within {WAIT:?}; stderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }

    /// SIGKILL (what `Child::kill` sends) and reap: no flush, no goodbye.
    pub fn kill_9(&mut self) {
        self.child.kill().expect("SIGKILL flashgate");
        self.child.wait().expect("reap flashgate");
    }

    /// Waits for the process to exit, at most `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, then requires a zero exit within [`WAIT`].
    pub async fn stop(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let status = self.wait_exit(WAIT).await.unwrap_or_else(|| {
            panic!(
                "flashgate did not exit within {WAIT:?} of SIGTERM; stderr:\n{}",
                self.stderr()
            )
        });
        assert!(
            status.success(),
            "flashgate exited with {status} after SIGTERM; stderr:\n{}",
            self.stderr()
        );
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One `GET /healthz`; false on any failure (a process that lost the race
/// for its ports exits and resets the connection: `start` retries it).
async fn healthz_ok(addr: SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let head = "GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
        stream.write_all(head.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.ok()?;
        Some(answer.starts_with(b"HTTP/1.1 200"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), exchange).await,
        Ok(Some(true))
    )
}
