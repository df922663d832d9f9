//! The durability pipeline behind the journal, end to end on an in-process
//! gateway: the store writer follows the journal into SQLite (the default)
//! or PostgreSQL, survives restarts without losing or doubling a record,
//! writes snapshots and deletes the journal segments they cover.
//!
//! The store is read back through `Store`'s own read methods (plus a raw
//! row count, which `Store` has no method for) and compared with what the
//! gateway answered. Every wait is bounded and fails with what it saw.
//!
//! PostgreSQL must listen on 127.0.0.1:5432 (user `postgres`, trust auth):
//! each test that needs it creates a database of its own and drops it at the
//! end. If the server is not there, those tests fail; they never skip.

mod common;

use common::pg::{off_runtime, PgDatabase};
use common::*;
use flashgate::app::Gateway;
use flashgate::config::Config;
use flashgate::sale::{OrderStatus, SaleStatus};
use flashgate::store::{Store, StoreConfig};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// How long the store may take to catch up with the journal.
const STORE_WAIT: Duration = Duration::from_secs(5);

/// `/metrics` is process-wide: one recorder, and every gateway's store
/// writer sets the store gauge from its own thread. Two gateways of this
/// test binary running at once would read each other's position, so the
/// tests that run a gateway take turns.
static ONE_GATEWAY_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---- scratch space, databases and backends -------------------------------------

/// Where the gateway under test keeps its store.
#[derive(Clone)]
enum Backend {
    Sqlite(PathBuf),
    Postgres(String),
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Sqlite(path) => write!(f, "SQLite at {}", path.display()),
            Backend::Postgres(url) => write!(f, "PostgreSQL at {url}"),
        }
    }
}

impl Backend {
    /// The gateway's `storage.postgres_url`: empty for SQLite in the data dir.
    fn postgres_url(&self) -> String {
        match self {
            Backend::Sqlite(_) => String::new(),
            Backend::Postgres(url) => url.clone(),
        }
    }

    fn store_config(&self) -> StoreConfig {
        match self {
            Backend::Sqlite(path) => StoreConfig::Sqlite { path: path.clone() },
            Backend::Postgres(url) => StoreConfig::Postgres { url: url.clone() },
        }
    }

    /// Opens the store (next to the gateway's own connection, or after it
    /// stopped) and hands it to `read`.
    fn inspect<R: Send>(&self, read: impl FnOnce(&mut Store) -> R + Send) -> R {
        let config = self.store_config();
        off_runtime(move || {
            let mut store = Store::open(&config)
                .unwrap_or_else(|error| panic!("cannot open the store ({self}): {error}"));
            read(&mut store)
        })
    }

    /// Every order id in the store, and the number of history rows: `Store`
    /// reads one order at a time, so the totals come from plain SQL.
    fn order_rows(&self) -> (BTreeSet<String>, i64) {
        const IDS: &str = "SELECT order_id FROM orders";
        const EVENTS: &str = "SELECT COUNT(*) FROM order_events";
        match self {
            Backend::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).expect("open the SQLite store");
                let mut statement = conn.prepare(IDS).expect("prepare");
                let ids = statement
                    .query_map([], |row| row.get::<_, String>(0))
                    .expect("query orders")
                    .map(|id| id.expect("an order id"))
                    .collect();
                let events = conn
                    .query_row(EVENTS, [], |row| row.get(0))
                    .expect("count order_events");
                (ids, events)
            }
            Backend::Postgres(url) => off_runtime(|| {
                let mut client = postgres::Client::connect(url, postgres::NoTls)
                    .unwrap_or_else(|error| panic!("cannot connect to {url}: {error}"));
                let ids = client
                    .query(IDS, &[])
                    .expect("query orders")
                    .iter()
                    .map(|row| row.get::<_, String>(0))
                    .collect();
                let events = client
                    .query_one(EVENTS, &[])
                    .expect("count order_events")
                    .get(0);
                (ids, events)
            }),
        }
    }
}

// ---- the gateway -------------------------------------------------------------------

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()))
        .unwrap_or_else(|| "<a panic without a message>".to_owned())
}

/// Starts a gateway on `data_dir` with `backend` as its store. The start runs
/// in a task of its own, so that a panic inside `Gateway::start` fails the
/// test with a message saying so.
async fn start_gateway(
    data_dir: &Path,
    backend: &Backend,
    tweak: impl FnOnce(&mut Config) + Send + 'static,
) -> TestGateway {
    let data_dir = data_dir.to_owned();
    let postgres_url = backend.postgres_url();
    let starting = tokio::spawn(TestGateway::start_with(move |config| {
        config.storage.data_dir = data_dir;
        config.storage.postgres_url = postgres_url;
        tweak(config);
    }));
    match starting.await {
        Ok(gateway) => gateway,
        Err(error) if error.is_panic() => panic!(
            "starting the gateway with its store on {backend} panicked: {}",
            panic_text(&*error.into_panic())
        ),
        Err(error) => panic!("starting the gateway failed: {error}"),
    }
}

// ---- positions ---------------------------------------------------------------------

/// `(journal durable seq, store applied seq)` as `/metrics` reports them.
async fn positions(client: &mut Client) -> (u64, u64) {
    let reply = client.get_anonymous("/metrics").await;
    assert_eq!(reply.status, 200, "/metrics: {}", reply.text());
    let text = reply.text();
    (
        gauge(&text, "flashgate_journal_durable_seq"),
        gauge(&text, "flashgate_store_applied_seq"),
    )
}

/// Polls `/metrics` until the journal holds `records` records and the store
/// has applied every one of them; `Err` says what it saw at the deadline.
async fn store_catches_up(
    client: &mut Client,
    records: u64,
    journal_dir: &Path,
) -> Result<(), String> {
    let deadline = Instant::now() + STORE_WAIT;
    loop {
        let (durable, applied) = positions(client).await;
        if durable >= records && applied == durable {
            assert_eq!(
                durable, records,
                "the journal holds {durable} records but the test made {records} changes"
            );
            return Ok(());
        }
        if Instant::now() >= deadline {
            let mut message = format!(
                "timed out after {STORE_WAIT:?} waiting for the store to catch up with the \
                 journal: journal durable seq {durable} (the test made {records} changes), \
                 store applied seq {applied}; segments {:?}",
                segments(journal_dir)
            );
            if segments(journal_dir).first().map(|(first, _)| *first) == Some(applied + 1) {
                message += &format!(
                    ". The store writer stopped at record {applied}, the last of a segment \
                     that its own checkpoint then deleted, and it keeps reading the deleted \
                     file instead of moving on to the segment starting at {} (the gateway \
                     logs \"store writer cannot read the journal\" at every poll)",
                    applied + 1
                );
            }
            return Err(message);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_store_caught_up(client: &mut Client, records: u64, journal_dir: &Path) {
    if let Err(message) = store_catches_up(client, records, journal_dir).await {
        panic!("{message}");
    }
}

// ---- journal files -------------------------------------------------------------------

/// The journal's segments, oldest first, as `(first seq, path)`.
fn segments(journal_dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(journal_dir)
        .unwrap_or_else(|error| panic!("cannot list {}: {error}", journal_dir.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter_map(|path| {
            let stem = path.file_name()?.to_str()?.strip_suffix(".log")?;
            let first = (stem.len() == 20).then(|| stem.parse().ok())??;
            Some((first, path))
        })
        .collect();
    found.sort();
    found
}

/// The seq of the last record on disk, read from the segment files
/// (`[len u32][crc u32][seq u64][payload]`).
fn journal_last_seq(journal_dir: &Path) -> u64 {
    let all = segments(journal_dir);
    let (first, path) = all
        .last()
        .unwrap_or_else(|| panic!("no segment in {}", journal_dir.display()));
    let bytes = std::fs::read(path).expect("read the last segment");
    let (mut offset, mut last) = (0, first - 1);
    while offset + 16 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
        let seq = u64::from_le_bytes(bytes[offset + 8..offset + 16].try_into().unwrap());
        assert_eq!(seq, last + 1, "{} at {offset}", path.display());
        last = seq;
        offset += 16 + len;
    }
    assert_eq!(
        offset,
        bytes.len(),
        "{} ends inside a record",
        path.display()
    );
    last
}

/// `(seq, file name)` of the snapshots in `dir`.
fn snapshots(dir: &Path) -> Vec<(u64, String)> {
    let mut found: Vec<(u64, String)> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("cannot list {}: {error}", dir.display()))
        .filter_map(|entry| {
            let name = entry.expect("dir entry").file_name().into_string().ok()?;
            let seq = name
                .strip_prefix("snapshot-")?
                .strip_suffix(".json")?
                .parse()
                .ok()?;
            Some((seq, name))
        })
        .collect();
    found.sort();
    found
}

// ---- what the test did, and what the store must hold -------------------------------

const SKU_PRICE: &str = "99.00";
const SKU_TITLE: &str = "Lipstick No. 7";

/// A one-item sale ([`SKU`] at 99.00) whose holds outlive the test, so no
/// expiry adds records behind its back.
fn long_hold_sale(sale_id: &str, title: &str, stock: i64, per_user_limit: u32) -> Value {
    json!({
        "sale_id": sale_id,
        "title": title,
        "hold_seconds": 3600,
        "items": [{
            "sku_id": SKU,
            "title": SKU_TITLE,
            "price": SKU_PRICE,
            "stock": stock,
            "per_user_limit": per_user_limit,
        }],
    })
}

struct ExpectedSale {
    sale_id: &'static str,
    title: &'static str,
    status: SaleStatus,
    /// Initial stock plus every restock.
    stock: i64,
    per_user_limit: u32,
}

/// An order the test placed, and every status it moved through.
#[derive(Debug, Clone)]
struct Placed {
    order_id: String,
    buyer: String,
    key: String,
    quantity: u32,
    amount: String,
    statuses: Vec<OrderStatus>,
}

async fn place(
    client: &mut Client,
    sale_id: &str,
    buyer: &str,
    key: &str,
    quantity: u32,
) -> Placed {
    let order = client
        .order(&buyer_token(buyer), key, sale_id, i64::from(quantity))
        .await
        .expect_json(201);
    assert_eq!(order["status"], "reserved", "{order}");
    Placed {
        order_id: order["order_id"].as_str().expect("order_id").to_owned(),
        buyer: buyer.to_owned(),
        key: key.to_owned(),
        quantity,
        amount: order["amount"].as_str().expect("amount").to_owned(),
        statuses: vec![OrderStatus::Reserved],
    }
}

async fn cancel(client: &mut Client, order: &mut Placed) {
    let path = format!("/v1/orders/{}/cancel", order.order_id);
    let cancelled = client
        .post_empty(&path, &buyer_token(&order.buyer))
        .await
        .expect_json(200);
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    order.statuses.push(OrderStatus::Cancelled);
}

async fn restock(client: &mut Client, sale_id: &str, add: i64) {
    let path = format!("/admin/v1/sales/{sale_id}/items/{SKU}/restock");
    client
        .post_json(&path, HOST_TOKEN, &json!({ "add": add }))
        .await
        .expect_json(200);
}

async fn sale_action(client: &mut Client, sale_id: &str, action: &str, status: &str) {
    let view = client.sale_action(sale_id, action).await.expect_json(200);
    assert_eq!(view["status"], status, "{view}");
}

/// The gateway's own answers, to compare the store with (times included).
struct GatewayView {
    sale: Value,
    orders: HashMap<String, Value>,
}

async fn gateway_view(client: &mut Client, sale_id: &str, orders: &[Placed]) -> GatewayView {
    let sale = client
        .get(&format!("/v1/sales/{sale_id}"), OPS_TOKEN)
        .await
        .expect_json(200);
    let mut views = HashMap::new();
    for order in orders {
        let path = format!("/admin/v1/orders/{}", order.order_id);
        views.insert(
            order.order_id.clone(),
            client.get(&path, OPS_TOKEN).await.expect_json(200),
        );
    }
    GatewayView {
        sale,
        orders: views,
    }
}

fn money(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap_or_else(|error| panic!("{text:?} is not money: {error}"))
}

/// The store is at `position` and holds exactly the sale and the orders the
/// test made: every row with the status the test drove it to and the
/// gateway reports, exact amounts, one history row per status change.
fn assert_store_holds(
    backend: &Backend,
    position: u64,
    sale: &ExpectedSale,
    orders: &[Placed],
    view: &GatewayView,
) {
    backend.inspect(|store| {
        assert_eq!(
            store.applied_position().expect("applied_position"),
            position,
            "the store's journal position ({backend})"
        );
        let row = store
            .sale(sale.sale_id)
            .expect("read the sale")
            .unwrap_or_else(|| panic!("no row for sale {} in the store", sale.sale_id));
        assert_eq!(row.status, sale.status, "sale status in the store: {row:?}");
        assert_eq!(row.title, sale.title);
        assert_eq!(row.hold_seconds, 3600);
        assert_eq!(row.created_at_ms, rfc3339_ms(&view.sale["created_at"]));
        let items = store.sale_items(sale.sale_id).expect("read the items");
        assert_eq!(items.len(), 1, "{items:?}");
        let item = &items[0];
        assert_eq!(item.sku_id, SKU);
        assert_eq!(item.title, SKU_TITLE);
        assert_eq!(item.price, money(SKU_PRICE));
        assert_eq!(
            item.price.to_string(),
            SKU_PRICE,
            "the price keeps two places"
        );
        assert_eq!(
            item.stock, sale.stock,
            "initial stock plus restocks: {item:?}"
        );
        assert_eq!(item.per_user_limit, sale.per_user_limit);

        for order in orders {
            let id = &order.order_id;
            let admin = &view.orders[id];
            let row = store
                .order(id)
                .expect("read an order")
                .unwrap_or_else(|| panic!("order {id} is not in the store ({backend})"));
            let status = *order.statuses.last().expect("a status");
            assert_eq!(row.status, status, "status of {id} in the store");
            assert_eq!(row.status.as_str(), admin["status"], "{id}: {admin}");
            assert_eq!(row.amount, money(&order.amount), "amount of {id}");
            assert_eq!(
                row.amount.to_string(),
                order.amount,
                "{id}: exact, two places"
            );
            assert_eq!(row.quantity, order.quantity, "{id}");
            assert_eq!(row.buyer, order.buyer, "{id}");
            assert_eq!(row.idempotency_key, order.key, "{id}");
            assert_eq!(
                (row.sale_id.as_str(), row.sku_id.as_str()),
                (sale.sale_id, SKU)
            );
            assert_eq!(row.created_at_ms, rfc3339_ms(&admin["created_at"]), "{id}");
            assert_eq!(row.expires_at_ms, rfc3339_ms(&admin["expires_at"]), "{id}");
            assert_eq!(row.paid_at_ms, None, "{id}");

            let events = store.order_events(id).expect("read the history");
            let history = admin["history"].as_array().expect("history");
            let stored: Vec<OrderStatus> = events.iter().map(|event| event.status).collect();
            assert_eq!(stored, order.statuses, "history rows of {id}: {events:?}");
            assert_eq!(events.len(), history.len(), "{id}: {admin}");
            for (event, entry) in events.iter().zip(history) {
                assert_eq!(event.status.as_str(), entry["status"], "{id}: {events:?}");
                assert_eq!(event.at_ms, rfc3339_ms(&entry["at"]), "{id}: {events:?}");
                assert!(event.seq >= 1 && event.seq <= position, "{id}: {events:?}");
            }
            assert!(
                events.windows(2).all(|pair| pair[0].seq < pair[1].seq),
                "{id}: history out of journal order: {events:?}"
            );
            assert_eq!(
                row.updated_at_ms,
                events.last().expect("a row").at_ms,
                "{id}"
            );
        }
    });
    let (ids, event_rows) = backend.order_rows();
    let expected: BTreeSet<String> = orders.iter().map(|order| order.order_id.clone()).collect();
    assert_eq!(ids, expected, "the store's order rows ({backend})");
    let expected_events: usize = orders.iter().map(|order| order.statuses.len()).sum();
    assert_eq!(
        event_rows, expected_events as i64,
        "order_events rows in the store ({backend})"
    );
}

// ---- 1 & 2. everything reaches the store, and shutdown drains it ---------------------

const FLOW_SALE: &str = "s-store";
const FLOW_TITLE: &str = "Store pipeline special";

async fn orders_cancels_restock_and_pause_reach_the_store(scratch: &Scratch, backend: Backend) {
    let _turn = ONE_GATEWAY_AT_A_TIME.lock().await;
    // One record per store transaction: the writer trails the journal more.
    let gateway = start_gateway(&scratch.data_dir(), &backend, |config| {
        config.storage.store_batch_records_max = 1;
    })
    .await;
    let mut client = gateway.client().await;
    client
        .create_sale(&long_hold_sale(FLOW_SALE, FLOW_TITLE, 40, 2))
        .await
        .expect_json(201);
    sale_action(&mut client, FLOW_SALE, "start", "live").await;
    let mut orders = Vec::new();
    for (buyer, quantity) in [("o_ann", 2), ("o_ben", 1), ("o_cat", 2), ("o_dan", 1)] {
        orders.push(
            place(
                &mut client,
                FLOW_SALE,
                buyer,
                &format!("k-{buyer}"),
                quantity,
            )
            .await,
        );
    }
    assert_eq!(orders[0].amount, "198.00");
    assert_eq!(orders[1].amount, "99.00");
    cancel(&mut client, &mut orders[1]).await;
    cancel(&mut client, &mut orders[2]).await;
    restock(&mut client, FLOW_SALE, 5).await;
    sale_action(&mut client, FLOW_SALE, "pause", "paused").await;
    // sale created, started; four orders; two cancels; a restock; a pause.
    let records = 10;
    wait_store_caught_up(&mut client, records, &scratch.journal_dir()).await;

    // Read next to the running gateway.
    let view = gateway_view(&mut client, FLOW_SALE, &orders).await;
    let mut sale = ExpectedSale {
        sale_id: FLOW_SALE,
        title: FLOW_TITLE,
        status: SaleStatus::Paused,
        stock: 45,
        per_user_limit: 2,
    };
    assert_store_holds(&backend, records, &sale, &orders, &view);
    backend.inspect(|store| {
        let ann = store.order(&orders[0].order_id).unwrap().unwrap();
        assert_eq!(ann.amount, money("198.00"));
        assert_eq!(ann.amount.to_string(), "198.00");
        assert_eq!(ann.status, OrderStatus::Reserved);
        let ben = store.order_events(&orders[1].order_id).unwrap();
        let ben: Vec<OrderStatus> = ben.iter().map(|event| event.status).collect();
        assert_eq!(ben, [OrderStatus::Reserved, OrderStatus::Cancelled]);
    });

    // More changes, then a shutdown straight away: it drains the store.
    sale_action(&mut client, FLOW_SALE, "start", "live").await;
    let late = 24;
    let tasks: Vec<_> = (0..late)
        .map(|n| {
            let addr = gateway.addr;
            tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                place(
                    &mut client,
                    FLOW_SALE,
                    &format!("o_late_{n:02}"),
                    "k-late",
                    1,
                )
                .await
            })
        })
        .collect();
    for task in tasks {
        orders.push(within("a late order", task).await.expect("order task"));
    }
    let last = orders.len() - 1;
    cancel(&mut client, &mut orders[last]).await;
    let view = gateway_view(&mut client, FLOW_SALE, &orders).await;
    // The last records: restocks at once, a pause, and the stop at once.
    let restocks = 30;
    let tasks: Vec<_> = (0..restocks)
        .map(|_| {
            let addr = gateway.addr;
            tokio::spawn(
                async move { restock(&mut Client::connect(addr).await, FLOW_SALE, 1).await },
            )
        })
        .collect();
    for task in tasks {
        within("a restock", task).await.expect("restock task");
    }
    sale_action(&mut client, FLOW_SALE, "pause", "paused").await;
    let records = records + 1 + late as u64 + 1 + restocks as u64 + 1;
    let (durable, applied) = positions(&mut client).await;
    eprintln!("at shutdown: journal at {durable}, store at {applied}");
    drop(client);
    gateway.stop().await;
    sale.stock += restocks;

    let journal_last = journal_last_seq(&scratch.journal_dir());
    assert_eq!(
        journal_last, records,
        "records in the journal after shutdown"
    );
    let applied = backend.inspect(|store| store.applied_position().expect("applied_position"));
    assert_eq!(
        applied, journal_last,
        "after shutdown the store must have applied the whole journal ({backend})"
    );
    assert_store_holds(&backend, records, &sale, &orders, &view);
}

#[tokio::test]
async fn sqlite_store_holds_every_order_status_amount_history_and_sale_change() {
    let scratch = Scratch::new("store-sqlite");
    let backend = Backend::Sqlite(scratch.sqlite_path());
    orders_cancels_restock_and_pause_reach_the_store(&scratch, backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_holds_every_order_status_amount_history_and_sale_change() {
    let database = PgDatabase::create();
    let scratch = Scratch::new("store-pg");
    orders_cancels_restock_and_pause_reach_the_store(&scratch, Backend::Postgres(database.url()))
        .await;
}

// ---- 3. a restart neither loses nor doubles --------------------------------------------

const RESTART_SALE: &str = "s-restart";
const RESTART_TITLE: &str = "Restart special";

/// Three runs on one data dir (and one store). Every start resends the
/// journal from the newest snapshot (or from its first record when there
/// is none); the store must skip what it holds, restocks included.
async fn restarts_neither_lose_nor_double(
    scratch: &Scratch,
    backend: Backend,
    snapshot_every_records: u64,
) {
    let _turn = ONE_GATEWAY_AT_A_TIME.lock().await;
    let data_dir = scratch.data_dir();
    let tweak = move |config: &mut Config| {
        config.storage.snapshot_every_records = snapshot_every_records;
    };
    let mut sale = ExpectedSale {
        sale_id: RESTART_SALE,
        title: RESTART_TITLE,
        status: SaleStatus::Live,
        stock: 20,
        per_user_limit: 3,
    };

    // Run 1.
    let gateway = start_gateway(&data_dir, &backend, tweak).await;
    let mut client = gateway.client().await;
    client
        .create_sale(&long_hold_sale(RESTART_SALE, RESTART_TITLE, 20, 3))
        .await
        .expect_json(201);
    sale_action(&mut client, RESTART_SALE, "start", "live").await;
    let mut orders = Vec::new();
    for (buyer, quantity) in [("o_r0", 2), ("o_r1", 1), ("o_r2", 3)] {
        orders.push(place(&mut client, RESTART_SALE, buyer, "k-1", quantity).await);
    }
    cancel(&mut client, &mut orders[1]).await;
    restock(&mut client, RESTART_SALE, 5).await;
    sale.stock += 5;
    let mut records = 7;
    wait_store_caught_up(&mut client, records, &scratch.journal_dir()).await;
    drop(client);
    gateway.stop().await;

    // Run 2: the store resumes; more orders, cancels, a restock, a pause.
    let gateway = start_gateway(&data_dir, &backend, tweak).await;
    let mut client = gateway.client().await;
    wait_store_caught_up(&mut client, records, &scratch.journal_dir()).await;
    let view = gateway_view(&mut client, RESTART_SALE, &orders).await;
    assert_store_holds(&backend, records, &sale, &orders, &view);
    for (buyer, quantity) in [("o_r3", 1), ("o_r4", 2)] {
        orders.push(place(&mut client, RESTART_SALE, buyer, "k-2", quantity).await);
    }
    cancel(&mut client, &mut orders[0]).await;
    cancel(&mut client, &mut orders[4]).await;
    restock(&mut client, RESTART_SALE, 3).await;
    sale.stock += 3;
    sale_action(&mut client, RESTART_SALE, "pause", "paused").await;
    sale.status = SaleStatus::Paused;
    records += 6;
    wait_store_caught_up(&mut client, records, &scratch.journal_dir()).await;
    let view = gateway_view(&mut client, RESTART_SALE, &orders).await;
    assert_store_holds(&backend, records, &sale, &orders, &view);
    drop(client);
    gateway.stop().await;

    // Run 3: nothing new at first; the resend must change nothing.
    let gateway = start_gateway(&data_dir, &backend, tweak).await;
    let mut client = gateway.client().await;
    wait_store_caught_up(&mut client, records, &scratch.journal_dir()).await;
    // The store writer resends while the metrics already agree: give it a
    // moment, then read.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let view = gateway_view(&mut client, RESTART_SALE, &orders).await;
    assert_store_holds(&backend, records, &sale, &orders, &view);
    sale_action(&mut client, RESTART_SALE, "start", "live").await;
    sale.status = SaleStatus::Live;
    orders.push(place(&mut client, RESTART_SALE, "o_r5", "k-3", 1).await);
    records += 2;
    wait_store_caught_up(&mut client, records, &scratch.journal_dir()).await;
    let view = gateway_view(&mut client, RESTART_SALE, &orders).await;
    drop(client);
    gateway.stop().await;

    assert_eq!(journal_last_seq(&scratch.journal_dir()), records);
    assert_eq!(orders.len(), 6);
    assert_store_holds(&backend, records, &sale, &orders, &view);
}

#[tokio::test]
async fn sqlite_restart_resends_the_whole_journal_and_the_store_neither_loses_nor_doubles() {
    let scratch = Scratch::new("store-restart");
    // No snapshot is ever written: every start resends from record 1.
    restarts_neither_lose_nor_double(&scratch, Backend::Sqlite(scratch.sqlite_path()), 1_000_000)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_resends_from_the_snapshot_and_the_store_neither_loses_nor_doubles() {
    let database = PgDatabase::create();
    let scratch = Scratch::new("store-restart-pg");
    restarts_neither_lose_nor_double(&scratch, Backend::Postgres(database.url()), 4).await;
}

// ---- 4. snapshots bound the journal ------------------------------------------------------

const SNAP_SALE: &str = "s-snap";
const SNAP_ORDERS: usize = 600;
const SNAP_CONNECTIONS: usize = 6;

fn snap_config(config: &mut Config) {
    config.storage.snapshot_every_records = 50;
    config.storage.journal_segment_bytes_max = 65_536;
}

/// `(buyer, 201 body)` of `count` orders from distinct buyers, over
/// [`SNAP_CONNECTIONS`] connections at once.
async fn order_burst(gateway: &TestGateway, prefix: &str, count: usize) -> Vec<(String, Value)> {
    let tasks: Vec<_> = (0..SNAP_CONNECTIONS)
        .map(|connection| {
            let (addr, prefix) = (gateway.addr, prefix.to_owned());
            tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                let mut placed = Vec::new();
                for n in (connection..count).step_by(SNAP_CONNECTIONS) {
                    let buyer = format!("{prefix}_{n:04}");
                    let order = client
                        .order(&buyer_token(&buyer), "k", SNAP_SALE, 1)
                        .await
                        .expect_json(201);
                    placed.push((buyer, order));
                }
                placed
            })
        })
        .collect();
    let mut placed = Vec::new();
    for task in tasks {
        placed.extend(within("an order burst", task).await.expect("order task"));
    }
    placed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_delete_covered_segments_and_a_restart_restores_every_order() {
    let _turn = ONE_GATEWAY_AT_A_TIME.lock().await;
    let scratch = Scratch::new("store-snap");
    let backend = Backend::Sqlite(scratch.sqlite_path());
    let gateway = start_gateway(&scratch.data_dir(), &backend, snap_config).await;
    let mut client = gateway.client().await;
    client
        .create_sale(&long_hold_sale(SNAP_SALE, "Snapshot special", 1000, 1))
        .await
        .expect_json(201);
    sale_action(&mut client, SNAP_SALE, "start", "live").await;
    let placed = order_burst(&gateway, "o_snap", SNAP_ORDERS).await;
    let mut records = 2 + SNAP_ORDERS as u64;
    wait_store_caught_up(&mut client, records, &scratch.journal_dir()).await;

    // A snapshot, and the segments it covers gone (the last checkpoint may
    // still be deleting when the position is reported).
    let deadline = Instant::now() + Duration::from_secs(2);
    let (snapshot_seq, first_segment) = loop {
        let snapshot_seq = snapshots(&scratch.snapshot_dir())
            .last()
            .map(|(seq, _)| *seq);
        let first_segment = segments(&scratch.journal_dir())[0].0;
        if let Some(seq) = snapshot_seq.filter(|_| first_segment > 1) {
            break (seq, first_segment);
        }
        assert!(
            Instant::now() < deadline,
            "after {records} records with snapshot_every_records = 50 and 64 KiB segments: \
             snapshots {:?}, segments {:?}",
            snapshots(&scratch.snapshot_dir()),
            segments(&scratch.journal_dir())
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        snapshot_seq + 1 >= first_segment && snapshot_seq <= records,
        "records 1..{first_segment} were deleted but the snapshot covers only up to \
         {snapshot_seq}"
    );
    let ids: Vec<String> = placed
        .iter()
        .map(|(_, order)| order["order_id"].as_str().expect("order_id").to_owned())
        .collect();
    backend.inspect(|store| {
        for id in &ids {
            let row = store.order(id).expect("read an order");
            assert!(
                row.is_some_and(|row| row.status == OrderStatus::Reserved),
                "order {id} is not in the store as reserved"
            );
        }
    });
    let stats_before = client.stats(SNAP_SALE).await;
    drop(client);
    gateway.stop().await;

    // Restart from the snapshot and the segments left.
    let gateway = start_gateway(&scratch.data_dir(), &backend, snap_config).await;
    let mut client = gateway.client().await;
    let stats_after = client.stats(SNAP_SALE).await;
    for field in ["status", "items", "orders"] {
        assert_eq!(stats_after[field], stats_before[field], "stats.{field}");
    }
    for (buyer, order) in &placed {
        let path = format!("/v1/orders/{}", order["order_id"].as_str().unwrap());
        let read = client.get(&path, &buyer_token(buyer)).await;
        assert_eq!(
            read.status,
            200,
            "{path} after the restart: {}",
            read.text()
        );
        assert_eq!(&read.json(), order, "{path} after the restart");
    }

    // New orders continue, with fresh ids, and reach the store.
    let later = order_burst(&gateway, "o_late", 12).await;
    records += 12;
    for (_, order) in &later {
        let id = order["order_id"].as_str().expect("order_id");
        assert!(!ids.iter().any(|old| old == id), "{id} was issued before");
    }
    wait_store_caught_up(&mut client, records, &scratch.journal_dir()).await;
    let stats = client.stats(SNAP_SALE).await;
    assert_eq!(stats["items"][0]["stock"], 1000, "{stats}");
    assert_eq!(stats["items"][0]["reserved"], SNAP_ORDERS + 12, "{stats}");
    drop(client);
    gateway.stop().await;
    let (rows, _) = backend.order_rows();
    assert_eq!(rows.len(), SNAP_ORDERS + 12, "order rows in the store");
    backend.inspect(|store| {
        assert_eq!(store.applied_position().unwrap(), records);
        for (_, order) in &later {
            let id = order["order_id"].as_str().unwrap();
            assert!(store.order(id).unwrap().is_some(), "{id} not in the store");
        }
    });
}

/// The store writer may stop exactly at the end of a segment (the journal
/// was idle just after the commit that filled it). If the checkpoint of
/// that very batch deletes the segment, the writer must still find the
/// next one when records arrive.
#[tokio::test]
async fn store_keeps_following_after_a_checkpoint_deletes_the_segment_it_stopped_at() {
    const SALE: &str = "s-boundary";
    let _turn = ONE_GATEWAY_AT_A_TIME.lock().await;
    let scratch = Scratch::new("store-boundary");
    let backend = Backend::Sqlite(scratch.sqlite_path());
    let gateway = start_gateway(&scratch.data_dir(), &backend, |config| {
        config.storage.snapshot_every_records = 1; // a checkpoint after every batch
        config.storage.journal_segment_bytes_max = 65_536;
        // Segments that grow as they are written: the loop below tells a
        // full one by its file's length. A preallocated spare is that long
        // from its first record, and the writer may move into one a commit
        // after the 201 this loop has already looked past.
        config.storage.journal_preallocate = false;
    })
    .await;
    let mut client = gateway.client().await;
    client
        .create_sale(&long_hold_sale(SALE, "Boundary special", 100_000, 1))
        .await
        .expect_json(201);
    sale_action(&mut client, SALE, "start", "live").await;
    let journal_dir = scratch.journal_dir();
    // Long buyers and keys: fewer orders fill a segment.
    let key = "k".repeat(64);
    let mut records = 2u64;
    let mut boundaries = 0;
    loop {
        let buyer = format!("o_{records:06}_{}", "b".repeat(100));
        client
            .order(&buyer_token(&buyer), &key, SALE, 1)
            .await
            .expect_json(201);
        records += 1;
        assert!(
            records < 1_000,
            "no segment boundary seen in {records} records"
        );
        // Did that order fill the segment? Either the segment it went to is
        // full, or the journal has opened the next one already.
        let mut listed = segments(&journal_dir);
        let (first, newest) = listed.pop().expect("a segment");
        let rotated = first == records + 1;
        let full = !rotated && std::fs::metadata(&newest).expect("segment").len() >= 65_536;
        if !rotated && !full {
            continue;
        }
        let last = if rotated {
            listed.pop().expect("the segment before").1
        } else {
            newest
        };
        // Stay idle until the next segment is open and the store has applied
        // up to the boundary and run its checkpoint.
        boundaries += 1;
        let deadline = Instant::now() + WAIT;
        while segments(&journal_dir).last().map(|(first, _)| *first) != Some(records + 1) {
            assert!(
                Instant::now() < deadline,
                "no segment opened after {records}; segments {:?}",
                segments(&journal_dir)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        wait_store_caught_up(&mut client, records, &scratch.journal_dir()).await;
        let deadline = Instant::now() + Duration::from_secs(2);
        while segments(&journal_dir).iter().any(|(_, path)| *path == last) {
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if segments(&journal_dir).iter().all(|(_, path)| *path != last) {
            break; // the segment the store writer stopped at is gone
        }
        // The checkpoint ran before the next segment existed; next boundary.
        assert!(
            boundaries < 3,
            "could not make a checkpoint delete the segment the store stopped at"
        );
    }
    eprintln!(
        "store at {records} (boundary {boundaries}), the end of a deleted segment; segments now {:?}",
        segments(&journal_dir)
    );

    // Records arrive in the next segment: the store must follow.
    for n in 0..3 {
        let buyer = format!("o_after_{n}");
        client
            .order(&buyer_token(&buyer), "k-after", SALE, 1)
            .await
            .expect_json(201);
    }
    records += 3;
    wait_store_caught_up(&mut client, records, &journal_dir).await;
    drop(client);
    gateway.stop().await;
    let applied = backend.inspect(|store| store.applied_position().unwrap());
    assert_eq!(applied, records);
}

// ---- 5. the store is down at start -------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_fails_fast_with_a_clear_error_when_postgresql_is_not_reachable() {
    let scratch = Scratch::new("store-pg-down");
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".into();
    config.storage.data_dir = scratch.data_dir();
    // Nothing listens on port 1.
    config.storage.postgres_url = "postgres://postgres@127.0.0.1:1/flashgate".into();
    let started = Instant::now();
    let starting = tokio::spawn(async move {
        match Gateway::start(config).await {
            Ok(gateway) => {
                gateway.shutdown().await;
                Ok(())
            }
            Err(error) => Err(error.to_string()),
        }
    });
    let outcome = tokio::time::timeout(Duration::from_secs(10), starting)
        .await
        .unwrap_or_else(|_| {
            panic!("Gateway::start did not return within 10 s with PostgreSQL unreachable")
        });
    let elapsed = started.elapsed();
    let message = match outcome {
        Ok(Ok(())) => panic!("the gateway started although nothing listens on 127.0.0.1:1"),
        Ok(Err(message)) => message,
        Err(error) if error.is_panic() => panic!(
            "Gateway::start panicked instead of returning an error: {}",
            panic_text(&*error.into_panic())
        ),
        Err(error) => panic!("the start task failed: {error}"),
    };
    assert!(
        message.contains("PostgreSQL not reachable") && message.contains("127.0.0.1:1"),
        "the error must say PostgreSQL is not reachable, and where: {message}"
    );
    assert!(
        !message.contains("postgres://"),
        "the error must not echo the URL: {message}"
    );
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

// ---- 6. the store writer stands aside during a burst ----------------------------------

const DEFER_SALE: &str = "s-defer";

/// Orders arrive back to back, a record every millisecond or two, faster
/// than the store writer's 20 ms look: it lets them wait, up to
/// `store_defer_records_max`, and applies them all once the orders stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_burst_the_store_waits_within_its_bound_and_catches_up_after() {
    let _turn = ONE_GATEWAY_AT_A_TIME.lock().await;
    let scratch = Scratch::new("store-defer");
    let backend = Backend::Sqlite(scratch.sqlite_path());
    const WAIT_MAX: u64 = 150;
    let gateway = start_gateway(&scratch.data_dir(), &backend, |config| {
        config.storage.store_defer_records_max = WAIT_MAX;
        config.storage.store_batch_records_max = 10;
    })
    .await;
    let mut client = gateway.client().await;
    client.live_sale(DEFER_SALE, 10_000, 1).await;
    let journal_dir = scratch.data_dir().join("journal");
    wait_store_caught_up(&mut client, 2, &journal_dir).await;

    const ORDERS: u64 = 1_000;
    let ordering = tokio::spawn(async move {
        for n in 0..ORDERS {
            client
                .order(&buyer_token(&format!("o_defer_{n:04}")), "k", DEFER_SALE, 1)
                .await
                .expect_json(201);
        }
        client
    });
    let mut watcher = gateway.client().await;
    let mut waited_max = 0;
    while !ordering.is_finished() {
        let (durable, applied) = positions(&mut watcher).await;
        waited_max = waited_max.max(durable.saturating_sub(applied));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut client = within("the orders", ordering).await.expect("order task");
    assert!(
        waited_max >= WAIT_MAX / 2,
        "the store writer applied records as they came during the burst: at most {waited_max} waited"
    );
    // The bound, plus what arrives during one 20 ms look and one batch.
    assert!(
        waited_max <= WAIT_MAX + 100,
        "{waited_max} records waited, past the bound of {WAIT_MAX}"
    );
    wait_store_caught_up(&mut client, 2 + ORDERS, &journal_dir).await;
}
