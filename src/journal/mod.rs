//! The journal: an append-only log of every state change, written before the
//! client gets its 2xx.
//!
//! Group commit: requests push their encoded event onto a lock-free queue
//! and wait on their own one-shot channel. One writer thread drains whatever
//! has queued up, writes it with one `write` and one `fdatasync`, and wakes
//! exactly the requests whose records that commit held. While one commit is
//! syncing, the next batch gathers: the busier the sale, the more records
//! share each sync. No lock is shared by the requests: a push onto
//! `crossbeam`'s `SegQueue` and an unpark of the writer. With
//! `durability = "none"` nobody waits, so a submit wakes the writer only
//! when it is idle; in a burst it writes what gathered every millisecond.
//!
//! The writer runs as `SCHED_BATCH` ([`crate::sched`]): when the disk
//! answers it waits for the running thread to yield instead of preempting
//! it, so on a busy machine each commit takes more records (run H in
//! docs/PERFORMANCE.md: flash fsync +20% at 64 connections). Raising its
//! priority did the opposite (more, smaller commits).
//!
//! Shapes measured and not taken (docs/PROFILE.md has the figures; their
//! code was an experiment that did not land):
//! - A separate syncer thread, so batch N+1 is written while batch N's
//!   `fdatasync` runs (a record durable once a sync that began after its
//!   write returns). On the 2-core machine it lost: one more thread to
//!   schedule and two hand-offs per commit cost more than the overlap
//!   gained (1 writer p50 0.23 -> 0.41 ms, 64 writers 98k -> 63k
//!   records/s and p99 1.1 -> 3.8 ms; HTTP fsync/none within noise).
//!   Worth measuring again on a machine with spare cores.
//! - Two writer threads taking turns (each writes its batch under the
//!   log's lock and syncs it outside it; batches answered in log order;
//!   one open file description per writer, so no sync takes another's
//!   writeback error). The disk serves two flushes at once, but each
//!   takes 1.3x as long, and a closed loop waits for the time, not the
//!   rate: `flash` fsync 64 connections 0.51-0.54 against 0.54-0.65 with
//!   one writer, 512 connections 0.62-0.64 against 0.65-0.72 (run M in
//!   docs/PERFORMANCE.md).
//! - Waking a batch with one notification (a watch on `durable_seq`)
//!   instead of one oneshot per record: tokio still wakes each waiting
//!   task one by one from this foreign thread, and every waiter would
//!   also wake for syncs that do not cover it; not built.
//! - A mailbox per HTTP thread (the writer posts a commit's results for
//!   that thread's requests in one go and wakes the thread once; the
//!   oneshots are sent there): `flash` fsync at 512 connections 0.532 /
//!   0.568 → 0.550 / 0.580 of the ceiling, at 64 connections 0.428 / 0.432
//!   → 0.428 / 0.434, the writer 0.20 → 0.17–0.19 cores. Within noise for
//!   170 lines on the commit path; not kept (docs/PERFORMANCE.md, run G).
//!
//! Pre-allocated segments (`storage.journal_preallocate`, with `fsync`):
//! a spare segment of zeros is written and synced off the commit path, and
//! commits overwrite it, because in a probe on this disk `fdatasync` after
//! overwriting pre-zeroed blocks took 0.18-0.21 ms (p50) against
//! 0.28-0.41 ms for appends (`fallocate` or `set_len` alone gained
//! nothing). Replay and `tail.rs` read a zero-filled tail as the end.
//!
//! Order matters (docs/ARCHITECTURE.md, "the trap"): the engine submits a
//! release or restock *before* the stock becomes reservable again, so a
//! reservation that uses that stock is queued after it and can never be
//! durable without it.

pub mod checkpoint;
pub mod record;
pub mod relay;
pub mod replay;
pub mod segment;
pub mod tail;
mod writer;

pub use crate::sched::ThreadPolicy;
pub use replay::{replay, ReplayOutcome};
pub use writer::{Commit, Journal};

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// A 2xx waits for the `fdatasync` of the commit holding its record.
    Fsync,
    /// Benchmark only: records are written without syncing and requests do
    /// not wait. A crash can lose acknowledged orders.
    None,
}

#[derive(Debug, Clone)]
pub struct JournalOptions {
    pub dir: PathBuf,
    pub durability: Durability,
    /// A segment is closed once it grows past this.
    pub segment_bytes_max: u64,
    /// The most bytes one commit writes; also the torn-tail window.
    pub commit_batch_bytes_max: usize,
    /// Write segments into zero-filled files made ahead of time, so a
    /// commit overwrites in place instead of growing the file (see
    /// [`segment`]). Only with [`Durability::Fsync`]: without a sync there
    /// is nothing to spare.
    pub preallocate: bool,
    /// With [`Durability::Fsync`]: a batch that already holds this many
    /// records waits [`JournalOptions::commit_gather`] for more before it
    /// is written (0 never waits).
    pub commit_gather_min_records: usize,
    /// How long such a batch waits.
    pub commit_gather: std::time::Duration,
    /// The writer thread's Linux scheduling policy (see [`crate::sched`]).
    pub writer_policy: ThreadPolicy,
}

/// How far the journal is durable: its last durable record, and where the
/// bytes of the segment being written end (a preallocated segment is
/// longer than what it holds, so its length does not say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurableEnd {
    pub seq: u64,
    /// The first sequence number of the segment being written.
    pub segment_first_seq: u64,
    /// The bytes of records in it.
    pub segment_bytes: u64,
}

impl DurableEnd {
    /// Records up to `seq`, with no bound on where they end (tests, and
    /// journals whose segments are never longer than their records).
    pub fn unbounded(seq: u64) -> DurableEnd {
        DurableEnd {
            seq,
            segment_first_seq: u64::MAX,
            segment_bytes: u64::MAX,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum JournalError {
    #[error("journal I/O on {path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("journal damaged in {segment} at offset {offset}: {reason}; refusing to start (restore the segment or move it aside knowingly)")]
    Corrupt {
        segment: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("journal record in {segment} at offset {offset} cannot be replayed: {message}")]
    Replay {
        segment: PathBuf,
        offset: u64,
        message: String,
    },
    #[error("the journal cannot be written: {0}")]
    Unavailable(String),
}

impl JournalError {
    pub fn io(path: &Path, source: std::io::Error) -> JournalError {
        JournalError::Io {
            path: path.to_owned(),
            message: source.to_string(),
        }
    }
}

#[cfg(test)]
mod tests;

const EVENT_BYTES_INITIAL: usize = 512;

impl Journal {
    fn submit_encoded(&self, event: &crate::sale::Event) -> writer::Commit {
        // An order_reserved event is about 290 bytes: one allocation, no
        // regrowth (`serde_json::to_vec` starts at 128 and doubles).
        let mut payload = Vec::with_capacity(EVENT_BYTES_INITIAL);
        match serde_json::to_writer(&mut payload, event) {
            Ok(()) => Journal::submit(self, payload),
            Err(error) => writer::Commit::Ready(Err(JournalError::Unavailable(format!(
                "event cannot be encoded: {error}"
            )))),
        }
    }
}

/// The journal as the engine's sink: events are stored as JSON.
impl crate::sale::EventSink for Journal {
    fn submit(&self, event: &crate::sale::Event) -> writer::Commit {
        self.submit_encoded(event)
    }

    fn submit_reserved(&self, reservation: &crate::sale::Reservation<'_>) -> writer::Commit {
        let mut payload = Vec::with_capacity(EVENT_BYTES_INITIAL);
        reservation.write_json(&mut payload);
        Journal::submit(self, payload)
    }

    fn barrier(&self) -> writer::Commit {
        Journal::barrier(self)
    }
}
