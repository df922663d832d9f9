//! Writes the seed corpus of both fuzz targets.
//!
//! The journals hold real events: a live session is driven through the
//! engine's own API (create, start, order, pay, refund, cancel, expire,
//! pause, end) with a recording `EventSink` attached, which keeps every
//! event the engine submits in submission order, as the journal would.
//! Each event is serialised
//! with serde_json (the externally tagged form, `{"order_reserved":{..}}`)
//! and framed with `journal::record::encode`, sequence numbers from 1, as
//! the journal writer does.
//!
//! Run from `fuzz/`: `cargo run --example seed` (stable Rust, no fuzz flags).
//! Writes `corpus/record_decode/` and `corpus/replay/` next to this crate's
//! `Cargo.toml`. Output is deterministic, so re-running it changes nothing.

use flashgate::inventory::OrderRequest;
use flashgate::journal::record::encode;
use flashgate::journal::Commit;
use flashgate::sale::{
    Engine, EngineLimits, Event, EventSink, OrderAction, PaymentOutcome, PaymentReceived,
    PlaceOrder, Prepay, RefundReason, SaleAction, SaleSpec,
};
use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};

const T0: i64 = 1_764_000_000_000;

/// The engine's sink in these sessions: keeps a copy of every event, in the
/// order the engine submits them (the journal's order); every commit is
/// ready at once.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<Event>>,
}

impl Recorder {
    fn push(&self, event: Event) {
        self.events.lock().unwrap().push(event);
    }

    fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }
}

impl EventSink for Recorder {
    fn submit(&self, event: &Event) -> Commit {
        self.push(event.clone());
        Commit::Ready(Ok(0))
    }

    fn barrier(&self) -> Commit {
        Commit::Ready(Ok(0))
    }
}

/// A fresh engine with a recorder attached.
fn engine() -> (Engine, Arc<Recorder>) {
    let mut engine = Engine::new(
        EngineLimits {
            shard_count: 4,
            sales_max: 16,
            items_per_sale_max: 8,
            stock_per_item_max: 1000,
            orders_max: 10000,
            hold_seconds_min: flashgate::sale::engine::HOLD_SECONDS_MIN,
            stock_from_leases: false,
        },
        T0,
    );
    let recorder = Arc::new(Recorder::default());
    engine.attach_sink(recorder.clone());
    (engine, recorder)
}

fn spec(sale_id: &str, items: &[(&str, &str, i64, u32)]) -> SaleSpec {
    let items: Vec<_> = items
        .iter()
        .map(|(sku_id, price, stock, per_user_limit)| {
            serde_json::json!({
                "sku_id": sku_id,
                "title": format!("Item {sku_id}"),
                "price": price,
                "stock": stock,
                "per_user_limit": per_user_limit,
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "sale_id": sale_id,
        "title": format!("Livestream sale {sale_id}"),
        "starts_at": null,
        "ends_at": T0 + 3_600_000,
        "hold_seconds": 60,
        "items": items,
    }))
    .expect("a valid sale spec")
}

/// Places an order through the live path; returns its id. The recorder
/// gets the `order_reserved` event.
fn order(
    engine: &Engine,
    sale_id: &str,
    sku_id: &str,
    buyer: &str,
    key: &str,
    quantity: u32,
    now: i64,
) -> String {
    let placed = engine
        .place_order(
            PlaceOrder {
                buyer,
                idempotency_key: key,
                request: OrderRequest {
                    sale_id: sale_id.into(),
                    sku_id: sku_id.into(),
                    quantity,
                },
                shard_hint: 0,
            },
            now,
        )
        .expect("order placed");
    assert!(!placed.replayed, "a new key makes a new order");
    placed.order.order_id
}

/// One sale, two items, the whole life cycle.
fn one_sale_session() -> Vec<Event> {
    let (engine, log) = engine();
    let sale = spec("s1", &[("k1", "99.50", 10, 3), ("k2", "5", 2, 1)]);
    engine.create_sale(sale, T0).unwrap();
    engine.sale_action("s1", SaleAction::Start, T0 + 1).unwrap();
    let a_id = order(&engine, "s1", "k1", "alice", "key-a1", 2, T0 + 10);
    let b_id = order(&engine, "s1", "k2", "bob", "key-b1", 1, T0 + 11);
    let c_id = order(&engine, "s1", "k1", "carol", "key-c1", 3, T0 + 12);
    let prepay = Prepay {
        prepay_id: "wx-seed-a1".into(),
        valid_until: T0 + 7_200_000,
    };
    engine
        .start_payment("alice", &a_id, prepay, T0 + 20)
        .unwrap();
    let payment = PaymentReceived {
        transaction_id: "4200000001202611240000000001".into(),
        amount_fen: 19_900,
        paid_at: T0 + 24,
    };
    let (outcome, _) = engine.confirm_payment(&a_id, payment, T0 + 25).unwrap();
    assert_eq!(outcome, PaymentOutcome::Paid);
    engine.cancel_order("bob", &b_id, T0 + 30).unwrap();
    engine.restock("s1", "k2", 5, T0 + 40).unwrap();
    let expired = engine.expire_due(T0 + 12 + 61_000); // carol's hold runs out
    assert_eq!(expired.commits.len(), 1);
    engine
        .sale_action("s1", SaleAction::Pause, T0 + 70_000)
        .unwrap();
    engine
        .sale_action("s1", SaleAction::Start, T0 + 71_000)
        .unwrap();
    engine
        .request_refund(&a_id, RefundReason::Admin, T0 + 80_000)
        .unwrap();
    engine
        .complete_refund(&a_id, "50300001202611240000000001", T0 + 81_000)
        .unwrap();
    engine
        .sale_action("s1", SaleAction::End, T0 + 90_000)
        .unwrap();
    let log = log.take();
    assert!(log.iter().any(|e| matches!(
        e,
        Event::OrderTransitioned { order_id, action: OrderAction::Expire, .. } if *order_id == c_id
    )));
    assert_eq!(log.len(), 15);
    log
}

/// Two sales side by side, orders interleaved.
fn two_sales_session() -> Vec<Event> {
    let (engine, log) = engine();
    engine
        .create_sale(spec("s1", &[("k1", "1.99", 4, 2)]), T0)
        .unwrap();
    engine
        .create_sale(spec("s2", &[("lip-01", "129", 1, 1)]), T0)
        .unwrap();
    engine.sale_action("s1", SaleAction::Start, T0 + 1).unwrap();
    engine.sale_action("s2", SaleAction::Start, T0 + 2).unwrap();
    order(&engine, "s2", "lip-01", "dave", "d-1", 1, T0 + 3);
    order(&engine, "s1", "k1", "dave", "d-2", 2, T0 + 4);
    order(&engine, "s1", "k1", "erin", "e-1", 2, T0 + 5);
    let log = log.take();
    assert_eq!(log.len(), 7);
    log
}

/// The smallest useful journal: one sale created.
fn one_event() -> Vec<Event> {
    let (engine, log) = engine();
    engine
        .create_sale(spec("s1", &[("k1", "10", 1, 1)]), T0)
        .unwrap();
    let log = log.take();
    assert_eq!(log.len(), 1);
    log
}

/// Frames events as a segment's bytes, sequence numbers from `first_seq`;
/// also returns where each record ends.
fn journal(events: &[Event], first_seq: u64) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::new();
    let mut ends = Vec::new();
    for (i, event) in events.iter().enumerate() {
        let payload = serde_json::to_vec(event).expect("serialise event");
        encode(first_seq + i as u64, &payload, &mut out);
        ends.push(out.len());
    }
    (out, ends)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
    println!("{} ({} bytes)", dir.join(name).display(), bytes.len());
}

fn with_control(control: u8, journal: &[u8]) -> Vec<u8> {
    let mut input = vec![control];
    input.extend_from_slice(journal);
    input
}

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let decode_dir = corpus.join("record_decode");
    let replay_dir = corpus.join("replay");

    let (session, ends) = journal(&one_sale_session(), 1);
    let (two_sales, _) = journal(&two_sales_session(), 1);
    let (single, _) = journal(&one_event(), 1);

    // Torn: the session, then the first half of one more record (a crash
    // in the middle of the last group commit).
    let mut torn = session.clone();
    let (extra, _) = journal(&one_event(), ends.len() as u64 + 1);
    torn.extend_from_slice(&extra[..extra.len() / 2]);

    // Bit-flipped: one bit of the third record's payload flipped, inside the
    // log (intact records follow it), so replay must refuse, not truncate.
    let mut flipped = session.clone();
    flipped[ends[1] + 16 + 10] ^= 0x04;

    for (name, bytes) in [
        ("journal-one-sale", &session),
        ("journal-two-sales", &two_sales),
        ("journal-one-event", &single),
        ("journal-torn-tail", &torn),
        ("journal-bit-flipped", &flipped),
    ] {
        write(&decode_dir, name, bytes);
    }

    // The replay target's first byte picks the segment layout (see
    // fuzz_targets/replay.rs): 0x00 one segment, 0xC0 | n two segments split
    // after record n + 1, 0x80 | n two segments split at byte n * len / 63.
    // Preallocated segments (journal/segment.rs): records, then zeros that
    // are unused room; a torn record inside the zeros; and zeros with the
    // records after them, which is damage.
    let zeros = vec![0u8; 4096];
    let preallocated = [session.as_slice(), &zeros].concat();
    let torn_in_zeros = [torn.as_slice(), &zeros].concat();
    let zeroed_head = [&zeros[..64], session.as_slice(), &zeros].concat();
    let replay_seeds: [(&str, Vec<u8>); 10] = [
        ("one-segment-preallocated", with_control(0x00, &preallocated)),
        (
            "one-segment-torn-tail-in-zeros",
            with_control(0x00, &torn_in_zeros),
        ),
        ("one-segment-zeros-then-records", with_control(0x00, &zeroed_head)),
        ("one-segment-one-sale", with_control(0x00, &session)),
        ("two-segments-one-sale", with_control(0xC0 | 5, &session)),
        ("one-segment-two-sales", with_control(0x00, &two_sales)),
        ("one-segment-one-event", with_control(0x00, &single)),
        ("one-segment-torn-tail", with_control(0x00, &torn)),
        ("two-segments-torn-tail", with_control(0xC0 | 7, &torn)),
        ("one-segment-bit-flipped", with_control(0x00, &flipped)),
    ];
    for (name, bytes) in &replay_seeds {
        write(&replay_dir, name, bytes);
    }
}
