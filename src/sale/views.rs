//! Read models: what the API returns for a sale, an order and the stats.

use crate::clock::{format_rfc3339, Rfc3339Ms, UnixMs};
use crate::inventory::{BuyerKey, StockCounts};
use crate::money::{format_yuan, Yuan};
use crate::sale::payment::PaymentState;
use crate::sale::{OrderStatus, RejectReason, Sale};
use rust_decimal::Decimal;
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub const CURRENCY: &str = "CNY";

#[derive(Debug, Clone, Serialize)]
pub struct SaleView {
    pub sale_id: String,
    pub title: String,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
    pub hold_seconds: u32,
    pub created_at: String,
    pub items: Vec<ItemView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ItemView {
    pub sku_id: String,
    pub title: String,
    pub price: String,
    pub currency: &'static str,
    pub stock: i64,
    pub remaining: i64,
    pub per_user_limit: u32,
    pub sold_out: bool,
}

impl SaleView {
    pub fn of(sale: &Sale, now: UnixMs) -> SaleView {
        let items = sale
            .spec
            .items
            .iter()
            .zip(sale.items.iter())
            .map(|(spec, item)| {
                let counts = item.stock.counts();
                ItemView {
                    sku_id: spec.sku_id.clone(),
                    title: spec.title.clone(),
                    price: format_yuan(spec.price),
                    currency: CURRENCY,
                    stock: counts.stock,
                    remaining: counts.remaining,
                    per_user_limit: spec.per_user_limit,
                    // A cluster node's empty lease is not the sale's stock.
                    sold_out: counts.remaining == 0 && !sale.stock_from_leases,
                }
            })
            .collect();
        SaleView {
            sale_id: sale.spec.sale_id.clone(),
            title: sale.spec.title.clone(),
            status: sale.display_status(now),
            starts_at: sale.spec.starts_at.map(format_rfc3339),
            ends_at: sale.spec.ends_at.map(format_rfc3339),
            hold_seconds: sale.spec.hold_seconds,
            created_at: format_rfc3339(sale.created_at),
            items,
        }
    }
}

/// One sale of the admin listing: what a host console draws without a
/// second request (titles, prices and every item's stock accounting).
#[derive(Debug, Clone, Serialize)]
pub struct SaleSummary {
    pub sale_id: String,
    pub title: String,
    pub status: &'static str,
    pub hold_seconds: u32,
    pub created_at: String,
    pub items: Vec<SummaryItem>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SummaryItem {
    pub sku_id: String,
    pub title: String,
    pub price: String,
    pub currency: &'static str,
    pub per_user_limit: u32,
    #[serde(flatten)]
    pub counts: StockCounts,
}

impl SaleSummary {
    pub fn of(sale: &Sale, now: UnixMs) -> SaleSummary {
        let items = sale
            .spec
            .items
            .iter()
            .zip(sale.items.iter())
            .map(|(spec, item)| SummaryItem {
                sku_id: spec.sku_id.clone(),
                title: spec.title.clone(),
                price: format_yuan(spec.price),
                currency: CURRENCY,
                per_user_limit: spec.per_user_limit,
                counts: item.stock.counts(),
            })
            .collect();
        SaleSummary {
            sale_id: sale.spec.sale_id.clone(),
            title: sale.spec.title.clone(),
            status: sale.display_status(now),
            hold_seconds: sale.spec.hold_seconds,
            created_at: format_rfc3339(sale.created_at),
            items,
        }
    }
}

/// An order in memory.
///
/// A node holds a million of these, so they share rather than copy: the id
/// is the same allocation as the hold timer's entry and the idempotency
/// key's binding (the order table hashes the record's own id); the buyer
/// and the key are one string, the idempotency map's own, which the
/// buyer's count shares too. What only an order that moved on has (its
/// later statuses, its payment) is one box away, so a hold that is never
/// paid carries a pointer for it.
#[derive(Clone)]
pub struct OrderRecord {
    pub order_id: Arc<str>,
    pub sale: Arc<Sale>,
    /// The buyer and the order's idempotency key (see [`BuyerKey`]).
    pub names: BuyerKey,
    pub amount: Decimal,
    pub created_at: UnixMs,
    pub expires_at: UnixMs,
    pub quantity: u32,
    /// The item's place in `sale.items` (see [`OrderRecord::item_index`]);
    /// 32 bits: a sale's items all arrive in one request body (at most
    /// `server.body_bytes_max`) or one journal record, far fewer than 2³².
    item: u32,
    pub status: OrderStatus,
    later: Option<Box<LaterState>>,
}

/// What an order gains after its reservation.
#[derive(Clone, Default)]
struct LaterState {
    /// WeChat Pay's time of the payment.
    paid_at: Option<UnixMs>,
    /// Every status after the first with its time; the order was
    /// `reserved` at `created_at` (see [`OrderRecord::history`]).
    history: Vec<(OrderStatus, UnixMs)>,
    /// `None` until a prepay or a payment; see [`PaymentState`].
    payment: Option<PaymentState>,
}

/// The parts of an [`OrderRecord`] fixed when the order is made.
pub struct NewOrder {
    pub order_id: Arc<str>,
    pub sale: Arc<Sale>,
    pub item_index: usize,
    pub names: BuyerKey,
    pub quantity: u32,
    pub amount: Decimal,
    pub created_at: UnixMs,
    pub expires_at: UnixMs,
}

impl OrderRecord {
    /// A new `reserved` order.
    pub fn reserved(order: NewOrder) -> OrderRecord {
        let item = u32::try_from(order.item_index)
            .expect("a sale's items fit in one body: far fewer than 2^32");
        OrderRecord {
            order_id: order.order_id,
            sale: order.sale,
            names: order.names,
            amount: order.amount,
            created_at: order.created_at,
            expires_at: order.expires_at,
            quantity: order.quantity,
            item,
            status: OrderStatus::Reserved,
            later: None,
        }
    }

    /// An order restored from a snapshot, with what it gained later.
    pub fn restored(
        order: NewOrder,
        status: OrderStatus,
        paid_at: Option<UnixMs>,
        later_history: Vec<(OrderStatus, UnixMs)>,
        payment: Option<PaymentState>,
    ) -> OrderRecord {
        let mut record = OrderRecord::reserved(order);
        record.status = status;
        if paid_at.is_some() || !later_history.is_empty() || payment.is_some() {
            record.later = Some(Box::new(LaterState {
                paid_at,
                history: later_history,
                payment,
            }));
        }
        record
    }

    pub fn buyer(&self) -> &str {
        self.names.buyer()
    }

    pub fn idempotency_key(&self) -> &str {
        self.names.key()
    }

    pub fn item_index(&self) -> usize {
        self.item as usize
    }

    /// WeChat Pay's time of the payment, once paid.
    pub fn paid_at(&self) -> Option<UnixMs> {
        self.later.as_ref()?.paid_at
    }

    /// `None` until a prepay or a payment; see [`PaymentState`].
    pub fn payment(&self) -> Option<&PaymentState> {
        self.later.as_ref()?.payment.as_ref()
    }

    fn later_mut(&mut self) -> &mut LaterState {
        self.later.get_or_insert_with(Default::default)
    }

    pub(super) fn set_paid_at(&mut self, paid_at: UnixMs) {
        self.later_mut().paid_at = Some(paid_at);
    }

    /// Records a move to `status` at `at` (the caller sets `self.status`).
    pub(super) fn push_history(&mut self, status: OrderStatus, at: UnixMs) {
        self.later_mut().history.push((status, at));
    }

    pub(super) fn payment_mut(&mut self) -> &mut PaymentState {
        self.later_mut()
            .payment
            .get_or_insert_with(Default::default)
    }
}

/// An order as the API shows it. It shares the record's strings (the id,
/// the sale) and keeps times and the amount as numbers, formatted only
/// while it is serialized: making one allocates nothing.
#[derive(Clone)]
pub struct OrderView {
    pub order_id: Arc<str>,
    sale: Arc<Sale>,
    item_index: usize,
    pub quantity: u32,
    pub amount: Decimal,
    pub currency: &'static str,
    pub status: &'static str,
    pub created_at: UnixMs,
    pub expires_at: UnixMs,
    pub paid_at: Option<UnixMs>,
}

impl OrderView {
    pub fn sale_id(&self) -> &str {
        &self.sale.spec.sale_id
    }

    pub fn sku_id(&self) -> &str {
        &self.sale.spec.items[self.item_index].sku_id
    }
}

impl OrderView {
    /// The view's JSON, the bytes [`Serialize`] writes, field by field
    /// (`crate::json`): every order's answer.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let mut object = crate::json::Object::new(out);
        object.str("order_id", &self.order_id);
        object.str("sale_id", self.sale_id());
        object.str("sku_id", self.sku_id());
        object.u32("quantity", self.quantity);
        Yuan(self.amount).with_text(|text| object.str("amount", text));
        object.str("currency", self.currency);
        object.str("status", self.status);
        Rfc3339Ms(self.created_at).with_text(|text| object.str("created_at", text));
        Rfc3339Ms(self.expires_at).with_text(|text| object.str("expires_at", text));
        if let Some(paid_at) = self.paid_at {
            Rfc3339Ms(paid_at).with_text(|text| object.str("paid_at", text));
        }
        object.end();
    }
}

impl Serialize for OrderView {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let fields = if self.paid_at.is_some() { 10 } else { 9 };
        let mut out = serializer.serialize_struct("OrderView", fields)?;
        out.serialize_field("order_id", &*self.order_id)?;
        out.serialize_field("sale_id", self.sale_id())?;
        out.serialize_field("sku_id", self.sku_id())?;
        out.serialize_field("quantity", &self.quantity)?;
        out.serialize_field("amount", &Yuan(self.amount))?;
        out.serialize_field("currency", self.currency)?;
        out.serialize_field("status", self.status)?;
        out.serialize_field("created_at", &Rfc3339Ms(self.created_at))?;
        out.serialize_field("expires_at", &Rfc3339Ms(self.expires_at))?;
        if let Some(paid_at) = self.paid_at {
            out.serialize_field("paid_at", &Rfc3339Ms(paid_at))?;
        }
        out.end()
    }
}

impl std::fmt::Debug for OrderView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderView")
            .field("order_id", &self.order_id)
            .field("sale_id", &self.sale_id())
            .field("sku_id", &self.sku_id())
            .field("quantity", &self.quantity)
            .field("amount", &self.amount)
            .field("status", &self.status)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("paid_at", &self.paid_at)
            .finish()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AdminOrderView {
    #[serde(flatten)]
    pub order: OrderView,
    pub buyer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_refund_no: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<String>,
    pub history: Vec<HistoryEntry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub status: &'static str,
    pub at: String,
}

impl OrderRecord {
    pub fn view(&self) -> OrderView {
        OrderView {
            order_id: Arc::clone(&self.order_id),
            sale: Arc::clone(&self.sale),
            item_index: self.item_index(),
            quantity: self.quantity,
            amount: self.amount,
            currency: CURRENCY,
            status: self.status.as_str(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            paid_at: self.paid_at(),
        }
    }

    /// Every status the order had with its time, the reservation first.
    pub fn history(&self) -> impl Iterator<Item = (OrderStatus, UnixMs)> + '_ {
        std::iter::once((OrderStatus::Reserved, self.created_at)).chain(
            self.later
                .iter()
                .flat_map(|later| later.history.iter().copied()),
        )
    }

    pub fn admin_view(&self) -> AdminOrderView {
        let refund = self.refund();
        AdminOrderView {
            order: self.view(),
            buyer: self.buyer().to_string(),
            transaction_id: self.transaction_id().map(str::to_owned),
            out_refund_no: refund.map(|refund| refund.out_refund_no.clone()),
            refund_reason: refund.map(|refund| refund.reason.as_str()),
            refund_id: refund.and_then(|refund| refund.refund_id.clone()),
            history: self
                .history()
                .map(|(status, at)| HistoryEntry {
                    status: status.as_str(),
                    at: format_rfc3339(at),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SaleStats {
    pub sale_id: String,
    pub status: &'static str,
    pub items: Vec<ItemStats>,
    pub orders: OrderCounts,
    pub rejects: std::collections::BTreeMap<&'static str, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ItemStats {
    pub sku_id: String,
    #[serde(flatten)]
    pub counts: StockCounts,
}

/// Cumulative: each counts what happened, whatever the orders' status now
/// (an expired order reinstated by a late payment counts as expired, paid
/// and reinstated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderCounts {
    /// Orders ever made in the sale.
    pub created: u64,
    pub cancelled: u64,
    pub expired: u64,
    /// Orders that became paid, in time or by reinstatement.
    pub paid: u64,
    /// Orders whose refund was completed.
    pub refunded: u64,
    /// Late payments that got their units back.
    pub reinstated: u64,
    /// Late payments refunded because the units were gone.
    pub late_refunds: u64,
}

impl SaleStats {
    pub fn of(sale: &Sale, now: UnixMs) -> SaleStats {
        let counters = &sale.counters;
        SaleStats {
            sale_id: sale.spec.sale_id.clone(),
            status: sale.display_status(now),
            items: sale
                .spec
                .items
                .iter()
                .zip(sale.items.iter())
                .map(|(spec, item)| ItemStats {
                    sku_id: spec.sku_id.clone(),
                    counts: item.stock.counts(),
                })
                .collect(),
            orders: OrderCounts {
                created: counters.orders_created.get(),
                cancelled: counters.orders_cancelled.load(Ordering::Relaxed),
                expired: counters.orders_expired.load(Ordering::Relaxed),
                paid: counters.orders_paid.load(Ordering::Relaxed),
                refunded: counters.orders_refunded.load(Ordering::Relaxed),
                reinstated: counters.orders_reinstated.load(Ordering::Relaxed),
                late_refunds: counters.late_refunds.load(Ordering::Relaxed),
            },
            rejects: RejectReason::ALL
                .iter()
                .zip(counters.rejects.iter())
                .map(|(reason, count)| (reason.as_str(), count.load(Ordering::Relaxed)))
                .collect(),
        }
    }
}
