//! What the cross-node per-user limit costs an order: the `take_limit`
//! script (src/cluster/limits.rs) against the machine's Redis, through the
//! node's one multiplexed connection, at 1, 64 and 512 calls in flight,
//! next to a `PING` on the same connection at the same concurrency (the
//! floor of any Redis round trip here), rounds interleaved (ping, limit,
//! ping, limit).
//!
//! Per round: C tasks, each a closed loop of calls for a distinct buyer per
//! call (as a flash sale's orders are), for `LIMIT_BENCH_SECS` seconds after
//! a warm-up; every call's latency is kept. Printed per concurrency: calls/s
//! and latency p50 / p99 of each, the ratio limit/ping of calls/s, and
//! Redis's own CPU time per script call (`INFO commandstats`, the
//! `evalsha` delta over the run).
//!
//! Not criterion: each figure is seconds of concurrent load, and the two
//! kinds of call must alternate within one run on this shared machine.
//!
//! Knobs (environment): `LIMIT_BENCH_SECS` (default 3), `LIMIT_BENCH_ROUNDS`
//! (default 2), `LIMIT_BENCH_REDIS` (default redis://127.0.0.1:6379).
//! Keys go under a prefix of the run's own, deleted at the end.

use flashgate::cluster::registry::LimitTaken;
use flashgate::cluster::{RedisLink, Registry};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CONCURRENCY: [usize; 3] = [1, 64, 512];
const WARMUP: Duration = Duration::from_millis(300);

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Ping,
    Limit,
}

struct Round {
    calls: usize,
    seconds: f64,
    latencies_us: Vec<u64>,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let seconds: u64 = env_or("LIMIT_BENCH_SECS", 3);
    let rounds: usize = env_or("LIMIT_BENCH_ROUNDS", 2);
    let url: String = env_or("LIMIT_BENCH_REDIS", "redis://127.0.0.1:6379".to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run(&url, Duration::from_secs(seconds), rounds));
}

async fn run(url: &str, window: Duration, rounds: usize) {
    let prefix = format!("flashgate-bench:limit:{}", std::process::id());
    let link = RedisLink::new(url, Duration::from_secs(5)).expect("a Redis URL");
    let registry = Arc::new(Registry::new(link, &prefix));
    if let Err(error) = registry.buyer_count("bench", "k", "nobody").await {
        eprintln!("cluster_limit bench: Redis at {url} does not answer ({error})");
        std::process::exit(1);
    }
    let stats_before = evalsha_stats(url);
    println!(
        "cluster_limit: take_limit vs PING on one multiplexed connection, {} s per round, {rounds} rounds each, interleaved",
        window.as_secs_f64()
    );
    println!("concurrency | kind  | calls/s (median) | p50 µs | p99 µs");
    let mut summary = Vec::new();
    for concurrency in CONCURRENCY {
        let mut per_kind: Vec<(Kind, Vec<Round>)> =
            vec![(Kind::Ping, Vec::new()), (Kind::Limit, Vec::new())];
        for round in 0..rounds {
            for (kind, results) in per_kind.iter_mut() {
                let tag = format!("c{concurrency}r{round}");
                results.push(load(&registry, *kind, concurrency, window, &tag).await);
            }
        }
        let mut rates = Vec::new();
        for (kind, results) in &per_kind {
            let rate = median(results.iter().map(|r| r.calls as f64 / r.seconds).collect());
            let mut latencies: Vec<u64> = results
                .iter()
                .flat_map(|r| r.latencies_us.iter().copied())
                .collect();
            latencies.sort_unstable();
            let name = match kind {
                Kind::Ping => "ping ",
                Kind::Limit => "limit",
            };
            println!(
                "{concurrency:>11} | {name} | {rate:>16.0} | {:>6} | {:>6}",
                percentile(&latencies, 0.50),
                percentile(&latencies, 0.99)
            );
            rates.push(rate);
        }
        summary.push((concurrency, rates[1] / rates[0]));
    }
    for (concurrency, ratio) in summary {
        println!("ratio limit/ping calls/s at {concurrency} in flight: {ratio:.3}");
    }
    let stats_after = evalsha_stats(url);
    if let (Some((calls_before, usec_before)), Some((calls_after, usec_after))) =
        (stats_before, stats_after)
    {
        let calls = calls_after.saturating_sub(calls_before);
        if calls > 0 {
            let per_call = (usec_after - usec_before) as f64 / calls as f64;
            println!(
                "Redis CPU per script call (INFO commandstats, evalsha): {per_call:.2} µs over {calls} calls"
            );
        }
    }
    delete_prefix(url, &prefix);
}

async fn load(
    registry: &Arc<Registry>,
    kind: Kind,
    concurrency: usize,
    window: Duration,
    tag: &str,
) -> Round {
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for task in 0..concurrency {
        let (registry, measuring, stop) = (
            Arc::clone(registry),
            Arc::clone(&measuring),
            Arc::clone(&stop),
        );
        let sku = format!("k-{tag}");
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let buyer = format!("b{task}-{n}");
                let started = Instant::now();
                match kind {
                    Kind::Ping => {
                        let pong: String = registry
                            .link()
                            .call("ping", async |connection| {
                                redis::cmd("PING").query_async(connection).await
                            })
                            .await
                            .expect("PING");
                        assert_eq!(pong, "PONG");
                    }
                    Kind::Limit => {
                        let taken = registry
                            .take_limit("bench", &sku, &buyer, 1, 1)
                            .await
                            .expect("take_limit");
                        assert_eq!(taken, LimitTaken::Counted);
                    }
                }
                if measuring.load(Ordering::Relaxed) {
                    latencies.push(started.elapsed().as_micros() as u64);
                }
            }
            latencies
        }));
    }
    tokio::time::sleep(WARMUP).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(window).await;
    measuring.store(false, Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut latencies_us = Vec::new();
    for task in tasks {
        latencies_us.extend(task.await.expect("a load task"));
    }
    Round {
        calls: latencies_us.len(),
        seconds,
        latencies_us,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(sorted: &[u64], quantile: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let index = ((sorted.len() as f64 * quantile) as usize).min(sorted.len() - 1);
    sorted[index]
}

/// `(calls, usec)` of `cmdstat_evalsha` from `INFO commandstats`.
fn evalsha_stats(url: &str) -> Option<(u64, u64)> {
    let client = redis::Client::open(url).ok()?;
    let mut connection = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .ok()?;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut connection)
        .ok()?;
    let line = info
        .lines()
        .find(|line| line.starts_with("cmdstat_evalsha:"))?;
    let field = |name: &str| -> Option<u64> {
        line.split([':', ','])
            .find_map(|part| part.strip_prefix(name)?.strip_prefix('='))?
            .parse()
            .ok()
    };
    Some((field("calls")?, field("usec")?))
}

fn delete_prefix(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let Ok(mut connection) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
        return;
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query(&mut connection)
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: Result<i64, _> = redis::cmd("DEL").arg(&keys).query(&mut connection);
    }
}
