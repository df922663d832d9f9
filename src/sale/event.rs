//! Events: every state change of the engine, as data.
//!
//! The live path decides (a CAS on the stock, a table lookup) and records
//! the outcome as one of these; [`crate::sale::Engine::apply`] rebuilds the
//! same state from them. That is the contract the journal relies on: append
//! the event before acknowledging, replay the events on start.

use crate::clock::UnixMs;
use crate::ids::{is_valid_out_refund_no, is_valid_wechat_reference};
use crate::sale::lifecycle::SaleAction;
use crate::sale::order::OrderAction;
use crate::sale::payment::{LatePayment, RefundReason};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// Externally tagged (`{"order_reserved":{...}}`): serde decodes it without
// buffering every field first, which halves the decode cost of replay.
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Event {
    SaleCreated {
        at: UnixMs,
        sale: SaleSpec,
    },
    SaleTransitioned {
        at: UnixMs,
        sale_id: String,
        action: SaleAction,
    },
    ItemRestocked {
        at: UnixMs,
        sale_id: String,
        sku_id: String,
        add: i64,
    },
    OrderReserved {
        at: UnixMs,
        order_id: String,
        sale_id: String,
        sku_id: String,
        buyer: String,
        quantity: u32,
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
        idempotency_key: String,
        expires_at: UnixMs,
    },
    /// A cancel or an expiry; the payment actions have events of their own.
    OrderTransitioned {
        at: UnixMs,
        order_id: String,
        action: OrderAction,
    },
    /// A WeChat Pay prepay was made: the order is `paying`.
    PaymentStarted {
        at: UnixMs,
        order_id: String,
        prepay_id: String,
        prepay_valid_until: UnixMs,
    },
    /// A verified payment. `late` says which branch a payment of an expired
    /// or cancelled order took when it was decided, so replay takes the same
    /// one without deciding again (the stock may differ by then).
    PaymentConfirmed {
        at: UnixMs,
        order_id: String,
        transaction_id: String,
        amount_fen: i64,
        /// WeChat Pay's `success_time`, Unix ms.
        paid_at: UnixMs,
        late: Option<LatePayment>,
    },
    /// A paid order's full refund was asked for.
    RefundRequested {
        at: UnixMs,
        order_id: String,
        out_refund_no: String,
        reason: RefundReason,
    },
    /// WeChat Pay reported the refund as done.
    RefundCompleted {
        at: UnixMs,
        order_id: String,
        refund_id: String,
    },
    /// A cluster node leased `units` of the item's global stock from Redis
    /// (`src/cluster/`): they join the node's local stock. Journaled before
    /// the units are reservable, as a restock is.
    LeaseGranted {
        at: UnixMs,
        sale_id: String,
        sku_id: String,
        lease_id: String,
        units: i64,
    },
    /// A cluster node took `units` out of its local stock to give them back
    /// to the global stock; journaled before Redis gets them.
    LeaseReturned {
        at: UnixMs,
        sale_id: String,
        sku_id: String,
        return_id: String,
        units: i64,
    },
}

/// A new order's `OrderReserved` event, borrowed from the live path: the
/// strings stay where the request and the sale hold them, and the journal
/// encodes the same JSON as [`Event::OrderReserved`] without copying them
/// (`a_reservation_encodes_as_its_event_does`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reservation<'a> {
    pub at: UnixMs,
    pub order_id: &'a str,
    pub sale_id: &'a str,
    pub sku_id: &'a str,
    pub buyer: &'a str,
    pub quantity: u32,
    pub amount: Decimal,
    pub idempotency_key: &'a str,
    pub expires_at: UnixMs,
}

impl Reservation<'_> {
    /// The owned event, for sinks that keep events rather than bytes.
    pub fn to_event(&self) -> Event {
        Event::OrderReserved {
            at: self.at,
            order_id: self.order_id.to_owned(),
            sale_id: self.sale_id.to_owned(),
            sku_id: self.sku_id.to_owned(),
            buyer: self.buyer.to_owned(),
            quantity: self.quantity,
            amount: self.amount,
            idempotency_key: self.idempotency_key.to_owned(),
            expires_at: self.expires_at,
        }
    }
}

impl Reservation<'_> {
    /// The record's JSON, the bytes [`Serialize`] writes, field by field
    /// (`crate::json`): this runs for every order.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let mut event = crate::json::Object::new(out);
        let mut fields = event.object("order_reserved");
        fields.i64("at", self.at);
        fields.str("order_id", self.order_id);
        fields.str("sale_id", self.sale_id);
        fields.str("sku_id", self.sku_id);
        fields.str("buyer", self.buyer);
        fields.u32("quantity", self.quantity);
        crate::money::with_decimal_text(self.amount, |text| fields.str("amount", text));
        fields.str("idempotency_key", self.idempotency_key);
        fields.i64("expires_at", self.expires_at);
        fields.end();
        event.end();
    }
}

impl Serialize for Reservation<'_> {
    /// As serde derives it for [`Event::OrderReserved`]: the variant's
    /// name around its fields, in declaration order, the amount as text.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStructVariant;
        let mut fields = serializer.serialize_struct_variant("Event", 3, "order_reserved", 9)?;
        fields.serialize_field("at", &self.at)?;
        fields.serialize_field("order_id", self.order_id)?;
        fields.serialize_field("sale_id", self.sale_id)?;
        fields.serialize_field("sku_id", self.sku_id)?;
        fields.serialize_field("buyer", self.buyer)?;
        fields.serialize_field("quantity", &self.quantity)?;
        fields.serialize_field("amount", &DecimalText(&self.amount))?;
        fields.serialize_field("idempotency_key", self.idempotency_key)?;
        fields.serialize_field("expires_at", &self.expires_at)?;
        fields.end()
    }
}

/// A `Decimal` as `rust_decimal::serde::str` writes it.
struct DecimalText<'a>(&'a Decimal);

impl Serialize for DecimalText<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        rust_decimal::serde::str::serialize(self.0, serializer)
    }
}

/// A sale as the host defined it, validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaleSpec {
    pub sale_id: String,
    pub title: String,
    pub starts_at: Option<UnixMs>,
    pub ends_at: Option<UnixMs>,
    pub hold_seconds: u32,
    pub items: Vec<ItemSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemSpec {
    pub sku_id: String,
    pub title: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub price: Decimal,
    pub stock: i64,
    pub per_user_limit: u32,
}

impl Event {
    pub fn at(&self) -> UnixMs {
        match self {
            Event::SaleCreated { at, .. }
            | Event::SaleTransitioned { at, .. }
            | Event::ItemRestocked { at, .. }
            | Event::OrderReserved { at, .. }
            | Event::OrderTransitioned { at, .. }
            | Event::PaymentStarted { at, .. }
            | Event::PaymentConfirmed { at, .. }
            | Event::RefundRequested { at, .. }
            | Event::RefundCompleted { at, .. }
            | Event::LeaseGranted { at, .. }
            | Event::LeaseReturned { at, .. } => *at,
        }
    }

    /// The order an event moves and the action of the order table it takes;
    /// `None` for sale events and reservations (which make the order).
    pub fn order_step(&self) -> Option<(&str, OrderAction)> {
        let step = match self {
            Event::SaleCreated { .. }
            | Event::SaleTransitioned { .. }
            | Event::ItemRestocked { .. }
            | Event::LeaseGranted { .. }
            | Event::LeaseReturned { .. }
            | Event::OrderReserved { .. } => return None,
            Event::OrderTransitioned {
                order_id, action, ..
            } => (order_id, *action),
            Event::PaymentStarted { order_id, .. } => (order_id, OrderAction::StartPayment),
            Event::PaymentConfirmed { order_id, late, .. } => {
                let action = match late {
                    None => OrderAction::ConfirmPayment,
                    Some(LatePayment::Reinstated) => OrderAction::ReinstatePayment,
                    Some(LatePayment::RefundDue { .. }) => OrderAction::RefundLatePayment,
                };
                (order_id, action)
            }
            Event::RefundRequested { order_id, .. } => (order_id, OrderAction::RequestRefund),
            Event::RefundCompleted { order_id, .. } => (order_id, OrderAction::CompleteRefund),
        };
        Some((step.0.as_str(), step.1))
    }

    /// What an order event must say about itself, whatever the state: the
    /// checks replay and the store share, so a damaged or foreign log is
    /// refused before it touches anything. The engine's live path checks
    /// its inputs first and never builds an event that fails them.
    /// The error names the field.
    pub fn check_order_fields(&self) -> Result<(), (&'static str, String)> {
        match self {
            Event::OrderTransitioned { action, .. } => match action {
                OrderAction::Cancel | OrderAction::Expire => Ok(()),
                other => Err((
                    "action",
                    format!("order_transitioned carries a cancel or an expiry, not {other:?}"),
                )),
            },
            Event::PaymentStarted {
                at,
                prepay_id,
                prepay_valid_until,
                ..
            } => {
                check_reference("prepay_id", prepay_id)?;
                if prepay_valid_until <= at {
                    let message = "the prepay expired before it was made".to_owned();
                    return Err(("prepay_valid_until", message));
                }
                Ok(())
            }
            Event::PaymentConfirmed {
                transaction_id,
                amount_fen,
                late,
                ..
            } => {
                check_reference("transaction_id", transaction_id)?;
                if *amount_fen <= 0 {
                    return Err(("amount_fen", format!("{amount_fen} is not positive")));
                }
                match late {
                    Some(LatePayment::RefundDue { out_refund_no }) => {
                        check_out_refund_no(out_refund_no)
                    }
                    None | Some(LatePayment::Reinstated) => Ok(()),
                }
            }
            Event::RefundRequested { out_refund_no, .. } => check_out_refund_no(out_refund_no),
            Event::RefundCompleted { refund_id, .. } => check_reference("refund_id", refund_id),
            Event::SaleCreated { .. }
            | Event::SaleTransitioned { .. }
            | Event::ItemRestocked { .. }
            | Event::LeaseGranted { .. }
            | Event::LeaseReturned { .. }
            | Event::OrderReserved { .. } => Ok(()),
        }
    }
}

fn check_reference(field: &'static str, value: &str) -> Result<(), (&'static str, String)> {
    if !is_valid_wechat_reference(value) {
        let message = format!("must be 1-64 printable ASCII characters, not {value:?}");
        return Err((field, message));
    }
    Ok(())
}

fn check_out_refund_no(out_refund_no: &str) -> Result<(), (&'static str, String)> {
    if !is_valid_out_refund_no(out_refund_no) {
        let message = format!("must be 1-64 characters of [0-9A-Za-z_-|*@], not {out_refund_no:?}");
        return Err(("out_refund_no", message));
    }
    Ok(())
}
