//! Events: every state change of the engine, as data.
//!
//! The live path decides (a CAS on the stock, a table lookup) and records
//! the outcome as one of these; [`crate::sale::Engine::apply`] rebuilds the
//! same state from them. That is the contract the journal relies on: append
//! the event before acknowledging, replay the events on start.

use crate::clock::UnixMs;
use crate::sale::lifecycle::SaleAction;
use crate::sale::order::OrderAction;
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
    OrderTransitioned {
        at: UnixMs,
        order_id: String,
        action: OrderAction,
    },
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
            | Event::OrderTransitioned { at, .. } => *at,
        }
    }
}
