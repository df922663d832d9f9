//! The same test bodies against both backends: `sqlite::*` on a file in a
//! temp dir, `postgres::*` on a database of its own on 127.0.0.1:5432,
//! created for the test and dropped after it (by a guard, so also when the
//! test fails). An unreachable PostgreSQL fails the test, never skips it.

use super::{OrderEventRow, Store, StoreConfig, StoreError, StoredPayment, StoredRefund};
use crate::sale::{
    Event, ItemSpec, LatePayment, OrderAction, OrderStatus, RefundReason, SaleAction, SaleSpec,
    SaleStatus,
};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

const SALE: &str = "sale-1";
const ORDERS: [&str; 3] = ["order-1", "order-2", "order-3"];
const HOLD_MS: i64 = 900_000;

/// Names each test's temp dir or database uniquely within this process.
static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

fn unique_suffix() -> String {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    format!("{}_{n}", std::process::id())
}

/// Where one test's store lives; removes it on drop.
struct TestDb {
    config: StoreConfig,
    _cleanup: Cleanup,
}

enum Cleanup {
    Dir(PathBuf),
    Database(String),
}

impl TestDb {
    fn sqlite() -> TestDb {
        let dir = std::env::temp_dir().join(format!("flashgate_store_{}", unique_suffix()));
        std::fs::create_dir_all(&dir).expect("create the temp dir");
        TestDb {
            config: StoreConfig::Sqlite {
                path: dir.join("store.db"),
            },
            _cleanup: Cleanup::Dir(dir),
        }
    }

    fn postgres() -> TestDb {
        let name = format!("flashgate_test_{}", unique_suffix());
        let mut admin = admin()
            .unwrap_or_else(|error| panic!("PostgreSQL not reachable at 127.0.0.1:5432: {error}"));
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create the test database");
        TestDb {
            config: StoreConfig::Postgres {
                url: format!("postgres://postgres@127.0.0.1:5432/{name}?connect_timeout=5"),
            },
            _cleanup: Cleanup::Database(name),
        }
    }

    fn open(&self) -> Store {
        Store::open(&self.config).expect("open the store")
    }

    /// The store as cluster node `node_id` opens it.
    fn open_as(&self, node_id: &str) -> Store {
        Store::open_as(&self.config, node_id).expect("open the store as a node")
    }
}

/// A client on the `postgres` database, to create and drop test databases.
fn admin() -> Result<::postgres::Client, ::postgres::Error> {
    let url = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5";
    ::postgres::Client::connect(url, ::postgres::NoTls)
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        match self {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Database(name) => {
                // No panic here: this may run while a failed test unwinds.
                let drop_sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                let dropped = admin().and_then(|mut admin| admin.batch_execute(&drop_sql));
                if let Err(error) = dropped {
                    eprintln!("could not drop test database {name}: {error}");
                }
            }
        }
    }
}

// ---- the journal records the tests feed ----------------------------------

fn sale_created(at: i64) -> Event {
    let item = |sku_id: &str, price: &str, stock, per_user_limit| ItemSpec {
        sku_id: sku_id.into(),
        title: format!("{sku_id} title"),
        price: price.parse().expect("a decimal literal"),
        stock,
        per_user_limit,
    };
    Event::SaleCreated {
        at,
        sale: SaleSpec {
            sale_id: SALE.into(),
            title: "Midnight drop".into(),
            starts_at: Some(at + 60_000),
            ends_at: None,
            hold_seconds: 900,
            items: vec![item("sku-a", "99.90", 10, 2), item("sku-b", "0.10", 5, 1)],
        },
    }
}

fn sale_action(at: i64, action: SaleAction) -> Event {
    Event::SaleTransitioned {
        at,
        sale_id: SALE.into(),
        action,
    }
}

fn restocked(at: i64, sku_id: &str, add: i64) -> Event {
    Event::ItemRestocked {
        at,
        sale_id: SALE.into(),
        sku_id: sku_id.into(),
        add,
    }
}

fn reserved(at: i64, order_id: &str, sku_id: &str, quantity: u32, amount: &str) -> Event {
    Event::OrderReserved {
        at,
        order_id: order_id.into(),
        sale_id: SALE.into(),
        sku_id: sku_id.into(),
        buyer: "buyer-1".into(),
        quantity,
        amount: amount.parse().expect("a decimal literal"),
        idempotency_key: format!("key-{order_id}"),
        expires_at: at + HOLD_MS,
    }
}

fn order_action(at: i64, order_id: &str, action: OrderAction) -> Event {
    Event::OrderTransitioned {
        at,
        order_id: order_id.into(),
        action,
    }
}

fn payment_started(at: i64, order_id: &str) -> Event {
    Event::PaymentStarted {
        at,
        order_id: order_id.into(),
        prepay_id: format!("wx-{order_id}"),
        prepay_valid_until: at + 7_200_000,
    }
}

/// Paid at WeChat Pay 100 ms before the notification is applied.
fn payment_confirmed(at: i64, order_id: &str, amount_fen: i64, late: Option<LatePayment>) -> Event {
    Event::PaymentConfirmed {
        at,
        order_id: order_id.into(),
        transaction_id: format!("tx-{order_id}"),
        amount_fen,
        paid_at: at - 100,
        late,
    }
}

fn refund_requested(at: i64, order_id: &str, reason: RefundReason) -> Event {
    Event::RefundRequested {
        at,
        order_id: order_id.into(),
        out_refund_no: format!("{order_id}R1"),
        reason,
    }
}

fn refund_completed(at: i64, order_id: &str) -> Event {
    Event::RefundCompleted {
        at,
        order_id: order_id.into(),
        refund_id: format!("rf-{order_id}"),
    }
}

/// Records 1..=12 of one sale's life; tests apply slices of it.
fn journal() -> Vec<(u64, Event)> {
    let events = vec![
        sale_created(1_000),
        sale_action(2_000, SaleAction::Start),
        reserved(3_000, "order-1", "sku-a", 2, "199.80"),
        reserved(3_100, "order-2", "sku-b", 1, "0.10"),
        payment_started(4_000, "order-1"),
        payment_confirmed(5_000, "order-1", 19_980, None),
        order_action(6_000, "order-2", OrderAction::Expire),
        restocked(7_000, "sku-a", 5),
        sale_action(8_000, SaleAction::Pause),
        // 10..=12: what the overlap and restart tests add later.
        reserved(9_000, "order-3", "sku-a", 1, "99.90"),
        restocked(10_000, "sku-b", 3),
        refund_requested(11_000, "order-1", RefundReason::Admin),
    ];
    (1..).zip(events).collect()
}

fn records(seqs: std::ops::RangeInclusive<u64>) -> Vec<(u64, Event)> {
    let first = usize::try_from(*seqs.start() - 1).expect("small");
    let last = usize::try_from(*seqs.end()).expect("small");
    journal()[first..last].to_vec()
}

/// Everything the store holds for the journal above, to compare states.
fn snapshot(store: &mut Store) -> String {
    let mut text = format!("position {}\n", store.applied_position().expect("position"));
    text += &format!("{:?}\n", store.sale(SALE).expect("sale"));
    text += &format!("{:?}\n", store.sale_items(SALE).expect("items"));
    for order_id in ORDERS {
        text += &format!("{:?}\n", store.order(order_id).expect("order"));
        text += &format!("{:?}\n", store.order_events(order_id).expect("events"));
    }
    text
}

fn history(store: &mut Store, order_id: &str) -> Vec<(u64, OrderStatus, i64)> {
    let events = store.order_events(order_id).expect("order events");
    let row = |event: OrderEventRow| (event.seq, event.status, event.at_ms);
    events.into_iter().map(row).collect()
}

// ---- the test bodies, run on both backends --------------------------------

fn fresh_store_is_at_position_zero(db: &TestDb) {
    let mut store = db.open();
    assert_eq!(store.applied_position().expect("position"), 0);
    assert_eq!(store.sale(SALE).expect("sale"), None);
    store.apply_batch(&[]).expect("an empty batch");
    assert_eq!(store.applied_position().expect("position"), 0);
}

fn batch_apply_lands_every_event(db: &TestDb) {
    let mut store = db.open();
    store.apply_batch(&records(1..=9)).expect("apply");
    assert_eq!(store.applied_position().expect("position"), 9);

    let sale = store.sale(SALE).expect("sale").expect("the sale exists");
    assert_eq!(sale.status, SaleStatus::Paused);
    assert_eq!(sale.title, "Midnight drop");
    assert_eq!(
        (sale.starts_at_ms, sale.ends_at_ms, sale.created_at_ms),
        (Some(61_000), None, 1_000)
    );
    assert_eq!(sale.hold_seconds, 900);

    let items = store.sale_items(SALE).expect("items");
    let prices: Vec<String> = items.iter().map(|item| item.price.to_string()).collect();
    assert_eq!(prices, ["99.90", "0.10"], "prices are exact, two places");
    let stocks: Vec<(&str, i64, u32)> = items
        .iter()
        .map(|item| (item.sku_id.as_str(), item.stock, item.per_user_limit))
        .collect();
    // sku-a: 10 at creation, 5 restocked.
    assert_eq!(stocks, [("sku-a", 15, 2), ("sku-b", 5, 1)]);

    let paid = store.order("order-1").expect("order").expect("order-1");
    assert_eq!(paid.status, OrderStatus::Paid);
    assert_eq!(paid.amount.to_string(), "199.80");
    assert_eq!((paid.quantity, paid.buyer.as_str()), (2, "buyer-1"));
    assert_eq!(paid.idempotency_key, "key-order-1");
    assert_eq!((paid.created_at_ms, paid.expires_at_ms), (3_000, 903_000));
    // paid_at is WeChat Pay's time of the payment.
    assert_eq!((paid.paid_at_ms, paid.updated_at_ms), (Some(4_900), 5_000));
    assert_eq!(paid.prepay_id.as_deref(), Some("wx-order-1"));
    assert_eq!(paid.payment_started_at_ms, Some(4_000));
    assert_eq!(paid.transaction_id.as_deref(), Some("tx-order-1"));
    assert_eq!(paid.paid_amount_fen, Some(19_980));
    assert_eq!((paid.out_refund_no, paid.refund_reason), (None, None));
    use OrderStatus::*;
    let expected = [(3, Reserved, 3_000), (5, Paying, 4_000), (6, Paid, 5_000)];
    assert_eq!(history(&mut store, "order-1"), expected);

    let expired = store.order("order-2").expect("order").expect("order-2");
    assert_eq!((expired.status, expired.paid_at_ms), (Expired, None));
    assert_eq!(expired.amount.to_string(), "0.10");
    let expected = [(4, Reserved, 3_100), (7, Expired, 6_000)];
    assert_eq!(history(&mut store, "order-2"), expected);
    assert_eq!(store.order("order-3").expect("order"), None);
}

fn reapplying_the_same_or_an_overlapping_batch_changes_nothing(db: &TestDb) {
    let mut store = db.open();
    store.apply_batch(&records(1..=9)).expect("apply");
    let once = snapshot(&mut store);
    store.apply_batch(&records(1..=9)).expect("apply again");
    assert_eq!(snapshot(&mut store), once, "the same batch twice");
    store.apply_batch(&records(4..=8)).expect("an old slice");
    assert_eq!(snapshot(&mut store), once, "an already applied slice");

    // Overlapping: 6..=9 were applied, 10..=12 are new.
    for _ in 0..2 {
        store.apply_batch(&records(6..=12)).expect("overlapping");
    }
    assert_eq!(store.applied_position().expect("position"), 12);
    let items = store.sale_items(SALE).expect("items");
    let stocks: Vec<i64> = items.iter().map(|item| item.stock).collect();
    assert_eq!(stocks, [15, 8], "each restock counted once");
    use OrderStatus::*;
    let expected = [
        (3, Reserved, 3_000),
        (5, Paying, 4_000),
        (6, Paid, 5_000),
        (12, Refunding, 11_000),
    ];
    // No history row doubled.
    assert_eq!(history(&mut store, "order-1"), expected);
    let refunding = store.order("order-1").expect("order").expect("order-1");
    assert_eq!(
        (refunding.paid_at_ms, refunding.updated_at_ms),
        (Some(4_900), 11_000)
    );
    assert_eq!(refunding.out_refund_no.as_deref(), Some("order-1R1"));
    assert_eq!(refunding.refund_reason, Some(RefundReason::Admin));
    assert_eq!(refunding.refund_requested_at_ms, Some(11_000));
    assert_eq!(refunding.transaction_id.as_deref(), Some("tx-order-1"));
    let new_order = store.order("order-3").expect("order").expect("order-3");
    assert_eq!(new_order.status, Reserved);
    assert_eq!(new_order.amount.to_string(), "99.90");

    let all = snapshot(&mut store);
    store.apply_batch(&records(1..=3)).expect("a stale batch");
    // A stale batch does not move the position back.
    assert_eq!(snapshot(&mut store), all);
}

fn restart_resumes_from_the_recorded_position(db: &TestDb) {
    let mut store = db.open();
    store.apply_batch(&records(1..=5)).expect("apply");
    store.apply_batch(&records(6..=10)).expect("apply");
    drop(store);

    let mut store = db.open();
    assert_eq!(store.applied_position().expect("position"), 10);
    let before = snapshot(&mut store);
    // A feeder that lost its place resends from the start: nothing changes.
    store.apply_batch(&records(1..=10)).expect("resend");
    assert_eq!(snapshot(&mut store), before);

    let from = store.applied_position().expect("position") + 1;
    store.apply_batch(&records(from..=12)).expect("continue");
    drop(store);

    let mut reopened = db.open();
    assert_eq!(reopened.applied_position().expect("position"), 12);
    // The same records in one go, on SQLite: the rows must read the same.
    let control_db = TestDb::sqlite();
    let mut control = control_db.open();
    control.apply_batch(&records(1..=12)).expect("one batch");
    assert_eq!(snapshot(&mut reopened), snapshot(&mut control));
}

fn a_failed_batch_rolls_back_entirely(db: &TestDb) {
    let mut store = db.open();
    store.apply_batch(&records(1..=2)).expect("apply");
    let before = snapshot(&mut store);

    let mut batch = records(3..=4);
    batch.push((5, order_action(4_000, "order-9", OrderAction::Cancel)));
    let error = store.apply_batch(&batch).expect_err("an unknown order");
    assert_eq!(error.to_string(), "record 5: no order `order-9`");
    assert_eq!(snapshot(&mut store), before, "nothing of the batch stayed");

    let out_of_order = [records(4..=4), records(3..=3)].concat();
    let error = store.apply_batch(&out_of_order).expect_err("out of order");
    assert_eq!(error.to_string(), "batch out of order: seq 3 follows seq 4");

    let mut illegal = records(3..=3);
    illegal.push((4, refund_completed(4_000, "order-1")));
    let error = store.apply_batch(&illegal).expect_err("illegal");
    assert!(matches!(error, StoreError::Inconsistent { seq: 4, .. }));
    assert_eq!(snapshot(&mut store), before);

    // Payment actions travel in their own events, never as a transition.
    let mut smuggled = records(3..=3);
    smuggled.push((
        4,
        order_action(4_000, "order-1", OrderAction::ConfirmPayment),
    ));
    let error = store.apply_batch(&smuggled).expect_err("not a transition");
    assert!(matches!(error, StoreError::Inconsistent { seq: 4, .. }));
    assert_eq!(snapshot(&mut store), before);
}

/// Records 1..=14: every payment branch. order-1 is paid, refunded by an
/// operator; order-2 expires, then pays late and finds its units gone;
/// order-3 is cancelled, then pays late and gets its units back.
fn payment_journal() -> Vec<(u64, Event)> {
    let refund_due = LatePayment::RefundDue {
        out_refund_no: "order-2R1".into(),
    };
    let events = vec![
        sale_created(1_000),
        sale_action(2_000, SaleAction::Start),
        reserved(3_000, "order-1", "sku-a", 2, "199.80"),
        reserved(3_100, "order-2", "sku-b", 1, "0.10"),
        reserved(3_200, "order-3", "sku-a", 1, "99.90"),
        payment_started(4_000, "order-1"),
        payment_confirmed(5_000, "order-1", 19_980, None),
        order_action(6_000, "order-2", OrderAction::Expire),
        payment_confirmed(7_000, "order-2", 10, Some(refund_due)),
        order_action(7_100, "order-3", OrderAction::Cancel),
        payment_confirmed(7_300, "order-3", 9_990, Some(LatePayment::Reinstated)),
        refund_requested(8_000, "order-1", RefundReason::Admin),
        refund_completed(9_000, "order-1"),
        refund_completed(9_500, "order-2"),
    ];
    (1..).zip(events).collect()
}

fn stored_payment(order_id: &str, fen: i64, paid_at: i64, status: OrderStatus) -> StoredPayment {
    let refunded = status != OrderStatus::Paid;
    StoredPayment {
        order_id: order_id.into(),
        transaction_id: format!("tx-{order_id}"),
        amount_fen: fen,
        paid_at,
        status,
        refund_amount_fen: refunded.then_some(fen),
        out_refund_no: refunded.then(|| format!("{order_id}R1")),
    }
}

fn payments_and_refunds_land_in_their_columns(db: &TestDb) {
    let mut store = db.open();
    let journal = payment_journal();
    store.apply_batch(&journal).expect("apply");
    use OrderStatus::*;
    let late = store.order("order-2").expect("order").expect("order-2");
    assert_eq!(late.status, Refunded);
    assert_eq!(
        (late.paid_at_ms, late.paid_amount_fen),
        (Some(6_900), Some(10))
    );
    assert_eq!(late.refund_reason, Some(RefundReason::LatePayment));
    assert_eq!(late.refund_requested_at_ms, Some(7_000));
    assert_eq!(late.refund_id.as_deref(), Some("rf-order-2"));
    assert_eq!(late.prepay_id, None);
    let expected = [
        (4, Reserved, 3_100),
        (8, Expired, 6_000),
        (9, Refunding, 7_000),
        (14, Refunded, 9_500),
    ];
    assert_eq!(history(&mut store, "order-2"), expected);
    let expected = [
        (5, Reserved, 3_200),
        (10, Cancelled, 7_100),
        (11, Paid, 7_300),
    ];
    assert_eq!(history(&mut store, "order-3"), expected);

    let payments = store.paid_orders_between(0, 10_000).expect("payments");
    assert_eq!(
        payments,
        [
            stored_payment("order-1", 19_980, 4_900, Refunded),
            stored_payment("order-2", 10, 6_900, Refunded),
            stored_payment("order-3", 9_990, 7_200, Paid),
        ]
    );
    let window = store.paid_orders_between(4_900, 6_900).expect("payments");
    let ids: Vec<&str> = window.iter().map(|p| p.order_id.as_str()).collect();
    assert_eq!(ids, ["order-1"], "from is in the window, to is not");

    let refund = |order_id: &str, fen, reason, requested_at| StoredRefund {
        order_id: String::from(order_id),
        out_refund_no: format!("{order_id}R1"),
        transaction_id: format!("tx-{order_id}"),
        amount_fen: fen,
        reason,
        requested_at,
        status: Refunded,
        refund_id: Some(format!("rf-{order_id}")),
    };
    let refunds = store.refunds_requested_between(0, 10_000).expect("refunds");
    assert_eq!(
        refunds,
        [
            refund("order-2", 10, RefundReason::LatePayment, 7_000),
            refund("order-1", 19_980, RefundReason::Admin, 8_000),
        ]
    );
    let none = store
        .refunds_requested_between(7_001, 8_000)
        .expect("refunds");
    assert!(none.is_empty());

    // Resent, whole or overlapping: nothing changes, no history row doubles.
    let once = payment_snapshot(&mut store);
    store.apply_batch(&journal).expect("again");
    store.apply_batch(&journal[5..]).expect("overlapping");
    assert_eq!(payment_snapshot(&mut store), once);
}

fn payment_snapshot(store: &mut Store) -> String {
    let mut text = snapshot(store);
    text += &format!(
        "{:?}\n",
        store.paid_orders_between(0, i64::MAX).expect("paid")
    );
    text += &format!(
        "{:?}\n",
        store
            .refunds_requested_between(0, i64::MAX)
            .expect("refunds")
    );
    text
}

fn payment_events_the_table_refuses_roll_back(db: &TestDb) {
    let mut store = db.open();
    let journal = payment_journal();
    store.apply_batch(&journal[..7]).expect("apply"); // order-1 paid
    let before = payment_snapshot(&mut store);
    let refused = [
        // An on-time payment of an expired order.
        vec![
            (8, order_action(6_000, "order-2", OrderAction::Expire)),
            (9, payment_confirmed(7_000, "order-2", 10, None)),
        ],
        // A refund completed before it was asked.
        vec![(8, refund_completed(8_000, "order-1"))],
        // A late branch for an order that is not late.
        vec![(
            8,
            payment_confirmed(8_000, "order-3", 9_990, Some(LatePayment::Reinstated)),
        )],
        // A refund number WeChat Pay would refuse.
        vec![(8, {
            let mut bad = refund_requested(8_000, "order-1", RefundReason::Admin);
            if let Event::RefundRequested { out_refund_no, .. } = &mut bad {
                *out_refund_no = "has space".into();
            }
            bad
        })],
    ];
    for batch in refused {
        let error = store.apply_batch(&batch).expect_err("refused");
        assert!(matches!(error, StoreError::Inconsistent { .. }), "{error}");
        assert_eq!(payment_snapshot(&mut store), before);
    }
}

/// The schema as it was before payments (version 1 only), holding one
/// reserved order, made by hand on the test's database.
fn create_version_1(db: &TestDb) {
    let init = match &db.config {
        StoreConfig::Sqlite { .. } => include_str!("../../migrations/sqlite/0001_init.sql"),
        StoreConfig::Postgres { .. } => include_str!("../../migrations/postgres/0001_init.sql"),
    };
    let sql = [
        "CREATE TABLE schema_migrations (
             version BIGINT NOT NULL PRIMARY KEY, applied_at BIGINT NOT NULL)",
        init,
        "INSERT INTO schema_migrations (version, applied_at) VALUES (1, 0)",
        "INSERT INTO sales (sale_id, title, status, starts_at, ends_at, hold_seconds, \
         created_at) VALUES ('sale-1', 'Old sale', 'live', NULL, NULL, 900, 1000)",
        "INSERT INTO sale_items (sale_id, sku_id, title, price, stock, per_user_limit) \
         VALUES ('sale-1', 'sku-a', 'A', '99.90', 10, 2)",
        "INSERT INTO orders (order_id, sale_id, sku_id, buyer, quantity, amount, \
         idempotency_key, status, created_at, expires_at, paid_at, updated_at) VALUES \
         ('order-1', 'sale-1', 'sku-a', 'buyer-1', 2, '199.80', 'key-order-1', 'reserved', \
         3000, 903000, NULL, 3000)",
        "UPDATE journal_position SET applied_seq = 3",
    ]
    .join(";\n");
    match &db.config {
        StoreConfig::Sqlite { path } => {
            let conn = rusqlite::Connection::open(path).expect("open SQLite");
            conn.execute_batch(&sql).expect("version 1");
        }
        StoreConfig::Postgres { url } => {
            let mut client = ::postgres::Client::connect(url, ::postgres::NoTls).expect("connect");
            client.batch_execute(&sql).expect("version 1");
        }
    }
}

fn a_store_made_before_payments_is_migrated_on_open(db: &TestDb) {
    create_version_1(db);
    let mut store = db.open();
    assert_eq!(store.applied_position().expect("position"), 3);
    let old = store.order("order-1").expect("order").expect("order-1");
    assert_eq!(
        (old.status, old.transaction_id),
        (OrderStatus::Reserved, None)
    );
    let batch = [
        (4, payment_started(4_000, "order-1")),
        (5, payment_confirmed(5_000, "order-1", 19_980, None)),
    ];
    store
        .apply_batch(&batch)
        .expect("payments on the migrated schema");
    drop(store);
    // Reopening applies nothing twice.
    let mut store = db.open();
    let paid = store.order("order-1").expect("order").expect("order-1");
    assert_eq!(paid.status, OrderStatus::Paid);
    assert_eq!(paid.paid_amount_fen, Some(19_980));
}

// ---- several cluster nodes feeding one store ------------------------------

/// The sale as node `n` journals it: the spec the cluster registered once,
/// at the time that node learned of it.
fn created_on_node(at: i64) -> Event {
    match sale_created(1_000) {
        Event::SaleCreated { sale, .. } => Event::SaleCreated { at, sale },
        other => other,
    }
}

fn lease_granted(at: i64, sku_id: &str, units: i64) -> Event {
    Event::LeaseGranted {
        at,
        sale_id: SALE.into(),
        sku_id: sku_id.into(),
        lease_id: format!("lease-{at}"),
        units,
    }
}

fn lease_returned(at: i64, sku_id: &str, units: i64) -> Event {
    Event::LeaseReturned {
        at,
        sale_id: SALE.into(),
        sku_id: sku_id.into(),
        return_id: format!("return-{at}"),
        units,
    }
}

/// Node n1's journal: it took the create, started, leased, sold, paused,
/// gave back what it did not sell, ended.
fn n1_journal() -> Vec<(u64, Event)> {
    let events = vec![
        created_on_node(1_000),
        sale_action(2_000, SaleAction::Start),
        lease_granted(2_100, "sku-a", 10),
        reserved(3_000, "n1-order-1", "sku-a", 2, "199.80"),
        payment_started(4_000, "n1-order-1"),
        sale_action(8_000, SaleAction::Pause),
        lease_returned(8_100, "sku-a", 8),
        sale_action(9_010, SaleAction::End),
    ];
    (1..).zip(events).collect()
}

/// Node n2's journal: the same sale and host actions as it learned them
/// (its own seqs, its own times), its own lease and order; it heard of the
/// end first.
fn n2_journal() -> Vec<(u64, Event)> {
    let events = vec![
        created_on_node(1_500),
        sale_action(2_050, SaleAction::Start),
        lease_granted(2_200, "sku-a", 5),
        reserved(3_100, "n2-order-1", "sku-a", 1, "99.90"),
        order_action(6_000, "n2-order-1", OrderAction::Cancel),
        sale_action(8_050, SaleAction::Pause),
        sale_action(9_000, SaleAction::End),
    ];
    (1..).zip(events).collect()
}

fn slice(journal: &[(u64, Event)], seqs: std::ops::RangeInclusive<u64>) -> Vec<(u64, Event)> {
    let keep = |(seq, _): &&(u64, Event)| seqs.contains(seq);
    journal.iter().filter(keep).cloned().collect()
}

/// Everything the shared store holds for the two nodes' journals.
fn cluster_snapshot(store: &mut Store) -> String {
    let mut text = format!("positions {:?}\n", store.positions().expect("positions"));
    text += &format!("{:?}\n", store.sale(SALE).expect("sale"));
    text += &format!("{:?}\n", store.sale_items(SALE).expect("items"));
    text += &format!("{:?}\n", store.node_sale_statuses(SALE).expect("views"));
    text += &format!("{:?}\n", store.leases(SALE).expect("leases"));
    for order_id in ["n1-order-1", "n2-order-1"] {
        text += &format!("{:?}\n", store.order(order_id).expect("order"));
        text += &format!("{:?}\n", store.order_events(order_id).expect("events"));
    }
    text
}

fn shared_status(store: &mut Store) -> SaleStatus {
    store.sale(SALE).expect("sale").expect("the sale").status
}

fn two_nodes_interleave_their_batches_into_one_store(db: &TestDb) {
    let (n1_log, n2_log) = (n1_journal(), n2_journal());
    let mut n1 = db.open_as("n1");
    let mut n2 = db.open_as("n2");
    n1.apply_batch(&slice(&n1_log, 1..=2))
        .expect("n1 creates and starts");
    // n2 journals the same sale: no error, no second row.
    n2.apply_batch(&slice(&n2_log, 1..=1))
        .expect("n2 creates the same sale");
    assert_eq!(n2.applied_position().expect("position"), 1);
    assert_eq!(n1.applied_position().expect("position"), 2);
    n1.apply_batch(&slice(&n1_log, 3..=6))
        .expect("n1 sells and pauses");
    assert_eq!(shared_status(&mut n1), SaleStatus::Paused);
    // n2 lags: its start (older than n1's pause) moves its own view only.
    n2.apply_batch(&slice(&n2_log, 2..=4))
        .expect("n2 starts and sells");
    assert_eq!(
        shared_status(&mut n2),
        SaleStatus::Paused,
        "n1's later pause stands"
    );
    let views = n2.node_sale_statuses(SALE).expect("views");
    let expected = [
        ("n1".to_owned(), SaleStatus::Paused),
        ("n2".to_owned(), SaleStatus::Live),
    ];
    assert_eq!(views, expected);

    // Both restart: each resumes from its own position, resending its
    // whole journal as a feeder that lost its place would.
    drop((n1, n2));
    let mut n1 = db.open_as("n1");
    let mut n2 = db.open_as("n2");
    assert_eq!(n1.applied_position().expect("position"), 6);
    assert_eq!(n2.applied_position().expect("position"), 4);
    n2.apply_batch(&n2_log).expect("n2 resends and goes on");
    assert_eq!(
        shared_status(&mut n2),
        SaleStatus::Ended,
        "n2 journaled the end"
    );
    n1.apply_batch(&n1_log).expect("n1 resends and goes on");
    let mut positions = n1.positions().expect("positions");
    assert_eq!(positions, [("n1".to_owned(), 8), ("n2".to_owned(), 7)]);

    let sale = n1.sale(SALE).expect("sale").expect("one sale");
    assert_eq!(
        (sale.status, sale.created_at_ms),
        (SaleStatus::Ended, 1_000)
    );
    // The stock is the sale's global stock, not what any node leased.
    let stocks: Vec<i64> = n1
        .sale_items(SALE)
        .expect("items")
        .iter()
        .map(|i| i.stock)
        .collect();
    assert_eq!(stocks, [10, 5]);
    let views = n1.node_sale_statuses(SALE).expect("views");
    let expected = [
        ("n1".to_owned(), SaleStatus::Ended),
        ("n2".to_owned(), SaleStatus::Ended),
    ];
    assert_eq!(views, expected);

    // Each node's orders, under its id, with their own histories.
    let first = n1.order("n1-order-1").expect("order").expect("n1's order");
    assert_eq!(
        (first.node_id.as_str(), first.status),
        ("n1", OrderStatus::Paying)
    );
    let second = n1.order("n2-order-1").expect("order").expect("n2's order");
    assert_eq!(
        (second.node_id.as_str(), second.status),
        ("n2", OrderStatus::Cancelled)
    );
    use OrderStatus::*;
    assert_eq!(
        history(&mut n1, "n1-order-1"),
        [(4, Reserved, 3_000), (5, Paying, 4_000)]
    );
    assert_eq!(
        history(&mut n1, "n2-order-1"),
        [(4, Reserved, 3_100), (5, Cancelled, 6_000)]
    );

    // Each node's lease: granted and given back.
    let leases: Vec<(String, i64, i64)> = n1
        .leases(SALE)
        .expect("leases")
        .into_iter()
        .map(|lease| (lease.node_id, lease.granted, lease.returned))
        .collect();
    assert_eq!(leases, [("n1".to_owned(), 10, 8), ("n2".to_owned(), 5, 0)]);

    // Re-applied, whole or in slices, by either node: nothing changes.
    let once = cluster_snapshot(&mut n1);
    for _ in 0..2 {
        n1.apply_batch(&n1_log).expect("n1 again");
        n2.apply_batch(&slice(&n2_log, 3..=7)).expect("n2 again");
    }
    assert_eq!(cluster_snapshot(&mut n2), once);

    // A node alone on the same store has a position of its own.
    let mut alone = db.open();
    assert_eq!(alone.applied_position().expect("position"), 0);
    positions = alone.positions().expect("positions");
    assert_eq!(
        positions.len(),
        2,
        "opening adds no position: {positions:?}"
    );
}

fn a_node_refuses_another_spec_or_its_own_second_create(db: &TestDb) {
    let mut n1 = db.open_as("n1");
    n1.apply_batch(&slice(&n1_journal(), 1..=2)).expect("n1");
    let before = cluster_snapshot(&mut n1);
    let mut n2 = db.open_as("n2");
    let mut other = created_on_node(1_500);
    if let Event::SaleCreated { sale, .. } = &mut other {
        sale.items[0].stock = 7;
    }
    let error = n2.apply_batch(&[(1, other)]).expect_err("another spec");
    assert!(error.to_string().contains("another spec"), "{error}");
    assert_eq!(cluster_snapshot(&mut n1), before);
    assert_eq!(n2.applied_position().expect("position"), 0);

    // The same node creating it again above its position: divergence.
    let again = [(3, created_on_node(2_500))];
    let error = n1.apply_batch(&again).expect_err("created twice");
    assert_eq!(error.to_string(), "record 3: sale `sale-1` already exists");
    // A transition of a sale this node never created, likewise.
    let error = n2
        .apply_batch(&[(1, sale_action(2_000, SaleAction::Start))])
        .expect_err("no sale on n2");
    assert_eq!(error.to_string(), "record 1: no sale `sale-1`");
    // A return beyond what the node holds.
    let beyond = [
        (3, lease_granted(2_100, "sku-a", 3)),
        (4, lease_returned(2_200, "sku-a", 4)),
    ];
    let error = n1.apply_batch(&beyond).expect_err("returned beyond");
    assert!(
        matches!(error, StoreError::Inconsistent { seq: 4, .. }),
        "{error}"
    );
    assert_eq!(cluster_snapshot(&mut n1), before);
}

/// Records of a node that sells `orders` single units, the sale created
/// and started by every node alike.
fn busy_node_journal(node: &str, orders: usize) -> Vec<(u64, Event)> {
    let mut events = vec![
        created_on_node(1_000),
        sale_action(2_000, SaleAction::Start),
        lease_granted(2_001, "sku-b", 1_000),
    ];
    for i in 0..orders {
        let at = 3_000 + i as i64;
        events.push(reserved(at, &format!("{node}-o{i}"), "sku-b", 1, "0.10"));
        if i % 3 == 0 {
            events.push(order_action(
                at,
                &format!("{node}-o{i}"),
                OrderAction::Cancel,
            ));
        }
    }
    (1..).zip(events).collect()
}

#[test]
fn postgres_nodes_writing_at_once_each_land_every_record_once() {
    const ORDERS: usize = 150;
    let db = TestDb::postgres();
    let writers: Vec<_> = ["n1", "n2", "n3"]
        .into_iter()
        .map(|node| {
            let mut store = db.open_as(node);
            std::thread::spawn(move || {
                let journal = busy_node_journal(node, ORDERS);
                for batch in journal.chunks(7) {
                    // A deadlock or serialization failure would be retried
                    // by the feeder; here it must not happen at all.
                    store.apply_batch(batch).expect("a concurrent batch");
                }
                journal.last().map(|(seq, _)| *seq)
            })
        })
        .collect();
    let ends: Vec<Option<u64>> = writers
        .into_iter()
        .map(|writer| writer.join().expect("writer"))
        .collect();
    let mut store = db.open();
    let positions: Vec<(String, Option<u64>)> = store
        .positions()
        .expect("positions")
        .into_iter()
        .map(|(node, seq)| (node, Some(seq)))
        .collect();
    let expected: Vec<(String, Option<u64>)> = ["n1", "n2", "n3"]
        .into_iter()
        .map(String::from)
        .zip(ends)
        .collect();
    assert_eq!(positions, expected);
    assert_eq!(shared_status(&mut store), SaleStatus::Live);
    for node in ["n1", "n2", "n3"] {
        for i in 0..ORDERS {
            let order = store.order(&format!("{node}-o{i}")).expect("order");
            let order = order.unwrap_or_else(|| panic!("{node}-o{i} is missing"));
            assert_eq!(order.node_id, node);
            let status = if i % 3 == 0 {
                OrderStatus::Cancelled
            } else {
                OrderStatus::Reserved
            };
            assert_eq!(order.status, status);
        }
    }
}

/// A store of version 2 (before per-node positions) holding a sale, an
/// order and a position, made by hand: the migration keeps all three.
fn a_store_made_before_cluster_nodes_keeps_its_position(db: &TestDb) {
    let mut store = db.open();
    store.apply_batch(&records(1..=5)).expect("apply");
    drop(store);
    // Back to version 2, as a store written by the previous release.
    let down = "DROP TABLE leases; DROP TABLE sale_nodes; DROP INDEX orders_by_node; \
        ALTER TABLE orders DROP COLUMN node_id; ALTER TABLE sales DROP COLUMN status_node; \
        ALTER TABLE sales DROP COLUMN status_at; DROP TABLE journal_positions; \
        CREATE TABLE journal_position (id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1), \
        applied_seq BIGINT NOT NULL CHECK (applied_seq >= 0)); \
        INSERT INTO journal_position (id, applied_seq) VALUES (1, 5); \
        DELETE FROM schema_migrations WHERE version = 3";
    match &db.config {
        StoreConfig::Sqlite { path } => {
            let conn = rusqlite::Connection::open(path).expect("open SQLite");
            conn.execute_batch(down).expect("version 2");
        }
        StoreConfig::Postgres { url } => {
            let mut client = ::postgres::Client::connect(url, ::postgres::NoTls).expect("connect");
            client.batch_execute(down).expect("version 2");
        }
    }
    let mut store = db.open();
    assert_eq!(store.applied_position().expect("position"), 5);
    assert_eq!(store.positions().expect("positions"), [(String::new(), 5)]);
    let views = store.node_sale_statuses(SALE).expect("views");
    assert_eq!(views, [(String::new(), SaleStatus::Live)]);
    // The node alone goes on exactly where it was.
    store.apply_batch(&records(1..=12)).expect("the rest");
    let control_db = TestDb::sqlite();
    let mut control = control_db.open();
    control.apply_batch(&records(1..=12)).expect("one batch");
    assert_eq!(snapshot(&mut store), snapshot(&mut control));
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                super::$name(&super::TestDb::sqlite());
            })*
        }
        mod postgres {
            $(#[test]
            fn $name() {
                super::$name(&super::TestDb::postgres());
            })*
        }
    };
}

on_both_backends!(
    fresh_store_is_at_position_zero,
    batch_apply_lands_every_event,
    reapplying_the_same_or_an_overlapping_batch_changes_nothing,
    restart_resumes_from_the_recorded_position,
    a_failed_batch_rolls_back_entirely,
    payments_and_refunds_land_in_their_columns,
    payment_events_the_table_refuses_roll_back,
    a_store_made_before_payments_is_migrated_on_open,
    two_nodes_interleave_their_batches_into_one_store,
    a_node_refuses_another_spec_or_its_own_second_create,
    a_store_made_before_cluster_nodes_keeps_its_position,
);

#[test]
fn an_absent_postgres_server_fails_fast_with_a_clear_error() {
    let started = std::time::Instant::now();
    let config = StoreConfig::Postgres {
        url: "postgres://postgres@127.0.0.1:1/flashgate".into(),
    };
    let error = Store::open(&config).expect_err("nothing listens on port 1");
    assert!(
        error
            .to_string()
            .starts_with("PostgreSQL not reachable at 127.0.0.1:1: "),
        "{error}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
