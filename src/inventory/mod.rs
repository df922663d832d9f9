//! Inventory: how many units of an item are left, who holds how many, and
//! which idempotency keys have already made an order.
//!
//! Everything here is lock-free or striped: the stock lives in atomic shards
//! ([`shards`]), per-buyer counts and idempotency keys in `DashMap`s whose
//! shard locks are held for a few instructions. Nothing on the order path
//! takes a lock shared by all requests.

pub mod buyer_key;
pub mod idempotency;
pub mod limits;
pub mod prehashed;
pub mod shards;

pub use buyer_key::{BuyerKey, BuyerOf};
pub use idempotency::{Asked, IdempotencyKeys, ItemSerial, KeyClaim, OrderRequest};
pub use limits::{LimitExceeded, PerUserLimits};
pub use shards::{Cell, Shards, Shortage};

use std::sync::atomic::{AtomicI64, Ordering};

/// The concurrent map of the order path: `DashMap` (sharded locks held for
/// a few instructions) with aHash, which is several times faster than the
/// default SipHash on short keys and still keyed per process, so buyers
/// cannot aim collisions at it.
pub type ConcurrentMap<K, V> = dashmap::DashMap<K, V, ahash::RandomState>;

/// The stock of one sale item and the counters its stats are made of.
///
/// Only the shards change on a reservation; `reserved` is derived
/// (`stock - remaining - paid`) so the hot path touches no shared counter.
/// Invariant: `remaining + reserved + paid == stock`, and none is negative.
///
/// A unit moves `remaining → reserved` (reserve), then `reserved → paid`
/// (mark_paid) or `reserved → remaining` (release); a refund moves it
/// `paid → remaining` (return_paid); a late payment takes it back
/// `remaining → paid` (reserve, then mark_paid).
pub struct ItemStock {
    shards: Shards,
    stock_total: AtomicI64,
    paid_total: AtomicI64,
    released_total: AtomicI64,
}

/// A point-in-time view of an item's stock, exact when no request is in flight.
/// `released` counts every unit that went back on sale (expired, cancelled
/// and refunded orders), cumulatively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StockCounts {
    pub stock: i64,
    pub reserved: i64,
    pub paid: i64,
    pub released: i64,
    pub remaining: i64,
}

impl ItemStock {
    pub fn new(shard_count: usize, stock: i64) -> Self {
        ItemStock {
            shards: Shards::new(shard_count, stock),
            stock_total: AtomicI64::new(stock),
            paid_total: AtomicI64::new(0),
            released_total: AtomicI64::new(0),
        }
    }

    /// Rebuilds an item from a snapshot's counts.
    pub fn restore(shard_count: usize, counts: &StockCounts) -> Result<Self, String> {
        let StockCounts {
            stock,
            reserved,
            paid,
            released,
            remaining,
        } = *counts;
        if remaining < 0 || reserved < 0 || paid < 0 || remaining + reserved + paid != stock {
            return Err(format!("inconsistent stock counts {counts:?}"));
        }
        Ok(ItemStock {
            shards: Shards::new(shard_count, remaining),
            stock_total: AtomicI64::new(stock),
            paid_total: AtomicI64::new(paid),
            released_total: AtomicI64::new(released),
        })
    }

    pub fn reserve(&self, quantity: i64, hint: usize) -> Result<(), Shortage> {
        self.shards.reserve(quantity, hint)
    }

    /// Returns the units of an expired or cancelled hold.
    pub fn release(&self, quantity: i64, hint: usize) {
        self.shards.release(quantity, hint);
        self.released_total.fetch_add(quantity, Ordering::Relaxed);
    }

    pub fn restock(&self, quantity: i64) {
        // Count the stock before it becomes reservable so `reserved` is
        // never observed negative.
        self.stock_total.fetch_add(quantity, Ordering::SeqCst);
        self.shards.restock(quantity);
    }

    /// Held units become paid: they stay out of the shards until refunded.
    pub fn mark_paid(&self, quantity: i64) {
        debug_assert!(quantity > 0);
        self.paid_total.fetch_add(quantity, Ordering::SeqCst);
    }

    /// Paid units of a refunded order go back on sale: paid down, remaining
    /// up. The caller holds the order, so the units are known to be paid.
    pub fn return_paid(&self, quantity: i64, hint: usize) {
        debug_assert!(quantity > 0);
        // Out of `paid` before into the shards: a concurrent reader may see
        // the unit as reserved for a moment, never as sold twice over. Paid
        // never goes below zero: a caller returning more is a bug, stopped
        // before it changes a count.
        let taken = self
            .paid_total
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |paid| {
                (paid >= quantity).then_some(paid - quantity)
            });
        if let Err(paid) = taken {
            panic!("returned {quantity} paid units of {paid}");
        }
        self.shards.release(quantity, hint);
        self.released_total.fetch_add(quantity, Ordering::Relaxed);
    }

    pub fn remaining(&self) -> i64 {
        self.shards.remaining()
    }

    /// Takes exactly `quantity` unreserved units out of the item's stock
    /// (a cluster node giving leased units back, replayed).
    pub fn withdraw(&self, quantity: i64) -> Result<(), Shortage> {
        self.shards.reserve(quantity, 0)?;
        // Out of the shards first: a reader may see the units as reserved
        // for a moment, never as sellable after they left.
        self.stock_total.fetch_sub(quantity, Ordering::SeqCst);
        Ok(())
    }

    /// Takes every unreserved unit out of the item's stock; returns how
    /// many (a cluster node giving its unsold lease back, live).
    pub fn withdraw_all(&self) -> i64 {
        let taken = self.shards.drain();
        if taken > 0 {
            self.stock_total.fetch_sub(taken, Ordering::SeqCst);
        }
        taken
    }

    pub fn is_sold_out(&self) -> bool {
        self.shards.is_sold_out_flagged()
    }

    /// Read in this order so a unit is not counted twice: a unit reaches
    /// `paid` only from a reservation, and restocked units are counted in
    /// `stock` before they reach the shards. (A gather in flight can still
    /// move a unit between shards mid-sum, and a refund can land between
    /// the reads of `paid` and of the shards, hence "exact when nothing is
    /// in flight".)
    pub fn counts(&self) -> StockCounts {
        let paid = self.paid_total.load(Ordering::SeqCst);
        let remaining = self.shards.remaining();
        let stock = self.stock_total.load(Ordering::SeqCst);
        let reserved = (stock - remaining - paid).max(0);
        let counts = StockCounts {
            stock,
            reserved,
            paid,
            released: self.released_total.load(Ordering::Relaxed),
            remaining,
        };
        debug_assert!(counts.remaining >= 0 && counts.paid >= 0);
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_conserve_stock_through_reserve_release_restock_and_pay() {
        let item = ItemStock::new(4, 10);
        item.reserve(3, 0).unwrap();
        item.reserve(2, 1).unwrap();
        item.release(2, 1);
        item.mark_paid(3);
        item.restock(5);
        let counts = item.counts();
        assert_eq!(
            counts,
            StockCounts {
                stock: 15,
                reserved: 0,
                paid: 3,
                released: 2,
                remaining: 12
            }
        );
        assert_eq!(
            counts.remaining + counts.reserved + counts.paid,
            counts.stock
        );
    }

    #[test]
    fn a_refunded_unit_goes_back_on_sale_and_a_late_payment_takes_it_again() {
        let item = ItemStock::new(2, 3);
        item.reserve(2, 0).unwrap();
        item.mark_paid(2);
        item.return_paid(1, 1);
        let counts = item.counts();
        assert_eq!((counts.paid, counts.remaining, counts.reserved), (1, 2, 0));
        assert_eq!(counts.released, 1);
        // A late payment: reserve and pay at once.
        item.reserve(2, 1).unwrap();
        item.mark_paid(2);
        let counts = item.counts();
        assert_eq!((counts.paid, counts.remaining, counts.reserved), (3, 0, 0));
        assert_eq!(
            counts.remaining + counts.reserved + counts.paid,
            counts.stock
        );
        assert!(item.reserve(1, 0).is_err(), "sold out again");
        item.return_paid(3, 0);
        assert_eq!(item.counts().remaining, 3);
        assert!(!item.is_sold_out(), "a refund clears the sold-out flag");
    }

    #[test]
    fn withdrawn_units_leave_the_stock_and_reserved_ones_stay() {
        let item = ItemStock::new(4, 10);
        item.reserve(3, 0).unwrap();
        item.withdraw(2).unwrap();
        assert_eq!(item.withdraw(6), Err(Shortage::Insufficient));
        assert_eq!(item.withdraw_all(), 5);
        let counts = item.counts();
        assert_eq!((counts.stock, counts.reserved, counts.remaining), (3, 3, 0));
        assert_eq!(item.reserve(1, 0), Err(Shortage::SoldOut));
        assert_eq!(item.withdraw_all(), 0);
        item.restock(4);
        assert_eq!(item.counts().remaining, 4);
    }

    #[test]
    #[should_panic(expected = "returned 2 paid units of 1")]
    fn returning_more_than_was_paid_is_refused() {
        let item = ItemStock::new(1, 2);
        item.reserve(1, 0).unwrap();
        item.mark_paid(1);
        item.return_paid(2, 0);
    }
}
