//! Applying events: the one place the engine's state changes, for live
//! requests and for replay alike.
//!
//! A live change hands its event to the sink at a fixed point: after it is
//! validated, before its effect is visible to anyone else. For a release
//! (cancel, expiry) or a restock that point comes before the stock is
//! reservable again, so any reservation that takes that stock is queued,
//! and therefore made durable, after the record that freed it.

use crate::clock::UnixMs;
use crate::journal::Commit;
use crate::sale::engine::{item_index, shard_hint_of};
use crate::sale::event::{Event, SaleSpec};
use crate::sale::views::{OrderRecord, OrderView};
use crate::sale::{Engine, EventSink, OrderAction, OrderStatus, Sale, SaleError};
use dashmap::mapref::entry::Entry;
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Engine {
    /// Applies a replayed event. A reservation must find its stock: a log
    /// that would oversell is refused, never applied.
    pub fn apply(&self, event: &Event) -> Result<(), SaleError> {
        self.check_replayed(event)
            .map_err(|error| SaleError::Replay(format!("event refused: {error}")))?;
        self.replayed_at_max.fetch_max(event.at(), Ordering::AcqRel);
        self.apply_with(event, None).map(drop)
    }

    /// A replayed event gets the checks its live request had: the journal
    /// is trusted for order, not for content (a damaged or foreign log must
    /// be refused with an error, never panic or corrupt the stock).
    fn check_replayed(&self, event: &Event) -> Result<(), SaleError> {
        match event {
            Event::SaleCreated { sale, .. } => self.validate_sale(sale),
            Event::ItemRestocked {
                sale_id,
                sku_id,
                add,
                ..
            } => {
                let sale = self.sale(sale_id)?;
                let stock = sale.items[item_index(&sale, sku_id)?].stock.counts().stock;
                let room = self.limits.stock_per_item_max - stock;
                if *add < 1 || *add > room {
                    return Err(SaleError::Invalid {
                        field: "add".into(),
                        message: format!("{add} does not fit the item's stock"),
                    });
                }
                Ok(())
            }
            Event::OrderReserved { quantity, .. } if *quantity == 0 => Err(SaleError::Invalid {
                field: "quantity".into(),
                message: "must be at least 1".into(),
            }),
            _ => Ok(()),
        }
    }

    /// Applies a live event, submitting it to the sink on the way.
    pub(super) fn apply_live(&self, event: &Event) -> Result<Commit, SaleError> {
        let commit = self.apply_with(event, Some(&*self.sink))?;
        Ok(commit.unwrap_or(Commit::Ready(Ok(0))))
    }

    fn apply_with(
        &self,
        event: &Event,
        sink: Option<&dyn EventSink>,
    ) -> Result<Option<Commit>, SaleError> {
        let submit = || sink.map(|sink| sink.submit(event));
        match event {
            Event::SaleCreated { at, sale } => self.apply_sale_created(sale, *at, submit),
            Event::SaleTransitioned {
                sale_id, action, ..
            } => self.sale(sale_id)?.transition(*action, submit),
            Event::ItemRestocked {
                sale_id,
                sku_id,
                add,
                ..
            } => {
                let sale = self.sale(sale_id)?;
                sale.restock(item_index(&sale, sku_id)?, *add, submit)
            }
            Event::OrderReserved {
                sale_id,
                sku_id,
                buyer,
                quantity,
                ..
            } => {
                let sale = self.sale(sale_id)?;
                let index = item_index(&sale, sku_id)?;
                let item = &sale.items[index];
                // Replay restores what was granted; limits were checked live.
                let _ = item.buyers.try_acquire(buyer, *quantity, u32::MAX);
                item.stock.reserve(i64::from(*quantity), 0).map_err(|_| {
                    SaleError::Replay(format!("order reserves more than {sku_id}'s stock"))
                })?;
                let commit = submit();
                self.insert_order(&sale, index, event, false);
                Ok(commit)
            }
            Event::OrderTransitioned {
                at,
                order_id,
                action,
            } => self.apply_order_transition(order_id, *action, *at, submit),
        }
    }

    fn apply_sale_created(
        &self,
        spec: &SaleSpec,
        at: UnixMs,
        submit: impl FnOnce() -> Option<Commit>,
    ) -> Result<Option<Commit>, SaleError> {
        match self.sales.entry(spec.sale_id.as_str().into()) {
            Entry::Occupied(_) => Err(SaleError::InvalidState(format!(
                "sale `{}` already exists",
                spec.sale_id
            ))),
            Entry::Vacant(vacant) => {
                let commit = submit();
                let sale = Sale::new(spec.clone(), at, self.limits.shard_count);
                vacant.insert(Arc::new(sale));
                Ok(commit)
            }
        }
    }

    /// Records a reservation whose stock is already taken, and binds its
    /// idempotency key (after the order is readable: a concurrent duplicate
    /// reads it at once).
    /// `want_view`: the live path answers with the order; replay does not
    /// pay for formatting a view it would throw away.
    pub(super) fn insert_order(
        &self,
        sale: &Arc<Sale>,
        index: usize,
        event: &Event,
        want_view: bool,
    ) -> Option<OrderView> {
        let Event::OrderReserved {
            at,
            order_id,
            buyer,
            quantity,
            amount,
            idempotency_key,
            expires_at,
            ..
        } = event
        else {
            unreachable!("insert_order is only called with OrderReserved");
        };
        let record = OrderRecord {
            order_id: order_id.clone(),
            sale: Arc::clone(sale),
            item_index: index,
            buyer: buyer.clone(),
            quantity: *quantity,
            amount: *amount,
            idempotency_key: idempotency_key.clone(),
            status: OrderStatus::Reserved,
            created_at: *at,
            expires_at: *expires_at,
            paid_at: None,
            history: vec![(OrderStatus::Reserved, *at)],
        };
        let view = want_view.then(|| record.view());
        self.orders.insert(order_id.as_str().into(), record);
        self.keys.bind(buyer, idempotency_key, order_id);
        self.holds.schedule(*expires_at, order_id);
        sale.counters.orders_created.fetch_add(1, Ordering::Relaxed);
        view
    }

    fn apply_order_transition(
        &self,
        order_id: &str,
        action: OrderAction,
        at: UnixMs,
        submit: impl FnOnce() -> Option<Commit>,
    ) -> Result<Option<Commit>, SaleError> {
        let mut order = self
            .orders
            .get_mut(order_id)
            .ok_or_else(|| SaleError::NotFound(format!("order `{order_id}`")))?;
        let next = order
            .status
            .next(action)
            .map_err(|error| SaleError::InvalidState(error.to_string().to_lowercase()))?;
        // Under the order's lock, before the stock is released.
        let commit = submit();
        let item = &order.sale.items[order.item_index];
        let quantity = order.quantity;
        let counters = &order.sale.counters;
        match next {
            OrderStatus::Cancelled | OrderStatus::Expired => {
                item.stock
                    .release(i64::from(quantity), shard_hint_of(order_id));
                item.buyers.release(&order.buyer, quantity);
                let counter = match next {
                    OrderStatus::Cancelled => &counters.orders_cancelled,
                    _ => &counters.orders_expired,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
            OrderStatus::Paid => {
                item.stock.mark_paid(i64::from(quantity));
                order.paid_at = Some(at);
            }
            _ => {}
        }
        order.status = next;
        order.history.push((next, at));
        Ok(commit)
    }
}
