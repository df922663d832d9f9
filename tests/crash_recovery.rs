//! Crash recovery of the real `flashgate` binary: `kill -9` in the middle of
//! an order burst, a graceful restart, a torn journal tail, and damage inside
//! the journal.
//!
//! The rule checked throughout: whatever got a 2xx is there after a restart;
//! what was in flight at the kill may or may not be, and the stock is never
//! oversold either way.

mod common;

use bytes::Bytes;
use common::served::Served;
use common::*;
use flashgate::store::{Store, StoreConfig};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

// ---- a scratch directory and the process under test ---------------------------

/// A running `flashgate serve` on a scratch dir's data dir
/// ([`common::served`]: free ports, `/healthz`, SIGTERM, reaped on drop).
struct Node(Served);

impl Node {
    /// Spawns the node without waiting for it; `run` names its log file.
    fn spawn(scratch: &Scratch, run: &str) -> Node {
        Node::spawn_with(scratch, run, &[])
    }

    fn spawn_with(scratch: &Scratch, run: &str, env: &[(String, String)]) -> Node {
        let stderr_path = scratch.0.join(format!("stderr-{run}.log"));
        Node(Served::spawn(&scratch.data_dir(), stderr_path, env))
    }

    /// Spawns the node and waits until `/healthz` answers 200.
    async fn start(scratch: &Scratch, run: &str) -> Node {
        Node::start_with(scratch, run, &[]).await
    }

    async fn start_with(scratch: &Scratch, run: &str, env: &[(String, String)]) -> Node {
        Node(
            Served::start(|attempt| Node::spawn_with(scratch, &format!("{run}-{attempt}"), env).0)
                .await,
        )
    }
}

impl std::ops::Deref for Node {
    type Target = Served;
    fn deref(&self) -> &Served {
        &self.0
    }
}

impl std::ops::DerefMut for Node {
    fn deref_mut(&mut self) -> &mut Served {
        &mut self.0
    }
}

// ---- a client that survives the server dying -----------------------------------

/// One keep-alive connection whose requests return an error instead of
/// panicking when the server goes away (the common client panics).
struct Conn {
    addr: SocketAddr,
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Conn {
        let sender = http1_sender(addr).await;
        Conn { addr, sender }
    }

    /// `Ok((status, json body))`, or `Err` if the connection broke. A
    /// response that takes longer than [`WAIT`] is an `Err` starting with
    /// "timed out".
    async fn call(
        &mut self,
        path: &str,
        token: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let exchange = async {
            let mut request = Request::builder()
                .method(Method::POST)
                .uri(path)
                .header("host", self.addr.to_string())
                .header("authorization", bearer(token));
            if let Some(key) = key {
                request = request.header("idempotency-key", key);
            }
            let payload = match body {
                Some(body) => {
                    request = request.header("content-type", "application/json");
                    Bytes::from(body.to_string())
                }
                None => Bytes::new(),
            };
            let request = request.body(Full::new(payload)).expect("a valid request");
            self.sender
                .ready()
                .await
                .map_err(|error| format!("connection not ready: {error}"))?;
            let response = self
                .sender
                .send_request(request)
                .await
                .map_err(|error| format!("request failed: {error}"))?;
            let status = response.status().as_u16();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|error| format!("body failed: {error}"))?
                .to_bytes();
            let json = serde_json::from_slice(&bytes).unwrap_or_else(|error| {
                panic!(
                    "status {status} with a body that is not JSON ({error}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            });
            Ok((status, json))
        };
        match tokio::time::timeout(WAIT, exchange).await {
            Ok(result) => result,
            Err(_) => Err(format!("timed out after {WAIT:?} waiting for POST {path}")),
        }
    }
}

fn order_body(sale_id: &str, quantity: u32) -> Value {
    json!({ "sale_id": sale_id, "sku_id": SKU, "quantity": quantity })
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}

fn stock_counts(stats: &Value) -> (i64, i64, i64, i64) {
    let item = &stats["items"][0];
    let field = |name: &str| {
        item[name]
            .as_i64()
            .unwrap_or_else(|| panic!("no {name} in {stats}"))
    };
    (
        field("stock"),
        field("remaining"),
        field("reserved"),
        field("paid"),
    )
}

/// `remaining + reserved + paid == stock`, nothing negative, nothing oversold.
fn assert_stock_conserved(stats: &Value, stock: i64) {
    let (total, remaining, reserved, paid) = stock_counts(stats);
    assert_eq!(total, stock, "the item's stock changed: {stats}");
    assert!(
        remaining >= 0 && reserved >= 0 && paid >= 0,
        "negative counts: {stats}"
    );
    assert_eq!(
        remaining + reserved + paid,
        stock,
        "remaining + reserved + paid != stock: {stats}"
    );
    assert!(reserved + paid <= stock, "oversold: {stats}");
}

// ---- journal files -------------------------------------------------------------

/// The journal's segment files (`<20 digits>.log`), oldest first.
fn segments(journal_dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(journal_dir)
        .unwrap_or_else(|error| panic!("cannot list {}: {error}", journal_dir.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .and_then(|name| name.strip_suffix(".log"))
                .is_some_and(|stem| stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    found.sort();
    assert!(
        !found.is_empty(),
        "no segment file in {}",
        journal_dir.display()
    );
    found
}

/// Start offsets of the records of a segment (`[len u32][crc u32][seq u64][payload]`).
fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut offset = 0;
    while offset + 16 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
        assert!(
            offset + 16 + len <= bytes.len(),
            "the segment ends inside the record at {offset}"
        );
        offsets.push(offset);
        offset += 16 + len;
    }
    assert_eq!(offset, bytes.len(), "trailing bytes after the last record");
    offsets
}

// ---- the store behind the journal -----------------------------------------------

/// The node's SQLite store (the default: no `storage.postgres_url`).
fn store_config(scratch: &Scratch) -> StoreConfig {
    StoreConfig::Sqlite {
        path: scratch.data_dir().join("flashgate.sqlite3"),
    }
}

fn open_store(scratch: &Scratch) -> Store {
    Store::open(&store_config(scratch))
        .unwrap_or_else(|error| panic!("cannot open the node's SQLite store: {error}"))
}

/// The seq of the last whole record on disk; a torn tail is ignored.
fn journal_last_seq(journal_dir: &Path) -> u64 {
    let mut last = 0;
    for path in segments(journal_dir) {
        let bytes = std::fs::read(&path).expect("read a segment");
        let mut offset = 0;
        while offset + 16 <= bytes.len() {
            let len = u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
            if offset + 16 + len > bytes.len() {
                break;
            }
            last = u64::from_le_bytes(bytes[offset + 8..offset + 16].try_into().unwrap());
            offset += 16 + len;
        }
    }
    last
}

/// Waits (bounded) until the store has applied everything the journal
/// holds, as the node's `/metrics` reports; returns that seq.
async fn wait_store_converged(client: &mut Client) -> u64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let reply = client.get_anonymous("/metrics").await;
        assert_eq!(reply.status, 200, "/metrics: {}", reply.text());
        let text = reply.text();
        let durable = gauge(&text, "flashgate_journal_durable_seq");
        let applied = gauge(&text, "flashgate_store_applied_seq");
        if durable > 0 && applied == durable {
            return durable;
        }
        assert!(
            Instant::now() < deadline,
            "the store did not converge to the journal within {WAIT:?}: journal durable \
             seq {durable}, store applied seq {applied}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Once the store has caught up: a row for every order in `must_hold` and
/// every order the node counts, each with the status, buyer, quantity,
/// amount and history the node reports, and no row the node does not know.
/// Returns the number of order rows.
async fn assert_store_matches_node(
    client: &mut Client,
    scratch: &Scratch,
    sale_id: &str,
    must_hold: &[String],
) -> usize {
    let position = wait_store_converged(client).await;
    let mut store = open_store(scratch);
    let applied = store.applied_position().expect("applied_position");
    assert_eq!(applied, position, "the store's position vs /metrics");
    let conn = rusqlite::Connection::open(scratch.data_dir().join("flashgate.sqlite3"))
        .expect("open the SQLite store");
    let ids: HashSet<String> = conn
        .prepare("SELECT order_id FROM orders WHERE sale_id = ?1")
        .expect("prepare")
        .query_map([sale_id], |row| row.get::<_, String>(0))
        .expect("query orders")
        .map(|id| id.expect("an order id"))
        .collect();
    for id in must_hold {
        assert!(
            ids.contains(id),
            "acknowledged order {id} has no row in the store at position {position}"
        );
    }
    for id in &ids {
        let row = store
            .order(id)
            .expect("read an order")
            .expect("a listed order");
        let reply = client
            .get(&format!("/admin/v1/orders/{id}"), OPS_TOKEN)
            .await;
        assert_eq!(
            reply.status,
            200,
            "the store holds order {id} ({row:?}) that the node does not know: {}",
            reply.text()
        );
        let known = reply.json();
        assert_eq!(
            row.status.as_str(),
            known["status"],
            "{id}: {row:?} vs {known}"
        );
        assert_eq!(row.buyer, known["buyer"], "{id}");
        assert_eq!(row.sale_id, known["sale_id"], "{id}");
        assert_eq!(row.quantity, known["quantity"], "{id}");
        assert_eq!(row.amount.to_string(), known["amount"], "{id}");
        let history: Vec<String> = store
            .order_events(id)
            .expect("read the history")
            .iter()
            .map(|event| event.status.as_str().to_owned())
            .collect();
        let known_history: Vec<&str> = known["history"]
            .as_array()
            .expect("history")
            .iter()
            .map(|entry| entry["status"].as_str().expect("status"))
            .collect();
        assert_eq!(history, known_history, "history rows of {id}");
    }
    let stats = client.stats(sale_id).await;
    assert_eq!(
        stats["orders"]["created"],
        ids.len(),
        "order rows in the store vs orders the node counts: {stats}"
    );
    ids.len()
}

// ---- 1. kill -9 in the middle of a burst -----------------------------------------

const BURST_SALE: &str = "s-crash";
const BURST_STOCK: i64 = 200;
const BURST_BUYERS: usize = 600;
const BURST_CONNECTIONS: usize = 32;
/// The kill comes once this many orders are acknowledged (40% of the stock),
/// so it lands while units are still being sold.
const KILL_AFTER_ACKS: usize = 80;

fn burst_buyer(buyer: usize) -> String {
    format!("o_crash_{buyer:04}")
}

fn burst_key(buyer: usize) -> String {
    format!("burst-{buyer}")
}

/// Every third buyer takes two units (the per-user limit), the rest one.
fn burst_quantity(buyer: usize) -> u32 {
    if buyer % 3 == 0 {
        2
    } else {
        1
    }
}

/// Every seventh buyer cancels right after getting the order.
fn burst_cancels(buyer: usize) -> bool {
    buyer % 7 == 3
}

/// An order acknowledged with 201 before the kill.
#[derive(Debug)]
struct Ack {
    buyer: usize,
    order: Value,
    /// The cancel was sent (it may not have been answered).
    cancel_sent: bool,
    /// The 200 body of an answered cancel.
    cancelled: Option<Value>,
}

#[derive(Default)]
struct ConnectionOutcome {
    acks: Vec<Ack>,
    broken: Option<String>,
}

/// Shared by the burst connections.
struct Burst {
    addr: SocketAddr,
    start: tokio::sync::Barrier,
    answered: AtomicUsize,
    acked: AtomicUsize,
    /// The node; the connection that receives the acknowledgement number
    /// [`KILL_AFTER_ACKS`] kills it on the spot.
    node: std::sync::Mutex<Node>,
    killed_after_answers: AtomicUsize,
}

async fn burst_connection(burst: Arc<Burst>, connection: usize) -> ConnectionOutcome {
    let addr = burst.addr;
    let mut conn = Conn::open(addr).await;
    burst.start.wait().await;
    let mut outcome = ConnectionOutcome::default();
    for buyer in (connection..BURST_BUYERS).step_by(BURST_CONNECTIONS) {
        let token = buyer_token(&burst_buyer(buyer));
        let body = order_body(BURST_SALE, burst_quantity(buyer));
        let reply = conn
            .call("/v1/orders", &token, Some(&burst_key(buyer)), Some(&body))
            .await;
        let (status, order) = match reply {
            Ok(reply) => reply,
            Err(error) => {
                outcome.broken = Some(error);
                return outcome;
            }
        };
        let answers = burst.answered.fetch_add(1, Ordering::SeqCst) + 1;
        match status {
            201 => {}
            409 if error_code(&order) == "SOLD_OUT" => continue,
            other => panic!("buyer {buyer}: unexpected {other} to an order: {order}"),
        }
        if burst.acked.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER_ACKS {
            // As soon as the answer is in: whatever the node acknowledged
            // without making it durable first is lost now.
            burst
                .node
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .kill_9();
            burst.killed_after_answers.store(answers, Ordering::SeqCst);
        }
        let mut ack = Ack {
            buyer,
            order,
            cancel_sent: false,
            cancelled: None,
        };
        if burst_cancels(buyer) {
            ack.cancel_sent = true;
            let order_id = ack.order["order_id"].as_str().expect("order_id").to_owned();
            let path = format!("/v1/orders/{order_id}/cancel");
            match conn.call(&path, &token, None, None).await {
                Ok((200, cancelled)) => {
                    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
                    ack.cancelled = Some(cancelled);
                }
                Ok((status, body)) => panic!("buyer {buyer}: cancel answered {status}: {body}"),
                Err(error) => {
                    outcome.acks.push(ack);
                    outcome.broken = Some(error);
                    return outcome;
                }
            }
        }
        outcome.acks.push(ack);
    }
    outcome
}

/// What an order looks like after the restart, status aside.
fn without_status(order: &Value) -> Value {
    let mut order = order.clone();
    order
        .as_object_mut()
        .expect("an order object")
        .remove("status");
    order
}

/// Orders on a sale of its own until the journal has moved on to a
/// preallocated spare (made once the first segment passed half its size):
/// the burst and the kill then happen in a segment that ends in zeros.
async fn move_onto_a_preallocated_segment(node: &Node, journal_dir: &Path) {
    let mut client = node.client().await;
    client.live_sale("s-warm-up", 1_000, 1).await;
    for n in 0..1_000 {
        if segments(journal_dir).len() >= 2 {
            let active = std::fs::read(segments(journal_dir).last().expect("a segment"))
                .expect("read the active segment");
            assert_eq!(active.len(), 65_536, "the active segment is the spare");
            assert_eq!(active.last(), Some(&0), "the spare ends in zeros");
            return;
        }
        client
            .order(&buyer_token(&format!("o_warm_{n:04}")), "k", "s-warm-up", 1)
            .await
            .expect_json(201);
    }
    panic!("the journal never moved on to a preallocated segment");
}

/// The burst runs on the smallest segments, so it crosses several, most of
/// them preallocated spares (one is wanted after half a segment): the kill
/// lands in a segment whose records are followed by zeros.
fn small_segments() -> Vec<(String, String)> {
    vec![(
        "FLASHGATE__STORAGE__JOURNAL_SEGMENT_BYTES_MAX".to_owned(),
        "65536".to_owned(),
    )]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_burst_loses_no_acknowledged_order_and_never_oversells() {
    let scratch = Scratch::new("crash-burst");
    let node = Node::start_with(&scratch, "first", &small_segments()).await;
    let journal_dir = scratch.data_dir().join("journal");
    move_onto_a_preallocated_segment(&node, &journal_dir).await;
    node.client()
        .await
        .live_sale(BURST_SALE, BURST_STOCK, 2)
        .await;

    let burst = Arc::new(Burst {
        addr: node.addr,
        start: tokio::sync::Barrier::new(BURST_CONNECTIONS),
        answered: AtomicUsize::new(0),
        acked: AtomicUsize::new(0),
        node: std::sync::Mutex::new(node),
        killed_after_answers: AtomicUsize::new(0),
    });
    let tasks: Vec<_> = (0..BURST_CONNECTIONS)
        .map(|connection| tokio::spawn(burst_connection(Arc::clone(&burst), connection)))
        .collect();
    let mut acks = Vec::new();
    let mut broken = 0;
    for task in tasks {
        let outcome = within("a burst connection to end", task)
            .await
            .expect("burst connection task");
        if let Some(error) = &outcome.broken {
            assert!(
                !error.starts_with("timed out"),
                "a request hung before the kill: {error}"
            );
            broken += 1;
        }
        acks.extend(outcome.acks);
    }
    let answered_at_kill = burst.killed_after_answers.load(Ordering::SeqCst);
    assert!(
        answered_at_kill > 0,
        "the burst ended with only {} orders acknowledged, the node was never killed",
        burst.acked.load(Ordering::SeqCst)
    );
    let answered_total = burst.answered.load(Ordering::SeqCst);
    assert!(
        answered_total < BURST_BUYERS && broken > 0,
        "the kill did not land mid-burst: {answered_total} of {BURST_BUYERS} orders answered"
    );
    let cancels_acked = acks.iter().filter(|ack| ack.cancelled.is_some()).count();
    eprintln!(
        "kill -9 after {answered_at_kill} answers; {} orders and {cancels_acked} cancels \
         acknowledged; {broken} connections broken",
        acks.len()
    );

    // The store never runs ahead of the journal, not even at a kill.
    let journal_last = journal_last_seq(&scratch.journal_dir());
    let applied_at_kill = open_store(&scratch)
        .applied_position()
        .expect("applied_position");
    assert!(
        applied_at_kill <= journal_last,
        "the store applied up to {applied_at_kill} but the journal ends at {journal_last}"
    );

    // Restart on the same data dir.
    let active = std::fs::read(segments(&journal_dir).last().expect("a segment"))
        .expect("read the active segment");
    assert_eq!(
        (active.len(), active.last()),
        (65_536, Some(&0)),
        "killed while writing into the preallocated segment"
    );
    let mut node = Node::start_with(&scratch, "after-kill", &small_segments()).await;
    let mut client = node.client().await;

    // Every acknowledged order is there, as it was acknowledged.
    let mut acked_ids = HashSet::new();
    for ack in &acks {
        let order_id = ack.order["order_id"].as_str().expect("order_id");
        assert!(
            acked_ids.insert(order_id.to_owned()),
            "duplicate {order_id}"
        );
        let token = buyer_token(&burst_buyer(ack.buyer));
        let reply = client.get(&format!("/v1/orders/{order_id}"), &token).await;
        assert_eq!(
            reply.status,
            200,
            "order {order_id} of buyer {} was acknowledged with 201 before the kill \
             and is gone after the restart: {}",
            ack.buyer,
            reply.text()
        );
        let read = reply.json();
        assert_eq!(read["sale_id"], BURST_SALE, "{read}");
        assert_eq!(read["sku_id"], SKU, "{read}");
        assert_eq!(read["quantity"], burst_quantity(ack.buyer), "{read}");
        match (&ack.cancelled, ack.cancel_sent) {
            (Some(cancelled), _) => assert_eq!(
                &read, cancelled,
                "an acknowledged cancel of buyer {} was lost",
                ack.buyer
            ),
            (None, true) => {
                // The cancel was in flight at the kill: either outcome.
                assert!(
                    read["status"] == "reserved" || read["status"] == "cancelled",
                    "{read}"
                );
                assert_eq!(without_status(&read), without_status(&ack.order));
            }
            (None, false) => assert_eq!(
                read, ack.order,
                "the acknowledged order of buyer {} changed",
                ack.buyer
            ),
        }
    }

    let stats = client.stats(BURST_SALE).await;
    assert_stock_conserved(&stats, BURST_STOCK);
    let live_acked: i64 = acks
        .iter()
        .filter(|ack| !ack.cancel_sent)
        .map(|ack| i64::from(burst_quantity(ack.buyer)))
        .sum();
    let (_, _, reserved, paid) = stock_counts(&stats);
    assert_eq!(paid, 0, "{stats}");
    assert!(
        reserved >= live_acked,
        "{live_acked} units of acknowledged live orders but only {reserved} reserved: {stats}"
    );
    assert!(
        stats["orders"]["created"].as_u64().unwrap() >= acks.len() as u64,
        "{stats}"
    );
    assert!(
        stats["orders"]["cancelled"].as_u64().unwrap() >= cancels_acked as u64,
        "{stats}"
    );

    // The store converges to the restarted node's journal: a row for every
    // acknowledged order, with the status the node reports, and no other.
    let acked_order_ids: Vec<String> = acks
        .iter()
        .map(|ack| ack.order["order_id"].as_str().expect("order_id").to_owned())
        .collect();
    let rows = assert_store_matches_node(&mut client, &scratch, BURST_SALE, &acked_order_ids).await;
    eprintln!("the store holds {rows} orders after the restart");

    // Every buyer resends their original request with the same key: an
    // acknowledged order replays (200, same id); an order that was durable but
    // unacknowledged replays too; otherwise a new order is made or refused.
    // Afterwards every order of the sale is known by id.
    let acked_by_buyer: HashMap<usize, &Ack> = acks.iter().map(|ack| (ack.buyer, ack)).collect();
    let mut orders: HashMap<String, (u32, String)> = HashMap::new();
    let mut durable_unacked = 0;
    let mut conn = Conn::open(node.addr).await;
    for buyer in 0..BURST_BUYERS {
        let token = buyer_token(&burst_buyer(buyer));
        let quantity = burst_quantity(buyer);
        let (status, body) = conn
            .call(
                "/v1/orders",
                &token,
                Some(&burst_key(buyer)),
                Some(&order_body(BURST_SALE, quantity)),
            )
            .await
            .unwrap_or_else(|error| panic!("resend of buyer {buyer}: {error}"));
        if let Some(ack) = acked_by_buyer.get(&buyer) {
            assert_eq!(
                status, 200,
                "buyer {buyer}'s key no longer replays its acknowledged order: {body}"
            );
            assert_eq!(body["order_id"], ack.order["order_id"], "{body}");
        }
        match status {
            200 | 201 => {
                if status == 200 && !acked_by_buyer.contains_key(&buyer) {
                    durable_unacked += 1;
                }
                let order_id = body["order_id"].as_str().expect("order_id").to_owned();
                let state = body["status"].as_str().expect("status").to_owned();
                assert_eq!(body["quantity"], quantity, "{body}");
                assert!(
                    orders.insert(order_id.clone(), (quantity, state)).is_none(),
                    "order {order_id} belongs to two keys"
                );
            }
            409 => assert_eq!(error_code(&body), "SOLD_OUT", "{body}"),
            other => panic!("resend of buyer {buyer}: unexpected {other}: {body}"),
        }
    }
    eprintln!("{durable_unacked} orders were durable without an acknowledgement");

    let live_units = |orders: &HashMap<String, (u32, String)>| -> i64 {
        orders
            .values()
            .filter(|(_, state)| state == "reserved")
            .map(|(quantity, _)| i64::from(*quantity))
            .sum()
    };
    let stats = client.stats(BURST_SALE).await;
    assert_stock_conserved(&stats, BURST_STOCK);
    assert_eq!(
        stock_counts(&stats).2,
        live_units(&orders),
        "reserved units != units of the live orders: {stats}"
    );
    assert_eq!(stats["orders"]["created"], orders.len(), "{stats}");
    let cancelled = orders.values().filter(|(_, s)| s == "cancelled").count();
    assert_eq!(stats["orders"]["cancelled"], cancelled, "{stats}");

    // The restarted node sells what is left, and not one unit more.
    let mut drained = 0;
    loop {
        assert!(
            drained <= BURST_STOCK,
            "more than the whole stock sold to new buyers"
        );
        let token = buyer_token(&format!("o_drain_{drained:04}"));
        let (status, body) = conn
            .call(
                "/v1/orders",
                &token,
                Some("drain"),
                Some(&order_body(BURST_SALE, 1)),
            )
            .await
            .unwrap_or_else(|error| panic!("drain order {drained}: {error}"));
        if status == 409 {
            assert_eq!(error_code(&body), "SOLD_OUT", "{body}");
            break;
        }
        assert_eq!(status, 201, "drain order {drained}: {body}");
        let order_id = body["order_id"].as_str().expect("order_id").to_owned();
        assert!(
            !orders.contains_key(&order_id),
            "a new order reused the id {order_id}"
        );
        orders.insert(order_id, (1, "reserved".to_owned()));
        drained += 1;
    }
    let stats = client.stats(BURST_SALE).await;
    assert_stock_conserved(&stats, BURST_STOCK);
    let (_, remaining, reserved, _) = stock_counts(&stats);
    assert_eq!(remaining, 0, "{stats}");
    assert_eq!(reserved, BURST_STOCK, "{stats}");
    assert_eq!(live_units(&orders), BURST_STOCK, "{stats}");
    assert_eq!(stats["orders"]["created"], orders.len(), "{stats}");
    assert_eq!(stats["status"], "sold_out", "{stats}");

    // And the log written after the crash replays to the same state.
    node.stop().await;
    let mut node = Node::start(&scratch, "final").await;
    let mut client = node.client().await;
    let again = client.stats(BURST_SALE).await;
    assert_eq!(again["items"], stats["items"], "{again}");
    assert_eq!(again["orders"], stats["orders"], "{again}");
    let all_ids: Vec<String> = orders.keys().cloned().collect();
    let rows = assert_store_matches_node(&mut client, &scratch, BURST_SALE, &all_ids).await;
    assert_eq!(rows, orders.len(), "order rows in the store");
    drop(client);
    node.stop().await;
}

// ---- 2. a graceful restart restores everything --------------------------------------

#[tokio::test]
async fn restart_after_clean_shutdown_restores_sales_orders_holds_and_keys() {
    const SALE: &str = "s-clean";
    let scratch = Scratch::new("crash-clean");
    let mut node = Node::start(&scratch, "first").await;
    let mut client = node.client().await;
    client.live_sale(SALE, 10, 3).await;
    let (alice, bob) = (buyer_token("o_alice"), buyer_token("o_bob"));

    let alice_order = client
        .order(&alice, "k-alice", SALE, 2)
        .await
        .expect_json(201);
    let bob_order = client.order(&bob, "k-bob", SALE, 1).await.expect_json(201);
    let (alice_id, bob_id) = (
        alice_order["order_id"].as_str().unwrap().to_owned(),
        bob_order["order_id"].as_str().unwrap().to_owned(),
    );
    let bob_cancelled = client
        .post_empty(&format!("/v1/orders/{bob_id}/cancel"), &bob)
        .await
        .expect_json(200);
    assert_eq!(bob_cancelled["status"], "cancelled");
    client
        .post_json(
            &format!("/admin/v1/sales/{SALE}/items/{SKU}/restock"),
            HOST_TOKEN,
            &json!({ "add": 5 }),
        )
        .await
        .expect_json(200);
    let paused = client.sale_action(SALE, "pause").await.expect_json(200);
    assert_eq!(paused["status"], "paused");

    let sale_before = client
        .get(&format!("/v1/sales/{SALE}"), &alice)
        .await
        .expect_json(200);
    let stats_before = client.stats(SALE).await;
    assert_eq!(stock_counts(&stats_before), (15, 13, 2, 0));
    let admin_order = |id: &str| format!("/admin/v1/orders/{id}");
    let alice_admin = client
        .get(&admin_order(&alice_id), OPS_TOKEN)
        .await
        .expect_json(200);
    let bob_admin = client
        .get(&admin_order(&bob_id), OPS_TOKEN)
        .await
        .expect_json(200);
    assert_eq!(bob_admin["history"].as_array().map(Vec::len), Some(2));
    drop(client);

    node.stop().await;
    let mut node = Node::start(&scratch, "second").await;
    let mut client = node.client().await;

    // The sale: paused, same counts.
    let sale_after = client
        .get(&format!("/v1/sales/{SALE}"), &alice)
        .await
        .expect_json(200);
    assert_eq!(sale_after, sale_before);
    let stats_after = client.stats(SALE).await;
    for field in ["status", "items", "orders"] {
        assert_eq!(stats_after[field], stats_before[field], "stats.{field}");
    }
    // Orders and their history.
    assert_eq!(
        client
            .get(&admin_order(&alice_id), OPS_TOKEN)
            .await
            .expect_json(200),
        alice_admin
    );
    assert_eq!(
        client
            .get(&admin_order(&bob_id), OPS_TOKEN)
            .await
            .expect_json(200),
        bob_admin
    );
    assert_eq!(
        client
            .get(&format!("/v1/orders/{alice_id}"), &alice)
            .await
            .expect_json(200),
        alice_order
    );
    assert_eq!(
        client
            .get(&format!("/v1/orders/{bob_id}"), &bob)
            .await
            .expect_json(200),
        bob_cancelled
    );

    // Idempotency keys: same key and body replays, another body conflicts.
    let replay = client
        .order(&alice, "k-alice", SALE, 2)
        .await
        .expect_json(200);
    assert_eq!(replay, alice_order);
    assert_error(
        &client.order(&alice, "k-alice", SALE, 1).await,
        422,
        "IDEMPOTENCY_CONFLICT",
    );
    let bob_replay = client.order(&bob, "k-bob", SALE, 1).await.expect_json(200);
    assert_eq!(bob_replay["order_id"], json!(bob_id));
    assert_eq!(bob_replay["status"], "cancelled");

    // Still paused; once started again, holds count against the limits.
    assert_error(
        &client.order(&alice, "k-alice-2", SALE, 1).await,
        409,
        "SALE_NOT_LIVE",
    );
    let live = client.start_sale(SALE).await.expect_json(200);
    assert_eq!(live["status"], "live");
    assert_error(
        &client.order(&alice, "k-alice-3", SALE, 2).await,
        409,
        "LIMIT_EXCEEDED",
    );
    let bob_again = client
        .order(&bob, "k-bob-2", SALE, 3)
        .await
        .expect_json(201);
    let carol = client
        .order(&buyer_token("o_carol"), "k-carol", SALE, 1)
        .await
        .expect_json(201);
    let new_ids: HashSet<&str> = [&bob_again, &carol]
        .iter()
        .map(|order| order["order_id"].as_str().unwrap())
        .collect();
    assert_eq!(new_ids.len(), 2);
    assert!(
        !new_ids.contains(alice_id.as_str()) && !new_ids.contains(bob_id.as_str()),
        "new order ids repeat old ones: {new_ids:?}"
    );
    assert_eq!(stock_counts(&client.stats(SALE).await), (15, 9, 6, 0));
    drop(client);
    node.stop().await;
}

// ---- 3. a torn tail is cut off ----------------------------------------------------

#[tokio::test]
async fn torn_journal_tail_is_truncated_on_start() {
    const SALE: &str = "s-torn";
    let scratch = Scratch::new("crash-torn");
    let mut node = Node::start(&scratch, "first").await;
    let mut client = node.client().await;
    client.live_sale(SALE, 50, 1).await;
    let mut acked = Vec::new();
    for buyer in 0..5 {
        let openid = format!("o_torn_{buyer}");
        let order = client
            .order(&buyer_token(&openid), "k", SALE, 1)
            .await
            .expect_json(201);
        acked.push((openid, order));
    }
    drop(client);
    node.kill_9();

    let segment = segments(&scratch.journal_dir()).pop().unwrap();
    let intact = std::fs::metadata(&segment).expect("segment").len();
    // A commit cut short: the first half of a plausible header (length 180,
    // a checksum), then bytes that never became a record.
    let mut garbage = Vec::new();
    garbage.extend_from_slice(&180u32.to_le_bytes());
    garbage.extend_from_slice(&0x5eed_f00du32.to_le_bytes());
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..37 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        garbage.push(state as u8);
    }
    {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&segment)
            .expect("open the segment");
        file.write_all(&garbage).expect("append garbage");
        file.sync_all().expect("sync");
    }
    assert_eq!(
        std::fs::metadata(&segment).unwrap().len(),
        intact + garbage.len() as u64
    );

    let mut node = Node::start(&scratch, "after-tear").await;
    assert_eq!(
        std::fs::metadata(&segment).unwrap().len(),
        intact,
        "the torn tail of {} was not cut back to {intact} bytes",
        segment.display()
    );
    let mut client = node.client().await;
    for (openid, order) in &acked {
        let order_id = order["order_id"].as_str().unwrap();
        let read = client
            .get(&format!("/v1/orders/{order_id}"), &buyer_token(openid))
            .await
            .expect_json(200);
        assert_eq!(&read, order);
    }
    assert_eq!(stock_counts(&client.stats(SALE).await), (50, 45, 5, 0));

    // The log goes on from the cut: a new order survives another crash.
    let later = client
        .order(&buyer_token("o_torn_later"), "k", SALE, 1)
        .await
        .expect_json(201);
    drop(client);
    node.kill_9();
    assert!(std::fs::metadata(&segment).unwrap().len() > intact);
    let mut node = Node::start(&scratch, "after-second-kill").await;
    let mut client = node.client().await;
    let order_id = later["order_id"].as_str().unwrap();
    assert_eq!(
        client
            .get(
                &format!("/v1/orders/{order_id}"),
                &buyer_token("o_torn_later")
            )
            .await
            .expect_json(200),
        later
    );
    assert_eq!(stock_counts(&client.stats(SALE).await), (50, 44, 6, 0));
    drop(client);
    node.stop().await;
}

// ---- 4. damage inside the log stops the start ---------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_journal_mid_log_refuses_to_start_with_segment_and_offset() {
    const SALE: &str = "s-damaged";
    const CONNECTIONS: usize = 8;
    const ORDERS_EACH: usize = 8;
    let scratch = Scratch::new("crash-corrupt");
    let mut node = Node::start(&scratch, "first").await;
    node.client().await.live_sale(SALE, 1000, 1).await;
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|connection| {
            let addr = node.addr;
            tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                for n in 0..ORDERS_EACH {
                    let token = buyer_token(&format!("o_dmg_{connection}_{n}"));
                    client.order(&token, "k", SALE, 1).await.expect_json(201);
                }
            })
        })
        .collect();
    for task in tasks {
        within("the orders", task).await.expect("order task");
    }
    node.stop().await;

    let segment = segments(&scratch.journal_dir()).pop().unwrap();
    let mut bytes = std::fs::read(&segment).expect("read the segment");
    let offsets = record_offsets(&bytes);
    let total_records = 2 + CONNECTIONS * ORDERS_EACH;
    assert_eq!(offsets.len(), total_records, "one record per change");
    // One bit flipped in the payload of the first order's record, with
    // dozens of intact records after it.
    let damaged = offsets[2];
    let payload_len = offsets[3] - damaged - 16;
    bytes[damaged + 16 + payload_len / 2] ^= 0x20;
    std::fs::write(&segment, &bytes).expect("write the damaged segment");

    let mut node = Node::spawn(&scratch, "damaged");
    let status = node
        .wait_exit(Duration::from_secs(5))
        .await
        .unwrap_or_else(|| {
            panic!(
                "flashgate kept running on a journal damaged inside the log; stderr:\n{}",
                node.stderr()
            )
        });
    let stderr = node.stderr();
    assert!(!status.success(), "exited with {status}; stderr:\n{stderr}");
    assert!(
        stderr.contains(&segment.display().to_string()),
        "stderr does not name the segment {}:\n{stderr}",
        segment.display()
    );
    assert!(
        stderr.contains(&format!("offset {damaged}")),
        "stderr does not name offset {damaged}:\n{stderr}"
    );
    assert_eq!(
        std::fs::read(&segment).expect("read the segment"),
        bytes,
        "a refused start must not change the journal"
    );
}

// ---- payments across a crash -----------------------------------------------------

/// The order ids whose payment notification the gateway acknowledged (2xx),
/// from the embedded simulator's delivery log.
async fn acknowledged_payments(sim: &mut Client) -> HashSet<String> {
    let reply = sim.get_anonymous("/sim/v1/deliveries").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply
        .json()
        .as_array()
        .expect("a list of deliveries")
        .iter()
        .filter(|delivery| {
            delivery["event_type"] == "TRANSACTION.SUCCESS"
                && delivery["outcome"]["result"] == "answered"
                && delivery["outcome"]["status"]
                    .as_u64()
                    .is_some_and(|status| (200..300).contains(&status))
        })
        .map(|delivery| {
            delivery["out_trade_no"]
                .as_str()
                .expect("out_trade_no")
                .to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_payments_land_keeps_every_acknowledged_payment() {
    const SALE: &str = "s-paid-crash";
    const STOCK: i64 = 60;
    const BUYERS: usize = 40;
    let scratch = Scratch::new("crash-paid");
    let mut node = Node::start(&scratch, "first").await;
    let mut client = node.client().await;
    client.live_sale(SALE, STOCK, 1).await;
    let mut sim = Client::connect(node.sim_addr).await;
    let mut prepays = Vec::new();
    for buyer in 0..BUYERS {
        let token = buyer_token(&format!("payer-{buyer}"));
        let order = client
            .order(&token, &format!("pay-key-{buyer}"), SALE, 1)
            .await
            .expect_json(201);
        let order_id = order["order_id"].as_str().expect("order_id").to_owned();
        let params = client
            .post_empty(&format!("/v1/orders/{order_id}/pay"), &token)
            .await
            .expect_json(200);
        prepays.push((buyer, order_id, params["prepay_id"].clone()));
    }
    // The buyers confirm; WeChat Pay (the embedded simulator) notifies the
    // gateway; the node dies while notifications are still landing.
    for (_, _, prepay_id) in &prepays {
        let reply = sim
            .post_json("/sim/v1/pay", "unused", &json!({ "prepay_id": prepay_id }))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let acknowledged = within("some payments to be acknowledged", async {
        loop {
            let acknowledged = acknowledged_payments(&mut sim).await;
            if acknowledged.len() >= BUYERS / 4 {
                return acknowledged;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    node.kill_9();
    eprintln!(
        "kill -9 with {} of {BUYERS} payments acknowledged",
        acknowledged.len()
    );

    let node = Node::start(&scratch, "after-kill").await;
    let mut client = node.client().await;
    let mut paid = 0;
    for (buyer, order_id, _) in &prepays {
        let token = buyer_token(&format!("payer-{buyer}"));
        let order = client
            .get(&format!("/v1/orders/{order_id}"), &token)
            .await
            .expect_json(200);
        if acknowledged.contains(order_id) {
            assert_eq!(
                order["status"], "paid",
                "the gateway acknowledged the payment of {order_id} before the kill: {order}"
            );
        } else {
            assert!(
                order["status"] == "paying" || order["status"] == "paid",
                "{order}"
            );
        }
        if order["status"] == "paid" {
            assert!(order["paid_at"].as_str().is_some(), "{order}");
            paid += 1;
        }
    }
    let stats = client.stats(SALE).await;
    assert_stock_conserved(&stats, STOCK);
    let (_, _, reserved, paid_units) = stock_counts(&stats);
    assert_eq!(paid_units, paid, "{stats}");
    assert_eq!(reserved + paid_units, BUYERS as i64, "{stats}");
    assert_eq!(stats["orders"]["paid"], paid, "{stats}");

    // The store converges to the journal, payments included.
    let order_ids: Vec<String> = prepays.iter().map(|(_, id, _)| id.clone()).collect();
    assert_store_matches_node(&mut client, &scratch, SALE, &order_ids).await;
    let mut store = open_store(&scratch);
    for order_id in &acknowledged {
        let row = store
            .order(order_id)
            .expect("store read")
            .unwrap_or_else(|| panic!("{order_id} is not in the store"));
        assert_eq!(row.status.as_str(), "paid", "{row:?}");
    }
    drop(store);
    let mut node = node;
    node.stop().await;
}
