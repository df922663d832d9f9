//! The engine's orders: a sharded hash table of boxed records, found by
//! their id.
//!
//! A `DashMap<Arc<str>, Box<OrderRecord>>` slot held the id's fat pointer
//! beside the box, 24 bytes, in a table that runs 44–88% full. The record
//! holds its id already, so a slot here is the box and the id's hash (16
//! bytes): growing a shard rehashes from the slots, in order, instead of
//! following each box and then its id (two cache misses per order, under
//! the shard's write lock; see `inventory::prehashed`). Otherwise the same
//! shape: a lock per shard, held for one lookup or one change to one
//! order; no lock shared by all requests.

use crate::sale::views::OrderRecord;
use hashbrown::HashTable;
use parking_lot::{
    MappedRwLockReadGuard, MappedRwLockWriteGuard, RwLock, RwLockReadGuard, RwLockWriteGuard,
};

/// An order, read-locked: its shard's writers wait until it is dropped.
pub type OrderRef<'a> = MappedRwLockReadGuard<'a, OrderRecord>;
/// An order, locked for a change: nobody else reads or moves it meanwhile.
pub type OrderRefMut<'a> = MappedRwLockWriteGuard<'a, OrderRecord>;

/// An order and the hash of its id.
struct Slot {
    hash: u64,
    order: Box<OrderRecord>,
}

type Shard = RwLock<HashTable<Slot>>;

pub struct OrderTable {
    shards: Box<[Shard]>,
    /// `64 - log2(shards)`: a shard is picked by the hash's bits below the
    /// seven the table itself uses for its control bytes.
    shift: u32,
    /// aHash, keyed per process (see `inventory::ConcurrentMap`).
    hasher: ahash::RandomState,
}

impl Default for OrderTable {
    fn default() -> OrderTable {
        OrderTable::with_capacity(0)
    }
}

impl OrderTable {
    /// Room for `orders` orders before any shard grows.
    pub fn with_capacity(orders: usize) -> OrderTable {
        // As many shards as DashMap takes by default: four per core.
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let count = (cores * 4).next_power_of_two();
        let shards = (0..count)
            .map(|_| RwLock::new(HashTable::with_capacity(orders.div_ceil(count))))
            .collect();
        OrderTable {
            shards,
            shift: 64 - count.trailing_zeros(),
            hasher: ahash::RandomState::new(),
        }
    }

    fn hash(&self, order_id: &str) -> u64 {
        self.hasher.hash_one(order_id)
    }

    fn shard(&self, hash: u64) -> &Shard {
        if self.shards.len() == 1 {
            return &self.shards[0];
        }
        &self.shards[((hash << 7) >> self.shift) as usize]
    }

    pub fn get(&self, order_id: &str) -> Option<OrderRef<'_>> {
        let hash = self.hash(order_id);
        let table = self.shard(hash).read();
        RwLockReadGuard::try_map(table, |table| {
            table
                .find(hash, |slot| {
                    slot.hash == hash && &*slot.order.order_id == order_id
                })
                .map(|slot| &*slot.order)
        })
        .ok()
    }

    pub fn get_mut(&self, order_id: &str) -> Option<OrderRefMut<'_>> {
        let hash = self.hash(order_id);
        let table = self.shard(hash).write();
        RwLockWriteGuard::try_map(table, |table| {
            table
                .find_mut(hash, |slot| {
                    slot.hash == hash && &*slot.order.order_id == order_id
                })
                .map(|slot| &mut *slot.order)
        })
        .ok()
    }

    /// Puts the order in, in place of any order with its id.
    pub fn insert(&self, order: Box<OrderRecord>) {
        let hash = self.hash(&order.order_id);
        let mut table = self.shard(hash).write();
        let found = table.find_mut(hash, |slot| {
            slot.hash == hash && slot.order.order_id == order.order_id
        });
        match found {
            Some(slot) => slot.order = order,
            None => {
                table.insert_unique(hash, Slot { hash, order }, |slot| slot.hash);
            }
        }
    }

    /// The place of an order not yet in the table, its shard locked until
    /// [`VacantOrder::insert`] or the drop; `None` when the id is taken.
    pub fn vacant(&self, order_id: &str) -> Option<VacantOrder<'_>> {
        let hash = self.hash(order_id);
        let table = self.shard(hash).write();
        if table
            .find(hash, |slot| {
                slot.hash == hash && &*slot.order.order_id == order_id
            })
            .is_some()
        {
            return None;
        }
        Some(VacantOrder {
            table,
            hash,
            hasher: &self.hasher,
        })
    }

    /// `f` of every order, a shard at a time (each read-locked meanwhile).
    pub fn map_all<T>(&self, mut f: impl FnMut(&OrderRecord) -> T) -> Vec<T> {
        let mut all = Vec::with_capacity(self.len());
        for shard in self.shards.iter() {
            all.extend(shard.read().iter().map(|slot| f(&slot.order)));
        }
        all
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.read().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|shard| shard.read().is_empty())
    }
}

/// See [`OrderTable::vacant`].
pub struct VacantOrder<'a> {
    table: RwLockWriteGuard<'a, HashTable<Slot>>,
    hash: u64,
    hasher: &'a ahash::RandomState,
}

impl VacantOrder<'_> {
    /// Puts in the order whose id this place was asked for.
    pub fn insert(mut self, order: Box<OrderRecord>) {
        debug_assert_eq!(self.hasher.hash_one(&*order.order_id), self.hash);
        let hash = self.hash;
        self.table
            .insert_unique(hash, Slot { hash, order }, |slot| slot.hash);
    }
}

#[cfg(test)]
#[path = "order_table_tests.rs"]
mod tests;
