//! Segment files: the journal is a directory of `<first seq>.log` files, the
//! name zero-padded to 20 digits so names sort in log order. Only the last
//! segment is ever written; a full one is closed and a new one started.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

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
        if let Some(first_seq) = name
            .strip_suffix(SEGMENT_SUFFIX)
            .and_then(|stem| stem.parse::<u64>().ok())
        {
            segments.push((first_seq, path));
        }
    }
    segments.sort();
    Ok(segments)
}

/// Makes a created, renamed or removed file's directory entry durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_list_in_log_order_and_ignore_other_files() {
        let dir = std::env::temp_dir().join(format!("fg-segments-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        for first in [101u64, 1, 20] {
            File::create(segment_path(&dir, first)).unwrap();
        }
        File::create(dir.join("snapshot.json")).unwrap();
        let firsts: Vec<u64> = list_segments(&dir)
            .unwrap()
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(firsts, vec![1, 20, 101]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
