//! Payments: the half of the order state machine that WeChat Pay drives.
//!
//! The pay route, the notification handler, the payment worker and the
//! reconciler call these methods; each decides under the order's lock and
//! records its decision as one event, which `apply_to_order` (apply.rs)
//! applies for live calls and replay alike. A late payment (the order had
//! expired or been cancelled) is decided once, live: its event says whether
//! the order got its units back or the money is due back, and replay takes
//! that branch without looking at the stock again.
//!
//! Repeats change nothing and journal nothing (WeChat Pay resends
//! notifications; workers retry): a second confirmation of the same
//! transaction, a refund asked twice, a refund completed twice. Their commit
//! is a barrier, so an answer to a repeat still waits until the original is
//! durable — acknowledging a notification whose payment a crash could lose
//! would lose the payment.
//!
//! The reconciler finds the orders waiting on WeChat Pay in
//! [`PendingPayments`], two small indexes kept in step with the orders, so
//! it never scans every order of the node.

use crate::clock::{format_rfc3339, UnixMs};
use crate::ids::{is_valid_out_refund_no, is_valid_wechat_reference, out_refund_no_of};
use crate::inventory::ConcurrentMap;
use crate::journal::Commit;
use crate::money::yuan_to_fen;
use crate::sale::event::Event;
use crate::sale::order_table::OrderRefMut;
use crate::sale::views::{OrderRecord, OrderView};
use crate::sale::{invalid, Engine, OrderAction, OrderStatus, SaleError};
use serde::{Deserialize, Serialize};
use std::collections::BinaryHeap;

/// WeChat Pay's limit on a prepay's `description`, in bytes.
pub const DESCRIPTION_BYTES_MAX: usize = 127;

/// A WeChat Pay prepay: what `wx.requestPayment` is signed over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prepay {
    pub prepay_id: String,
    pub valid_until: UnixMs,
}

/// What the pay route needs to make a WeChat Pay prepay for an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payable {
    pub order_id: String,
    /// The buyer's openid.
    pub buyer: String,
    /// The item's title, cut to [`DESCRIPTION_BYTES_MAX`] on a char boundary.
    pub description: String,
    pub amount_fen: i64,
    /// The hold's end: the prepay must not outlive it.
    pub expires_at: UnixMs,
    /// The order's current prepay, if still valid: reuse it.
    pub prepay: Option<Prepay>,
}

/// A payment WeChat Pay vouched for (a verified notification, a query or
/// the result of a close).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentReceived {
    pub transaction_id: String,
    pub amount_fen: i64,
    /// WeChat Pay's `success_time`.
    pub paid_at: UnixMs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentOutcome {
    /// The order is paid.
    Paid,
    /// This transaction was applied before; nothing changed.
    AlreadyApplied,
    /// A late payment found the units still there: the order is paid.
    Reinstated,
    /// A late payment found the units gone: refund it with this order.
    RefundDue(RefundOrder),
}

/// What the refund call to WeChat Pay needs. The same order's refund
/// always has the same `out_refund_no`, so a retry cannot refund twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundOrder {
    pub order_id: String,
    pub out_refund_no: String,
    pub transaction_id: String,
    pub amount_fen: i64,
    pub reason: RefundReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundReason {
    /// An operator refunded a paid order.
    Admin,
    /// The payment arrived after the order had ended and its units were gone.
    LatePayment,
}

impl RefundReason {
    pub const ALL: [RefundReason; 2] = [RefundReason::Admin, RefundReason::LatePayment];

    pub fn as_str(self) -> &'static str {
        match self {
            RefundReason::Admin => "admin",
            RefundReason::LatePayment => "late_payment",
        }
    }
}

/// The branch a payment of an expired or cancelled order took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum LatePayment {
    /// The units were taken back: the order is paid.
    Reinstated,
    /// No units: the order is refunding under `out_refund_no`.
    RefundDue { out_refund_no: String },
}

/// What WeChat Pay did to an order. Boxed in [`OrderRecord`]: most orders
/// of a flash sale never get this far, and a pointer is all they pay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentState {
    /// The latest prepay.
    pub prepay: Option<Prepay>,
    /// When the latest prepay was made.
    pub started_at: Option<UnixMs>,
    pub transaction_id: Option<String>,
    pub amount_fen: Option<i64>,
    pub refund: Option<RefundRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundRecord {
    pub out_refund_no: String,
    pub reason: RefundReason,
    pub requested_at: UnixMs,
    /// WeChat Pay's id of the refund, once it is done.
    pub refund_id: Option<String>,
}

impl OrderRecord {
    /// The order's amount on the WeChat Pay wire.
    pub fn amount_fen(&self) -> Result<i64, SaleError> {
        yuan_to_fen(self.amount).map_err(|error| {
            SaleError::InvalidState(format!(
                "order `{}` amount {} cannot be paid: {error}",
                self.order_id, self.amount
            ))
        })
    }

    pub fn prepay(&self) -> Option<&Prepay> {
        self.payment()?.prepay.as_ref()
    }

    pub fn transaction_id(&self) -> Option<&str> {
        self.payment()?.transaction_id.as_deref()
    }

    pub fn refund(&self) -> Option<&RefundRecord> {
        self.payment()?.refund.as_ref()
    }

    /// The refund to ask WeChat Pay for; `None` unless a refund was asked.
    pub fn refund_order(&self) -> Option<RefundOrder> {
        let payment = self.payment()?;
        let refund = payment.refund.as_ref()?;
        Some(RefundOrder {
            order_id: self.order_id.to_string(),
            out_refund_no: refund.out_refund_no.clone(),
            transaction_id: payment.transaction_id.clone()?,
            amount_fen: payment.amount_fen?,
            reason: refund.reason,
        })
    }
}

/// Orders waiting on WeChat Pay: `paying` ones by when their payment
/// started, `refunding` ones by when their refund was asked. Kept in step
/// with the orders by `apply_to_order`, rebuilt by snapshot restore.
/// Bounded by the stock on sale (a paying order holds units) and by the
/// refunds asked and not yet done.
#[derive(Default)]
pub(super) struct PendingPayments {
    paying: ConcurrentMap<Box<str>, UnixMs>,
    refunding: ConcurrentMap<Box<str>, UnixMs>,
}

impl PendingPayments {
    /// Follows an order from `from` to `to`; `since` is when `to` began
    /// (a new prepay restarts the wait of a paying order).
    pub(super) fn track(
        &self,
        order_id: &str,
        from: Option<OrderStatus>,
        to: OrderStatus,
        since: UnixMs,
    ) {
        if from == Some(OrderStatus::Paying) && to != OrderStatus::Paying {
            self.paying.remove(order_id);
        }
        if from == Some(OrderStatus::Refunding) && to != OrderStatus::Refunding {
            self.refunding.remove(order_id);
        }
        match to {
            OrderStatus::Paying => {
                self.paying.insert(order_id.into(), since);
            }
            OrderStatus::Refunding => {
                self.refunding.insert(order_id.into(), since);
            }
            _ => {}
        }
    }

    fn oldest_paying(&self, before: UnixMs, limit: usize) -> Vec<Box<str>> {
        oldest(&self.paying, before, limit)
    }

    fn oldest_refunding(&self, limit: usize) -> Vec<Box<str>> {
        oldest(&self.refunding, UnixMs::MAX, limit)
    }
}

/// The `limit` entries older than `before`, oldest first; a heap of at most
/// `limit + 1` entries, whatever the size of the map (grown as needed, so a
/// generous `limit` costs nothing up front).
fn oldest(map: &ConcurrentMap<Box<str>, UnixMs>, before: UnixMs, limit: usize) -> Vec<Box<str>> {
    if limit == 0 {
        return Vec::new();
    }
    let mut newest_kept: BinaryHeap<(UnixMs, Box<str>)> = BinaryHeap::new();
    for entry in map.iter().filter(|entry| *entry.value() < before) {
        newest_kept.push((*entry.value(), entry.key().clone()));
        if newest_kept.len() > limit {
            newest_kept.pop();
        }
    }
    newest_kept
        .into_sorted_vec()
        .into_iter()
        .map(|(_, order_id)| order_id)
        .collect()
}

type LockedOrder<'a> = OrderRefMut<'a>;

impl Engine {
    /// For `POST /v1/orders/{id}/pay`: what the prepay needs. Another
    /// buyer's order is absent; an order that is neither `reserved` nor
    /// `paying`, or whose hold has run out, cannot be paid.
    pub fn payable_order(
        &self,
        buyer: &str,
        order_id: &str,
        now: UnixMs,
    ) -> Result<Payable, SaleError> {
        let order = self
            .orders
            .get(order_id)
            .filter(|order| order.buyer() == buyer)
            .ok_or_else(|| not_found(order_id))?;
        check_payable(&order, now)?;
        let title = &order.sale.spec.items[order.item_index()].title;
        Ok(Payable {
            order_id: order.order_id.to_string(),
            buyer: order.buyer().to_string(),
            description: description_of(title),
            amount_fen: order.amount_fen()?,
            expires_at: order.expires_at,
            prepay: order
                .prepay()
                .filter(|prepay| now < prepay.valid_until)
                .cloned(),
        })
    }

    /// Records the prepay made for the order: `reserved | paying → paying`.
    /// The same checks as [`Engine::payable_order`]; the prepay the order
    /// already has changes nothing.
    pub fn start_payment(
        &self,
        buyer: &str,
        order_id: &str,
        prepay: Prepay,
        now: UnixMs,
    ) -> Result<(OrderView, Commit), SaleError> {
        let mut order = self.buyer_order_mut(buyer, order_id)?;
        check_payable(&order, now)?;
        if !is_valid_wechat_reference(&prepay.prepay_id) {
            return Err(invalid(
                "prepay_id",
                "must be 1-64 printable ASCII characters",
            ));
        }
        if prepay.valid_until <= now {
            return Err(invalid("valid_until", "the prepay has already expired"));
        }
        if order
            .prepay()
            .is_some_and(|current| current.prepay_id == prepay.prepay_id)
        {
            // Another call journaled this prepay: answer once it is durable.
            return Ok((order.view(), self.sink.barrier()));
        }
        let event = Event::PaymentStarted {
            at: now,
            order_id: order_id.to_owned(),
            prepay_id: prepay.prepay_id,
            prepay_valid_until: prepay.valid_until,
        };
        let commit = self.submit_to_order(&mut order, &event)?;
        Ok((order.view(), commit))
    }

    /// Applies a verified payment. `reserved | paying → paid`; the same
    /// transaction again is [`PaymentOutcome::AlreadyApplied`]; a payment
    /// of an expired or cancelled order reinstates it when the item still
    /// has its units, else makes it `refunding`. A wrong amount, or a second
    /// transaction for a paid order, is [`SaleError::PaymentMismatch`] and
    /// changes nothing.
    pub fn confirm_payment(
        &self,
        order_id: &str,
        payment: PaymentReceived,
        now: UnixMs,
    ) -> Result<(PaymentOutcome, Commit), SaleError> {
        let mut order = self.order_mut(order_id)?;
        let due_fen = order.amount_fen()?;
        if payment.amount_fen != due_fen {
            return Err(SaleError::PaymentMismatch(format!(
                "order `{order_id}` is {due_fen} fen; the payment is {} fen",
                payment.amount_fen
            )));
        }
        if let Some(applied) = order.transaction_id() {
            if applied != payment.transaction_id {
                return Err(SaleError::PaymentMismatch(format!(
                    "order `{order_id}` was already paid by transaction {applied}"
                )));
            }
            return Ok((PaymentOutcome::AlreadyApplied, self.sink.barrier()));
        }
        if !is_valid_wechat_reference(&payment.transaction_id) {
            return Err(invalid(
                "transaction_id",
                "must be 1-64 printable ASCII characters",
            ));
        }
        if !matches!(order.status, OrderStatus::Expired | OrderStatus::Cancelled) {
            let event = confirmed(order_id, &payment, now, None);
            let commit = self.submit_to_order(&mut order, &event)?;
            return Ok((PaymentOutcome::Paid, commit));
        }
        let reinstate = confirmed(order_id, &payment, now, Some(LatePayment::Reinstated));
        match self.submit_to_order(&mut order, &reinstate) {
            Ok(commit) => Ok((PaymentOutcome::Reinstated, commit)),
            Err(SaleError::SoldOut | SaleError::InsufficientStock { .. }) => {
                let out_refund_no = refund_number(order_id)?;
                let late = LatePayment::RefundDue { out_refund_no };
                let refund_due = confirmed(order_id, &payment, now, Some(late));
                let commit = self.submit_to_order(&mut order, &refund_due)?;
                let refund = refund_order_of(&order)?;
                Ok((PaymentOutcome::RefundDue(refund), commit))
            }
            Err(error) => Err(error),
        }
    }

    /// An operator's full refund: `paid → refunding`; the paid units go
    /// back on sale and the buyer's limit is freed. A refund already asked
    /// for is returned as it is (retry the WeChat Pay call with the same
    /// `out_refund_no`).
    pub fn request_refund(
        &self,
        order_id: &str,
        reason: RefundReason,
        now: UnixMs,
    ) -> Result<(RefundOrder, Commit), SaleError> {
        let mut order = self.order_mut(order_id)?;
        if order.status == OrderStatus::Refunding {
            return Ok((refund_order_of(&order)?, self.sink.barrier()));
        }
        let event = Event::RefundRequested {
            at: now,
            order_id: order_id.to_owned(),
            out_refund_no: refund_number(order_id)?,
            reason,
        };
        let commit = self.submit_to_order(&mut order, &event)?;
        Ok((refund_order_of(&order)?, commit))
    }

    /// WeChat Pay reported the refund done: `refunding → refunded`. Already
    /// refunded: `false`, nothing changes.
    pub fn complete_refund(
        &self,
        order_id: &str,
        refund_id: &str,
        now: UnixMs,
    ) -> Result<(bool, Commit), SaleError> {
        let mut order = self.order_mut(order_id)?;
        if order.status == OrderStatus::Refunded {
            return Ok((false, self.sink.barrier()));
        }
        if !is_valid_wechat_reference(refund_id) {
            return Err(invalid(
                "refund_id",
                "must be 1-64 printable ASCII characters",
            ));
        }
        let event = Event::RefundCompleted {
            at: now,
            order_id: order_id.to_owned(),
            refund_id: refund_id.to_owned(),
        };
        let commit = self.submit_to_order(&mut order, &event)?;
        Ok((true, commit))
    }

    /// After the order's WeChat Pay order was closed unpaid: `paying →
    /// expired`, its units back on sale as an expiry does.
    pub fn expire_closed_payment(&self, order_id: &str, now: UnixMs) -> Result<Commit, SaleError> {
        let mut order = self.order_mut(order_id)?;
        if order.status != OrderStatus::Paying {
            return Err(SaleError::InvalidState(format!(
                "order `{order_id}` is {}, not paying",
                order.status.as_str()
            )));
        }
        let event = Event::OrderTransitioned {
            at: now,
            order_id: order_id.to_owned(),
            action: OrderAction::Expire,
        };
        self.submit_to_order(&mut order, &event)
    }

    /// `paying` orders whose latest prepay is older than `started_before`,
    /// oldest first, at most `limit`: for the reconciler to query.
    pub fn payments_pending(&self, started_before: UnixMs, limit: usize) -> Vec<String> {
        self.pending
            .oldest_paying(started_before, limit)
            .into_iter()
            .map(String::from)
            .collect()
    }

    /// `refunding` orders, oldest request first, at most `limit`: to retry
    /// or query their refunds.
    pub fn refunds_pending(&self, limit: usize) -> Vec<RefundOrder> {
        self.pending
            .oldest_refunding(limit)
            .iter()
            .filter_map(|order_id| {
                let order = self.orders.get(order_id)?;
                // Refunded since it was listed: skip it.
                (order.status == OrderStatus::Refunding).then(|| order.refund_order())?
            })
            .collect()
    }

    /// The order, locked for a change: nobody else moves it meanwhile.
    pub(super) fn order_mut(&self, order_id: &str) -> Result<LockedOrder<'_>, SaleError> {
        self.orders
            .get_mut(order_id)
            .ok_or_else(|| not_found(order_id))
    }

    /// The buyer's own order, locked; another buyer's order is absent.
    fn buyer_order_mut(&self, buyer: &str, order_id: &str) -> Result<LockedOrder<'_>, SaleError> {
        let order = self.order_mut(order_id)?;
        if order.buyer() != buyer {
            return Err(not_found(order_id));
        }
        Ok(order)
    }

    /// Applies a live event to the locked order, submitting it on the way.
    pub(super) fn submit_to_order(
        &self,
        order: &mut OrderRecord,
        event: &Event,
    ) -> Result<Commit, SaleError> {
        let commit = self.apply_to_order(order, event, || Some(self.sink.submit(event)))?;
        Ok(commit.unwrap_or(Commit::Ready(Ok(0))))
    }
}

/// `reserved | paying`, and the hold not yet run out.
fn check_payable(order: &OrderRecord, now: UnixMs) -> Result<(), SaleError> {
    order
        .status
        .next(OrderAction::StartPayment)
        .map_err(|error| SaleError::InvalidState(error.to_string()))?;
    if now >= order.expires_at {
        return Err(SaleError::InvalidState(format!(
            "the order's hold ran out at {}",
            format_rfc3339(order.expires_at)
        )));
    }
    Ok(())
}

fn confirmed(
    order_id: &str,
    payment: &PaymentReceived,
    now: UnixMs,
    late: Option<LatePayment>,
) -> Event {
    Event::PaymentConfirmed {
        at: now,
        order_id: order_id.to_owned(),
        transaction_id: payment.transaction_id.clone(),
        amount_fen: payment.amount_fen,
        paid_at: payment.paid_at,
        late,
    }
}

fn refund_number(order_id: &str) -> Result<String, SaleError> {
    let out_refund_no = out_refund_no_of(order_id);
    if !is_valid_out_refund_no(&out_refund_no) {
        return Err(SaleError::InvalidState(format!(
            "order id `{order_id}` cannot make a WeChat Pay refund number"
        )));
    }
    Ok(out_refund_no)
}

fn refund_order_of(order: &OrderRecord) -> Result<RefundOrder, SaleError> {
    order
        .refund_order()
        .ok_or_else(|| SaleError::InvalidState(format!("order `{}` has no refund", order.order_id)))
}

/// The title cut to WeChat Pay's byte limit, never inside a character.
/// The item's title as WeChat Pay takes it: characters outside the Basic
/// Multilingual Plane (4-byte UTF-8, most emoji) are refused there, so they
/// are dropped; at most [`DESCRIPTION_BYTES_MAX`] bytes.
fn description_of(title: &str) -> String {
    let mut description = String::with_capacity(title.len().min(DESCRIPTION_BYTES_MAX));
    for character in title.chars().filter(|character| character.len_utf8() < 4) {
        if description.len() + character.len_utf8() > DESCRIPTION_BYTES_MAX {
            break;
        }
        description.push(character);
    }
    if description.trim().is_empty() {
        description = "flash sale item".to_owned();
    }
    description
}

fn not_found(order_id: &str) -> SaleError {
    SaleError::NotFound(format!("order `{order_id}`"))
}

#[cfg(test)]
#[path = "payment_tests.rs"]
mod tests;
