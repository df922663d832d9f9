//! CPU time from `/proc` (Linux): of a process, and of its threads by name.
//! Sampled around a round, it tells a round that got less CPU (a noisy
//! neighbour) from one that needed more, and where a spawned gateway spends
//! its cores (HTTP threads, journal writer, store writer). Per thread name
//! it also splits user from kernel time and counts context switches: how
//! often a thread went to sleep (voluntary) and how often it was preempted
//! (involuntary), per 1,000 requests. Those two told run L in
//! docs/PERFORMANCE.md where the gateway's cores went idle.

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Clock ticks per second of `/proc/.../stat` times (USER_HZ; 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds used so far.
#[derive(Clone, Debug, Default)]
pub struct CpuSample {
    pub process_seconds: f64,
    /// By thread name (`comm`); threads of one name summed.
    pub threads: BTreeMap<String, ThreadTimes>,
}

/// What the threads of one name have used so far.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ThreadTimes {
    pub user_seconds: f64,
    pub system_seconds: f64,
    /// Times a thread gave up the CPU to wait (a sleep, `epoll_wait`, a lock).
    pub voluntary_switches: u64,
    /// Times a thread was preempted while it could have run on.
    pub involuntary_switches: u64,
}

impl ThreadTimes {
    fn add(&mut self, other: &ThreadTimes) {
        self.user_seconds += other.user_seconds;
        self.system_seconds += other.system_seconds;
        self.voluntary_switches += other.voluntary_switches;
        self.involuntary_switches += other.involuntary_switches;
    }
}

/// Cores used over an interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CpuUse {
    pub cores: f64,
    /// CPU microseconds per request answered in the interval.
    pub us_per_request: f64,
    /// Cores by thread name.
    pub threads: BTreeMap<String, f64>,
    /// By thread name, per request answered in the interval.
    pub per_request: BTreeMap<String, ThreadPerRequest>,
}

/// One thread name's use per request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct ThreadPerRequest {
    pub user_us: f64,
    pub system_us: f64,
    /// Voluntary context switches per 1,000 requests.
    pub sleeps_per_1000: f64,
    /// Involuntary context switches per 1,000 requests.
    pub preempted_per_1000: f64,
}

/// `pid` None: this process.
pub fn sample(pid: Option<u32>) -> Option<CpuSample> {
    let root = match pid {
        Some(pid) => format!("/proc/{pid}"),
        None => "/proc/self".to_owned(),
    };
    let (user, system) = stat_seconds(&Path::new(&root).join("stat"))?;
    let process_seconds = user + system;
    let mut threads: BTreeMap<String, ThreadTimes> = BTreeMap::new();
    if let Ok(tasks) = std::fs::read_dir(Path::new(&root).join("task")) {
        for task in tasks.filter_map(Result::ok).map(|task| task.path()) {
            let (Ok(name), Some((user_seconds, system_seconds))) = (
                std::fs::read_to_string(task.join("comm")),
                stat_seconds(&task.join("stat")),
            ) else {
                continue;
            };
            // A thread that ended between the two reads counts no switches.
            let (voluntary_switches, involuntary_switches) =
                std::fs::read_to_string(task.join("status"))
                    .map(|status| switches(&status))
                    .unwrap_or_default();
            let times = ThreadTimes {
                user_seconds,
                system_seconds,
                voluntary_switches,
                involuntary_switches,
            };
            threads
                .entry(name.trim().to_owned())
                .or_default()
                .add(&times);
        }
    }
    Some(CpuSample {
        process_seconds,
        threads,
    })
}

/// Several processes (a cluster's nodes) as one: their CPU and their
/// threads' summed. None when `pids` is empty or one cannot be read.
pub fn sample_all(pids: &[u32]) -> Option<CpuSample> {
    let mut sum: Option<CpuSample> = None;
    for &pid in pids {
        let one = sample(Some(pid))?;
        let total = sum.get_or_insert_with(CpuSample::default);
        total.process_seconds += one.process_seconds;
        for (name, times) in one.threads {
            total.threads.entry(name).or_default().add(&times);
        }
    }
    sum
}

/// The use between two samples over `seconds`, for `requests` answered.
/// Threads that ended between the samples are not counted by name.
pub fn between(before: &CpuSample, after: &CpuSample, seconds: f64, requests: u64) -> CpuUse {
    let seconds = seconds.max(1e-9);
    let used = (after.process_seconds - before.process_seconds).max(0.0);
    let mut threads = BTreeMap::new();
    let mut per_request = BTreeMap::new();
    for (name, total) in &after.threads {
        let start = before.threads.get(name).copied().unwrap_or_default();
        let user = (total.user_seconds - start.user_seconds).max(0.0);
        let system = (total.system_seconds - start.system_seconds).max(0.0);
        let cores = round2((user + system) / seconds);
        let switched = total.voluntary_switches > start.voluntary_switches
            || total.involuntary_switches > start.involuntary_switches;
        if cores > 0.0 {
            threads.insert(name.clone(), cores);
        }
        // A thread that mostly sleeps uses no measurable CPU; its sleeps
        // still say how often it was woken.
        if requests > 0 && (cores > 0.0 || switched) {
            let requests = requests as f64;
            let per_1000 = |after: u64, before: u64| {
                round1(after.saturating_sub(before) as f64 * 1000.0 / requests)
            };
            per_request.insert(
                name.clone(),
                ThreadPerRequest {
                    user_us: round1(user * 1e6 / requests),
                    system_us: round1(system * 1e6 / requests),
                    sleeps_per_1000: per_1000(total.voluntary_switches, start.voluntary_switches),
                    preempted_per_1000: per_1000(
                        total.involuntary_switches,
                        start.involuntary_switches,
                    ),
                },
            );
        }
    }
    CpuUse {
        cores: round2(used / seconds),
        us_per_request: if requests == 0 {
            0.0
        } else {
            (used * 1e6 / requests as f64).round()
        },
        threads,
        per_request,
    }
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// utime and stime of a `stat` file, in seconds.
fn stat_seconds(path: &Path) -> Option<(f64, f64)> {
    let text = std::fs::read_to_string(path).ok()?;
    // After `(comm)`: field 3 is the state; utime and stime are fields 14, 15.
    let mut fields = text
        .get(text.rfind(')')? + 1..)?
        .split_whitespace()
        .skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((
        user as f64 / TICKS_PER_SECOND,
        system as f64 / TICKS_PER_SECOND,
    ))
}

/// The voluntary and involuntary context switches of a `status` file.
fn switches(status: &str) -> (u64, u64) {
    let count = |label: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(label))
            .and_then(|rest| rest.trim().parse().ok())
            .unwrap_or(0)
    };
    (
        count("voluntary_ctxt_switches:"),
        count("nonvoluntary_ctxt_switches:"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_uses_cpu_and_names_its_threads() {
        let before = sample(None).expect("/proc on Linux");
        let mut spin = 0u64;
        let started = std::time::Instant::now();
        while started.elapsed().as_millis() < 50 {
            spin = spin.wrapping_add(1);
        }
        let after = sample(None).unwrap();
        assert!(spin > 0);
        assert!(after.process_seconds >= before.process_seconds);
        assert!(!after.threads.is_empty());
        let used = between(&before, &after, 0.05, 10);
        assert!(used.cores >= 0.0 && used.us_per_request >= 0.0);
    }

    #[test]
    fn switches_are_read_from_a_status_file() {
        let status = "Name:\thttp-0\nState:\tS (sleeping)\n\
                      voluntary_ctxt_switches:\t1234\n\
                      nonvoluntary_ctxt_switches:\t56\n";
        assert_eq!(switches(status), (1234, 56));
        assert_eq!(switches("Name:\tx\n"), (0, 0));
    }

    #[test]
    fn a_sleeping_thread_counts_its_sleeps_and_a_spinning_one_its_user_time() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        use std::time::{Duration, Instant};
        let stop = Arc::new(AtomicBool::new(false));
        let spawn = |name: &str, sleeps: bool| {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    let mut spin = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        if sleeps {
                            std::thread::sleep(Duration::from_millis(1));
                        } else {
                            spin = std::hint::black_box(spin.wrapping_add(1));
                        }
                    }
                })
                .unwrap()
        };
        let threads = [spawn("cpu-sleeper", true), spawn("cpu-spinner", false)];
        // Both threads exist before the first sample.
        std::thread::sleep(Duration::from_millis(20));
        let before = sample(None).unwrap();
        let started = Instant::now();
        std::thread::sleep(Duration::from_millis(200));
        let after = sample(None).unwrap();
        let used = between(&before, &after, started.elapsed().as_secs_f64(), 1000);
        stop.store(true, Ordering::Relaxed);
        for thread in threads {
            thread.join().unwrap();
        }
        // 1,000 requests: "per 1,000" is the count itself.
        let sleeper = used
            .per_request
            .get("cpu-sleeper")
            .copied()
            .unwrap_or_default();
        assert!(sleeper.sleeps_per_1000 >= 20.0, "{sleeper:?}");
        // At least two clock ticks of its 200 ms, however busy the machine.
        let spinner = used.per_request["cpu-spinner"];
        assert!(spinner.user_us >= 20.0, "{spinner:?}");
    }
}
