//! Multi-threaded stress of the inventory on real threads and atomics.
//!
//! Proves, under real contention on one hot item:
//! - buyers together take exactly the stock, never a unit more, and the item
//!   ends sold out;
//! - with reserves, releases and restocks racing, units are conserved, no
//!   count is ever seen negative, and the sold-out flag is not left set while
//!   stock remains;
//! - multi-unit gathers racing over a tiny stock never oversell.

use flashgate::inventory::{ItemStock, Shards, Shortage};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

const THREADS: usize = 8;

/// SplitMix64: a small, seedable generator so each thread draws its own
/// quantities and hints without a dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `low..=high`.
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }

    fn hint(&mut self) -> usize {
        self.between(0, 63) as usize
    }
}

/// Runs `work(thread_index)` on `THREADS` threads released together and
/// returns their results.
fn on_threads<T: Send + 'static>(work: impl Fn(usize) -> T + Send + Sync + 'static) -> Vec<T> {
    let work = Arc::new(work);
    let start = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|index| {
            let (work, start) = (work.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                work(index)
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|handle| handle.join().expect("a stress thread panicked"))
        .collect()
}

#[test]
fn many_threads_on_one_hot_item_sell_exactly_the_stock() {
    const STOCK: i64 = 10_000;
    let item = Arc::new(ItemStock::new(16, STOCK));
    let buyers = item.clone();
    let sold_per_thread = on_threads(move |index| {
        let mut random = SplitMix(index as u64);
        let mut sold = 0;
        // Stop only once the shards are seen empty: every thread's last look
        // comes after its own last reservation, so the last look of all sees
        // no reservation in flight.
        while buyers.remaining() > 0 {
            let quantity = random.between(1, 3) as i64;
            if buyers.reserve(quantity, random.hint()).is_ok() {
                sold += quantity;
            }
        }
        sold
    });

    let sold: i64 = sold_per_thread.iter().sum();
    assert_eq!(sold, STOCK, "sold per thread: {sold_per_thread:?}");
    assert_eq!(item.remaining(), 0);
    assert_eq!(item.reserve(1, 0), Err(Shortage::SoldOut));
    assert!(item.is_sold_out());
    let counts = item.counts();
    assert_eq!(
        (counts.stock, counts.reserved, counts.paid),
        (STOCK, STOCK, 0)
    );
}

#[test]
fn racing_reserves_releases_and_restocks_conserve_units() {
    const INITIAL: i64 = 200;
    const ROUNDS: usize = 100_000;
    let item = Arc::new(ItemStock::new(16, INITIAL));
    let done = Arc::new(AtomicBool::new(false));

    // Watches the counts while the others work: nothing may go negative.
    let watcher = {
        let (item, done) = (item.clone(), done.clone());
        thread::spawn(move || {
            let mut looks = 0u64;
            while !done.load(Ordering::Relaxed) {
                let counts = item.counts();
                assert!(counts.remaining >= 0, "remaining seen negative: {counts:?}");
                assert!(counts.reserved >= 0, "reserved seen negative: {counts:?}");
                looks += 1;
            }
            looks
        })
    };

    let workers = item.clone();
    // Each thread returns (units it still holds, units it restocked, units it released).
    let totals = on_threads(move |index| {
        let mut random = SplitMix(1_000 + index as u64);
        let mut holds: Vec<i64> = Vec::new();
        let (mut restocked, mut released) = (0, 0);
        for _ in 0..ROUNDS {
            match random.between(0, 9) {
                0..=5 => {
                    let quantity = random.between(1, 3) as i64;
                    if workers.reserve(quantity, random.hint()).is_ok() {
                        holds.push(quantity);
                    }
                }
                6..=8 => {
                    if let Some(quantity) = holds.pop() {
                        workers.release(quantity, random.hint());
                        released += quantity;
                    }
                }
                _ => {
                    let quantity = random.between(1, 4) as i64;
                    workers.restock(quantity);
                    restocked += quantity;
                }
            }
        }
        (holds.iter().sum::<i64>(), restocked, released)
    });
    done.store(true, Ordering::Relaxed);
    let looks = watcher.join().expect("the watcher saw a negative count");

    let held: i64 = totals.iter().map(|(held, _, _)| held).sum();
    let restocked: i64 = totals.iter().map(|(_, restocked, _)| restocked).sum();
    let released: i64 = totals.iter().map(|(_, _, released)| released).sum();
    let remaining = item.remaining();
    assert!(remaining >= 0);
    assert_eq!(
        remaining + held,
        INITIAL + restocked,
        "units are not conserved"
    );
    let counts = item.counts();
    assert_eq!(counts.stock, INITIAL + restocked);
    assert_eq!(counts.reserved, held);
    assert_eq!(counts.released, released);
    assert_eq!(
        counts.remaining + counts.reserved + counts.paid,
        counts.stock
    );
    if remaining > 0 {
        assert!(
            !item.is_sold_out(),
            "flag left set with {remaining} units left"
        );
    }
    assert!(looks > 0, "the watcher never looked");
}

#[test]
fn gathers_racing_over_a_tiny_stock_never_oversell_and_never_stick_the_flag() {
    const ROUNDS: usize = 100_000;
    // Three units over four shards: most multi-unit reservations must gather,
    // and the stock is empty often, so the sold-out flag flips constantly.
    let shards: Arc<Shards> = Arc::new(Shards::new(4, 3));
    // Units held right now, counted up after a reservation and down before
    // its release, so it never exceeds what is really held.
    let held_now = Arc::new(AtomicI64::new(0));
    let (workers, holders) = (shards.clone(), held_now.clone());
    let most_seen = on_threads(move |index| {
        let mut random = SplitMix(2_000 + index as u64);
        let mut most_seen = 0;
        for _ in 0..ROUNDS {
            let quantity = random.between(1, 3) as i64;
            if workers.reserve(quantity, random.hint()).is_ok() {
                let held = holders.fetch_add(quantity, Ordering::SeqCst) + quantity;
                most_seen = most_seen.max(held);
                holders.fetch_sub(quantity, Ordering::SeqCst);
                workers.release(quantity, random.hint());
            }
        }
        most_seen
    });

    let most_held = most_seen.into_iter().max().unwrap_or(0);
    assert!(most_held <= 3, "{most_held} units held at once out of 3");
    assert!(most_held > 0, "no reservation ever succeeded");
    assert_eq!(shards.remaining(), 3, "every unit came back");
    assert!(!shards.is_sold_out_flagged(), "flag left set over 3 units");
    assert_eq!(
        shards.reserve(3, 0),
        Ok(()),
        "all three can still be gathered"
    );
}
