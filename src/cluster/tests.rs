//! The registry's scripts against the machine's Redis.

use crate::cluster::registry::{BuyerDelta, LimitCheck, LimitTaken};
use crate::cluster::test_redis::TestPrefix;
use crate::cluster::{Granted, Restocked, Transitioned};
use crate::sale::{ItemSpec, SaleAction, SaleSpec, SaleStatus};

fn spec(sale_id: &str, stock: i64) -> SaleSpec {
    SaleSpec {
        sale_id: sale_id.into(),
        title: "t".into(),
        starts_at: None,
        ends_at: None,
        hold_seconds: 60,
        items: vec![ItemSpec {
            sku_id: "k1".into(),
            title: "i".into(),
            price: "1.00".parse().unwrap(),
            stock,
            per_user_limit: 1,
        }],
    }
}

#[tokio::test]
async fn a_sale_registers_once_and_other_nodes_read_its_spec_and_state() {
    let redis = TestPrefix::new("register");
    let registry = redis.registry();
    assert!(registry.register_sale(&spec("s1", 10)).await.unwrap());
    assert!(
        !registry.register_sale(&spec("s1", 99)).await.unwrap(),
        "a second create of the same id is refused"
    );
    assert_eq!(
        registry.sale_spec("s1").await.unwrap(),
        Some(spec("s1", 10))
    );
    assert_eq!(registry.sale_spec("s2").await.unwrap(), None);
    assert_eq!(registry.sale_ids().await.unwrap(), vec!["s1".to_owned()]);
    assert_eq!(registry.global_remaining("s1", "k1").await.unwrap(), 10);
    let states = registry
        .sale_states(&["s1".into(), "s2".into()])
        .await
        .unwrap();
    assert_eq!(states, vec![Some(SaleStatus::Scheduled), None]);
}

#[tokio::test]
async fn leases_take_full_blocks_then_shrink_near_the_end_and_a_retry_takes_nothing_twice() {
    let redis = TestPrefix::new("lease");
    let registry = redis.registry();
    registry.register_sale(&spec("s1", 100)).await.unwrap();
    let granted = |units, remaining| Granted { units, remaining };
    let first = registry.lease("s1", "k1", "a", 20, "a-1").await.unwrap();
    assert_eq!(first, granted(20, 80), "a full block");
    let retried = registry.lease("s1", "k1", "a", 20, "a-1").await.unwrap();
    assert_eq!(
        retried,
        granted(20, 80),
        "the same lease id: the same grant, nothing taken"
    );
    let second = registry.lease("s1", "k1", "b", 20, "b-1").await.unwrap();
    assert_eq!(second, granted(20, 60));
    // Two nodes hold leases: a block is at most ⌈remaining / 4⌉ now.
    let third = registry.lease("s1", "k1", "a", 20, "a-2").await.unwrap();
    assert_eq!(third, granted(15, 45));
    let mut sizes = Vec::new();
    for lease in 0.. {
        let node = if lease % 2 == 0 { "b" } else { "a" };
        let lease_id = format!("{node}-x{lease}");
        let next = registry
            .lease("s1", "k1", node, 20, &lease_id)
            .await
            .unwrap();
        if next.units == 0 {
            assert_eq!(next.remaining, 0);
            break;
        }
        sizes.push(next.units);
    }
    assert!(sizes.windows(2).all(|pair| pair[1] <= pair[0]), "{sizes:?}");
    assert_eq!(
        sizes.last(),
        Some(&1),
        "the last units go one by one: {sizes:?}"
    );
    let leased: i64 = registry
        .leases("s1", "k1")
        .await
        .unwrap()
        .iter()
        .map(|(_, units)| units)
        .sum();
    assert_eq!(leased, 100, "every unit leased exactly once");
    assert_eq!(registry.global_remaining("s1", "k1").await.unwrap(), 0);
}

#[tokio::test]
async fn a_return_is_applied_once_and_never_exceeds_the_lease() {
    let redis = TestPrefix::new("return");
    let registry = redis.registry();
    registry.register_sale(&spec("s1", 20)).await.unwrap();
    registry.lease("s1", "k1", "a", 8, "a-1").await.unwrap();
    assert!(registry
        .give_back("s1", "k1", "a", 3, "a-r1")
        .await
        .unwrap());
    assert!(
        !registry
            .give_back("s1", "k1", "a", 3, "a-r1")
            .await
            .unwrap(),
        "a retried return adds nothing"
    );
    assert_eq!(registry.leased("s1", "k1", "a").await.unwrap(), 5);
    assert_eq!(registry.global_remaining("s1", "k1").await.unwrap(), 15);
    let error = registry
        .give_back("s1", "k1", "a", 6, "a-r2")
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("RETURN_EXCEEDS_LEASE"), "{error}");
    assert_eq!(registry.leased("s1", "k1", "a").await.unwrap(), 5);
    assert!(registry
        .give_back("s1", "k1", "a", 5, "a-r2")
        .await
        .unwrap());
    assert_eq!(registry.global_remaining("s1", "k1").await.unwrap(), 20);
}

#[tokio::test]
async fn concurrent_leases_never_grant_more_than_the_stock() {
    let redis = TestPrefix::new("concurrent");
    let registry = std::sync::Arc::new(redis.registry());
    registry.register_sale(&spec("s1", 1000)).await.unwrap();
    let mut tasks = Vec::new();
    for node in 0..8 {
        let registry = std::sync::Arc::clone(&registry);
        tasks.push(tokio::spawn(async move {
            let mut taken = 0;
            for lease in 0.. {
                let node_id = format!("n{node}");
                let lease_id = format!("n{node}-{lease}");
                let granted = registry
                    .lease("s1", "k1", &node_id, 37, &lease_id)
                    .await
                    .unwrap();
                if granted.units == 0 {
                    return taken;
                }
                taken += granted.units;
            }
            unreachable!()
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    assert_eq!(total, 1000);
    let leased: i64 = registry
        .leases("s1", "k1")
        .await
        .unwrap()
        .iter()
        .map(|(_, units)| units)
        .sum();
    assert_eq!(leased, 1000);
}

#[tokio::test]
async fn host_actions_follow_the_life_cycle_table() {
    let redis = TestPrefix::new("transition");
    let registry = redis.registry();
    registry.register_sale(&spec("s1", 1)).await.unwrap();
    let pause = registry.transition("s1", SaleAction::Pause).await.unwrap();
    assert_eq!(pause, Transitioned::Refused(SaleStatus::Scheduled));
    let start = registry.transition("s1", SaleAction::Start).await.unwrap();
    assert_eq!(start, Transitioned::Moved(SaleStatus::Live));
    let pause = registry.transition("s1", SaleAction::Pause).await.unwrap();
    assert_eq!(pause, Transitioned::Moved(SaleStatus::Paused));
    let end = registry.transition("s1", SaleAction::End).await.unwrap();
    assert_eq!(end, Transitioned::Moved(SaleStatus::Ended));
    let start = registry.transition("s1", SaleAction::Start).await.unwrap();
    assert_eq!(start, Transitioned::Refused(SaleStatus::Ended));
    let error = registry
        .transition("nope", SaleAction::Start)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("NO_SALE"), "{error}");
}

#[tokio::test]
async fn node_tags_are_given_once_per_node_and_keys_are_cleaned_up() {
    let redis = TestPrefix::new("tags");
    let registry = redis.registry();
    let a = registry.node_tag("a").await.unwrap();
    let b = registry.node_tag("b").await.unwrap();
    assert_ne!(a, b);
    assert_eq!(
        registry.node_tag("a").await.unwrap(),
        a,
        "stable per node id"
    );
    assert!(!redis.keys().is_empty());
    let prefix = redis.prefix.clone();
    drop(redis);
    let client = redis::Client::open(crate::cluster::test_redis::REDIS_URL).unwrap();
    let mut connection = client
        .get_connection_with_timeout(std::time::Duration::from_secs(1))
        .unwrap();
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query(&mut connection)
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn an_unreachable_redis_fails_fast_with_its_address() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("redis://127.0.0.1:{port}");
    let link = crate::cluster::RedisLink::new(&url, std::time::Duration::from_millis(300)).unwrap();
    let registry = crate::cluster::Registry::new(link, "nowhere");
    let started = std::time::Instant::now();
    let error = registry.sale_ids().await.unwrap_err().to_string();
    assert!(
        error.contains("unreachable") && error.contains(&url),
        "{error}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

#[tokio::test]
async fn a_restock_adds_to_the_global_stock_within_the_limit_until_the_sale_ends() {
    let redis = TestPrefix::new("restock");
    let registry = redis.registry();
    registry.register_sale(&spec("s1", 10)).await.unwrap();
    registry.lease("s1", "k1", "a", 4, "a-1").await.unwrap();
    let added = registry.restock("s1", "k1", 5, 20).await.unwrap();
    assert_eq!(added, Restocked::Added { total: 15 }, "leased units count");
    assert_eq!(registry.global_remaining("s1", "k1").await.unwrap(), 11);
    let too_much = registry.restock("s1", "k1", 6, 20).await.unwrap();
    assert_eq!(too_much, Restocked::TooMuch { total: 15 });
    let error = registry
        .restock("s1", "nope", 1, 20)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("NO_ITEM"), "{error}");
    registry
        .transition("s1", crate::sale::SaleAction::End)
        .await
        .unwrap();
    assert_eq!(
        registry.restock("s1", "k1", 1, 20).await.unwrap(),
        Restocked::Ended
    );
    assert_eq!(registry.global_remaining("s1", "k1").await.unwrap(), 11);
}

#[tokio::test]
async fn a_buyers_limit_holds_under_concurrent_checks_and_adjustments_give_units_back() {
    let redis = TestPrefix::new("limit");
    let registry = std::sync::Arc::new(redis.registry());
    let mut checks = Vec::new();
    for _ in 0..40 {
        let registry = std::sync::Arc::clone(&registry);
        checks.push(tokio::spawn(async move {
            registry
                .take_limit("s1", "k1", "alice", 1, 3)
                .await
                .unwrap()
        }));
    }
    let mut counted = 0;
    for check in checks {
        match check.await.unwrap() {
            LimitTaken::Counted => counted += 1,
            LimitTaken::Exceeded { held } => assert_eq!(held, 3),
        }
    }
    assert_eq!(
        counted, 3,
        "exactly the limit, however the checks interleave"
    );
    assert_eq!(registry.buyer_count("s1", "k1", "alice").await.unwrap(), 3);
    assert_eq!(
        registry.take_limit("s1", "k1", "bob", 3, 3).await.unwrap(),
        LimitTaken::Counted,
        "another buyer has a count of their own"
    );
    assert_eq!(
        registry
            .take_limit("s1", "k2", "alice", 2, 3)
            .await
            .unwrap(),
        LimitTaken::Counted,
        "and another item too"
    );
    let delta = |buyer: &str, delta| BuyerDelta {
        sale_id: "s1".into(),
        sku_id: "k1".into(),
        buyer: buyer.into(),
        delta,
    };
    registry
        .adjust_counts(&[delta("alice", -2), delta("bob", -3)])
        .await
        .unwrap();
    assert_eq!(registry.buyer_count("s1", "k1", "alice").await.unwrap(), 1);
    assert_eq!(registry.buyer_count("s1", "k1", "bob").await.unwrap(), 0);
    assert_eq!(
        registry
            .take_limit("s1", "k1", "alice", 3, 3)
            .await
            .unwrap(),
        LimitTaken::Exceeded { held: 1 },
        "1 + 3 passes the limit: nothing counted"
    );
    assert_eq!(
        registry
            .take_limit("s1", "k1", "alice", 2, 3)
            .await
            .unwrap(),
        LimitTaken::Counted
    );
    // A count that reaches zero leaves the hash; one below zero (units
    // given back twice) does not linger negative.
    registry.adjust_counts(&[delta("alice", -5)]).await.unwrap();
    assert_eq!(registry.buyer_count("s1", "k1", "alice").await.unwrap(), 0);
    let keys = redis.keys();
    assert!(
        !keys.iter().any(|key| key.ends_with(":bought:k1")),
        "an emptied count hash is gone: {keys:?}"
    );
}

/// The registry on a real Redis Cluster of three masters: every script and
/// read runs (none spans two slots), a sale's keys share one slot, several
/// sales spread over the masters, and a publication from a script reaches a
/// subscriber on another master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_works_on_a_redis_cluster_one_slot_per_sale() {
    use crate::cluster::test_redis_cluster::RedisCluster;
    use crate::cluster::{RedisLink, Registry};
    use futures_util::StreamExt;
    use std::time::Duration;

    let cluster = RedisCluster::start(3);
    let urls = cluster.urls();
    let seeds: Vec<&str> = urls.iter().map(String::as_str).collect();
    let link = RedisLink::cluster(&seeds[..1], Duration::from_secs(2)).unwrap();
    assert!(link.is_cluster());
    let registry = Registry::new(link, "fg");
    let sales: Vec<String> = (0..6).map(|n| format!("sale-{n}")).collect();

    // A subscriber on one seed hears a publication made on any master.
    let subscriber = Registry::new(
        RedisLink::cluster(&seeds[2..], Duration::from_secs(2)).unwrap(),
        "fg",
    );
    let mut events = subscriber
        .link()
        .subscribe(&subscriber.events_channel())
        .await
        .unwrap();

    for sale in &sales {
        assert!(registry.register_sale(&spec(sale, 50)).await.unwrap());
        assert!(!registry.register_sale(&spec(sale, 7)).await.unwrap());
    }
    let mut heard = std::collections::HashSet::new();
    while heard.len() < sales.len() {
        let message = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .expect("every create announced")
            .expect("the subscription open");
        heard.insert(message.get_payload::<String>().unwrap());
    }
    let mut ids = registry.sale_ids().await.unwrap();
    ids.sort();
    assert_eq!(ids, sales);

    let states = registry.sale_states(&ids).await.unwrap();
    assert!(states
        .iter()
        .all(|state| *state == Some(SaleStatus::Scheduled)));
    for sale in &sales {
        let moved = registry.transition(sale, SaleAction::Start).await.unwrap();
        assert_eq!(moved, Transitioned::Moved(SaleStatus::Live));
        let granted = registry
            .lease(sale, "k1", "n1", 20, &format!("{sale}-l1"))
            .await;
        assert_eq!(
            granted.unwrap(),
            Granted {
                units: 20,
                remaining: 30
            }
        );
        registry
            .lease(sale, "k1", "n2", 10, &format!("{sale}-l2"))
            .await
            .unwrap();
        assert!(registry
            .give_back(sale, "k1", "n1", 5, &format!("{sale}-r1"))
            .await
            .unwrap());
        assert_eq!(
            registry.restock(sale, "k1", 10, 1000).await.unwrap(),
            Restocked::Added { total: 60 }
        );
        assert_eq!(registry.global_remaining(sale, "k1").await.unwrap(), 35);
        assert_eq!(
            registry.global_stock(sale).await.unwrap(),
            vec![("k1".to_owned(), 35)]
        );
        assert_eq!(
            registry.leases(sale, "k1").await.unwrap(),
            vec![("n1".to_owned(), 15), ("n2".to_owned(), 10)]
        );
        assert_eq!(registry.leased(sale, "k1", "n2").await.unwrap(), 10);
    }
    let states = registry.sale_states(&ids).await.unwrap();
    assert!(states.iter().all(|state| *state == Some(SaleStatus::Live)));

    // Limit checks of several sales: one call per sale, answers in order.
    let check = |sale: &str, quantity| LimitCheck {
        sale_id: sale.to_owned(),
        sku_id: "k1".to_owned(),
        buyer: "alice".to_owned(),
        quantity,
        limit: 2,
    };
    let answers = registry
        .take_limits(&[check("sale-0", 2), check("sale-1", 1), check("sale-0", 1)])
        .await
        .unwrap();
    assert_eq!(
        answers,
        vec![
            LimitTaken::Counted,
            LimitTaken::Counted,
            LimitTaken::Exceeded { held: 2 }
        ]
    );
    let delta = |sale: &str, delta| BuyerDelta {
        sale_id: sale.to_owned(),
        sku_id: "k1".to_owned(),
        buyer: "alice".to_owned(),
        delta,
    };
    registry
        .adjust_counts(&[delta("sale-0", -1)])
        .await
        .unwrap();
    let mixed = registry
        .adjust_counts(&[delta("sale-0", -1), delta("sale-1", -1)])
        .await
        .unwrap_err();
    assert!(mixed.to_string().contains("one sale"), "{mixed}");
    assert_eq!(
        registry.buyer_count("sale-0", "k1", "alice").await.unwrap(),
        1
    );
    assert_eq!(
        registry.buyer_count("sale-1", "k1", "alice").await.unwrap(),
        1
    );

    let tag = registry.node_tag("n1").await.unwrap();
    assert_eq!(registry.node_tag("n1").await.unwrap(), tag);
    assert_ne!(registry.node_tag("n2").await.unwrap(), tag);

    // Each sale's keys share one slot, held by one master; the six sales
    // spread over more than one master.
    let mut masters = std::collections::HashSet::new();
    for sale in &sales {
        let keys = cluster.keys(&format!("fg:sale:{{{sale}}}:*"));
        assert!(keys.len() >= 6, "{keys:?}");
        let slots: std::collections::HashSet<u16> =
            keys.iter().map(|key| cluster.key_slot(key)).collect();
        assert_eq!(slots.len(), 1, "{sale}: {keys:?}");
        let holders: Vec<usize> = (0..3)
            .filter(|&index| {
                !cluster
                    .keys_on(index, &format!("fg:sale:{{{sale}}}:*"))
                    .is_empty()
            })
            .collect();
        assert_eq!(holders.len(), 1, "{sale} on one master: {holders:?}");
        masters.insert(holders[0]);
    }
    assert!(masters.len() > 1, "six sales on one master: {masters:?}");
    assert_eq!(
        cluster.key_slot("fg:{nodes}"),
        cluster.key_slot("fg:{nodes}:tag_seq")
    );
    // The prefix finds every key, on whichever master.
    let all = cluster.keys("fg:*");
    assert!(all.contains(&"fg:sales".to_owned()), "{all:?}");
    assert!(all.contains(&"fg:{nodes}".to_owned()), "{all:?}");
}

/// A create that died between the sale's keys and its `sales` entry (two
/// steps: one slot each) leaves a sale no node lists; the next create of
/// that id is refused as before and lists it.
#[tokio::test]
async fn a_create_cut_before_the_sales_entry_is_listed_by_the_next_create() {
    let redis = TestPrefix::new("register-cut");
    let registry = redis.registry();
    assert!(registry.register_sale(&spec("s1", 10)).await.unwrap());
    let client = redis::Client::open(crate::cluster::test_redis::REDIS_URL).unwrap();
    let mut connection = client
        .get_connection_with_timeout(std::time::Duration::from_secs(1))
        .unwrap();
    let _: i64 = redis::cmd("SREM")
        .arg(format!("{}:sales", redis.prefix))
        .arg("s1")
        .query(&mut connection)
        .unwrap();
    assert!(registry.sale_ids().await.unwrap().is_empty());
    assert!(
        !registry.register_sale(&spec("s1", 99)).await.unwrap(),
        "the sale exists: refused"
    );
    assert_eq!(registry.sale_ids().await.unwrap(), vec!["s1".to_owned()]);
    assert_eq!(
        registry.sale_spec("s1").await.unwrap(),
        Some(spec("s1", 10)),
        "the first spec stands"
    );
}
