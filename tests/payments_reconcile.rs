//! Daily reconciliation end to end, with every party its own server: the
//! WeChat Pay simulator runs as a separate process (`flashgate wxpay-sim`),
//! the gateway pays orders through it, and `flashgate reconcile --date`
//! (the real binary) compares the simulator's trade bill with the store.

mod common;

use common::*;
use flashgate::clock::beijing_date;
use flashgate::pay::crypto::RsaSigner;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const BINARY: &str = env!("CARGO_BIN_EXE_flashgate");
const MCHID: &str = "1900000109";
const APPID: &str = "wxd678efh567hg6787";
const APIV3_KEY: &str = "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb";
const MERCHANT_SERIAL: &str = "5F1C72E2A8931B72A2E13AF8DEE92471EB397115";
const PUBLIC_KEY_ID: &str = "PUB_KEY_ID_0000000000000024101100397200000006";

/// `flashgate wxpay-sim` as a child process; killed on drop.
struct SimProcess {
    child: Child,
    base_url: String,
}

impl SimProcess {
    fn spawn(dir: &Path, merchant_public_key: &Path) -> SimProcess {
        let port = free_port();
        let mut child = Command::new(BINARY)
            .args(["wxpay-sim", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--mchid", MCHID, "--appid", APPID, "--apiv3-key", APIV3_KEY])
            .args(["--merchant-serial-no", MERCHANT_SERIAL])
            .arg("--merchant-public-key")
            .arg(merchant_public_key)
            .args(["--public-key-id", PUBLIC_KEY_ID, "--time-scale", "0.001"])
            .arg("--platform-public-key-out")
            .arg(dir.join("wxp_pub.pem"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn flashgate wxpay-sim");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let line = receiver
            .recv_timeout(WAIT)
            .expect("wxpay-sim printed its ready line in time");
        let base_url = line
            .strip_prefix("wxpay-sim listening on ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected ready line {line:?}"))
            .to_owned();
        SimProcess { child, base_url }
    }

    fn addr(&self) -> std::net::SocketAddr {
        self.base_url
            .trim_start_matches("http://")
            .parse()
            .expect("the simulator's address")
    }

    /// Stops it with SIGTERM; it must exit 0.
    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                assert!(status.success(), "wxpay-sim exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("wxpay-sim did not exit within 10 s of SIGTERM");
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn reconcile(config: &Path, date: &str) -> Output {
    Command::new(BINARY)
        .args(["reconcile", "--date", date, "--config"])
        .arg(config)
        .env_remove("FLASHGATE__PAY__APIV3_KEY")
        .output()
        .expect("run flashgate reconcile")
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

async fn pay_through_the_simulator(client: &mut Client, sim: &mut Client, buyer: &str) -> String {
    let order = client
        .order(&buyer_token(buyer), &format!("key-{buyer}"), "recon", 1)
        .await
        .expect_json(201);
    let order_id = order["order_id"].as_str().unwrap().to_owned();
    let params = client
        .post_empty(&format!("/v1/orders/{order_id}/pay"), &buyer_token(buyer))
        .await
        .expect_json(200);
    let body = json!({ "prepay_id": params["prepay_id"] });
    let reply = sim.post_json("/sim/v1/pay", "unused", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    order_id
}

async fn wait_for_status(client: &mut Client, order_id: &str, status: &str) {
    within(&format!("order {order_id} to become {status}"), async {
        loop {
            let order = client
                .get(&format!("/admin/v1/orders/{order_id}"), ADMIN_TOKEN)
                .await
                .expect_json(200);
            if order["status"] == status {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_agrees_with_the_bill_then_finds_a_planted_payment() {
    let scratch = Scratch::new("reconcile");
    std::fs::create_dir_all(&scratch.0).unwrap();
    let merchant = RsaSigner::generate().unwrap();
    let key_file = scratch.0.join("apiclient_key.pem");
    let merchant_public = scratch.0.join("merchant_pub.pem");
    std::fs::write(&key_file, merchant.private_key_pem().unwrap()).unwrap();
    std::fs::write(&merchant_public, merchant.public_key_pem().unwrap()).unwrap();
    let sim = SimProcess::spawn(&scratch.0, &merchant_public);

    let port = free_port();
    let data_dir = scratch.data_dir();
    let pay = json!({
        "mchid": MCHID,
        "appid": APPID,
        "merchant_serial_no": MERCHANT_SERIAL,
        "merchant_private_key_file": key_file,
        "apiv3_key": APIV3_KEY,
        "wechatpay_public_key_id": PUBLIC_KEY_ID,
        "wechatpay_public_key_file": scratch.0.join("wxp_pub.pem"),
        "base_url": sim.base_url,
        "backup_base_url": "",
        "notify_url": format!("http://127.0.0.1:{port}/v1/payments/wechat/notify"),
    });
    let config_file = scratch.0.join("flashgate.toml");
    let config_toml = format!(
        "[storage]\ndata_dir = {:?}\n\n[pay]\n{}",
        data_dir.display().to_string(),
        pay.as_object()
            .unwrap()
            .iter()
            .map(|(key, value)| format!("{key} = {value}\n"))
            .collect::<String>()
    );
    std::fs::write(&config_file, config_toml).unwrap();
    let gateway = TestGateway::start_with(|config| {
        *config = flashgate::config::Config::load_from(Some(&config_file), Vec::new())
            .expect("the test's config file loads");
        config.server.listen = format!("127.0.0.1:{port}");
        config.pay.simulator_listen = "127.0.0.1:0".into();
        config.pay.reconcile_interval_seconds = 1;
    })
    .await;

    let mut client = gateway.client().await;
    let mut sim_client = Client::connect(sim.addr()).await;
    client.live_sale("recon", 10, 1).await;
    let paid = pay_through_the_simulator(&mut client, &mut sim_client, "buyer-1").await;
    let refunded = pay_through_the_simulator(&mut client, &mut sim_client, "buyer-2").await;
    wait_for_status(&mut client, &paid, "paid").await;
    wait_for_status(&mut client, &refunded, "paid").await;
    client
        .post_empty(&format!("/admin/v1/orders/{refunded}/refund"), ADMIN_TOKEN)
        .await
        .expect_json(200);
    wait_for_status(&mut client, &refunded, "refunded").await;

    // Once the store has caught up, the day's bill and the store agree.
    let today = beijing_date(now_ms());
    let agreed = within("the store to catch up with the bill", async {
        loop {
            let output = reconcile(&config_file, &today);
            if output.status.code() == Some(0) {
                return output;
            }
            assert_eq!(output.status.code(), Some(1), "{}", text(&output));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        String::from_utf8_lossy(&agreed.stdout).contains("agree"),
        "{}",
        text(&agreed)
    );

    // WeChat Pay took money for an order the gateway never heard of.
    let reply = sim_client
        .post_json(
            "/sim/v1/planted-payments",
            "unused",
            &json!({ "out_trade_no": "FGPLANTED0000000001", "total_fen": 9900 }),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let planted: Value = reply.json();
    let transaction_id = planted["transaction_id"].as_str().unwrap();
    let found = reconcile(&config_file, &today);
    assert_eq!(found.status.code(), Some(1), "{}", text(&found));
    let stdout = String::from_utf8_lossy(&found.stdout);
    assert!(
        stdout.contains(&format!(
            "payment in the bill, not in the store: order FGPLANTED0000000001 \
             transaction {transaction_id} 9900 fen"
        )),
        "{}",
        text(&found)
    );
    assert!(stdout.contains("1 discrepancies"), "{}", text(&found));
    assert!(
        !stdout.contains(&paid) && !stdout.contains(&refunded),
        "{}",
        text(&found)
    );

    // A day WeChat Pay has no bill for, and a day the store has nothing
    // for either: they agree.
    let empty = reconcile(&config_file, "2020-01-01");
    assert_eq!(empty.status.code(), Some(0), "{}", text(&empty));
    // A malformed date is an error, not a verdict.
    let bad = reconcile(&config_file, "yesterday");
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("YYYY-MM-DD"),
        "{}",
        text(&bad)
    );

    gateway.stop().await;
    sim.stop();
}
