//! Storefront routes over real HTTP, happy paths: read a sale, watch its
//! events, place, replay, read and cancel orders.

mod common;

use common::*;
use serde_json::{json, Value};

fn assert_id_chars(id: &str, lengths: std::ops::RangeInclusive<usize>) {
    assert!(lengths.contains(&id.len()), "bad id length: {id:?}");
    assert!(
        id.bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'),
        "bad id characters: {id:?}"
    );
}

#[tokio::test]
async fn get_sale_shows_items_remaining_stock_and_status() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client
        .create_sale(&sale_body("s-get", 10, 2))
        .await
        .expect_json(201);
    let alice = buyer_token("o_alice");

    let reply = client.get("/v1/sales/s-get", &alice).await;
    assert!(reply
        .header("content-type")
        .is_some_and(|value| value.starts_with("application/json")));
    let sale = reply.expect_json(200);
    assert_eq!(sale["sale_id"], "s-get");
    assert_eq!(sale["title"], "Livestream special");
    assert_eq!(sale["status"], "scheduled");
    assert_eq!(sale["hold_seconds"], 60);
    let created = rfc3339_ms(&sale["created_at"]);
    assert!((created - now_ms()).abs() < 60_000, "{sale}");
    let items = sale["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0],
        json!({
            "sku_id": SKU,
            "title": "Lipstick No. 7",
            "price": "99.00",
            "currency": "CNY",
            "stock": 10,
            "remaining": 10,
            "per_user_limit": 2,
            "sold_out": false,
        })
    );

    client.start_sale("s-get").await.expect_json(200);
    let sale = client.get("/v1/sales/s-get", &alice).await.expect_json(200);
    assert_eq!(sale["status"], "live");
    // Host tools read the storefront view with their admin token.
    let sale = client
        .get("/v1/sales/s-get", OPS_TOKEN)
        .await
        .expect_json(200);
    assert_eq!(sale["status"], "live");
    gateway.stop().await;
}

#[tokio::test]
async fn placing_an_order_reserves_stock_and_returns_201_with_the_order() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client.live_sale("s-order", 10, 3).await;
    let alice = buyer_token("o_alice");

    let before = now_ms();
    let reply = client.order(&alice, "key-1", "s-order", 2).await;
    let after = now_ms();
    assert!(reply
        .header("content-type")
        .is_some_and(|value| value.starts_with("application/json")));
    let order = reply.expect_json(201);
    let order_id = order["order_id"].as_str().expect("order_id").to_owned();
    assert_id_chars(&order_id, 6..=32);
    assert_eq!(order["sale_id"], "s-order");
    assert_eq!(order["sku_id"], SKU);
    assert_eq!(order["quantity"], 2);
    assert_eq!(order["amount"], "198.00");
    assert_eq!(order["currency"], "CNY");
    assert_eq!(order["status"], "reserved");
    assert!(order.get("paid_at").is_none(), "unpaid: {order}");
    assert!(order.get("transaction_id").is_none(), "unpaid: {order}");
    let created = rfc3339_ms(&order["created_at"]);
    assert!(
        before - 1 <= created && created <= after + 1,
        "created_at {created} outside [{before}, {after}]"
    );
    // The hold lasts the sale's hold_seconds.
    assert_eq!(
        rfc3339_ms(&order["expires_at"]) - created,
        60_000,
        "{order}"
    );

    assert_eq!(client.remaining("s-order", &alice).await, 8);
    gateway.stop().await;
}

#[tokio::test]
async fn replaying_an_idempotency_key_with_the_same_body_returns_the_same_order_with_200() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client.live_sale("s-replay", 10, 3).await;
    let alice = buyer_token("o_alice");

    let first = client
        .order(&alice, "retry-me", "s-replay", 1)
        .await
        .expect_json(201);
    // A retry on a fresh connection, as a storefront would after a timeout.
    let mut other_connection = gateway.client().await;
    let replay = other_connection
        .order(&alice, "retry-me", "s-replay", 1)
        .await
        .expect_json(200);
    assert_eq!(replay, first, "a replay answers the very same order");
    let replay = client
        .order(&alice, "retry-me", "s-replay", 1)
        .await
        .expect_json(200);
    assert_eq!(replay["order_id"], first["order_id"]);

    assert_eq!(client.remaining("s-replay", &alice).await, 9);
    let stats = client.stats("s-replay").await;
    assert_eq!(stats["orders"]["created"], 1, "{stats}");
    gateway.stop().await;
}

#[tokio::test]
async fn idempotency_keys_are_scoped_to_the_buyer() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client.live_sale("s-scope", 10, 3).await;
    let alice = client
        .order(&buyer_token("o_alice"), "same-key", "s-scope", 1)
        .await
        .expect_json(201);
    let bob = client
        .order(&buyer_token("o_bob"), "same-key", "s-scope", 1)
        .await
        .expect_json(201);
    assert_ne!(alice["order_id"], bob["order_id"]);
    assert_eq!(client.remaining("s-scope", OPS_TOKEN).await, 8);
    gateway.stop().await;
}

#[tokio::test]
async fn a_buyer_reads_their_own_order() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client.live_sale("s-read", 10, 3).await;
    let alice = buyer_token("o_alice");
    let order = client
        .order(&alice, "k1", "s-read", 3)
        .await
        .expect_json(201);
    let order_id = order["order_id"].as_str().unwrap();

    let read = client
        .get(&format!("/v1/orders/{order_id}"), &alice)
        .await
        .expect_json(200);
    assert_eq!(read, order);
    assert_eq!(read["amount"], "297.00");
    gateway.stop().await;
}

#[tokio::test]
async fn cancelling_an_order_returns_its_stock_and_the_buyers_limit() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client.live_sale("s-cancel", 3, 2).await;
    let alice = buyer_token("o_alice");
    let order = client
        .order(&alice, "k1", "s-cancel", 2)
        .await
        .expect_json(201);
    let order_id = order["order_id"].as_str().unwrap();
    assert_eq!(client.remaining("s-cancel", &alice).await, 1);

    let cancelled = client
        .post_empty(&format!("/v1/orders/{order_id}/cancel"), &alice)
        .await
        .expect_json(200);
    assert_eq!(cancelled["order_id"], order_id);
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["quantity"], 2);
    assert_eq!(client.remaining("s-cancel", &alice).await, 3);
    let read = client
        .get(&format!("/v1/orders/{order_id}"), &alice)
        .await
        .expect_json(200);
    assert_eq!(read["status"], "cancelled");

    // The units count against the limit no more.
    client
        .order(&alice, "k2", "s-cancel", 2)
        .await
        .expect_json(201);
    let stats = client.stats("s-cancel").await;
    assert_eq!(stats["items"][0]["released"], 2, "{stats}");
    assert_eq!(stats["items"][0]["reserved"], 2, "{stats}");
    assert_eq!(stats["orders"]["cancelled"], 1, "{stats}");
    gateway.stop().await;
}

#[tokio::test]
async fn a_sold_out_sale_sells_again_after_a_cancel() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client.live_sale("s-last", 1, 1).await;
    let (alice, bob) = (buyer_token("o_alice"), buyer_token("o_bob"));
    let order = client
        .order(&alice, "k", "s-last", 1)
        .await
        .expect_json(201);
    let sale = client.get("/v1/sales/s-last", &bob).await.expect_json(200);
    assert_eq!(sale["status"], "sold_out", "{sale}");
    assert_eq!(sale["items"][0]["sold_out"], true, "{sale}");
    assert_error(&client.order(&bob, "k", "s-last", 1).await, 409, "SOLD_OUT");

    let order_id = order["order_id"].as_str().unwrap();
    client
        .post_empty(&format!("/v1/orders/{order_id}/cancel"), &alice)
        .await
        .expect_json(200);
    let sale = client.get("/v1/sales/s-last", &bob).await.expect_json(200);
    assert_eq!(sale["status"], "live", "{sale}");
    assert_eq!(sale["items"][0]["sold_out"], false, "{sale}");
    // Bob's earlier key failed, so he may retry with it.
    client.order(&bob, "k", "s-last", 1).await.expect_json(201);
    gateway.stop().await;
}

#[tokio::test]
async fn event_stream_sends_stock_and_status_and_follows_orders_and_pauses() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client.live_sale("s-events", 10, 3).await;
    let alice = buyer_token("o_alice");

    let mut events = gateway
        .client()
        .await
        .events("/v1/sales/s-events/events", &alice)
        .await;
    assert_eq!(events.status, 200);
    let content_type = events
        .headers
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type:?}"
    );
    assert!(events.headers.contains_key("x-request-id"));

    let (mut stock, mut status): (Option<Value>, Option<Value>) = (None, None);
    while stock.is_none() || status.is_none() {
        let event = events
            .next_event()
            .await
            .expect("the stream ended before the first stock and status events");
        match event.event.as_str() {
            "stock" => stock = Some(event.json()),
            "status" => status = Some(event.json()),
            other => panic!("unexpected event {other:?}: {}", event.data),
        }
    }
    assert_eq!(
        status.unwrap(),
        json!({ "sale_id": "s-events", "status": "live" })
    );
    let stock = stock.unwrap();
    assert_eq!(stock["sale_id"], "s-events");
    assert_eq!(
        stock["items"][0],
        json!({ "sku_id": SKU, "stock": 10, "remaining": 10, "sold_out": false })
    );

    client
        .order(&alice, "k1", "s-events", 3)
        .await
        .expect_json(201);
    let stock = events.next_named("stock").await;
    assert_eq!(stock["items"][0]["remaining"], 7, "{stock}");

    client
        .sale_action("s-events", "pause")
        .await
        .expect_json(200);
    let status = events.next_named("status").await;
    assert_eq!(status["status"], "paused", "{status}");
    drop(events);
    gateway.stop().await;
}

#[tokio::test]
async fn event_stream_reports_the_end_of_the_sale_and_then_closes() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client.live_sale("s-ending", 5, 1).await;
    let mut events = gateway
        .client()
        .await
        .events("/v1/sales/s-ending/events", &buyer_token("o_viewer"))
        .await;
    assert_eq!(events.status, 200);
    assert_eq!(events.next_named("status").await["status"], "live");

    client.sale_action("s-ending", "end").await.expect_json(200);
    assert_eq!(events.next_named("status").await["status"], "ended");
    while let Some(event) = events.next_event().await {
        assert_ne!(event.event, "status", "nothing follows ended: {event:?}");
    }
    gateway.stop().await;
}

#[tokio::test]
async fn too_many_event_streams_get_503_and_a_closed_stream_frees_its_slot() {
    let gateway = TestGateway::start_with(|config| config.server.sse_streams_max = 1).await;
    let mut client = gateway.client().await;
    client.live_sale("s-slots", 5, 1).await;
    let viewer = buyer_token("o_viewer");

    let mut first = gateway
        .client()
        .await
        .events("/v1/sales/s-slots/events", &viewer)
        .await;
    assert_eq!(first.status, 200);
    first.next_named("status").await;

    let refused = client.get("/v1/sales/s-slots/events", &viewer).await;
    assert_error(&refused, 503, "OVERLOADED");
    assert!(refused.header("retry-after").is_some(), "{refused:?}");

    // The viewer leaves; a new viewer must get the slot promptly, even
    // though nothing about the sale changes meanwhile.
    drop(first);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let mut next = gateway
            .client()
            .await
            .events("/v1/sales/s-slots/events", &viewer)
            .await;
        if next.status == 200 {
            next.next_named("status").await;
            break;
        }
        assert_eq!(next.status, 503);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot of a closed event stream was still taken 3 s after the \
             client disconnected (sse_streams_max = 1)"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    gateway.stop().await;
}
