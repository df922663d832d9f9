//! CPU time from `/proc` (Linux): of a process, and of its threads by name.
//! Sampled around a round, it tells a round that got less CPU (a noisy
//! neighbour) from one that needed more, and where a spawned gateway spends
//! its cores (HTTP threads, journal writer, store writer).

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
    pub threads: BTreeMap<String, f64>,
}

/// Cores used over an interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CpuUse {
    pub cores: f64,
    /// CPU microseconds per request answered in the interval.
    pub us_per_request: f64,
    /// Cores by thread name.
    pub threads: BTreeMap<String, f64>,
}

/// `pid` None: this process.
pub fn sample(pid: Option<u32>) -> Option<CpuSample> {
    let root = match pid {
        Some(pid) => format!("/proc/{pid}"),
        None => "/proc/self".to_owned(),
    };
    let process_seconds = stat_seconds(&Path::new(&root).join("stat"))?;
    let mut threads = BTreeMap::new();
    if let Ok(tasks) = std::fs::read_dir(Path::new(&root).join("task")) {
        for task in tasks.filter_map(Result::ok).map(|task| task.path()) {
            let (Ok(name), Some(seconds)) = (
                std::fs::read_to_string(task.join("comm")),
                stat_seconds(&task.join("stat")),
            ) else {
                continue;
            };
            *threads.entry(name.trim().to_owned()).or_insert(0.0) += seconds;
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
        for (name, seconds) in one.threads {
            *total.threads.entry(name).or_insert(0.0) += seconds;
        }
    }
    sum
}

/// The use between two samples over `seconds`, for `requests` answered.
/// Threads that ended between the samples are not counted by name.
pub fn between(before: &CpuSample, after: &CpuSample, seconds: f64, requests: u64) -> CpuUse {
    let seconds = seconds.max(1e-9);
    let used = (after.process_seconds - before.process_seconds).max(0.0);
    let threads = after
        .threads
        .iter()
        .map(|(name, total)| {
            let start = before.threads.get(name).copied().unwrap_or(0.0);
            (name.clone(), round2((total - start).max(0.0) / seconds))
        })
        .filter(|(_, cores)| *cores > 0.0)
        .collect();
    CpuUse {
        cores: round2(used / seconds),
        us_per_request: if requests == 0 {
            0.0
        } else {
            (used * 1e6 / requests as f64).round()
        },
        threads,
    }
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// utime + stime of a `stat` file, in seconds.
fn stat_seconds(path: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    // After `(comm)`: field 3 is the state; utime and stime are fields 14, 15.
    let mut fields = text
        .get(text.rfind(')')? + 1..)?
        .split_whitespace()
        .skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / TICKS_PER_SECOND)
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
}
