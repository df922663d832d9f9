//! The engine: all sales, orders, idempotency keys and hold timers of one
//! node, and the one place their state changes.
//!
//! Every change is an [`Event`]. Host actions, cancels and expiries build the
//! event first and go through [`Engine::apply`], the same function replay
//! uses. A reservation decides with a CAS on the stock, then records its
//! outcome through the same `insert_order` that replay uses. Callers get the
//! event back to journal it before they acknowledge.

use crate::clock::UnixMs;
use crate::ids::{is_valid_host_id, OrderIds};
use crate::inventory::{IdempotencyKeys, KeyClaim, OrderRequest, Shortage};
use crate::sale::event::{Event, SaleSpec};
use crate::sale::holds::HoldTimers;
use crate::sale::views::{AdminOrderView, OrderRecord, OrderView, SaleStats, SaleView};
use crate::sale::{invalid, OrderAction, OrderStatus, RejectReason, Sale, SaleAction, SaleError};
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use rust_decimal::Decimal;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub const HOLD_SECONDS_MIN: u32 = 60;
pub const HOLD_SECONDS_MAX: u32 = 3600;
pub const TITLE_CHARS_MAX: usize = 200;
pub const PER_USER_LIMIT_MAX: u32 = 10_000;

/// The bounds the engine enforces, from `config`.
#[derive(Debug, Clone)]
pub struct EngineLimits {
    pub shard_count: usize,
    pub sales_max: usize,
    pub items_per_sale_max: usize,
    pub stock_per_item_max: i64,
    /// Orders this node makes before it refuses more (cancelled ones count).
    pub orders_max: u64,
}

/// A buyer's order request, after authentication and parsing.
pub struct PlaceOrder<'a> {
    pub buyer: &'a str,
    pub idempotency_key: &'a str,
    pub request: OrderRequest,
    /// Which stock shard to try first; callers spread it (per worker thread).
    pub shard_hint: usize,
}

#[derive(Debug)]
pub struct Placed {
    pub order: OrderView,
    /// True when the key had already made this order: nothing changed.
    pub replayed: bool,
    /// The event to journal; `None` for a replay.
    pub event: Option<Event>,
}

pub struct Engine {
    limits: EngineLimits,
    sales: DashMap<Box<str>, Arc<Sale>>,
    orders: DashMap<Box<str>, OrderRecord>,
    keys: IdempotencyKeys,
    holds: HoldTimers,
    order_ids: OrderIds,
}

impl Engine {
    pub fn new(limits: EngineLimits, started_at: UnixMs) -> Engine {
        assert!(limits.shard_count > 0);
        Engine {
            limits,
            sales: DashMap::new(),
            orders: DashMap::new(),
            keys: IdempotencyKeys::default(),
            holds: HoldTimers::default(),
            order_ids: OrderIds::new(started_at),
        }
    }

    // ---- host actions ----------------------------------------------------

    pub fn create_sale(&self, spec: SaleSpec, now: UnixMs) -> Result<(SaleView, Event), SaleError> {
        self.validate_sale(&spec)?;
        if self.sales.len() >= self.limits.sales_max {
            return Err(SaleError::InvalidState(format!(
                "this node already holds the maximum of {} sales",
                self.limits.sales_max
            )));
        }
        let sale_id = spec.sale_id.clone();
        let event = Event::SaleCreated {
            at: now,
            sale: spec,
        };
        self.apply(&event)?;
        Ok((self.sale_view(&sale_id, now)?, event))
    }

    pub fn sale_action(
        &self,
        sale_id: &str,
        action: SaleAction,
        now: UnixMs,
    ) -> Result<(SaleView, Event), SaleError> {
        let event = Event::SaleTransitioned {
            at: now,
            sale_id: sale_id.to_owned(),
            action,
        };
        self.apply(&event)?;
        Ok((self.sale_view(sale_id, now)?, event))
    }

    pub fn restock(
        &self,
        sale_id: &str,
        sku_id: &str,
        add: i64,
        now: UnixMs,
    ) -> Result<(SaleStats, Event), SaleError> {
        let sale = self.sale(sale_id)?;
        let index = item_index(&sale, sku_id)?;
        let stock = sale.items[index].stock.counts().stock;
        if add < 1 || add > self.limits.stock_per_item_max - stock {
            return Err(invalid(
                "add",
                format!(
                    "must be at least 1 and keep the item's stock within {}",
                    self.limits.stock_per_item_max
                ),
            ));
        }
        let event = Event::ItemRestocked {
            at: now,
            sale_id: sale_id.to_owned(),
            sku_id: sku_id.to_owned(),
            add,
        };
        self.apply(&event)?;
        Ok((SaleStats::of(&sale, now), event))
    }

    // ---- the order path --------------------------------------------------

    pub fn place_order(&self, command: PlaceOrder<'_>, now: UnixMs) -> Result<Placed, SaleError> {
        let sale = self.sale(&command.request.sale_id)?;
        let index = item_index(&sale, &command.request.sku_id)?;
        let limit = sale.spec.items[index].per_user_limit;
        let quantity = command.request.quantity;
        if quantity == 0 || quantity > limit {
            return Err(invalid(
                "quantity",
                format!("must be within 1..={limit} for this item"),
            ));
        }
        let (buyer, key) = (command.buyer, command.idempotency_key);
        match self.keys.claim(buyer, key, &command.request) {
            KeyClaim::Claimed => {}
            KeyClaim::Replay { order_id } => {
                let order = self.order_for_buyer(buyer, &order_id)?;
                return Ok(Placed {
                    order,
                    replayed: true,
                    event: None,
                });
            }
            KeyClaim::InProgress => return Err(SaleError::IdempotencyInProgress),
            KeyClaim::Conflict => return Err(SaleError::IdempotencyConflict),
        }
        match self.reserve(&sale, index, &command, now) {
            // insert_order has bound the key to the new order.
            Ok((order, event)) => Ok(Placed {
                order,
                replayed: false,
                event: Some(event),
            }),
            Err(error) => {
                self.keys.abandon(buyer, key);
                if let Some(reason) = RejectReason::of(&error) {
                    sale.count_reject(reason);
                }
                Err(error)
            }
        }
    }

    /// Cheapest checks first: state, the sold-out flag, the buyer's limit,
    /// then the CAS on the stock.
    fn reserve(
        &self,
        sale: &Arc<Sale>,
        index: usize,
        command: &PlaceOrder<'_>,
        now: UnixMs,
    ) -> Result<(OrderView, Event), SaleError> {
        if !sale.takes_orders(now) {
            return Err(SaleError::SaleNotLive {
                status: sale.display_status(now),
            });
        }
        if self.order_ids.issued() >= self.limits.orders_max {
            return Err(SaleError::CapacityReached(format!(
                "this node has made its maximum of {} orders",
                self.limits.orders_max
            )));
        }
        let item = &sale.items[index];
        if item.stock.is_sold_out() {
            return Err(SaleError::SoldOut);
        }
        let quantity = command.request.quantity;
        let limit = sale.spec.items[index].per_user_limit;
        item.buyers
            .try_acquire(command.buyer, quantity, limit)
            .map_err(|exceeded| SaleError::LimitExceeded {
                limit,
                held: exceeded.held,
            })?;
        if let Err(shortage) = item.stock.reserve(i64::from(quantity), command.shard_hint) {
            item.buyers.release(command.buyer, quantity);
            return Err(match shortage {
                Shortage::SoldOut => SaleError::SoldOut,
                Shortage::Insufficient => SaleError::InsufficientStock { quantity },
            });
        }
        let event = Event::OrderReserved {
            at: now,
            order_id: self.order_ids.next_id(),
            sale_id: sale.spec.sale_id.clone(),
            sku_id: command.request.sku_id.clone(),
            buyer: command.buyer.to_owned(),
            quantity,
            amount: sale.spec.items[index].price * Decimal::from(quantity),
            idempotency_key: command.idempotency_key.to_owned(),
            expires_at: now + i64::from(sale.spec.hold_seconds) * 1000,
        };
        let order = self.insert_order(sale, index, &event);
        Ok((order, event))
    }

    pub fn cancel_order(
        &self,
        buyer: &str,
        order_id: &str,
        now: UnixMs,
    ) -> Result<(OrderView, Event), SaleError> {
        self.order_for_buyer(buyer, order_id)?;
        let event = Event::OrderTransitioned {
            at: now,
            order_id: order_id.to_owned(),
            action: OrderAction::Cancel,
        };
        self.apply(&event)?;
        Ok((self.order_for_buyer(buyer, order_id)?, event))
    }

    /// Expires every unpaid hold whose deadline has passed; returns the events.
    pub fn expire_due(&self, now: UnixMs) -> Vec<Event> {
        let mut events = Vec::new();
        for order_id in self.holds.pop_due(now) {
            let due = self
                .orders
                .get(&order_id)
                .is_some_and(|order| order.status.holds_unpaid_stock() && order.expires_at <= now);
            if !due {
                continue; // paid or cancelled since, or a stale entry
            }
            let event = Event::OrderTransitioned {
                at: now,
                order_id: order_id.into(),
                action: OrderAction::Expire,
            };
            // A concurrent cancel may win the race; then there is nothing to do.
            if self.apply(&event).is_ok() {
                events.push(event);
            }
        }
        events
    }

    // ---- reads -------------------------------------------------------------

    pub fn sale(&self, sale_id: &str) -> Result<Arc<Sale>, SaleError> {
        self.sales
            .get(sale_id)
            .map(|sale| Arc::clone(&sale))
            .ok_or_else(|| SaleError::NotFound(format!("sale `{sale_id}`")))
    }

    pub fn sale_view(&self, sale_id: &str, now: UnixMs) -> Result<SaleView, SaleError> {
        let sale = self.sale(sale_id)?;
        Ok(SaleView::of(&sale, now))
    }

    pub fn stats(&self, sale_id: &str, now: UnixMs) -> Result<SaleStats, SaleError> {
        let sale = self.sale(sale_id)?;
        Ok(SaleStats::of(&sale, now))
    }

    /// Every sale, for metrics and listings.
    pub fn sales(&self) -> Vec<Arc<Sale>> {
        self.sales
            .iter()
            .map(|entry| Arc::clone(entry.value()))
            .collect()
    }

    /// The buyer's own order; another buyer's order is reported as absent.
    pub fn order_for_buyer(&self, buyer: &str, order_id: &str) -> Result<OrderView, SaleError> {
        match self.orders.get(order_id) {
            Some(order) if order.buyer == buyer => Ok(order.view()),
            _ => Err(SaleError::NotFound(format!("order `{order_id}`"))),
        }
    }

    pub fn order_for_admin(&self, order_id: &str) -> Result<AdminOrderView, SaleError> {
        self.orders
            .get(order_id)
            .map(|order| order.admin_view())
            .ok_or_else(|| SaleError::NotFound(format!("order `{order_id}`")))
    }

    pub fn holds_pending(&self) -> usize {
        self.holds.pending()
    }

    // ---- applying events ---------------------------------------------------

    /// Applies one event: the single place state changes, live or replayed.
    pub fn apply(&self, event: &Event) -> Result<(), SaleError> {
        match event {
            Event::SaleCreated { at, sale } => self.apply_sale_created(sale, *at),
            Event::SaleTransitioned {
                sale_id, action, ..
            } => self.sale(sale_id)?.transition(*action).map(drop),
            Event::ItemRestocked {
                sale_id,
                sku_id,
                add,
                ..
            } => {
                let sale = self.sale(sale_id)?;
                if !sale.status().accepts_restock() {
                    return Err(SaleError::InvalidState(format!(
                        "sale `{sale_id}` has ended; it cannot be restocked"
                    )));
                }
                sale.items[item_index(&sale, sku_id)?].stock.restock(*add);
                Ok(())
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
                self.insert_order(&sale, index, event);
                Ok(())
            }
            Event::OrderTransitioned {
                at,
                order_id,
                action,
            } => self.apply_order_transition(order_id, *action, *at),
        }
    }

    fn apply_sale_created(&self, spec: &SaleSpec, at: UnixMs) -> Result<(), SaleError> {
        match self.sales.entry(spec.sale_id.as_str().into()) {
            Entry::Occupied(_) => Err(SaleError::InvalidState(format!(
                "sale `{}` already exists",
                spec.sale_id
            ))),
            Entry::Vacant(vacant) => {
                vacant.insert(Arc::new(Sale::new(
                    spec.clone(),
                    at,
                    self.limits.shard_count,
                )));
                Ok(())
            }
        }
    }

    /// Records a reservation whose stock is already taken.
    fn insert_order(&self, sale: &Arc<Sale>, index: usize, event: &Event) -> OrderView {
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
        let view = record.view();
        // The order must be readable before its key is: a concurrent replay
        // of the key reads the order at once.
        self.orders.insert(order_id.as_str().into(), record);
        self.keys.bind(
            buyer,
            idempotency_key,
            OrderRequest {
                sale_id: sale.spec.sale_id.clone(),
                sku_id: sale.spec.items[index].sku_id.clone(),
                quantity: *quantity,
            },
            order_id,
        );
        self.holds.schedule(*expires_at, order_id);
        sale.counters.orders_created.fetch_add(1, Ordering::Relaxed);
        view
    }

    fn apply_order_transition(
        &self,
        order_id: &str,
        action: OrderAction,
        at: UnixMs,
    ) -> Result<(), SaleError> {
        let mut order = self
            .orders
            .get_mut(order_id)
            .ok_or_else(|| SaleError::NotFound(format!("order `{order_id}`")))?;
        let next = order
            .status
            .next(action)
            .map_err(|error| SaleError::InvalidState(error.to_string().to_lowercase()))?;
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
        Ok(())
    }

    fn validate_sale(&self, spec: &SaleSpec) -> Result<(), SaleError> {
        if !is_valid_host_id(&spec.sale_id) {
            return Err(invalid(
                "sale_id",
                "must be 1-32 characters of [A-Za-z0-9_-]",
            ));
        }
        check_title("title", &spec.title)?;
        if !(HOLD_SECONDS_MIN..=HOLD_SECONDS_MAX).contains(&spec.hold_seconds) {
            return Err(invalid("hold_seconds", "must be within 60..=3600"));
        }
        if let (Some(starts), Some(ends)) = (spec.starts_at, spec.ends_at) {
            if ends <= starts {
                return Err(invalid("ends_at", "must be after starts_at"));
            }
        }
        if spec.items.is_empty() || spec.items.len() > self.limits.items_per_sale_max {
            return Err(invalid(
                "items",
                format!("must hold 1..={} items", self.limits.items_per_sale_max),
            ));
        }
        for (index, item) in spec.items.iter().enumerate() {
            let field = |name: &str| format!("items[{index}].{name}");
            if !is_valid_host_id(&item.sku_id) {
                return Err(invalid(
                    &field("sku_id"),
                    "must be 1-32 characters of [A-Za-z0-9_-]",
                ));
            }
            if spec.items[..index]
                .iter()
                .any(|other| other.sku_id == item.sku_id)
            {
                return Err(invalid(
                    &field("sku_id"),
                    "is used by another item of this sale",
                ));
            }
            check_title(&field("title"), &item.title)?;
            if !(0..=self.limits.stock_per_item_max).contains(&item.stock) {
                let max = self.limits.stock_per_item_max;
                return Err(invalid(
                    &field("stock"),
                    format!("must be within 0..={max}"),
                ));
            }
            if !(1..=PER_USER_LIMIT_MAX).contains(&item.per_user_limit) {
                let message = format!("must be within 1..={PER_USER_LIMIT_MAX}");
                return Err(invalid(&field("per_user_limit"), message));
            }
        }
        Ok(())
    }
}

fn item_index(sale: &Sale, sku_id: &str) -> Result<usize, SaleError> {
    sale.item_index(sku_id)
        .ok_or_else(|| SaleError::NotFound(format!("item `{sku_id}` of sale `{}`", sale.id())))
}

fn check_title(field: &str, title: &str) -> Result<(), SaleError> {
    let chars = title.chars().count();
    if chars == 0 || chars > TITLE_CHARS_MAX || title.chars().any(char::is_control) {
        return Err(invalid(
            field,
            "must be 1-200 characters without control characters",
        ));
    }
    Ok(())
}

/// Spreads releases over the shards by the order id's last byte.
fn shard_hint_of(order_id: &str) -> usize {
    order_id.bytes().last().map_or(0, usize::from)
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
