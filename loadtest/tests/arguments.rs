//! The command line: every scenario parses with its defaults, and bad or
//! conflicting arguments are refused with a message naming them.

use flashgate_loadtest::plan::{ClusterPlan, ConventionalPlan, Length, Plan, Scenario, TargetPlan};
use flashgate_loadtest::report::RoundKind;
use flashgate_loadtest::scenario::sequence;

fn plan(args: &[&str]) -> Result<Plan, String> {
    Plan::from_args(std::iter::once("flashgate-loadtest").chain(args.iter().copied()))
}

fn refused(args: &[&str], mentions: &str) {
    match plan(args) {
        Ok(plan) => panic!("{args:?} was accepted: {plan:?}"),
        Err(message) => assert!(message.contains(mentions), "{args:?}: {message}"),
    }
}

#[test]
fn flash_defaults_spawn_a_fsync_gateway_for_ten_second_rounds_against_the_ceiling() {
    let plan = plan(&["flash"]).unwrap();
    assert_eq!(plan.scenario, Scenario::Flash);
    assert_eq!(plan.connections, 64);
    assert_eq!(plan.length, Length::Seconds(10.0));
    assert!(plan.compare_ceiling);
    assert_eq!(
        (plan.rounds, plan.stock, plan.skus, plan.per_user_limit),
        (1, 10_000_000, 1, 1)
    );
    assert_eq!(
        plan.buyers, plan.requests_per_round,
        "one buyer per request"
    );
    assert!(!plan.limit_expected());
    assert_eq!(plan.durability(), Some("fsync"));
    assert_eq!(plan.admin_token, "dev-host-token");
    assert_eq!(plan.session_secret, flashgate::config::DEV_SESSION_SECRET);
    match plan.target {
        Some(TargetPlan::Spawn { binary: None, .. }) => {}
        other => panic!("expected a spawned gateway, got {other:?}"),
    }
}

#[test]
fn flash_takes_url_rate_requests_and_connections() {
    let plan = plan(&[
        "flash",
        "--url",
        "http://127.0.0.1:8080",
        "--connections",
        "512",
        "--requests",
        "50000",
        "--rate",
        "20000",
        "--rounds",
        "2",
        "--compare-ceiling",
        "false",
        "--buyers",
        "100",
        "--json",
    ])
    .unwrap();
    assert_eq!(plan.connections, 512);
    assert_eq!(plan.length, Length::Requests(50_000));
    assert_eq!(plan.rate, Some(20_000.0));
    assert_eq!(plan.rounds, 2);
    assert!(!plan.compare_ceiling && plan.json);
    assert!(
        plan.limit_expected(),
        "100 buyers for 50000 requests repeat"
    );
    assert_eq!(plan.durability(), None);
    match plan.target {
        Some(TargetPlan::Url { authority, sim_url }) => {
            assert_eq!(authority, "127.0.0.1:8080");
            assert_eq!(sim_url, "http://127.0.0.1:8090");
        }
        other => panic!("expected --url, got {other:?}"),
    }
}

#[test]
fn open_loop_seconds_pre_build_rate_times_seconds() {
    let plan = plan(&["flash", "--seconds", "2.5", "--rate", "1000"]).unwrap();
    assert_eq!(plan.requests_per_round, 2500);
}

#[test]
fn every_scenario_has_its_defaults() {
    let spread = plan(&["spread", "--durability", "none"]).unwrap();
    assert_eq!((spread.scenario, spread.skus), (Scenario::Spread, 100));
    assert_eq!(spread.durability(), Some("none"));
    assert_eq!(plan(&["spread", "--skus", "8"]).unwrap().skus, 8);

    let soldout = plan(&["soldout"]).unwrap();
    assert_eq!((soldout.scenario, soldout.stock), (Scenario::Soldout, 1000));

    let ceiling = plan(&["ceiling", "--requests", "1000"]).unwrap();
    assert_eq!(ceiling.scenario, Scenario::Ceiling);
    assert!(ceiling.target.is_none());

    let pay = plan(&["pay", "--pay-fraction", "0.25"]).unwrap();
    assert_eq!(pay.length, Length::Requests(20_000));
    assert_eq!((pay.pay_fraction, pay.pay_connections), (Some(0.25), 16));

    let holds = plan(&["holds", "--spawn", "/opt/flashgate"]).unwrap();
    assert_eq!(holds.length, Length::Requests(1_000_000));
    assert_eq!(
        (holds.stock, holds.hold_seconds, holds.settle_seconds),
        (1_000_000, 3600, 5)
    );
    assert!(
        !holds.compare_ceiling,
        "memory is measured without the ceiling"
    );
    match holds.target {
        Some(TargetPlan::Spawn {
            binary: Some(path), ..
        }) => assert_eq!(path.to_str(), Some("/opt/flashgate")),
        other => panic!("expected --spawn PATH, got {other:?}"),
    }
}

#[test]
fn a_bare_spawn_looks_for_the_binary_and_leaves_the_next_option_alone() {
    let plan = plan(&["flash", "--spawn", "--connections", "512"]).unwrap();
    assert_eq!(plan.connections, 512);
    assert!(matches!(
        plan.target,
        Some(TargetPlan::Spawn { binary: None, .. })
    ));
}

#[test]
fn gateway_env_reaches_a_spawned_gateway() {
    let plan = plan(&["flash", "--gateway-env", "FLASHGATE__SERVER__WORKERS=2"]).unwrap();
    match plan.target {
        Some(TargetPlan::Spawn { env, .. }) => {
            assert_eq!(
                env,
                [("FLASHGATE__SERVER__WORKERS".to_string(), "2".to_string())]
            );
        }
        other => panic!("expected a spawned gateway, got {other:?}"),
    }
}

#[test]
fn cluster_starts_n_nodes_on_the_local_redis_beside_the_single_node() {
    let plain = plan(&["flash"]).unwrap();
    assert_eq!(plain.cluster, None);
    assert_eq!(
        sequence(&plain),
        [RoundKind::Ceiling, RoundKind::Flashgate, RoundKind::Ceiling]
    );

    let cluster = plan(&["flash", "--cluster", "3", "--durability", "none"]).unwrap();
    assert_eq!(
        cluster.cluster,
        Some(ClusterPlan {
            nodes: 3,
            redis_url: "redis://127.0.0.1:6379/".into()
        })
    );
    assert_eq!(cluster.durability(), Some("none"));
    assert!(matches!(cluster.target, Some(TargetPlan::Spawn { .. })));
    assert_eq!(
        sequence(&cluster),
        [
            RoundKind::Ceiling,
            RoundKind::Flashgate,
            RoundKind::Cluster,
            RoundKind::Ceiling
        ],
        "ceiling / single node / cluster / ceiling"
    );

    let two = plan(&[
        "spread",
        "--cluster",
        "2",
        "--redis-url",
        "redis://10.0.0.5:6380/2",
        "--rounds",
        "2",
        "--compare-ceiling",
        "false",
        "--gateway-env",
        "FLASHGATE__CLUSTER__LEASE_BLOCK_UNITS=500",
    ])
    .unwrap();
    assert_eq!(
        two.cluster,
        Some(ClusterPlan {
            nodes: 2,
            redis_url: "redis://10.0.0.5:6380/2".into()
        })
    );
    assert_eq!(
        sequence(&two),
        [
            RoundKind::Flashgate,
            RoundKind::Cluster,
            RoundKind::Flashgate,
            RoundKind::Cluster
        ]
    );
    let json = serde_json::to_value(&two).unwrap();
    assert_eq!(json["cluster"]["nodes"], 2);
}

#[test]
fn conventional_runs_after_each_gateway_round_on_the_local_redis() {
    assert_eq!(plan(&["flash"]).unwrap().conventional, None);
    let conventional = plan(&["flash", "--conventional"]).unwrap();
    assert_eq!(
        conventional.conventional,
        Some(ConventionalPlan {
            redis_url: "redis://127.0.0.1:6379/".into()
        })
    );
    assert_eq!(
        sequence(&conventional),
        [
            RoundKind::Ceiling,
            RoundKind::Flashgate,
            RoundKind::Conventional,
            RoundKind::Ceiling
        ],
        "ceiling / flashgate / conventional / ceiling"
    );
    let two = plan(&[
        "spread",
        "--conventional",
        "--redis-url",
        "redis://10.0.0.5:6380/2",
        "--rounds",
        "2",
    ])
    .unwrap();
    assert_eq!(
        two.conventional,
        Some(ConventionalPlan {
            redis_url: "redis://10.0.0.5:6380/2".into()
        })
    );
    assert_eq!(
        sequence(&two),
        [
            RoundKind::Ceiling,
            RoundKind::Flashgate,
            RoundKind::Conventional,
            RoundKind::Ceiling,
            RoundKind::Flashgate,
            RoundKind::Conventional,
            RoundKind::Ceiling
        ]
    );
    let json = serde_json::to_value(&two).unwrap();
    assert_eq!(json["conventional"]["redis_url"], "redis://10.0.0.5:6380/2");
}

#[test]
fn conventional_arguments_that_cannot_work_are_refused() {
    refused(
        &["flash", "--conventional", "--cluster", "3"],
        "cannot be used with",
    );
    for scenario in ["soldout", "pay", "holds"] {
        refused(&[scenario, "--conventional"], "flash and spread");
    }
    refused(&["ceiling", "--conventional"], "--conventional");
    refused(
        &["flash", "--conventional", "--redis-url", "127.0.0.1:6379"],
        "redis://",
    );
}

#[test]
fn cluster_arguments_that_cannot_work_are_refused() {
    refused(&["flash", "--cluster", "0"], "--cluster");
    refused(&["flash", "--cluster", "17"], "--cluster");
    refused(
        &["flash", "--cluster", "3", "--url", "http://127.0.0.1:8080"],
        "cannot be used with",
    );
    refused(
        &["flash", "--redis-url", "redis://127.0.0.1:6379/"],
        "--cluster",
    );
    refused(
        &["flash", "--cluster", "3", "--redis-url", "127.0.0.1:6379"],
        "redis://",
    );
    for scenario in ["soldout", "pay", "holds"] {
        refused(&[scenario, "--cluster", "3"], "flash and spread");
    }
    refused(&["ceiling", "--cluster", "3"], "--cluster");
    refused(
        &[
            "flash",
            "--cluster",
            "3",
            "--redis-url",
            "redis://127.0.0.1:7000,redis://127.0.0.1:7001",
        ],
        "one Redis",
    );
    for key in ["REDIS_URL", "REDIS_MODE", "NODE_ID", "KEY_PREFIX"] {
        let setting = format!("FLASHGATE__CLUSTER__{key}=x");
        refused(
            &["flash", "--cluster", "3", "--gateway-env", &setting],
            "--cluster sets it",
        );
    }
}

#[test]
fn bad_arguments_are_refused() {
    refused(&[], "Usage");
    refused(&["stampede"], "unrecognized subcommand");
    refused(&["flash", "--connections", "0"], "--connections");
    refused(&["flash", "--connections", "many"], "--connections");
    refused(
        &["flash", "--requests", "10", "--seconds", "5"],
        "cannot be used with",
    );
    refused(&["flash", "--seconds", "0"], "--seconds");
    refused(&["flash", "--rate", "0"], "--rate");
    refused(&["flash", "--stock", "10000001"], "--stock");
    refused(&["flash", "--read-max", "10"], "--read-max");
    refused(
        &["flash", "--url", "http://127.0.0.1:8080", "--spawn"],
        "cannot be used with",
    );
    refused(
        &["flash", "--url", "127.0.0.1:8080"],
        "expected http://HOST:PORT",
    );
    refused(
        &["flash", "--url", "http://localhost"],
        "expected http://HOST:PORT",
    );
    refused(
        &[
            "flash",
            "--url",
            "http://127.0.0.1:8080",
            "--durability",
            "none",
        ],
        "--durability",
    );
    refused(&["flash", "--durability", "sometimes"], "--durability");
    refused(&["flash", "--gateway-env", "NOEQUALS"], "KEY=VALUE");
    refused(&["flash", "--gateway-env", "PATH=/bin"], "FLASHGATE__");
    refused(&["spread", "--skus", "101"], "--skus");
    refused(&["flash", "--skus", "10"], "--skus");
    refused(&["pay", "--pay-fraction", "1.5"], "--pay-fraction");
    refused(&["holds", "--url", "http://127.0.0.1:8080"], "--spawn");
    refused(&["holds", "--seconds", "10"], "--requests");
    refused(&["holds", "--requests", "1000", "--stock", "10"], "--stock");
    refused(&["ceiling", "--url", "http://127.0.0.1:8080"], "--url");
}

/// The binary itself: exit status 2 and a message when a run cannot be made.
fn binary(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_flashgate-loadtest"))
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn the_binary_exits_2_on_bad_arguments_and_on_a_gateway_that_is_not_there() {
    let bad = binary(&["flash", "--connections", "0"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--connections"));

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let absent = binary(&["flash", "--url", &url, "--requests", "10"]);
    assert_eq!(absent.status.code(), Some(2));
    let message = String::from_utf8_lossy(&absent.stderr);
    assert!(message.contains("did not answer /healthz"), "{message}");

    let missing = binary(&[
        "flash",
        "--spawn",
        "/nonexistent/flashgate",
        "--requests",
        "10",
    ]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("cannot start /nonexistent/flashgate")
    );
}

#[test]
fn the_binary_exits_2_when_the_redis_of_cluster_or_conventional_is_not_there() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let redis_url = format!("redis://127.0.0.1:{port}/");
    for needs_redis in [&["--cluster", "3"][..], &["--conventional"][..]] {
        let mut args = vec!["flash"];
        args.extend_from_slice(needs_redis);
        args.extend_from_slice(&[
            "--redis-url",
            &redis_url,
            "--spawn",
            "/nonexistent/flashgate",
            "--requests",
            "10",
        ]);
        let absent = binary(&args);
        assert_eq!(absent.status.code(), Some(2), "{args:?}");
        let message = String::from_utf8_lossy(&absent.stderr);
        let expected = format!("{} needs Redis at {redis_url}", needs_redis[0]);
        assert!(message.contains(&expected), "{message}");
    }
}
