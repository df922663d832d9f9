//! The engine: all sales, orders, idempotency keys and hold timers of one
//! node, and the one place their state changes.
//!
//! Every change is an [`Event`]. Host actions, cancels and expiries build the
//! event first and go through [`Engine::apply`], the same function replay
//! uses. A reservation decides with a CAS on the stock, submits its
//! `order_reserved` as a borrowed [`Reservation`] (the same JSON as the
//! event, no strings copied) and records the order with `insert_order`;
//! replay rebuilds the same state from the event (`replay_reservation`).
//! Callers get a commit to await before they acknowledge.

use crate::clock::UnixMs;
use crate::ids::{is_valid_host_id, OrderIds};
use crate::inventory::{
    Asked, BuyerKey, ConcurrentMap, IdempotencyKeys, KeyClaim, OrderRequest, Shortage,
};
use crate::journal::Commit;
use crate::sale::event::{Event, Reservation, SaleSpec};
use crate::sale::holds::HoldTimers;
use crate::sale::order_table::OrderTable;
use crate::sale::payment::PendingPayments;
use crate::sale::views::{AdminOrderView, OrderView, SaleStats, SaleSummary, SaleView};
use crate::sale::{
    invalid, EventSink, OrderAction, OrderStatus, RejectReason, Sale, SaleAction, SaleError,
    Unjournaled,
};
use rust_decimal::Decimal;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

/// The default of `sale.hold_seconds_min`.
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
    /// The shortest hold a sale may have (`sale.hold_seconds_min`).
    pub hold_seconds_min: u32,
    /// A cluster node: items start with no local stock and hold what the
    /// node leased (`lease_granted` minus `lease_returned`); lease events
    /// are refused without it.
    pub stock_from_leases: bool,
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
    /// Resolves when the order is durable; a replay waits for the commit of
    /// the original, which may still be in flight.
    pub commit: Commit,
}

/// Told of every live change to a buyer's count against an item's
/// per-user limit after the order that made it: `-quantity` when an order
/// is cancelled, expires or is refunded, `+quantity` when a late payment
/// reinstates one. Replay tells nothing. A cluster node mirrors the counts
/// in Redis, where every node checks them (`cluster::limits`).
pub trait BuyerCountWatch: Send + Sync {
    fn changed(&self, sale_id: &str, sku_id: &str, buyer: &str, delta: i64);
}

/// What one run of the hold timers did.
#[derive(Debug, Default)]
pub struct ExpiryBatch {
    /// The commits of the `reserved` orders it expired. Nobody needs to
    /// wait for them: a crash before they are durable only means replay
    /// expires the holds again.
    pub commits: Vec<Commit>,
    /// `paying` orders whose hold is due. Their units stay held: the
    /// payment worker must first close their WeChat Pay order, which may
    /// reveal a payment (then [`Engine::confirm_payment`]); if not, it calls
    /// [`Engine::expire_closed_payment`].
    pub paying_due: Vec<String>,
}

pub struct Engine {
    pub(super) limits: EngineLimits,
    pub(super) sales: ConcurrentMap<Box<str>, Arc<Sale>>,
    pub(super) orders: OrderTable,
    pub(super) keys: IdempotencyKeys,
    pub(super) holds: HoldTimers,
    pub(super) pending: PendingPayments,
    pub(super) order_ids: OrderIds,
    /// Every live event goes here before its effect becomes visible.
    pub(super) sink: Arc<dyn EventSink>,
    /// The latest event time seen by replay, so new order ids never repeat.
    pub(super) replayed_at_max: AtomicI64,
    /// A cluster node's mirror of the buyers' counts, attached after replay.
    pub(super) buyer_watch: std::sync::OnceLock<Arc<dyn BuyerCountWatch>>,
    /// This engine among the process's (tests make many): the key of the
    /// threads' cached sale ([`Engine::with_sale`]).
    id: u64,
    /// Bumped after every insert into `sales`: a thread's cached sale is
    /// used only under the version it was looked up in.
    sales_version: AtomicU64,
}

/// Each thread's last sale looked up on the order path: a flash sale's
/// orders all name the same sale, and the map's read lock and the `Arc`'s
/// count are words every HTTP thread would otherwise write on every order
/// (see [`crate::stripes`]).
struct CachedSale {
    engine: u64,
    version: u64,
    sale: Arc<Sale>,
}

thread_local! {
    static CACHED_SALE: std::cell::RefCell<Option<CachedSale>> =
        const { std::cell::RefCell::new(None) };
}

/// Order numbers a thread takes at once: up to 1,024, and few enough that
/// what threads hold but have not used (at most a block each) is a small
/// part of `sale.orders_max`, which counts numbers taken; one by one for a
/// small bound, which is then exact.
fn order_id_block(orders_max: u64) -> u64 {
    (orders_max / 32_768).clamp(1, 1024)
}

impl Engine {
    /// An engine whose events go nowhere until [`Engine::attach_sink`]:
    /// replay runs first, then the journal is attached.
    pub fn new(limits: EngineLimits, started_at: UnixMs) -> Engine {
        assert!(limits.shard_count > 0);
        let id_block = order_id_block(limits.orders_max);
        Engine {
            sink: Arc::new(Unjournaled),
            replayed_at_max: AtomicI64::new(0),
            limits,
            sales: ConcurrentMap::default(),
            orders: OrderTable::default(),
            keys: IdempotencyKeys::default(),
            holds: HoldTimers::default(),
            pending: PendingPayments::default(),
            order_ids: OrderIds::new(started_at).in_blocks_of(id_block),
            buyer_watch: std::sync::OnceLock::new(),
            id: crate::stripes::unique_owner(),
            sales_version: AtomicU64::new(0),
        }
    }

    /// To be called after every insert into `sales`.
    pub(super) fn sales_changed(&self) {
        self.sales_version.fetch_add(1, Ordering::AcqRel);
    }

    /// Runs `use_it` on the sale, found in the calling thread's cache when
    /// it looked the same sale up last (under the same version of the
    /// map), else in the map, and then cached. A lookup nested in `use_it`
    /// works and does not replace the cached sale.
    fn with_sale<R>(
        &self,
        sale_id: &str,
        use_it: impl FnOnce(&Arc<Sale>) -> Result<R, SaleError>,
    ) -> Result<R, SaleError> {
        let version = self.sales_version.load(Ordering::Acquire);
        CACHED_SALE.with(|cached| {
            if let Ok(cached) = cached.try_borrow() {
                if let Some(hit) = cached.as_ref().filter(|hit| {
                    hit.engine == self.id && hit.version == version && hit.sale.id() == sale_id
                }) {
                    return use_it(&hit.sale);
                }
            }
            let sale = self.sale(sale_id)?;
            if let Ok(mut slot) = cached.try_borrow_mut() {
                *slot = Some(CachedSale {
                    engine: self.id,
                    version,
                    sale: Arc::clone(&sale),
                });
            }
            use_it(&sale)
        })
    }

    /// Tells `watch` of every later live change to a buyer's count (once).
    pub fn watch_buyer_counts(&self, watch: Arc<dyn BuyerCountWatch>) {
        if self.buyer_watch.set(watch).is_err() {
            tracing::warn!("a buyer-count watch was attached twice; the first stays");
        }
    }

    /// True when `key` of `buyer` has made an order here or is making one:
    /// a request with it is a retry, answered by this node alone.
    pub fn knows_key(&self, buyer: &str, key: &str) -> bool {
        self.keys.contains(buyer, key)
    }

    /// Sizes the order and key maps and the holds heap for about `orders` orders before a
    /// replay, so a million-record replay does not rehash them again and
    /// again. Only on an empty engine.
    pub fn presize(&mut self, orders: usize) {
        assert!(self.orders.is_empty(), "presize only an empty engine");
        self.orders = OrderTable::with_capacity(orders);
        self.keys = IdempotencyKeys::with_capacity(orders);
        self.holds = HoldTimers::with_capacity(orders);
    }

    pub fn attach_sink(&mut self, sink: Arc<dyn EventSink>) {
        self.sink = sink;
    }

    /// Resolves once every change submitted so far is durable: for an
    /// answer that reads state another request changed (a reused prepay).
    pub fn barrier(&self) -> Commit {
        self.sink.barrier()
    }

    /// After replay: order ids continue from a prefix later than any
    /// replayed event, even if the clock stepped back across the restart.
    pub fn finish_replay(&mut self, now: UnixMs) {
        let replayed_at_max = self.replayed_at_max.load(Ordering::Acquire);
        self.order_ids = OrderIds::new(now.max(replayed_at_max + 1))
            .in_blocks_of(order_id_block(self.limits.orders_max));
    }

    /// A cluster node's order ids carry its node tag (see [`OrderIds`]).
    /// Before the first order only.
    pub fn tag_order_ids(&mut self, node_tag: u64, now: UnixMs) {
        assert_eq!(self.order_ids.issued(), 0, "tag order ids before any order");
        let replayed_at_max = self.replayed_at_max.load(Ordering::Acquire);
        self.order_ids = OrderIds::tagged(now.max(replayed_at_max + 1), node_tag)
            .in_blocks_of(order_id_block(self.limits.orders_max));
    }

    // ---- host actions ----------------------------------------------------

    pub fn create_sale(
        &self,
        spec: SaleSpec,
        now: UnixMs,
    ) -> Result<(SaleView, Commit), SaleError> {
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
        let commit = self.apply_live(&event)?;
        Ok((self.sale_view(&sale_id, now)?, commit))
    }

    /// What `create_sale` checks, changing nothing: a cluster node
    /// registers a sale in Redis only once it would be created here.
    pub fn check_new_sale(&self, spec: &SaleSpec) -> Result<(), SaleError> {
        self.validate_sale(spec)?;
        if self.sales.contains_key(spec.sale_id.as_str()) {
            let message = format!("sale `{}` already exists", spec.sale_id);
            return Err(SaleError::InvalidState(message));
        }
        if self.sales.len() >= self.limits.sales_max {
            return Err(SaleError::InvalidState(format!(
                "this node already holds the maximum of {} sales",
                self.limits.sales_max
            )));
        }
        Ok(())
    }

    pub fn sale_action(
        &self,
        sale_id: &str,
        action: SaleAction,
        now: UnixMs,
    ) -> Result<(SaleView, Commit), SaleError> {
        let event = Event::SaleTransitioned {
            at: now,
            sale_id: sale_id.to_owned(),
            action,
        };
        let commit = self.apply_live(&event)?;
        Ok((self.sale_view(sale_id, now)?, commit))
    }

    pub fn restock(
        &self,
        sale_id: &str,
        sku_id: &str,
        add: i64,
        now: UnixMs,
    ) -> Result<(SaleStats, Commit), SaleError> {
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
        let commit = self.apply_live(&event)?;
        Ok((SaleStats::of(&sale, now), commit))
    }

    // ---- a cluster node's leases -----------------------------------------

    /// Adds units leased from the global stock to the item's local stock;
    /// journaled before they are reservable. Refused (nothing changed)
    /// once the sale has ended: the caller gives the units back.
    pub fn grant_lease(
        &self,
        sale_id: &str,
        sku_id: &str,
        lease_id: &str,
        units: i64,
        now: UnixMs,
    ) -> Result<Commit, SaleError> {
        self.check_lease_event(units)?;
        let event = Event::LeaseGranted {
            at: now,
            sale_id: sale_id.to_owned(),
            sku_id: sku_id.to_owned(),
            lease_id: lease_id.to_owned(),
            units,
        };
        self.apply_live(&event)
    }

    /// Takes every unreserved unit of the item out of the local stock and
    /// journals their return; `None` when there were none. The caller
    /// gives them back to the global stock once the commit is durable.
    pub fn return_unsold(
        &self,
        sale_id: &str,
        sku_id: &str,
        return_id: &str,
        now: UnixMs,
    ) -> Result<Option<(i64, Commit)>, SaleError> {
        if !self.limits.stock_from_leases {
            return Err(SaleError::InvalidState("this node leases no stock".into()));
        }
        let sale = self.sale(sale_id)?;
        let index = item_index(&sale, sku_id)?;
        // Out of the shards before the record: nobody can reserve them now.
        let units = sale.items[index].stock.withdraw_all();
        if units == 0 {
            return Ok(None);
        }
        let event = Event::LeaseReturned {
            at: now,
            sale_id: sale_id.to_owned(),
            sku_id: sku_id.to_owned(),
            return_id: return_id.to_owned(),
            units,
        };
        Ok(Some((units, self.sink.submit(&event))))
    }

    pub fn stock_from_leases(&self) -> bool {
        self.limits.stock_from_leases
    }

    // ---- the order path --------------------------------------------------

    pub fn place_order(&self, command: PlaceOrder<'_>, now: UnixMs) -> Result<Placed, SaleError> {
        self.with_sale(&command.request.sale_id, |sale| {
            self.place_order_in(sale, &command, now)
        })
    }

    fn place_order_in(
        &self,
        sale: &Arc<Sale>,
        command: &PlaceOrder<'_>,
        now: UnixMs,
    ) -> Result<Placed, SaleError> {
        let index = item_index(sale, &command.request.sku_id)?;
        let limit = sale.spec.items[index].per_user_limit;
        let quantity = command.request.quantity;
        if quantity == 0 || quantity > limit {
            return Err(invalid(
                "quantity",
                format!("must be within 1..={limit} for this item"),
            ));
        }
        let (buyer, key) = (command.buyer, command.idempotency_key);
        // After a sell-out most requests are refused: refuse a new key
        // without claiming it (an insert and a removal). A known key goes
        // on to its claim, which answers a retry with its order. Checked
        // once: a change after this check is a change after the request.
        let refusal = self.refusal_before_any_claim(sale, index, now);
        if let Some(refusal) = refusal.clone() {
            if !self.keys.contains(buyer, key) {
                if let Some(reason) = RejectReason::of(&refusal) {
                    sale.count_reject(reason);
                }
                return Err(refusal);
            }
        }
        let asked = Asked {
            item: sale.items[index].serial,
            quantity,
        };
        let names = match self.keys.claim(buyer, key, asked) {
            KeyClaim::Claimed(names) => names,
            KeyClaim::Replay { order_id } => {
                let order = self.order_for_buyer(buyer, &order_id)?;
                let request = &command.request;
                let same_body = order.sale_id() == request.sale_id
                    && order.sku_id() == request.sku_id
                    && order.quantity == request.quantity;
                if !same_body {
                    return Err(SaleError::IdempotencyConflict);
                }
                // The original's record was queued before its key was bound.
                let commit = self.sink.barrier();
                return Ok(Placed {
                    order,
                    replayed: true,
                    commit,
                });
            }
            KeyClaim::InProgress => return Err(SaleError::IdempotencyInProgress),
            KeyClaim::Conflict => return Err(SaleError::IdempotencyConflict),
        };
        let reserved = match refusal {
            Some(refusal) => Err(refusal),
            None => self.reserve(sale, index, command, names, now),
        };
        match reserved {
            // insert_order has bound the key to the new order.
            Ok((order, commit)) => Ok(Placed {
                order,
                replayed: false,
                commit,
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

    /// What refuses any order of this item now, whoever asks: the sale
    /// not live, this node's order capacity spent, the item sold out.
    fn refusal_before_any_claim(
        &self,
        sale: &Sale,
        index: usize,
        now: UnixMs,
    ) -> Option<SaleError> {
        if !sale.takes_orders(now) {
            return Some(SaleError::SaleNotLive {
                status: sale.display_status(now),
            });
        }
        if self.order_ids.issued() >= self.limits.orders_max {
            return Some(SaleError::CapacityReached(format!(
                "this node has made its maximum of {} orders",
                self.limits.orders_max
            )));
        }
        sale.items[index]
            .stock
            .is_sold_out()
            .then_some(SaleError::SoldOut)
    }

    /// After [`Engine::refusal_before_any_claim`] found nothing: the
    /// buyer's limit, then the CAS on the stock.
    fn reserve(
        &self,
        sale: &Arc<Sale>,
        index: usize,
        command: &PlaceOrder<'_>,
        names: BuyerKey,
        now: UnixMs,
    ) -> Result<(OrderView, Commit), SaleError> {
        let item = &sale.items[index];
        let quantity = command.request.quantity;
        let limit = sale.spec.items[index].per_user_limit;
        item.buyers
            .try_acquire(&names, quantity, limit)
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
        let order_id = self.order_ids.next_id();
        let reservation = Reservation {
            at: now,
            order_id: &order_id,
            sale_id: sale.id(),
            sku_id: &sale.spec.items[index].sku_id,
            buyer: command.buyer,
            quantity,
            amount: sale.spec.items[index].price * Decimal::from(quantity),
            idempotency_key: command.idempotency_key,
            expires_at: now + i64::from(sale.spec.hold_seconds) * 1000,
        };
        // Queued after any release whose stock this CAS may have taken.
        let commit = self.sink.submit_reserved(&reservation);
        let order = self.insert_order(sale, index, &reservation, &order_id, names);
        Ok((order, commit))
    }

    pub fn cancel_order(
        &self,
        buyer: &str,
        order_id: &str,
        now: UnixMs,
    ) -> Result<(OrderView, Commit), SaleError> {
        self.order_for_buyer(buyer, order_id)?;
        let event = Event::OrderTransitioned {
            at: now,
            order_id: order_id.to_owned(),
            action: OrderAction::Cancel,
        };
        let commit = self.apply_live(&event)?;
        Ok((self.order_for_buyer(buyer, order_id)?, commit))
    }

    /// Expires every `reserved` hold whose deadline has passed, and hands
    /// back the `paying` ones (see [`ExpiryBatch`]). Each order is decided
    /// under its lock, so a prepay racing the timer is either before (the
    /// order is handed back) or after (the order is expired).
    pub fn expire_due(&self, now: UnixMs) -> ExpiryBatch {
        let mut batch = ExpiryBatch::default();
        for order_id in self.holds.pop_due(now) {
            let Some(mut order) = self.orders.get_mut(&order_id) else {
                continue; // a stale entry
            };
            if order.expires_at > now {
                continue;
            }
            match order.status {
                OrderStatus::Reserved => {
                    let event = Event::OrderTransitioned {
                        at: now,
                        order_id: order_id.to_string(),
                        action: OrderAction::Expire,
                    };
                    // Legal under the lock: reserved orders always expire.
                    if let Ok(commit) = self.submit_to_order(&mut order, &event) {
                        batch.commits.push(commit);
                    }
                }
                OrderStatus::Paying => batch.paying_due.push(order_id.to_string()),
                // Paid, cancelled or expired since.
                _ => {}
            }
        }
        batch
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

    /// Every sale, newest first (ties by id). At most `sale.sales_max`
    /// entries: the engine refuses sales beyond that bound.
    pub fn sale_summaries(&self, now: UnixMs) -> Vec<SaleSummary> {
        let mut sales = self.sales();
        debug_assert!(sales.len() <= self.limits.sales_max);
        sales.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id().cmp(b.id())));
        sales
            .iter()
            .map(|sale| SaleSummary::of(sale, now))
            .collect()
    }

    /// The buyer's own order; another buyer's order is reported as absent.
    pub fn order_for_buyer(&self, buyer: &str, order_id: &str) -> Result<OrderView, SaleError> {
        match self.orders.get(order_id) {
            Some(order) if order.buyer() == buyer => Ok(order.view()),
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

    /// Stops keeping hold timers, for an engine that never expires holds:
    /// the one the store writer builds a snapshot in (a snapshot holds the
    /// orders, and restoring one schedules their holds anew).
    pub fn without_hold_timers(mut self) -> Engine {
        self.holds = HoldTimers::off();
        self
    }

    pub(super) fn validate_sale(&self, spec: &SaleSpec) -> Result<(), SaleError> {
        if !is_valid_host_id(&spec.sale_id) {
            return Err(invalid(
                "sale_id",
                "must be 1-32 characters of [A-Za-z0-9_-]",
            ));
        }
        check_title("title", &spec.title)?;
        let hold_seconds_min = self.limits.hold_seconds_min;
        if !(hold_seconds_min..=HOLD_SECONDS_MAX).contains(&spec.hold_seconds) {
            let message = format!("must be within {hold_seconds_min}..={HOLD_SECONDS_MAX}");
            return Err(invalid("hold_seconds", message));
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

pub(super) fn item_index(sale: &Sale, sku_id: &str) -> Result<usize, SaleError> {
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
pub(super) fn shard_hint_of(order_id: &str) -> usize {
    order_id.bytes().last().map_or(0, usize::from)
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
