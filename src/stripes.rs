//! Per-thread stripes for what every order writes.
//!
//! An atomic that two cores both write moves its cache line between them
//! on every write: on this project's 2-core machines about 60 ns a write
//! against a few for a line the core already holds (docs/PERFORMANCE.md,
//! run N). An order used to write a dozen such lines (a counter of
//! request ids, one of orders made, the hold timers' queue, the metrics'
//! atomics); each HTTP thread now writes its own stripe and a reader sums
//! the stripes. Stripes are picked by [`thread_slot`], so threads that
//! share a stripe (more threads than stripes) stay correct, only slower.

use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Stripes per striped value: a power of two, more than a gateway's HTTP
/// threads on the machines it is meant for.
pub const STRIPES: usize = 8;

/// The calling thread's ordinal: 0 for the first thread that asks, then 1,
/// 2, … Fixed for the thread's life. HTTP threads also use it to pick
/// their first stock shard.
pub fn thread_slot() -> usize {
    static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
    }
    SLOT.with(|slot| *slot)
}

/// A number no other caller in this process gets: the key under which a
/// thread-local cache keeps what belongs to one engine or one id generator
/// (tests make many in one process; an address could be reused).
pub fn unique_owner() -> u64 {
    static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);
    NEXT_OWNER.fetch_add(1, Ordering::Relaxed)
}

/// The calling thread's stripe, below [`STRIPES`].
pub fn stripe() -> usize {
    thread_slot() % STRIPES
}

/// A count that many threads add to and few read: each thread adds to its
/// own cache line, a read sums them.
#[derive(Default)]
pub struct StripedCounter {
    stripes: [CachePadded<AtomicU64>; STRIPES],
}

impl StripedCounter {
    pub fn add(&self, amount: u64) {
        self.stripes[stripe()].fetch_add(amount, Ordering::Relaxed);
    }

    /// The sum of every stripe. Exact once the adds it should see have
    /// happened (an add and a later read on another thread are ordered by
    /// whatever ordered them, as for a single relaxed counter).
    pub fn get(&self) -> u64 {
        self.stripes
            .iter()
            .map(|stripe| stripe.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }

    /// Sets the count (a restore: nobody adds meanwhile).
    pub fn set(&self, value: u64) {
        for (index, stripe) in self.stripes.iter().enumerate() {
            stripe.store(if index == 0 { value } else { 0 }, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn threads_get_distinct_slots_that_stay_fixed() {
        let here = thread_slot();
        assert_eq!(thread_slot(), here);
        let there = std::thread::spawn(thread_slot).join().unwrap();
        assert_ne!(here, there);
    }

    #[test]
    fn a_striped_count_sums_every_threads_adds() {
        let counter = Arc::new(StripedCounter::default());
        let threads: Vec<_> = (0..STRIPES + 3)
            .map(|_| {
                let counter = Arc::clone(&counter);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        counter.add(1);
                    }
                    counter.add(5);
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(counter.get(), (STRIPES as u64 + 3) * 1005);
        counter.set(42);
        assert_eq!(counter.get(), 42);
        counter.add(1);
        assert_eq!(counter.get(), 43);
    }
}
