use super::*;

/// One item for the whole test binary: tests may run in any order.
fn item() -> ItemSerial {
    static ITEM: std::sync::OnceLock<ItemSerial> = std::sync::OnceLock::new();
    *ITEM.get_or_init(ItemSerial::next)
}

fn request(quantity: u32) -> Asked {
    Asked {
        item: item(),
        quantity,
    }
}

fn claimed(claim: KeyClaim) -> BuyerKey {
    match claim {
        KeyClaim::Claimed(names) => names,
        other => panic!("expected a claim, got {other:?}"),
    }
}

#[test]
fn a_key_in_progress_tells_duplicates_from_conflicts_then_replays() {
    let keys = IdempotencyKeys::default();
    let names = claimed(keys.claim("alice", "k", request(1)));
    assert_eq!((names.buyer(), names.key()), ("alice", "k"));
    assert_eq!(keys.claim("alice", "k", request(1)), KeyClaim::InProgress);
    assert_eq!(keys.claim("alice", "k", request(2)), KeyClaim::Conflict);
    let other_item = Asked {
        item: ItemSerial::next(),
        quantity: 1,
    };
    assert_ne!(other_item.item, item(), "every item has its own serial");
    assert_eq!(keys.claim("alice", "k", other_item), KeyClaim::Conflict);
    keys.bind(&names, &"order-1".into());
    assert_eq!(
        keys.claim("alice", "k", request(1)),
        KeyClaim::Replay {
            order_id: "order-1".into()
        }
    );
    claimed(keys.claim("bob", "k", request(2)));
}

#[test]
fn an_abandoned_claim_can_be_retried_but_a_completed_one_stays() {
    let keys = IdempotencyKeys::default();
    claimed(keys.claim("alice", "k", request(1)));
    keys.abandon("alice", "k");
    let names = claimed(keys.claim("alice", "k", request(1)));
    keys.bind(&names, &"order-1".into());
    keys.abandon("alice", "k");
    assert_eq!(keys.len(), 1);
}

#[test]
fn a_bound_key_shares_the_claims_string_and_keeps_buyer_and_key_apart() {
    let keys = IdempotencyKeys::default();
    let names = claimed(keys.claim("alice", "k", request(1)));
    keys.bind(&names, &"order-1".into());
    let entry = keys
        .claims
        .get(&Pair::new("alice", "k") as &dyn KeyPair)
        .unwrap();
    assert!(
        entry.key().names.shares(&names),
        "the claim's own string, not a copy"
    );
    drop(entry);
    // Replay binds a key nobody claimed.
    keys.bind_replayed(BuyerKey::new("bob", "k2"), "order-2".into());
    assert!(matches!(
        keys.claim("bob", "k2", request(1)),
        KeyClaim::Replay { .. }
    ));
    // The split between buyer and key is part of the identity.
    claimed(keys.claim("ali", "cek", request(1)));
    claimed(keys.claim("alicek", "", request(1)));
    assert_eq!(keys.len(), 4);
}

#[test]
fn keys_are_found_through_every_doubling_of_the_table() {
    let keys = IdempotencyKeys::default();
    let count = 40_000;
    for n in 0..count {
        let names = claimed(keys.claim(&format!("buyer-{n}"), "k", request(1)));
        if n % 2 == 0 {
            keys.bind(&names, &format!("order-{n}").into());
        }
    }
    assert_eq!(keys.len(), count);
    for n in 0..count {
        let buyer = format!("buyer-{n}");
        let expected = if n % 2 == 0 {
            KeyClaim::Replay {
                order_id: format!("order-{n}").into(),
            }
        } else {
            KeyClaim::InProgress
        };
        assert_eq!(keys.claim(&buyer, "k", request(1)), expected, "{buyer}");
        assert!(!keys.contains(&buyer, "k2"));
    }
}
