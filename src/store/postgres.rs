//! The store on PostgreSQL, through the blocking `postgres` client (a thin
//! wrapper over tokio-postgres with its own small runtime): the store runs
//! on its own thread, off the async order path, so a sync client is simpler
//! and costs nothing there.
//!
//! The statements of the write path are prepared once per connection: a
//! batch then costs one round trip per statement instead of two.
//! Connections are plain TCP (`NoTls`); the database is expected on the
//! gateway's host or private network.

use super::apply::{self, LeaseChange, OrderChange, SharedStatus, Tx};
use super::rows::{
    self, ItemRow, LeaseRow, OrderEventRow, OrderRow, SaleRow, StoredPayment, StoredRefund,
};
use super::{StoreError, CONNECT_TIMEOUT};
use crate::clock::{now_ms, UnixMs};
use crate::sale::{Event, ItemSpec, OrderStatus, Reservation, SaleSpec, SaleStatus};
use postgres::config::Host;
use postgres::{Client, Config, NoTls, Row, Statement, Transaction};

/// Applied in order, each once, recorded in `schema_migrations`.
const MIGRATIONS: [(i64, &str); 3] = [
    (1, include_str!("../../migrations/postgres/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/postgres/0002_payments.sql"),
    ),
    (
        3,
        include_str!("../../migrations/postgres/0003_cluster_nodes.sql"),
    ),
];

/// The advisory lock that serializes concurrent migrations ("flashgt").
const MIGRATION_LOCK_KEY: i64 = 0x0066_6c61_7368_6774;

pub struct PostgresStore {
    client: Client,
    /// Whose journal this connection applies (`''` for a node alone).
    node_id: String,
    /// Boxed: twenty statements would make this the large variant of
    /// `Store` by far.
    statements: Box<Statements>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects (with [`CONNECT_TIMEOUT`] unless the URL sets
    /// `connect_timeout`) and migrates; batches are applied as `node_id`'s.
    pub fn open(url: &str, node_id: &str) -> Result<PostgresStore, StoreError> {
        let mut config: Config = url.parse().map_err(StoreError::PostgresUrl)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let mut client = config
            .connect(NoTls)
            .map_err(|source| StoreError::PostgresConnect {
                target: target_of(&config),
                source,
            })?;
        migrate(&mut client)?;
        let statements = Box::new(Statements::prepare(&mut client)?);
        Ok(PostgresStore {
            client,
            node_id: node_id.to_owned(),
            statements,
        })
    }

    pub fn applied_position(&mut self) -> Result<u64, StoreError> {
        let row = self.client.query_opt(
            "SELECT applied_seq FROM journal_positions WHERE node_id = $1",
            &[&self.node_id],
        )?;
        match row {
            Some(row) => rows::seq_from_db(row.try_get(0)?),
            None => Ok(0),
        }
    }

    pub fn positions(&mut self) -> Result<Vec<(String, u64)>, StoreError> {
        self.client
            .query(
                "SELECT node_id, applied_seq FROM journal_positions ORDER BY node_id",
                &[],
            )?
            .iter()
            .map(|row| Ok((row.try_get(0)?, rows::seq_from_db(row.try_get(1)?)?)))
            .collect()
    }

    pub fn apply_batch(&mut self, batch: &[(u64, Event)]) -> Result<(), StoreError> {
        let mut tx = PgTx {
            tx: self.client.transaction()?,
            statements: &self.statements,
        };
        apply::apply_batch(&mut tx, &self.node_id, batch)?;
        tx.tx.commit()?;
        Ok(())
    }

    pub fn leases(&mut self, sale_id: &str) -> Result<Vec<LeaseRow>, StoreError> {
        self.client
            .query(
                "SELECT sale_id, sku_id, node_id, granted, returned, updated_at FROM leases \
                 WHERE sale_id = $1 ORDER BY sku_id, node_id",
                &[&sale_id],
            )?
            .iter()
            .map(lease_row)
            .collect()
    }

    pub fn node_sale_statuses(
        &mut self,
        sale_id: &str,
    ) -> Result<Vec<(String, SaleStatus)>, StoreError> {
        self.client
            .query(
                "SELECT node_id, status FROM sale_nodes WHERE sale_id = $1 ORDER BY node_id",
                &[&sale_id],
            )?
            .iter()
            .map(|row| Ok((row.try_get(0)?, rows::sale_status(row.try_get(1)?)?)))
            .collect()
    }

    pub fn sale(&mut self, sale_id: &str) -> Result<Option<SaleRow>, StoreError> {
        self.client
            .query_opt(
                "SELECT sale_id, title, status, starts_at, ends_at, hold_seconds, created_at \
                 FROM sales WHERE sale_id = $1",
                &[&sale_id],
            )?
            .map(|row| sale_row(&row))
            .transpose()
    }

    pub fn sale_items(&mut self, sale_id: &str) -> Result<Vec<ItemRow>, StoreError> {
        self.client
            .query(
                "SELECT sale_id, sku_id, title, price, stock, per_user_limit \
                 FROM sale_items WHERE sale_id = $1 ORDER BY sku_id",
                &[&sale_id],
            )?
            .iter()
            .map(item_row)
            .collect()
    }

    pub fn order(&mut self, order_id: &str) -> Result<Option<OrderRow>, StoreError> {
        self.client
            .query_opt(
                "SELECT order_id, sale_id, sku_id, buyer, quantity, amount, idempotency_key, \
                 status, created_at, expires_at, paid_at, updated_at, prepay_id, \
                 payment_started_at, transaction_id, paid_amount_fen, out_refund_no, \
                 refund_reason, refund_requested_at, refund_id, node_id \
                 FROM orders WHERE order_id = $1",
                &[&order_id],
            )?
            .map(|row| order_row(&row))
            .transpose()
    }

    pub fn order_events(&mut self, order_id: &str) -> Result<Vec<OrderEventRow>, StoreError> {
        self.client
            .query(
                "SELECT seq, status, at FROM order_events WHERE order_id = $1 ORDER BY seq",
                &[&order_id],
            )?
            .iter()
            .map(order_event_row)
            .collect()
    }

    pub fn paid_orders_between(
        &mut self,
        from: UnixMs,
        to: UnixMs,
    ) -> Result<Vec<StoredPayment>, StoreError> {
        self.client
            .query(
                "SELECT order_id, transaction_id, paid_amount_fen, paid_at, status, \
                 out_refund_no FROM orders \
                 WHERE paid_at >= $1 AND paid_at < $2 AND transaction_id IS NOT NULL \
                 ORDER BY paid_at, order_id",
                &[&from, &to],
            )?
            .iter()
            .map(stored_payment)
            .collect()
    }

    pub fn refunds_requested_between(
        &mut self,
        from: UnixMs,
        to: UnixMs,
    ) -> Result<Vec<StoredRefund>, StoreError> {
        self.client
            .query(
                "SELECT order_id, out_refund_no, transaction_id, paid_amount_fen, \
                 refund_reason, refund_requested_at, status, refund_id FROM orders \
                 WHERE refund_requested_at >= $1 AND refund_requested_at < $2 \
                 ORDER BY refund_requested_at, order_id",
                &[&from, &to],
            )?
            .iter()
            .map(stored_refund)
            .collect()
    }
}

/// `host:port` for the error message; never the URL, which may hold a
/// password.
fn target_of(config: &Config) -> String {
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            Host::Tcp(name) => format!("{name}:{port}"),
            #[cfg(unix)]
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    if hosts.is_empty() {
        format!("localhost:{port}")
    } else {
        hosts.join(",")
    }
}

/// All migrations in one transaction (PostgreSQL DDL is transactional),
/// behind an advisory lock so two gateways starting at once do not race.
fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    BIGINT NOT NULL PRIMARY KEY,
             applied_at BIGINT NOT NULL
         )",
    )?;
    for (version, sql) in MIGRATIONS {
        let applied = tx
            .query_opt(
                "SELECT 1 FROM schema_migrations WHERE version = $1",
                &[&version],
            )?
            .is_some();
        if !applied {
            tx.batch_execute(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                &[&version, &now_ms()],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// The write path's statements, prepared once per connection.
struct Statements {
    lock_position: Statement,
    set_position: Statement,
    insert_sale: Statement,
    insert_item: Statement,
    stored_sale: Statement,
    stored_items: Statement,
    node_sale_status: Statement,
    insert_node_sale: Statement,
    set_node_sale_status: Statement,
    lock_shared_status: Statement,
    set_shared_status: Statement,
    add_stock: Statement,
    lease: Statement,
    grant_lease: Statement,
    return_lease: Statement,
    insert_order: Statement,
    order_status: Statement,
    update_order: Statement,
    insert_order_event: Statement,
}

impl Statements {
    fn prepare(client: &mut Client) -> Result<Statements, postgres::Error> {
        Ok(Statements {
            // An upsert that changes nothing but locks the node's row (made
            // at 0 on its first batch) and returns it in one round trip.
            lock_position: client.prepare(
                "INSERT INTO journal_positions (node_id, applied_seq) VALUES ($1, 0) \
                 ON CONFLICT (node_id) DO UPDATE SET applied_seq = journal_positions.applied_seq \
                 RETURNING applied_seq",
            )?,
            set_position: client
                .prepare("UPDATE journal_positions SET applied_seq = $2 WHERE node_id = $1")?,
            insert_sale: client.prepare(
                "INSERT INTO sales (sale_id, title, status, starts_at, ends_at, hold_seconds, \
                 created_at, status_node, status_at) VALUES ($1, $2, $3, $4, $5, $6, $7, '', $7) \
                 ON CONFLICT DO NOTHING",
            )?,
            insert_item: client.prepare(
                "INSERT INTO sale_items (sale_id, sku_id, title, price, stock, per_user_limit) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )?,
            stored_sale: client.prepare(
                "SELECT title, starts_at, ends_at, hold_seconds FROM sales WHERE sale_id = $1",
            )?,
            stored_items: client.prepare(
                "SELECT sku_id, title, price, stock, per_user_limit FROM sale_items \
                 WHERE sale_id = $1 ORDER BY sku_id",
            )?,
            node_sale_status: client
                .prepare("SELECT status FROM sale_nodes WHERE sale_id = $1 AND node_id = $2")?,
            insert_node_sale: client.prepare(
                "INSERT INTO sale_nodes (sale_id, node_id, status, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $4)",
            )?,
            set_node_sale_status: client.prepare(
                "UPDATE sale_nodes SET status = $3, updated_at = $4 \
                 WHERE sale_id = $1 AND node_id = $2",
            )?,
            // NO KEY UPDATE: the lock an UPDATE of a non-key column takes,
            // which does not wait for the KEY SHARE locks of inserts
            // referencing the sale.
            lock_shared_status: client.prepare(
                "SELECT status, status_node, status_at FROM sales WHERE sale_id = $1 \
                 FOR NO KEY UPDATE",
            )?,
            set_shared_status: client.prepare(
                "UPDATE sales SET status = $2, status_node = $3, status_at = $4 \
                 WHERE sale_id = $1",
            )?,
            add_stock: client.prepare(
                "UPDATE sale_items SET stock = stock + $3 WHERE sale_id = $1 AND sku_id = $2",
            )?,
            lease: client.prepare(
                "SELECT COALESCE(l.granted, 0), COALESCE(l.returned, 0) FROM sale_items i \
                 LEFT JOIN leases l ON l.sale_id = i.sale_id AND l.sku_id = i.sku_id \
                 AND l.node_id = $3 WHERE i.sale_id = $1 AND i.sku_id = $2",
            )?,
            grant_lease: client.prepare(
                "INSERT INTO leases (sale_id, sku_id, node_id, granted, returned, updated_at) \
                 VALUES ($1, $2, $3, $4, 0, $5) ON CONFLICT (sale_id, sku_id, node_id) \
                 DO UPDATE SET granted = leases.granted + excluded.granted, \
                 updated_at = excluded.updated_at",
            )?,
            return_lease: client.prepare(
                "UPDATE leases SET returned = returned + $4, updated_at = $5 \
                 WHERE sale_id = $1 AND sku_id = $2 AND node_id = $3",
            )?,
            insert_order: client.prepare(
                "INSERT INTO orders (order_id, sale_id, sku_id, buyer, quantity, amount, \
                 idempotency_key, status, created_at, expires_at, paid_at, updated_at, node_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, $9, $11) \
                 ON CONFLICT DO NOTHING",
            )?,
            order_status: client.prepare("SELECT status FROM orders WHERE order_id = $1")?,
            update_order: client.prepare(
                "UPDATE orders SET status = $2, updated_at = $3, \
                 paid_at = COALESCE($4, paid_at), \
                 prepay_id = COALESCE($5, prepay_id), \
                 payment_started_at = COALESCE($6, payment_started_at), \
                 transaction_id = COALESCE($7, transaction_id), \
                 paid_amount_fen = COALESCE($8, paid_amount_fen), \
                 out_refund_no = COALESCE($9, out_refund_no), \
                 refund_reason = COALESCE($10, refund_reason), \
                 refund_requested_at = COALESCE($11, refund_requested_at), \
                 refund_id = COALESCE($12, refund_id) \
                 WHERE order_id = $1",
            )?,
            insert_order_event: client.prepare(
                "INSERT INTO order_events (order_id, seq, status, at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (order_id, seq) DO NOTHING",
            )?,
        })
    }
}

struct PgTx<'a> {
    tx: Transaction<'a>,
    statements: &'a Statements,
}

impl PgTx<'_> {
    fn lease_change(
        &mut self,
        statement: &Statement,
        change: &LeaseChange<'_>,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            statement,
            &[
                &change.sale_id,
                &change.sku_id,
                &change.node_id,
                &change.units,
                &change.at_ms,
            ],
        )?;
        Ok(())
    }
}

impl Tx for PgTx<'_> {
    fn lock_position(&mut self, node_id: &str) -> Result<u64, StoreError> {
        // The row lock: a second writer of the same node waits here until
        // this batch commits, then sees the moved position and skips what
        // this one applied. Other nodes' writers lock rows of their own.
        let row = self
            .tx
            .query_one(&self.statements.lock_position, &[&node_id])?;
        rows::seq_from_db(row.try_get(0)?)
    }

    fn set_position(&mut self, node_id: &str, seq: i64) -> Result<(), StoreError> {
        self.tx
            .execute(&self.statements.set_position, &[&node_id, &seq])?;
        Ok(())
    }

    fn insert_sale(&mut self, sale: &SaleSpec, created_at_ms: UnixMs) -> Result<bool, StoreError> {
        let status = SaleStatus::Scheduled.as_str();
        let hold_seconds = i64::from(sale.hold_seconds);
        let inserted = self.tx.execute(
            &self.statements.insert_sale,
            &[
                &sale.sale_id,
                &sale.title,
                &status,
                &sale.starts_at,
                &sale.ends_at,
                &hold_seconds,
                &created_at_ms,
            ],
        )?;
        Ok(inserted == 1)
    }

    fn insert_item(&mut self, sale_id: &str, item: &ItemSpec) -> Result<(), StoreError> {
        let per_user_limit = i64::from(item.per_user_limit);
        self.tx.execute(
            &self.statements.insert_item,
            &[
                &sale_id,
                &item.sku_id,
                &item.title,
                &item.price,
                &item.stock,
                &per_user_limit,
            ],
        )?;
        Ok(())
    }

    fn stored_spec(&mut self, sale_id: &str) -> Result<Option<SaleSpec>, StoreError> {
        let Some(sale) = self
            .tx
            .query_opt(&self.statements.stored_sale, &[&sale_id])?
        else {
            return Ok(None);
        };
        let items = self
            .tx
            .query(&self.statements.stored_items, &[&sale_id])?
            .iter()
            .map(|row| {
                Ok(ItemSpec {
                    sku_id: row.try_get(0)?,
                    title: row.try_get(1)?,
                    price: row.try_get(2)?,
                    stock: row.try_get(3)?,
                    per_user_limit: rows::count_from_db(
                        "sale_items.per_user_limit",
                        row.try_get(4)?,
                    )?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some(SaleSpec {
            sale_id: sale_id.to_owned(),
            title: sale.try_get(0)?,
            starts_at: sale.try_get(1)?,
            ends_at: sale.try_get(2)?,
            hold_seconds: rows::count_from_db("sales.hold_seconds", sale.try_get(3)?)?,
            items,
        }))
    }

    fn node_sale_status(
        &mut self,
        sale_id: &str,
        node_id: &str,
    ) -> Result<Option<SaleStatus>, StoreError> {
        let row = self
            .tx
            .query_opt(&self.statements.node_sale_status, &[&sale_id, &node_id])?;
        row.map(|row| rows::sale_status(row.try_get(0)?))
            .transpose()
    }

    fn insert_node_sale(
        &mut self,
        sale_id: &str,
        node_id: &str,
        at_ms: UnixMs,
    ) -> Result<(), StoreError> {
        let status = SaleStatus::Scheduled.as_str();
        self.tx.execute(
            &self.statements.insert_node_sale,
            &[&sale_id, &node_id, &status, &at_ms],
        )?;
        Ok(())
    }

    fn set_node_sale_status(
        &mut self,
        sale_id: &str,
        node_id: &str,
        status: SaleStatus,
        at_ms: UnixMs,
    ) -> Result<(), StoreError> {
        let status = status.as_str();
        self.tx.execute(
            &self.statements.set_node_sale_status,
            &[&sale_id, &node_id, &status, &at_ms],
        )?;
        Ok(())
    }

    fn lock_shared_status(&mut self, sale_id: &str) -> Result<Option<SharedStatus>, StoreError> {
        let row = self
            .tx
            .query_opt(&self.statements.lock_shared_status, &[&sale_id])?;
        row.map(|row| {
            Ok(SharedStatus {
                status: rows::sale_status(row.try_get(0)?)?,
                node_id: row.try_get(1)?,
                at_ms: row.try_get(2)?,
            })
        })
        .transpose()
    }

    fn set_shared_status(
        &mut self,
        sale_id: &str,
        shared: &SharedStatus,
    ) -> Result<(), StoreError> {
        let status = shared.status.as_str();
        self.tx.execute(
            &self.statements.set_shared_status,
            &[&sale_id, &status, &shared.node_id, &shared.at_ms],
        )?;
        Ok(())
    }

    fn lease(
        &mut self,
        sale_id: &str,
        sku_id: &str,
        node_id: &str,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        let row = self
            .tx
            .query_opt(&self.statements.lease, &[&sale_id, &sku_id, &node_id])?;
        row.map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .transpose()
    }

    fn grant_lease(&mut self, change: &LeaseChange<'_>) -> Result<(), StoreError> {
        self.lease_change(&self.statements.grant_lease, change)
    }

    fn return_lease(&mut self, change: &LeaseChange<'_>) -> Result<(), StoreError> {
        self.lease_change(&self.statements.return_lease, change)
    }

    fn add_stock(&mut self, sale_id: &str, sku_id: &str, add: i64) -> Result<bool, StoreError> {
        let changed = self
            .tx
            .execute(&self.statements.add_stock, &[&sale_id, &sku_id, &add])?;
        Ok(changed == 1)
    }

    fn insert_order(&mut self, node_id: &str, order: &Reservation<'_>) -> Result<(), StoreError> {
        let quantity = i64::from(order.quantity);
        let status = OrderStatus::Reserved.as_str();
        self.tx.execute(
            &self.statements.insert_order,
            &[
                &order.order_id,
                &order.sale_id,
                &order.sku_id,
                &order.buyer,
                &quantity,
                &order.amount,
                &order.idempotency_key,
                &status,
                &order.at,
                &order.expires_at,
                &node_id,
            ],
        )?;
        Ok(())
    }

    fn order_status(&mut self, order_id: &str) -> Result<Option<OrderStatus>, StoreError> {
        let row = self
            .tx
            .query_opt(&self.statements.order_status, &[&order_id])?;
        row.map(|row| rows::order_status(row.try_get(0)?))
            .transpose()
    }

    fn update_order(&mut self, change: &OrderChange<'_>) -> Result<(), StoreError> {
        let status = change.status.as_str();
        let refund_reason = change.refund_reason_text();
        self.tx.execute(
            &self.statements.update_order,
            &[
                &change.order_id,
                &status,
                &change.at_ms,
                &change.paid_at_ms,
                &change.prepay_id,
                &change.payment_started_at_ms,
                &change.transaction_id,
                &change.paid_amount_fen,
                &change.out_refund_no,
                &refund_reason,
                &change.refund_requested_at_ms,
                &change.refund_id,
            ],
        )?;
        Ok(())
    }

    fn insert_order_event(
        &mut self,
        order_id: &str,
        seq: i64,
        status: OrderStatus,
        at_ms: UnixMs,
    ) -> Result<(), StoreError> {
        let status = status.as_str();
        self.tx.execute(
            &self.statements.insert_order_event,
            &[&order_id, &seq, &status, &at_ms],
        )?;
        Ok(())
    }
}

fn sale_row(row: &Row) -> Result<SaleRow, StoreError> {
    Ok(SaleRow {
        sale_id: row.try_get(0)?,
        title: row.try_get(1)?,
        status: rows::sale_status(row.try_get(2)?)?,
        starts_at_ms: row.try_get(3)?,
        ends_at_ms: row.try_get(4)?,
        hold_seconds: rows::count_from_db("sales.hold_seconds", row.try_get(5)?)?,
        created_at_ms: row.try_get(6)?,
    })
}

fn item_row(row: &Row) -> Result<ItemRow, StoreError> {
    Ok(ItemRow {
        sale_id: row.try_get(0)?,
        sku_id: row.try_get(1)?,
        title: row.try_get(2)?,
        price: row.try_get(3)?,
        stock: row.try_get(4)?,
        per_user_limit: rows::count_from_db("sale_items.per_user_limit", row.try_get(5)?)?,
    })
}

fn order_row(row: &Row) -> Result<OrderRow, StoreError> {
    Ok(OrderRow {
        order_id: row.try_get(0)?,
        sale_id: row.try_get(1)?,
        sku_id: row.try_get(2)?,
        buyer: row.try_get(3)?,
        quantity: rows::count_from_db("orders.quantity", row.try_get(4)?)?,
        amount: row.try_get(5)?,
        idempotency_key: row.try_get(6)?,
        status: rows::order_status(row.try_get(7)?)?,
        created_at_ms: row.try_get(8)?,
        expires_at_ms: row.try_get(9)?,
        paid_at_ms: row.try_get(10)?,
        updated_at_ms: row.try_get(11)?,
        prepay_id: row.try_get(12)?,
        payment_started_at_ms: row.try_get(13)?,
        transaction_id: row.try_get(14)?,
        paid_amount_fen: row.try_get(15)?,
        out_refund_no: row.try_get(16)?,
        refund_reason: row
            .try_get::<_, Option<&str>>(17)?
            .map(rows::refund_reason)
            .transpose()?,
        refund_requested_at_ms: row.try_get(18)?,
        refund_id: row.try_get(19)?,
        node_id: row.try_get(20)?,
    })
}

fn lease_row(row: &Row) -> Result<LeaseRow, StoreError> {
    Ok(LeaseRow {
        sale_id: row.try_get(0)?,
        sku_id: row.try_get(1)?,
        node_id: row.try_get(2)?,
        granted: row.try_get(3)?,
        returned: row.try_get(4)?,
        updated_at_ms: row.try_get(5)?,
    })
}

fn stored_payment(row: &Row) -> Result<StoredPayment, StoreError> {
    let amount_fen = rows::required("orders.paid_amount_fen", row.try_get(2)?)?;
    let out_refund_no: Option<String> = row.try_get(5)?;
    Ok(StoredPayment {
        order_id: row.try_get(0)?,
        transaction_id: row.try_get(1)?,
        amount_fen,
        paid_at: row.try_get(3)?,
        status: rows::order_status(row.try_get(4)?)?,
        refund_amount_fen: out_refund_no.as_ref().map(|_| amount_fen),
        out_refund_no,
    })
}

fn stored_refund(row: &Row) -> Result<StoredRefund, StoreError> {
    Ok(StoredRefund {
        order_id: row.try_get(0)?,
        out_refund_no: rows::required("orders.out_refund_no", row.try_get(1)?)?,
        transaction_id: rows::required("orders.transaction_id", row.try_get(2)?)?,
        amount_fen: rows::required("orders.paid_amount_fen", row.try_get(3)?)?,
        reason: rows::refund_reason(rows::required::<&str>(
            "orders.refund_reason",
            row.try_get(4)?,
        )?)?,
        requested_at: row.try_get(5)?,
        status: rows::order_status(row.try_get(6)?)?,
        refund_id: row.try_get(7)?,
    })
}

fn order_event_row(row: &Row) -> Result<OrderEventRow, StoreError> {
    Ok(OrderEventRow {
        seq: rows::seq_from_db(row.try_get(0)?)?,
        status: rows::order_status(row.try_get(1)?)?,
        at_ms: row.try_get(2)?,
    })
}
