//! Small runs end to end against a gateway started in this process
//! (`Gateway::start` on 127.0.0.1:0, its own temp data dir and embedded
//! WeChat Pay simulator) and the in-process ceiling: the verification
//! passes, and the report has what the JSON promises.

use flashgate::app::Gateway;
use flashgate::config::Config;
use flashgate_loadtest::plan::Plan;
use flashgate_loadtest::report::{Report, RoundKind};
use flashgate_loadtest::scenario;
use std::path::PathBuf;
use std::time::Duration;

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn gateway(tag: &str) -> (Gateway, Scratch, String) {
    let dir = std::env::temp_dir().join(format!(
        "flashgate-loadtest-e2e-{tag}-{}-{}",
        std::process::id(),
        flashgate::clock::now_ms()
    ));
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".into();
    config.pay.simulator_listen = "127.0.0.1:0".into();
    config.server.shutdown_grace_seconds = 5;
    config.storage.data_dir = dir.join("data");
    let gateway = Gateway::start(config).await.expect("the gateway starts");
    let sim_url = gateway
        .simulator
        .as_ref()
        .expect("the embedded simulator")
        .base_url();
    (gateway, Scratch(dir), sim_url)
}

async fn run(args: Vec<String>) -> Report {
    let plan = Plan::from_args(std::iter::once("flashgate-loadtest".to_string()).chain(args))
        .expect("valid arguments");
    tokio::time::timeout(Duration::from_secs(60), scenario::run(plan))
        .await
        .expect("the run finishes")
        .expect("the run completes")
}

/// The kinds of the run's rounds, once its verification passed.
fn kinds_of_a_verified_run(report: &Report) -> Vec<RoundKind> {
    let failures: Vec<_> = report.verification.failures().collect();
    assert!(report.verification.passed, "{failures:#?}");
    report.rounds.iter().map(|round| round.kind).collect()
}

fn args(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_flash_run_passes_its_verification_and_reports_the_ratio() {
    let (gateway, _scratch, sim_url) = gateway("flash").await;
    let url = format!("http://{}", gateway.local_addr);
    let report = run(args(&format!(
        "flash --url {url} --sim-url {sim_url} --requests 200 --connections 4 --ceiling-threads 1"
    )))
    .await;
    assert_eq!(
        kinds_of_a_verified_run(&report),
        [RoundKind::Ceiling, RoundKind::Flashgate, RoundKind::Ceiling]
    );
    let flash = &report.rounds[1];
    assert_eq!(
        (flash.sent, flash.outcomes.reserved, flash.outcomes.errors),
        (200, 200, 0)
    );
    assert_eq!(flash.stats.as_ref().unwrap().reserved, 200);
    assert_eq!(flash.reads.as_ref().unwrap().readable, 200);
    let catch_up = flash
        .store_catch_up
        .as_ref()
        .expect("the wait for the store");
    assert!(catch_up.lag_records <= 200 + 2, "{catch_up:?}");
    // The journal's histograms are the process's (other tests' gateways
    // may commit meanwhile): at least this round's 200 records.
    let journal = flash.journal.as_ref().expect("the round's journal commits");
    let records = journal.records_per_commit * journal.commits as f64;
    assert!(records.round() >= 200.0, "{journal:?}");
    assert!(
        journal.mean_commit_us > 0.0 && journal.busy > 0.0,
        "{journal:?}"
    );
    assert!(report.render().contains("journal: "));
    for ceiling in [&report.rounds[0], &report.rounds[2]] {
        assert_eq!(ceiling.outcomes.reserved, 200);
    }
    let ratio = report.ratio.as_ref().expect("a ratio against the ceiling");
    assert!(ratio.ratio > 0.0 && ratio.ceiling_requests_per_second > 0.0);
    let json: serde_json::Value = serde_json::to_value(&report).unwrap();
    assert_eq!(json["scenario"], "flash");
    assert!(json["rounds"][1]["latency_us"]["p99"].as_u64().unwrap() > 0);
    assert_eq!(json["verification"]["passed"], true);
    assert!(report.render().contains("verification: PASSED"));
    gateway.shutdown().await;
}

/// Needs the Redis at 127.0.0.1:6379 (as the cluster tests do); its keys
/// are the run's own and are gone afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conventional_design_runs_the_same_stream_and_sells_exactly_its_stock() {
    let (gateway, _scratch, sim_url) = gateway("conventional").await;
    let url = format!("http://{}", gateway.local_addr);
    // 300 requests of 200 buyers for 150 units: 201s, SOLD_OUT and
    // LIMIT_EXCEEDED all come.
    let report = run(args(&format!(
        "flash --url {url} --sim-url {sim_url} --conventional --requests 300 --buyers 200 \
         --stock 150 --connections 4 --ceiling-threads 1"
    )))
    .await;
    assert_eq!(
        kinds_of_a_verified_run(&report),
        [
            RoundKind::Ceiling,
            RoundKind::Flashgate,
            RoundKind::Conventional,
            RoundKind::Ceiling
        ]
    );
    let round = &report.rounds[2];
    let o = &round.outcomes;
    assert_eq!((o.reserved, o.errors, o.shed), (150, 0, 0), "{o:?}");
    assert_eq!(o.reserved + o.sold_out + o.limit, 300, "{o:?}");
    assert!(o.limit > 0, "repeated buyers meet their limit: {o:?}");
    let detail = round.conventional.as_ref().expect("Redis's counts");
    assert_eq!((detail.units_sold, detail.buyer_units), (150, 150));
    assert_eq!(
        report.rounds[1].outcomes.reserved, 150,
        "flashgate sold the same"
    );
    let summary = report.conventional.as_ref().expect("the comparison");
    assert_eq!(
        summary.keys_deleted,
        Some(2),
        "the SKU's stock and its buyers"
    );
    assert!(summary.conventional_to_ceiling.unwrap() > 0.0);
    assert!(summary.flashgate_to_conventional.unwrap() > 0.0);
    let mut redis = redis::Client::open(summary.redis_url.as_str())
        .and_then(|client| client.get_connection())
        .expect("the Redis the run used");
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", summary.key_prefix))
        .query(&mut redis)
        .unwrap();
    assert!(left.is_empty(), "keys left behind: {left:?}");
    assert!(report.render().contains("flashgate / conventional = "));
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn winners_pay_through_the_simulator_and_the_stats_show_it() {
    let (gateway, _scratch, sim_url) = gateway("pay").await;
    let url = format!("http://{}", gateway.local_addr);
    let report = run(args(&format!(
        "pay --url {url} --sim-url {sim_url} --requests 100 --connections 4 --pay-fraction 0.2 \
         --pay-connections 4 --compare-ceiling false"
    )))
    .await;
    let failures: Vec<_> = report.verification.failures().collect();
    assert!(report.verification.passed, "{failures:#?}");
    let round = &report.rounds[0];
    let pay = round.pay.as_ref().expect("a pay report");
    assert_eq!(
        (pay.orders, pay.prepaid, pay.confirmed, pay.paid_seen),
        (20, 20, 20, 20)
    );
    let stats = round.stats.as_ref().unwrap();
    assert_eq!(
        (stats.paid, stats.reserved, stats.orders_paid),
        (20, 80, 20)
    );
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_after_a_sell_out_are_all_refused_and_the_stock_is_exact() {
    let (gateway, _scratch, sim_url) = gateway("soldout").await;
    let url = format!("http://{}", gateway.local_addr);
    let report = run(args(&format!(
        "soldout --url {url} --sim-url {sim_url} --requests 150 --stock 30 --connections 4 --compare-ceiling false"
    )))
    .await;
    let failures: Vec<_> = report.verification.failures().collect();
    assert!(report.verification.passed, "{failures:#?}");
    let round = &report.rounds[0];
    assert_eq!((round.outcomes.reserved, round.outcomes.sold_out), (0, 150));
    assert_eq!(round.stats.as_ref().unwrap().reserved, 30);
    gateway.shutdown().await;
}
