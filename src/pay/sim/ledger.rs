//! What the simulated WeChat Pay knows about one merchant: its orders,
//! prepay ids, payments and refunds, and the rules that move them
//! (wechatpay-v3.md §3, §6). No I/O and no clock reads: every operation gets
//! `now_ms`, so the 2-hour prepay validity and the deadlines are unit-tested
//! without waiting.
//!
//! Order states are JSAPI's: NOTPAY → SUCCESS | CLOSED, SUCCESS → REFUND.
//! An unpaid order is payable until its deadline (`time_expire`, clamped to
//! 1 minute ..= 90 days after creation; 7 days without it) and is closed
//! automatically at the later of its deadline and creation + 7 days; the
//! close happens lazily, when the order is next looked at.

use super::api_error::ApiError;
use super::{ids, PlantedPayment, SimError};
use crate::clock::{format_beijing_bill_time, format_beijing_rfc3339, UnixMs};
use crate::pay::bill::BillRow;
use crate::pay::wire::{
    JsapiPrepayRequest, Payer, Refund, RefundAmount, RefundRequest, RefundResource, RefundStatus,
    TradeState, Transaction, TransactionAmount, CURRENCY_CNY,
};
use rust_decimal::Decimal;
use serde_json::Value;
use std::collections::HashMap;

/// Orders the simulator holds; a prepay past it is answered 500.
pub const ORDERS_MAX: usize = 500_000;
/// Refunds the simulator holds.
pub const REFUNDS_MAX: usize = 500_000;
/// WeChat's rule: at most 50 partial refunds per order.
pub const REFUNDS_PER_ORDER_MAX: usize = 50;
/// A prepay id is valid 2 hours whatever `time_expire` says.
pub const PREPAY_VALID_MS: i64 = 2 * 3_600_000;
const DAY_MS: i64 = 86_400_000;
const TIME_EXPIRE_AFTER_MS_MIN: i64 = 60_000;
const TIME_EXPIRE_AFTER_MS_MAX: i64 = 90 * DAY_MS;
/// Unpaid orders without `time_expire` are payable, then auto-closed, after 7 days.
const UNPAID_CLOSE_AFTER_MS: i64 = 7 * DAY_MS;
const TRADE_TYPE_JSAPI: &str = "JSAPI";
const BANK_TYPE: &str = "OTHERS";
const REFUND_CHANNEL: &str = "ORIGINAL";
const REFUND_ACCOUNT: &str = "支付用户零钱";
/// The fee rate the bill applies: 0.6 %, i.e. 6 per 1000 of the amount.
const FEE_RATE_TEXT: &str = "0.60%";
const FEE_PER_MILLE: i64 = 6;

/// The merchant this simulator serves.
#[derive(Debug, Clone)]
pub struct Merchant {
    pub mchid: String,
    pub appid: String,
}

#[derive(Debug, Clone)]
struct Order {
    /// The first request as JSON: a re-post must equal it (key order aside).
    /// `Null` for a planted payment, which no request created.
    request: Value,
    out_trade_no: String,
    description: String,
    attach: Option<String>,
    notify_url: String,
    openid: String,
    total_fen: i64,
    created_at_ms: UnixMs,
    pay_deadline_ms: UnixMs,
    state: TradeState,
    prepay_id: String,
    prepay_issued_at_ms: UnixMs,
    transaction_id: Option<String>,
    success_at_ms: Option<UnixMs>,
    refunded_fen: i64,
    refund_count: usize,
}

impl Order {
    /// The lazy auto-close of an unpaid order.
    fn refresh(&mut self, now_ms: UnixMs) {
        let close_at_ms = self
            .pay_deadline_ms
            .max(self.created_at_ms.saturating_add(UNPAID_CLOSE_AFTER_MS));
        if self.state == TradeState::NotPay && now_ms >= close_at_ms {
            self.state = TradeState::Closed;
        }
    }
}

#[derive(Debug, Clone)]
struct RefundRecord {
    refund_id: String,
    out_refund_no: String,
    transaction_id: String,
    out_trade_no: String,
    total_fen: i64,
    refund_fen: i64,
    status: RefundStatus,
    created_at_ms: UnixMs,
    success_at_ms: Option<UnixMs>,
    notify_url: Option<String>,
}

/// A payment just made: what to tell the merchant and where.
#[derive(Debug, Clone)]
pub struct Payment {
    pub transaction: Transaction,
    pub notify_url: String,
}

/// A refund just completed: the notification resource and where to send it.
#[derive(Debug, Clone)]
pub struct CompletedRefund {
    pub resource: RefundResource,
    pub notify_url: Option<String>,
}

/// The answer to a refund request: the refund, and whether this request
/// created it (a repeated `out_refund_no` returns the existing one).
#[derive(Debug, Clone)]
pub struct RefundOutcome {
    pub refund: Refund,
    pub created: bool,
}

#[derive(Debug)]
pub struct Ledger {
    merchant: Merchant,
    orders: HashMap<String, Order>,
    order_by_prepay_id: HashMap<String, String>,
    order_by_transaction_id: HashMap<String, String>,
    refunds: HashMap<String, RefundRecord>,
}

impl Ledger {
    pub fn new(merchant: Merchant) -> Self {
        Self {
            merchant,
            orders: HashMap::new(),
            order_by_prepay_id: HashMap::new(),
            order_by_transaction_id: HashMap::new(),
            refunds: HashMap::new(),
        }
    }

    /// `POST /v3/pay/transactions/jsapi` after its fields were validated:
    /// a new order, or the same order posted again.
    pub fn prepay(
        &mut self,
        request: &JsapiPrepayRequest,
        raw: &Value,
        time_expire_ms: Option<UnixMs>,
        now_ms: UnixMs,
    ) -> Result<String, ApiError> {
        if let Some(order) = self.orders.get_mut(&request.out_trade_no) {
            order.refresh(now_ms);
            match order.state {
                TradeState::NotPay => {}
                TradeState::Success | TradeState::Refund => return Err(ApiError::order_paid()),
                _ => return Err(ApiError::out_trade_no_used()),
            }
            if *raw != order.request {
                return Err(ApiError::reentry_mismatch());
            }
            if now_ms >= order.pay_deadline_ms {
                return Err(ApiError::out_trade_no_used());
            }
            if now_ms < order.prepay_issued_at_ms + PREPAY_VALID_MS {
                return Ok(order.prepay_id.clone());
            }
            let prepay_id = ids::prepay_id();
            order.prepay_id = prepay_id.clone();
            order.prepay_issued_at_ms = now_ms;
            self.order_by_prepay_id
                .insert(prepay_id.clone(), request.out_trade_no.clone());
            return Ok(prepay_id);
        }
        if self.orders.len() >= ORDERS_MAX {
            return Err(ApiError::simulator_full(&format!("{ORDERS_MAX} orders")));
        }
        let pay_deadline_ms = match time_expire_ms {
            Some(expire_ms) => expire_ms.clamp(
                now_ms + TIME_EXPIRE_AFTER_MS_MIN,
                now_ms + TIME_EXPIRE_AFTER_MS_MAX,
            ),
            None => now_ms + UNPAID_CLOSE_AFTER_MS,
        };
        let prepay_id = ids::prepay_id();
        let order = Order {
            request: raw.clone(),
            out_trade_no: request.out_trade_no.clone(),
            description: request.description.clone(),
            attach: request.attach.clone(),
            notify_url: request.notify_url.clone(),
            openid: request.payer.openid.clone(),
            total_fen: request.amount.total,
            created_at_ms: now_ms,
            pay_deadline_ms,
            state: TradeState::NotPay,
            prepay_id: prepay_id.clone(),
            prepay_issued_at_ms: now_ms,
            transaction_id: None,
            success_at_ms: None,
            refunded_fen: 0,
            refund_count: 0,
        };
        self.order_by_prepay_id
            .insert(prepay_id.clone(), request.out_trade_no.clone());
        self.orders.insert(request.out_trade_no.clone(), order);
        Ok(prepay_id)
    }

    /// The order as a query shows it, or `None` when WeChat never heard of it.
    pub fn transaction(&mut self, out_trade_no: &str, now_ms: UnixMs) -> Option<Transaction> {
        let order = self.orders.get_mut(out_trade_no)?;
        order.refresh(now_ms);
        Some(transaction_of(&self.merchant, order))
    }

    /// Query by `transaction_id`: only paid orders have one.
    pub fn transaction_by_id(
        &mut self,
        transaction_id: &str,
        now_ms: UnixMs,
    ) -> Option<Transaction> {
        let out_trade_no = self.order_by_transaction_id.get(transaction_id)?.clone();
        self.transaction(&out_trade_no, now_ms)
    }

    /// Close: NOTPAY → CLOSED; already closed or unknown is still a success
    /// (WeChat answers 204 for a wrong number too); a paid order refuses.
    pub fn close(&mut self, out_trade_no: &str, now_ms: UnixMs) -> Result<(), ApiError> {
        let Some(order) = self.orders.get_mut(out_trade_no) else {
            return Ok(());
        };
        order.refresh(now_ms);
        match order.state {
            TradeState::NotPay => {
                order.state = TradeState::Closed;
                Ok(())
            }
            TradeState::Success | TradeState::Refund => Err(ApiError::order_paid()),
            _ => Ok(()),
        }
    }

    /// The buyer confirms in `wx.requestPayment`, naming the order by
    /// prepay id (checked for its 2 hours) or by `out_trade_no` (its current
    /// prepay id is checked).
    pub fn pay(
        &mut self,
        prepay_id_or_out_trade_no: &str,
        now_ms: UnixMs,
    ) -> Result<Payment, SimError> {
        let key = prepay_id_or_out_trade_no;
        let (out_trade_no, named_prepay_id) = match self.order_by_prepay_id.get(key) {
            Some(out_trade_no) => (out_trade_no.clone(), Some(key)),
            None => (key.to_owned(), None),
        };
        let order = self
            .orders
            .get_mut(&out_trade_no)
            .ok_or_else(|| SimError::UnknownOrder(key.to_owned()))?;
        order.refresh(now_ms);
        match order.state {
            TradeState::NotPay => {}
            TradeState::Closed => return Err(SimError::OrderClosed(out_trade_no)),
            _ => return Err(SimError::AlreadyPaid(out_trade_no)),
        }
        if now_ms >= order.pay_deadline_ms {
            return Err(SimError::PaymentDeadlinePassed(out_trade_no));
        }
        // A prepay id other than the order's current one was replaced after
        // it expired.
        let stale_id = named_prepay_id.is_some_and(|named| named != order.prepay_id);
        if stale_id || now_ms >= order.prepay_issued_at_ms + PREPAY_VALID_MS {
            let prepay_id = named_prepay_id.unwrap_or(&order.prepay_id).to_owned();
            return Err(SimError::PrepayExpired(prepay_id));
        }
        let transaction_id = ids::transaction_id();
        order.state = TradeState::Success;
        order.transaction_id = Some(transaction_id.clone());
        order.success_at_ms = Some(now_ms);
        self.order_by_transaction_id
            .insert(transaction_id, out_trade_no.clone());
        let payment = Payment {
            transaction: transaction_of(&self.merchant, order),
            notify_url: order.notify_url.clone(),
        };
        Ok(payment)
    }

    /// A payment WeChat Pay knows of and the merchant never asked for.
    pub fn plant(
        &mut self,
        planted: &PlantedPayment,
        now_ms: UnixMs,
    ) -> Result<Transaction, SimError> {
        if planted.out_trade_no.is_empty() || planted.total_fen < 1 {
            let reason = "out_trade_no must not be empty and total_fen must be at least 1";
            return Err(SimError::InvalidPlant(reason.into()));
        }
        if self.orders.contains_key(&planted.out_trade_no) {
            return Err(SimError::OrderExists(planted.out_trade_no.clone()));
        }
        if self.orders.len() >= ORDERS_MAX {
            return Err(SimError::Full(format!("{ORDERS_MAX} orders")));
        }
        let paid_at_ms = planted.paid_at_ms.unwrap_or(now_ms);
        let transaction_id = ids::transaction_id();
        let order = Order {
            request: Value::Null,
            out_trade_no: planted.out_trade_no.clone(),
            description: planted.description.clone(),
            attach: planted.attach.clone(),
            notify_url: String::new(),
            openid: planted.openid.clone(),
            total_fen: planted.total_fen,
            created_at_ms: paid_at_ms,
            pay_deadline_ms: paid_at_ms,
            state: TradeState::Success,
            prepay_id: ids::prepay_id(),
            prepay_issued_at_ms: paid_at_ms,
            transaction_id: Some(transaction_id.clone()),
            success_at_ms: Some(paid_at_ms),
            refunded_fen: 0,
            refund_count: 0,
        };
        let transaction = transaction_of(&self.merchant, &order);
        self.order_by_transaction_id
            .insert(transaction_id, order.out_trade_no.clone());
        self.orders.insert(order.out_trade_no.clone(), order);
        Ok(transaction)
    }

    /// `POST /v3/refund/domestic/refunds` after its fields were validated.
    pub fn refund(
        &mut self,
        request: &RefundRequest,
        now_ms: UnixMs,
    ) -> Result<RefundOutcome, ApiError> {
        let out_trade_no = self.refund_order_number(request)?;
        if let Some(existing) = self.refunds.get(&request.out_refund_no) {
            if existing.out_trade_no != out_trade_no || existing.refund_fen != request.amount.refund
            {
                return Err(ApiError::reentry_mismatch());
            }
            return Ok(RefundOutcome {
                refund: refund_of(existing),
                created: false,
            });
        }
        if self.refunds.len() >= REFUNDS_MAX {
            return Err(ApiError::simulator_full(&format!("{REFUNDS_MAX} refunds")));
        }
        let order = self
            .orders
            .get_mut(&out_trade_no)
            .expect("refund_order_number found the order");
        if request.amount.total != order.total_fen {
            return Err(ApiError::param(
                "/amount/total",
                "订单金额与原订单金额不一致",
            ));
        }
        if request.amount.refund > order.total_fen - order.refunded_fen {
            return Err(ApiError::param(
                "/amount/refund",
                "申请退款金额超过订单可退金额",
            ));
        }
        if order.refund_count >= REFUNDS_PER_ORDER_MAX {
            let message = format!("一笔订单最多可退款{REFUNDS_PER_ORDER_MAX}次");
            return Err(ApiError::param("/out_refund_no", &message));
        }
        order.refunded_fen += request.amount.refund;
        order.refund_count += 1;
        order.state = TradeState::Refund;
        assert!(
            order.refunded_fen <= order.total_fen,
            "refunded more than paid"
        );
        let record = RefundRecord {
            refund_id: ids::refund_id(),
            out_refund_no: request.out_refund_no.clone(),
            transaction_id: order
                .transaction_id
                .clone()
                .expect("a paid order has an id"),
            out_trade_no,
            total_fen: order.total_fen,
            refund_fen: request.amount.refund,
            status: RefundStatus::Processing,
            created_at_ms: now_ms,
            success_at_ms: None,
            notify_url: request.notify_url.clone(),
        };
        let refund = refund_of(&record);
        self.refunds.insert(record.out_refund_no.clone(), record);
        Ok(RefundOutcome {
            refund,
            created: true,
        })
    }

    /// The paid order a refund request names (by `out_trade_no` or
    /// `transaction_id`; both must agree when both are given).
    fn refund_order_number(&mut self, request: &RefundRequest) -> Result<String, ApiError> {
        let by_id = match &request.transaction_id {
            Some(id) => Some(self.order_by_transaction_id.get(id).cloned()),
            None => None,
        };
        let out_trade_no = match (&request.out_trade_no, by_id) {
            (Some(number), Some(Some(found))) if *number != found => {
                let message = "transaction_id与out_trade_no不是同一笔订单";
                return Err(ApiError::param("/transaction_id", message));
            }
            (Some(number), _) => number.clone(),
            (None, Some(Some(found))) => found,
            (None, _) => return Err(ApiError::resource_not_exists("订单不存在")),
        };
        match self.orders.get(&out_trade_no).map(|order| &order.state) {
            Some(TradeState::Success | TradeState::Refund) => Ok(out_trade_no),
            _ => Err(ApiError::resource_not_exists("订单不存在")),
        }
    }

    /// PROCESSING → SUCCESS; `None` when the refund is unknown or not processing.
    pub fn complete_refund(
        &mut self,
        out_refund_no: &str,
        now_ms: UnixMs,
    ) -> Option<CompletedRefund> {
        let record = self.refunds.get_mut(out_refund_no)?;
        if record.status != RefundStatus::Processing {
            return None;
        }
        record.status = RefundStatus::Success;
        record.success_at_ms = Some(now_ms);
        let resource = RefundResource {
            mchid: self.merchant.mchid.clone(),
            transaction_id: record.transaction_id.clone(),
            out_trade_no: record.out_trade_no.clone(),
            refund_id: record.refund_id.clone(),
            out_refund_no: record.out_refund_no.clone(),
            refund_status: RefundStatus::Success,
            success_time: Some(format_beijing_rfc3339(now_ms)),
            user_received_account: Some(REFUND_ACCOUNT.into()),
            amount: refund_amount(record),
        };
        Some(CompletedRefund {
            resource,
            notify_url: record.notify_url.clone(),
        })
    }

    pub fn refund_by_number(&self, out_refund_no: &str) -> Option<Refund> {
        self.refunds.get(out_refund_no).map(refund_of)
    }

    /// The trade bill's lines for `[from_ms, to_ms)`: one per payment made
    /// then (its trade state as it is now: SUCCESS, or REFUND once refunded)
    /// and one per refund initiated then, in time order.
    pub fn bill_rows(&self, from_ms: UnixMs, to_ms: UnixMs) -> Vec<BillRow> {
        let within = |at_ms: UnixMs| from_ms <= at_ms && at_ms < to_ms;
        let mut timed: Vec<(UnixMs, BillRow)> = Vec::new();
        for order in self.orders.values() {
            if let Some(paid_at_ms) = order.success_at_ms.filter(|&at| within(at)) {
                timed.push((paid_at_ms, self.payment_row(order, paid_at_ms)));
            }
        }
        for record in self.refunds.values() {
            if within(record.created_at_ms) {
                let order = &self.orders[&record.out_trade_no];
                timed.push((record.created_at_ms, self.refund_row(order, record)));
            }
        }
        timed.sort_by(|(at_a, row_a), (at_b, row_b)| {
            (at_a, &row_a.out_trade_no, &row_a.out_refund_no).cmp(&(
                at_b,
                &row_b.out_trade_no,
                &row_b.out_refund_no,
            ))
        });
        timed.into_iter().map(|(_, row)| row).collect()
    }

    fn payment_row(&self, order: &Order, paid_at_ms: UnixMs) -> BillRow {
        BillRow {
            trade_time: format_beijing_bill_time(paid_at_ms),
            appid: self.merchant.appid.clone(),
            mchid: self.merchant.mchid.clone(),
            sub_mchid: "0".into(),
            device_info: String::new(),
            transaction_id: order.transaction_id.clone().unwrap_or_default(),
            out_trade_no: order.out_trade_no.clone(),
            openid: order.openid.clone(),
            trade_type: TRADE_TYPE_JSAPI.into(),
            trade_state: order.state.as_str().to_owned(),
            bank_type: BANK_TYPE.into(),
            currency: CURRENCY_CNY.into(),
            settlement_total_fen: order.total_fen,
            coupon_fen: 0,
            refund_id: "0".into(),
            out_refund_no: "0".into(),
            refund_fen: 0,
            recharge_coupon_refund_fen: 0,
            refund_type: String::new(),
            refund_status: String::new(),
            description: order.description.clone(),
            attach: order.attach.clone().unwrap_or_default(),
            fee_yuan: Decimal::new(order.total_fen * FEE_PER_MILLE, 5),
            rate: FEE_RATE_TEXT.into(),
            total_fen: order.total_fen,
            refund_requested_fen: 0,
            rate_note: String::new(),
        }
    }

    /// A refund line carries the refund, not the order's amount again: its
    /// order amounts are 0, so the summary counts the money in once.
    fn refund_row(&self, order: &Order, record: &RefundRecord) -> BillRow {
        BillRow {
            trade_time: format_beijing_bill_time(record.created_at_ms),
            trade_state: TradeState::Refund.as_str().to_owned(),
            settlement_total_fen: 0,
            refund_id: record.refund_id.clone(),
            out_refund_no: record.out_refund_no.clone(),
            refund_fen: record.refund_fen,
            refund_type: REFUND_CHANNEL.into(),
            refund_status: record.status.as_str().to_owned(),
            fee_yuan: Decimal::new(0, 5),
            total_fen: 0,
            refund_requested_fen: record.refund_fen,
            ..self.payment_row(order, record.created_at_ms)
        }
    }
}

fn transaction_of(merchant: &Merchant, order: &Order) -> Transaction {
    let paid = order.success_at_ms.is_some();
    let trade_state_desc = match order.state {
        TradeState::NotPay => "订单未支付",
        TradeState::Success => "支付成功",
        TradeState::Closed => "订单已关闭",
        TradeState::Refund => "订单发生过退款",
        _ => "",
    };
    Transaction {
        appid: merchant.appid.clone(),
        mchid: merchant.mchid.clone(),
        out_trade_no: order.out_trade_no.clone(),
        transaction_id: order.transaction_id.clone(),
        trade_type: paid.then(|| TRADE_TYPE_JSAPI.to_owned()),
        trade_state: order.state.clone(),
        trade_state_desc: Some(trade_state_desc.to_owned()),
        bank_type: paid.then(|| BANK_TYPE.to_owned()),
        attach: order.attach.clone(),
        success_time: order.success_at_ms.map(format_beijing_rfc3339),
        payer: paid.then(|| Payer {
            openid: order.openid.clone(),
        }),
        amount: TransactionAmount {
            total: order.total_fen,
            payer_total: paid.then_some(order.total_fen),
            currency: Some(CURRENCY_CNY.into()),
            payer_currency: paid.then(|| CURRENCY_CNY.to_owned()),
        },
    }
}

fn refund_amount(record: &RefundRecord) -> RefundAmount {
    RefundAmount {
        total: record.total_fen,
        refund: record.refund_fen,
        payer_total: Some(record.total_fen),
        payer_refund: Some(record.refund_fen),
        currency: Some(CURRENCY_CNY.into()),
    }
}

fn refund_of(record: &RefundRecord) -> Refund {
    Refund {
        refund_id: record.refund_id.clone(),
        out_refund_no: record.out_refund_no.clone(),
        transaction_id: record.transaction_id.clone(),
        out_trade_no: record.out_trade_no.clone(),
        channel: Some(REFUND_CHANNEL.into()),
        user_received_account: Some(REFUND_ACCOUNT.into()),
        status: record.status.clone(),
        success_time: record.success_at_ms.map(format_beijing_rfc3339),
        create_time: Some(format_beijing_rfc3339(record.created_at_ms)),
        amount: refund_amount(record),
    }
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
