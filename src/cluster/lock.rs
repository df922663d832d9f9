//! The cluster lock of a node's data dir: an exclusive `flock` on
//! `<data_dir>/cluster.lock`, held by a running cluster node for its whole
//! life and by `flashgate cluster reclaim`, so a reclaim never gives back
//! units a live node may still sell. The kernel drops it when the process
//! dies, `kill -9` included. A node without `[cluster]` takes no lock.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

pub struct DataDirLock {
    // Held open: closing the file releases the lock.
    _file: File,
}

impl DataDirLock {
    /// Takes the lock, or says who holds it.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, String> {
        let path: PathBuf = data_dir.join("cluster.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|error| format!("cannot open {}: {error}", path.display()))?;
        // SAFETY: flock on a descriptor this function owns; no memory is shared.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if locked != 0 {
            let error = std::io::Error::last_os_error();
            return Err(if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
                format!(
                    "{} is locked: a flashgate node is running on this data dir",
                    path.display()
                )
            } else {
                format!("cannot lock {}: {error}", path.display())
            });
        }
        Ok(DataDirLock { _file: file })
    }
}

#[cfg(test)]
#[path = "lock_tests.rs"]
mod tests;
