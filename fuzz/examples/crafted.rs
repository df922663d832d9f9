//! Writes hand-crafted reproducers for the `replay` target to
//! `artifacts/replay/crafted-*`.
//!
//! These were NOT found by libFuzzer: they were written after reading
//! `Engine::apply` and `journal::replay`, and each crashed the `replay` fuzz
//! binary before the library learnt to refuse them (see README.md). Every
//! record carries a valid CRC32C (framed with the real
//! `journal::record::encode`), so each is a journal that `replay` accepts
//! byte-wise but whose events the live engine would never have written:
//! `create_sale`, `restock` and `place_order` validate these fields. Replay
//! now checks them too (`Engine::apply`), `journal::replay` refuses a
//! sequence number it cannot continue, and `PerUserLimits::try_acquire`
//! cannot overflow; each input must end in an `Err`, never a panic.
//!
//! Events are written by hand with `json!`, in the externally tagged form
//! serde gives `sale::Event` (`{"order_reserved":{..}}`), so they can hold
//! values no `SaleSpec` or engine call would build.
//!
//! Each file is one `replay` input: a control byte `0x00` (one segment),
//! then the records. Run from `fuzz/`: `cargo run --example crafted`.

use flashgate::journal::record::encode;
use serde_json::{json, Value};
use std::fs;
use std::path::Path;

const T0: i64 = 1_764_000_000_000;

fn sale(stock: i64) -> Value {
    json!({"sale_created": {"at": T0, "sale": {
        "sale_id": "s1", "title": "t", "starts_at": null, "ends_at": null, "hold_seconds": 60,
        "items": [{"sku_id": "k1", "title": "i", "price": "1", "stock": stock, "per_user_limit": 1}]
    }}})
}

fn order(order_id: &str, quantity: u32) -> Value {
    json!({"order_reserved": {"at": T0, "order_id": order_id, "sale_id": "s1",
        "sku_id": "k1", "buyer": "b", "quantity": quantity, "amount": "1",
        "idempotency_key": order_id, "expires_at": T0 + 60_000}})
}

fn restock(add: i64) -> Value {
    json!({"item_restocked": {"at": T0, "sale_id": "s1", "sku_id": "k1", "add": add}})
}

/// Control byte 0x00 (one segment), then the events as records from `first_seq`.
fn input(events: &[Value], first_seq: u64) -> Vec<u8> {
    let mut out = vec![0x00];
    for (i, event) in events.iter().enumerate() {
        let payload = serde_json::to_vec(event).unwrap();
        encode(first_seq.wrapping_add(i as u64), &payload, &mut out);
    }
    out
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts/replay");
    fs::create_dir_all(&dir).unwrap();
    let cases: [(&str, Vec<u8>); 6] = [
        // Was shards.rs:77 `assert!(stock >= 0)` (release builds too).
        ("crafted-sale-negative-stock", input(&[sale(-1)], 1)),
        // Was shards.rs:145 `assert!(quantity > 0)` in restock (release builds too).
        ("crafted-restock-add-zero", input(&[sale(1), restock(0)], 1)),
        // Was shards.rs:99 `debug_assert!(quantity > 0)` in reserve.
        (
            "crafted-order-quantity-zero",
            input(&[sale(1), order("o00001", 0)], 1),
        ),
        // Was replay.rs:75 `seq + 1` overflowing after a record numbered u64::MAX.
        ("crafted-seq-u64-max", input(&[sale(1)], u64::MAX)),
        // Was limits.rs:25 `*held + quantity` overflowing: replay acquires with
        // limit u32::MAX, and the stock (then unchecked on replay) covered both.
        (
            "crafted-per-buyer-count-overflow",
            input(
                &[sale(1 << 40), order("o00001", u32::MAX), order("o00002", 1)],
                1,
            ),
        ),
        // Was shards.rs:198 `debug_assert!(current >= 0)`: unchecked restocks
        // wrapped a shard's AtomicI64 negative, the next reservation saw it.
        (
            "crafted-shard-wraps-negative",
            input(
                &[
                    sale(i64::MAX),
                    restock(i64::MAX),
                    restock(i64::MAX),
                    restock(i64::MAX),
                    order("o00001", 1),
                ],
                1,
            ),
        ),
    ];
    for (name, bytes) in cases {
        fs::write(dir.join(name), &bytes).unwrap();
        println!("{} ({} bytes)", dir.join(name).display(), bytes.len());
    }
}
