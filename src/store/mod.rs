//! The durable store: the queryable copy of the journal, in SQLite or
//! PostgreSQL.
//!
//! The journal is the source of truth: the engine appends an [`Event`] there
//! before acknowledging, and replays the journal on start. What the journal
//! cannot do is answer questions ("every paid order of this sale", "this
//! buyer's orders", "yesterday's payments and refunds" for reconciliation
//! with WeChat Pay's bills) without a full replay. This module owns the
//! tables that can: `sales`, `sale_items`, `orders` (with their payment and
//! refund columns), `order_events`, a cluster node's `leases`, and the
//! `journal_positions` that say how far into each node's journal they are.
//!
//! Several cluster nodes may share one PostgreSQL store, each feeding it
//! from its own journal under its node id ([`Store::open_as`]; a node alone
//! uses [`LOCAL_NODE`]): positions, orders and leases are per node, and the
//! sale every node journals alike is stored once (`apply.rs` says how its
//! creations and transitions merge).
//!
//! It is fed asynchronously, off the order path, in batches of `(seq, Event)`
//! in seq order, on its own thread (both clients are blocking). Every batch
//! is one transaction that applies its events **and** records the batch's
//! last seq as the position, so after a crash the tables and the position
//! agree: a restart resumes from [`Store::applied_position`] (the node's
//! own) and neither loses nor doubles a record.
//!
//! Applying is idempotent, so the feeder may safely resend after an error
//! or a restart. Records with `seq ≤ position` are skipped inside the
//! transaction (the node's position row is locked first, so two writers of
//! one node cannot both pass that check); this matters for the changes that
//! add (a restock to the stock, a lease to the node's grants or returns).
//! The writes themselves are keyed too:
//! creations insert only if absent (a sale, an item and an order are
//! immutable once created; their status and stock move only through later
//! events, which a replayed creation must not reset) and history rows are
//! keyed by `(order_id, seq)` with `ON CONFLICT DO NOTHING`. (A creation
//! of an existing id *above* the node's position is refused: the engine
//! never journals one, so it means divergence; a sale another node created
//! with the same spec is not.)
//!
//! State changes go through the same transition tables as the engine
//! ([`SaleStatus::next`], [`OrderStatus::next`]); a record the tables refuse
//! means the copy diverged from the journal, and the whole batch fails with
//! [`StoreError::Inconsistent`] rather than storing a guess.

mod apply;
pub mod feeder;
mod postgres;
mod rows;
mod sqlite;

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

pub use self::postgres::PostgresStore;
pub use self::rows::{
    ItemRow, LeaseRow, OrderEventRow, OrderRow, SaleRow, StoredPayment, StoredRefund,
};
pub use self::sqlite::SqliteStore;

use crate::clock::UnixMs;
use crate::sale::{Event, SaleStatus};
use std::path::PathBuf;
use std::time::Duration;

/// Where the store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// An SQLite database file, created if absent.
    Sqlite { path: PathBuf },
    /// A PostgreSQL URL such as `postgres://postgres@127.0.0.1:5432/flashgate`.
    /// A URL without `connect_timeout` gets [`CONNECT_TIMEOUT`].
    Postgres { url: String },
}

/// The connect timeout used when the PostgreSQL URL sets none, so an absent
/// server fails fast instead of hanging the store thread.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open SQLite database {path}: {source}")]
    SqliteOpen {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("invalid PostgreSQL URL: {0}")]
    PostgresUrl(#[source] ::postgres::Error),
    #[error("PostgreSQL not reachable at {target}: {source}")]
    PostgresConnect {
        target: String,
        #[source]
        source: ::postgres::Error,
    },
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] ::postgres::Error),
    /// The batch is not in strictly increasing seq order.
    #[error("batch out of order: seq {seq} follows seq {previous}")]
    BatchOrder { previous: u64, seq: u64 },
    /// A record does not fit what the store holds: the copy and the journal
    /// disagree. The batch is rolled back.
    #[error("record {seq}: {reason}")]
    Inconsistent { seq: u64, reason: String },
    /// A stored value does not parse (a status, an amount, a negative count).
    #[error("stored {column} is malformed: {value:?}")]
    Corrupt { column: &'static str, value: String },
    /// seq is stored in a signed 64-bit column.
    #[error("seq {0} does not fit a BIGINT column")]
    SeqTooLarge(u64),
}

/// The store, on one of its two backends. Every method takes `&mut self`:
/// one connection, used from the store's own thread.
#[derive(Debug)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

/// The node key of a node alone (no `[cluster]`): its journal position
/// and orders are recorded under it.
pub const LOCAL_NODE: &str = "";

impl Store {
    /// Opens (creating if needed) the store of a node alone and applies
    /// pending migrations.
    pub fn open(config: &StoreConfig) -> Result<Store, StoreError> {
        Store::open_as(config, LOCAL_NODE)
    }

    /// Opens the store to apply `node_id`'s journal (`cluster.node_id`;
    /// [`LOCAL_NODE`] for a node alone): its position, orders and leases
    /// are recorded under that id.
    pub fn open_as(config: &StoreConfig, node_id: &str) -> Result<Store, StoreError> {
        match config {
            StoreConfig::Sqlite { path } => SqliteStore::open(path, node_id).map(Store::Sqlite),
            StoreConfig::Postgres { url } => PostgresStore::open(url, node_id).map(Store::Postgres),
        }
    }

    /// The seq of this node's last journal record applied; 0 when fresh.
    pub fn applied_position(&mut self) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(store) => store.applied_position(),
            Store::Postgres(store) => store.applied_position(),
        }
    }

    /// Every node's applied position, by node id.
    pub fn positions(&mut self) -> Result<Vec<(String, u64)>, StoreError> {
        match self {
            Store::Sqlite(store) => store.positions(),
            Store::Postgres(store) => store.positions(),
        }
    }

    /// Applies this node's `batch` (strictly increasing seq) in one
    /// transaction and records its last seq as the node's position. Records
    /// at or below that position are skipped, so a resent batch changes
    /// nothing.
    pub fn apply_batch(&mut self, batch: &[(u64, Event)]) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(store) => store.apply_batch(batch),
            Store::Postgres(store) => store.apply_batch(batch),
        }
    }

    /// What each node leased of the sale's items, by sku_id then node.
    pub fn leases(&mut self, sale_id: &str) -> Result<Vec<LeaseRow>, StoreError> {
        match self {
            Store::Sqlite(store) => store.leases(sale_id),
            Store::Postgres(store) => store.leases(sale_id),
        }
    }

    /// Each node's own view of the sale's status (the `sale_created` and
    /// transitions of its journal), by node id.
    pub fn node_sale_statuses(
        &mut self,
        sale_id: &str,
    ) -> Result<Vec<(String, SaleStatus)>, StoreError> {
        match self {
            Store::Sqlite(store) => store.node_sale_statuses(sale_id),
            Store::Postgres(store) => store.node_sale_statuses(sale_id),
        }
    }

    pub fn sale(&mut self, sale_id: &str) -> Result<Option<SaleRow>, StoreError> {
        match self {
            Store::Sqlite(store) => store.sale(sale_id),
            Store::Postgres(store) => store.sale(sale_id),
        }
    }

    /// The sale's items, by sku_id.
    pub fn sale_items(&mut self, sale_id: &str) -> Result<Vec<ItemRow>, StoreError> {
        match self {
            Store::Sqlite(store) => store.sale_items(sale_id),
            Store::Postgres(store) => store.sale_items(sale_id),
        }
    }

    pub fn order(&mut self, order_id: &str) -> Result<Option<OrderRow>, StoreError> {
        match self {
            Store::Sqlite(store) => store.order(order_id),
            Store::Postgres(store) => store.order(order_id),
        }
    }

    /// The order's status history, by seq.
    pub fn order_events(&mut self, order_id: &str) -> Result<Vec<OrderEventRow>, StoreError> {
        match self {
            Store::Sqlite(store) => store.order_events(order_id),
            Store::Postgres(store) => store.order_events(order_id),
        }
    }

    /// Payments whose WeChat Pay time is in `[from, to)`, by that time, with
    /// their order's status now (refunded ones included: WeChat Pay's trade
    /// bill lists them too). As many as the window holds: pick the window.
    pub fn paid_orders_between(
        &mut self,
        from: UnixMs,
        to: UnixMs,
    ) -> Result<Vec<StoredPayment>, StoreError> {
        match self {
            Store::Sqlite(store) => store.paid_orders_between(from, to),
            Store::Postgres(store) => store.paid_orders_between(from, to),
        }
    }

    /// Refunds asked for in `[from, to)` (the time of the refund's event),
    /// by that time, done or not.
    pub fn refunds_requested_between(
        &mut self,
        from: UnixMs,
        to: UnixMs,
    ) -> Result<Vec<StoredRefund>, StoreError> {
        match self {
            Store::Sqlite(store) => store.refunds_requested_between(from, to),
            Store::Postgres(store) => store.refunds_requested_between(from, to),
        }
    }
}
