//! What the store's tables read back as, and the conversions between Rust
//! values and column values that both backends share (statuses as their
//! `as_str` text, seq and counts as signed 64-bit integers, money exact).

use super::StoreError;
use crate::clock::UnixMs;
use crate::sale::{OrderStatus, RefundReason, SaleStatus};
use rust_decimal::Decimal;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleRow {
    pub sale_id: String,
    pub title: String,
    pub status: SaleStatus,
    pub starts_at_ms: Option<UnixMs>,
    pub ends_at_ms: Option<UnixMs>,
    pub hold_seconds: u32,
    pub created_at_ms: UnixMs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRow {
    pub sale_id: String,
    pub sku_id: String,
    pub title: String,
    /// Yuan, exact, two decimal places.
    pub price: Decimal,
    /// Total units ever offered: the initial stock plus every restock.
    pub stock: i64,
    pub per_user_limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRow {
    pub order_id: String,
    pub sale_id: String,
    pub sku_id: String,
    pub buyer: String,
    pub quantity: u32,
    /// Yuan, exact, two decimal places.
    pub amount: Decimal,
    pub idempotency_key: String,
    pub status: OrderStatus,
    pub created_at_ms: UnixMs,
    pub expires_at_ms: UnixMs,
    /// WeChat Pay's time of the payment.
    pub paid_at_ms: Option<UnixMs>,
    pub updated_at_ms: UnixMs,
    pub prepay_id: Option<String>,
    pub payment_started_at_ms: Option<UnixMs>,
    pub transaction_id: Option<String>,
    pub paid_amount_fen: Option<i64>,
    pub out_refund_no: Option<String>,
    pub refund_reason: Option<RefundReason>,
    pub refund_requested_at_ms: Option<UnixMs>,
    pub refund_id: Option<String>,
    /// The node whose journal holds the order (`""` for a node alone).
    pub node_id: String,
}

/// What one node leased of one item's global stock, from its journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub sale_id: String,
    pub sku_id: String,
    pub node_id: String,
    /// Units of every `lease_granted`.
    pub granted: i64,
    /// Units of every `lease_returned`; `granted - returned` is what the
    /// node holds, its sold units included.
    pub returned: i64,
    pub updated_at_ms: UnixMs,
}

/// A payment, for daily reconciliation against WeChat Pay's trade bill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPayment {
    pub order_id: String,
    pub transaction_id: String,
    pub amount_fen: i64,
    /// WeChat Pay's time of the payment.
    pub paid_at: UnixMs,
    /// The order's status now (a refunded payment stays in the bill).
    pub status: OrderStatus,
    /// The amount refunded or being refunded; refunds are full.
    pub refund_amount_fen: Option<i64>,
    pub out_refund_no: Option<String>,
}

/// A refund, for daily reconciliation against WeChat Pay's refund bill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRefund {
    pub order_id: String,
    pub out_refund_no: String,
    pub transaction_id: String,
    /// Refunds are full: the amount paid.
    pub amount_fen: i64,
    pub reason: RefundReason,
    /// When the refund was asked for: the time of its event.
    pub requested_at: UnixMs,
    /// `refunding` until WeChat Pay reports it done, then `refunded`.
    pub status: OrderStatus,
    pub refund_id: Option<String>,
}

/// One step of an order's history: the status it entered at journal `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderEventRow {
    pub seq: u64,
    pub status: OrderStatus,
    pub at_ms: UnixMs,
}

const SALE_STATUSES: [SaleStatus; 4] = [
    SaleStatus::Scheduled,
    SaleStatus::Live,
    SaleStatus::Paused,
    SaleStatus::Ended,
];

const ORDER_STATUSES: [OrderStatus; 7] = [
    OrderStatus::Reserved,
    OrderStatus::Paying,
    OrderStatus::Paid,
    OrderStatus::Expired,
    OrderStatus::Cancelled,
    OrderStatus::Refunding,
    OrderStatus::Refunded,
];

pub(crate) fn sale_status(text: &str) -> Result<SaleStatus, StoreError> {
    SALE_STATUSES
        .into_iter()
        .find(|status| status.as_str() == text)
        .ok_or_else(|| corrupt("sales.status", text))
}

pub(crate) fn order_status(text: &str) -> Result<OrderStatus, StoreError> {
    ORDER_STATUSES
        .into_iter()
        .find(|status| status.as_str() == text)
        .ok_or_else(|| corrupt("order status", text))
}

pub(crate) fn refund_reason(text: &str) -> Result<RefundReason, StoreError> {
    RefundReason::ALL
        .into_iter()
        .find(|reason| reason.as_str() == text)
        .ok_or_else(|| corrupt("orders.refund_reason", text))
}

/// A column the query's `WHERE` guarantees, read back as absent.
pub(crate) fn required<T>(column: &'static str, value: Option<T>) -> Result<T, StoreError> {
    value.ok_or_else(|| corrupt(column, "NULL"))
}

/// seq as stored: BIGINT is signed.
pub(crate) fn seq_to_db(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| StoreError::SeqTooLarge(seq))
}

pub(crate) fn seq_from_db(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| corrupt("seq", &value.to_string()))
}

/// A non-negative count (hold seconds, quantity, limit) read back as u32.
pub(crate) fn count_from_db(column: &'static str, value: i64) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| corrupt(column, &value.to_string()))
}

/// Money as SQLite stores it: text with exactly two places, `"99.00"`.
/// The caller has checked the scale (see `apply::check_money`), so the
/// rescale only pads and never rounds.
pub(crate) fn money_to_text(value: Decimal) -> String {
    let mut padded = value;
    padded.rescale(2);
    padded.to_string()
}

pub(crate) fn money_from_text(column: &'static str, text: &str) -> Result<Decimal, StoreError> {
    text.parse().map_err(|_| corrupt(column, text))
}

fn corrupt(column: &'static str, value: &str) -> StoreError {
    StoreError::Corrupt {
        column,
        value: value.to_owned(),
    }
}
