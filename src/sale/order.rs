//! The order state machine as one transition table.
//!
//! `reserved → paying → paid → refunding → refunded`, and an unpaid order
//! (`reserved` or `paying`) may instead become `expired` (its hold ran out) or
//! `cancelled` (the buyer gave up). WeChat Pay cannot be stopped from taking
//! a payment the buyer already started, so an `expired` or `cancelled` order
//! still accepts a late payment: it becomes `paid` again when the item still
//! has the units, `refunding` when it has not. `refunded` accepts nothing.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Reserved,
    Paying,
    Paid,
    Expired,
    Cancelled,
    Refunding,
    Refunded,
}

/// What can happen to an order. Cancels and expiries are journaled as
/// `order_transitioned`; each payment action has an event of its own that
/// carries the payment's data (`sale::event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderAction {
    /// A WeChat Pay prepay was made for the order.
    StartPayment,
    /// WeChat Pay reported the payment as successful, in time.
    ConfirmPayment,
    /// A payment arrived after the order expired or was cancelled, and the
    /// item still had the units: the order is paid after all.
    ReinstatePayment,
    /// A payment arrived after the order expired or was cancelled, and the
    /// units were gone: the money goes back.
    RefundLatePayment,
    Cancel,
    Expire,
    RequestRefund,
    CompleteRefund,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {} an order that is {}", action.verb(), from.as_str())]
pub struct IllegalOrderTransition {
    pub from: OrderStatus,
    pub action: OrderAction,
}

impl OrderStatus {
    pub fn next(self, action: OrderAction) -> Result<OrderStatus, IllegalOrderTransition> {
        use OrderAction::*;
        use OrderStatus::*;
        let illegal = Err(IllegalOrderTransition { from: self, action });
        match (self, action) {
            (Reserved | Paying, StartPayment) => Ok(Paying),
            (Reserved | Paying, ConfirmPayment) => Ok(Paid),
            (Reserved | Paying, Cancel) => Ok(Cancelled),
            (Reserved | Paying, Expire) => Ok(Expired),
            (Reserved | Paying, ReinstatePayment | RefundLatePayment) => illegal,
            (Reserved | Paying, RequestRefund | CompleteRefund) => illegal,
            (Paid, RequestRefund) => Ok(Refunding),
            (Paid, StartPayment | ConfirmPayment | ReinstatePayment | RefundLatePayment) => illegal,
            (Paid, Cancel | Expire | CompleteRefund) => illegal,
            (Expired | Cancelled, ReinstatePayment) => Ok(Paid),
            (Expired | Cancelled, RefundLatePayment) => Ok(Refunding),
            (Expired | Cancelled, StartPayment | ConfirmPayment | Cancel | Expire) => illegal,
            (Expired | Cancelled, RequestRefund | CompleteRefund) => illegal,
            (Refunding, CompleteRefund) => Ok(Refunded),
            (Refunding, StartPayment | ConfirmPayment | ReinstatePayment) => illegal,
            (Refunding, RefundLatePayment | Cancel | Expire | RequestRefund) => illegal,
            (Refunded, _) => illegal,
        }
    }

    /// Whether the order still holds stock that is not paid for.
    pub fn holds_unpaid_stock(self) -> bool {
        matches!(self, OrderStatus::Reserved | OrderStatus::Paying)
    }

    /// Whether the order holds units of the item, paid or not: these are
    /// the orders the buyer's `per_user_limit` counts.
    pub fn holds_stock(self) -> bool {
        matches!(
            self,
            OrderStatus::Reserved | OrderStatus::Paying | OrderStatus::Paid
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Reserved => "reserved",
            OrderStatus::Paying => "paying",
            OrderStatus::Paid => "paid",
            OrderStatus::Expired => "expired",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Refunding => "refunding",
            OrderStatus::Refunded => "refunded",
        }
    }
}

impl OrderAction {
    pub const ALL: [OrderAction; 8] = [
        OrderAction::StartPayment,
        OrderAction::ConfirmPayment,
        OrderAction::ReinstatePayment,
        OrderAction::RefundLatePayment,
        OrderAction::Cancel,
        OrderAction::Expire,
        OrderAction::RequestRefund,
        OrderAction::CompleteRefund,
    ];

    /// The action as the refusal names it: `cannot <verb> an order that is paid`.
    fn verb(self) -> &'static str {
        match self {
            OrderAction::StartPayment => "pay",
            OrderAction::ConfirmPayment => "confirm a payment of",
            OrderAction::ReinstatePayment => "reinstate",
            OrderAction::RefundLatePayment => "refund a late payment of",
            OrderAction::Cancel => "cancel",
            OrderAction::Expire => "expire",
            OrderAction::RequestRefund => "refund",
            OrderAction::CompleteRefund => "complete the refund of",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pair_of_the_table_is_decided() {
        use OrderAction::*;
        use OrderStatus::*;
        let legal = [
            (Reserved, StartPayment, Paying),
            (Reserved, ConfirmPayment, Paid),
            (Reserved, Cancel, Cancelled),
            (Reserved, Expire, Expired),
            (Paying, StartPayment, Paying),
            (Paying, ConfirmPayment, Paid),
            (Paying, Cancel, Cancelled),
            (Paying, Expire, Expired),
            (Paid, RequestRefund, Refunding),
            (Expired, ReinstatePayment, Paid),
            (Expired, RefundLatePayment, Refunding),
            (Cancelled, ReinstatePayment, Paid),
            (Cancelled, RefundLatePayment, Refunding),
            (Refunding, CompleteRefund, Refunded),
        ];
        let statuses = [
            Reserved, Paying, Paid, Expired, Cancelled, Refunding, Refunded,
        ];
        for from in statuses {
            for action in OrderAction::ALL {
                let expected = legal.iter().find(|(f, a, _)| *f == from && *a == action);
                match (from.next(action), expected) {
                    (Ok(to), Some((_, _, want))) => assert_eq!(to, *want),
                    (Err(error), None) => {
                        assert_eq!(error, IllegalOrderTransition { from, action })
                    }
                    (got, want) => panic!("{from:?} {action:?}: got {got:?}, want {want:?}"),
                }
            }
        }
    }

    #[test]
    fn refusals_read_as_sentences() {
        let refused = OrderStatus::Paid.next(OrderAction::Cancel).unwrap_err();
        assert_eq!(refused.to_string(), "cannot cancel an order that is paid");
        let refused = OrderStatus::Expired
            .next(OrderAction::StartPayment)
            .unwrap_err();
        assert_eq!(refused.to_string(), "cannot pay an order that is expired");
    }

    #[test]
    fn only_live_orders_hold_stock() {
        use OrderStatus::*;
        for status in [Reserved, Paying] {
            assert!(status.holds_unpaid_stock() && status.holds_stock());
        }
        assert!(Paid.holds_stock() && !Paid.holds_unpaid_stock());
        for status in [Expired, Cancelled, Refunding, Refunded] {
            assert!(!status.holds_stock() && !status.holds_unpaid_stock());
        }
    }
}
