//! The Linux scheduling policy of the gateway's busy threads: the HTTP
//! threads (`server.http_thread_policy`) and the journal writer
//! (`storage.journal_writer_policy`).
//!
//! An ordinary thread (`SCHED_OTHER`) that wakes up preempts whatever runs
//! on its core when it has had less CPU than that thread, which a thread
//! that sleeps often always has. In a burst that is every wake-up: an HTTP
//! thread woken by one request's bytes displaces the thread that was
//! sending or answering the next ones, handles that one request, finds
//! nothing else ready and sleeps again (docs/PERFORMANCE.md, run L: a
//! sleep every five requests); the journal writer woken by the disk takes
//! the few records queued so far (run H). As `SCHED_BATCH` a thread keeps
//! its fair share of CPU but does not preempt on waking: on a busy machine
//! it runs when the running thread yields or its slice ends, and by then
//! more work waits for it. On an idle core it runs at once either way.
//!
//! The price: next to a thread that never yields (a CPU-bound neighbour)
//! a `SCHED_BATCH` thread waits for the scheduler tick, milliseconds, for
//! each wake-up. `Normal` is for machines shared with such work. Either
//! policy may be set without privileges.

use serde::{Deserialize, Serialize};

/// A thread's scheduling policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreadPolicy {
    /// `SCHED_BATCH`: no wake-up preemption.
    Batch,
    /// `SCHED_OTHER`, as every other thread.
    Normal,
}

impl ThreadPolicy {
    /// Puts the calling thread under this policy (priority 0, nice
    /// unchanged).
    pub fn apply_here(self) -> std::io::Result<()> {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` outlives the call; 0 is the calling thread.
        if unsafe { libc::sched_setscheduler(0, self.raw(), &param) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// The calling thread's policy as the kernel reports it; `None` for a
    /// policy other than these two (one set from outside, say).
    pub fn of_this_thread() -> Option<ThreadPolicy> {
        // SAFETY: no arguments; 0 is the calling thread.
        ThreadPolicy::from_raw(unsafe { libc::sched_getscheduler(0) })
    }

    /// The policy of a `sched_getscheduler` answer, if one of these two.
    pub fn from_raw(raw: libc::c_int) -> Option<ThreadPolicy> {
        match raw {
            libc::SCHED_BATCH => Some(ThreadPolicy::Batch),
            libc::SCHED_OTHER => Some(ThreadPolicy::Normal),
            _ => None,
        }
    }

    fn raw(self) -> libc::c_int {
        match self {
            ThreadPolicy::Batch => libc::SCHED_BATCH,
            ThreadPolicy::Normal => libc::SCHED_OTHER,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_takes_either_policy_and_reports_it() {
        std::thread::spawn(|| {
            assert_eq!(ThreadPolicy::of_this_thread(), Some(ThreadPolicy::Normal));
            for policy in [
                ThreadPolicy::Batch,
                ThreadPolicy::Normal,
                ThreadPolicy::Batch,
            ] {
                policy
                    .apply_here()
                    .expect("either policy needs no privileges");
                assert_eq!(ThreadPolicy::of_this_thread(), Some(policy));
            }
        })
        .join()
        .unwrap();
    }
}
