use super::*;

#[test]
fn limit_counts_live_units_and_frees_them_on_release() {
    let limits = PerUserLimits::default();
    let alice = |key: &str| BuyerKey::new("alice", key);
    assert_eq!(limits.try_acquire(&alice("k-1"), 2, 3), Ok(()));
    assert_eq!(
        limits.try_acquire(&alice("k-2"), 2, 3),
        Err(LimitExceeded { held: 2 })
    );
    assert_eq!(limits.try_acquire(&alice("k-3"), 1, 3), Ok(()));
    assert_eq!(
        limits.try_acquire(&BuyerKey::new("bob", "k-1"), 4, 3),
        Err(LimitExceeded { held: 0 })
    );
    assert_eq!(
        limits.held.len(),
        1,
        "a refused first order leaves no count"
    );
    limits.release("alice", 3);
    assert_eq!(limits.held("alice"), 0);
    assert_eq!(limits.try_acquire(&alice("k-4"), 3, 3), Ok(()));
}

#[test]
fn concurrent_orders_of_one_buyer_never_pass_the_limit() {
    let limits = std::sync::Arc::new(PerUserLimits::default());
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let limits = limits.clone();
            std::thread::spawn(move || {
                (0..100)
                    .filter(|_| {
                        let names = BuyerKey::new("carol", "k");
                        limits.try_acquire(&names, 1, 5).is_ok()
                    })
                    .count()
            })
        })
        .collect();
    let granted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(granted, 5);
    assert_eq!(limits.held("carol"), 5);
}

#[test]
fn counts_are_found_through_every_doubling_of_the_table() {
    // The table grows from empty through many doublings, each rehashing
    // from the hashes its slots keep (inventory::prehashed).
    let limits = PerUserLimits::default();
    let buyers: Vec<String> = (0..40_000).map(|n| format!("buyer-{n}")).collect();
    for buyer in &buyers {
        assert_eq!(limits.try_acquire(&BuyerKey::new(buyer, "k"), 1, 1), Ok(()));
    }
    for buyer in &buyers {
        assert_eq!(limits.held(buyer), 1, "{buyer}");
        assert_eq!(
            limits.try_acquire(&BuyerKey::new(buyer, "k-2"), 1, 1),
            Err(LimitExceeded { held: 1 })
        );
    }
    assert_eq!(limits.held("buyer-40000"), 0);
    for buyer in &buyers {
        limits.release(buyer, 1);
    }
    assert_eq!(limits.held.len(), 0);
}
