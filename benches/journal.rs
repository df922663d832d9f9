//! Journal speed: group-commit appends and cold replay, measured on real
//! files, printed as a table with the targets next to the figures.
//!
//! Not criterion: commit latency percentiles need one timing per record.
//!
//! 1. Appends: N writers (tokio tasks on a 2-worker runtime), each in a loop
//!    submitting one serialized `Event::OrderReserved` and awaiting
//!    `durable()`, for a fixed time. Latency is submit → `durable()` resolved,
//!    per record. Records/s counts records on disk at the end (for
//!    `Durability::None` the writer's drain at shutdown is included).
//!    A metrics recorder captures the writer's own per-commit histograms
//!    (records per commit, write + fdatasync time).
//! 2. Recovery: a realistic journal of 1 M records (a sale, its start,
//!    reservations by distinct buyers, some cancels), then `replay` raw,
//!    with serde decode, and with decode + `Engine::apply` into a fresh
//!    engine; with the segment pages dropped from the page cache
//!    (`posix_fadvise(DONTNEED)` after a sync) and warm.
//!
//! Knobs (environment): `JOURNAL_BENCH_SECS` (seconds per append case,
//! default 3), `JOURNAL_BENCH_RECORDS` (recovery records, default 1000000),
//! `JOURNAL_BENCH_DIR` (parent of the temp dirs, default the system temp dir),
//! `JOURNAL_BENCH_WRITER_POLICY` (`batch` or `normal`, default what ships:
//! `storage.journal_writer_policy`).

use flashgate::config::StorageConfig;
use flashgate::ids::OrderIds;
use flashgate::journal::{
    replay, Durability, Journal, JournalOptions, ReplayOutcome, ThreadPolicy,
};
use flashgate::metrics as names;
use flashgate::sale::{Engine, EngineLimits, Event, ItemSpec, OrderAction, SaleAction, SaleSpec};
use metrics::{Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, SharedString, Unit};
use rust_decimal::Decimal;
use std::fs;
use std::hint::black_box;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SEGMENT_BYTES_MAX: u64 = 64 << 20;
const COMMIT_BATCH_BYTES_MAX: usize = 1 << 20;

const TARGET_APPENDS_PER_SEC: f64 = 500_000.0;
const TARGET_P99_MS_AT_64: f64 = 2.0;
const TARGET_REPLAY_SECS: f64 = 2.0;

const SALE_ID: &str = "live_2026-11-24_evening";
const T0: i64 = 1_795_989_600_000; // 2026-11-30T12:00:00Z
const HOLD_SECONDS: u32 = 600;

// ---- the writer's own histograms, captured ------------------------------

/// One metric's samples; only the journal's two histograms are kept.
#[derive(Default)]
struct Samples(Mutex<Vec<f64>>);

impl HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().unwrap().push(value);
    }
}

impl Samples {
    fn take(&self) -> Vec<f64> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

#[derive(Clone, Default)]
struct CommitStats {
    records_per_commit: Arc<Samples>,
    commit_seconds: Arc<Samples>,
}

impl metrics::Recorder for CommitStats {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::noop()
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        match key.name() {
            names::JOURNAL_RECORDS_PER_COMMIT => {
                Histogram::from_arc(Arc::clone(&self.records_per_commit))
            }
            names::JOURNAL_COMMIT_SECONDS => Histogram::from_arc(Arc::clone(&self.commit_seconds)),
            _ => Histogram::noop(),
        }
    }
}

// ---- helpers -------------------------------------------------------------

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// `JOURNAL_BENCH_WRITER_POLICY`, else the shipped default.
fn writer_policy() -> ThreadPolicy {
    match std::env::var("JOURNAL_BENCH_WRITER_POLICY").as_deref() {
        Ok("normal") => ThreadPolicy::Normal,
        Ok("batch") => ThreadPolicy::Batch,
        _ => StorageConfig::default().journal_writer_policy,
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(parent: &Path, name: &str) -> TempDir {
        let dir = parent.join(format!("fg-jbench-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create bench dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The mount holding `dir`, from /proc/mounts: "device on mountpoint type fs (options)".
fn filesystem_of(dir: &Path) -> String {
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    let Ok(mounts) = fs::read_to_string("/proc/mounts") else {
        return "unknown (no /proc/mounts)".into();
    };
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let device = fields.next()?;
            let mount_point = fields.next()?.replace("\\040", " ");
            let fs_type = fields.next()?;
            let options = fields.next().unwrap_or("");
            dir.starts_with(&mount_point).then(|| {
                (
                    mount_point,
                    device.to_owned(),
                    fs_type.to_owned(),
                    options.to_owned(),
                )
            })
        })
        .max_by_key(|(mount_point, ..)| mount_point.len())
        .map_or_else(
            || "unknown".into(),
            |(mount_point, device, fs_type, options)| {
                format!("{device} on {mount_point} type {fs_type} ({options})")
            },
        )
}

fn journal_options(dir: &Path, durability: Durability) -> JournalOptions {
    JournalOptions {
        dir: dir.to_owned(),
        durability,
        segment_bytes_max: SEGMENT_BYTES_MAX,
        commit_batch_bytes_max: COMMIT_BATCH_BYTES_MAX,
        preallocate: true,
        // What ships: `[storage]`'s defaults (no gathering wait).
        commit_gather_min_records: StorageConfig::default().commit_gather_min_records,
        commit_gather: Duration::from_micros(StorageConfig::default().commit_gather_us),
        writer_policy: writer_policy(),
    }
}

fn start_journal(dir: &Path, durability: Durability) -> Journal {
    let outcome = replay(dir, 0, COMMIT_BATCH_BYTES_MAX, |_, _| Ok(())).expect("empty replay");
    Journal::start(journal_options(dir, durability), &outcome).expect("journal start")
}

/// Nearest-rank percentile of sorted values.
fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

fn verdict(pass: bool) -> &'static str {
    if pass {
        "PASS"
    } else {
        "MISS"
    }
}

fn engine_limits() -> EngineLimits {
    EngineLimits {
        shard_count: 16,
        sales_max: 1024,
        items_per_sale_max: 100,
        stock_per_item_max: 10_000_000,
        orders_max: 50_000_000,
        hold_seconds_min: flashgate::sale::engine::HOLD_SECONDS_MIN,
        stock_from_leases: false,
    }
}

/// A small xorshift: deterministic, realistic-looking ids without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn chars(&mut self, alphabet: &[u8], count: usize) -> String {
        (0..count)
            .map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize] as char)
            .collect()
    }
}

const OPENID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const HEX: &[u8] = b"0123456789abcdef";

/// A WeChat-openid-like buyer id, 28 characters; distinct per `index`.
fn buyer_id(rng: &mut Rng, index: u64) -> String {
    format!("o{}{:08x}", rng.chars(OPENID_ALPHABET, 19), index)
}

/// A UUID-v4-like idempotency key.
fn idempotency_key(rng: &mut Rng) -> String {
    format!(
        "{}-{}-4{}-a{}-{}",
        rng.chars(HEX, 8),
        rng.chars(HEX, 4),
        rng.chars(HEX, 3),
        rng.chars(HEX, 3),
        rng.chars(HEX, 12)
    )
}

fn sale_spec() -> SaleSpec {
    let item = |sku: &str, title: &str, price: &str| ItemSpec {
        sku_id: sku.into(),
        title: title.into(),
        price: price.parse().expect("price"),
        stock: 10_000_000,
        per_user_limit: 2,
    };
    SaleSpec {
        sale_id: SALE_ID.into(),
        title: "Double-12 warm-up: lipstick and skincare flash sale".into(),
        starts_at: Some(T0),
        ends_at: Some(T0 + 2 * 3600 * 1000),
        hold_seconds: HOLD_SECONDS,
        items: vec![
            item("lip-rouge-999", "Rouge velvet lipstick #999", "199.00"),
            item("serum-30ml", "Night repair serum 30 ml", "459.00"),
            item("cushion-n20", "Cushion foundation N20", "289.50"),
            item("mask-10pk", "Hydrating sheet mask, 10 pack", "99.90"),
        ],
    }
}

fn order_reserved(ids: &OrderIds, rng: &mut Rng, index: u64, at: i64) -> Event {
    let spec_prices = ["199.00", "459.00", "289.50", "99.90"];
    let skus = ["lip-rouge-999", "serum-30ml", "cushion-n20", "mask-10pk"];
    let item = (rng.next() % 4) as usize;
    let quantity = 1 + (rng.next() % 2) as u32;
    let price: Decimal = spec_prices[item].parse().expect("price");
    Event::OrderReserved {
        at,
        order_id: ids.next_id().to_string(),
        sale_id: SALE_ID.into(),
        sku_id: skus[item].into(),
        buyer: buyer_id(rng, index),
        quantity,
        amount: price * Decimal::from(quantity),
        idempotency_key: idempotency_key(rng),
        expires_at: at + i64::from(HOLD_SECONDS) * 1000,
    }
}

// ---- 1. appends ------------------------------------------------------------

struct AppendResult {
    writers: usize,
    durability: Durability,
    records: u64,
    refused: u64,
    seconds: f64,
    latencies: Vec<u64>,
    records_per_commit: Vec<f64>,
    commit_seconds: Vec<f64>,
}

fn run_appends(
    parent: &Path,
    stats: &CommitStats,
    writers: usize,
    durability: Durability,
    run_for: Duration,
) -> AppendResult {
    let dir = TempDir::new(parent, &format!("append-{writers}-{durability:?}"));
    let journal = Arc::new(start_journal(&dir.0, durability));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ writers as u64);
    let ids = OrderIds::new(T0);
    let payloads: Vec<Vec<u8>> = (0..writers as u64)
        .map(|index| {
            let event = order_reserved(&ids, &mut rng, index, T0 + 1_000);
            serde_json::to_vec(&event).expect("serialize")
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    stats.records_per_commit.take();
    stats.commit_seconds.take();

    let started = Instant::now();
    let deadline = started + run_for;
    let per_task: Vec<(Vec<u64>, u64)> = runtime.block_on(async {
        let tasks: Vec<_> = payloads
            .into_iter()
            .map(|payload| {
                let journal = Arc::clone(&journal);
                tokio::spawn(async move {
                    let mut latencies = Vec::with_capacity(4096);
                    let mut refused = 0u64;
                    loop {
                        let submitted = Instant::now();
                        if submitted >= deadline {
                            break;
                        }
                        match journal.submit(payload.clone()).durable().await {
                            Ok(_) => latencies.push(submitted.elapsed().as_nanos() as u64),
                            Err(_) => refused += 1,
                        }
                        if durability == Durability::None || refused > 0 {
                            // Nothing to await: let the other writers run.
                            tokio::task::yield_now().await;
                        }
                    }
                    (latencies, refused)
                })
            })
            .collect();
        let mut results = Vec::with_capacity(tasks.len());
        for task in tasks {
            results.push(task.await.expect("writer task"));
        }
        results
    });
    // Fsync: everything acknowledged is on disk. None: include the drain.
    journal.shutdown();
    let seconds = started.elapsed().as_secs_f64();
    drop(runtime);

    let refused = per_task.iter().map(|(_, refused)| refused).sum();
    let mut latencies: Vec<u64> = per_task.into_iter().flat_map(|(l, _)| l).collect();
    latencies.sort_unstable();
    let mut records_per_commit = stats.records_per_commit.take();
    records_per_commit.sort_by(f64::total_cmp);
    let mut commit_seconds = stats.commit_seconds.take();
    commit_seconds.sort_by(f64::total_cmp);
    AppendResult {
        writers,
        durability,
        records: records_per_commit.iter().sum::<f64>() as u64,
        refused,
        seconds,
        latencies,
        records_per_commit,
        commit_seconds,
    }
}

// ---- 2. recovery -----------------------------------------------------------

struct Written {
    records: u64,
    bytes: u64,
    payload_bytes: u64,
    orders: u64,
    cancels: u64,
    seconds: f64,
}

/// Writes `count` records with `Durability::None`: the sale, its start, then
/// reservations by distinct buyers, with one cancel (of an order ten back)
/// every 20 records.
fn write_recovery_log(dir: &Path, count: u64) -> Written {
    assert!(count >= 3, "need room for the sale, its start and an order");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let journal = start_journal(dir, Durability::None);
    let ids = OrderIds::new(T0);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut order_ids: Vec<String> = Vec::new();
    let (mut orders, mut cancels, mut payload_bytes) = (0u64, 0u64, 0u64);
    runtime.block_on(async {
        for index in 0..count {
            let at = T0 + index as i64 / 50; // ~50k records a second
            let event = match index {
                0 => Event::SaleCreated {
                    at: T0 - 3_600_000,
                    sale: sale_spec(),
                },
                1 => Event::SaleTransitioned {
                    at,
                    sale_id: SALE_ID.into(),
                    action: SaleAction::Start,
                },
                _ if index % 20 == 0 && order_ids.len() > 10 => {
                    cancels += 1;
                    let victim = order_ids.len() - 10;
                    Event::OrderTransitioned {
                        at,
                        order_id: order_ids.swap_remove(victim),
                        action: OrderAction::Cancel,
                    }
                }
                _ => {
                    orders += 1;
                    let event = order_reserved(&ids, &mut rng, index, at);
                    if let Event::OrderReserved { order_id, .. } = &event {
                        order_ids.push(order_id.clone());
                    }
                    event
                }
            };
            let payload = serde_json::to_vec(&event).expect("serialize");
            payload_bytes += payload.len() as u64;
            while journal.submit(payload.clone()).durable().await.is_err() {
                tokio::task::yield_now().await; // the journal failed: try again
            }
        }
    });
    // Drains the queue. With Durability::None the writer never syncs, not even
    // here; `drop_page_cache` syncs the segments before advising the kernel.
    journal.shutdown();
    let seconds = started.elapsed().as_secs_f64();
    let bytes = segment_files(dir).iter().map(|(_, len)| len).sum();
    Written {
        records: count,
        bytes,
        payload_bytes,
        orders,
        cancels,
        seconds,
    }
}

fn segment_files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut files: Vec<(PathBuf, u64)> = fs::read_dir(dir)
        .expect("read journal dir")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let len = entry.metadata().ok()?.len();
            Some((entry.path(), len))
        })
        .filter(|(path, _)| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    files.sort();
    files
}

extern "C" {
    fn posix_fadvise(fd: i32, offset: i64, len: i64, advice: i32) -> i32;
}
const POSIX_FADV_DONTNEED: i32 = 4;

/// Syncs the segments, then asks the kernel to drop their cached pages so
/// the next read comes from the device. True if every file was advised.
fn drop_page_cache(dir: &Path) -> bool {
    segment_files(dir).iter().all(|(path, _)| {
        let Ok(file) = fs::File::open(path) else {
            return false;
        };
        // SAFETY: a valid open descriptor; the call only advises the kernel.
        file.sync_all().is_ok()
            && unsafe { posix_fadvise(file.as_raw_fd(), 0, 0, POSIX_FADV_DONTNEED) } == 0
    })
}

#[derive(Clone, Copy, PartialEq)]
enum ReplayKind {
    /// `replay` with a no-op apply: read, CRC, framing.
    Raw,
    /// Plus `serde_json::from_slice::<Event>`.
    Decode,
    /// Plus `Engine::apply` into a fresh engine.
    Apply,
}

struct Replayed {
    label: String,
    records: u64,
    seconds: f64,
    /// User + system CPU of the whole process (every thread) over the
    /// replay: steadier than wall time when the machine is shared.
    cpu_seconds: f64,
}

/// This process's user + system CPU time so far, from /proc/self/stat.
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command: state is field 3, utime 14, stime 15.
    let after_comm = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks = |index: usize| fields.get(index).and_then(|f| f.parse::<f64>().ok());
    // Linux reports these in USER_HZ, 100 on every architecture it runs on.
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / 100.0,
        _ => f64::NAN,
    }
}

fn run_replay(dir: &Path, kind: ReplayKind, cold: bool) -> Replayed {
    let dropped = cold && drop_page_cache(dir);
    let started = Instant::now();
    let cpu_before = process_cpu_seconds();
    // As the gateway does at start-up: size the maps from the journal.
    let mut engine = (kind == ReplayKind::Apply).then(|| {
        let mut engine = Engine::new(engine_limits(), T0);
        engine.presize(flashgate::app::estimated_orders(dir, u64::MAX));
        engine
    });
    let outcome: ReplayOutcome = match &engine {
        // The gateway's own start-up path: read + decode on one core, apply on the other.
        Some(engine) => {
            flashgate::app::replay_into(engine, dir, 0, COMMIT_BATCH_BYTES_MAX).expect("replay")
        }
        None => replay(dir, 0, COMMIT_BATCH_BYTES_MAX, |_, payload| {
            if kind == ReplayKind::Raw {
                black_box(payload);
                return Ok(());
            }
            let event: Event = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
            black_box(&event);
            Ok(())
        })
        .expect("replay"),
    };
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = process_cpu_seconds() - cpu_before;
    if let Some(engine) = engine.take() {
        let stats = engine.stats(SALE_ID, T0).expect("the sale was replayed");
        black_box(stats);
        drop(engine); // dropping a million orders is not part of the replay
    }
    let what = match kind {
        ReplayKind::Raw => "replay, no-op apply",
        ReplayKind::Decode => "replay + serde decode",
        ReplayKind::Apply => "app::replay_into (decode ∥ apply)",
    };
    let cache = match (cold, dropped) {
        (false, _) => "warm page cache",
        (true, true) => "page cache dropped",
        (true, false) => "page cache NOT dropped (fadvise failed)",
    };
    Replayed {
        label: format!("{what}, {cache}"),
        records: outcome.records_applied,
        seconds,
        cpu_seconds,
    }
}

// ---- main ------------------------------------------------------------------

fn main() {
    let secs: f64 = env_or("JOURNAL_BENCH_SECS", 3.0);
    let recovery_records: u64 = env_or("JOURNAL_BENCH_RECORDS", 1_000_000);
    let parent: PathBuf = std::env::var_os("JOURNAL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let stats = CommitStats::default();
    metrics::set_global_recorder(stats.clone()).expect("no other recorder");

    let sample = {
        let ids = OrderIds::new(T0);
        serde_json::to_vec(&order_reserved(&ids, &mut Rng(1), 1, T0)).expect("serialize")
    };
    println!("flashgate journal bench");
    println!("  dir {} on {}", parent.display(), filesystem_of(&parent));
    println!(
        "  {} s per append case; payload: Event::OrderReserved as JSON, {} bytes (+16 header)",
        secs,
        sample.len()
    );
    println!(
        "  commit_batch_bytes_max 1 MiB, segment_bytes_max 64 MiB; tokio multi-thread, 2 workers; {} CPUs",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    println!();

    // ---- 1. appends
    let cases = [
        (1, Durability::Fsync),
        (64, Durability::Fsync),
        (1024, Durability::Fsync),
        (64, Durability::None),
    ];
    let run_for = Duration::from_secs_f64(secs);
    let results: Vec<AppendResult> = cases
        .iter()
        .map(|&(writers, durability)| run_appends(&parent, &stats, writers, durability, run_for))
        .collect();
    println!(
        "1. appends (latency = submit -> durable() resolved, per record; writer {:?})",
        writer_policy()
    );
    println!(
        "  {:>7} {:>10} {:>12} {:>9} {:>9} {:>9} {:>9} | {:>8} {:>9} {:>9} {:>10} {:>8} {:>7}",
        "writers",
        "durability",
        "appends/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "commits",
        "rec/commit",
        "io p50 ms",
        "io p99 ms",
        "io busy",
        "gap ms"
    );
    for result in &results {
        let latencies = &result.latencies;
        let commits = result.records_per_commit.len();
        let io_total: f64 = result.commit_seconds.iter().sum();
        let (io_p50, io_p99) = if commits == 0 {
            (0.0, 0.0)
        } else {
            (
                percentile(&result.commit_seconds, 50.0) * 1e3,
                percentile(&result.commit_seconds, 99.0) * 1e3,
            )
        };
        println!(
            "  {:>7} {:>10} {:>12.0} {:>9.3} {:>9.3} {:>9.3} {:>9.3} | {:>8} {:>9.1} {:>9.3} {:>10.3} {:>7.0}% {:>7.3}",
            result.writers,
            format!("{:?}", result.durability),
            result.records as f64 / result.seconds,
            ms(percentile(latencies, 50.0)),
            ms(percentile(latencies, 99.0)),
            ms(percentile(latencies, 99.9)),
            ms(*latencies.last().expect("some records")),
            commits,
            result.records as f64 / commits.max(1) as f64,
            io_p50,
            io_p99,
            100.0 * io_total / result.seconds,
            (result.seconds - io_total) * 1e3 / commits.max(1) as f64,
        );
        if result.refused > 0 {
            println!("          ({} submits failed)", result.refused);
        }
    }
    println!("  commits, rec/commit, io (one commit's write + fdatasync), io busy (io time / wall");
    println!(
        "  time) and gap (wall time per commit outside write + fdatasync: draining, encoding,"
    );
    println!("  waking the waiters, idling) come from the writer's own histograms;");
    println!("  appends/s counts records written (for None, including the drain at shutdown).");
    println!();

    // ---- 2. recovery
    let dir = TempDir::new(&parent, "recovery");
    let written = write_recovery_log(&dir.0, recovery_records);
    println!(
        "2. recovery: {} records ({} OrderReserved, {} cancels), {:.1} MB in {} segment(s), {:.0} B/record payload",
        written.records,
        written.orders,
        written.cancels,
        written.bytes as f64 / 1e6,
        segment_files(&dir.0).len(),
        written.payload_bytes as f64 / written.records as f64,
    );
    println!(
        "  written with Durability::None in {:.2} s ({:.0} records/s incl. JSON encoding)",
        written.seconds,
        written.records as f64 / written.seconds
    );
    let replays = [
        run_replay(&dir.0, ReplayKind::Raw, true),
        run_replay(&dir.0, ReplayKind::Raw, false),
        run_replay(&dir.0, ReplayKind::Decode, false),
        run_replay(&dir.0, ReplayKind::Apply, false),
        run_replay(&dir.0, ReplayKind::Apply, true),
    ];
    println!(
        "  {:<58} {:>9} {:>12} {:>8}",
        "cold start into a fresh process state", "seconds", "records/s", "cpu s"
    );
    for replayed in &replays {
        assert_eq!(replayed.records, written.records, "every record replayed");
        println!(
            "  {:<58} {:>9.3} {:>12.0} {:>8.2}",
            replayed.label,
            replayed.seconds,
            replayed.records as f64 / replayed.seconds,
            replayed.cpu_seconds
        );
    }
    println!();

    // ---- 3. targets
    let best_fsync = results
        .iter()
        .filter(|r| r.durability == Durability::Fsync)
        .max_by(|a, b| (a.records as f64 / a.seconds).total_cmp(&(b.records as f64 / b.seconds)))
        .expect("fsync cases");
    let throughput = best_fsync.records as f64 / best_fsync.seconds;
    let at_64 = results
        .iter()
        .find(|r| r.writers == 64 && r.durability == Durability::Fsync)
        .expect("64-writer fsync case");
    let p99_64 = ms(percentile(&at_64.latencies, 99.0));
    let full_cold = &replays[4];
    let replay_secs = full_cold.seconds * 1_000_000.0 / full_cold.records as f64;
    println!("3. targets (measured, not asserted)");
    println!(
        "  appends/s, group commit on (Fsync, best: {} writers)   >= 500000/s   {:>12.0}/s   {}",
        best_fsync.writers,
        throughput,
        verdict(throughput >= TARGET_APPENDS_PER_SEC)
    );
    println!(
        "  p99 commit latency, Fsync, 64 writers                  <= 2 ms       {:>12.3} ms  {}",
        p99_64,
        verdict(p99_64 <= TARGET_P99_MS_AT_64)
    );
    println!(
        "  replay of 1 M records (decode + apply, cache dropped)  <= 2 s        {:>12.3} s   {}",
        replay_secs,
        verdict(replay_secs <= TARGET_REPLAY_SECS)
    );
    if full_cold.records != 1_000_000 {
        println!(
            "  (replay scaled to 1 M from {} records)",
            full_cold.records
        );
    }
}
