//! Snapshots: the whole engine as data at one journal position, so a
//! restart replays only what came after it and old segments can go.
//!
//! A snapshot is taken from an engine nobody else is changing (the one the
//! store writer builds from the last snapshot and the journal records after
//! it), so it is exactly the state after record `seq`. Restoring it rebuilds what replay
//! would: stock shards, per-buyer counts, idempotency keys, hold timers and
//! the pending payments and refunds.

use crate::clock::UnixMs;
use crate::inventory::{BuyerKey, ItemStock, StockCounts};
use crate::sale::engine::item_index;
use crate::sale::payment::PaymentState;
use crate::sale::views::{NewOrder, OrderRecord};
use crate::sale::{Engine, EngineLimits, OrderStatus, Sale, SaleError, SaleSpec, SaleStatus};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The last journal record the snapshot includes.
    pub seq: u64,
    pub replayed_at_max: UnixMs,
    pub sales: Vec<SaleSnapshot>,
    pub orders: Vec<OrderSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaleSnapshot {
    pub spec: SaleSpec,
    pub created_at: UnixMs,
    pub status: SaleStatus,
    pub items: Vec<StockCounts>,
    pub orders_created: u64,
    pub orders_cancelled: u64,
    pub orders_expired: u64,
    // Absent from snapshots written before payments: zero.
    #[serde(default)]
    pub orders_paid: u64,
    #[serde(default)]
    pub orders_refunded: u64,
    #[serde(default)]
    pub orders_reinstated: u64,
    #[serde(default)]
    pub late_refunds: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderSnapshot {
    pub order_id: String,
    pub sale_id: String,
    pub sku_id: String,
    pub buyer: String,
    pub quantity: u32,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub idempotency_key: String,
    pub status: OrderStatus,
    pub created_at: UnixMs,
    pub expires_at: UnixMs,
    pub paid_at: Option<UnixMs>,
    pub history: Vec<(OrderStatus, UnixMs)>,
    /// Only for orders that reached WeChat Pay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<PaymentState>,
}

/// [`Snapshot`]'s fields, in its order, with the orders written one by one.
#[derive(Serialize)]
struct SnapshotView<'a> {
    seq: u64,
    replayed_at_max: UnixMs,
    sales: Vec<SaleSnapshot>,
    orders: OrdersById<'a>,
}

/// The engine's orders by ascending id, each made an [`OrderSnapshot`]
/// only while it is written.
struct OrdersById<'a> {
    engine: &'a Engine,
    ids: Vec<Arc<str>>,
}

impl Serialize for OrdersById<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq};
        let mut orders = serializer.serialize_seq(Some(self.ids.len()))?;
        for id in &self.ids {
            let order = self.engine.orders.get(id).ok_or_else(|| {
                S::Error::custom(format!("order `{id}` left the engine during its snapshot"))
            })?;
            orders.serialize_element(&order_snapshot(&order))?;
        }
        orders.end()
    }
}

impl Engine {
    /// The engine's state as of journal record `seq`. Only meaningful when
    /// no change is being applied concurrently.
    pub fn snapshot(&self, seq: u64) -> Snapshot {
        let sales = self.sale_snapshots();
        let mut orders: Vec<OrderSnapshot> = self.orders.map_all(order_snapshot);
        orders.sort_by(|a, b| a.order_id.cmp(&b.order_id));
        Snapshot {
            seq,
            replayed_at_max: self.replayed_at_max.load(Ordering::Acquire),
            sales,
            orders,
        }
    }

    /// Writes [`Engine::snapshot`]'s JSON, byte for byte, without holding
    /// every order as data at once: the orders' ids are sorted, then each
    /// order is made a [`OrderSnapshot`] and written in turn. A snapshot of
    /// a million orders held as data is some 0.4 GB on top of the engine
    /// it is taken from (docs/PERFORMANCE.md, run I). Only meaningful when
    /// no change is being applied concurrently.
    pub fn write_snapshot(&self, seq: u64, writer: impl std::io::Write) -> serde_json::Result<()> {
        let mut ids: Vec<Arc<str>> = self.orders.map_all(|order| Arc::clone(&order.order_id));
        ids.sort_unstable();
        let view = SnapshotView {
            seq,
            replayed_at_max: self.replayed_at_max.load(Ordering::Acquire),
            sales: self.sale_snapshots(),
            orders: OrdersById { engine: self, ids },
        };
        serde_json::to_writer(writer, &view)
    }

    fn sale_snapshots(&self) -> Vec<SaleSnapshot> {
        let mut sales: Vec<SaleSnapshot> = self
            .sales()
            .iter()
            .map(|sale| sale_snapshot(sale))
            .collect();
        sales.sort_by(|a, b| a.spec.sale_id.cmp(&b.spec.sale_id));
        sales
    }

    /// Rebuilds an engine from a snapshot; the journal after `seq` follows.
    pub fn restore(
        limits: EngineLimits,
        started_at: UnixMs,
        snapshot: &Snapshot,
    ) -> Result<Engine, SaleError> {
        let engine = Engine::new(limits, started_at);
        engine
            .replayed_at_max
            .store(snapshot.replayed_at_max, Ordering::Release);
        for sale in &snapshot.sales {
            engine.restore_sale(sale)?;
        }
        for order in &snapshot.orders {
            engine.restore_order(order)?;
        }
        Ok(engine)
    }

    fn restore_sale(&self, snapshot: &SaleSnapshot) -> Result<(), SaleError> {
        let bad = |message: String| SaleError::Replay(format!("snapshot: {message}"));
        if snapshot.items.len() != snapshot.spec.items.len() {
            return Err(bad(format!(
                "sale `{}` has mismatched items",
                snapshot.spec.sale_id
            )));
        }
        let stocks = snapshot
            .items
            .iter()
            .map(|counts| ItemStock::restore(self.limits.shard_count, counts).map_err(bad))
            .collect::<Result<Vec<_>, _>>()?;
        let sale = Sale::from_parts(
            snapshot.spec.clone(),
            snapshot.created_at,
            snapshot.status,
            stocks,
            self.limits.stock_from_leases,
        );
        let counters = &sale.counters;
        counters.orders_created.set(snapshot.orders_created);
        for (counter, value) in [
            (&counters.orders_cancelled, snapshot.orders_cancelled),
            (&counters.orders_expired, snapshot.orders_expired),
            (&counters.orders_paid, snapshot.orders_paid),
            (&counters.orders_refunded, snapshot.orders_refunded),
            (&counters.orders_reinstated, snapshot.orders_reinstated),
            (&counters.late_refunds, snapshot.late_refunds),
        ] {
            counter.store(value, Ordering::Relaxed);
        }
        self.sales
            .insert(snapshot.spec.sale_id.as_str().into(), Arc::new(sale));
        self.sales_changed();
        Ok(())
    }

    fn restore_order(&self, snapshot: &OrderSnapshot) -> Result<(), SaleError> {
        let sale = self.sale(&snapshot.sale_id)?;
        let index = item_index(&sale, &snapshot.sku_id)?;
        let item = &sale.items[index];
        let names = BuyerKey::new(&snapshot.buyer, &snapshot.idempotency_key);
        // The per-buyer limit counts the orders that hold units.
        if snapshot.status.holds_stock() {
            let _ = item.buyers.try_acquire(&names, snapshot.quantity, u32::MAX);
        }
        let order_id: Arc<str> = snapshot.order_id.as_str().into();
        if snapshot.status.holds_unpaid_stock() {
            self.holds
                .schedule(snapshot.expires_at, Arc::clone(&order_id));
        }
        let payment = snapshot.payment.as_ref();
        let waiting_since = match snapshot.status {
            OrderStatus::Paying => payment.and_then(|payment| payment.started_at),
            OrderStatus::Refunding => payment
                .and_then(|payment| payment.refund.as_ref())
                .map(|refund| refund.requested_at),
            _ => None,
        };
        let since = waiting_since.unwrap_or(snapshot.created_at);
        self.pending
            .track(&snapshot.order_id, None, snapshot.status, since);
        self.keys.bind(&names, &order_id);
        let record = OrderRecord::restored(
            NewOrder {
                order_id: Arc::clone(&order_id),
                sale: Arc::clone(&sale),
                item_index: index,
                names,
                quantity: snapshot.quantity,
                amount: snapshot.amount,
                created_at: snapshot.created_at,
                expires_at: snapshot.expires_at,
            },
            snapshot.status,
            snapshot.paid_at,
            later_history(&snapshot.history, snapshot.created_at),
            snapshot.payment.clone(),
        );
        self.orders.insert(Box::new(record));
        Ok(())
    }
}

fn sale_snapshot(sale: &Sale) -> SaleSnapshot {
    SaleSnapshot {
        spec: sale.spec.clone(),
        created_at: sale.created_at,
        status: sale.status(),
        items: sale.items.iter().map(|item| item.stock.counts()).collect(),
        orders_created: sale.counters.orders_created.get(),
        orders_cancelled: sale.counters.orders_cancelled.load(Ordering::Relaxed),
        orders_expired: sale.counters.orders_expired.load(Ordering::Relaxed),
        orders_paid: sale.counters.orders_paid.load(Ordering::Relaxed),
        orders_refunded: sale.counters.orders_refunded.load(Ordering::Relaxed),
        orders_reinstated: sale.counters.orders_reinstated.load(Ordering::Relaxed),
        late_refunds: sale.counters.late_refunds.load(Ordering::Relaxed),
    }
}

fn order_snapshot(order: &OrderRecord) -> OrderSnapshot {
    OrderSnapshot {
        order_id: order.order_id.to_string(),
        sale_id: order.sale.spec.sale_id.clone(),
        sku_id: order.sale.spec.items[order.item_index()].sku_id.clone(),
        buyer: order.buyer().to_string(),
        quantity: order.quantity,
        amount: order.amount,
        idempotency_key: order.idempotency_key().to_string(),
        status: order.status,
        created_at: order.created_at,
        expires_at: order.expires_at,
        paid_at: order.paid_at(),
        history: order.history().collect(),
        payment: order.payment().cloned(),
    }
}

/// A snapshot keeps the whole history, the reservation first; the record
/// keeps what came after it.
fn later_history(
    history: &[(OrderStatus, UnixMs)],
    created_at: UnixMs,
) -> Vec<(OrderStatus, UnixMs)> {
    match history.split_first() {
        Some((&(OrderStatus::Reserved, at), later)) if at == created_at => later.to_vec(),
        _ => history.to_vec(),
    }
}
