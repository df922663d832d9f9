//! Idempotency keys: the same buyer sending the same key twice gets the same
//! order, never a second one.
//!
//! A key is scoped to the buyer (two buyers may use the same key). The first
//! request claims the key, with its body, before it reserves anything; a
//! concurrent duplicate sees the claim and is told to retry. Once the order
//! exists the key holds only its id: the order itself says what was asked
//! for, so the engine compares a replayed body against it (one allocation
//! per key instead of a copy of every body). A claim whose reservation
//! failed is dropped so the buyer may try again. Keys are kept for the life
//! of the process: their number is bounded by the orders made.

use crate::inventory::ConcurrentMap;
use dashmap::mapref::entry::Entry;

/// What the body of an order request asked for; the key is bound to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRequest {
    pub sale_id: String,
    pub sku_id: String,
    pub quantity: u32,
}

enum Claim {
    /// Being processed: the body, to tell a duplicate from a conflict.
    InProgress(OrderRequest),
    /// Made this order.
    Bound(Box<str>),
}

#[derive(Default)]
pub struct IdempotencyKeys {
    claims: ConcurrentMap<(Box<str>, Box<str>), Claim>,
}

/// The outcome of claiming a key.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyClaim {
    /// The key is new: go on and make the order, then `bind` or `abandon`.
    Claimed,
    /// The key made this order; the caller checks the body matches it.
    Replay { order_id: String },
    /// The same key and body are being processed right now.
    InProgress,
    /// The key is being processed with a different body.
    Conflict,
}

impl IdempotencyKeys {
    pub fn with_capacity(keys: usize) -> IdempotencyKeys {
        let claims = ConcurrentMap::with_capacity_and_hasher(keys, Default::default());
        IdempotencyKeys { claims }
    }

    pub fn claim(&self, buyer: &str, key: &str, request: &OrderRequest) -> KeyClaim {
        match self.claims.entry((buyer.into(), key.into())) {
            Entry::Vacant(vacant) => {
                vacant.insert(Claim::InProgress(request.clone()));
                KeyClaim::Claimed
            }
            Entry::Occupied(occupied) => match occupied.get() {
                Claim::Bound(order_id) => KeyClaim::Replay {
                    order_id: order_id.to_string(),
                },
                Claim::InProgress(claimed) if claimed == request => KeyClaim::InProgress,
                Claim::InProgress(_) => KeyClaim::Conflict,
            },
        }
    }

    /// Binds a key to the order it made: completes a live claim, or
    /// restores the key when an event is replayed.
    pub fn bind(&self, buyer: &str, key: &str, order_id: &str) {
        self.claims
            .insert((buyer.into(), key.into()), Claim::Bound(order_id.into()));
    }

    /// Drops a claim whose order was not made, so the key can be retried.
    pub fn abandon(&self, buyer: &str, key: &str) {
        self.claims
            .remove_if(&(buyer.into(), key.into()), |_, claim| {
                matches!(claim, Claim::InProgress(_))
            });
    }

    pub fn len(&self) -> usize {
        self.claims.len()
    }

    pub fn is_empty(&self) -> bool {
        self.claims.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(quantity: u32) -> OrderRequest {
        OrderRequest {
            sale_id: "s1".into(),
            sku_id: "k1".into(),
            quantity,
        }
    }

    #[test]
    fn a_key_in_progress_tells_duplicates_from_conflicts_then_replays() {
        let keys = IdempotencyKeys::default();
        assert_eq!(keys.claim("alice", "k", &request(1)), KeyClaim::Claimed);
        assert_eq!(keys.claim("alice", "k", &request(1)), KeyClaim::InProgress);
        assert_eq!(keys.claim("alice", "k", &request(2)), KeyClaim::Conflict);
        keys.bind("alice", "k", "order-1");
        assert_eq!(
            keys.claim("alice", "k", &request(1)),
            KeyClaim::Replay {
                order_id: "order-1".into()
            }
        );
        assert_eq!(
            keys.claim("bob", "k", &request(2)),
            KeyClaim::Claimed,
            "keys are per buyer"
        );
    }

    #[test]
    fn an_abandoned_claim_can_be_retried_but_a_completed_one_stays() {
        let keys = IdempotencyKeys::default();
        assert_eq!(keys.claim("alice", "k", &request(1)), KeyClaim::Claimed);
        keys.abandon("alice", "k");
        assert_eq!(keys.claim("alice", "k", &request(1)), KeyClaim::Claimed);
        keys.bind("alice", "k", "order-1");
        keys.abandon("alice", "k");
        assert_eq!(keys.len(), 1);
    }
}
