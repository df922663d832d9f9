use super::*;
use crate::sale::test_support::*;

fn reserved(order_id: &str, buyer: &str, quantity: u32) -> Event {
    Event::OrderReserved {
        at: T0,
        order_id: order_id.into(),
        sale_id: "s1".into(),
        sku_id: "k1".into(),
        buyer: buyer.into(),
        quantity,
        amount: "99.50".parse().unwrap(),
        idempotency_key: format!("key-{order_id}"),
        expires_at: T0 + 60_000,
    }
}

#[test]
fn a_reservation_decodes_to_the_event_it_was_and_anything_else_as_an_event() {
    let event = reserved("o-1", "bu\"yer\\\u{e9}", 2);
    let json = serde_json::to_vec(&event).unwrap();
    let Replayed::Reserved(order) = Replayed::decode(&json).unwrap() else {
        panic!("a reservation");
    };
    let ids = order.shared.as_ref().unwrap();
    assert_eq!(
        (&*ids.order_id, ids.names.buyer(), ids.names.key()),
        ("o-1", "bu\"yer\\\u{e9}", "key-o-1"),
        "escaped strings are unescaped"
    );
    let again = ReservedOrder::of(&event).unwrap();
    assert_eq!(
        (order.at, order.quantity, order.amount, order.expires_at),
        (again.at, again.quantity, again.amount, again.expires_at)
    );
    assert_eq!(
        (order.sale_id.as_str(), order.sku_id.as_str()),
        ("s1", "k1")
    );
    let long = "x".repeat(Name::INLINE + 1);
    assert_eq!(Name::new(&long).as_str(), long);
    let full = "y".repeat(Name::INLINE);
    assert_eq!(Name::new(&full).as_str(), full);

    // Whitespace, or fields this variant does not have: decoded (or
    // refused) as an Event, with the Event's own error.
    let spaced = serde_json::to_vec_pretty(&event).unwrap();
    assert!(matches!(
        Replayed::decode(&spaced).unwrap(),
        Replayed::Event(Event::OrderReserved { .. })
    ));
    let text = String::from_utf8(json).unwrap();
    for bad in [
        text.replace("\"quantity\":2", "\"quantity\":2,\"extra\":1"),
        text.replace("\"quantity\":2,", ""),
        text.replace("\"quantity\":2", "\"quantity\":-2"),
        text.replace("\"99.50\"", "\"lots\""),
    ] {
        let replayed = Replayed::decode(bad.as_bytes())
            .err()
            .map(|e| e.to_string());
        let plain = serde_json::from_str::<Event>(&bad)
            .err()
            .map(|e| e.to_string());
        assert!(plain.is_some(), "{bad}");
        assert_eq!(replayed, plain, "{bad}");
    }
    let cancel = serde_json::to_vec(&Event::OrderTransitioned {
        at: T0,
        order_id: "o-1".into(),
        action: crate::sale::OrderAction::Cancel,
    })
    .unwrap();
    assert!(matches!(
        Replayed::decode(&cancel).unwrap(),
        Replayed::Event(Event::OrderTransitioned { .. })
    ));
}

/// The two-thread split (holds ahead, the rest in order) leaves
/// what `apply` leaves, event by event.
#[test]
fn replaying_ahead_and_in_order_rebuilds_what_apply_does() {
    let events = [
        Event::SaleCreated {
            at: T0,
            sale: spec(10, 3),
        },
        Event::SaleTransitioned {
            at: T0,
            sale_id: "s1".into(),
            action: crate::sale::SaleAction::Start,
        },
        reserved("o-1", "alice", 2),
        reserved("o-2", "bob", 1),
        reserved("o-3", "alice", 1),
        Event::OrderTransitioned {
            at: T0 + 5,
            order_id: "o-2".into(),
            action: crate::sale::OrderAction::Cancel,
        },
    ];
    let applied = Engine::new(limits(), T0);
    let split = Engine::new(limits(), T0);
    let mut records: Vec<Replayed> = events
        .iter()
        .map(|event| Replayed::decode(&serde_json::to_vec(event).unwrap()).unwrap())
        .collect();
    for record in &records {
        split.replay_ahead(record);
    }
    let mut cursor = ReplayCursor::default();
    for (event, record) in events.iter().zip(&mut records) {
        applied.apply(event).unwrap();
        split.apply_replayed(record, &mut cursor, true).unwrap();
    }
    assert!(
        split
            .apply_replayed(&mut records[2], &mut cursor, true)
            .is_err(),
        "a record is applied once"
    );
    assert_eq!(counts(&applied), counts(&split));
    let held =
        |engine: &Engine, buyer: &str| engine.sale("s1").unwrap().items[0].buyers.held(buyer);
    for buyer in ["alice", "bob"] {
        assert_eq!(held(&applied, buyer), held(&split, buyer));
    }
    assert_eq!(held(&split, "alice"), 3);
    for id in ["o-1", "o-2", "o-3"] {
        assert_eq!(
            serde_json::to_value(applied.order_for_admin(id).unwrap()).unwrap(),
            serde_json::to_value(split.order_for_admin(id).unwrap()).unwrap()
        );
        let key = format!("key-{id}");
        for engine in [&applied, &split] {
            let claim = engine.keys.claim(
                &engine.order_for_admin(id).unwrap().buyer,
                &key,
                crate::inventory::Asked {
                    item: engine.sale("s1").unwrap().items[0].serial,
                    quantity: 1,
                },
            );
            assert_eq!(
                claim,
                crate::inventory::KeyClaim::Replay {
                    order_id: id.into()
                }
            );
        }
    }
    assert_eq!(applied.holds_pending(), split.holds_pending());
    let (a, b) = (
        applied.expire_due(T0 + 60_000),
        split.expire_due(T0 + 60_000),
    );
    assert_eq!(
        (a.commits.len(), b.commits.len()),
        (2, 2),
        "o-2 was cancelled"
    );
    assert_eq!(counts(&applied), counts(&split));
}
