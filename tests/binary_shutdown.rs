//! The real `flashgate` binary: graceful SIGTERM, a refused bad config, the
//! `session-token` command, and its allocator's start-up options.

mod common;

use common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

const BINARY: &str = env!("CARGO_BIN_EXE_flashgate");

/// A `flashgate` command with no inherited FLASHGATE__ variables.
fn flashgate(args: &[&str]) -> Command {
    let mut command = Command::new(BINARY);
    command.args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("FLASHGATE__") {
            command.env_remove(name);
        }
    }
    command
}

/// Kills the child if the test fails before it has exited; removes the dir.
struct Running {
    child: Child,
    dir: PathBuf,
}

impl Running {
    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    /// Waits for the process to exit, at most `limit`.
    async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn(args: &[&str], env: &[(&str, String)], dir: &Path) -> Child {
    std::fs::create_dir_all(dir).expect("temp dir");
    let mut command = flashgate(args);
    for (name, value) in env {
        command.env(name, value);
    }
    command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("stdout.log")).expect("stdout log"))
        .stderr(std::fs::File::create(dir.join("stderr.log")).expect("stderr log"))
        .spawn()
        .expect("spawn flashgate")
}

fn send_sigterm(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM {pid} failed");
}

/// Starts `flashgate serve` on a free port and waits until /healthz answers.
async fn serve() -> (Running, std::net::SocketAddr) {
    let dir = unique_dir("binary");
    let port = free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = spawn(
        &["serve"],
        &[
            ("FLASHGATE__SERVER__LISTEN", addr.to_string()),
            ("FLASHGATE__PAY__SIMULATOR_LISTEN", "127.0.0.1:0".to_owned()),
            (
                "FLASHGATE__STORAGE__DATA_DIR",
                dir.join("data").display().to_string(),
            ),
            ("FLASHGATE__LOG__LEVEL", "warn".to_owned()),
        ],
        &dir,
    );
    let mut running = Running { child, dir };
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(status) = running.child.try_wait().expect("try_wait") {
            panic!(
                "flashgate serve exited early with {status}; stderr:\n{}",
                running.stderr()
            );
        }
        if let Ok(Ok(mut stream)) =
            tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await
        {
            raw_write(&mut stream, raw_head("GET", "/healthz", &[]).as_bytes()).await;
            if raw_read_response(&mut stream).await.status == 200 {
                return (running, addr);
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "flashgate serve did not answer /healthz within {WAIT:?}; stderr:\n{}",
            running.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn sigterm_finishes_the_in_flight_request_and_exits_zero() {
    let (mut running, addr) = serve().await;

    // A request in flight: the head and part of the body of a sale creation.
    let body = sale_body("s-term", 5, 1).to_string();
    let (first_half, second_half) = body.as_bytes().split_at(body.len() / 2);
    let mut stream = raw_connect(addr).await;
    let head = raw_head(
        "POST",
        "/admin/v1/sales",
        &[
            format!("authorization: Bearer {HOST_TOKEN}"),
            "content-type: application/json".to_owned(),
            format!("content-length: {}", body.len()),
        ],
    );
    raw_write(&mut stream, head.as_bytes()).await;
    raw_write(&mut stream, first_half).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    send_sigterm(running.child.id());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        running.child.try_wait().expect("try_wait").is_none(),
        "flashgate exited while a request was still in flight; stderr:\n{}",
        running.stderr()
    );
    // It accepts no new connections while draining.
    let refused =
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await;
    assert!(
        !matches!(refused, Ok(Ok(_))),
        "a new connection was accepted after SIGTERM"
    );

    raw_write(&mut stream, second_half).await;
    let reply = raw_read_response(&mut stream).await;
    let sale = reply.expect_json(201);
    assert_eq!(sale["sale_id"], "s-term");

    let status = running
        .wait_exit(Duration::from_secs(5))
        .await
        .unwrap_or_else(|| {
            panic!(
                "flashgate did not exit within 5 s of SIGTERM; stderr:\n{}",
                running.stderr()
            )
        });
    assert!(
        status.success(),
        "flashgate exited with {status} after SIGTERM; stderr:\n{}",
        running.stderr()
    );
}

/// The binary's allocator is jemalloc with the options `src/main.rs` bakes
/// in: its one background thread (which returns freed pages to the system;
/// without the options, or on glibc's malloc, there is none) runs beside
/// the gateway's own threads.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_binary_runs_jemalloc_with_one_background_purging_thread() {
    let (running, _addr) = serve().await;
    let tasks = format!("/proc/{}/task", running.child.id());
    let names: Vec<String> = std::fs::read_dir(&tasks)
        .unwrap_or_else(|error| panic!("cannot list {tasks}: {error}"))
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect();
    let purging = names
        .iter()
        .filter(|name| *name == "jemalloc_bg_thd")
        .count();
    assert_eq!(
        purging, 1,
        "expected one jemalloc background thread; the threads are {names:?}"
    );
    assert!(
        names.iter().any(|name| name == "journal-writer"),
        "the gateway's own threads are missing: {names:?}"
    );
}

#[tokio::test]
async fn sigterm_on_an_idle_gateway_exits_zero_promptly() {
    let (mut running, addr) = serve().await;
    // An idle keep-alive connection must not hold the shutdown up.
    let mut idle = Client::connect(addr).await;
    idle.get_anonymous("/healthz").await.expect_json(200);
    send_sigterm(running.child.id());
    let status = running
        .wait_exit(Duration::from_secs(3))
        .await
        .unwrap_or_else(|| {
            panic!(
                "flashgate did not exit within 3 s of SIGTERM; stderr:\n{}",
                running.stderr()
            )
        });
    assert!(status.success(), "exit status {status}");
    drop(idle);
}

#[tokio::test]
async fn a_bad_listen_address_stops_start_up_with_an_error_naming_server_listen() {
    let dir = unique_dir("badconfig");
    let child = spawn(
        &["serve"],
        &[
            ("FLASHGATE__SERVER__LISTEN", "nowhere".to_owned()),
            (
                "FLASHGATE__STORAGE__DATA_DIR",
                dir.join("data").display().to_string(),
            ),
        ],
        &dir,
    );
    let mut running = Running { child, dir };
    let status = running
        .wait_exit(WAIT)
        .await
        .expect("flashgate with a bad config must exit, not serve");
    assert!(!status.success(), "a bad config exited with {status}");
    let stderr = running.stderr();
    assert!(stderr.contains("server.listen"), "stderr: {stderr}");
}

#[tokio::test]
async fn session_token_command_prints_a_token_the_gateway_accepts() {
    let dir = unique_dir("token");
    let child = spawn(&["session-token", "--openid", "o_cli_buyer"], &[], &dir);
    let mut running = Running { child, dir };
    let status = running.wait_exit(WAIT).await.expect("session-token exits");
    assert!(status.success(), "stderr: {}", running.stderr());
    let token = std::fs::read_to_string(running.dir.join("stdout.log")).expect("stdout");
    let token = token.trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token:?}");

    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client.live_sale("s-cli", 5, 1).await;
    let order = client
        .order(&token, "cli", "s-cli", 1)
        .await
        .expect_json(201);
    let order_id = order["order_id"].as_str().unwrap();
    let admin_view = client
        .get(&format!("/admin/v1/orders/{order_id}"), OPS_TOKEN)
        .await
        .expect_json(200);
    assert_eq!(admin_view["buyer"], json!("o_cli_buyer"));

    // A token whose time is up is refused.
    let dir = unique_dir("token-expired");
    let child = spawn(
        &[
            "session-token",
            "--openid",
            "o_cli_buyer",
            "--ttl-seconds=-10",
        ],
        &[],
        &dir,
    );
    let mut expired = Running { child, dir };
    let status = expired.wait_exit(WAIT).await.expect("session-token exits");
    assert!(status.success(), "stderr: {}", expired.stderr());
    let stale = std::fs::read_to_string(expired.dir.join("stdout.log")).expect("stdout");
    assert_error(
        &client.order(stale.trim(), "cli-2", "s-cli", 1).await,
        401,
        "UNAUTHORIZED",
    );
    gateway.stop().await;
}
