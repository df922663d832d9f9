//! Checkpoints: snapshot files that bound replay. `snapshot-<seq>.json` in
//! the snapshot directory holds the engine after journal record `seq`; a
//! restart restores the newest and replays only the records after it.
//! Written to a temporary file, synced, then renamed, so a crash leaves
//! either the old snapshot or the new one, never half of one.

use crate::journal::segment::{list_segments, sync_dir};
use crate::journal::JournalError;
use crate::sale::snapshot::Snapshot;
use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

const PREFIX: &str = "snapshot-";
const SUFFIX: &str = ".json";

fn snapshot_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{PREFIX}{seq:020}{SUFFIX}"))
}

/// Snapshot files of `dir`, oldest first, as `(seq, path)`.
fn list_snapshots(dir: &Path) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| JournalError::io(dir, e))? {
        let path = entry.map_err(|e| JournalError::io(dir, e))?.path();
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default();
        let seq = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.strip_suffix(SUFFIX))
            .and_then(|digits| digits.parse::<u64>().ok());
        if let Some(seq) = seq {
            found.push((seq, path));
        }
    }
    found.sort();
    Ok(found)
}

/// Writes `snapshot` durably and removes older snapshots.
pub fn write(dir: &Path, snapshot: &Snapshot) -> Result<PathBuf, JournalError> {
    write_with(dir, snapshot.seq, |writer| {
        serde_json::to_writer(writer, snapshot)
    })
}

/// Writes the snapshot after record `seq` that `encode` writes (the JSON of
/// a [`Snapshot`]) durably, and removes older snapshots. For an encoder
/// that streams from an engine instead of holding the snapshot as data
/// ([`crate::sale::Engine::write_snapshot`]).
pub fn write_with(
    dir: &Path,
    seq: u64,
    encode: impl FnOnce(&mut BufWriter<File>) -> serde_json::Result<()>,
) -> Result<PathBuf, JournalError> {
    let path = snapshot_path(dir, seq);
    let temporary = path.with_extension("tmp");
    let file = File::create(&temporary).map_err(|e| JournalError::io(&temporary, e))?;
    let mut writer = BufWriter::new(file);
    encode(&mut writer)
        .map_err(|e| JournalError::Unavailable(format!("snapshot cannot be encoded: {e}")))?;
    let file = writer
        .into_inner()
        .map_err(|e| JournalError::io(&temporary, e.into_error()))?;
    file.sync_all()
        .map_err(|e| JournalError::io(&temporary, e))?;
    fs::rename(&temporary, &path).map_err(|e| JournalError::io(&path, e))?;
    sync_dir(dir).map_err(|e| JournalError::io(dir, e))?;
    for (older, old) in list_snapshots(dir)? {
        if older < seq {
            fs::remove_file(&old).map_err(|e| JournalError::io(&old, e))?;
        }
    }
    Ok(path)
}

/// The seq of the newest snapshot, by its name (0: none).
pub fn latest_seq(dir: &Path) -> Result<u64, JournalError> {
    Ok(list_snapshots(dir)?.pop().map_or(0, |(seq, _)| seq))
}

/// The newest snapshot, if any. A snapshot that cannot be read is an error:
/// the segments it replaced may be gone.
pub fn load_latest(dir: &Path) -> Result<Option<Snapshot>, JournalError> {
    let Some((_, path)) = list_snapshots(dir)?.pop() else {
        return Ok(None);
    };
    let bytes = fs::read(&path).map_err(|e| JournalError::io(&path, e))?;
    let snapshot = serde_json::from_slice(&bytes).map_err(|e| JournalError::Corrupt {
        segment: path.clone(),
        offset: e.column() as u64,
        reason: format!("snapshot unreadable: {e}"),
    })?;
    Ok(Some(snapshot))
}

/// Deletes journal segments whose every record is at or below `covered_seq`
/// (held by a snapshot and applied by the store). The newest segment, which
/// the writer appends to, is never deleted. Returns the segments removed.
pub fn delete_covered_segments(
    journal_dir: &Path,
    covered_seq: u64,
) -> Result<usize, JournalError> {
    let segments = list_segments(journal_dir).map_err(|e| JournalError::io(journal_dir, e))?;
    let mut removed = 0;
    for pair in segments.windows(2) {
        let ((_, path), (next_first, _)) = (&pair[0], &pair[1]);
        // This segment's last record is next_first - 1.
        if *next_first <= covered_seq + 1 {
            fs::remove_file(path).map_err(|e| JournalError::io(path, e))?;
            removed += 1;
        }
    }
    if removed > 0 {
        sync_dir(journal_dir).map_err(|e| JournalError::io(journal_dir, e))?;
    }
    Ok(removed)
}
