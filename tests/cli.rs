//! The `flashgate sale …` / `flashgate order …` command line, run as the
//! real binary against a gateway over real HTTP: every subcommand, its
//! output, and the exit code of each kind of failure.

mod common;

use common::*;
use serde_json::Value;
use std::process::{Command, Output};

const BINARY: &str = env!("CARGO_BIN_EXE_flashgate");

/// Runs `flashgate ARGS` with the gateway's URL and `token` in the
/// environment, off the async runtime.
async fn flashgate(url: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(BINARY);
    command.args(args).env("FLASHGATE_URL", url);
    command.env_remove("FLASHGATE_TOKEN");
    if let Some(token) = token {
        command.env("FLASHGATE_TOKEN", token);
    }
    within(
        &format!("flashgate {}", args.join(" ")),
        tokio::task::spawn_blocking(move || command.output().expect("run flashgate")),
    )
    .await
    .expect("the command's thread")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[track_caller]
fn assert_exit(output: &Output, code: i32, stderr_has: &str) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
    assert!(
        stderr(output).contains(stderr_has),
        "stderr should contain {stderr_has:?}:\n{}",
        stderr(output)
    );
}

const SALE_TOML: &str = r#"
sale_id = "cli-1"
title = "Evening livestream"
hold_seconds = 120

[[items]]
sku_id = "lip-7"
title = "Lipstick No. 7"
price = "99.00"
stock = 10
per_user_limit = 2
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_runs_a_sale_from_the_command_line() {
    let gateway = TestGateway::start().await;
    let url = format!("http://{}", gateway.addr);
    let scratch = Scratch::new("cli");
    std::fs::create_dir_all(&scratch.0).unwrap();
    let file = scratch.0.join("sale.toml");
    std::fs::write(&file, SALE_TOML).unwrap();
    let file = file.to_str().unwrap();
    let host = Some(HOST_TOKEN);

    let created = flashgate(&url, host, &["sale", "create", "--file", file]).await;
    assert_exit(&created, 0, "");
    assert_eq!(stdout(&created).trim(), "sale cli-1: scheduled, 1 item(s)");
    let again = flashgate(&url, host, &["sale", "create", "--file", file]).await;
    assert_exit(&again, 1, "409 INVALID_STATE");

    let started = flashgate(&url, host, &["sale", "start", "cli-1", "--json"]).await;
    assert_exit(&started, 0, "");
    let view: Value = serde_json::from_slice(&started.stdout).expect("--json prints JSON");
    assert_eq!(view["status"], "live", "{view}");

    // Orders come in through the storefront API.
    let mut client = gateway.client().await;
    let order = client.order(&buyer_token("o-cli"), "k-1", "cli-1", 0).await;
    assert_error(&order, 400, "INVALID_REQUEST");
    let body = serde_json::json!({"sale_id": "cli-1", "sku_id": "lip-7", "quantity": 2});
    let order = client
        .order_body(&buyer_token("o-cli"), "k-2", &body.to_string())
        .await
        .expect_json(201);
    let order_id = order["order_id"].as_str().unwrap();

    let stats = flashgate(&url, Some(OPS_TOKEN), &["sale", "stats", "cli-1"]).await;
    assert_exit(&stats, 0, "");
    let table = stdout(&stats);
    assert!(table.starts_with("sale cli-1  live"), "{table}");
    assert!(table.contains("lip-7"), "{table}");
    assert!(table.contains("[####................]  20%"), "{table}");
    assert!(table.contains("created 1"), "{table}");

    let restocked = flashgate(&url, host, &["sale", "restock", "cli-1", "lip-7", "5"]).await;
    assert_exit(&restocked, 0, "");
    let watched = flashgate(
        &url,
        Some(OPS_TOKEN),
        &[
            "sale",
            "stats",
            "cli-1",
            "--watch",
            "--interval-ms",
            "100",
            "--updates",
            "2",
            "--json",
        ],
    )
    .await;
    assert_exit(&watched, 0, "");
    let frames: Vec<Value> = stdout(&watched)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON frame a line"))
        .collect();
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert_eq!(frames[1]["items"][0]["stock"], 15);

    let shown = flashgate(&url, Some(OPS_TOKEN), &["order", "show", order_id]).await;
    assert_exit(&shown, 0, "");
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["buyer"], "o-cli");
    assert_eq!(shown["status"], "reserved");

    let paused = flashgate(&url, host, &["sale", "pause", "cli-1"]).await;
    assert_exit(&paused, 0, "");
    assert_eq!(stdout(&paused).trim(), "sale cli-1: paused, 1 item(s)");
    let ended = flashgate(&url, host, &["sale", "end", "cli-1"]).await;
    assert_exit(&ended, 0, "");
    // Watching an ended sale shows it once and stops by itself.
    let watched = flashgate(
        &url,
        Some(OPS_TOKEN),
        &["sale", "stats", "cli-1", "--watch"],
    )
    .await;
    assert_exit(&watched, 0, "");
    assert!(
        stdout(&watched).contains("sale cli-1  ended"),
        "{}",
        stdout(&watched)
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_failure_has_its_message_and_exit_code() {
    let gateway = TestGateway::start().await;
    let url = format!("http://{}", gateway.addr);
    let scratch = Scratch::new("cli-errors");
    std::fs::create_dir_all(&scratch.0).unwrap();
    let host = Some(HOST_TOKEN);

    // Refused by the gateway: exit 1 with its status, code and message.
    let missing = flashgate(&url, host, &["sale", "start", "nope"]).await;
    assert_exit(&missing, 1, "404 NOT_FOUND: sale `nope`");
    let weak = flashgate(&url, Some(OPS_TOKEN), &["sale", "start", "nope"]).await;
    assert_exit(&weak, 1, "403 FORBIDDEN");
    let unknown = flashgate(&url, Some("not-a-real-token-x"), &["sale", "stats", "nope"]).await;
    assert_exit(&unknown, 1, "401 UNAUTHORIZED");
    let order = flashgate(
        &url,
        Some(OPS_TOKEN),
        &["order", "show", "FG0000000000000000000"],
    )
    .await;
    assert_exit(&order, 1, "404 NOT_FOUND");
    let bad_price = scratch.0.join("bad.json");
    std::fs::write(
        &bad_price,
        r#"{"sale_id":"cli-2","title":"t","items":[{"sku_id":"k","title":"i","price":"9.999","stock":1,"per_user_limit":1}]}"#,
    )
    .unwrap();
    let invalid = flashgate(
        &url,
        host,
        &["sale", "create", "--file", bad_price.to_str().unwrap()],
    )
    .await;
    assert_exit(&invalid, 1, "400 INVALID_REQUEST: items[0].price");
    let restock = flashgate(&url, host, &["sale", "restock", "nope", "k", "0"]).await;
    assert_exit(&restock, 1, "");

    // Bad usage: exit 2, nothing sent.
    let no_token = flashgate(&url, None, &["sale", "stats", "nope"]).await;
    assert_exit(&no_token, 2, "no admin token");
    let no_file = flashgate(
        &url,
        host,
        &["sale", "create", "--file", "/nonexistent/sale.toml"],
    )
    .await;
    assert_exit(&no_file, 2, "cannot read /nonexistent/sale.toml");
    let broken = scratch.0.join("broken.toml");
    std::fs::write(&broken, "sale_id = ").unwrap();
    let broken = flashgate(
        &url,
        host,
        &["sale", "create", "--file", broken.to_str().unwrap()],
    )
    .await;
    assert_exit(&broken, 2, "is not valid TOML");
    let https = flashgate("https://127.0.0.1:1", host, &["sale", "stats", "x"]).await;
    assert_exit(&https, 2, "only http://");
    let not_a_number = flashgate(&url, host, &["sale", "restock", "s", "k", "many"]).await;
    assert_exit(&not_a_number, 2, "invalid value");

    // Nobody there: exit 3.
    let port = free_port();
    let away = flashgate(
        &format!("http://127.0.0.1:{port}"),
        host,
        &["sale", "stats", "x"],
    )
    .await;
    assert_exit(&away, 3, "gateway unreachable");
    gateway.stop().await;
}
