//! What the cross-node per-user limit costs an order, against the
//! machine's Redis through one multiplexed connection, at 1, 64 and 512
//! checks in flight, rounds interleaved:
//! - `ping`: a `PING` per check (the floor of any Redis round trip here);
//! - `call`: one `take_limit` script call per check, what a cluster node
//!   does per new order (src/cluster/limits.rs).
//!
//! Per round: C tasks, each a closed loop of checks for a distinct buyer
//! per check (as a flash sale's orders are), for `LIMIT_BENCH_SECS` seconds
//! after a warm-up; every check's latency is kept. Printed per concurrency
//! and kind: checks/s and latency p50 / p99, and the ratios to `ping`; at
//! the end Redis's own CPU time per script call and per check (`INFO
//! commandstats`, the `evalsha` delta of the whole run).
//!
//! Not criterion: each figure is seconds of concurrent load, and the kinds
//! must alternate within one run on this shared machine.
//!
//! Knobs (environment): `LIMIT_BENCH_SECS` (default 3), `LIMIT_BENCH_ROUNDS`
//! (default 2), `LIMIT_BENCH_REDIS` (default redis://127.0.0.1:6379).
//! Keys go under a prefix of the run's own, deleted at the end.

use flashgate::cluster::registry::LimitTaken;
use flashgate::cluster::{RedisLink, Registry};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CONCURRENCY: [usize; 3] = [1, 64, 512];
const KINDS: [Kind; 2] = [Kind::Ping, Kind::Call];
const WARMUP: Duration = Duration::from_millis(300);

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Ping,
    Call,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ping => "ping",
            Kind::Call => "call",
        }
    }
}

struct Round {
    checks: usize,
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
    let script_checks = Arc::new(AtomicU64::new(0));
    let stats_before = evalsha_stats(url);
    println!(
        "cluster_limit: per-user limit checks on one multiplexed connection, {} s per round, {rounds} rounds per kind, interleaved",
        window.as_secs_f64()
    );
    println!("in flight | kind    | checks/s (median) | ÷ ping | p50 µs | p99 µs");
    for concurrency in CONCURRENCY {
        let mut results: Vec<Vec<Round>> = KINDS.iter().map(|_| Vec::new()).collect();
        for round in 0..rounds {
            for (index, kind) in KINDS.iter().enumerate() {
                let tag = format!("c{concurrency}r{round}{}", kind.name());
                let load = Load {
                    registry: Arc::clone(&registry),
                    script_checks: Arc::clone(&script_checks),
                    kind: *kind,
                    sku: Arc::from(tag.as_str()),
                };
                results[index].push(load.run(concurrency, window).await);
            }
        }
        let rates: Vec<f64> = results
            .iter()
            .map(|rounds| median(rounds.iter().map(|r| r.checks as f64 / r.seconds).collect()))
            .collect();
        for (index, kind) in KINDS.iter().enumerate() {
            let mut latencies: Vec<u64> = results[index]
                .iter()
                .flat_map(|r| r.latencies_us.iter().copied())
                .collect();
            latencies.sort_unstable();
            println!(
                "{concurrency:>9} | {:<7} | {:>17.0} | {:>6.3} | {:>6} | {:>6}",
                kind.name(),
                rates[index],
                rates[index] / rates[0],
                percentile(&latencies, 0.50),
                percentile(&latencies, 0.99)
            );
        }
    }
    if let (Some((calls_before, usec_before)), Some((calls_after, usec_after))) =
        (stats_before, evalsha_stats(url))
    {
        let calls = calls_after.saturating_sub(calls_before);
        let checks = script_checks.load(Ordering::Relaxed);
        if calls > 0 && checks > 0 {
            let usec = usec_after.saturating_sub(usec_before) as f64;
            println!(
                "Redis CPU (INFO commandstats, evalsha): {:.2} µs per script call ({calls} calls), {:.2} µs per check ({checks} checks)",
                usec / calls as f64,
                usec / checks as f64
            );
        }
    }
    delete_prefix(url, &prefix);
}

struct Load {
    registry: Arc<Registry>,
    script_checks: Arc<AtomicU64>,
    kind: Kind,
    sku: Arc<str>,
}

impl Load {
    async fn run(&self, concurrency: usize, window: Duration) -> Round {
        let measuring = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for task in 0..concurrency {
            let load = Load {
                registry: Arc::clone(&self.registry),
                script_checks: Arc::clone(&self.script_checks),
                kind: self.kind,
                sku: Arc::clone(&self.sku),
            };
            let (measuring, stop) = (Arc::clone(&measuring), Arc::clone(&stop));
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let started = Instant::now();
                    load.one(format!("b{task}-{n}")).await;
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
            checks: latencies_us.len(),
            seconds,
            latencies_us,
        }
    }

    async fn one(&self, buyer: String) {
        let taken = match self.kind {
            Kind::Ping => {
                let pong: String = self
                    .registry
                    .link()
                    .call("ping", async |connection| {
                        redis::cmd("PING").query_async(connection).await
                    })
                    .await
                    .expect("PING");
                assert_eq!(pong, "PONG");
                return;
            }
            Kind::Call => {
                self.registry
                    .take_limit("bench", &self.sku, &buyer, 1, 1)
                    .await
            }
        };
        assert_eq!(taken.expect("a limit check"), LimitTaken::Counted);
        self.script_checks.fetch_add(1, Ordering::Relaxed);
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
