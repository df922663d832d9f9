//! Idempotency keys: the same buyer sending the same key twice gets the same
//! order, never a second one.
//!
//! A key is scoped to the buyer (two buyers may use the same key). The first
//! request claims the key before it reserves anything; a concurrent duplicate
//! sees the claim and is told to retry, a later one sees the finished order.
//! A claim whose reservation failed is dropped so the buyer may try again.
//! Keys are kept for the life of the process: their number is bounded by the
//! orders made, which the stock bounds.

use crate::inventory::ConcurrentMap;
use dashmap::mapref::entry::Entry;

/// What the body of an order request asked for; the key is bound to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRequest {
    pub sale_id: String,
    pub sku_id: String,
    pub quantity: u32,
}

struct Claim {
    request: OrderRequest,
    order_id: Option<String>,
}

#[derive(Default)]
pub struct IdempotencyKeys {
    claims: ConcurrentMap<(Box<str>, Box<str>), Claim>,
}

/// The outcome of claiming a key.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyClaim {
    /// The key is new: go on and make the order, then `bind` it to the order or `abandon` it.
    Claimed,
    /// The same key and body already made this order.
    Replay { order_id: String },
    /// The same key and body are being processed right now.
    InProgress,
    /// The key was used with a different body.
    Conflict,
}

impl IdempotencyKeys {
    pub fn claim(&self, buyer: &str, key: &str, request: &OrderRequest) -> KeyClaim {
        match self.claims.entry((buyer.into(), key.into())) {
            Entry::Vacant(vacant) => {
                vacant.insert(Claim {
                    request: request.clone(),
                    order_id: None,
                });
                KeyClaim::Claimed
            }
            Entry::Occupied(occupied) => {
                let claim = occupied.get();
                if claim.request != *request {
                    return KeyClaim::Conflict;
                }
                match &claim.order_id {
                    Some(order_id) => KeyClaim::Replay {
                        order_id: order_id.clone(),
                    },
                    None => KeyClaim::InProgress,
                }
            }
        }
    }

    /// Binds a key to the order it made: completes a live claim, or
    /// restores the key when an event is replayed.
    pub fn bind(&self, buyer: &str, key: &str, request: OrderRequest, order_id: &str) {
        self.claims.insert(
            (buyer.into(), key.into()),
            Claim {
                request,
                order_id: Some(order_id.to_owned()),
            },
        );
    }

    /// Drops a claim whose order was not made, so the key can be retried.
    pub fn abandon(&self, buyer: &str, key: &str) {
        self.claims
            .remove_if(&(buyer.into(), key.into()), |_, claim| {
                claim.order_id.is_none()
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
    fn same_key_same_body_replays_and_other_body_conflicts() {
        let keys = IdempotencyKeys::default();
        assert_eq!(keys.claim("alice", "k", &request(1)), KeyClaim::Claimed);
        assert_eq!(keys.claim("alice", "k", &request(1)), KeyClaim::InProgress);
        keys.bind("alice", "k", request(1), "order-1");
        assert_eq!(
            keys.claim("alice", "k", &request(1)),
            KeyClaim::Replay {
                order_id: "order-1".into()
            }
        );
        assert_eq!(keys.claim("alice", "k", &request(2)), KeyClaim::Conflict);
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
        keys.bind("alice", "k", request(1), "order-1");
        keys.abandon("alice", "k");
        assert_eq!(keys.len(), 1);
    }
}
