//! One batch of journal records, applied through a backend's open
//! transaction.
//!
//! The rules (skip what the position already covers, move statuses through
//! the engine's transition tables, refuse what the tables refuse) live here
//! once; a backend only supplies the SQL for each step as a [`Tx`]. The
//! backend opens the transaction before [`apply_batch`] and commits after it,
//! so an error anywhere rolls back every write of the batch, position too.

use super::rows::seq_to_db;
use super::StoreError;
use crate::clock::UnixMs;
use crate::sale::{Event, ItemSpec, OrderAction, OrderStatus, SaleAction, SaleSpec, SaleStatus};
use rust_decimal::Decimal;

/// A reservation, as the `orders` row it creates.
pub(crate) struct NewOrder<'a> {
    pub order_id: &'a str,
    pub sale_id: &'a str,
    pub sku_id: &'a str,
    pub buyer: &'a str,
    pub quantity: u32,
    pub amount: Decimal,
    pub idempotency_key: &'a str,
    pub created_at_ms: UnixMs,
    pub expires_at_ms: UnixMs,
}

/// An order's move to `status` at `at_ms`; `paid_at_ms` is set once, when
/// it becomes paid.
pub(crate) struct OrderChange<'a> {
    pub order_id: &'a str,
    pub status: OrderStatus,
    pub at_ms: UnixMs,
    pub paid_at_ms: Option<UnixMs>,
}

/// The steps of applying a batch, inside one open transaction.
pub(crate) trait Tx {
    /// Reads the applied position and locks it against other writers until
    /// the transaction ends.
    fn lock_position(&mut self) -> Result<u64, StoreError>;
    fn set_position(&mut self, seq: i64) -> Result<(), StoreError>;
    /// Inserts the sale (status `scheduled`) unless it exists.
    fn insert_sale(&mut self, sale: &SaleSpec, created_at_ms: UnixMs) -> Result<(), StoreError>;
    /// Inserts the item unless it exists.
    fn insert_item(&mut self, sale_id: &str, item: &ItemSpec) -> Result<(), StoreError>;
    fn sale_status(&mut self, sale_id: &str) -> Result<Option<SaleStatus>, StoreError>;
    fn set_sale_status(&mut self, sale_id: &str, status: SaleStatus) -> Result<(), StoreError>;
    /// Adds `add` units to the item's stock; false when there is no such item.
    fn add_stock(&mut self, sale_id: &str, sku_id: &str, add: i64) -> Result<bool, StoreError>;
    /// Inserts the order (status `reserved`) unless it exists.
    fn insert_order(&mut self, order: &NewOrder<'_>) -> Result<(), StoreError>;
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

/// Applies the records above the recorded position and moves the position
/// to the batch's last seq. The caller commits.
pub(crate) fn apply_batch(tx: &mut impl Tx, batch: &[(u64, Event)]) -> Result<(), StoreError> {
    check_order(batch)?;
    let position = tx.lock_position()?;
    let mut applied_seq = None;
    for (seq, event) in batch.iter().filter(|(seq, _)| *seq > position) {
        apply_event(tx, *seq, event)?;
        applied_seq = Some(*seq);
    }
    // Nothing new (an old batch resent): the position must not move back.
    match applied_seq {
        Some(seq) => tx.set_position(seq_to_db(seq)?),
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

fn apply_event(tx: &mut impl Tx, seq: u64, event: &Event) -> Result<(), StoreError> {
    match event {
        Event::SaleCreated { at, sale } => create_sale(tx, seq, sale, *at),
        Event::SaleTransitioned {
            sale_id, action, ..
        } => transition_sale(tx, seq, sale_id, *action),
        Event::ItemRestocked {
            sale_id,
            sku_id,
            add,
            ..
        } => restock(tx, seq, sale_id, sku_id, *add),
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
            &NewOrder {
                order_id,
                sale_id,
                sku_id,
                buyer,
                quantity: *quantity,
                amount: *amount,
                idempotency_key,
                created_at_ms: *at,
                expires_at_ms: *expires_at,
            },
        ),
        Event::OrderTransitioned {
            at,
            order_id,
            action,
        } => transition_order(tx, seq, order_id, *action, *at),
    }
}

fn create_sale(
    tx: &mut impl Tx,
    seq: u64,
    sale: &SaleSpec,
    at_ms: UnixMs,
) -> Result<(), StoreError> {
    if tx.sale_status(&sale.sale_id)?.is_some() {
        return Err(inconsistent(
            seq,
            format!("sale `{}` already exists", sale.sale_id),
        ));
    }
    tx.insert_sale(sale, at_ms)?;
    for item in &sale.items {
        check_money(seq, "price", item.price)?;
        tx.insert_item(&sale.sale_id, item)?;
    }
    Ok(())
}

fn transition_sale(
    tx: &mut impl Tx,
    seq: u64,
    sale_id: &str,
    action: SaleAction,
) -> Result<(), StoreError> {
    let from = existing_sale(tx, seq, sale_id)?;
    let next = from
        .next(action)
        .map_err(|error| inconsistent(seq, format!("sale `{sale_id}`: {error}")))?;
    tx.set_sale_status(sale_id, next)
}

fn restock(
    tx: &mut impl Tx,
    seq: u64,
    sale_id: &str,
    sku_id: &str,
    add: i64,
) -> Result<(), StoreError> {
    if !existing_sale(tx, seq, sale_id)?.accepts_restock() {
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

fn reserve(tx: &mut impl Tx, seq: u64, order: &NewOrder<'_>) -> Result<(), StoreError> {
    check_money(seq, "amount", order.amount)?;
    if tx.order_status(order.order_id)?.is_some() {
        let reason = format!("order `{}` already exists", order.order_id);
        return Err(inconsistent(seq, reason));
    }
    tx.insert_order(order)?;
    let status = OrderStatus::Reserved;
    tx.insert_order_event(order.order_id, seq_to_db(seq)?, status, order.created_at_ms)
}

fn transition_order(
    tx: &mut impl Tx,
    seq: u64,
    order_id: &str,
    action: OrderAction,
    at_ms: UnixMs,
) -> Result<(), StoreError> {
    let from = tx
        .order_status(order_id)?
        .ok_or_else(|| inconsistent(seq, format!("no order `{order_id}`")))?;
    let next = from
        .next(action)
        .map_err(|error| inconsistent(seq, format!("order `{order_id}`: {error}")))?;
    tx.update_order(&OrderChange {
        order_id,
        status: next,
        at_ms,
        paid_at_ms: (next == OrderStatus::Paid).then_some(at_ms),
    })?;
    tx.insert_order_event(order_id, seq_to_db(seq)?, next, at_ms)
}

fn existing_sale(tx: &mut impl Tx, seq: u64, sale_id: &str) -> Result<SaleStatus, StoreError> {
    tx.sale_status(sale_id)?
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
