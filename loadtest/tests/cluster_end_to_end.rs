//! `--cluster` end to end, small: three real `flashgate serve` nodes and a
//! single node, spawned from the debug `flashgate` binary beside this
//! package's (`cargo test --workspace` builds it for the gateway's own
//! tests; alone, build it first with `cargo build -p flashgate`), on the
//! machine's Redis (127.0.0.1:6379). The run sells a small stock out across
//! the nodes, verifies it, reports the Redis calls, and leaves no key and no
//! node behind.

use flashgate_loadtest::plan::Plan;
use flashgate_loadtest::report::{Report, RoundKind};
use flashgate_loadtest::scenario;
use std::path::PathBuf;
use std::time::Duration;

const REDIS_URL: &str = "redis://127.0.0.1:6379/";

/// The debug gateway binary beside `flashgate-loadtest`'s.
fn gateway_binary() -> PathBuf {
    let tool = PathBuf::from(env!("CARGO_BIN_EXE_flashgate-loadtest"));
    let binary = tool
        .parent()
        .expect("the tool's directory")
        .join("flashgate");
    assert!(
        binary.is_file(),
        "{} is missing: build it with `cargo build -p flashgate` (cargo test --workspace does)",
        binary.display()
    );
    binary
}

fn redis() -> redis::Connection {
    redis::Client::open(REDIS_URL)
        .expect("a valid Redis URL")
        .get_connection_with_timeout(Duration::from_secs(1))
        .unwrap_or_else(|error| {
            panic!(
                "this test needs Redis at {REDIS_URL} and cannot reach it ({error}); \
                 start it (e.g. `redis-server --daemonize yes`)"
            )
        })
}

async fn run(args: &str) -> Report {
    let plan = Plan::from_args(
        std::iter::once("flashgate-loadtest".to_string())
            .chain(args.split_whitespace().map(str::to_owned)),
    )
    .expect("valid arguments");
    tokio::time::timeout(Duration::from_secs(120), scenario::run(plan))
        .await
        .expect("the run finishes")
        .expect("the run completes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_sell_a_small_stock_out_and_the_run_cleans_up_after_itself() {
    let mut connection = redis();
    let binary = gateway_binary();
    let report = run(&format!(
        "flash --cluster 3 --spawn {} --durability none --stock 100 --requests 300 \
         --connections 6 --ceiling-threads 1",
        binary.display()
    ))
    .await;
    let failures: Vec<_> = report.verification.failures().collect();
    assert!(report.verification.passed, "{failures:#?}");
    let kinds: Vec<RoundKind> = report.rounds.iter().map(|round| round.kind).collect();
    assert_eq!(
        kinds,
        [
            RoundKind::Ceiling,
            RoundKind::Flashgate,
            RoundKind::Cluster,
            RoundKind::Ceiling
        ]
    );

    // The single node sells exactly the stock; the cluster at most the
    // stock (a request shed while a refill is on its way is not retried).
    let single = &report.rounds[1];
    assert_eq!(
        (single.outcomes.reserved, single.outcomes.sold_out),
        (100, 200)
    );
    let round = &report.rounds[2];
    let detail = round.cluster.as_ref().expect("a cluster round's detail");
    assert_eq!(round.outcomes.total(), 300);
    assert!(
        round.outcomes.reserved > 0 && round.outcomes.reserved <= 100,
        "{:?}",
        round.outcomes
    );
    assert_eq!(round.outcomes.errors, 0);
    assert_eq!(detail.nodes.len(), 3);
    let by_node: Vec<u64> = detail.nodes.iter().map(|n| n.outcomes.total()).collect();
    assert!(
        by_node.iter().all(|&count| count > 0) && by_node.iter().sum::<u64>() == 300,
        "6 connections round-robin over 3 nodes, each taking the next request: {by_node:?}"
    );
    let sold: u64 = detail.nodes.iter().map(|n| n.stats.reserved).sum();
    assert_eq!(sold, round.outcomes.reserved);
    assert_eq!(
        detail.view.global_remaining + detail.view.leases.values().sum::<u64>(),
        100
    );
    let calls = &detail.redis_calls;
    assert!(
        calls.by_op.get("lease").copied().unwrap_or(0) > 0,
        "{calls:?}"
    );
    assert_eq!(calls.reserved_orders, round.outcomes.reserved);
    assert_eq!(calls.requests, 300);
    assert!(calls.stock_calls_per_reserved_order.is_some());

    let summary = report.cluster.as_ref().expect("a cluster summary");
    assert_eq!(summary.nodes, 3);
    assert!(summary.cluster_to_single.is_some() && summary.cluster_to_ceiling.is_some());
    assert!(summary.keys_deleted.unwrap_or(0) > 0, "{summary:?}");
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", summary.key_prefix))
        .query(&mut connection)
        .expect("KEYS");
    assert!(left.is_empty(), "keys left behind: {left:?}");

    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["cluster"]["nodes"], 3);
    assert!(json["rounds"][2]["cluster"]["redis_calls"]["by_op"]["lease"].as_u64() > Some(0));
    let text = report.render();
    assert!(
        text.contains("ceiling / single node / 3-node cluster"),
        "{text}"
    );
    assert!(text.contains("stock calls (lease + return)"), "{text}");
}
