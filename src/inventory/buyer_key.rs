//! A buyer and one of their idempotency keys, kept as one string.
//!
//! Every order holds its buyer and its key, and so do the idempotency map
//! (the key's binding) and the item's per-buyer counts (the buyer). A
//! million open holds made two allocations of each pair (the buyer's with
//! its own header and malloc's rounding, the key's the same) and two fat
//! pointers in each map entry; one shared allocation and one pointer do.

use crate::ids::decimal_digits;
use crate::inventory::prehashed;
use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// `"<key length>:<key><buyer>"`: the length in decimal digits, so any
/// key and any buyer fit, and neither part needs a separator it cannot
/// contain (a replayed journal is not trusted to keep live rules).
#[derive(Clone, PartialEq, Eq)]
pub struct BuyerKey(Arc<str>);

impl BuyerKey {
    pub fn new(buyer: &str, key: &str) -> BuyerKey {
        let mut digits = [0u8; 20];
        let start = decimal_digits(key.len() as u64, &mut digits);
        let digits = &digits[start..];
        let parts: [&[u8]; 4] = [digits, b":", key.as_bytes(), buyer.as_bytes()];
        let length: usize = parts.iter().map(|part| part.len()).sum();
        // Made on the stack and copied once into the shared allocation;
        // an unusually long pair goes through a `String`.
        let mut on_stack = [0u8; 160];
        if length <= on_stack.len() {
            let mut at = 0;
            for part in parts {
                on_stack[at..at + part.len()].copy_from_slice(part);
                at += part.len();
            }
            let text = std::str::from_utf8(&on_stack[..length]).expect("two strs and digits");
            return BuyerKey(Arc::from(text));
        }
        BuyerKey(format!("{}:{key}{buyer}", key.len()).into())
    }

    /// Where the key starts and ends in the text.
    fn key_range(&self) -> (usize, usize) {
        let text = self.0.as_bytes();
        let mut length = 0usize;
        let mut at = 0;
        while text[at] != b':' {
            length = length * 10 + usize::from(text[at] - b'0');
            at += 1;
        }
        (at + 1, at + 1 + length)
    }

    pub fn buyer(&self) -> &str {
        &self.0[self.key_range().1..]
    }

    pub fn key(&self) -> &str {
        let (start, end) = self.key_range();
        &self.0[start..end]
    }

    /// True when both are the same allocation (for tests of sharing).
    pub fn shares(&self, other: &BuyerKey) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for BuyerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuyerKey")
            .field("buyer", &self.buyer())
            .field("key", &self.key())
            .finish()
    }
}

/// A [`BuyerKey`] that counts as its buyer alone, with the buyer's hash
/// beside it ([`prehashed`]): hashed, compared and looked up (by a
/// [`Buyer`]) by the buyer, for the per-buyer counts.
#[derive(Clone)]
pub struct BuyerOf {
    hash: u64,
    names: BuyerKey,
}

impl BuyerOf {
    pub fn new(names: BuyerKey) -> BuyerOf {
        BuyerOf {
            hash: prehashed::hash_buyer(names.buyer()),
            names,
        }
    }
}

/// A buyer and their hash, to look their count up without a [`BuyerKey`].
pub struct Buyer<'a> {
    hash: u64,
    name: &'a str,
}

impl Buyer<'_> {
    pub fn new(name: &str) -> Buyer<'_> {
        Buyer {
            hash: prehashed::hash_buyer(name),
            name,
        }
    }
}

/// What [`BuyerOf`] and [`Buyer`] share, for `Borrow`.
pub trait BuyerName {
    fn hash_value(&self) -> u64;
    fn name(&self) -> &str;
}

impl BuyerName for BuyerOf {
    fn hash_value(&self) -> u64 {
        self.hash
    }
    fn name(&self) -> &str {
        self.names.buyer()
    }
}

impl BuyerName for Buyer<'_> {
    fn hash_value(&self) -> u64 {
        self.hash
    }
    fn name(&self) -> &str {
        self.name
    }
}

impl<'a> Borrow<dyn BuyerName + 'a> for BuyerOf {
    fn borrow(&self) -> &(dyn BuyerName + 'a) {
        self
    }
}

impl Hash for dyn BuyerName + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        prehashed::carried(self.hash_value(), state);
    }
}

impl PartialEq for dyn BuyerName + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.hash_value() == other.hash_value() && self.name() == other.name()
    }
}

impl Eq for dyn BuyerName + '_ {}

impl Hash for BuyerOf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self as &dyn BuyerName).hash(state);
    }
}

impl PartialEq for BuyerOf {
    fn eq(&self, other: &Self) -> bool {
        (self as &dyn BuyerName) == (other as &dyn BuyerName)
    }
}

impl Eq for BuyerOf {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn both_parts_come_back_whatever_they_hold() {
        for (buyer, key) in [
            ("alice", "k-1"),
            ("o_lt_5f3a9c1e_t_000000001", "5f3a9c1e-t0-000000001"),
            ("", ""),
            ("12:ab", "3:x"),
            ("bu\"yer\\\u{e9}", &"k".repeat(130)),
            (&"b".repeat(100), &"k".repeat(100)),
            // 160 bytes in all, the stack buffer's size, then one more.
            (&"b".repeat(147), &"k".repeat(10)),
            (&"b".repeat(148), &"k".repeat(10)),
        ] {
            let both = BuyerKey::new(buyer, key);
            assert_eq!((both.buyer(), both.key()), (buyer, key));
        }
        // The split is part of the identity.
        assert_ne!(BuyerKey::new("ali", "cek"), BuyerKey::new("alicek", ""));
        assert_ne!(BuyerKey::new("a", "bc"), BuyerKey::new("ab", "c"));
    }

    #[test]
    fn as_a_buyer_it_is_found_by_the_buyer_whatever_the_key() {
        let mut counts = HashMap::with_hasher(prehashed::PassThrough);
        counts.insert(BuyerOf::new(BuyerKey::new("alice", "k-1")), 1);
        let count = |name| counts.get(&Buyer::new(name) as &dyn BuyerName).copied();
        assert_eq!(count("alice"), Some(1));
        assert_eq!(count("alic"), None);
        *counts
            .entry(BuyerOf::new(BuyerKey::new("alice", "k-2")))
            .or_insert(0) += 1;
        assert_eq!(counts.len(), 1);
        assert_eq!(counts.get(&Buyer::new("alice") as &dyn BuyerName), Some(&2));
    }
}
