//! Journal replay on two cores: what a record becomes between the thread
//! that reads and decodes the journal and the thread that applies it.
//!
//! Nearly every record of a flash sale is an `order_reserved`. The reader
//! decodes it straight into the strings the engine keeps (the order id,
//! shared by the order, its key's binding and its hold; the buyer and the
//! key as one [`BuyerKey`], shared by the order, its buyer's count and its
//! key; the sale and item ids travel inline), and does the part of the reservation that depends on no
//! earlier record: it schedules the hold ([`Engine::replay_ahead`]). The
//! applier does the rest, in journal order ([`Engine::apply_replayed`]):
//! the stock, the buyer's count, the order record and the key, refusing
//! what the live path would never have journaled. Any other record is an
//! [`Event`], applied as [`Engine::apply`] applies it.
//!
//! Holds scheduled ahead are the same as scheduled in order: they are a
//! heap, whatever order they arrive in, and nothing pops it while the
//! journal replays. A record the applier refuses fails the whole replay,
//! and the engine is dropped with it. (The key depends on no earlier record
//! either and could be bound ahead too; bound by the reader, it made the
//! reader the slower of the two threads: README, "Measured".)

use crate::clock::UnixMs;
use crate::inventory::BuyerKey;
use crate::sale::event::Event;
use crate::sale::{Engine, Sale, SaleError};
use rust_decimal::Decimal;
use serde::Deserialize;
use std::borrow::Cow;
use std::sync::Arc;

/// One decoded journal record.
pub enum Replayed {
    Reserved(ReservedOrder),
    Event(Event),
}

/// An `order_reserved` record with its shared strings already made.
pub struct ReservedOrder {
    pub(super) at: UnixMs,
    /// Taken (moved into the engine) by the applier; the rest of the
    /// record goes back to the reader to be dropped where it was allocated.
    pub(super) shared: Option<SharedIds>,
    pub(super) sale_id: Name,
    pub(super) sku_id: Name,
    pub(super) quantity: u32,
    pub(super) amount: Decimal,
    pub(super) expires_at: UnixMs,
}

/// A sale or item id as the reader hands it over. Ids are at most 32
/// bytes (`ids::is_valid_host_id`), so they travel inline and cost the
/// reader no allocation; a longer one (which can name no sale, and is
/// refused as not found) goes on the heap.
pub(super) enum Name {
    Inline { len: u8, bytes: [u8; Name::INLINE] },
    Heap(Box<str>),
}

impl Name {
    const INLINE: usize = 32;

    fn new(name: &str) -> Name {
        if name.len() > Name::INLINE {
            return Name::Heap(name.into());
        }
        let mut bytes = [0; Name::INLINE];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        Name::Inline {
            len: name.len() as u8,
            bytes,
        }
    }

    pub(super) fn as_str(&self) -> &str {
        match self {
            // A whole `str` was copied in, so this never fails.
            Name::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Name::Heap(name) => name,
        }
    }
}

pub(super) struct SharedIds {
    pub(super) order_id: Arc<str>,
    pub(super) names: BuyerKey,
}

/// `Event::OrderReserved` on the wire, with the three shared strings
/// borrowed from the payload when they hold no escapes. It accepts exactly
/// what `Event` accepts for this variant (the same fields, types and
/// `deny_unknown_fields`); anything it refuses is decoded again as an
/// `Event`, so a bad record is described as before.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum ReservedWire<'a> {
    OrderReserved {
        at: UnixMs,
        #[serde(borrow)]
        order_id: Cow<'a, str>,
        #[serde(borrow)]
        sale_id: Cow<'a, str>,
        #[serde(borrow)]
        sku_id: Cow<'a, str>,
        #[serde(borrow)]
        buyer: Cow<'a, str>,
        quantity: u32,
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
        #[serde(borrow)]
        idempotency_key: Cow<'a, str>,
        expires_at: UnixMs,
    },
}

impl Replayed {
    /// Decodes a journal payload (JSON, as `serde_json` wrote the event).
    pub fn decode(payload: &[u8]) -> Result<Replayed, serde_json::Error> {
        if payload.starts_with(br#"{"order_reserved":"#) {
            if let Ok(ReservedWire::OrderReserved {
                at,
                order_id,
                sale_id,
                sku_id,
                buyer,
                quantity,
                amount,
                idempotency_key,
                expires_at,
            }) = serde_json::from_slice(payload)
            {
                return Ok(Replayed::Reserved(ReservedOrder {
                    at,
                    shared: Some(SharedIds {
                        order_id: Arc::from(&*order_id),
                        names: BuyerKey::new(&buyer, &idempotency_key),
                    }),
                    sale_id: Name::new(&sale_id),
                    sku_id: Name::new(&sku_id),
                    quantity,
                    amount,
                    expires_at,
                }));
            }
        }
        serde_json::from_slice(payload).map(Replayed::Event)
    }
}

impl ReservedOrder {
    /// The same reservation from an event (copies its strings once).
    pub(super) fn of(event: &Event) -> Option<ReservedOrder> {
        let Event::OrderReserved {
            at,
            order_id,
            sale_id,
            sku_id,
            buyer,
            quantity,
            amount,
            idempotency_key,
            expires_at,
        } = event
        else {
            return None;
        };
        Some(ReservedOrder {
            at: *at,
            shared: Some(SharedIds {
                order_id: order_id.as_str().into(),
                names: BuyerKey::new(buyer, idempotency_key),
            }),
            sale_id: Name::new(sale_id),
            sku_id: Name::new(sku_id),
            quantity: *quantity,
            amount: *amount,
            expires_at: *expires_at,
        })
    }
}

/// The applier's memory between records: the sale of the last
/// reservation, so a run of orders for one sale looks it up once. Sales
/// are never removed and an id never names another sale, so a sale found
/// once stays the right one.
#[derive(Default)]
pub struct ReplayCursor {
    sale: Option<Arc<Sale>>,
}

impl ReplayCursor {
    pub(super) fn sale(&mut self, engine: &Engine, sale_id: &str) -> Result<&Arc<Sale>, SaleError> {
        if self
            .sale
            .as_ref()
            .is_none_or(|sale| sale.spec.sale_id != sale_id)
        {
            self.sale = Some(engine.sale(sale_id)?);
        }
        Ok(self.sale.as_ref().expect("just set"))
    }
}

impl Engine {
    /// Reader side: schedules a reservation's hold, which depends on no
    /// earlier record (see the module doc). Only for records
    /// then applied with [`Engine::apply_replayed`] with `ahead` set, by one
    /// reader, in journal order.
    pub fn replay_ahead(&self, record: &Replayed) {
        if let Replayed::Reserved(order) = record {
            if let Some(ids) = &order.shared {
                self.schedule_replayed_hold(ids, order.expires_at);
            }
        }
    }

    /// Applier side: applies one decoded record in journal order; `ahead`
    /// says [`Engine::replay_ahead`] has already run for it. A reservation's
    /// shared strings move into the engine.
    pub fn apply_replayed(
        &self,
        record: &mut Replayed,
        cursor: &mut ReplayCursor,
        ahead: bool,
    ) -> Result<(), SaleError> {
        match record {
            Replayed::Reserved(order) => self.replay_reservation(order, cursor, ahead),
            Replayed::Event(event) => self.apply(event),
        }
    }

    pub(super) fn schedule_replayed_hold(&self, ids: &SharedIds, expires_at: UnixMs) {
        self.holds
            .schedule_replayed(expires_at, Arc::clone(&ids.order_id));
    }
}

#[cfg(test)]
#[path = "replay_tests.rs"]
mod tests;
