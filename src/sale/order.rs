//! The order state machine as one transition table.
//!
//! `reserved → paying → paid → refunding → refunded`, and an unpaid order
//! (`reserved` or `paying`) may instead become `expired` (its hold ran out) or
//! `cancelled` (the buyer gave up). Terminal states accept nothing.

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderAction {
    /// A WeChat Pay prepay was made for the order.
    StartPayment,
    /// WeChat Pay reported the payment as successful.
    ConfirmPayment,
    Cancel,
    Expire,
    RequestRefund,
    CompleteRefund,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action:?} an order that is {from:?}")]
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
            (Reserved, StartPayment) => Ok(Paying),
            (Reserved, ConfirmPayment) => Ok(Paid),
            (Reserved, Cancel) => Ok(Cancelled),
            (Reserved, Expire) => Ok(Expired),
            (Reserved, RequestRefund | CompleteRefund) => illegal,
            (Paying, StartPayment) => Ok(Paying),
            (Paying, ConfirmPayment) => Ok(Paid),
            (Paying, Cancel) => Ok(Cancelled),
            (Paying, Expire) => Ok(Expired),
            (Paying, RequestRefund | CompleteRefund) => illegal,
            (Paid, RequestRefund) => Ok(Refunding),
            (Paid, StartPayment | ConfirmPayment | Cancel | Expire | CompleteRefund) => illegal,
            (Refunding, CompleteRefund) => Ok(Refunded),
            (Refunding, StartPayment | ConfirmPayment | Cancel | Expire | RequestRefund) => illegal,
            (Expired | Cancelled | Refunded, _) => illegal,
        }
    }

    /// Whether the order still holds stock that is not paid for.
    pub fn holds_unpaid_stock(self) -> bool {
        matches!(self, OrderStatus::Reserved | OrderStatus::Paying)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_states_accept_nothing_and_unpaid_ones_can_end() {
        use OrderAction::*;
        use OrderStatus::*;
        let actions = [
            StartPayment,
            ConfirmPayment,
            Cancel,
            Expire,
            RequestRefund,
            CompleteRefund,
        ];
        for terminal in [Expired, Cancelled, Refunded] {
            for action in actions {
                assert!(terminal.next(action).is_err(), "{terminal:?} {action:?}");
            }
        }
        for unpaid in [Reserved, Paying] {
            assert!(unpaid.holds_unpaid_stock());
            assert_eq!(unpaid.next(Cancel), Ok(Cancelled));
            assert_eq!(unpaid.next(Expire), Ok(Expired));
            assert_eq!(unpaid.next(ConfirmPayment), Ok(Paid));
        }
        assert_eq!(
            Paid.next(Cancel),
            Err(IllegalOrderTransition {
                from: Paid,
                action: Cancel
            })
        );
        assert_eq!(Paid.next(RequestRefund), Ok(Refunding));
        assert_eq!(Refunding.next(CompleteRefund), Ok(Refunded));
    }
}
