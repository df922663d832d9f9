//! Order-create throughput over HTTP with `storage.durability = "fsync"`
//! against `"none"`, measured in the same run, rounds interleaved
//! (none, fsync, none, fsync, ...), printed as a table with the ratio
//! fsync/none next to its target (fsync within 15% of none: ratio ≥ 0.85).
//!
//! Not criterion: a round is seconds of closed-loop HTTP load with latency
//! percentiles, and the two modes must alternate within one run.
//!
//! Per round: a fresh gateway (`Gateway::start`, in-process, on 127.0.0.1:0,
//! its own temp data dir; its connections on its own HTTP threads, its
//! background tasks on a fresh multi-thread tokio runtime); a live sale
//! with one hot SKU whose stock (10,000,000, per-user limit 1) cannot sell out
//! within a round; then C keep-alive HTTP/1.1 connections (hyper's client),
//! each a closed loop of `POST /v1/orders`, every request with its own buyer
//! token and Idempotency-Key taken from a pool signed before any timing.
//! Requests run for a warm-up, then for the measured window; a request counts
//! when its response completes inside the window. Only 201s count; any other
//! status or a transport error is reported. The gateway is shut down and its
//! data dir removed between rounds.
//!
//! The load generator runs on that runtime, in the same process, on the
//! same cores as the gateway: absolute requests/s are a floor for this
//! machine, and the ratio of the two modes within one run is the figure to quote.
//!
//! The journal's own histograms (records per commit, write + fdatasync time)
//! are read from the process-wide Prometheus recorder the gateway installs,
//! as deltas over the measured window. So is the CPU time of the process and
//! of the journal writer thread (`/proc`, Linux): on a shared machine they
//! tell a round that got less CPU from one that needed more.
//!
//! Knobs (environment): `HTTP_BENCH_CONNECTIONS` (default 64),
//! `HTTP_BENCH_SECS` (measured seconds per round, default 5),
//! `HTTP_BENCH_WARMUP_MS` (default 500), `HTTP_BENCH_ROUNDS` (rounds per
//! mode, default 2), `HTTP_BENCH_WORKERS` (tokio workers of that runtime,
//! default the number of CPUs), `HTTP_BENCH_POOL` (pre-signed buyer tokens, default
//! enough for 100,000 requests/s), `HTTP_BENCH_DIR` (parent of the data
//! dirs, default the system temp dir), `HTTP_BENCH_GROWING=1` (a third
//! round per cycle: fsync with `storage.journal_preallocate = false`, so
//! every commit also grows the segment file).

use bytes::Bytes;
use flashgate::app::Gateway;
use flashgate::config::{Config, DEV_SESSION_SECRET};
use flashgate::http::auth::SessionKeys;
use flashgate::journal::Durability;
use flashgate::metrics as names;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

const TARGET_RATIO: f64 = 0.85;
const HOST_TOKEN: &str = "dev-host-token";
const SALE_ID: &str = "http-bench";
const SKU_ID: &str = "hot-sku";
const STOCK: i64 = 10_000_000;
/// Pool sizing when `HTTP_BENCH_POOL` is not set.
const POOL_REQUESTS_PER_SEC: f64 = 100_000.0;
/// Any single request slower than this ends its connection as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

// ---- knobs -------------------------------------------------------------------

struct Knobs {
    connections: usize,
    secs: f64,
    warmup: Duration,
    rounds_per_mode: usize,
    workers: usize,
    pool: usize,
    dir: PathBuf,
}

fn knob<T: FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a valid value")),
        Err(_) => default,
    }
}

impl Knobs {
    fn from_env() -> Knobs {
        let connections = knob("HTTP_BENCH_CONNECTIONS", 64usize).max(1);
        let secs = knob("HTTP_BENCH_SECS", 5.0f64);
        assert!(secs > 0.0, "HTTP_BENCH_SECS must be positive");
        let warmup = Duration::from_millis(knob("HTTP_BENCH_WARMUP_MS", 500u64));
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let default_pool = ((secs + warmup.as_secs_f64()) * POOL_REQUESTS_PER_SEC) as usize;
        Knobs {
            connections,
            secs,
            warmup,
            rounds_per_mode: knob("HTTP_BENCH_ROUNDS", 2usize).max(1),
            workers: knob("HTTP_BENCH_WORKERS", cpus).max(1),
            pool: knob("HTTP_BENCH_POOL", default_pool).max(connections),
            dir: std::env::var_os("HTTP_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from),
        }
    }
}

// ---- the request pool, signed before any timing -----------------------------

/// One request's distinct credentials: `Authorization` and `Idempotency-Key`.
struct Pool {
    requests: Vec<(HeaderValue, HeaderValue)>,
    body: Bytes,
}

impl Pool {
    fn sign(count: usize) -> Pool {
        let keys = SessionKeys::new(DEV_SESSION_SECRET.as_bytes());
        let exp = flashgate::clock::now_ms() / 1000 + 24 * 3600;
        let requests = (0..count)
            .map(|index| {
                let token = keys.issue(&format!("o_bench_{index:09}"), exp);
                let auth = HeaderValue::from_str(&format!("Bearer {token}")).expect("token");
                let key = HeaderValue::from_str(&format!("k{index:09}")).expect("key");
                (auth, key)
            })
            .collect();
        let body = format!(r#"{{"sale_id":"{SALE_ID}","sku_id":"{SKU_ID}","quantity":1}}"#);
        Pool {
            requests,
            body: Bytes::from(body),
        }
    }
}

// ---- a minimal keep-alive HTTP/1.1 client -----------------------------------

type Sender = SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Sender {
    let stream = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|error| panic!("cannot connect to {addr}: {error}"));
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap_or_else(|error| panic!("HTTP handshake with {addr} failed: {error}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender
}

/// Sends one request and reads the whole response.
async fn exchange(
    sender: &mut Sender,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), String> {
    let exchange = async {
        sender.ready().await.map_err(|error| error.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| error.to_string())?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|error| error.to_string())?;
        Ok((parts.status, body.to_bytes()))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no response within {REQUEST_TIMEOUT:?}")))
}

/// An admin call that must answer 2xx.
async fn admin_call(sender: &mut Sender, host: &HeaderValue, path: &str, body: Option<String>) {
    let has_body = body.is_some();
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(HOST, host.clone())
        .header(AUTHORIZATION, format!("Bearer {HOST_TOKEN}"));
    if has_body {
        request = request.header(CONTENT_TYPE, "application/json");
    }
    let request = request
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .expect("a valid request");
    let (status, body) = exchange(sender, request)
        .await
        .unwrap_or_else(|error| panic!("POST {path} failed: {error}"));
    assert!(
        status.is_success(),
        "POST {path} answered {status}: {}",
        String::from_utf8_lossy(&body)
    );
}

// ---- one round --------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    None,
    Fsync,
    /// fsync into segments that grow with each commit (no preallocation).
    FsyncGrowing,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Fsync => "fsync",
            Mode::FsyncGrowing => "fsync-grow",
        }
    }

    fn durability(self) -> Durability {
        match self {
            Mode::None => Durability::None,
            Mode::Fsync | Mode::FsyncGrowing => Durability::Fsync,
        }
    }
}

/// What one connection saw.
#[derive(Default)]
struct ConnectionTally {
    /// 201s whose response completed inside the measured window.
    created_in_window: u64,
    /// 201s over the whole round, warm-up included (checked against the engine).
    created_total: u64,
    latencies_us: Vec<u32>,
    /// Non-201 statuses and transport errors, with one sample body each.
    errors: BTreeMap<String, (u64, String)>,
    pool_exhausted: bool,
}

struct RoundResult {
    mode: Mode,
    created: u64,
    window: Duration,
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    errors: BTreeMap<String, (u64, String)>,
    pool_exhausted: bool,
    engine_mismatch: Option<(u64, u64)>,
    journal: JournalDelta,
    /// CPU cores used over the window: the process (gateway + load
    /// generator), and the journal writer thread alone.
    process_cores: f64,
    writer_cores: f64,
}

/// Journal writer histograms over the measured window.
#[derive(Default)]
struct JournalDelta {
    commits: f64,
    records: f64,
    commit_seconds: f64,
}

/// `(sum, count)` of the histograms the journal writer records.
#[derive(Default, Clone, Copy)]
struct JournalTotals {
    records_sum: f64,
    commits: f64,
    seconds_sum: f64,
}

fn journal_totals() -> JournalTotals {
    let text = names::handle().render();
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    };
    JournalTotals {
        records_sum: value(&format!("{}_sum", names::JOURNAL_RECORDS_PER_COMMIT)),
        commits: value(&format!("{}_count", names::JOURNAL_COMMIT_SECONDS)),
        seconds_sum: value(&format!("{}_sum", names::JOURNAL_COMMIT_SECONDS)),
    }
}

/// CPU time (user + system) from a `/proc/.../stat` file, in seconds.
/// Linux only; `None` elsewhere. Ticks are USER_HZ, 100 on Linux.
fn cpu_seconds(stat: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(stat).ok()?;
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let mut fields = text
        .get(text.rfind(')')? + 1..)?
        .split_whitespace()
        .skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / 100.0)
}

/// The `/proc` stat file of this process's `journal-writer` thread.
fn writer_thread_stat() -> Option<PathBuf> {
    std::fs::read_dir("/proc/self/task")
        .ok()?
        .filter_map(Result::ok)
        .map(|task| task.path())
        .find(|task| {
            std::fs::read_to_string(task.join("comm"))
                .is_ok_and(|comm| comm.trim() == "journal-writer")
        })
        .map(|task| task.join("stat"))
}

/// CPU seconds so far: the whole process, and the journal writer thread.
#[derive(Clone, Copy)]
struct CpuSample {
    process: Option<f64>,
    writer: Option<f64>,
}

fn cpu_sample(writer_stat: Option<&Path>) -> CpuSample {
    CpuSample {
        process: cpu_seconds(Path::new("/proc/self/stat")),
        writer: writer_stat.and_then(cpu_seconds),
    }
}

fn unique_dir(parent: &Path, mode: Mode, round: usize) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    parent.join(format!(
        "flashgate-http-bench-{}-{round}-{}-{nanos}",
        std::process::id(),
        mode.name()
    ))
}

async fn run_round(knobs: &Knobs, pool: &Arc<Pool>, mode: Mode, round: usize) -> RoundResult {
    let data_dir = unique_dir(&knobs.dir, mode, round);
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".into();
    config.server.requests_in_flight_max = config
        .server
        .requests_in_flight_max
        .max(knobs.connections * 2);
    config.server.connections_max = config.server.connections_max.max(knobs.connections + 16);
    config.server.shutdown_grace_seconds = 5;
    config.storage.data_dir = data_dir.clone();
    config.storage.durability = mode.durability();
    config.storage.journal_preallocate = mode != Mode::FsyncGrowing;
    let gateway = Gateway::start(config)
        .await
        .unwrap_or_else(|error| panic!("the gateway did not start: {error}"));
    let addr = gateway.local_addr;
    let host = HeaderValue::from_str(&addr.to_string()).expect("an address is a valid host");

    let mut admin = connect(addr).await;
    let sale = serde_json::json!({
        "sale_id": SALE_ID,
        "title": "HTTP durability bench",
        "hold_seconds": 900,
        "items": [{
            "sku_id": SKU_ID,
            "title": "Hot SKU",
            "price": "99.00",
            "stock": STOCK,
            "per_user_limit": 1,
        }],
    });
    admin_call(&mut admin, &host, "/admin/v1/sales", Some(sale.to_string())).await;
    admin_call(
        &mut admin,
        &host,
        &format!("/admin/v1/sales/{SALE_ID}/start"),
        None,
    )
    .await;
    drop(admin);

    let mut senders = Vec::with_capacity(knobs.connections);
    for _ in 0..knobs.connections {
        senders.push(connect(addr).await);
    }
    let cursor = Arc::new(AtomicUsize::new(0));
    let window = Duration::from_secs_f64(knobs.secs);
    let window_start = Instant::now() + knobs.warmup;
    let window_end = window_start + window;
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|sender| {
            let pool = Arc::clone(pool);
            let cursor = Arc::clone(&cursor);
            let host = host.clone();
            tokio::spawn(closed_loop(
                sender,
                pool,
                cursor,
                host,
                window_start,
                window_end,
            ))
        })
        .collect();

    let writer_stat = writer_thread_stat();
    tokio::time::sleep_until(window_start.into()).await;
    let before = journal_totals();
    let cpu_before = cpu_sample(writer_stat.as_deref());
    tokio::time::sleep_until(window_end.into()).await;
    let after = journal_totals();
    let cpu_after = cpu_sample(writer_stat.as_deref());
    let cores = |pick: fn(&CpuSample) -> Option<f64>| -> f64 {
        match (pick(&cpu_before), pick(&cpu_after)) {
            (Some(before), Some(after)) => (after - before) / window.as_secs_f64(),
            _ => f64::NAN,
        }
    };
    let process_cores = cores(|sample| sample.process);
    let writer_cores = cores(|sample| sample.writer);

    let mut tally = ConnectionTally::default();
    for task in tasks {
        let one = task.await.expect("a load connection panicked");
        tally.created_in_window += one.created_in_window;
        tally.created_total += one.created_total;
        tally.latencies_us.extend(one.latencies_us);
        tally.pool_exhausted |= one.pool_exhausted;
        for (what, (count, sample)) in one.errors {
            let entry = tally.errors.entry(what).or_insert((0, sample));
            entry.0 += count;
        }
    }
    let engine_created = gateway
        .state
        .engine
        .stats(SALE_ID, flashgate::clock::now_ms())
        .map_or(0, |stats| stats.orders.created);
    gateway.shutdown().await;
    let _ = std::fs::remove_dir_all(&data_dir);

    let mut latencies = tally.latencies_us;
    latencies.sort_unstable();
    let percentile_ms = |q: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
        f64::from(latencies[rank - 1]) / 1000.0
    };
    RoundResult {
        mode,
        created: tally.created_in_window,
        window,
        requests_per_sec: tally.created_in_window as f64 / window.as_secs_f64(),
        p50_ms: percentile_ms(0.50),
        p99_ms: percentile_ms(0.99),
        max_ms: percentile_ms(1.0),
        errors: tally.errors,
        pool_exhausted: tally.pool_exhausted,
        engine_mismatch: (engine_created != tally.created_total)
            .then_some((tally.created_total, engine_created)),
        journal: JournalDelta {
            commits: after.commits - before.commits,
            records: after.records_sum - before.records_sum,
            commit_seconds: after.seconds_sum - before.seconds_sum,
        },
        process_cores,
        writer_cores,
    }
}

/// One connection: `POST /v1/orders` back to back until the window closes.
async fn closed_loop(
    mut sender: Sender,
    pool: Arc<Pool>,
    cursor: Arc<AtomicUsize>,
    host: HeaderValue,
    window_start: Instant,
    window_end: Instant,
) -> ConnectionTally {
    let mut tally = ConnectionTally::default();
    while Instant::now() < window_end {
        let index = cursor.fetch_add(1, Ordering::Relaxed);
        let Some((auth, key)) = pool.requests.get(index) else {
            tally.pool_exhausted = true;
            break;
        };
        let request = Request::builder()
            .method(Method::POST)
            .uri("/v1/orders")
            .header(HOST, host.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(AUTHORIZATION, auth.clone())
            .header("idempotency-key", key.clone())
            .body(Full::new(pool.body.clone()))
            .expect("a valid request");
        let sent = Instant::now();
        let outcome = exchange(&mut sender, request).await;
        let done = Instant::now();
        match outcome {
            Ok((StatusCode::CREATED, _)) => {
                tally.created_total += 1;
                if done >= window_start && done < window_end {
                    tally.created_in_window += 1;
                    let micros = done.duration_since(sent).as_micros();
                    tally
                        .latencies_us
                        .push(u32::try_from(micros).unwrap_or(u32::MAX));
                }
            }
            Ok((status, body)) => {
                let sample = String::from_utf8_lossy(&body).chars().take(200).collect();
                tally
                    .errors
                    .entry(format!("HTTP {}", status.as_u16()))
                    .or_insert((0, sample))
                    .0 += 1;
            }
            Err(error) => {
                tally
                    .errors
                    .entry("transport".into())
                    .or_insert((0, error))
                    .0 += 1;
                break;
            }
        }
    }
    tally
}

// ---- report -------------------------------------------------------------------

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The filesystem holding `path`, from /proc/mounts (Linux); best effort.
fn filesystem_of(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else {
        return "unknown filesystem".into();
    };
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (device, mount, kind) = (fields.next()?, fields.next()?, fields.next()?);
            path.starts_with(mount).then(|| {
                (
                    mount.len(),
                    format!("{kind} on {device}, mounted at {mount}"),
                )
            })
        })
        .max_by_key(|(length, _)| *length)
        .map_or_else(|| "unknown filesystem".into(), |(_, text)| text)
}

fn print_round(index: usize, result: &RoundResult) {
    let journal = &result.journal;
    let secs = result.window.as_secs_f64();
    let (per_commit, commits_per_sec, commit_ms) = if journal.commits > 0.0 {
        (
            format!("{:.1}", journal.records / journal.commits),
            format!("{:.0}", journal.commits / secs),
            format!("{:.3}", journal.commit_seconds / journal.commits * 1000.0),
        )
    } else {
        ("-".into(), "0".into(), "-".into())
    };
    let errors: u64 = result.errors.values().map(|(count, _)| count).sum();
    let cpu_us_per_request = result.process_cores * secs * 1e6 / result.created as f64;
    println!(
        "{:>5}  {:<5}  {:>9}  {:>10.0}  {:>7.2}  {:>7.2}  {:>8.2}  {:>6}  {:>10}  {:>9}  {:>9}  {:>5.2}  {:>7.1}  {:>5.2}",
        index + 1,
        result.mode.name(),
        result.created,
        result.requests_per_sec,
        result.p50_ms,
        result.p99_ms,
        result.max_ms,
        errors,
        per_commit,
        commits_per_sec,
        commit_ms,
        result.process_cores,
        cpu_us_per_request,
        result.writer_cores,
    );
}

fn main() {
    let knobs = Knobs::from_env();
    println!(
        "flashgate HTTP durability bench: POST /v1/orders, fsync vs none, same run, interleaved"
    );
    println!(
        "  {} keep-alive HTTP/1.1 connections, closed loop; {:.1} s measured per round after {} ms warm-up; {} rounds per mode",
        knobs.connections,
        knobs.secs,
        knobs.warmup.as_millis(),
        knobs.rounds_per_mode
    );
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "  load generator (a tokio runtime of {} workers) and gateway (its own HTTP threads, one per CPU) \
         share one process on {} CPUs (a machine shared with other work):",
        knobs.workers, cpus
    );
    println!("  absolute requests/s are a floor; the fsync/none ratio within this run is the figure to quote");
    println!(
        "  data dirs under {} ({})",
        knobs.dir.display(),
        filesystem_of(&knobs.dir)
    );
    println!(
        "  latency: client side, request handed to hyper -> whole response read; only 201s counted"
    );

    let started = Instant::now();
    let pool = Arc::new(Pool::sign(knobs.pool));
    println!(
        "  {} distinct buyer tokens + Idempotency-Keys signed in {:.2} s before timing (reused per round; each round is a fresh gateway)",
        pool.requests.len(),
        started.elapsed().as_secs_f64()
    );
    println!();

    let cycle: &[Mode] = if std::env::var("HTTP_BENCH_GROWING").is_ok_and(|value| value == "1") {
        &[Mode::None, Mode::Fsync, Mode::FsyncGrowing]
    } else {
        &[Mode::None, Mode::Fsync]
    };
    let modes: Vec<Mode> = (0..knobs.rounds_per_mode)
        .flat_map(|_| cycle.iter().copied())
        .collect();
    println!(
        "{:>5}  {:<5}  {:>9}  {:>10}  {:>7}  {:>7}  {:>8}  {:>6}  {:>10}  {:>9}  {:>9}  {:>5}  {:>7}  {:>5}",
        "round",
        "mode",
        "201s",
        "req/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
        "rec/commit",
        "commits/s",
        "commit ms",
        "cpu",
        "us/req",
        "wr"
    );
    let mut results = Vec::with_capacity(modes.len());
    for (index, mode) in modes.iter().enumerate() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(knobs.workers)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let result = runtime.block_on(run_round(&knobs, &pool, *mode, index));
        runtime.shutdown_timeout(Duration::from_secs(5));
        print_round(index, &result);
        results.push(result);
    }
    println!("  rec/commit, commits/s, commit ms: the journal writer's histograms over the measured window;");
    println!("    commit ms is one write + fdatasync with fsync, one write with none");
    println!("  cpu: CPU cores this process used over the window (gateway + load generator);");
    println!("    us/req: its CPU microseconds per 201; wr: cores used by the journal writer thread alone");

    println!();
    let per_mode = |mode: Mode, pick: fn(&RoundResult) -> f64| -> f64 {
        median(
            results
                .iter()
                .filter(|result| result.mode == mode)
                .map(pick)
                .collect(),
        )
    };
    println!(
        "{:<12}  {:>10}  {:>7}  {:>7}",
        "median", "req/s", "p50 ms", "p99 ms"
    );
    for mode in cycle.iter().copied() {
        println!(
            "{:<12}  {:>10.0}  {:>7.2}  {:>7.2}",
            mode.name(),
            per_mode(mode, |r| r.requests_per_sec),
            per_mode(mode, |r| r.p50_ms),
            per_mode(mode, |r| r.p99_ms),
        );
    }
    let none = per_mode(Mode::None, |r| r.requests_per_sec);
    let fsync = per_mode(Mode::Fsync, |r| r.requests_per_sec);
    let ratio = fsync / none;
    let pairs: Vec<String> = results
        .chunks(cycle.len())
        .filter(|round| round.len() == cycle.len())
        .map(|round| {
            format!(
                "{:.3}",
                round[1].requests_per_sec / round[0].requests_per_sec
            )
        })
        .collect();
    println!();
    println!(
        "ratio fsync/none (median req/s): {ratio:.3}   target >= {TARGET_RATIO:.2}: {}",
        if ratio >= TARGET_RATIO {
            "PASS"
        } else {
            "MISS"
        }
    );
    println!(
        "  per pair (fsync round / the none round before it): {}",
        pairs.join(", ")
    );
    if cycle.contains(&Mode::FsyncGrowing) {
        let growing = per_mode(Mode::FsyncGrowing, |r| r.requests_per_sec);
        println!(
            "ratio fsync-grow/none (median req/s): {:.3}; fsync/fsync-grow: {:.3}",
            growing / none,
            fsync / growing
        );
    }

    let mut clean = true;
    for (index, result) in results.iter().enumerate() {
        for (what, (count, sample)) in &result.errors {
            clean = false;
            println!(
                "round {}: {count} x {what} (not counted); first: {sample}",
                index + 1
            );
        }
        if result.pool_exhausted {
            clean = false;
            println!(
                "round {}: the token pool ran out before the window closed: its req/s is an underestimate \
                 (raise HTTP_BENCH_POOL)",
                index + 1
            );
        }
        if let Some((client, engine)) = result.engine_mismatch {
            clean = false;
            println!(
                "round {}: the client saw {client} 201s but the engine counts {engine} orders",
                index + 1
            );
        }
    }
    if clean {
        println!("no errors: every request answered 201; the client's 201 count matches the engine's orders in every round");
    }
}
