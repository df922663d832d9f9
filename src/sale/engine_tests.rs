//! Engine tests: time is passed in, so holds expire without waiting, and the
//! events a live session emits are replayed into a fresh engine.

use super::*;
use crate::sale::test_support::*;

#[test]
fn orders_reserve_stock_and_the_amount_is_exact() {
    let engine = live_engine(5, 3);
    let placed = order(&engine, "alice", "k-1", 3, T0).unwrap();
    assert!(!placed.replayed);
    assert_eq!(placed.order.amount, Decimal::new(29850, 2));
    let json = serde_json::to_value(&placed.order).unwrap();
    assert_eq!(json["amount"], "298.50");
    assert_eq!(placed.order.status, "reserved");
    assert_eq!(counts(&engine).remaining, 2);
    assert_eq!(counts(&engine).reserved, 3);
}

#[test]
fn an_unpaid_hold_expires_and_its_stock_and_limit_return() {
    let engine = live_engine(2, 2);
    let placed = order(&engine, "alice", "k-1", 2, T0).unwrap();
    assert_eq!(
        order(&engine, "bob", "k-1", 1, T0).unwrap_err(),
        SaleError::SoldOut
    );
    assert!(
        engine.expire_due(T0 + 59_999).commits.is_empty(),
        "not due before hold_seconds"
    );
    let expired = engine.expire_due(T0 + 60_000);
    assert_eq!(expired.commits.len(), 1);
    let view = engine
        .order_for_buyer("alice", &placed.order.order_id)
        .unwrap();
    assert_eq!(view.status, "expired");
    assert_eq!(counts(&engine).remaining, 2);
    assert_eq!(counts(&engine).released, 2);
    assert!(
        order(&engine, "alice", "k-2", 2, T0 + 60_001).is_ok(),
        "limit freed by expiry"
    );
}

#[test]
fn a_cancelled_order_is_not_expired_again() {
    let engine = live_engine(2, 2);
    let placed = order(&engine, "alice", "k-1", 1, T0).unwrap();
    engine
        .cancel_order("alice", &placed.order.order_id, T0 + 1)
        .unwrap();
    let again = engine
        .cancel_order("alice", &placed.order.order_id, T0 + 2)
        .unwrap_err();
    assert!(matches!(again, SaleError::InvalidState(_)), "{again:?}");
    assert!(engine.expire_due(T0 + 120_000).commits.is_empty());
    assert_eq!(counts(&engine).remaining, 2);
    assert_eq!(counts(&engine).released, 1);
}

#[test]
fn buyers_see_only_their_own_orders() {
    let engine = live_engine(2, 2);
    let placed = order(&engine, "alice", "k-1", 1, T0).unwrap();
    let id = &placed.order.order_id;
    assert!(matches!(
        engine.order_for_buyer("bob", id),
        Err(SaleError::NotFound(_))
    ));
    assert!(matches!(
        engine.cancel_order("bob", id, T0),
        Err(SaleError::NotFound(_))
    ));
    assert_eq!(engine.order_for_admin(id).unwrap().buyer, "alice");
}

#[test]
fn idempotency_key_replays_conflicts_and_frees_on_failure() {
    let engine = live_engine(1, 1);
    let first = order(&engine, "alice", "k-1", 1, T0).unwrap();
    let replay = order(&engine, "alice", "k-1", 1, T0 + 5).unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.order.order_id, first.order.order_id);
    // Quantity 2 is above the item's limit of 1: validation comes before the key.
    let error = order(&engine, "alice", "k-1", 2, T0).unwrap_err();
    assert_eq!(
        error.to_string(),
        "quantity: must be within 1..=1 for this item"
    );
    engine.restock("s1", "k1", 1, T0).unwrap();
    let other = order(&engine, "bob", "k-1", 1, T0).unwrap();
    assert_ne!(
        other.order.order_id, first.order.order_id,
        "keys are per buyer"
    );
    assert_eq!(
        order(&engine, "carol", "k-9", 1, T0).unwrap_err(),
        SaleError::SoldOut
    );
    engine.restock("s1", "k1", 1, T0).unwrap();
    assert!(
        order(&engine, "carol", "k-9", 1, T0).is_ok(),
        "a failed attempt frees its key"
    );
}

#[test]
fn after_a_sell_out_a_new_key_is_refused_unclaimed_and_a_made_one_still_replays() {
    let engine = live_engine(1, 1);
    let made = order(&engine, "alice", "k-1", 1, T0).unwrap();
    assert_eq!(
        order(&engine, "bob", "k-2", 1, T0).unwrap_err(),
        SaleError::SoldOut
    );
    assert!(
        !engine.knows_key("bob", "k-2"),
        "the refused key was never claimed"
    );
    let replay = order(&engine, "alice", "k-1", 1, T0 + 1).unwrap();
    assert!(
        replay.replayed,
        "a retry of a made key is answered with its order"
    );
    assert_eq!(replay.order.order_id, made.order.order_id);
    assert_eq!(
        order(&engine, "alice", "k-1", 1, T0 + 1).map(|placed| placed.replayed),
        Ok(true)
    );
    let stats = engine.stats("s1", T0).unwrap();
    assert_eq!(stats.rejects.get("sold_out"), Some(&1), "{stats:?}");
}

#[test]
fn orders_are_refused_unless_the_sale_is_live() {
    let engine = Engine::new(limits(), T0);
    engine.create_sale(spec(5, 1), T0).unwrap();
    let refused = order(&engine, "alice", "k", 1, T0).unwrap_err();
    assert_eq!(
        refused,
        SaleError::SaleNotLive {
            status: "scheduled"
        }
    );
    engine.sale_action("s1", SaleAction::Start, T0).unwrap();
    engine.sale_action("s1", SaleAction::Pause, T0).unwrap();
    assert_eq!(
        order(&engine, "alice", "k", 1, T0).unwrap_err(),
        SaleError::SaleNotLive { status: "paused" }
    );
    let illegal = engine.sale_action("s1", SaleAction::Pause, T0).unwrap_err();
    assert_eq!(
        illegal,
        SaleError::InvalidState("cannot pause a sale that is paused".into())
    );
    engine.sale_action("s1", SaleAction::End, T0).unwrap();
    assert!(matches!(
        engine.restock("s1", "k1", 1, T0),
        Err(SaleError::InvalidState(_))
    ));
    let stats = engine.stats("s1", T0).unwrap();
    assert_eq!(stats.rejects["not_live"], 2);
}

#[test]
fn a_sale_past_its_end_time_refuses_orders() {
    let engine = Engine::new(limits(), T0);
    let mut ending = spec(5, 1);
    ending.ends_at = Some(T0 + 1_000);
    engine.create_sale(ending, T0).unwrap();
    engine.sale_action("s1", SaleAction::Start, T0).unwrap();
    assert!(order(&engine, "alice", "k", 1, T0 + 999).is_ok());
    assert_eq!(
        order(&engine, "bob", "k", 1, T0 + 1_000).unwrap_err(),
        SaleError::SaleNotLive { status: "ended" }
    );
}

#[test]
fn invalid_sales_name_the_field() {
    let engine = Engine::new(limits(), T0);
    let mut bad = spec(5, 1);
    bad.hold_seconds = 59;
    assert_eq!(
        engine.create_sale(bad, T0).unwrap_err(),
        invalid("hold_seconds", "must be within 60..=3600")
    );
    let mut bad = spec(5, 0);
    bad.items[0].per_user_limit = 0;
    let error = engine.create_sale(bad, T0).unwrap_err();
    assert!(
        error.to_string().starts_with("items[0].per_user_limit"),
        "{error}"
    );
    let mut bad = spec(1_001, 1);
    bad.items[0].stock = 1_001;
    assert!(engine
        .create_sale(bad, T0)
        .unwrap_err()
        .to_string()
        .starts_with("items[0].stock"));
    let mut bad = spec(1, 1);
    bad.items.push(bad.items[0].clone());
    assert!(engine
        .create_sale(bad, T0)
        .unwrap_err()
        .to_string()
        .starts_with("items[1].sku_id"));
    engine.create_sale(spec(1, 1), T0).unwrap();
    assert!(matches!(
        engine.create_sale(spec(1, 1), T0),
        Err(SaleError::InvalidState(_))
    ));
    assert!(matches!(
        engine.restock("s1", "k1", 1_000, T0),
        Err(SaleError::Invalid { .. })
    ));
}

#[test]
fn replaying_the_events_of_a_session_rebuilds_the_same_state() {
    let (engine, recording) = recorded_engine(10, 3);
    let mut ids = Vec::new();
    for (index, buyer) in ["a", "b", "c", "d"].iter().enumerate() {
        let placed = order(
            &engine,
            buyer,
            "key",
            (index % 3 + 1) as u32,
            T0 + index as i64,
        )
        .unwrap();
        ids.push(placed.order.order_id.clone());
    }
    engine.cancel_order("b", &ids[1], T0 + 10).unwrap();
    engine.restock("s1", "k1", 5, T0 + 11).unwrap();
    assert_eq!(engine.expire_due(T0 + 60_002).commits.len(), 2); // the holds of a and c
    engine
        .sale_action("s1", SaleAction::Pause, T0 + 70_000)
        .unwrap();
    let log = recording.0.lock().unwrap().clone();
    assert_eq!(
        log.len(),
        2 + 4 + 1 + 1 + 2 + 1,
        "every change was submitted once"
    );

    // Through serde, as the journal will store them.
    let json: Vec<String> = log
        .iter()
        .map(|event| serde_json::to_string(event).unwrap())
        .collect();
    let replayed = Engine::new(limits(), T0 + 100_000);
    for line in &json {
        replayed
            .apply(&serde_json::from_str(line).unwrap())
            .unwrap();
    }
    let (before, after) = (
        engine.stats("s1", T0).unwrap(),
        replayed.stats("s1", T0).unwrap(),
    );
    assert_eq!(before.items[0].counts, after.items[0].counts);
    assert_eq!(before.status, after.status);
    for id in &ids {
        let (a, b) = (
            engine.order_for_admin(id).unwrap(),
            replayed.order_for_admin(id).unwrap(),
        );
        assert_eq!(
            serde_json::to_value(a).unwrap(),
            serde_json::to_value(b).unwrap()
        );
    }
    let held =
        |engine: &Engine, buyer: &str| engine.sale("s1").unwrap().items[0].buyers.held(buyer);
    for (index, buyer) in ["a", "b", "c", "d"].iter().enumerate() {
        assert_eq!(
            held(&engine, buyer),
            held(&replayed, buyer),
            "{buyer}'s count"
        );
        let replay = order(&replayed, buyer, "key", (index % 3 + 1) as u32, T0).unwrap();
        assert!(replay.replayed, "idempotency keys survive replay");
        assert_eq!(replay.order.order_id, ids[index]);
    }
    assert_eq!(held(&replayed, "d"), 1);
    // The holds come back with their deadlines: only d's is open, due at T0 + 3 + 60 s.
    assert!(replayed.expire_due(T0 + 60_002).commits.is_empty());
    assert_eq!(replayed.expire_due(T0 + 60_003).commits.len(), 1);
    assert_eq!(held(&replayed, "d"), 0);
}

#[test]
fn replay_refuses_an_order_beyond_the_stock() {
    let engine = Engine::new(limits(), T0);
    engine.create_sale(spec(1, 5), T0).unwrap();
    let reserve = |order_id: &str| Event::OrderReserved {
        at: T0,
        order_id: order_id.into(),
        sale_id: "s1".into(),
        sku_id: "k1".into(),
        buyer: "x".into(),
        quantity: 1,
        amount: "99.50".parse().unwrap(),
        idempotency_key: order_id.into(),
        expires_at: T0 + 60_000,
    };
    engine.apply(&reserve("order-1")).unwrap();
    assert!(matches!(
        engine.apply(&reserve("order-2")),
        Err(SaleError::Replay(_))
    ));
}

#[test]
fn same_key_with_another_body_is_a_conflict_and_changes_nothing() {
    let engine = live_engine(5, 3);
    order(&engine, "alice", "k-1", 1, T0).unwrap();
    assert_eq!(
        order(&engine, "alice", "k-1", 2, T0).unwrap_err(),
        SaleError::IdempotencyConflict
    );
    assert_eq!(counts(&engine).remaining, 4);
}

#[test]
fn a_node_refuses_orders_beyond_orders_max() {
    let engine = Engine::new(
        EngineLimits {
            orders_max: 2,
            hold_seconds_min: crate::sale::engine::HOLD_SECONDS_MIN,
            stock_from_leases: false,
            ..limits()
        },
        T0,
    );
    engine.create_sale(spec(10, 1), T0).unwrap();
    engine.sale_action("s1", SaleAction::Start, T0).unwrap();
    let first = order(&engine, "a", "k", 1, T0).unwrap();
    engine.cancel_order("a", &first.order.order_id, T0).unwrap();
    order(&engine, "a", "k2", 1, T0).unwrap();
    assert!(matches!(
        order(&engine, "b", "k", 1, T0),
        Err(SaleError::CapacityReached(_))
    ));
}

/// The trap of docs/ARCHITECTURE.md: stock freed by a cancel is taken at once
/// by another buyer. The cancel must reach the log before that reservation,
/// or a strict replay would see more sold than stock.
#[test]
fn racing_cancels_and_reservations_always_replay_strictly() {
    let (engine, recording) = recorded_engine(2, 1);
    let engine = Arc::new(engine);
    let threads: Vec<_> = (0..4)
        .map(|thread| {
            let engine = Arc::clone(&engine);
            std::thread::spawn(move || {
                for round in 0..2_000 {
                    let buyer = format!("buyer-{thread}");
                    let key = format!("key-{round}");
                    if let Ok(placed) = order(&engine, &buyer, &key, 1, T0) {
                        engine
                            .cancel_order(&buyer, &placed.order.order_id, T0)
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let log = recording.0.lock().unwrap().clone();
    let replayed = Engine::new(limits(), T0);
    for (index, event) in log.iter().enumerate() {
        replayed
            .apply(event)
            .unwrap_or_else(|error| panic!("record {index}: {error}"));
    }
    assert_eq!(
        replayed.stats("s1", T0).unwrap().items[0].counts.remaining,
        2
    );
}

#[test]
fn an_engine_without_hold_timers_keeps_no_holds_and_snapshots_the_same_state() {
    let (engine, recording) = recorded_engine(10, 2);
    order(&engine, "a", "k", 2, T0).unwrap();
    let b = order(&engine, "b", "k", 1, T0 + 1).unwrap().order.order_id;
    engine.cancel_order("b", &b, T0 + 2).unwrap();
    order(&engine, "c", "k", 1, T0 + 3).unwrap();
    let log = recording.0.lock().unwrap().clone();
    let (kept, shadow) = (
        Engine::new(limits(), T0),
        Engine::new(limits(), T0).without_hold_timers(),
    );
    for event in &log {
        kept.apply(event).unwrap();
        shadow.apply(event).unwrap();
    }
    assert_eq!(
        kept.holds_pending(),
        3,
        "every reservation scheduled a hold"
    );
    assert_eq!(shadow.holds_pending(), 0, "the shadow keeps none");
    assert_eq!(shadow.snapshot(7), kept.snapshot(7));
    // Restored from the shadow's snapshot, a node expires the open holds.
    let restored = Engine::restore(limits(), T0, &shadow.snapshot(7)).unwrap();
    assert_eq!(restored.holds_pending(), 2, "the holds of a and c");
}

#[test]
fn a_snapshot_restores_stock_orders_limits_keys_and_holds() {
    let (engine, _) = recorded_engine(10, 2);
    let a = order(&engine, "a", "k", 2, T0).unwrap().order.order_id;
    let b = order(&engine, "b", "k", 1, T0 + 1).unwrap().order.order_id;
    engine.cancel_order("b", &b, T0 + 2).unwrap();
    order(&engine, "c", "k", 1, T0 + 30_000).unwrap();
    engine.restock("s1", "k1", 3, T0 + 3).unwrap();

    let snapshot = engine.snapshot(42);
    let json = serde_json::to_string(&snapshot).unwrap();
    assert_streamed_snapshot_is_the_held_one(&engine, 42);
    let restored = Engine::restore(limits(), T0, &serde_json::from_str(&json).unwrap()).unwrap();
    assert_eq!(
        restored.snapshot(42),
        snapshot,
        "restore is the inverse of snapshot"
    );
    assert_eq!(counts(&restored), counts(&engine));
    assert!(
        order(&restored, "a", "k", 2, T0).unwrap().replayed,
        "keys restored"
    );
    assert_eq!(
        order(&restored, "a", "k2", 1, T0).unwrap_err(),
        SaleError::LimitExceeded { limit: 2, held: 2 },
        "per-buyer counts restored"
    );
    // Holds restored with their deadlines: a's expires at T0 + 60 s, c's later.
    assert_eq!(restored.expire_due(T0 + 60_000).commits.len(), 1);
    assert_eq!(
        restored.order_for_admin(&a).unwrap().order.status,
        "expired"
    );
    assert_eq!(restored.expire_due(T0 + 90_000).commits.len(), 1);
}

/// Inputs the fuzzer's author crafted: valid checksums, impossible content.
/// Replay must refuse each with an error, never panic or wrap a counter.
#[test]
fn replay_refuses_impossible_events_instead_of_panicking() {
    let engine = Engine::new(limits(), T0);
    let created = |stock: i64| Event::SaleCreated {
        at: T0,
        sale: spec(stock, 5),
    };
    assert!(matches!(
        engine.apply(&created(-1)),
        Err(SaleError::Replay(_))
    ));
    engine.apply(&created(1_000)).unwrap();
    let restock = |add: i64| Event::ItemRestocked {
        at: T0,
        sale_id: "s1".into(),
        sku_id: "k1".into(),
        add,
    };
    assert!(engine.apply(&restock(0)).is_err());
    assert!(engine.apply(&restock(i64::MAX)).is_err());
    let reserve = |order_id: &str, quantity: u32| Event::OrderReserved {
        at: T0,
        order_id: order_id.into(),
        sale_id: "s1".into(),
        sku_id: "k1".into(),
        buyer: "x".into(),
        quantity,
        amount: "1.00".parse().unwrap(),
        idempotency_key: order_id.into(),
        expires_at: T0 + 60_000,
    };
    assert!(engine.apply(&reserve("order-0", 0)).is_err());
    assert!(
        engine.apply(&reserve("order-1", u32::MAX)).is_err(),
        "more than the stock"
    );
    engine.apply(&reserve("order-2", 1)).unwrap();
    assert_eq!(counts(&engine).remaining, 999);
    assert!(
        engine.apply(&reserve("order-2", 1)).is_err(),
        "an order id reserved twice"
    );
    assert_eq!(counts(&engine).remaining, 999, "refused before the stock");
}

#[test]
fn sale_summaries_list_every_sale_newest_first_with_item_counts() {
    let engine = live_engine(5, 3);
    order(&engine, "alice", "k-1", 2, T0).unwrap();
    let mut later = spec(7, 1);
    later.sale_id = "s0".into();
    engine.create_sale(later, T0 + 10).unwrap();
    let mut same_time = spec(1, 1);
    same_time.sale_id = "s2".into();
    engine.create_sale(same_time, T0 + 10).unwrap();

    let summaries = engine.sale_summaries(T0 + 20);
    let ids: Vec<_> = summaries.iter().map(|sale| sale.sale_id.as_str()).collect();
    assert_eq!(ids, ["s0", "s2", "s1"], "newest first, ties by id");
    let s1 = &summaries[2];
    assert_eq!(s1.status, "live");
    assert_eq!(s1.items[0].price, "99.50");
    assert_eq!(s1.items[0].counts.reserved, 2);
    assert_eq!(s1.items[0].counts.remaining, 3);
    assert_eq!(summaries[0].status, "scheduled");
    assert_eq!(summaries[0].items[0].counts.stock, 7);
}

fn leased_limits() -> EngineLimits {
    EngineLimits {
        stock_from_leases: true,
        ..limits()
    }
}

/// A cluster node's engine: the sale is created with a global stock of
/// 100 and started, and the node holds nothing yet.
fn leased_engine() -> (Engine, Arc<Recording>) {
    let mut engine = Engine::new(leased_limits(), T0);
    let recording = Arc::new(Recording::default());
    engine.attach_sink(recording.clone());
    engine.create_sale(spec(100, 5), T0).unwrap();
    engine.sale_action("s1", SaleAction::Start, T0).unwrap();
    (engine, recording)
}

#[test]
fn a_cluster_node_sells_only_what_it_leased_and_replay_rebuilds_what_it_holds() {
    let (engine, recording) = leased_engine();
    assert_eq!(
        counts(&engine).stock,
        0,
        "the spec's stock is the global one"
    );
    assert_eq!(
        order(&engine, "a", "k", 1, T0).unwrap_err(),
        SaleError::SoldOut
    );
    engine.grant_lease("s1", "k1", "n1-1", 3, T0 + 1).unwrap();
    let first = order(&engine, "a", "k", 2, T0 + 2).unwrap();
    order(&engine, "b", "k", 1, T0 + 3).unwrap();
    assert_eq!(
        order(&engine, "c", "k", 1, T0 + 4).unwrap_err(),
        SaleError::SoldOut
    );
    engine
        .cancel_order("a", &first.order.order_id, T0 + 5)
        .unwrap();
    engine.grant_lease("s1", "k1", "n1-2", 4, T0 + 6).unwrap();
    let (returned, _) = engine
        .return_unsold("s1", "k1", "n1-r1", T0 + 7)
        .unwrap()
        .expect("units to return");
    assert_eq!(returned, 6, "the cancelled 2 and the 4 granted");
    assert!(engine
        .return_unsold("s1", "k1", "n1-r2", T0 + 8)
        .unwrap()
        .is_none());
    let held = counts(&engine);
    assert_eq!((held.stock, held.reserved, held.remaining), (1, 1, 0));

    let replayed = Engine::new(leased_limits(), T0 + 100);
    for event in recording.events() {
        let json = serde_json::to_string(&event).unwrap();
        replayed
            .apply(&serde_json::from_str(&json).unwrap())
            .unwrap();
    }
    assert_eq!(counts(&replayed), held);
}

#[test]
fn lease_events_are_refused_by_a_node_alone_and_after_the_sale_ended() {
    let (engine, recording) = leased_engine();
    engine.grant_lease("s1", "k1", "n1-1", 2, T0 + 1).unwrap();
    let alone = Engine::new(limits(), T0);
    let mut refused = None;
    for event in recording.events() {
        if let Err(error) = alone.apply(&event) {
            refused = Some(error.to_string());
        }
    }
    let refused = refused.expect("the grant is refused");
    assert!(refused.contains("[cluster]"), "{refused}");
    assert!(live_engine(5, 1)
        .return_unsold("s1", "k1", "r", T0)
        .is_err());
    assert!(engine.grant_lease("s1", "k1", "n1-2", 0, T0 + 2).is_err());
    engine.sale_action("s1", SaleAction::End, T0 + 3).unwrap();
    assert!(
        engine.grant_lease("s1", "k1", "n1-3", 2, T0 + 4).is_err(),
        "an ended sale takes no lease: the caller gives the units back"
    );
    let return_beyond = Event::LeaseReturned {
        at: T0 + 5,
        sale_id: "s1".into(),
        sku_id: "k1".into(),
        return_id: "r".into(),
        units: 3,
    };
    assert!(engine.apply(&return_beyond).is_err(), "only 2 are held");
    assert_eq!(counts(&engine).stock, 2);
}

/// Records what a buyer-count watch is told.
#[derive(Default)]
struct CountLog(std::sync::Mutex<Vec<(String, i64)>>);

impl BuyerCountWatch for CountLog {
    fn changed(&self, sale_id: &str, sku_id: &str, buyer: &str, delta: i64) {
        let entry = (format!("{sale_id}/{sku_id}/{buyer}"), delta);
        self.0.lock().unwrap().push(entry);
    }
}

#[test]
fn the_buyer_watch_hears_live_releases_only() {
    let (engine, recording) = recorded_engine(10, 3);
    let watch = Arc::new(CountLog::default());
    engine.watch_buyer_counts(watch.clone());
    let cancelled = order(&engine, "alice", "k-1", 2, T0).unwrap();
    order(&engine, "bob", "k-1", 3, T0).unwrap();
    assert!(
        watch.0.lock().unwrap().is_empty(),
        "a reservation is counted by the caller"
    );
    engine
        .cancel_order("alice", &cancelled.order.order_id, T0 + 1)
        .unwrap();
    assert_eq!(engine.expire_due(T0 + 60_000).commits.len(), 1);
    assert_eq!(
        *watch.0.lock().unwrap(),
        vec![("s1/k1/alice".to_owned(), -2), ("s1/k1/bob".to_owned(), -3)]
    );
    assert!(engine.knows_key("alice", "k-1"));
    assert!(!engine.knows_key("alice", "k-2"));

    // Replay rebuilds the counts without telling the watch.
    let replayed = Engine::new(limits(), T0 + 100_000);
    let replay_watch = Arc::new(CountLog::default());
    replayed.watch_buyer_counts(replay_watch.clone());
    for event in recording.0.lock().unwrap().iter() {
        replayed.apply(event).unwrap();
    }
    assert!(replay_watch.0.lock().unwrap().is_empty());
    assert!(replayed.knows_key("bob", "k-1"));
}

/// The order view shares the record's strings and formats its times and
/// amount while it is serialized; the JSON is what the owned view with a
/// `String` per field wrote, key for key and byte for byte.
#[test]
fn an_order_view_serializes_as_the_owned_view_did() {
    #[derive(serde::Serialize)]
    struct OwnedView {
        order_id: String,
        sale_id: String,
        sku_id: String,
        quantity: u32,
        amount: String,
        currency: &'static str,
        status: &'static str,
        created_at: String,
        expires_at: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        paid_at: Option<String>,
    }
    let owned = |view: &crate::sale::views::OrderView| OwnedView {
        order_id: view.order_id.to_string(),
        sale_id: view.sale_id().to_owned(),
        sku_id: view.sku_id().to_owned(),
        quantity: view.quantity,
        amount: crate::money::format_yuan(view.amount),
        currency: view.currency,
        status: view.status,
        created_at: crate::clock::format_rfc3339(view.created_at),
        expires_at: crate::clock::format_rfc3339(view.expires_at),
        paid_at: view.paid_at.map(crate::clock::format_rfc3339),
    };
    let engine = live_engine(5, 3);
    let mut view = order(&engine, "alice", "k-1", 3, T0 + 7).unwrap().order;
    assert_eq!((view.sale_id(), view.sku_id()), ("s1", "k1"));
    let json = serde_json::to_string(&view).unwrap();
    assert_eq!(json, serde_json::to_string(&owned(&view)).unwrap());
    assert!(json.contains(r#""amount":"298.50""#), "{json}");
    assert!(!json.contains("paid_at"), "{json}");
    view.paid_at = Some(T0 + 60_123);
    let json = serde_json::to_string(&view).unwrap();
    assert_eq!(json, serde_json::to_string(&owned(&view)).unwrap());
    assert!(json.contains(r#""paid_at":""#), "{json}");
    // Written field by field, the same bytes: paid or not, odd amounts,
    // times outside 1970..=9999 (the slow path).
    for (amount, created_at, paid_at) in [
        (Decimal::new(29850, 2), T0, None),
        (Decimal::new(1, 0), -1, Some(T0 + 60_123)),
        (Decimal::new(123_456_789, 5), 253_402_300_800_000, Some(0)),
        (Decimal::MAX, i64::MIN / 2, None),
    ] {
        view.amount = amount;
        view.created_at = created_at;
        view.paid_at = paid_at;
        let mut written = Vec::new();
        view.write_json(&mut written);
        assert_eq!(
            String::from_utf8(written).unwrap(),
            serde_json::to_string(&view).unwrap()
        );
    }
    // Flattened into the admin view, the same keys come first.
    let admin = engine.order_for_admin(&view.order_id).unwrap();
    let admin_json = serde_json::to_value(&admin).unwrap();
    let plain = serde_json::to_value(&admin.order).unwrap();
    for (key, value) in plain.as_object().unwrap() {
        assert_eq!(&admin_json[key], value, "{key}");
    }
}

#[test]
fn a_reservation_encodes_as_its_event_does() {
    // Strings that need escaping, a negative time, an amount with a scale.
    let reservation = Reservation {
        at: -1,
        order_id: "FG19ab0000000000000000001",
        sale_id: "s1",
        sku_id: "k-1",
        buyer: "o\"pen\\id\u{1}é",
        quantity: 3,
        amount: Decimal::new(29850, 2),
        idempotency_key: "key:\"1\"",
        expires_at: i64::MAX,
    };
    let event = reservation.to_event();
    let borrowed = serde_json::to_string(&reservation).unwrap();
    assert_eq!(borrowed, serde_json::to_string(&event).unwrap());
    assert!(borrowed.starts_with(r#"{"order_reserved":{"at":-1,"order_id":"#));
    assert_eq!(serde_json::from_str::<Event>(&borrowed).unwrap(), event);
    // Written field by field (the journal's way), the same bytes, whatever
    // the amount's scale and sign.
    let mut negative_zero = Decimal::new(0, 3);
    negative_zero.set_sign_negative(true);
    for amount in [
        Decimal::new(29850, 2),
        Decimal::new(5, 0),
        Decimal::new(-1234, 3),
        negative_zero,
        Decimal::MAX,
        Decimal::MIN,
    ] {
        let reservation = Reservation {
            amount,
            ..reservation
        };
        let mut written = Vec::new();
        reservation.write_json(&mut written);
        assert_eq!(
            String::from_utf8(written).unwrap(),
            serde_json::to_string(&reservation.to_event()).unwrap()
        );
    }
}

#[test]
fn a_live_order_submits_its_reservation_as_the_event_replay_reads() {
    let (engine, recording) = recorded_engine(5, 3);
    let placed = order(&engine, "alice", "k-1", 2, T0).unwrap();
    let Some(Event::OrderReserved {
        order_id,
        sale_id,
        sku_id,
        buyer,
        quantity,
        amount,
        idempotency_key,
        ..
    }) = recording.events().last().cloned()
    else {
        panic!("no reservation recorded: {:?}", recording.events());
    };
    assert_eq!(*placed.order.order_id, order_id);
    assert_eq!(
        (sale_id.as_str(), sku_id.as_str(), buyer.as_str()),
        ("s1", "k1", "alice")
    );
    assert_eq!(
        (quantity, amount, idempotency_key.as_str()),
        (2, placed.order.amount, "k-1")
    );
}

#[test]
fn each_engine_orders_on_its_own_sale_though_a_thread_caches_the_last_one() {
    // Two engines, one sale id, one thread: the thread's cached sale of the
    // first engine must not take the second's orders.
    let first = live_engine(5, 3);
    let second = live_engine(2, 3);
    let mut second_results = Vec::new();
    for round in 0..3 {
        order(&first, "alice", &format!("a-{round}"), 1, T0).unwrap();
        second_results.push(order(&second, "bob", &format!("b-{round}"), 1, T0).err());
    }
    assert_eq!(second_results, vec![None, None, Some(SaleError::SoldOut)]);
    assert_eq!(counts(&first).reserved, 3);
    assert_eq!(counts(&first).remaining, 2);
    assert_eq!(counts(&second).reserved, 2);
    assert_eq!(counts(&second).remaining, 0);
    assert_eq!(first.stats("s1", T0).unwrap().orders.created, 3);
    assert_eq!(second.stats("s1", T0).unwrap().orders.created, 2);
}
