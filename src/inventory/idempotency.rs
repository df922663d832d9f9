//! Idempotency keys: the same buyer sending the same key twice gets the same
//! order, never a second one.
//!
//! A key is scoped to the buyer (two buyers may use the same key). The first
//! request claims the key, with what its body asked for ([`Asked`]), before
//! it reserves anything; a concurrent duplicate sees the claim and is told
//! to retry. Once the order
//! exists the key holds only its id: the order itself says what was asked
//! for, so the engine compares a replayed body against it (one allocation
//! per key instead of a copy of every body). A claim whose reservation
//! failed is dropped so the buyer may try again. Keys are kept for the life
//! of the process: their number is bounded by the orders made.

use crate::inventory::prehashed::{self, PrehashedMap};
use crate::inventory::BuyerKey;
use dashmap::mapref::entry::Entry;
use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What the body of an order request names; the engine finds its item and
/// claims the key with an [`Asked`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRequest {
    pub sale_id: String,
    pub sku_id: String,
    pub quantity: u32,
}

/// Names one item of one sale for the life of the process: two items
/// never share a serial, whichever engine made them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemSerial(u64);

impl ItemSerial {
    pub fn next() -> ItemSerial {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ItemSerial(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// What an order request asked for, once the engine has found its item:
/// the same two requests ask for the same item and quantity. A claim keeps
/// this instead of a copy of the body's strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asked {
    pub item: ItemSerial,
    pub quantity: u32,
}

enum Claim {
    /// Being processed: what it asked for, to tell a duplicate from a
    /// conflict. Boxed: a million bound keys should not each reserve room
    /// for it (the map's slot stays the size of the order id's `Arc<str>`).
    InProgress(Box<Asked>),
    /// Made this order; the id is shared with the order's own record.
    Bound(Arc<str>),
}

/// A buyer's key as the map holds it: shared with the order the key made
/// ([`KeyClaim::Claimed`] hands it out), so a bound key costs no strings
/// of its own, with the pair's hash beside it ([`prehashed`]). Compared
/// as the (buyer, key) pair, so a lookup by the borrowed [`Pair`] finds it.
struct ClaimKey {
    hash: u64,
    names: BuyerKey,
}

impl ClaimKey {
    fn new(names: BuyerKey) -> ClaimKey {
        ClaimKey {
            hash: prehashed::hash_pair(names.buyer(), names.key()),
            names,
        }
    }
}

/// A (buyer, key) pair and its hash, to look a key up without making it.
struct Pair<'a> {
    hash: u64,
    buyer: &'a str,
    key: &'a str,
}

impl Pair<'_> {
    fn new<'a>(buyer: &'a str, key: &'a str) -> Pair<'a> {
        Pair {
            hash: prehashed::hash_pair(buyer, key),
            buyer,
            key,
        }
    }
}

/// What the owned and the borrowed form share, for `Borrow`.
trait KeyPair {
    fn hash_value(&self) -> u64;
    fn buyer(&self) -> &str;
    fn key(&self) -> &str;
}

impl KeyPair for ClaimKey {
    fn hash_value(&self) -> u64 {
        self.hash
    }
    fn buyer(&self) -> &str {
        self.names.buyer()
    }
    fn key(&self) -> &str {
        self.names.key()
    }
}

impl KeyPair for Pair<'_> {
    fn hash_value(&self) -> u64 {
        self.hash
    }
    fn buyer(&self) -> &str {
        self.buyer
    }
    fn key(&self) -> &str {
        self.key
    }
}

impl<'a> Borrow<dyn KeyPair + 'a> for ClaimKey {
    fn borrow(&self) -> &(dyn KeyPair + 'a) {
        self
    }
}

// One hash and one equality for the owned and the borrowed form, as
// `Borrow` requires.
impl Hash for dyn KeyPair + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        prehashed::carried(self.hash_value(), state);
    }
}

impl PartialEq for dyn KeyPair + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.hash_value() == other.hash_value()
            && self.buyer() == other.buyer()
            && self.key() == other.key()
    }
}

impl Eq for dyn KeyPair + '_ {}

impl Hash for ClaimKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self as &dyn KeyPair).hash(state);
    }
}

impl PartialEq for ClaimKey {
    fn eq(&self, other: &Self) -> bool {
        (self as &dyn KeyPair) == (other as &dyn KeyPair)
    }
}

impl Eq for ClaimKey {}

#[derive(Default)]
pub struct IdempotencyKeys {
    claims: PrehashedMap<ClaimKey, Claim>,
}

/// The outcome of claiming a key.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyClaim {
    /// The key is new: go on and make the order, then `bind` or
    /// `abandon`. The buyer and key as the claim holds them, for the order
    /// (and the buyer's count) to share.
    Claimed(BuyerKey),
    /// The key made this order; the caller checks the body matches it.
    Replay { order_id: Arc<str> },
    /// The same key and body are being processed right now.
    InProgress,
    /// The key is being processed with a different body.
    Conflict,
}

impl IdempotencyKeys {
    pub fn with_capacity(keys: usize) -> IdempotencyKeys {
        let claims = PrehashedMap::with_capacity_and_hasher(keys, Default::default());
        IdempotencyKeys { claims }
    }

    pub fn claim(&self, buyer: &str, key: &str, asked: Asked) -> KeyClaim {
        // One lookup: a new key (nearly every request of a burst) is
        // entered by it, and `entry` decides between two racing claims. A
        // retry pays for the owned key it did not need.
        match self.claims.entry(ClaimKey::new(BuyerKey::new(buyer, key))) {
            Entry::Vacant(vacant) => {
                let shared = vacant.key().names.clone();
                vacant.insert(Claim::InProgress(Box::new(asked)));
                KeyClaim::Claimed(shared)
            }
            Entry::Occupied(occupied) => match occupied.get() {
                Claim::Bound(order_id) => KeyClaim::Replay {
                    order_id: Arc::clone(order_id),
                },
                Claim::InProgress(claimed) if **claimed == asked => KeyClaim::InProgress,
                Claim::InProgress(_) => KeyClaim::Conflict,
            },
        }
    }

    /// Binds a key to the order it made: completes a live claim, or
    /// restores the key when an event is replayed. Only once the order can
    /// be read: a retry that finds the binding looks the order up.
    pub fn bind(&self, names: &BuyerKey, order_id: &Arc<str>) {
        let bound = Claim::Bound(Arc::clone(order_id));
        let pair = Pair::new(names.buyer(), names.key());
        if let Some(mut claim) = self.claims.get_mut(&pair as &dyn KeyPair) {
            *claim = bound;
            return;
        }
        self.claims.insert(ClaimKey::new(names.clone()), bound);
    }

    /// Replay: binds a journaled order's key with one lookup. Nobody
    /// claims keys while the journal replays; a key bound before (a log
    /// that reused one) is rebound to the later order, as [`Self::bind`] does.
    pub fn bind_replayed(&self, names: BuyerKey, order_id: Arc<str>) {
        self.claims
            .insert(ClaimKey::new(names), Claim::Bound(order_id));
    }

    /// True when the key is claimed or bound.
    pub fn contains(&self, buyer: &str, key: &str) -> bool {
        self.claims
            .contains_key(&Pair::new(buyer, key) as &dyn KeyPair)
    }

    /// Drops a claim whose order was not made, so the key can be retried.
    pub fn abandon(&self, buyer: &str, key: &str) {
        self.claims
            .remove_if(&Pair::new(buyer, key) as &dyn KeyPair, |_, claim| {
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
#[path = "idempotency_tests.rs"]
mod tests;
