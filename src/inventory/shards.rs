//! Stock striped over cache-padded atomic shards.
//!
//! One hot item is hammered by every worker thread at once during a flash
//! sale. A single atomic counter would make every core fight for one cache
//! line; a mutex would serialise the whole sale. Instead the stock is split
//! over `n` shards, each on its own cache line. A reservation is one CAS on the
//! shard its caller hints at; when that shard cannot cover the quantity the
//! caller steals from the others. Once a full pass finds every shard empty, a
//! sold-out flag turns every later request into one relaxed-cost load.
//!
//! The algorithm is generic over [`Cell`] so the loom model test can run the
//! exact same code on loom's atomics; production uses `AtomicI64` and the
//! generic costs nothing after monomorphisation.
//!
//! Two multi-unit gathers racing over the last units can both fail and give
//! their units back (each took part, neither all): a buyer sees `SOLD_OUT`
//! while units remain and may retry. Single-unit orders, the flash-sale
//! common case, never gather. Correctness (no oversell, no lost unit) holds
//! either way; this is a liveness trade-off for a lock-free path.
//!
//! Invariants (asserted where cheap):
//! - no shard ever goes below zero: every decrement is a CAS that checks it;
//! - units are conserved: a failed multi-shard gather gives back what it took;
//! - the sold-out flag is never left set while a shard holds stock: whoever
//!   sets it re-scans afterwards, and whoever adds stock clears it afterwards.

use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicI64, Ordering};

/// The atomic operations the shard algorithm needs, so a model checker can
/// substitute its own atomics.
pub trait Cell: Send + Sync {
    fn with_value(value: i64) -> Self;
    fn load(&self) -> i64;
    fn store(&self, value: i64);
    fn fetch_add(&self, value: i64) -> i64;
    fn compare_exchange(&self, current: i64, new: i64) -> Result<i64, i64>;
}

impl Cell for AtomicI64 {
    fn with_value(value: i64) -> Self {
        AtomicI64::new(value)
    }
    fn load(&self) -> i64 {
        AtomicI64::load(self, Ordering::SeqCst)
    }
    fn store(&self, value: i64) {
        AtomicI64::store(self, value, Ordering::SeqCst)
    }
    fn fetch_add(&self, value: i64) -> i64 {
        AtomicI64::fetch_add(self, value, Ordering::SeqCst)
    }
    fn compare_exchange(&self, current: i64, new: i64) -> Result<i64, i64> {
        AtomicI64::compare_exchange_weak(self, current, new, Ordering::SeqCst, Ordering::SeqCst)
    }
}

/// Why a reservation could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortage {
    /// Every shard was empty (or the sold-out flag was already set).
    SoldOut,
    /// Some stock is left, but less than the quantity asked for.
    Insufficient,
}

pub struct Shards<C: Cell = AtomicI64> {
    shards: Box<[CachePadded<C>]>,
    /// 1 when a full pass found every shard empty; see the module doc.
    sold_out: CachePadded<C>,
}

impl<C: Cell> Shards<C> {
    /// `stock` spread as evenly as possible over `shard_count` shards.
    pub fn new(shard_count: usize, stock: i64) -> Self {
        assert!(shard_count > 0, "an item needs at least one shard");
        assert!(stock >= 0, "stock cannot be negative");
        let shards: Box<[CachePadded<C>]> = (0..shard_count)
            .map(|_| CachePadded::new(C::with_value(0)))
            .collect();
        let this = Shards {
            shards,
            sold_out: CachePadded::new(C::with_value(0)),
        };
        this.spread(stock);
        if stock == 0 {
            this.sold_out.store(1);
        }
        this
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Takes `quantity` units: one CAS on the hinted shard in the common case,
    /// a steal from the other shards when it runs dry.
    pub fn reserve(&self, quantity: i64, hint: usize) -> Result<(), Shortage> {
        debug_assert!(quantity > 0);
        if self.sold_out.load() != 0 {
            return Err(Shortage::SoldOut);
        }
        // Any hint is safe, even usize::MAX; the division is skipped for the
        // usual hint (a worker index below the shard count).
        let start = if hint < self.shards.len() {
            hint
        } else {
            hint % self.shards.len()
        };
        for index in self.ring(start) {
            if take_exact(&*self.shards[index], quantity) {
                return Ok(());
            }
        }
        // No single shard covers the quantity: gather from several.
        let mut taken = 0;
        for index in self.ring(start) {
            taken += take_up_to(&*self.shards[index], quantity - taken);
            if taken == quantity {
                return Ok(());
            }
        }
        debug_assert!(taken < quantity);
        if taken > 0 {
            self.release(taken, hint);
        }
        if self.is_empty() {
            self.mark_sold_out();
            return Err(Shortage::SoldOut);
        }
        Err(Shortage::Insufficient)
    }

    /// Returns `quantity` units (an expiry, a cancel, a failed gather).
    pub fn release(&self, quantity: i64, hint: usize) {
        debug_assert!(quantity > 0);
        let previous = self.shards[hint % self.shards.len()].fetch_add(quantity);
        debug_assert!(previous >= 0);
        // Clear only after the units are visible; see the module doc.
        self.sold_out.store(0);
    }

    /// Adds new stock spread over every shard.
    pub fn restock(&self, quantity: i64) {
        assert!(quantity > 0, "restock adds at least one unit");
        self.spread(quantity);
        self.sold_out.store(0);
    }

    /// Takes every unit the shards hold; returns how many. Reservations
    /// racing it keep what their CAS won.
    pub fn drain(&self) -> i64 {
        let taken = self
            .shards
            .iter()
            .map(|shard| take_up_to(&**shard, i64::MAX))
            .sum();
        if self.is_empty() {
            self.mark_sold_out();
        }
        taken
    }

    /// Sum of the shards: exact when no reservation is in flight.
    pub fn remaining(&self) -> i64 {
        self.shards.iter().map(|shard| shard.load()).sum()
    }

    pub fn is_sold_out_flagged(&self) -> bool {
        self.sold_out.load() != 0
    }

    /// Every shard index once, starting at `start`, without a division.
    fn ring(&self, start: usize) -> impl Iterator<Item = usize> {
        (start..self.shards.len()).chain(0..start)
    }

    fn is_empty(&self) -> bool {
        self.shards.iter().all(|shard| shard.load() == 0)
    }

    fn mark_sold_out(&self) {
        self.sold_out.store(1);
        // A release may have landed between our scan and the store above;
        // it cleared the flag before we set it, so look again.
        if !self.is_empty() {
            self.sold_out.store(0);
        }
    }

    fn spread(&self, quantity: i64) {
        let count = self.shards.len() as i64;
        let (each, extra) = (quantity / count, quantity % count);
        for (index, shard) in self.shards.iter().enumerate() {
            let add = each + i64::from((index as i64) < extra);
            if add > 0 {
                shard.fetch_add(add);
            }
        }
    }
}

/// Takes exactly `quantity` from `shard` or nothing.
fn take_exact<C: Cell>(shard: &C, quantity: i64) -> bool {
    let mut current = shard.load();
    while current >= quantity {
        match shard.compare_exchange(current, current - quantity) {
            Ok(_) => return true,
            Err(actual) => current = actual,
        }
    }
    debug_assert!(current >= 0, "a shard went below zero");
    false
}

/// Takes as much as the shard has, up to `quantity`; returns what it took.
fn take_up_to<C: Cell>(shard: &C, quantity: i64) -> i64 {
    let mut current = shard.load();
    while current > 0 {
        let take = current.min(quantity);
        match shard.compare_exchange(current, current - take) {
            Ok(_) => return take,
            Err(actual) => current = actual,
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shards(count: usize, stock: i64) -> Shards {
        Shards::new(count, stock)
    }

    #[test]
    fn stock_is_spread_evenly_and_conserved() {
        let stock = shards(4, 10);
        assert_eq!(stock.remaining(), 10);
        assert_eq!(stock.shard_count(), 4);
    }

    #[test]
    fn reserve_steals_from_other_shards_when_the_hinted_one_is_dry() {
        let stock = shards(4, 4); // one unit per shard
        assert_eq!(stock.reserve(3, 0), Ok(()));
        assert_eq!(stock.remaining(), 1);
        assert_eq!(stock.reserve(2, 1), Err(Shortage::Insufficient));
        assert_eq!(
            stock.remaining(),
            1,
            "a failed gather gives back what it took"
        );
        assert!(!stock.is_sold_out_flagged());
        assert_eq!(stock.reserve(1, 2), Ok(()));
        assert_eq!(stock.reserve(1, 3), Err(Shortage::SoldOut));
        assert!(stock.is_sold_out_flagged());
    }

    #[test]
    fn release_and_restock_clear_the_sold_out_flag() {
        let stock = shards(2, 1);
        assert_eq!(stock.reserve(1, 0), Ok(()));
        assert_eq!(stock.reserve(1, 0), Err(Shortage::SoldOut));
        stock.release(1, 1);
        assert!(!stock.is_sold_out_flagged());
        assert_eq!(stock.reserve(1, 0), Ok(()));
        assert_eq!(stock.reserve(1, 0), Err(Shortage::SoldOut));
        stock.restock(5);
        assert_eq!(stock.remaining(), 5);
        assert_eq!(stock.reserve(5, 1), Ok(()));
    }

    #[test]
    fn zero_stock_starts_sold_out() {
        let stock = shards(3, 0);
        assert!(stock.is_sold_out_flagged());
        assert_eq!(stock.reserve(1, 0), Err(Shortage::SoldOut));
    }
}
