//! Reading the journal back on start.
//!
//! Every record is checked; what happens on damage depends on where it is.
//! A crash can tear only the last group commit, so damage is a torn tail
//! when it sits in the last segment, within one commit's bytes of the end
//! (`tail_window_bytes`), and either no intact record follows it or a
//! whole zeroed sector lies between it and the next intact record: a page
//! of the unfinished commit that never reached the disk while a later
//! page of it did (the pages of one commit reach the disk in any order).
//! Records after such a hole were never acknowledged: a commit is answered
//! only once its sync has returned. The tail is truncated and logged.
//! Anything else, a flipped bit before intact records say, is damage
//! inside the log: start-up stops with an error that names the segment
//! and the offset. Nothing is skipped silently.
//!
//! A segment may end in zeros: the unused room of a preallocated segment
//! (see `segment.rs`). Zeros from a record boundary to the end are that
//! room; zeros followed by anything else are damage like any other.

use crate::journal::record::{decode, Decoded};
use crate::journal::segment::{list_segments, written_len};
use crate::journal::JournalError;
use std::fs::{self, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayOutcome {
    /// The last intact record's sequence number (0 for an empty journal).
    pub last_seq: u64,
    /// Records handed to `apply` (those after `after_seq`).
    pub records_applied: u64,
    /// Bytes of torn tail cut off, if any.
    pub truncated_bytes: u64,
    /// The last segment and its length after any truncation.
    pub tail: Option<(PathBuf, u64)>,
}

/// Reads every segment of `dir` in order and hands each record with a
/// sequence number above `after_seq` to `apply`.
pub fn replay(
    dir: &Path,
    after_seq: u64,
    tail_window_bytes: usize,
    mut apply: impl FnMut(u64, &[u8]) -> Result<(), String>,
) -> Result<ReplayOutcome, JournalError> {
    let segments = list_segments(dir).map_err(|source| JournalError::io(dir, source))?;
    let mut outcome = ReplayOutcome {
        last_seq: 0,
        records_applied: 0,
        truncated_bytes: 0,
        tail: None,
    };
    let mut expected_seq: Option<u64> = None;
    // One buffer for every segment: a fresh one per segment page-faults in
    // its whole length again (a 64 MiB segment is 16k faults).
    let mut data = Vec::new();
    for (index, (first_seq, path)) in segments.iter().enumerate() {
        let is_last = index + 1 == segments.len();
        read_segment(path, &mut data)?;
        // The disk reads the next segment while this one is checked and
        // applied; read() alone would wait for it when its turn comes.
        if let Some((_, next)) = segments.get(index + 1) {
            read_ahead(next);
        }
        if expected_seq.is_some_and(|expected| expected != *first_seq) {
            return Err(corrupt(
                path,
                0,
                "segment does not continue the previous one",
            ));
        }
        expected_seq = Some(*first_seq);
        let mut offset = 0usize;
        // Where the written bytes end: the rest is zeros.
        let written = written_len(&data);
        while offset < written {
            match decode(&data[offset..]) {
                Decoded::Record {
                    seq,
                    payload,
                    bytes,
                } => {
                    if Some(seq) != expected_seq {
                        return Err(corrupt(path, offset, "sequence number out of order"));
                    }
                    if seq > after_seq {
                        apply(seq, payload).map_err(|message| JournalError::Replay {
                            segment: path.clone(),
                            offset: offset as u64,
                            message,
                        })?;
                        outcome.records_applied += 1;
                    }
                    outcome.last_seq = seq;
                    let Some(next) = seq.checked_add(1) else {
                        return Err(corrupt(path, offset, "sequence number out of range"));
                    };
                    expected_seq = Some(next);
                    offset += bytes;
                }
                Decoded::Incomplete | Decoded::Corrupt(_)
                    if is_last && is_torn_tail(&data, offset, written, tail_window_bytes) =>
                {
                    cut_tail(path, offset, written, data.len())?;
                    outcome.truncated_bytes = (written - offset) as u64;
                    tracing::warn!(
                        segment = %path.display(),
                        offset,
                        bytes = outcome.truncated_bytes,
                        "journal: torn tail truncated"
                    );
                    break;
                }
                Decoded::Incomplete => {
                    return Err(corrupt(path, offset, "record cut short inside the log"))
                }
                Decoded::Corrupt(reason) => return Err(corrupt(path, offset, reason)),
            }
        }
        if is_last {
            outcome.tail = Some((path.clone(), offset as u64));
        }
    }
    Ok(outcome)
}

/// Reads a whole segment into `data`, reusing its memory.
fn read_segment(path: &Path, data: &mut Vec<u8>) -> Result<(), JournalError> {
    let io = |source| JournalError::io(path, source);
    let mut file = fs::File::open(path).map_err(io)?;
    let length = file.metadata().map_err(io)?.len();
    data.clear();
    data.reserve(usize::try_from(length).unwrap_or(0));
    file.read_to_end(data).map_err(io)?;
    Ok(())
}

/// Asks the kernel to start reading a whole file into the page cache.
/// Only advice: nothing fails if it is not taken.
fn read_ahead(path: &Path) {
    use std::os::fd::AsRawFd;
    if let Ok(file) = fs::File::open(path) {
        // SAFETY: a valid open descriptor; the call only advises the kernel.
        unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_WILLNEED) };
    }
}

/// Damage at `offset` is a torn tail when it lies within the last commit's
/// reach of where the written bytes end (`written`; zeros follow) and
/// either no intact record starts anywhere after it, or a sector of zeros
/// lies between it and the first that does.
fn is_torn_tail(data: &[u8], offset: usize, written: usize, tail_window_bytes: usize) -> bool {
    if written - offset > tail_window_bytes {
        return false;
    }
    let next_intact = (offset + 1..written)
        .find(|start| matches!(decode(&data[*start..]), Decoded::Record { .. }));
    match next_intact {
        None => true,
        Some(next) => has_zeroed_sector(&data[..next], offset),
    }
}

/// A file's unwritten page reads as zeros; a record never holds a whole
/// sector of them (its header's sequence number is never 0, its payload is
/// JSON text).
const SECTOR_BYTES: usize = 512;

/// Whether `data[from..]` holds a sector-aligned run of [`SECTOR_BYTES`]
/// zeros (aligned to the file, as the pages a crash loses are).
fn has_zeroed_sector(data: &[u8], from: usize) -> bool {
    let first = from.div_ceil(SECTOR_BYTES) * SECTOR_BYTES;
    (first..data.len())
        .step_by(SECTOR_BYTES)
        .filter_map(|start| data.get(start..start + SECTOR_BYTES))
        .any(|sector| sector.iter().all(|byte| *byte == 0))
}

/// Removes the torn bytes `offset..written` of a segment `length` long: a
/// segment that grows as it is written is cut to `offset`; in a
/// preallocated one (zeros after `written`) the torn bytes are zeroed, so
/// it keeps its room.
fn cut_tail(path: &Path, offset: usize, written: usize, length: usize) -> Result<(), JournalError> {
    use std::os::unix::fs::FileExt;
    let io = |source| JournalError::io(path, source);
    let file = OpenOptions::new().write(true).open(path).map_err(io)?;
    if written == length {
        file.set_len(offset as u64).map_err(io)?;
        return file.sync_all().map_err(io);
    }
    file.write_all_at(&vec![0u8; written - offset], offset as u64)
        .map_err(io)?;
    file.sync_data().map_err(io)
}

fn corrupt(path: &Path, offset: usize, reason: &str) -> JournalError {
    JournalError::Corrupt {
        segment: path.to_owned(),
        offset: offset as u64,
        reason: reason.into(),
    }
}
