//! Per-buyer purchase limits of one sale item.
//!
//! A `DashMap` from buyer to units held; the check and the increment happen
//! under one shard lock, so two concurrent orders from the same buyer cannot
//! both squeeze under the limit. Units come back when an order is cancelled
//! or expires, so the limit counts live (reserved, paying, paid) orders.

use crate::inventory::buyer_key::{Buyer, BuyerName};
use crate::inventory::prehashed::PrehashedMap;
use crate::inventory::{BuyerKey, BuyerOf};
use dashmap::mapref::entry::Entry;

#[derive(Default)]
pub struct PerUserLimits {
    /// Keyed by the buyer as the first of their orders holds it (with
    /// that order's key, which the map ignores), so a count costs no
    /// string of its own.
    held: PrehashedMap<BuyerOf, u32>,
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
        // One lookup: in a burst nearly every buyer is new. A buyer with a
        // count already drops the reference it did not need.
        match self.held.entry(BuyerOf::new(names.clone())) {
            Entry::Occupied(mut occupied) => {
                let held = occupied.get_mut();
                if held.checked_add(quantity).is_none_or(|total| total > limit) {
                    return Err(LimitExceeded { held: *held });
                }
                *held += quantity;
                Ok(())
            }
            Entry::Vacant(_) if quantity > limit => Err(LimitExceeded { held: 0 }),
            Entry::Vacant(vacant) => {
                vacant.insert(quantity);
                Ok(())
            }
        }
    }

    /// Replay: adds the units of a journaled order, whatever the limit (it
    /// was checked live), with one lookup and the order's own buyer string.
    /// A count that would overflow stays as it is, as `try_acquire` leaves it.
    pub fn acquire_replayed(&self, names: &BuyerKey, quantity: u32) {
        let mut held = self.held.entry(BuyerOf::new(names.clone())).or_insert(0);
        if let Some(total) = held.checked_add(quantity) {
            *held = total;
        }
    }

    /// Gives back units of a cancelled or expired order.
    pub fn release(&self, buyer: &str, quantity: u32) {
        let buyer = Buyer::new(buyer);
        let buyer = &buyer as &dyn BuyerName;
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
        self.held
            .get(&Buyer::new(buyer) as &dyn BuyerName)
            .map_or(0, |held| *held)
    }
}

#[cfg(test)]
#[path = "limits_tests.rs"]
mod tests;
