//! Read models: what the API returns for a sale, an order and the stats.

use crate::clock::{format_rfc3339, UnixMs};
use crate::inventory::StockCounts;
use crate::money::format_yuan;
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
                    sold_out: counts.remaining == 0,
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

/// An order in memory. `history` records every status with its time.
#[derive(Clone)]
pub struct OrderRecord {
    pub order_id: String,
    pub sale: Arc<Sale>,
    pub item_index: usize,
    pub buyer: String,
    pub quantity: u32,
    pub amount: Decimal,
    pub idempotency_key: String,
    pub status: OrderStatus,
    pub created_at: UnixMs,
    pub expires_at: UnixMs,
    pub paid_at: Option<UnixMs>,
    pub history: Vec<(OrderStatus, UnixMs)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OrderView {
    pub order_id: String,
    pub sale_id: String,
    pub sku_id: String,
    pub quantity: u32,
    pub amount: String,
    pub currency: &'static str,
    pub status: &'static str,
    pub created_at: String,
    pub expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AdminOrderView {
    #[serde(flatten)]
    pub order: OrderView,
    pub buyer: String,
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
            order_id: self.order_id.clone(),
            sale_id: self.sale.spec.sale_id.clone(),
            sku_id: self.sale.spec.items[self.item_index].sku_id.clone(),
            quantity: self.quantity,
            amount: format_yuan(self.amount),
            currency: CURRENCY,
            status: self.status.as_str(),
            created_at: format_rfc3339(self.created_at),
            expires_at: format_rfc3339(self.expires_at),
            paid_at: self.paid_at.map(format_rfc3339),
        }
    }

    pub fn admin_view(&self) -> AdminOrderView {
        AdminOrderView {
            order: self.view(),
            buyer: self.buyer.clone(),
            history: self
                .history
                .iter()
                .map(|(status, at)| HistoryEntry {
                    status: status.as_str(),
                    at: format_rfc3339(*at),
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

#[derive(Debug, Clone, Serialize)]
pub struct OrderCounts {
    /// Orders ever made in the sale, whatever their status now.
    pub created: u64,
    pub cancelled: u64,
    pub expired: u64,
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
                created: counters.orders_created.load(Ordering::Relaxed),
                cancelled: counters.orders_cancelled.load(Ordering::Relaxed),
                expired: counters.orders_expired.load(Ordering::Relaxed),
            },
            rejects: RejectReason::ALL
                .iter()
                .zip(counters.rejects.iter())
                .map(|(reason, count)| (reason.as_str(), count.load(Ordering::Relaxed)))
                .collect(),
        }
    }
}
