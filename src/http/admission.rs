//! Admission: at most `server.requests_in_flight_max` requests handled at
//! once; beyond it a request is answered 503 at once.
//!
//! One counter that every request adds to and takes from would be a word
//! every HTTP thread writes twice a request, its cache line moving between
//! the cores each time (see [`crate::stripes`]). So permits are handed out
//! in batches: a thread takes [`BATCH`] from the shared count at once,
//! keeps what it does not use on its own stripe, and gives back what it
//! holds beyond twice that. The bound stays exact: a request is admitted
//! only on a permit, and permits never exceed the bound. Permits that
//! other threads keep in reserve are reclaimed before a request is
//! refused. Below [`BATCHED_FROM`] permits are taken one by one.

use crate::stripes::{stripe, STRIPES};
use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Permits a thread takes at once.
pub const BATCH: usize = 16;

/// The smallest bound at which permits are taken in batches: what threads
/// keep in reserve is then at most a quarter of it.
pub const BATCHED_FROM: usize = 2 * BATCH * STRIPES * 4;

pub struct Admission {
    max: usize,
    batch: usize,
    /// Permits handed to the stripes (in use or kept in reserve).
    granted: CachePadded<AtomicUsize>,
    /// Each stripe's permits kept in reserve.
    spare: [CachePadded<AtomicUsize>; STRIPES],
}

/// A request's place; given back when dropped.
pub struct Permit<'a> {
    admission: &'a Admission,
}

impl Admission {
    pub fn new(max: usize) -> Admission {
        Admission {
            max,
            batch: if max >= BATCHED_FROM { BATCH } else { 1 },
            granted: CachePadded::new(AtomicUsize::new(0)),
            spare: Default::default(),
        }
    }

    /// A permit, or `None` when `max` requests hold one.
    pub fn enter(&self) -> Option<Permit<'_>> {
        let spare = &self.spare[stripe()];
        let admitted = if take_one(spare) {
            true
        } else if self.grant(self.batch) {
            // One for this request, the rest kept in reserve.
            spare.fetch_add(self.batch - 1, Ordering::AcqRel);
            true
        } else if self.batch > 1 && self.grant(1) {
            true
        } else {
            // At the bound: what the stripes keep in reserve first.
            self.reclaim();
            self.grant(1)
        };
        // Made only when admitted: a permit dropped gives a place back.
        admitted.then(|| Permit { admission: self })
    }

    /// Requests holding a permit now (exact when none enter or leave
    /// meanwhile).
    pub fn in_flight(&self) -> usize {
        let spare: usize = self
            .spare
            .iter()
            .map(|spare| spare.load(Ordering::Acquire))
            .sum();
        self.granted.load(Ordering::Acquire).saturating_sub(spare)
    }

    fn grant(&self, permits: usize) -> bool {
        let before = self.granted.fetch_add(permits, Ordering::AcqRel);
        if before + permits <= self.max {
            return true;
        }
        self.granted.fetch_sub(permits, Ordering::AcqRel);
        false
    }

    fn reclaim(&self) {
        for spare in &self.spare {
            let taken = spare.swap(0, Ordering::AcqRel);
            if taken > 0 {
                self.granted.fetch_sub(taken, Ordering::AcqRel);
            }
        }
    }

    fn release(&self) {
        let spare = &self.spare[stripe()];
        let (keep_max, keep) = if self.batch > 1 {
            (2 * self.batch, self.batch)
        } else {
            (0, 0)
        };
        let mut held = spare.fetch_add(1, Ordering::AcqRel) + 1;
        while held > keep_max {
            match spare.compare_exchange_weak(held, keep, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    self.granted.fetch_sub(held - keep, Ordering::AcqRel);
                    return;
                }
                Err(now) => held = now,
            }
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.admission.release();
    }
}

/// Takes one permit from a stripe's reserve, if it has one.
fn take_one(spare: &AtomicUsize) -> bool {
    let mut held = spare.load(Ordering::Acquire);
    while held > 0 {
        match spare.compare_exchange_weak(held, held - 1, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return true,
            Err(now) => held = now,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_small_bound_admits_exactly_that_many_and_frees_places() {
        let admission = Admission::new(2);
        let first = admission.enter().expect("first");
        let second = admission.enter().expect("second");
        assert_eq!(admission.in_flight(), 2);
        assert!(admission.enter().is_none(), "a third beyond 2");
        assert_eq!(admission.in_flight(), 2);
        drop(first);
        assert_eq!(admission.in_flight(), 1);
        let third = admission.enter().expect("a place came free");
        assert!(admission.enter().is_none());
        drop((second, third));
        assert_eq!(admission.in_flight(), 0);
    }

    #[test]
    fn a_batched_bound_is_exact_whatever_the_threads_keep_in_reserve() {
        let max = BATCHED_FROM;
        let admission = Arc::new(Admission::new(max));
        assert_eq!(admission.batch, BATCH);
        // Every thread takes and gives back places, leaving some in its reserve.
        let workers: Vec<_> = (0..STRIPES + 2)
            .map(|_| {
                let admission = Arc::clone(&admission);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        let permits: Vec<_> = (0..3).filter_map(|_| admission.enter()).collect();
                        assert_eq!(permits.len(), 3);
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        assert_eq!(admission.in_flight(), 0);
        // One thread can still take every place, and not one more.
        let held: Vec<_> = (0..max).map(|_| admission.enter()).collect();
        assert!(held.iter().all(Option::is_some), "all {max} places");
        assert!(admission.enter().is_none(), "one beyond {max}");
        assert_eq!(admission.in_flight(), max);
        drop(held);
        assert_eq!(admission.in_flight(), 0);
    }

    #[test]
    fn a_thread_gives_back_what_it_keeps_beyond_twice_a_batch() {
        let admission = Admission::new(BATCHED_FROM);
        let permits: Vec<_> = (0..5 * BATCH).filter_map(|_| admission.enter()).collect();
        assert_eq!(permits.len(), 5 * BATCH);
        drop(permits);
        let kept = admission.spare[stripe()].load(Ordering::Acquire);
        assert!(kept <= 2 * BATCH, "kept {kept}");
        assert_eq!(admission.granted.load(Ordering::Acquire), kept);
    }
}
