//! The sale domain: sales and their items, orders, holds, and the engine
//! that applies every change as an [`Event`].
//!
//! Pure: no I/O and no clock reads (every method takes `now`), so the same
//! code serves live requests and journal replay, and tests drive time.

mod apply;
pub mod engine;
pub mod event;
pub mod holds;
pub mod lifecycle;
pub mod order;
pub mod order_table;
pub mod payment;
pub mod replay;
pub mod snapshot;
#[cfg(test)]
pub(crate) mod test_support;
pub mod views;

pub use engine::{BuyerCountWatch, Engine, EngineLimits, ExpiryBatch, PlaceOrder, Placed};
pub use event::{Event, ItemSpec, Reservation, SaleSpec};
pub use lifecycle::{SaleAction, SaleStatus};
pub use order::{OrderAction, OrderStatus};
pub use payment::{
    LatePayment, Payable, PaymentOutcome, PaymentReceived, Prepay, RefundOrder, RefundReason,
};

use crate::clock::UnixMs;
use crate::inventory::{ItemSerial, ItemStock, PerUserLimits};
use crate::journal::Commit;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

/// Why the engine refused; `http` maps each to one API error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaleError {
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{0} not found")]
    NotFound(String),
    #[error("sale is {status}, not live")]
    SaleNotLive { status: &'static str },
    #[error("sold out")]
    SoldOut,
    #[error("not enough stock left for quantity {quantity}")]
    InsufficientStock { quantity: u32 },
    #[error("per-user limit of {limit} reached: you already hold {held}")]
    LimitExceeded { limit: u32, held: u32 },
    #[error("{0}")]
    InvalidState(String),
    #[error("Idempotency-Key was already used with a different request body")]
    IdempotencyConflict,
    #[error("a request with this Idempotency-Key is still in progress; retry shortly")]
    IdempotencyInProgress,
    #[error("{0}")]
    CapacityReached(String),
    /// A payment that does not fit its order (another amount, a second
    /// transaction): nothing changed; it needs a look, not a retry.
    #[error("payment does not match the order: {0}")]
    PaymentMismatch(String),
    #[error("event cannot be replayed: {0}")]
    Replay(String),
}

pub fn invalid(field: &str, message: impl Into<String>) -> SaleError {
    SaleError::Invalid {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Where the engine hands each live event, before its effect is visible.
/// The journal is the real one; [`Unjournaled`] serves tests and tools.
pub trait EventSink: Send + Sync {
    /// Queues the event; the [`Commit`] resolves when it is durable.
    fn submit(&self, event: &Event) -> Commit;
    /// Queues a new order's event; a sink that writes bytes encodes it
    /// without making the owned [`Event`] first (every order comes here).
    fn submit_reserved(&self, reservation: &Reservation<'_>) -> Commit {
        self.submit(&reservation.to_event())
    }
    /// Resolves when everything submitted before it is durable.
    fn barrier(&self) -> Commit;
}

/// A sink that keeps nothing: every commit is ready at once.
pub struct Unjournaled;

impl EventSink for Unjournaled {
    fn submit(&self, _event: &Event) -> Commit {
        Commit::Ready(Ok(0))
    }

    fn barrier(&self) -> Commit {
        Commit::Ready(Ok(0))
    }
}

/// Reasons an order is refused, counted per sale for the stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    SoldOut,
    InsufficientStock,
    Limit,
    NotLive,
}

impl RejectReason {
    pub const ALL: [RejectReason; 4] = [
        RejectReason::SoldOut,
        RejectReason::InsufficientStock,
        RejectReason::Limit,
        RejectReason::NotLive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::SoldOut => "sold_out",
            RejectReason::InsufficientStock => "insufficient_stock",
            RejectReason::Limit => "limit",
            RejectReason::NotLive => "not_live",
        }
    }

    pub fn of(error: &SaleError) -> Option<RejectReason> {
        match error {
            SaleError::SoldOut => Some(RejectReason::SoldOut),
            SaleError::InsufficientStock { .. } => Some(RejectReason::InsufficientStock),
            SaleError::LimitExceeded { .. } => Some(RejectReason::Limit),
            SaleError::SaleNotLive { .. } => Some(RejectReason::NotLive),
            _ => None,
        }
    }
}

/// A sale in memory: its definition, its life-cycle state and its items.
pub struct Sale {
    pub spec: SaleSpec,
    pub created_at: UnixMs,
    /// Mirrors the life-cycle state for the lock-free order path.
    status: AtomicU8,
    /// Serialises host actions on this sale (start, pause, end); never taken
    /// on the order path.
    transitions: Mutex<()>,
    pub items: Box<[Item]>,
    pub counters: SaleCounters,
    /// A cluster node's sale: its items hold the node's lease, so an empty
    /// item says nothing about the sale being sold out.
    pub stock_from_leases: bool,
}

pub struct Item {
    /// Which item an idempotency claim asked for ([`crate::inventory::Asked`]).
    pub serial: ItemSerial,
    pub stock: ItemStock,
    pub buyers: PerUserLimits,
}

/// Cumulative counts of what happened to the sale's orders.
#[derive(Default)]
pub struct SaleCounters {
    /// Striped: every order adds to it, from every HTTP thread.
    pub orders_created: crate::stripes::StripedCounter,
    pub orders_cancelled: AtomicU64,
    pub orders_expired: AtomicU64,
    /// Orders that became paid, in time or reinstated by a late payment.
    pub orders_paid: AtomicU64,
    /// Orders whose refund WeChat Pay completed.
    pub orders_refunded: AtomicU64,
    /// Late payments that found the units and revived their order.
    pub orders_reinstated: AtomicU64,
    /// Late payments that found the units gone and are refunded.
    pub late_refunds: AtomicU64,
    pub rejects: [AtomicU64; RejectReason::ALL.len()],
}

impl Sale {
    /// `stock_from_leases`: a cluster node's items start empty and hold
    /// what the node leases; the spec's stock is the global one.
    fn new(
        spec: SaleSpec,
        created_at: UnixMs,
        shard_count: usize,
        stock_from_leases: bool,
    ) -> Sale {
        let stocks = spec
            .items
            .iter()
            .map(|item| {
                let local = if stock_from_leases { 0 } else { item.stock };
                ItemStock::new(shard_count, local)
            })
            .collect();
        Sale::from_parts(
            spec,
            created_at,
            SaleStatus::Scheduled,
            stocks,
            stock_from_leases,
        )
    }

    fn from_parts(
        spec: SaleSpec,
        created_at: UnixMs,
        status: SaleStatus,
        stocks: Vec<ItemStock>,
        stock_from_leases: bool,
    ) -> Sale {
        debug_assert_eq!(spec.items.len(), stocks.len());
        let items = stocks
            .into_iter()
            .map(|stock| Item {
                serial: ItemSerial::next(),
                stock,
                buyers: PerUserLimits::default(),
            })
            .collect();
        Sale {
            spec,
            created_at,
            status: AtomicU8::new(status.as_u8()),
            transitions: Mutex::new(()),
            items,
            counters: SaleCounters::default(),
            stock_from_leases,
        }
    }

    pub fn id(&self) -> &str {
        &self.spec.sale_id
    }

    pub fn status(&self) -> SaleStatus {
        SaleStatus::from_u8(self.status.load(Ordering::Acquire))
    }

    /// Live and not past `ends_at`: two loads, no scan of the items.
    pub fn takes_orders(&self, now: UnixMs) -> bool {
        self.status() == SaleStatus::Live && self.spec.ends_at.is_none_or(|end| now < end)
    }

    /// What storefronts see: `ended` once `ends_at` has passed, `sold_out`
    /// while live with every item's stock gone.
    pub fn display_status(&self, now: UnixMs) -> &'static str {
        let status = self.status();
        if status != SaleStatus::Ended && self.spec.ends_at.is_some_and(|end| now >= end) {
            return SaleStatus::Ended.as_str();
        }
        let leased = self.stock_from_leases;
        if status == SaleStatus::Live
            && !leased
            && self.items.iter().all(|item| item.stock.remaining() == 0)
        {
            return "sold_out";
        }
        status.as_str()
    }

    /// Applies a host action through the life-cycle table; `submit` runs
    /// once the action is known to be legal, before anyone sees its effect.
    fn transition(
        &self,
        action: SaleAction,
        submit: impl FnOnce() -> Option<Commit>,
    ) -> Result<Option<Commit>, SaleError> {
        let _serial = self
            .transitions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let next = self
            .status()
            .next(action)
            .map_err(|error| SaleError::InvalidState(error_text(&error.to_string())))?;
        let commit = submit();
        self.status.store(next.as_u8(), Ordering::Release);
        Ok(commit)
    }

    /// Adds stock, serialised with host actions so an ended sale stays ended;
    /// `submit` runs before the units become reservable.
    fn restock(
        &self,
        index: usize,
        add: i64,
        submit: impl FnOnce() -> Option<Commit>,
    ) -> Result<Option<Commit>, SaleError> {
        let _serial = self
            .transitions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !self.status().accepts_restock() {
            return Err(SaleError::InvalidState(format!(
                "sale `{}` has ended; it cannot be restocked",
                self.id()
            )));
        }
        let commit = submit();
        self.items[index].stock.restock(add);
        Ok(commit)
    }

    pub fn item_index(&self, sku_id: &str) -> Option<usize> {
        self.spec
            .items
            .iter()
            .position(|item| item.sku_id == sku_id)
    }

    pub fn count_reject(&self, reason: RejectReason) {
        let index = RejectReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.counters.rejects[index].fetch_add(1, Ordering::Relaxed);
    }
}

/// `cannot Start a sale that is Live` → `cannot start a sale that is live`.
fn error_text(text: &str) -> String {
    text.to_lowercase()
}
