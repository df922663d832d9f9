//! Segment files: the journal is a directory of `<first seq>.log` files, the
//! name zero-padded to 20 digits so names sort in log order. Only the last
//! segment is ever written; a full one is closed and a new one started.
//!
//! A segment may be longer than its records: with `preallocate` the writer
//! starts segments from a spare file already filled with zeros and synced,
//! and overwrites the zeros in place. An `fdatasync` then flushes data
//! only; appending to the end of a file also changes its size, which costs
//! every commit a metadata journal write of the file system (measured here:
//! 0.12 against 0.18–0.19 ms per 2 KiB commit, 48 against 71–76 µs of CPU).
//! Zeros after the last record are unused room, never a record: a record's
//! header always holds a sequence number of 1 or more.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The spare: a zero-filled, synced file waiting to become the next
/// segment. It is renamed to this name only once complete.
pub const SPARE_NAME: &str = "next-segment.zeroed";
/// The spare while it is being filled; removed at start.
const SPARE_TEMPORARY_NAME: &str = "next-segment.zeroing";
/// Zeros are written and synced this much at a time, so the disk never
/// holds one long flush that the journal's own syncs would wait behind.
const ZERO_CHUNK_BYTES: usize = 1 << 20;

pub const SEGMENT_SUFFIX: &str = ".log";

pub fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}{SEGMENT_SUFFIX}"))
}

/// The segments of `dir`, oldest first, as `(first_seq, path)`.
pub fn list_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default();
        if let Some(first_seq) = first_seq_of(name) {
            segments.push((first_seq, path));
        }
    }
    segments.sort();
    Ok(segments)
}

/// The first sequence number of the segment file named `name`, if it is one.
pub fn first_seq_of(name: &str) -> Option<u64> {
    name.strip_suffix(SEGMENT_SUFFIX)
        .and_then(|stem| stem.parse::<u64>().ok())
}

/// Makes a spare of `bytes` zeros in `dir`, synced, and returns its path.
/// Runs on a thread of its own, ahead of the rotation that will use it.
pub fn prepare_spare(dir: &Path, bytes: u64) -> io::Result<PathBuf> {
    let temporary = dir.join(SPARE_TEMPORARY_NAME);
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&temporary)?;
    let zeros = vec![0u8; ZERO_CHUNK_BYTES];
    let mut left = bytes;
    while left > 0 {
        let chunk = left.min(ZERO_CHUNK_BYTES as u64) as usize;
        file.write_all(&zeros[..chunk])?;
        file.sync_data()?;
        left -= chunk as u64;
    }
    file.sync_all()?;
    let spare = dir.join(SPARE_NAME);
    fs::rename(&temporary, &spare)?;
    sync_dir(dir)?;
    Ok(spare)
}

/// The spare left by an earlier run, if complete (it is renamed only once
/// filled and synced); a half-made one is removed.
pub fn existing_spare(dir: &Path) -> io::Result<Option<PathBuf>> {
    match fs::remove_file(dir.join(SPARE_TEMPORARY_NAME)) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let spare = dir.join(SPARE_NAME);
    Ok(spare.exists().then_some(spare))
}

/// The length of `data` without its trailing zeros: where the written
/// bytes of a preallocated segment end.
pub fn written_len(data: &[u8]) -> usize {
    let mut end = data.len();
    // Whole blocks first (compared wide), then the last bytes one by one.
    while end >= 64 && data[end - 64..end].iter().all(|byte| *byte == 0) {
        end -= 64;
    }
    data[..end]
        .iter()
        .rposition(|byte| *byte != 0)
        .map_or(0, |last| last + 1)
}

/// Makes a created, renamed or removed file's directory entry durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
#[path = "segment_tests.rs"]
mod tests;
