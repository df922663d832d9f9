//! The store writer: one thread that follows the journal from behind and
//! applies it to the store in batches, off the order path.
//!
//! It also writes the snapshots (checkpoints): once the store has applied
//! `snapshot_every_records` records past the last snapshot, it builds the
//! state after the last applied record in an engine of its own (the last
//! snapshot restored, then the journal records after it, read as the store
//! read them) and writes it; once a snapshot and the store both cover a
//! segment, the segment is deleted and disk use stays bounded during a long
//! sale. That engine lives only while the snapshot is made, so the node
//! keeps one copy of its orders, not two, and snapshots never pause the
//! order path. (An earlier design kept a shadow engine fed every record:
//! the same CPU, spread out, and a second copy of every order, resident.)
//!
//! A store error (PostgreSQL down, say) is retried with backoff; the journal
//! keeps everything meanwhile, and `/readyz` reports the growing lag.
//!
//! During a burst the store writer stands aside: while the journal keeps
//! growing, it lets the records wait (they are durable in the journal)
//! for up to `defer` (`storage.store_defer_seconds`) or `defer_records_max`
//! records, and applies them as soon as the journal is quiet for one poll.
//! On two cores its SQLite work (with the shadow engine it then kept) cost
//! the order path about a third of a core during a burst; after it, nobody. Past either
//! bound it applies continuously, as without deferral.

use crate::clock::{now_ms, UnixMs};
use crate::journal::segment::list_segments;
use crate::journal::tail::Tail;
use crate::journal::{checkpoint, DurableEnd, Journal};
use crate::metrics as names;
use crate::sale::{Engine, EngineLimits, Event};
use crate::store::{Store, StoreConfig, StoreError};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct FeederOptions {
    pub store: StoreConfig,
    /// Whose journal this is: `cluster.node_id`, or [`crate::store::LOCAL_NODE`]
    /// for a node alone. The store records the node's position under it,
    /// so the nodes of a cluster can share one PostgreSQL database.
    pub node_id: String,
    pub journal_dir: PathBuf,
    pub snapshot_dir: PathBuf,
    pub limits: EngineLimits,
    /// Records per store transaction, at most.
    pub batch_records_max: usize,
    /// A snapshot is written after this many records since the last one.
    pub snapshot_every_records: u64,
    /// How often to look for new records when caught up.
    pub poll: Duration,
    /// How long records may wait while the journal keeps growing (zero:
    /// apply at once, always).
    pub defer: Duration,
    /// How many records may wait so.
    pub defer_records_max: u64,
}

/// What the store writer has done, for metrics and `/readyz`.
#[derive(Default)]
pub struct FeederStatus {
    applied_seq: AtomicU64,
    /// Time of the last applied event, Unix ms.
    applied_at: AtomicI64,
    /// Set while the store refuses writes.
    failing: AtomicBool,
    stopping: AtomicBool,
}

impl FeederStatus {
    pub fn applied_seq(&self) -> u64 {
        self.applied_seq.load(Ordering::Acquire)
    }

    /// Records behind the journal, and roughly how old the oldest of them is.
    pub fn lag(&self, durable_seq: u64, now: UnixMs) -> (u64, f64) {
        let records = durable_seq.saturating_sub(self.applied_seq());
        let seconds = if records == 0 {
            0.0
        } else {
            (now - self.applied_at.load(Ordering::Acquire)).max(0) as f64 / 1000.0
        };
        (records, seconds)
    }

    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }
}

pub struct Feeder {
    pub status: Arc<FeederStatus>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Feeder {
    /// Opens the store (an error here stops start-up: a wrong URL should
    /// not wait for the lag alarm) and starts following the journal.
    pub fn start(options: FeederOptions, journal: Arc<Journal>) -> Result<Feeder, StoreError> {
        let mut store = Store::open_as(&options.store, &options.node_id)?;
        let applied = store.applied_position()?;
        let segments = list_segments(&options.journal_dir).unwrap_or_default();
        if let Some((first_seq, _)) = segments.first() {
            if applied + 1 < *first_seq {
                return Err(StoreError::Inconsistent {
                    seq: applied,
                    reason: format!(
                        "the store records node `{}` at journal record {applied} but its \
                         journal now starts at {first_seq}: the records between were deleted \
                         after a checkpoint; is this the node's store and its node id (or \
                         restore that store)?",
                        options.node_id
                    ),
                });
            }
        }
        let snapshot_seq = checkpoint::latest_seq(&options.snapshot_dir).map_err(|error| {
            StoreError::Inconsistent {
                seq: 0,
                reason: error.to_string(),
            }
        })?;
        let status = Arc::new(FeederStatus::default());
        status.applied_seq.store(applied, Ordering::Release);
        status.applied_at.store(now_ms(), Ordering::Release);
        let follower = Follower {
            tail: Tail::new(&options.journal_dir, applied),
            options,
            journal,
            store,
            snapshot_seq,
            status: Arc::clone(&status),
            deferral: Deferral::new(applied),
        };
        let thread = thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || follower.run())
            .map_err(|error| StoreError::Inconsistent {
                seq: 0,
                reason: error.to_string(),
            })?;
        Ok(Feeder {
            status,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Applies what the journal holds, then stops. Call after the journal
    /// has been flushed.
    pub fn shutdown(&self) {
        self.status.stopping.store(true, Ordering::Release);
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(thread) = thread {
            thread.thread().unpark();
            if thread.join().is_err() {
                tracing::error!("store writer panicked");
            }
        }
    }
}

struct Follower {
    options: FeederOptions,
    journal: Arc<Journal>,
    tail: Tail,
    store: Store,
    /// The seq of the newest snapshot written (0: none).
    snapshot_seq: u64,
    status: Arc<FeederStatus>,
    deferral: Deferral,
}

/// Whether the records after the store's position wait a while longer.
struct Deferral {
    /// When the records now waiting began to wait.
    behind_since: Option<Instant>,
    /// The durable end seen at the last look, to tell a quiet journal.
    last_seen_seq: u64,
}

impl Deferral {
    fn new(applied: u64) -> Deferral {
        Deferral {
            behind_since: None,
            last_seen_seq: applied,
        }
    }

    /// True while the records after `applied` should wait: the journal
    /// grew since the last look, and neither bound is reached.
    fn defers(
        &mut self,
        durable: u64,
        applied: u64,
        now: Instant,
        options: &FeederOptions,
    ) -> bool {
        let growing = durable != self.last_seen_seq;
        self.last_seen_seq = durable;
        if durable <= applied {
            self.behind_since = None;
            return false;
        }
        let since = *self.behind_since.get_or_insert(now);
        growing
            && !options.defer.is_zero()
            && now.duration_since(since) < options.defer
            && durable - applied < options.defer_records_max
    }
}

const BACKOFF_MAX: Duration = Duration::from_secs(5);

impl Follower {
    fn run(mut self) {
        let mut backoff = Duration::from_millis(50);
        loop {
            // `stopping` first: once it is set the journal is flushed, so the
            // durable position read after it is final.
            let stopping = self.status.stopping.load(Ordering::Acquire);
            let end = self.journal.durable_end();
            let durable = end.seq;
            let applied = self.status.applied_seq();
            let deferring = !stopping
                && self
                    .deferral
                    .defers(durable, applied, Instant::now(), &self.options);
            metrics::gauge!(names::STORE_DEFERRING).set(if deferring { 1.0 } else { 0.0 });
            if deferring {
                self.report(durable);
                thread::park_timeout(self.options.poll);
                continue;
            }
            let records = match self.tail.read(end, self.options.batch_records_max) {
                Ok(records) => records,
                Err(error) => {
                    tracing::error!(%error, "store writer cannot read the journal");
                    Vec::new()
                }
            };
            if records.is_empty() {
                self.report(durable);
                if stopping {
                    return;
                }
                thread::park_timeout(self.options.poll);
                continue;
            }
            let batch = decode(records);
            while let Err(error) = self.store.apply_batch(&batch) {
                self.status.failing.store(true, Ordering::Release);
                tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "store write failed");
                if self.status.stopping.load(Ordering::Acquire) {
                    tracing::error!(
                        "store writer stopping with records unapplied; the journal keeps them"
                    );
                    return;
                }
                thread::sleep(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            backoff = Duration::from_millis(50);
            self.status.failing.store(false, Ordering::Release);
            self.advance(&batch);
            self.report(durable);
        }
    }

    fn advance(&mut self, batch: &[(u64, Event)]) {
        if let Some((seq, event)) = batch.last() {
            self.status.applied_seq.fetch_max(*seq, Ordering::AcqRel);
            self.status.applied_at.store(event.at(), Ordering::Release);
        }
        let applied = self.status.applied_seq();
        if applied.saturating_sub(self.snapshot_seq) >= self.options.snapshot_every_records {
            self.checkpoint(applied);
        }
    }

    /// Writes the snapshot after record `seq` and deletes the segments it
    /// and the store cover.
    fn checkpoint(&mut self, seq: u64) {
        let started = Instant::now();
        let written = self.state_after(seq).and_then(|engine| {
            // Streamed from the engine: the orders are never all held as
            // snapshot data too.
            checkpoint::write_with(&self.options.snapshot_dir, seq, |writer| {
                engine.write_snapshot(seq, writer)
            })
            .map_err(|error| error.to_string())
        });
        // The engine was this thread's alone: hand its memory back.
        release_free_memory();
        match written {
            Ok(path) => {
                self.snapshot_seq = seq;
                match checkpoint::delete_covered_segments(&self.options.journal_dir, seq) {
                    Ok(removed) => tracing::info!(
                        snapshot = %path.display(), seq, segments_removed = removed,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "checkpoint written"
                    ),
                    Err(error) => tracing::error!(%error, "cannot delete covered segments"),
                }
            }
            Err(error) => {
                // Snapshots stop until a restart; the journal keeps all.
                tracing::error!(%error, seq, "cannot write a snapshot; snapshots stop");
                self.options.snapshot_every_records = u64::MAX;
            }
        }
    }

    /// The engine's state after record `seq`: the newest snapshot, then the
    /// journal's records after it up to `seq` (all durable: the store has
    /// applied them), in an engine that never expires anything.
    fn state_after(&self, seq: u64) -> Result<Engine, String> {
        let limits = self.options.limits.clone();
        let (engine, from) = match checkpoint::load_latest(&self.options.snapshot_dir) {
            Ok(Some(snapshot)) => (
                Engine::restore(limits, now_ms(), &snapshot).map_err(|e| e.to_string())?,
                snapshot.seq,
            ),
            Ok(None) => (Engine::new(limits, now_ms()), 0),
            Err(error) => return Err(error.to_string()),
        };
        let engine = engine.without_hold_timers();
        let mut tail = Tail::new(&self.options.journal_dir, from);
        let end = DurableEnd {
            seq,
            ..self.journal.durable_end()
        };
        while tail.next_seq() <= seq {
            let records = tail
                .read(end, self.options.batch_records_max.max(1_000))
                .map_err(|error| error.to_string())?;
            if records.is_empty() {
                return Err(format!(
                    "the journal ends before record {seq} (at {})",
                    tail.next_seq()
                ));
            }
            let read = records.len();
            let events = decode(records);
            if events.len() != read {
                return Err("a journal record does not decode".into());
            }
            for (record_seq, event) in events {
                engine
                    .apply(&event)
                    .map_err(|error| format!("record {record_seq}: {error}"))?;
            }
        }
        Ok(engine)
    }

    fn report(&self, durable: u64) {
        let (records, seconds) = self.status.lag(durable, now_ms());
        metrics::gauge!(names::STORE_LAG_RECORDS).set(records as f64);
        metrics::gauge!(names::STORE_LAG_SECONDS).set(seconds);
        metrics::gauge!(names::STORE_APPLIED_SEQ).set(self.status.applied_seq() as f64);
    }
}

/// Journal payloads to events. The live engine replayed these same bytes at
/// start-up, so a record that does not decode here was written after it by
/// this very process: that is a bug, logged and skipped rather than wedging
/// the store forever.
fn decode(records: Vec<(u64, Vec<u8>)>) -> Vec<(u64, Event)> {
    records
        .into_iter()
        .filter_map(|(seq, payload)| match serde_json::from_slice(&payload) {
            Ok(event) => Some((seq, event)),
            Err(error) => {
                tracing::error!(%error, seq, "journal record does not decode; not stored");
                None
            }
        })
        .collect()
}

/// Returns the free memory of glibc's heaps to the system: after a snapshot
/// the engine it was built in is gone, and without this its pages would
/// stay resident, unused, in the store writer's malloc arena. The
/// `flashgate` binary allocates through jemalloc instead (src/main.rs),
/// whose background thread returns freed pages within a second; there this
/// trims what still uses glibc's heap (SQLite's caches).
fn release_free_memory() {
    // SAFETY: malloc_trim only releases free memory; it touches no live
    // allocation and may be called from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(defer_secs: u64, defer_records_max: u64) -> FeederOptions {
        FeederOptions {
            store: StoreConfig::Sqlite {
                path: PathBuf::from("unused"),
            },
            node_id: String::new(),
            journal_dir: PathBuf::new(),
            snapshot_dir: PathBuf::new(),
            limits: crate::sale::test_support::limits(),
            batch_records_max: 100,
            snapshot_every_records: 1_000,
            poll: Duration::from_millis(20),
            defer: Duration::from_secs(defer_secs),
            defer_records_max,
        }
    }

    #[test]
    fn records_wait_while_the_journal_grows_and_neither_bound_is_reached() {
        let options = options(10, 1_000);
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut deferral = Deferral::new(0);
        assert!(deferral.defers(50, 0, at(0), &options), "growing: wait");
        assert!(deferral.defers(400, 0, at(20), &options), "still growing");
        assert!(
            !deferral.defers(400, 0, at(40), &options),
            "quiet for one look: apply"
        );
        assert!(
            deferral.defers(420, 100, at(60), &options),
            "growing again, still within the bounds"
        );
        assert!(
            !deferral.defers(1_200, 100, at(80), &options),
            "1,100 records wait: the record bound is reached"
        );
        assert!(
            !deferral.defers(1_300, 1_250, at(10_000), &options),
            "waiting since 0 ms: the time bound is reached"
        );
        assert!(
            !deferral.defers(1_300, 1_300, at(10_020), &options),
            "caught up"
        );
        assert!(
            deferral.defers(1_310, 1_300, at(10_040), &options),
            "a new wait starts its own clock"
        );
    }

    #[test]
    fn a_zero_defer_applies_at_once() {
        let mut deferral = Deferral::new(0);
        assert!(!deferral.defers(50, 0, Instant::now(), &options(0, 1_000)));
    }
}
