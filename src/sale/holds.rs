//! Hold timers: when each unpaid order's hold runs out.
//!
//! A delay queue, not a scan of every order: the order path pushes
//! `(deadline, order_id)` onto a lock-free inbox, its thread's own stripe
//! of them (one queue every HTTP thread pushed onto moved its cache lines
//! between the cores on each order; see [`crate::stripes`]); the single
//! expiry task moves the inboxes into a min-heap it alone touches and pops
//! what is due.
//! Cost per order is one push and one heap insert, O(log n). The number of
//! pending holds is bounded by the stock on sale, since each holds a unit.
//! Entries are not removed on cancel or payment: the expiry task checks the
//! order's state when the entry comes due and skips it.

use crate::clock::UnixMs;
use crate::stripes::{stripe, STRIPES};
use crossbeam_queue::SegQueue;
use crossbeam_utils::CachePadded;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};

/// A hold: its deadline and the order it belongs to.
/// The id is the order record's own, shared.
type Hold = (UnixMs, Arc<str>);

#[derive(Default)]
pub struct HoldTimers {
    /// One per stripe: a thread pushes onto its own.
    inboxes: [CachePadded<SegQueue<Hold>>; STRIPES],
    /// Touched only by the expiry task; the mutex is never contended.
    due: Mutex<BinaryHeap<Reverse<Hold>>>,
    /// Set for an engine that never expires anything (the one a snapshot
    /// is built in): scheduling keeps nothing, or
    /// every order's hold would wait there for a pop that never comes.
    off: bool,
}

impl HoldTimers {
    /// Room for about `holds` holds, for a replay that restores them.
    pub fn with_capacity(holds: usize) -> HoldTimers {
        HoldTimers {
            inboxes: Default::default(),
            due: Mutex::new(BinaryHeap::with_capacity(holds)),
            off: false,
        }
    }

    /// Timers that keep nothing: for an engine whose holds never expire.
    pub fn off() -> HoldTimers {
        HoldTimers {
            off: true,
            ..HoldTimers::default()
        }
    }

    pub fn schedule(&self, deadline: UnixMs, order_id: Arc<str>) {
        if !self.off {
            self.inboxes[stripe()].push((deadline, order_id));
        }
    }

    /// Replay: straight onto the heap, skipping the inbox (a node per hold
    /// and a second move later). Nothing pops while the journal replays, so
    /// the lock is uncontended; journaled deadlines mostly ascend, so the
    /// push rarely sifts.
    pub fn schedule_replayed(&self, deadline: UnixMs, order_id: Arc<str>) {
        if self.off {
            return;
        }
        self.due
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(Reverse((deadline, order_id)));
    }

    /// Order ids whose deadline is at or before `now`, earliest first.
    pub fn pop_due(&self, now: UnixMs) -> Vec<Arc<str>> {
        let mut heap = self
            .due
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for inbox in &self.inboxes {
            while let Some(entry) = inbox.pop() {
                heap.push(Reverse(entry));
            }
        }
        let mut due = Vec::new();
        while heap
            .peek()
            .is_some_and(|Reverse((deadline, _))| *deadline <= now)
        {
            if let Some(Reverse((_, order_id))) = heap.pop() {
                due.push(order_id);
            }
        }
        due
    }

    pub fn pending(&self) -> usize {
        let heap = self
            .due
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        heap.len() + self.inboxes.iter().map(|inbox| inbox.len()).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_only_what_is_due_in_deadline_order() {
        let timers = HoldTimers::default();
        timers.schedule(300, "c".into());
        timers.schedule(100, "a".into());
        timers.schedule(200, "b".into());
        assert!(timers.pop_due(99).is_empty());
        assert_eq!(timers.pop_due(200), vec![Arc::<str>::from("a"), "b".into()]);
        assert_eq!(timers.pending(), 1);
        assert_eq!(timers.pop_due(1_000), vec![Arc::<str>::from("c")]);
        assert_eq!(timers.pending(), 0);
    }

    #[test]
    fn holds_scheduled_on_many_threads_all_come_due_in_order() {
        let timers = Arc::new(HoldTimers::default());
        let threads: Vec<_> = (0..STRIPES as i64 + 2)
            .map(|thread| {
                let timers = Arc::clone(&timers);
                std::thread::spawn(move || {
                    for hold in 0..10 {
                        let deadline = 1_000 + hold * 100 + thread;
                        timers.schedule(deadline, format!("{deadline}").into());
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(timers.pending(), (STRIPES + 2) * 10);
        let due = timers.pop_due(i64::MAX);
        let deadlines: Vec<i64> = due.iter().map(|id| id.parse().unwrap()).collect();
        assert_eq!(deadlines.len(), (STRIPES + 2) * 10);
        assert!(
            deadlines.windows(2).all(|pair| pair[0] <= pair[1]),
            "{deadlines:?}"
        );
        assert_eq!(timers.pending(), 0);
    }
}
