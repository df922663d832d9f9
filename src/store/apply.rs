//! One batch of one node's journal records, applied through a backend's
//! open transaction.
//!
//! The rules (skip what the node's position already covers, move statuses
//! through the engine's transition tables, refuse what the tables refuse)
//! live here once; a backend only supplies the SQL for each step as a
//! [`Tx`]. The backend opens the transaction before [`apply_batch`] and
//! commits after it, so an error anywhere rolls back every write of the
//! batch, position too.
//!
//! Several nodes of a cluster may feed one store, each from its own journal
//! (see `store/mod.rs`): what every node journals alike (the sale's
//! creation and its start/pause/end) is merged here, what is a node's own
//! (its orders, its leases, its position) is kept under its id.

use super::rows::seq_to_db;
use super::StoreError;
use crate::clock::UnixMs;
use crate::sale::{
    Event, ItemSpec, LatePayment, OrderStatus, RefundReason, Reservation, SaleAction, SaleSpec,
    SaleStatus,
};
use rust_decimal::Decimal;

/// An order's move to `status` at `at_ms`, with the payment columns its
/// event sets; a `None` leaves its column as it is.
pub(crate) struct OrderChange<'a> {
    pub order_id: &'a str,
    pub status: OrderStatus,
    pub at_ms: UnixMs,
    pub paid_at_ms: Option<UnixMs>,
    pub prepay_id: Option<&'a str>,
    pub payment_started_at_ms: Option<UnixMs>,
    pub transaction_id: Option<&'a str>,
    pub paid_amount_fen: Option<i64>,
    pub out_refund_no: Option<&'a str>,
    pub refund_reason: Option<RefundReason>,
    pub refund_requested_at_ms: Option<UnixMs>,
    pub refund_id: Option<&'a str>,
}

impl<'a> OrderChange<'a> {
    /// A move that sets no payment column.
    fn new(order_id: &'a str, status: OrderStatus, at_ms: UnixMs) -> OrderChange<'a> {
        OrderChange {
            order_id,
            status,
            at_ms,
            paid_at_ms: None,
            prepay_id: None,
            payment_started_at_ms: None,
            transaction_id: None,
            paid_amount_fen: None,
            out_refund_no: None,
            refund_reason: None,
            refund_requested_at_ms: None,
            refund_id: None,
        }
    }

    pub fn refund_reason_text(&self) -> Option<&'static str> {
        self.refund_reason.map(RefundReason::as_str)
    }
}

/// How the shared `sales.status` was last set: by which node, at what time.
pub(crate) struct SharedStatus {
    pub status: SaleStatus,
    pub node_id: String,
    pub at_ms: UnixMs,
}

/// The steps of applying a batch, inside one open transaction.
pub(crate) trait Tx {
    /// Reads the node's applied position (0, and a row made, when the node
    /// has none) and locks it against the node's other writers until the
    /// transaction ends.
    fn lock_position(&mut self, node_id: &str) -> Result<u64, StoreError>;
    fn set_position(&mut self, node_id: &str, seq: i64) -> Result<(), StoreError>;
    /// Inserts the sale (status `scheduled`) unless it exists; true when
    /// this call inserted it. When another writer is inserting it, waits
    /// for that writer's commit.
    fn insert_sale(&mut self, sale: &SaleSpec, created_at_ms: UnixMs) -> Result<bool, StoreError>;
    /// Inserts the item unless it exists.
    fn insert_item(&mut self, sale_id: &str, item: &ItemSpec) -> Result<(), StoreError>;
    /// The sale as stored, its items by sku_id; the item stock is what the
    /// store holds (the creation's plus any restock).
    fn stored_spec(&mut self, sale_id: &str) -> Result<Option<SaleSpec>, StoreError>;
    /// The node's own view of the sale's status.
    fn node_sale_status(
        &mut self,
        sale_id: &str,
        node_id: &str,
    ) -> Result<Option<SaleStatus>, StoreError>;
    /// Records that the node created the sale (its view: `scheduled`).
    fn insert_node_sale(
        &mut self,
        sale_id: &str,
        node_id: &str,
        at_ms: UnixMs,
    ) -> Result<(), StoreError>;
    fn set_node_sale_status(
        &mut self,
        sale_id: &str,
        node_id: &str,
        status: SaleStatus,
        at_ms: UnixMs,
    ) -> Result<(), StoreError>;
    /// The shared status, its row locked against other writers until the
    /// transaction ends.
    fn lock_shared_status(&mut self, sale_id: &str) -> Result<Option<SharedStatus>, StoreError>;
    fn set_shared_status(&mut self, sale_id: &str, shared: &SharedStatus)
        -> Result<(), StoreError>;
    /// Adds `add` units to the item's stock; false when there is no such item.
    fn add_stock(&mut self, sale_id: &str, sku_id: &str, add: i64) -> Result<bool, StoreError>;
    /// `(granted, returned)` of the node's lease of the item, `(0, 0)`
    /// before its first; `None` when there is no such item.
    fn lease(
        &mut self,
        sale_id: &str,
        sku_id: &str,
        node_id: &str,
    ) -> Result<Option<(i64, i64)>, StoreError>;
    /// Adds to the node's granted units of the item (a row made at the
    /// first grant).
    fn grant_lease(&mut self, change: &LeaseChange<'_>) -> Result<(), StoreError>;
    /// Adds to the node's returned units of the item (its row exists: a
    /// return never exceeds the grants).
    fn return_lease(&mut self, change: &LeaseChange<'_>) -> Result<(), StoreError>;
    /// Inserts the reserved order, journaled by `node_id`, unless it exists.
    fn insert_order(&mut self, node_id: &str, order: &Reservation<'_>) -> Result<(), StoreError>;
    fn order_status(&mut self, order_id: &str) -> Result<Option<OrderStatus>, StoreError>;
    fn update_order(&mut self, change: &OrderChange<'_>) -> Result<(), StoreError>;
    /// Inserts the history row keyed `(order_id, seq)` unless it exists.
    fn insert_order_event(
        &mut self,
        order_id: &str,
        seq: i64,
        status: OrderStatus,
        at_ms: UnixMs,
    ) -> Result<(), StoreError>;
}

/// A lease event, as the change it makes to the node's `leases` row.
pub(crate) struct LeaseChange<'a> {
    pub sale_id: &'a str,
    pub sku_id: &'a str,
    pub node_id: &'a str,
    pub units: i64,
    pub at_ms: UnixMs,
}

/// Applies the node's records above its recorded position and moves that
/// position to the batch's last seq. The caller commits.
pub(crate) fn apply_batch(
    tx: &mut impl Tx,
    node_id: &str,
    batch: &[(u64, Event)],
) -> Result<(), StoreError> {
    check_order(batch)?;
    let position = tx.lock_position(node_id)?;
    let mut applied_seq = None;
    for (seq, event) in batch.iter().filter(|(seq, _)| *seq > position) {
        apply_event(tx, node_id, *seq, event)?;
        applied_seq = Some(*seq);
    }
    // Nothing new (an old batch resent): the position must not move back.
    match applied_seq {
        Some(seq) => tx.set_position(node_id, seq_to_db(seq)?),
        None => Ok(()),
    }
}

fn check_order(batch: &[(u64, Event)]) -> Result<(), StoreError> {
    for pair in batch.windows(2) {
        let (previous, seq) = (pair[0].0, pair[1].0);
        if seq <= previous {
            return Err(StoreError::BatchOrder { previous, seq });
        }
    }
    Ok(())
}

fn apply_event(tx: &mut impl Tx, node_id: &str, seq: u64, event: &Event) -> Result<(), StoreError> {
    match event {
        Event::SaleCreated { at, sale } => create_sale(tx, node_id, seq, sale, *at),
        Event::SaleTransitioned {
            at,
            sale_id,
            action,
        } => transition_sale(tx, node_id, seq, sale_id, *action, *at),
        Event::ItemRestocked {
            sale_id,
            sku_id,
            add,
            ..
        } => restock(tx, node_id, seq, sale_id, sku_id, *add),
        Event::OrderReserved {
            at,
            order_id,
            sale_id,
            sku_id,
            buyer,
            quantity,
            amount,
            idempotency_key,
            expires_at,
        } => reserve(
            tx,
            seq,
            node_id,
            &Reservation {
                at: *at,
                order_id,
                sale_id,
                sku_id,
                buyer,
                quantity: *quantity,
                amount: *amount,
                idempotency_key,
                expires_at: *expires_at,
            },
        ),
        Event::OrderTransitioned { .. }
        | Event::PaymentStarted { .. }
        | Event::PaymentConfirmed { .. }
        | Event::RefundRequested { .. }
        | Event::RefundCompleted { .. } => transition_order(tx, seq, event),
        // The sale's stock stays as the host set it (the global stock: a
        // lease moves units from it to a node, it adds none); the leases
        // table keeps what each node took and gave back.
        Event::LeaseGranted {
            at,
            sale_id,
            sku_id,
            units,
            ..
        } => lease(
            tx,
            seq,
            true,
            LeaseChange {
                sale_id,
                sku_id,
                node_id,
                units: *units,
                at_ms: *at,
            },
        ),
        Event::LeaseReturned {
            at,
            sale_id,
            sku_id,
            units,
            ..
        } => lease(
            tx,
            seq,
            false,
            LeaseChange {
                sale_id,
                sku_id,
                node_id,
                units: *units,
                at_ms: *at,
            },
        ),
    }
}

/// The first node to journal the sale inserts it; every other node's
/// `sale_created` must carry the same spec (they all read it from the one
/// the cluster registered) and adds nothing but its own view. The same
/// node creating it twice above its position means divergence.
fn create_sale(
    tx: &mut impl Tx,
    node_id: &str,
    seq: u64,
    sale: &SaleSpec,
    at_ms: UnixMs,
) -> Result<(), StoreError> {
    let sale_id = &sale.sale_id;
    if tx.node_sale_status(sale_id, node_id)?.is_some() {
        return Err(inconsistent(
            seq,
            format!("sale `{sale_id}` already exists"),
        ));
    }
    for item in &sale.items {
        check_money(seq, "price", item.price)?;
    }
    if tx.insert_sale(sale, at_ms)? {
        for item in &sale.items {
            tx.insert_item(sale_id, item)?;
        }
    } else {
        let stored = tx
            .stored_spec(sale_id)?
            .ok_or_else(|| inconsistent(seq, format!("sale `{sale_id}` vanished")))?;
        if stored != by_sku(sale) {
            return Err(inconsistent(
                seq,
                format!("sale `{sale_id}` already exists with another spec (another node's?)"),
            ));
        }
    }
    tx.insert_node_sale(sale_id, node_id, at_ms)
}

/// The spec with its items in sku_id order, as `stored_spec` reads it.
fn by_sku(sale: &SaleSpec) -> SaleSpec {
    let mut sorted = sale.clone();
    sorted.items.sort_by(|a, b| a.sku_id.cmp(&b.sku_id));
    sorted
}

/// The node's own view moves strictly by the table (a refusal means its
/// copy diverged). The shared status follows the latest transition of any
/// node: nodes journal the same host action each when it reaches them, and
/// their feeders run independently, so a lagging node's older `start` may
/// arrive after another node's `pause`; it is not applied over a newer
/// one (by the event's time), except over the same node's own earlier
/// transition (a node's journal order is its truth, whatever its clock
/// did). `ended` is final.
fn transition_sale(
    tx: &mut impl Tx,
    node_id: &str,
    seq: u64,
    sale_id: &str,
    action: SaleAction,
    at_ms: UnixMs,
) -> Result<(), StoreError> {
    let from = node_sale(tx, node_id, seq, sale_id)?;
    let next = from
        .next(action)
        .map_err(|error| inconsistent(seq, format!("sale `{sale_id}`: {error}")))?;
    tx.set_node_sale_status(sale_id, node_id, next, at_ms)?;
    let shared = tx
        .lock_shared_status(sale_id)?
        .ok_or_else(|| inconsistent(seq, format!("no sale `{sale_id}`")))?;
    let newer = shared.node_id == node_id || at_ms >= shared.at_ms;
    if shared.status == SaleStatus::Ended || !newer {
        return Ok(());
    }
    let shared = SharedStatus {
        status: next,
        node_id: node_id.to_owned(),
        at_ms,
    };
    tx.set_shared_status(sale_id, &shared)
}

/// A node alone's restock (a cluster node's goes to Redis and is not
/// journaled): the units join the item's stock.
fn restock(
    tx: &mut impl Tx,
    node_id: &str,
    seq: u64,
    sale_id: &str,
    sku_id: &str,
    add: i64,
) -> Result<(), StoreError> {
    if !node_sale(tx, node_id, seq, sale_id)?.accepts_restock() {
        return Err(inconsistent(seq, format!("sale `{sale_id}` has ended")));
    }
    if !tx.add_stock(sale_id, sku_id, add)? {
        return Err(inconsistent(
            seq,
            format!("no item `{sku_id}` in `{sale_id}`"),
        ));
    }
    Ok(())
}

/// A grant or a return of the node's lease; a return beyond what the node
/// was granted and has not given back means divergence.
fn lease(
    tx: &mut impl Tx,
    seq: u64,
    granted: bool,
    change: LeaseChange<'_>,
) -> Result<(), StoreError> {
    let (sale_id, sku_id) = (change.sale_id, change.sku_id);
    node_sale(tx, change.node_id, seq, sale_id)?;
    let (total, returned) = tx
        .lease(sale_id, sku_id, change.node_id)?
        .ok_or_else(|| inconsistent(seq, format!("no item `{sku_id}` in `{sale_id}`")))?;
    if granted {
        return tx.grant_lease(&change);
    }
    let held = total - returned;
    if change.units > held {
        return Err(inconsistent(
            seq,
            format!(
                "a return of {} units of `{sale_id}`/`{sku_id}` but the node holds {held}",
                change.units
            ),
        ));
    }
    tx.return_lease(&change)
}

fn reserve(
    tx: &mut impl Tx,
    seq: u64,
    node_id: &str,
    order: &Reservation<'_>,
) -> Result<(), StoreError> {
    check_money(seq, "amount", order.amount)?;
    if tx.order_status(order.order_id)?.is_some() {
        let reason = format!("order `{}` already exists", order.order_id);
        return Err(inconsistent(seq, reason));
    }
    tx.insert_order(node_id, order)?;
    let status = OrderStatus::Reserved;
    tx.insert_order_event(order.order_id, seq_to_db(seq)?, status, order.at)
}

/// Moves an order through the engine's table, refusing what it refuses,
/// and writes the columns the event brings; one history row per event.
fn transition_order(tx: &mut impl Tx, seq: u64, event: &Event) -> Result<(), StoreError> {
    let (order_id, action) = event
        .order_step()
        .ok_or_else(|| inconsistent(seq, "not an order event".into()))?;
    event.check_order_fields().map_err(|(field, message)| {
        inconsistent(seq, format!("order `{order_id}`: {field} {message}"))
    })?;
    let from = tx
        .order_status(order_id)?
        .ok_or_else(|| inconsistent(seq, format!("no order `{order_id}`")))?;
    let next = from
        .next(action)
        .map_err(|error| inconsistent(seq, format!("order `{order_id}`: {error}")))?;
    let at_ms = event.at();
    tx.update_order(&order_change(event, order_id, next))?;
    tx.insert_order_event(order_id, seq_to_db(seq)?, next, at_ms)
}

/// The row change an order event makes.
fn order_change<'a>(event: &'a Event, order_id: &'a str, next: OrderStatus) -> OrderChange<'a> {
    let base = OrderChange::new(order_id, next, event.at());
    match event {
        Event::PaymentStarted { at, prepay_id, .. } => OrderChange {
            prepay_id: Some(prepay_id),
            payment_started_at_ms: Some(*at),
            ..base
        },
        Event::PaymentConfirmed {
            at,
            transaction_id,
            amount_fen,
            paid_at,
            late,
            ..
        } => {
            let paid = OrderChange {
                paid_at_ms: Some(*paid_at),
                transaction_id: Some(transaction_id),
                paid_amount_fen: Some(*amount_fen),
                ..base
            };
            match late {
                Some(LatePayment::RefundDue { out_refund_no }) => OrderChange {
                    out_refund_no: Some(out_refund_no),
                    refund_reason: Some(RefundReason::LatePayment),
                    refund_requested_at_ms: Some(*at),
                    ..paid
                },
                None | Some(LatePayment::Reinstated) => paid,
            }
        }
        Event::RefundRequested {
            at,
            out_refund_no,
            reason,
            ..
        } => OrderChange {
            out_refund_no: Some(out_refund_no),
            refund_reason: Some(*reason),
            refund_requested_at_ms: Some(*at),
            ..base
        },
        Event::RefundCompleted { refund_id, .. } => OrderChange {
            refund_id: Some(refund_id),
            ..base
        },
        // Cancels and expiries set no payment column; the rest are not
        // order events (refused by `order_step` above).
        Event::OrderTransitioned { .. }
        | Event::SaleCreated { .. }
        | Event::SaleTransitioned { .. }
        | Event::ItemRestocked { .. }
        | Event::LeaseGranted { .. }
        | Event::LeaseReturned { .. }
        | Event::OrderReserved { .. } => base,
    }
}

/// The node's view of a sale it created.
fn node_sale(
    tx: &mut impl Tx,
    node_id: &str,
    seq: u64,
    sale_id: &str,
) -> Result<SaleStatus, StoreError> {
    tx.node_sale_status(sale_id, node_id)?
        .ok_or_else(|| inconsistent(seq, format!("no sale `{sale_id}`")))
}

/// Money columns hold two places: PostgreSQL's NUMERIC(_,2) would round a
/// third one away silently, so refuse it on both backends instead.
fn check_money(seq: u64, field: &str, value: Decimal) -> Result<(), StoreError> {
    if value.normalize().scale() > 2 {
        return Err(inconsistent(
            seq,
            format!("{field} {value} has sub-fen digits"),
        ));
    }
    Ok(())
}

fn inconsistent(seq: u64, reason: String) -> StoreError {
    StoreError::Inconsistent { seq, reason }
}
