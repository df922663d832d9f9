//! Per-buyer purchase limits of one sale item.
//!
//! A `DashMap` from buyer to units held; the check and the increment happen
//! under one shard lock, so two concurrent orders from the same buyer cannot
//! both squeeze under the limit. Units come back when an order is cancelled
//! or expires, so the limit counts live (reserved, paying, paid) orders.

use crate::inventory::{BuyerKey, BuyerOf, ConcurrentMap};

#[derive(Default)]
pub struct PerUserLimits {
    /// Keyed by the buyer as the first of their orders holds it (with
    /// that order's key, which the map ignores), so a count costs no
    /// string of its own.
    held: ConcurrentMap<BuyerOf, u32>,
}

/// The buyer would hold more than the limit; `held` is what they hold now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitExceeded {
    pub held: u32,
}

impl PerUserLimits {
    /// Adds `quantity` to the buyer's count if the result stays within `limit`.
    /// `names`: the buyer, with the key of the order asking.
    pub fn try_acquire(
        &self,
        names: &BuyerKey,
        quantity: u32,
        limit: u32,
    ) -> Result<(), LimitExceeded> {
        if let Some(mut held) = self.held.get_mut(names.buyer()) {
            if held.checked_add(quantity).is_none_or(|total| total > limit) {
                return Err(LimitExceeded { held: *held });
            }
            *held += quantity;
            return Ok(());
        }
        if quantity > limit {
            return Err(LimitExceeded { held: 0 });
        }
        let mut held = self.held.entry(BuyerOf(names.clone())).or_insert(0);
        if held.checked_add(quantity).is_none_or(|total| total > limit) {
            return Err(LimitExceeded { held: *held });
        }
        *held += quantity;
        Ok(())
    }

    /// Replay: adds the units of a journaled order, whatever the limit (it
    /// was checked live), with one lookup and the order's own buyer string.
    /// A count that would overflow stays as it is, as `try_acquire` leaves it.
    pub fn acquire_replayed(&self, names: &BuyerKey, quantity: u32) {
        let mut held = self.held.entry(BuyerOf(names.clone())).or_insert(0);
        if let Some(total) = held.checked_add(quantity) {
            *held = total;
        }
    }

    /// Gives back units of a cancelled or expired order.
    pub fn release(&self, buyer: &str, quantity: u32) {
        let remove = match self.held.get_mut(buyer) {
            Some(mut held) => {
                debug_assert!(*held >= quantity, "released more than was held");
                *held = held.saturating_sub(quantity);
                *held == 0
            }
            None => {
                debug_assert!(false, "released units of a buyer who holds none");
                false
            }
        };
        if remove {
            self.held.remove_if(buyer, |_, held| *held == 0);
        }
    }

    pub fn held(&self, buyer: &str) -> u32 {
        self.held.get(buyer).map_or(0, |held| *held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_counts_live_units_and_frees_them_on_release() {
        let limits = PerUserLimits::default();
        let alice = |key: &str| BuyerKey::new("alice", key);
        assert_eq!(limits.try_acquire(&alice("k-1"), 2, 3), Ok(()));
        assert_eq!(
            limits.try_acquire(&alice("k-2"), 2, 3),
            Err(LimitExceeded { held: 2 })
        );
        assert_eq!(limits.try_acquire(&alice("k-3"), 1, 3), Ok(()));
        assert_eq!(
            limits.try_acquire(&BuyerKey::new("bob", "k-1"), 4, 3),
            Err(LimitExceeded { held: 0 })
        );
        limits.release("alice", 3);
        assert_eq!(limits.held("alice"), 0);
        assert_eq!(limits.try_acquire(&alice("k-4"), 3, 3), Ok(()));
    }

    #[test]
    fn concurrent_orders_of_one_buyer_never_pass_the_limit() {
        let limits = std::sync::Arc::new(PerUserLimits::default());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let limits = limits.clone();
                std::thread::spawn(move || {
                    (0..100)
                        .filter(|_| {
                            let names = BuyerKey::new("carol", "k");
                            limits.try_acquire(&names, 1, 5).is_ok()
                        })
                        .count()
                })
            })
            .collect();
        let granted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(granted, 5);
        assert_eq!(limits.held("carol"), 5);
    }
}
