//! Concurrent bursts over many keep-alive connections: the stock is sold
//! exactly once, and one idempotency key makes at most one order.

mod common;

use common::*;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::Barrier;

const BUYERS: usize = 400;
const CONNECTIONS: usize = 32;
const STOCK: i64 = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn burst_of_distinct_buyers_sells_exactly_the_stock() {
    let gateway = TestGateway::start().await;
    let mut admin = gateway.client().await;
    admin.live_sale("s-burst", STOCK, 1).await;

    let start = Arc::new(Barrier::new(CONNECTIONS));
    let mut tasks = Vec::new();
    for connection in 0..CONNECTIONS {
        let mut client = gateway.client().await;
        let start = Arc::clone(&start);
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let mut outcomes = Vec::new();
            for buyer in (connection..BUYERS).step_by(CONNECTIONS) {
                let openid = format!("o_buyer_{buyer:04}");
                let reply = client
                    .order(&buyer_token(&openid), "one-shot", "s-burst", 1)
                    .await;
                let status = reply.status.as_u16();
                let body = reply.json();
                if status != 201 {
                    assert_error(&reply, 409, "SOLD_OUT");
                }
                outcomes.push((openid, status, body));
            }
            outcomes
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.extend(
            within("a burst connection", task)
                .await
                .expect("burst task"),
        );
    }
    assert_eq!(outcomes.len(), BUYERS);

    let created: Vec<&(String, u16, Value)> = outcomes
        .iter()
        .filter(|(_, status, _)| *status == 201)
        .collect();
    let refused = outcomes
        .iter()
        .filter(|(_, status, _)| *status == 409)
        .count();
    assert_eq!(created.len() as i64, STOCK, "exactly the stock is sold");
    assert_eq!(refused, BUYERS - STOCK as usize, "the rest is SOLD_OUT");
    let ids: HashSet<&str> = created
        .iter()
        .map(|(_, _, order)| order["order_id"].as_str().expect("order_id"))
        .collect();
    assert_eq!(ids.len() as i64, STOCK, "order ids are unique");

    let stats = admin.stats("s-burst").await;
    let item = &stats["items"][0];
    assert_eq!(item["remaining"], 0, "{stats}");
    assert_eq!(item["reserved"], STOCK, "{stats}");
    assert_eq!(item["stock"], STOCK, "{stats}");
    assert_eq!(stats["orders"]["created"], STOCK, "{stats}");
    let rejects: u64 = ["sold_out", "insufficient_stock"]
        .iter()
        .map(|reason| stats["rejects"][reason].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(rejects, (BUYERS as i64 - STOCK) as u64, "{stats}");
    let sale = admin
        .get("/v1/sales/s-burst", OPS_TOKEN)
        .await
        .expect_json(200);
    assert_eq!(sale["status"], "sold_out", "{sale}");

    // Every winner reads their own order.
    for (openid, _, order) in created {
        let order_id = order["order_id"].as_str().unwrap();
        let read = admin
            .get(&format!("/v1/orders/{order_id}"), &buyer_token(openid))
            .await
            .expect_json(200);
        assert_eq!(&read, order);
    }
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn burst_of_multi_unit_orders_never_oversells() {
    let gateway = TestGateway::start().await;
    let mut admin = gateway.client().await;
    // 51 units in pairs: 25 orders fit, one unit is left over.
    admin.live_sale("s-pairs", 51, 2).await;
    let mut tasks = Vec::new();
    for connection in 0..16 {
        let mut client = gateway.client().await;
        tasks.push(tokio::spawn(async move {
            let mut created = 0;
            for buyer in (connection..160).step_by(16) {
                let reply = client
                    .order(&buyer_token(&format!("o_pair_{buyer}")), "k", "s-pairs", 2)
                    .await;
                match reply.status.as_u16() {
                    201 => created += 1,
                    _ => {
                        assert_error(&reply, 409, "SOLD_OUT");
                    }
                }
            }
            created
        }));
    }
    let mut created = 0;
    for task in tasks {
        created += within("a burst connection", task)
            .await
            .expect("burst task");
    }
    assert_eq!(created, 25);
    let stats = admin.stats("s-pairs").await;
    assert_eq!(stats["items"][0]["reserved"], 50, "{stats}");
    assert_eq!(stats["items"][0]["remaining"], 1, "{stats}");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_with_one_idempotency_key_make_at_most_one_order() {
    const CONNECTIONS: usize = 8;
    const ROUNDS: usize = 500;
    const BACKGROUND: usize = 6;
    let gateway = TestGateway::start().await;
    let mut admin = gateway.client().await;
    admin.live_sale("s-idem", 1000, 10_000).await;
    // Other buyers keep ordering meanwhile, as in a real sale.
    admin.live_sale("s-crowd", 1_000_000, 10_000).await;
    let alice = buyer_token("o_alice");

    let stop = Arc::new(AtomicBool::new(false));
    let mut crowd = Vec::new();
    for member in 0..BACKGROUND {
        let mut client = gateway.client().await;
        let stop = Arc::clone(&stop);
        crowd.push(tokio::spawn(async move {
            let mut sent = 0u64;
            let mut token = String::new();
            while !stop.load(Ordering::Relaxed) {
                // A new buyer every 1000 orders stays under the per-user limit.
                if sent % 1000 == 0 {
                    token = buyer_token(&format!("o_crowd_{member}_{}", sent / 1000));
                }
                let reply = client
                    .order(&token, &format!("crowd-{sent}"), "s-crowd", 1)
                    .await;
                assert_eq!(reply.status, 201, "{}", reply.text());
                sent += 1;
            }
        }));
    }

    let barrier = Arc::new(Barrier::new(CONNECTIONS));
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut client = gateway.client().await;
        let barrier = Arc::clone(&barrier);
        let alice = alice.clone();
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for round in 0..ROUNDS {
                barrier.wait().await;
                let reply = client
                    .order(&alice, &format!("double-tap-{round}"), "s-idem", 1)
                    .await;
                outcomes.push((round, reply));
            }
            outcomes
        }));
    }
    let mut by_round: HashMap<usize, Vec<Reply>> = HashMap::new();
    for task in tasks {
        for (round, reply) in within("an idempotency burst", task).await.expect("task") {
            by_round.entry(round).or_default().push(reply);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for member in crowd {
        within("the background orders", member)
            .await
            .expect("background task");
    }
    for round in 0..ROUNDS {
        let replies = &by_round[&round];
        let created: Vec<&Reply> = replies.iter().filter(|r| r.status == 201).collect();
        assert_eq!(
            created.len(),
            1,
            "round {round}: exactly one request makes the order; statuses {:?}",
            replies.iter().map(|r| r.status).collect::<Vec<_>>()
        );
        let order_id = created[0].json()["order_id"].clone();
        for reply in replies {
            match reply.status.as_u16() {
                201 => {}
                200 => assert_eq!(
                    reply.json()["order_id"],
                    order_id,
                    "round {round}: a replay names the same order"
                ),
                409 => {
                    // The duplicate arrived while the first was being made.
                    assert_error(reply, 409, "INVALID_STATE");
                }
                other => panic!(
                    "round {round}: a duplicate of an idempotent order got {other}: {}",
                    reply.text()
                ),
            }
        }
    }
    let stats = admin.stats("s-idem").await;
    assert_eq!(stats["orders"]["created"], ROUNDS, "{stats}");
    assert_eq!(stats["items"][0]["reserved"], ROUNDS, "{stats}");
    gateway.stop().await;
}
