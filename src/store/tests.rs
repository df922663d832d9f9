//! The same test bodies against both backends: `sqlite::*` on a file in a
//! temp dir, `postgres::*` on a database of its own on 127.0.0.1:5432,
//! created for the test and dropped after it (by a guard, so also when the
//! test fails). An unreachable PostgreSQL fails the test, never skips it.

use super::{OrderEventRow, Store, StoreConfig, StoreError};
use crate::sale::{Event, ItemSpec, OrderAction, OrderStatus, SaleAction, SaleSpec, SaleStatus};
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

/// Records 1..=12 of one sale's life; tests apply slices of it.
fn journal() -> Vec<(u64, Event)> {
    let events = vec![
        sale_created(1_000),
        sale_action(2_000, SaleAction::Start),
        reserved(3_000, "order-1", "sku-a", 2, "199.80"),
        reserved(3_100, "order-2", "sku-b", 1, "0.10"),
        order_action(4_000, "order-1", OrderAction::StartPayment),
        order_action(5_000, "order-1", OrderAction::ConfirmPayment),
        order_action(6_000, "order-2", OrderAction::Expire),
        restocked(7_000, "sku-a", 5),
        sale_action(8_000, SaleAction::Pause),
        // 10..=12: what the overlap and restart tests add later.
        reserved(9_000, "order-3", "sku-a", 1, "99.90"),
        restocked(10_000, "sku-b", 3),
        order_action(11_000, "order-1", OrderAction::RequestRefund),
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
    assert_eq!((paid.paid_at_ms, paid.updated_at_ms), (Some(5_000), 5_000));
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
        (Some(5_000), 11_000)
    );
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
    let refund = order_action(4_000, "order-1", OrderAction::CompleteRefund);
    illegal.push((4, refund));
    let error = store.apply_batch(&illegal).expect_err("illegal");
    assert!(matches!(error, StoreError::Inconsistent { seq: 4, .. }));
    assert_eq!(snapshot(&mut store), before);
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
