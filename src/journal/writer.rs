//! The journal's single writer thread and the handle requests submit to.

use crate::journal::record::encode;
use crate::journal::segment::{
    existing_spare, first_seq_of, prepare_spare, segment_path, sync_dir,
};
use crate::journal::{
    Durability, DurableEnd, JournalError, JournalOptions, ReplayOutcome, ThreadPolicy,
};
use crate::metrics as names;
use crossbeam_queue::SegQueue;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

use crate::journal::relay::{self, answer_all, Done};

/// How a segment is made durable: `File::sync_data`, or in tests a
/// wrapper that delays or fails it.
pub(crate) type SyncFn = dyn Fn(&File) -> std::io::Result<()> + Send + Sync;

struct Pending {
    /// `None` for a barrier: nothing to write, only a wait.
    payload: Option<Vec<u8>>,
    /// `None` with `durability = "none"`: nobody waits.
    done: Option<Done>,
}

struct Shared {
    inbox: SegQueue<Pending>,
    /// Records waiting for the writer, counted with `durability = "none"`
    /// only (see `enqueue`).
    queued: AtomicUsize,
    durable_seq: AtomicU64,
    /// `durable_seq` with where its bytes end, for the store writer's tail;
    /// set after each commit (one uncontended lock per commit).
    durable_end: Mutex<DurableEnd>,
    healthy: AtomicBool,
    stopping: AtomicBool,
    /// Set once the writer has exited: nothing queued after it is written.
    stopped: AtomicBool,
    /// Set while the writer is about to park, or parked, with nothing to
    /// write. With `durability = "none"` a submit that nobody waits for
    /// unparks the writer only then; in a burst the writer gathers records
    /// for [`UNSYNCED_GATHER`] between writes instead of being woken by each.
    writer_idle: AtomicBool,
    /// The writer thread's scheduling policy as the kernel reports it once
    /// the writer has set it (`-1` before).
    writer_policy: AtomicI32,
    options: JournalOptions,
    sync: Box<SyncFn>,
}

/// A handle to the journal; cheap to share.
pub struct Journal {
    shared: Arc<Shared>,
    /// For unparking the writer: a clone of its handle, no lock on submit.
    writer_thread: thread::Thread,
    /// Taken once, by `shutdown`.
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// The wait for one record's commit.
#[derive(Debug)]
pub enum Commit {
    Ready(Result<u64, JournalError>),
    Waiting(oneshot::Receiver<Result<u64, JournalError>>),
}

impl Commit {
    /// Resolves with the record's sequence number once it is durable
    /// (at once with `durability = "none"`, with 0).
    pub async fn durable(self) -> Result<u64, JournalError> {
        match self {
            Commit::Ready(result) => result,
            Commit::Waiting(receiver) => receiver.await.unwrap_or_else(|_| {
                Err(JournalError::Unavailable(
                    "the journal writer stopped".into(),
                ))
            }),
        }
    }
}

impl Journal {
    /// Starts the writer after a replay: appends go to the replayed tail
    /// segment, or to a new one.
    pub fn start(
        options: JournalOptions,
        replayed: &ReplayOutcome,
    ) -> Result<Journal, JournalError> {
        Journal::start_with_sync(options, replayed, Box::new(File::sync_data))
    }

    /// [`Journal::start`] with another way to sync a segment (tests).
    pub(crate) fn start_with_sync(
        options: JournalOptions,
        replayed: &ReplayOutcome,
        sync: Box<SyncFn>,
    ) -> Result<Journal, JournalError> {
        let next_seq = replayed.last_seq + 1;
        let segment = match &replayed.tail {
            Some((path, length)) => SegmentFile::reopen(path, *length)?,
            None => SegmentFile::create(&options.dir, next_seq)?,
        };
        let durable_end = DurableEnd {
            seq: replayed.last_seq,
            segment_first_seq: segment.first_seq,
            segment_bytes: segment.bytes,
        };
        let shared = Arc::new(Shared {
            inbox: SegQueue::new(),
            queued: AtomicUsize::new(0),
            durable_seq: AtomicU64::new(replayed.last_seq),
            durable_end: Mutex::new(durable_end),
            healthy: AtomicBool::new(true),
            stopping: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            writer_idle: AtomicBool::new(false),
            writer_policy: AtomicI32::new(-1),
            options,
            sync,
        });
        let writer_shared = Arc::clone(&shared);
        let writer = thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || write_loop(&writer_shared, segment, next_seq))
            .map_err(|e| JournalError::Unavailable(format!("cannot start writer: {e}")))?;
        Ok(Journal {
            shared,
            writer_thread: writer.thread().clone(),
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Queues one record. Never blocks; the returned [`Commit`] resolves
    /// once the record is durable.
    ///
    /// The queue needs no bound of its own: every record comes from a request
    /// (bounded by `server.requests_in_flight_max`) or from the hold-expiry
    /// task (bounded by the holds due), and each waits for its commit.
    pub fn submit(&self, payload: Vec<u8>) -> Commit {
        self.enqueue(Some(payload))
    }

    /// Resolves once every record queued before it is durable; writes nothing.
    pub fn barrier(&self) -> Commit {
        self.enqueue(None)
    }

    fn enqueue(&self, payload: Option<Vec<u8>>) -> Commit {
        let shared = &self.shared;
        if !shared.healthy.load(Ordering::Acquire) {
            let error = JournalError::Unavailable("an earlier write failed".into());
            return Commit::Ready(Err(error));
        }
        if shared.stopping.load(Ordering::Acquire) {
            let error = JournalError::Unavailable("the journal is shutting down".into());
            return Commit::Ready(Err(error));
        }
        // With "none" nobody waits, unless the writer falls this far behind:
        // then submitters wait for it, which bounds the queue. Only "none"
        // counts what is queued: with "fsync" every submitter waits anyway,
        // and the count is a word every HTTP thread and the writer write.
        let wait = shared.options.durability == Durability::Fsync
            || shared.queued.fetch_add(1, Ordering::AcqRel) >= UNSYNCED_QUEUE_RECORDS_MAX;
        let (done, commit) = if wait {
            let (sender, receiver) = oneshot::channel();
            let relay = relay::current();
            (Some(Done { sender, relay }), Commit::Waiting(receiver))
        } else {
            (None, Commit::Ready(Ok(0)))
        };
        shared.inbox.push(Pending { payload, done });
        // Pairs with the fence in `park_idle`: either the writer sees this
        // record before it parks, or this submit sees it idle and wakes it.
        fence(Ordering::SeqCst);
        if wait || shared.writer_idle.load(Ordering::Relaxed) {
            self.writer_thread.unpark();
        }
        if shared.stopped.load(Ordering::Acquire) {
            // The writer exited between our check and our push.
            fail_queued(
                shared,
                &JournalError::Unavailable("the journal has shut down".into()),
            );
        }
        commit
    }

    /// The last sequence number known to be on disk.
    pub fn durable_seq(&self) -> u64 {
        self.shared.durable_seq.load(Ordering::Acquire)
    }

    /// The last durable record and where the bytes written so far end.
    pub fn durable_end(&self) -> DurableEnd {
        *self
            .shared
            .durable_end
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The writer thread's scheduling policy as the kernel reports it, once
    /// the writer has started (any commit or barrier resolved means it has);
    /// `None` before, or for a policy other than these two.
    pub fn writer_policy(&self) -> Option<ThreadPolicy> {
        ThreadPolicy::from_raw(self.shared.writer_policy.load(Ordering::Acquire))
    }

    /// False once a write or sync has failed: the node must stop taking changes.
    pub fn is_healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Acquire)
    }

    /// Writes and syncs everything queued, then stops the writer.
    pub fn shutdown(&self) {
        self.shared.stopping.store(true, Ordering::Release);
        let handle = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(handle) = handle {
            self.writer_thread.unpark();
            if handle.join().is_err() {
                tracing::error!("journal writer panicked");
            }
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct SegmentFile {
    file: File,
    first_seq: u64,
    /// Bytes of records written; the next commit writes at this offset.
    bytes: u64,
    /// The file's length when opened: below it a write overwrites zeros of
    /// a preallocated segment, at or past it the write grows the file.
    capacity: u64,
}

impl SegmentFile {
    /// A new, empty segment: every commit grows it.
    fn create(dir: &Path, first_seq: u64) -> Result<SegmentFile, JournalError> {
        let path = segment_path(dir, first_seq);
        let file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .map_err(|e| JournalError::io(&path, e))?;
        sync_dir(dir).map_err(|e| JournalError::io(dir, e))?;
        Ok(SegmentFile {
            file,
            first_seq,
            bytes: 0,
            capacity: 0,
        })
    }

    /// A new segment made from a zero-filled spare, renamed into place.
    fn from_spare(dir: &Path, first_seq: u64, spare: &Path) -> Result<SegmentFile, JournalError> {
        let path = segment_path(dir, first_seq);
        if path.exists() {
            // Never rename over a segment: that would lose its records.
            return Err(JournalError::Unavailable(format!(
                "segment {} already exists",
                path.display()
            )));
        }
        fs::rename(spare, &path).map_err(|e| JournalError::io(&path, e))?;
        sync_dir(dir).map_err(|e| JournalError::io(dir, e))?;
        SegmentFile::reopen(&path, 0)
    }

    /// The replayed last segment, written on after its `length` bytes.
    fn reopen(path: &Path, length: u64) -> Result<SegmentFile, JournalError> {
        let first_seq = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(first_seq_of)
            .ok_or_else(|| {
                JournalError::Unavailable(format!("{} is not a segment", path.display()))
            })?;
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| JournalError::io(path, e))?;
        let capacity = file
            .metadata()
            .map_err(|e| JournalError::io(path, e))?
            .len();
        Ok(SegmentFile {
            file,
            first_seq,
            bytes: length,
            capacity,
        })
    }

    /// True once commits grow the file rather than overwrite zeros.
    fn is_growing(&self) -> bool {
        self.bytes >= self.capacity
    }
}

/// The next segment's spare, made on a thread of its own once the segment
/// being written has taken [`SPARE_WANTED_AFTER_BYTES`]: a node that
/// writes a few records (a test, an idle node) never pays for 64 MiB of
/// zeros. A segment started without a spare (the first, or one whose spare
/// was not ready) grows with each commit until a spare is ready; then the
/// writer moves on to it at once rather than when the segment is full.
struct Spares {
    dir: PathBuf,
    bytes: u64,
    making: Option<JoinHandle<std::io::Result<PathBuf>>>,
    ready: Option<PathBuf>,
    /// After a failure, no new attempt until the next rotation.
    failed: bool,
}

/// Bytes a segment takes before the spare for the next one is made.
const SPARE_WANTED_AFTER_BYTES: u64 = 1 << 20;

impl Spares {
    /// `None` unless preallocation is on and commits `fdatasync`: a spare
    /// only spares a sync the cost of a new file size, and making one
    /// writes a whole segment of zeros.
    fn new(options: &JournalOptions) -> Option<Spares> {
        if !options.preallocate || options.durability == Durability::None {
            return None;
        }
        let ready = existing_spare(&options.dir).unwrap_or_else(|error| {
            tracing::warn!(%error, "journal: cannot look for a spare segment");
            None
        });
        Some(Spares {
            dir: options.dir.clone(),
            bytes: options.segment_bytes_max,
            making: None,
            ready,
            failed: false,
        })
    }

    /// Collects a finished spare.
    fn poll(&mut self) {
        if !self.making.as_ref().is_some_and(JoinHandle::is_finished) {
            return;
        }
        self.collect();
    }

    /// Waits for the spare being made, if any, and keeps it.
    fn collect(&mut self) {
        let Some(making) = self.making.take() else {
            return;
        };
        match making.join() {
            Ok(Ok(spare)) => self.ready = Some(spare),
            Ok(Err(error)) => {
                tracing::warn!(%error, "journal: cannot make a spare segment; segments grow as they are written");
                self.failed = true;
            }
            Err(_) => {
                tracing::error!("journal: the spare segment maker panicked");
                self.failed = true;
            }
        }
    }

    /// Starts making a spare unless one is ready or being made.
    fn want(&mut self, segment: &SegmentFile) {
        let wanted_after = SPARE_WANTED_AFTER_BYTES.min(self.bytes / 2);
        if segment.bytes < wanted_after
            || self.ready.is_some()
            || self.making.is_some()
            || self.failed
        {
            return;
        }
        let (dir, bytes) = (self.dir.clone(), self.bytes);
        let spawned = thread::Builder::new()
            .name("journal-spare".into())
            .spawn(move || prepare_spare(&dir, bytes));
        match spawned {
            Ok(handle) => self.making = Some(handle),
            Err(error) => {
                tracing::warn!(%error, "journal: cannot start the spare segment maker");
                self.failed = true;
            }
        }
    }

    /// The writer should move to a new segment now: the current one is
    /// full, or it grows with each commit and a spare is ready.
    fn should_rotate(&mut self, segment: &SegmentFile, segment_bytes_max: u64) -> bool {
        if segment.bytes >= segment_bytes_max {
            return true;
        }
        self.poll();
        segment.bytes > 0 && segment.is_growing() && self.ready.is_some()
    }

    fn take(&mut self) -> Option<PathBuf> {
        self.poll();
        self.failed = false;
        self.ready.take()
    }
}

/// With `durability = "none"`, how many records may wait for the writer
/// before submitters start waiting for it anyway.
const UNSYNCED_QUEUE_RECORDS_MAX: usize = 65_536;

/// How long the idle writer sleeps before looking at the queue again; a
/// submit wakes it sooner.
#[cfg(not(test))]
const IDLE_PARK: Duration = Duration::from_millis(50);
/// Unit tests make the idle nap long, so a submit that fails to wake the
/// writer shows as a test timing out rather than as 50 ms of latency.
#[cfg(test)]
const IDLE_PARK: Duration = Duration::from_secs(30);

/// With `durability = "none"`, how long the writer lets records gather after
/// a write before the next one. Nobody waits for these records, so one
/// write (and one wake-up of the writer) per millisecond replaces one per
/// request or two: the futex wake, the context switch and the `write` were
/// a tenth of the gateway's CPU per order in a burst.
const UNSYNCED_GATHER: Duration = Duration::from_millis(1);

fn write_loop(shared: &Shared, segment: SegmentFile, next_seq: u64) {
    let policy = shared.options.writer_policy;
    if let Err(error) = policy.apply_here() {
        tracing::warn!(%error, ?policy, "journal: cannot set the writer's scheduling policy; it stays as it was");
    }
    // SAFETY: no arguments; 0 is the calling thread.
    let policy = unsafe { libc::sched_getscheduler(0) };
    shared.writer_policy.store(policy, Ordering::Release);
    let mut segment = segment;
    let mut spares = Spares::new(&shared.options);
    run_writer(shared, &mut segment, &mut spares, next_seq);
    if let Some(spares) = &mut spares {
        // A spare being made is finished, and kept for the next start.
        spares.collect();
    }
    // Whatever the mode, what was written is synced before the writer ends.
    if shared.healthy.load(Ordering::Acquire) {
        if let Err(error) = (shared.sync)(&segment.file) {
            tracing::error!(%error, "journal: final sync failed");
        }
    }
    shared.stopped.store(true, Ordering::Release);
    fail_queued(
        shared,
        &JournalError::Unavailable("the journal has shut down".into()),
    );
}

fn run_writer(
    shared: &Shared,
    segment: &mut SegmentFile,
    spares: &mut Option<Spares>,
    mut next_seq: u64,
) {
    let mut buffer = Vec::with_capacity(shared.options.commit_batch_bytes_max);
    let mut waiting: Vec<(u64, Done)> = Vec::new();
    loop {
        if !shared.healthy.load(Ordering::Acquire) {
            // After a failed write the tail is unknown: never write again.
            fail_queued(
                shared,
                &JournalError::Unavailable("an earlier write failed".into()),
            );
            if shared.stopping.load(Ordering::Acquire) {
                return;
            }
            park_idle(shared);
            continue;
        }
        buffer.clear();
        waiting.clear();
        let first_seq = next_seq;
        take_queued(shared, &mut buffer, &mut waiting, &mut next_seq);
        let room = buffer.len() < shared.options.commit_batch_bytes_max;
        if room && should_gather(shared, next_seq - first_seq) {
            // Busy: more requests are on their way. Let them share this
            // sync instead of each waiting for a sync of its own (a sleep,
            // not a park: a submit unparks the writer).
            thread::sleep(shared.options.commit_gather);
            take_queued(shared, &mut buffer, &mut waiting, &mut next_seq);
        }
        if buffer.is_empty() {
            // Only barriers, or nothing: everything before them is durable.
            answer_all(waiting.drain(..).map(|(seq, done)| (done, Ok(seq))));
            if shared.stopping.load(Ordering::Acquire) && shared.inbox.is_empty() {
                return;
            }
            park_idle(shared);
            continue;
        }
        let records = next_seq - first_seq;
        let started = Instant::now();
        let written = commit(shared, segment, &buffer);
        metrics::histogram!(names::JOURNAL_COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
        metrics::histogram!(names::JOURNAL_RECORDS_PER_COMMIT).record(records as f64);
        match written {
            Ok(()) => {
                metrics::counter!(names::JOURNAL_BYTES_TOTAL).increment(buffer.len() as u64);
                *shared
                    .durable_end
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = DurableEnd {
                    seq: next_seq - 1,
                    segment_first_seq: segment.first_seq,
                    segment_bytes: segment.bytes,
                };
                shared.durable_seq.store(next_seq - 1, Ordering::Release);
                answer_all(waiting.drain(..).map(|(seq, done)| (done, Ok(seq))));
                let unsynced = shared.options.durability == Durability::None;
                if unsynced && shared.inbox.is_empty() && !shared.stopping.load(Ordering::Acquire) {
                    // Not idle: a submit does not wake the writer, which
                    // comes back for what gathered meanwhile.
                    thread::park_timeout(UNSYNCED_GATHER);
                }
                let rotate = match spares {
                    Some(spares) => {
                        spares.want(segment);
                        spares.should_rotate(segment, shared.options.segment_bytes_max)
                    }
                    None => segment.bytes >= shared.options.segment_bytes_max,
                };
                if rotate {
                    match rotate_segment(shared, segment, spares.as_mut(), next_seq) {
                        Ok(fresh) => *segment = fresh,
                        Err(error) => fail(shared, &mut waiting, error),
                    }
                }
            }
            Err(error) => fail(shared, &mut waiting, error),
        }
    }
}

/// Moves queued records into `buffer` (up to the batch bound), and their
/// waiters into `waiting`, numbering them from `next_seq`.
fn take_queued(
    shared: &Shared,
    buffer: &mut Vec<u8>,
    waiting: &mut Vec<(u64, Done)>,
    next_seq: &mut u64,
) {
    let mut taken = 0;
    while buffer.len() < shared.options.commit_batch_bytes_max {
        let Some(pending) = shared.inbox.pop() else {
            break;
        };
        taken += 1;
        let seq = match &pending.payload {
            Some(payload) => {
                encode(*next_seq, payload, buffer);
                *next_seq += 1;
                *next_seq - 1
            }
            None => *next_seq - 1, // a barrier: durable with what precedes it
        };
        if let Some(done) = pending.done {
            waiting.push((seq, done));
        }
    }
    uncount(shared, taken);
}

/// Whether a batch of `records` waits for more before its commit: only
/// with fsync (the wait buys fewer syncs), only for a batch that shows
/// load (`commit_gather_min_records`: a lone order is written at once),
/// never while shutting down. Like PostgreSQL's `commit_delay`, which
/// applies only with `commit_siblings` transactions active.
fn should_gather(shared: &Shared, records: u64) -> bool {
    let options = &shared.options;
    options.durability == Durability::Fsync
        && !options.commit_gather.is_zero()
        && options.commit_gather_min_records > 0
        && records >= options.commit_gather_min_records as u64
        && !shared.stopping.load(Ordering::Acquire)
}

/// Closes `segment` (synced, whatever the mode) and opens the next, from a
/// spare when one is ready.
fn rotate_segment(
    shared: &Shared,
    segment: &SegmentFile,
    spares: Option<&mut Spares>,
    next_seq: u64,
) -> Result<SegmentFile, JournalError> {
    let dir = &shared.options.dir;
    (shared.sync)(&segment.file).map_err(|e| JournalError::io(dir, e))?;
    if let Some(spare) = spares.and_then(Spares::take) {
        match SegmentFile::from_spare(dir, next_seq, &spare) {
            Ok(fresh) => return Ok(fresh),
            Err(error) => {
                tracing::warn!(%error, "journal: cannot use the spare segment; starting an empty one");
            }
        }
    }
    SegmentFile::create(dir, next_seq)
}

/// Parks the writer with nothing to write, announcing it so that any submit
/// wakes it, until a submit or [`IDLE_PARK`].
fn park_idle(shared: &Shared) {
    shared.writer_idle.store(true, Ordering::Relaxed);
    // Pairs with the fence in `enqueue` (a store-load, so SeqCst on both sides).
    fence(Ordering::SeqCst);
    if shared.inbox.is_empty() {
        thread::park_timeout(IDLE_PARK);
    }
    shared.writer_idle.store(false, Ordering::Relaxed);
}

fn commit(shared: &Shared, segment: &mut SegmentFile, buffer: &[u8]) -> Result<(), JournalError> {
    let dir = &shared.options.dir;
    segment
        .file
        .write_all_at(buffer, segment.bytes)
        .map_err(|e| JournalError::io(dir, e))?;
    if shared.options.durability == Durability::Fsync {
        (shared.sync)(&segment.file).map_err(|e| JournalError::io(dir, e))?;
    }
    segment.bytes += buffer.len() as u64;
    Ok(())
}

/// A failed write leaves the log's tail unknown: refuse every later record
/// so nothing is acknowledged that replay might not see.
fn fail(shared: &Shared, waiting: &mut Vec<(u64, Done)>, error: JournalError) {
    tracing::error!(%error, "journal write failed; the node refuses further changes");
    shared.healthy.store(false, Ordering::Release);
    answer_all(
        waiting
            .drain(..)
            .map(|(_, done)| (done, Err(error.clone()))),
    );
    fail_queued(shared, &error);
}

/// Answers every queued record with `error`.
fn fail_queued(shared: &Shared, error: &JournalError) {
    let mut failed = Vec::new();
    while let Some(pending) = shared.inbox.pop() {
        uncount(shared, 1);
        if let Some(done) = pending.done {
            failed.push((done, Err(error.clone())));
        }
    }
    answer_all(failed);
}

/// Takes `records` taken off the inbox off the queued count, which only
/// "none" keeps.
fn uncount(shared: &Shared, records: usize) {
    if records > 0 && shared.options.durability == Durability::None {
        shared.queued.fetch_sub(records, Ordering::AcqRel);
    }
}
