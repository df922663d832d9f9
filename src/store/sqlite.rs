//! The store on an embedded SQLite file (rusqlite, SQLite bundled so the
//! version and its features — WAL, STRICT tables — do not depend on the
//! host).
//!
//! WAL lets readers query while the feeder writes. `synchronous=NORMAL`
//! under WAL may lose the last transactions on a power cut (never on a
//! process crash) but cannot corrupt the file; that is fine here because
//! the journal, not this file, is the durable source: a lost tail only moves
//! the recorded position back with it, and the feeder resends from there.

use super::apply::{self, LeaseChange, OrderChange, SharedStatus, Tx};
use super::rows::{
    self, ItemRow, LeaseRow, OrderEventRow, OrderRow, SaleRow, StoredPayment, StoredRefund,
};
use super::StoreError;
use crate::clock::{now_ms, UnixMs};
use crate::sale::{Event, ItemSpec, OrderStatus, Reservation, SaleSpec, SaleStatus};
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction, TransactionBehavior};
use std::path::Path;
use std::time::Duration;

/// Applied in order, each once, recorded in `schema_migrations`.
const MIGRATIONS: [(i64, &str); 3] = [
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../../migrations/sqlite/0002_payments.sql")),
    (
        3,
        include_str!("../../migrations/sqlite/0003_cluster_nodes.sql"),
    ),
];

/// How long a write waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    /// Whose journal this connection applies (`""` for a node alone).
    node_id: String,
}

impl SqliteStore {
    /// Opens (creating if absent) the database file and migrates it;
    /// batches are applied as `node_id`'s.
    pub fn open(path: &Path, node_id: &str) -> Result<SqliteStore, StoreError> {
        let open_error = |source| StoreError::SqliteOpen {
            path: path.to_owned(),
            source,
        };
        let mut conn = Connection::open(path).map_err(open_error)?;
        configure(&conn).map_err(open_error)?;
        migrate(&mut conn)?;
        Ok(SqliteStore {
            conn,
            node_id: node_id.to_owned(),
        })
    }

    pub fn applied_position(&mut self) -> Result<u64, StoreError> {
        let seq: Option<i64> = self
            .conn
            .query_row(
                "SELECT applied_seq FROM journal_positions WHERE node_id = ?1",
                [&self.node_id],
                |row| row.get(0),
            )
            .optional()?;
        seq.map_or(Ok(0), rows::seq_from_db)
    }

    pub fn positions(&mut self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT node_id, applied_seq FROM journal_positions ORDER BY node_id",
        )?;
        let positions = statement.query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })?;
        positions
            .map(|position| {
                let (node_id, seq) = position?;
                Ok((node_id, rows::seq_from_db(seq)?))
            })
            .collect()
    }

    pub fn leases(&mut self, sale_id: &str) -> Result<Vec<LeaseRow>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT sale_id, sku_id, node_id, granted, returned, updated_at FROM leases \
             WHERE sale_id = ?1 ORDER BY sku_id, node_id",
        )?;
        let leases = statement.query_map([sale_id], |row| {
            Ok(LeaseRow {
                sale_id: row.get(0)?,
                sku_id: row.get(1)?,
                node_id: row.get(2)?,
                granted: row.get(3)?,
                returned: row.get(4)?,
                updated_at_ms: row.get(5)?,
            })
        })?;
        Ok(leases.collect::<Result<_, _>>()?)
    }

    pub fn node_sale_statuses(
        &mut self,
        sale_id: &str,
    ) -> Result<Vec<(String, SaleStatus)>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT node_id, status FROM sale_nodes WHERE sale_id = ?1 ORDER BY node_id",
        )?;
        let statuses = statement.query_map([sale_id], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })?;
        statuses
            .map(|status| {
                let (node_id, status) = status?;
                Ok((node_id, rows::sale_status(&status)?))
            })
            .collect()
    }

    pub fn apply_batch(&mut self, batch: &[(u64, Event)]) -> Result<(), StoreError> {
        // IMMEDIATE takes the write lock now, so the position read at the
        // start cannot be moved by another writer before commit.
        let mut tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        apply::apply_batch(&mut tx, &self.node_id, batch)?;
        tx.commit()?;
        Ok(())
    }

    pub fn sale(&mut self, sale_id: &str) -> Result<Option<SaleRow>, StoreError> {
        self.conn
            .query_row(
                "SELECT sale_id, title, status, starts_at, ends_at, hold_seconds, created_at \
                 FROM sales WHERE sale_id = ?1",
                [sale_id],
                |row| Ok(sale_row(row)),
            )
            .optional()?
            .transpose()
    }

    pub fn sale_items(&mut self, sale_id: &str) -> Result<Vec<ItemRow>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT sale_id, sku_id, title, price, stock, per_user_limit \
             FROM sale_items WHERE sale_id = ?1 ORDER BY sku_id",
        )?;
        let items = statement.query_map([sale_id], |row| Ok(item_row(row)))?;
        items.map(|item| item?).collect()
    }

    pub fn order(&mut self, order_id: &str) -> Result<Option<OrderRow>, StoreError> {
        self.conn
            .query_row(
                "SELECT order_id, sale_id, sku_id, buyer, quantity, amount, idempotency_key, \
                 status, created_at, expires_at, paid_at, updated_at, prepay_id, \
                 payment_started_at, transaction_id, paid_amount_fen, out_refund_no, \
                 refund_reason, refund_requested_at, refund_id, node_id \
                 FROM orders WHERE order_id = ?1",
                [order_id],
                |row| Ok(order_row(row)),
            )
            .optional()?
            .transpose()
    }

    pub fn order_events(&mut self, order_id: &str) -> Result<Vec<OrderEventRow>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT seq, status, at FROM order_events WHERE order_id = ?1 ORDER BY seq",
        )?;
        let events = statement.query_map([order_id], |row| Ok(order_event_row(row)))?;
        events.map(|event| event?).collect()
    }

    pub fn paid_orders_between(
        &mut self,
        from: UnixMs,
        to: UnixMs,
    ) -> Result<Vec<StoredPayment>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT order_id, transaction_id, paid_amount_fen, paid_at, status, out_refund_no \
             FROM orders WHERE paid_at >= ?1 AND paid_at < ?2 AND transaction_id IS NOT NULL \
             ORDER BY paid_at, order_id",
        )?;
        let payments = statement.query_map([from, to], |row| Ok(stored_payment(row)))?;
        payments.map(|payment| payment?).collect()
    }

    pub fn refunds_requested_between(
        &mut self,
        from: UnixMs,
        to: UnixMs,
    ) -> Result<Vec<StoredRefund>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT order_id, out_refund_no, transaction_id, paid_amount_fen, refund_reason, \
             refund_requested_at, status, refund_id FROM orders \
             WHERE refund_requested_at >= ?1 AND refund_requested_at < ?2 \
             ORDER BY refund_requested_at, order_id",
        )?;
        let refunds = statement.query_map([from, to], |row| Ok(stored_refund(row)))?;
        refunds.map(|refund| refund?).collect()
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        // An in-memory database reports "memory"; it has nothing to lose.
        tracing::warn!(mode, "SQLite store is not in WAL mode");
    }
    // Safe under WAL: see the module doc (the journal is the durable source).
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(BUSY_TIMEOUT)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER NOT NULL PRIMARY KEY,
             applied_at INTEGER NOT NULL
         ) STRICT",
    )?;
    for (version, sql) in MIGRATIONS {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let applied: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?1)",
            [version],
            |row| row.get(0),
        )?;
        if !applied {
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                params![version, now_ms()],
            )?;
        }
        tx.commit()?;
    }
    Ok(())
}

impl Tx for Transaction<'_> {
    fn lock_position(&mut self, node_id: &str) -> Result<u64, StoreError> {
        // The IMMEDIATE transaction already holds the database's write lock.
        self.prepare_cached(
            "INSERT INTO journal_positions (node_id, applied_seq) VALUES (?1, 0) \
             ON CONFLICT (node_id) DO NOTHING",
        )?
        .execute([node_id])?;
        let seq = self
            .prepare_cached("SELECT applied_seq FROM journal_positions WHERE node_id = ?1")?
            .query_row([node_id], |row| row.get(0))?;
        rows::seq_from_db(seq)
    }

    fn set_position(&mut self, node_id: &str, seq: i64) -> Result<(), StoreError> {
        self.prepare_cached("UPDATE journal_positions SET applied_seq = ?2 WHERE node_id = ?1")?
            .execute(params![node_id, seq])?;
        Ok(())
    }

    fn insert_sale(&mut self, sale: &SaleSpec, created_at_ms: UnixMs) -> Result<bool, StoreError> {
        let inserted = self
            .prepare_cached(
                "INSERT INTO sales (sale_id, title, status, starts_at, ends_at, hold_seconds, \
                 created_at, status_node, status_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, '', ?7) \
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![
                sale.sale_id,
                sale.title,
                SaleStatus::Scheduled.as_str(),
                sale.starts_at,
                sale.ends_at,
                sale.hold_seconds,
                created_at_ms,
            ])?;
        Ok(inserted == 1)
    }

    fn insert_item(&mut self, sale_id: &str, item: &ItemSpec) -> Result<(), StoreError> {
        self.prepare_cached(
            "INSERT INTO sale_items (sale_id, sku_id, title, price, stock, per_user_limit) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            sale_id,
            item.sku_id,
            item.title,
            rows::money_to_text(item.price),
            item.stock,
            item.per_user_limit,
        ])?;
        Ok(())
    }

    fn stored_spec(&mut self, sale_id: &str) -> Result<Option<SaleSpec>, StoreError> {
        let sale = self
            .prepare_cached(
                "SELECT title, starts_at, ends_at, hold_seconds FROM sales WHERE sale_id = ?1",
            )?
            .query_row([sale_id], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, Option<UnixMs>>(1)?,
                    row.get::<_, Option<UnixMs>>(2)?,
                    row.get::<_, i64>(3)?,
                ))
            })
            .optional()?;
        let Some((title, starts_at, ends_at, hold_seconds)) = sale else {
            return Ok(None);
        };
        let mut statement = self.prepare_cached(
            "SELECT sku_id, title, price, stock, per_user_limit FROM sale_items \
             WHERE sale_id = ?1 ORDER BY sku_id",
        )?;
        let rows = statement.query_map([sale_id], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, i64>(3)?,
                row.get::<_, i64>(4)?,
            ))
        })?;
        let mut items = Vec::new();
        for row in rows {
            let (sku_id, title, price, stock, per_user_limit) = row?;
            items.push(ItemSpec {
                sku_id,
                title,
                price: rows::money_from_text("sale_items.price", &price)?,
                stock,
                per_user_limit: rows::count_from_db("sale_items.per_user_limit", per_user_limit)?,
            });
        }
        Ok(Some(SaleSpec {
            sale_id: sale_id.to_owned(),
            title,
            starts_at,
            ends_at,
            hold_seconds: rows::count_from_db("sales.hold_seconds", hold_seconds)?,
            items,
        }))
    }

    fn node_sale_status(
        &mut self,
        sale_id: &str,
        node_id: &str,
    ) -> Result<Option<SaleStatus>, StoreError> {
        let status: Option<String> = self
            .prepare_cached("SELECT status FROM sale_nodes WHERE sale_id = ?1 AND node_id = ?2")?
            .query_row([sale_id, node_id], |row| row.get(0))
            .optional()?;
        status.as_deref().map(rows::sale_status).transpose()
    }

    fn insert_node_sale(
        &mut self,
        sale_id: &str,
        node_id: &str,
        at_ms: UnixMs,
    ) -> Result<(), StoreError> {
        self.prepare_cached(
            "INSERT INTO sale_nodes (sale_id, node_id, status, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?4)",
        )?
        .execute(params![
            sale_id,
            node_id,
            SaleStatus::Scheduled.as_str(),
            at_ms
        ])?;
        Ok(())
    }

    fn set_node_sale_status(
        &mut self,
        sale_id: &str,
        node_id: &str,
        status: SaleStatus,
        at_ms: UnixMs,
    ) -> Result<(), StoreError> {
        self.prepare_cached(
            "UPDATE sale_nodes SET status = ?3, updated_at = ?4 WHERE sale_id = ?1 AND node_id = ?2",
        )?
        .execute(params![sale_id, node_id, status.as_str(), at_ms])?;
        Ok(())
    }

    fn lock_shared_status(&mut self, sale_id: &str) -> Result<Option<SharedStatus>, StoreError> {
        // The IMMEDIATE transaction already holds the database's write lock.
        let row = self
            .prepare_cached("SELECT status, status_node, status_at FROM sales WHERE sale_id = ?1")?
            .query_row([sale_id], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, UnixMs>(2)?,
                ))
            })
            .optional()?;
        row.map(|(status, node_id, at_ms)| {
            Ok(SharedStatus {
                status: rows::sale_status(&status)?,
                node_id,
                at_ms,
            })
        })
        .transpose()
    }

    fn set_shared_status(
        &mut self,
        sale_id: &str,
        shared: &SharedStatus,
    ) -> Result<(), StoreError> {
        self.prepare_cached(
            "UPDATE sales SET status = ?2, status_node = ?3, status_at = ?4 WHERE sale_id = ?1",
        )?
        .execute(params![
            sale_id,
            shared.status.as_str(),
            shared.node_id,
            shared.at_ms
        ])?;
        Ok(())
    }

    fn lease(
        &mut self,
        sale_id: &str,
        sku_id: &str,
        node_id: &str,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        let row = self
            .prepare_cached(
                "SELECT COALESCE(l.granted, 0), COALESCE(l.returned, 0) FROM sale_items i \
                 LEFT JOIN leases l ON l.sale_id = i.sale_id AND l.sku_id = i.sku_id \
                 AND l.node_id = ?3 WHERE i.sale_id = ?1 AND i.sku_id = ?2",
            )?
            .query_row([sale_id, sku_id, node_id], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?;
        Ok(row)
    }

    fn grant_lease(&mut self, change: &LeaseChange<'_>) -> Result<(), StoreError> {
        self.prepare_cached(
            "INSERT INTO leases (sale_id, sku_id, node_id, granted, returned, updated_at) \
             VALUES (?1, ?2, ?3, ?4, 0, ?5) ON CONFLICT (sale_id, sku_id, node_id) \
             DO UPDATE SET granted = granted + excluded.granted, \
             updated_at = excluded.updated_at",
        )?
        .execute(params![
            change.sale_id,
            change.sku_id,
            change.node_id,
            change.units,
            change.at_ms,
        ])?;
        Ok(())
    }

    fn return_lease(&mut self, change: &LeaseChange<'_>) -> Result<(), StoreError> {
        self.prepare_cached(
            "UPDATE leases SET returned = returned + ?4, updated_at = ?5 \
             WHERE sale_id = ?1 AND sku_id = ?2 AND node_id = ?3",
        )?
        .execute(params![
            change.sale_id,
            change.sku_id,
            change.node_id,
            change.units,
            change.at_ms,
        ])?;
        Ok(())
    }

    fn add_stock(&mut self, sale_id: &str, sku_id: &str, add: i64) -> Result<bool, StoreError> {
        let changed = self
            .prepare_cached(
                "UPDATE sale_items SET stock = stock + ?3 WHERE sale_id = ?1 AND sku_id = ?2",
            )?
            .execute(params![sale_id, sku_id, add])?;
        Ok(changed == 1)
    }

    fn insert_order(&mut self, node_id: &str, order: &Reservation<'_>) -> Result<(), StoreError> {
        self.prepare_cached(
            "INSERT INTO orders (order_id, sale_id, sku_id, buyer, quantity, amount, \
             idempotency_key, status, created_at, expires_at, paid_at, updated_at, node_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, NULL, ?9, ?11) \
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            order.order_id,
            order.sale_id,
            order.sku_id,
            order.buyer,
            order.quantity,
            rows::money_to_text(order.amount),
            order.idempotency_key,
            OrderStatus::Reserved.as_str(),
            order.at,
            order.expires_at,
            node_id,
        ])?;
        Ok(())
    }

    fn order_status(&mut self, order_id: &str) -> Result<Option<OrderStatus>, StoreError> {
        let status: Option<String> = self
            .prepare_cached("SELECT status FROM orders WHERE order_id = ?1")?
            .query_row([order_id], |row| row.get(0))
            .optional()?;
        status.as_deref().map(rows::order_status).transpose()
    }

    fn update_order(&mut self, change: &OrderChange<'_>) -> Result<(), StoreError> {
        self.prepare_cached(
            "UPDATE orders SET status = ?2, updated_at = ?3, paid_at = COALESCE(?4, paid_at), \
             prepay_id = COALESCE(?5, prepay_id), \
             payment_started_at = COALESCE(?6, payment_started_at), \
             transaction_id = COALESCE(?7, transaction_id), \
             paid_amount_fen = COALESCE(?8, paid_amount_fen), \
             out_refund_no = COALESCE(?9, out_refund_no), \
             refund_reason = COALESCE(?10, refund_reason), \
             refund_requested_at = COALESCE(?11, refund_requested_at), \
             refund_id = COALESCE(?12, refund_id) \
             WHERE order_id = ?1",
        )?
        .execute(params![
            change.order_id,
            change.status.as_str(),
            change.at_ms,
            change.paid_at_ms,
            change.prepay_id,
            change.payment_started_at_ms,
            change.transaction_id,
            change.paid_amount_fen,
            change.out_refund_no,
            change.refund_reason_text(),
            change.refund_requested_at_ms,
            change.refund_id,
        ])?;
        Ok(())
    }

    fn insert_order_event(
        &mut self,
        order_id: &str,
        seq: i64,
        status: OrderStatus,
        at_ms: UnixMs,
    ) -> Result<(), StoreError> {
        self.prepare_cached(
            "INSERT INTO order_events (order_id, seq, status, at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (order_id, seq) DO NOTHING",
        )?
        .execute(params![order_id, seq, status.as_str(), at_ms])?;
        Ok(())
    }
}

fn sale_row(row: &Row<'_>) -> Result<SaleRow, StoreError> {
    Ok(SaleRow {
        sale_id: row.get(0)?,
        title: row.get(1)?,
        status: rows::sale_status(&row.get::<_, String>(2)?)?,
        starts_at_ms: row.get(3)?,
        ends_at_ms: row.get(4)?,
        hold_seconds: rows::count_from_db("sales.hold_seconds", row.get(5)?)?,
        created_at_ms: row.get(6)?,
    })
}

fn item_row(row: &Row<'_>) -> Result<ItemRow, StoreError> {
    Ok(ItemRow {
        sale_id: row.get(0)?,
        sku_id: row.get(1)?,
        title: row.get(2)?,
        price: rows::money_from_text("sale_items.price", &row.get::<_, String>(3)?)?,
        stock: row.get(4)?,
        per_user_limit: rows::count_from_db("sale_items.per_user_limit", row.get(5)?)?,
    })
}

fn order_row(row: &Row<'_>) -> Result<OrderRow, StoreError> {
    Ok(OrderRow {
        order_id: row.get(0)?,
        sale_id: row.get(1)?,
        sku_id: row.get(2)?,
        buyer: row.get(3)?,
        quantity: rows::count_from_db("orders.quantity", row.get(4)?)?,
        amount: rows::money_from_text("orders.amount", &row.get::<_, String>(5)?)?,
        idempotency_key: row.get(6)?,
        status: rows::order_status(&row.get::<_, String>(7)?)?,
        created_at_ms: row.get(8)?,
        expires_at_ms: row.get(9)?,
        paid_at_ms: row.get(10)?,
        updated_at_ms: row.get(11)?,
        prepay_id: row.get(12)?,
        payment_started_at_ms: row.get(13)?,
        transaction_id: row.get(14)?,
        paid_amount_fen: row.get(15)?,
        out_refund_no: row.get(16)?,
        refund_reason: row
            .get::<_, Option<String>>(17)?
            .as_deref()
            .map(rows::refund_reason)
            .transpose()?,
        refund_requested_at_ms: row.get(18)?,
        refund_id: row.get(19)?,
        node_id: row.get(20)?,
    })
}

fn stored_payment(row: &Row<'_>) -> Result<StoredPayment, StoreError> {
    let amount_fen = rows::required("orders.paid_amount_fen", row.get(2)?)?;
    let out_refund_no: Option<String> = row.get(5)?;
    Ok(StoredPayment {
        order_id: row.get(0)?,
        transaction_id: row.get(1)?,
        amount_fen,
        paid_at: row.get(3)?,
        status: rows::order_status(&row.get::<_, String>(4)?)?,
        refund_amount_fen: out_refund_no.as_ref().map(|_| amount_fen),
        out_refund_no,
    })
}

fn stored_refund(row: &Row<'_>) -> Result<StoredRefund, StoreError> {
    Ok(StoredRefund {
        order_id: row.get(0)?,
        out_refund_no: rows::required("orders.out_refund_no", row.get(1)?)?,
        transaction_id: rows::required("orders.transaction_id", row.get(2)?)?,
        amount_fen: rows::required("orders.paid_amount_fen", row.get(3)?)?,
        reason: rows::refund_reason(&rows::required::<String>(
            "orders.refund_reason",
            row.get(4)?,
        )?)?,
        requested_at: row.get(5)?,
        status: rows::order_status(&row.get::<_, String>(6)?)?,
        refund_id: row.get(7)?,
    })
}

fn order_event_row(row: &Row<'_>) -> Result<OrderEventRow, StoreError> {
    Ok(OrderEventRow {
        seq: rows::seq_from_db(row.get(0)?)?,
        status: rows::order_status(&row.get::<_, String>(1)?)?,
        at_ms: row.get(2)?,
    })
}
