//! Map keys that carry their own hash, for the tables that grow to
//! millions of entries during a sale (idempotency keys, buyers' counts).
//!
//! A hash table grows by doubling, and growing hashes every key again.
//! When the key is a pointer to a string (a buyer and their key), that is
//! a cache miss per key, one after another, under the shard's write lock:
//! in a `flash` burst `perf` put the growing of these tables and the
//! order table at 8.5% of the HTTP threads' samples, as much as the
//! inserts themselves (docs/PROFILE.md). Here a slot keeps the key's hash
//! beside the pointer, computed once with a key kept per process, and the
//! map's hasher ([`PassThrough`]) hands that number on: growing reads the
//! old slots in order and follows no pointer.
//!
//! A key type for these maps hashes as exactly one `write_u64` of its
//! carried hash (see [`carried`]); a lookup by a borrowed form carries the
//! same number, made by the same function ([`hash_buyer`], [`hash_pair`]).

use std::hash::{BuildHasher, Hasher};
use std::sync::LazyLock;

/// A `DashMap` whose keys carry their hash.
pub type PrehashedMap<K, V> = dashmap::DashMap<K, V, PassThrough>;

/// aHash keyed once per process: a buyer who does not know the key
/// cannot aim many names at one slot.
static KEYED: LazyLock<ahash::RandomState> = LazyLock::new(ahash::RandomState::new);

/// The hash a buyer's entries carry.
pub fn hash_buyer(buyer: &str) -> u64 {
    KEYED.hash_one(buyer)
}

/// The hash a (buyer, key) pair's entries carry. The two strings are
/// hashed apart (each with its length's end mark), so `("ab", "c")` and
/// `("a", "bc")` are different inputs.
pub fn hash_pair(buyer: &str, key: &str) -> u64 {
    KEYED.hash_one((buyer, key))
}

/// How a key of these maps hashes: its carried number, once.
pub fn carried<H: Hasher>(hash: u64, state: &mut H) {
    state.write_u64(hash);
}

/// Builds [`Carrier`]s: the map's hash of a key is the number the key
/// carries.
#[derive(Clone, Copy, Debug, Default)]
pub struct PassThrough;

impl BuildHasher for PassThrough {
    type Hasher = Carrier;

    fn build_hasher(&self) -> Carrier {
        Carrier(0)
    }
}

/// Hands on the `u64` written to it. Keys written any other way are still
/// hashed (FNV-1a over their bytes), but without a per-process key: they
/// do not belong in these maps, and debug builds say so.
#[derive(Debug)]
pub struct Carrier(u64);

impl Hasher for Carrier {
    fn write(&mut self, bytes: &[u8]) {
        debug_assert!(false, "a key of a prehashed map wrote bytes, not its hash");
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let mut hash = self.0 ^ 0xcbf2_9ce4_8422_2325;
        for &byte in bytes {
            hash = (hash ^ u64::from(byte)).wrapping_mul(PRIME);
        }
        self.0 = hash;
    }

    fn write_u64(&mut self, n: u64) {
        // One write (every key here) passes `n` through unchanged.
        self.0 = self.0.rotate_left(29) ^ n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A key written once, for the tests of the maps built on this.
#[cfg(test)]
pub fn hash_of(key: &(impl std::hash::Hash + ?Sized)) -> u64 {
    PassThrough.hash_one(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hash;

    struct Carried(u64);

    impl Hash for Carried {
        fn hash<H: Hasher>(&self, state: &mut H) {
            carried(self.0, state);
        }
    }

    #[test]
    fn a_carried_hash_is_the_map_s_hash() {
        for hash in [0, 1, 0x8000_0000_0000_0000, u64::MAX, hash_buyer("alice")] {
            assert_eq!(hash_of(&Carried(hash)), hash);
        }
    }

    #[test]
    fn buyers_and_pairs_hash_apart() {
        assert_eq!(hash_buyer("alice"), hash_buyer("alice"));
        assert_ne!(hash_buyer("alice"), hash_buyer("alicf"));
        assert_eq!(hash_pair("alice", "k"), hash_pair("alice", "k"));
        assert_ne!(hash_pair("ab", "c"), hash_pair("a", "bc"));
        assert_ne!(hash_pair("alice", "k"), hash_pair("bob", "k"));
        assert_ne!(hash_pair("alice", "k1"), hash_pair("alice", "k2"));
    }
}
