//! Applying events: the one place the engine's state changes, for live
//! requests and for replay alike.
//!
//! A live change hands its event to the sink at a fixed point: after it is
//! validated, before its effect is visible to anyone else. For a release
//! (cancel, expiry) or a restock that point comes before the stock is
//! reservable again, so any reservation that takes that stock is queued,
//! and therefore made durable, after the record that freed it. (A refund
//! returns paid units the same way; a reinstating late payment takes units
//! as a reservation does, before its record.)

use crate::clock::UnixMs;
use crate::inventory::{BuyerKey, Shortage};
use crate::journal::Commit;
use crate::sale::engine::{item_index, shard_hint_of};
use crate::sale::event::{Event, Reservation, SaleSpec};
use crate::sale::payment::{LatePayment, Prepay, RefundReason, RefundRecord};
use crate::sale::replay::{ReplayCursor, ReservedOrder};
use crate::sale::views::{NewOrder, OrderRecord, OrderView};
use crate::sale::{invalid, Engine, EventSink, OrderAction, OrderStatus, Sale, SaleError};
use dashmap::mapref::entry::Entry;
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Engine {
    /// Applies a replayed event. A reservation must find its stock: a log
    /// that would oversell is refused, never applied.
    pub fn apply(&self, event: &Event) -> Result<(), SaleError> {
        if let Some(mut order) = ReservedOrder::of(event) {
            return self.replay_reservation(&mut order, &mut ReplayCursor::default(), false);
        }
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
            // Checked by `replay_reservation`.
            Event::OrderReserved { .. } | Event::SaleTransitioned { .. } => Ok(()),
            Event::LeaseGranted { units, .. } | Event::LeaseReturned { units, .. } => {
                self.check_lease_event(*units)
            }
            Event::OrderTransitioned { .. }
            | Event::PaymentStarted { .. }
            | Event::PaymentConfirmed { .. }
            | Event::RefundRequested { .. }
            | Event::RefundCompleted { .. } => self.check_replayed_order_event(event),
        }
    }

    /// Lease events belong to a cluster node's journal only: a node alone
    /// refuses them rather than sell stock it was never given.
    pub(super) fn check_lease_event(&self, units: i64) -> Result<(), SaleError> {
        if !self.limits.stock_from_leases {
            return Err(SaleError::InvalidState(
                "a lease event in the journal of a node without [cluster]: \
                 configure the cluster this journal was written in"
                    .into(),
            ));
        }
        if !(1..=self.limits.stock_per_item_max).contains(&units) {
            return Err(invalid("units", format!("{units} is not a lease's size")));
        }
        Ok(())
    }

    /// The checks the live path ran under the order's lock, run again on
    /// the replayed event; and a reinstatement must find its units.
    fn check_replayed_order_event(&self, event: &Event) -> Result<(), SaleError> {
        let (order_id, action) = order_step(event)?;
        let order = self
            .orders
            .get(order_id)
            .ok_or_else(|| SaleError::NotFound(format!("order `{order_id}`")))?;
        check_order_event(&order, event, action)?;
        if action == OrderAction::ReinstatePayment {
            let stock = &order.sale.items[order.item_index()].stock;
            if stock.remaining() < i64::from(order.quantity) {
                return Err(SaleError::InsufficientStock {
                    quantity: order.quantity,
                });
            }
        }
        Ok(())
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
            Event::LeaseGranted {
                sale_id,
                sku_id,
                units,
                ..
            } => {
                let sale = self.sale(sale_id)?;
                sale.restock(item_index(&sale, sku_id)?, *units, submit)
            }
            Event::LeaseReturned {
                sale_id,
                sku_id,
                units,
                ..
            } => {
                // Replay only: the live return takes the units first
                // (`Engine::return_unsold`), then journals.
                let sale = self.sale(sale_id)?;
                let stock = &sale.items[item_index(&sale, sku_id)?].stock;
                stock.withdraw(*units).map_err(|_| {
                    SaleError::Replay(format!("lease return exceeds {sku_id}'s unreserved stock"))
                })?;
                Ok(submit())
            }
            // Only replay applies a reservation, through `replay_reservation`
            // (the live path decides in `reserve`).
            Event::OrderReserved { .. } => Err(SaleError::InvalidState(
                "a reservation is not applied as a change".into(),
            )),
            Event::OrderTransitioned { order_id, .. }
            | Event::PaymentStarted { order_id, .. }
            | Event::PaymentConfirmed { order_id, .. }
            | Event::RefundRequested { order_id, .. }
            | Event::RefundCompleted { order_id, .. } => {
                let mut order = self.order_mut(order_id)?;
                self.apply_to_order(&mut order, event, submit)
            }
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
                let sale = Sale::new(
                    spec.clone(),
                    at,
                    self.limits.shard_count,
                    self.limits.stock_from_leases,
                );
                vacant.insert(Arc::new(sale));
                self.sales_changed();
                Ok(commit)
            }
        }
    }

    /// Records a reservation whose stock is already taken, and binds its
    /// idempotency key (after the order is readable: a concurrent duplicate
    /// reads it at once). Answers with the order's view.
    /// `order_id`: the one allocation of the id, shared by the record, the
    /// key and the timer. `names`: the buyer and key as the claim holds them.
    pub(super) fn insert_order(
        &self,
        sale: &Arc<Sale>,
        index: usize,
        reservation: &Reservation<'_>,
        order_id: &Arc<str>,
        names: BuyerKey,
    ) -> OrderView {
        let record = OrderRecord::reserved(NewOrder {
            order_id: Arc::clone(order_id),
            sale: Arc::clone(sale),
            item_index: index,
            names: names.clone(),
            quantity: reservation.quantity,
            amount: reservation.amount,
            created_at: reservation.at,
            expires_at: reservation.expires_at,
        });
        let view = record.view();
        self.orders.insert(Box::new(record));
        // After the insert: a retry that finds the binding reads the order.
        self.keys.bind(&names, order_id);
        self.holds
            .schedule(reservation.expires_at, Arc::clone(order_id));
        sale.counters.orders_created.add(1);
        view
    }

    /// Replays a reservation: the same state `reserve` + `insert_order`
    /// leave, with one lookup per map and the order's three strings shared
    /// by the order, its buyer's count, its key and its hold. Nobody else
    /// touches the engine while it replays (no claims in flight, no expiry
    /// task), which is what lets it skip the live path's probing. A
    /// reservation of nothing or beyond the stock, or of an order id
    /// already taken, is refused before anything changes. `ahead`: the hold
    /// was scheduled by [`Engine::replay_ahead`].
    pub(super) fn replay_reservation(
        &self,
        order: &mut ReservedOrder,
        cursor: &mut ReplayCursor,
        ahead: bool,
    ) -> Result<(), SaleError> {
        if order.quantity == 0 {
            let error = invalid("quantity", "must be at least 1");
            return Err(SaleError::Replay(format!("event refused: {error}")));
        }
        // Times mostly ascend: a load spares most records the atomic update.
        if order.at > self.replayed_at_max.load(Ordering::Acquire) {
            self.replayed_at_max.fetch_max(order.at, Ordering::AcqRel);
        }
        let sale = cursor.sale(self, order.sale_id.as_str())?;
        let index = item_index(sale, order.sku_id.as_str())?;
        let item = &sale.items[index];
        let Some(ids) = order.shared.take() else {
            return Err(SaleError::InvalidState(
                "a reservation applied twice".into(),
            ));
        };
        // The order's shard stays locked until the record is in: one lookup
        // both refuses a repeated id and inserts.
        let Some(vacant) = self.orders.vacant(&ids.order_id) else {
            return Err(SaleError::Replay(format!(
                "order `{}` is reserved twice",
                ids.order_id
            )));
        };
        item.stock
            .reserve(i64::from(order.quantity), 0)
            .map_err(|_| {
                let sku_id = order.sku_id.as_str();
                SaleError::Replay(format!("order reserves more than {sku_id}'s stock"))
            })?;
        // Replay restores what was granted; limits were checked live.
        item.buyers.acquire_replayed(&ids.names, order.quantity);
        if !ahead {
            self.schedule_replayed_hold(&ids, order.expires_at);
        }
        self.keys
            .bind_replayed(ids.names.clone(), Arc::clone(&ids.order_id));
        sale.counters.orders_created.add(1);
        vacant.insert(Box::new(OrderRecord::reserved(NewOrder {
            order_id: ids.order_id,
            sale: Arc::clone(sale),
            item_index: index,
            names: ids.names,
            quantity: order.quantity,
            amount: order.amount,
            created_at: order.at,
            expires_at: order.expires_at,
        })));
        Ok(())
    }

    /// Moves a locked order by one event: cancels, expiries and payment
    /// events, live and replayed alike. Everything that can refuse runs
    /// before `submit` (the table, the event against the order, and the
    /// units a reinstatement takes); after it, nothing can fail.
    pub(super) fn apply_to_order(
        &self,
        order: &mut OrderRecord,
        event: &Event,
        submit: impl FnOnce() -> Option<Commit>,
    ) -> Result<Option<Commit>, SaleError> {
        let (_, action) = order_step(event)?;
        let next = check_order_event(order, event, action)?;
        if action == OrderAction::ReinstatePayment {
            let hint = shard_hint_of(&order.order_id);
            let stock = &order.sale.items[order.item_index()].stock;
            stock
                .reserve(i64::from(order.quantity), hint)
                .map_err(|shortage| match shortage {
                    Shortage::SoldOut => SaleError::SoldOut,
                    Shortage::Insufficient => SaleError::InsufficientStock {
                        quantity: order.quantity,
                    },
                })?;
        }
        // Under the order's lock, before any unit goes back on sale.
        let commit = submit();
        let from = order.status;
        let at = event.at();
        self.move_stock(order, action);
        if commit.is_some() {
            self.tell_buyer_watch(order, action);
        }
        record_payment(order, event);
        order.status = next;
        if next != from {
            order.push_history(next, at);
        }
        self.pending.track(&order.order_id, Some(from), next, at);
        Ok(commit)
    }

    /// A live move that changed the buyer's count, for the cluster's mirror.
    fn tell_buyer_watch(&self, order: &OrderRecord, action: OrderAction) {
        let Some(watch) = self.buyer_watch.get() else {
            return;
        };
        let quantity = i64::from(order.quantity);
        let delta = match action {
            OrderAction::Cancel | OrderAction::Expire | OrderAction::RequestRefund => -quantity,
            OrderAction::ReinstatePayment => quantity,
            _ => return,
        };
        let sale = &order.sale.spec;
        let sku_id = &sale.items[order.item_index()].sku_id;
        watch.changed(&sale.sale_id, sku_id, order.buyer(), delta);
    }

    /// The stock, buyer-limit and counter side of an order's move.
    fn move_stock(&self, order: &OrderRecord, action: OrderAction) {
        let sale = &order.sale;
        let item = &sale.items[order.item_index()];
        let counters = &sale.counters;
        let (quantity, hint) = (order.quantity, shard_hint_of(&order.order_id));
        let units = i64::from(quantity);
        let counter = match action {
            OrderAction::StartPayment => return,
            OrderAction::Cancel | OrderAction::Expire => {
                item.stock.release(units, hint);
                item.buyers.release(order.buyer(), quantity);
                if action == OrderAction::Cancel {
                    &counters.orders_cancelled
                } else {
                    &counters.orders_expired
                }
            }
            OrderAction::RequestRefund => {
                item.stock.return_paid(units, hint);
                item.buyers.release(order.buyer(), quantity);
                return;
            }
            OrderAction::ConfirmPayment => {
                item.stock.mark_paid(units);
                &counters.orders_paid
            }
            OrderAction::ReinstatePayment => {
                // The units were taken before submit. The buyer's limit was
                // checked when they ordered; the payment is not refused for it.
                item.stock.mark_paid(units);
                let _ = item.buyers.try_acquire(&order.names, quantity, u32::MAX);
                counters.orders_paid.fetch_add(1, Ordering::Relaxed);
                &counters.orders_reinstated
            }
            OrderAction::RefundLatePayment => &counters.late_refunds,
            OrderAction::CompleteRefund => &counters.orders_refunded,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The order an order event names and the table action it takes.
fn order_step(event: &Event) -> Result<(&str, OrderAction), SaleError> {
    event
        .order_step()
        .ok_or_else(|| SaleError::InvalidState("not an order event".into()))
}

/// What an order event must satisfy before it is applied, live or
/// replayed: its own fields, the order table, and the order it names.
/// Returns the status the order moves to.
fn check_order_event(
    order: &OrderRecord,
    event: &Event,
    action: OrderAction,
) -> Result<OrderStatus, SaleError> {
    event
        .check_order_fields()
        .map_err(|(field, message)| invalid(field, message))?;
    let next = order
        .status
        .next(action)
        .map_err(|error| SaleError::InvalidState(error.to_string()))?;
    match event {
        Event::PaymentConfirmed { amount_fen, .. } => {
            let due_fen = order.amount_fen()?;
            if *amount_fen != due_fen {
                return Err(SaleError::PaymentMismatch(format!(
                    "order `{}` is {due_fen} fen; the payment is {amount_fen} fen",
                    order.order_id
                )));
            }
        }
        Event::RefundRequested { .. } if order.transaction_id().is_none() => {
            let message = format!("order `{}` has no payment to refund", order.order_id);
            return Err(SaleError::InvalidState(message));
        }
        _ => {}
    }
    Ok(next)
}

/// The payment data an event brings to its order.
fn record_payment(order: &mut OrderRecord, event: &Event) {
    match event {
        Event::PaymentStarted {
            at,
            prepay_id,
            prepay_valid_until,
            ..
        } => {
            let payment = order.payment_mut();
            payment.prepay = Some(Prepay {
                prepay_id: prepay_id.clone(),
                valid_until: *prepay_valid_until,
            });
            payment.started_at = Some(*at);
        }
        Event::PaymentConfirmed {
            at,
            transaction_id,
            amount_fen,
            paid_at,
            late,
            ..
        } => {
            order.set_paid_at(*paid_at);
            let payment = order.payment_mut();
            payment.transaction_id = Some(transaction_id.clone());
            payment.amount_fen = Some(*amount_fen);
            if let Some(LatePayment::RefundDue { out_refund_no }) = late {
                payment.refund = Some(RefundRecord {
                    out_refund_no: out_refund_no.clone(),
                    reason: RefundReason::LatePayment,
                    requested_at: *at,
                    refund_id: None,
                });
            }
        }
        Event::RefundRequested {
            at,
            out_refund_no,
            reason,
            ..
        } => {
            order.payment_mut().refund = Some(RefundRecord {
                out_refund_no: out_refund_no.clone(),
                reason: *reason,
                requested_at: *at,
                refund_id: None,
            });
        }
        Event::RefundCompleted { refund_id, .. } => {
            if let Some(refund) = order.payment_mut().refund.as_mut() {
                refund.refund_id = Some(refund_id.clone());
            }
        }
        Event::SaleCreated { .. }
        | Event::SaleTransitioned { .. }
        | Event::ItemRestocked { .. }
        | Event::LeaseGranted { .. }
        | Event::LeaseReturned { .. }
        | Event::OrderReserved { .. }
        | Event::OrderTransitioned { .. } => {}
    }
}
