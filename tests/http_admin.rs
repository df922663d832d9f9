//! Host and ops routes over real HTTP, happy paths: create and steer sales,
//! restock, stats, order lookup with history, metrics, health and readiness.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn host_creates_a_scheduled_sale_with_201_and_the_default_hold() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    let body = json!({
        "sale_id": "s-create",
        "title": "Double 11 warm-up",
        "starts_at": "2030-11-11T20:00:00+08:00",
        "ends_at": "2030-11-11T14:00:00Z",
        "items": [
            { "sku_id": "a", "title": "Serum", "price": "199.9", "stock": 100, "per_user_limit": 2 },
            { "sku_id": "b", "title": "Mask", "price": "9", "stock": 0, "per_user_limit": 5 }
        ]
    });
    let sale = client.create_sale(&body).await.expect_json(201);
    assert_eq!(sale["sale_id"], "s-create");
    assert_eq!(sale["title"], "Double 11 warm-up");
    assert_eq!(sale["status"], "scheduled");
    assert_eq!(sale["hold_seconds"], 900, "the default hold: {sale}");
    // Times come back in UTC.
    assert_eq!(sale["starts_at"], "2030-11-11T12:00:00.000Z");
    assert_eq!(sale["ends_at"], "2030-11-11T14:00:00.000Z");
    rfc3339_ms(&sale["created_at"]);
    let items = sale["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["price"], "199.90");
    assert_eq!(items[0]["currency"], "CNY");
    assert_eq!(items[0]["remaining"], 100);
    assert_eq!(items[1]["price"], "9.00");
    assert_eq!(items[1]["sold_out"], true);

    // The storefront sees the same sale.
    let read = client
        .get("/v1/sales/s-create", &buyer_token("o_alice"))
        .await
        .expect_json(200);
    assert_eq!(read, sale);
    gateway.stop().await;
}

#[tokio::test]
async fn the_admin_role_may_do_what_host_and_ops_do() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client
        .post_json("/admin/v1/sales", ADMIN_TOKEN, &sale_body("s-admin", 5, 1))
        .await
        .expect_json(201);
    client
        .post_empty("/admin/v1/sales/s-admin/start", ADMIN_TOKEN)
        .await
        .expect_json(200);
    client
        .get("/admin/v1/sales/s-admin/stats", ADMIN_TOKEN)
        .await
        .expect_json(200);
    // host reads what ops reads.
    client
        .get("/admin/v1/sales/s-admin/stats", HOST_TOKEN)
        .await
        .expect_json(200);
    gateway.stop().await;
}

#[tokio::test]
async fn host_starts_pauses_resumes_and_ends_a_sale() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client
        .create_sale(&sale_body("s-life", 5, 1))
        .await
        .expect_json(201);
    let alice = buyer_token("o_alice");
    for (action, status) in [
        ("start", "live"),
        ("pause", "paused"),
        ("start", "live"),
        ("end", "ended"),
    ] {
        let view = client.sale_action("s-life", action).await.expect_json(200);
        assert_eq!(view["sale_id"], "s-life");
        assert_eq!(view["status"], status, "after {action}: {view}");
        let read = client
            .get("/v1/sales/s-life", &alice)
            .await
            .expect_json(200);
        assert_eq!(read["status"], status, "after {action}: {read}");
    }
    // A scheduled sale may be ended without ever going live.
    client
        .create_sale(&sale_body("s-cancelled", 5, 1))
        .await
        .expect_json(201);
    let view = client
        .sale_action("s-cancelled", "end")
        .await
        .expect_json(200);
    assert_eq!(view["status"], "ended");
    gateway.stop().await;
}

#[tokio::test]
async fn restock_adds_units_and_revives_a_sold_out_item() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client.live_sale("s-restock", 1, 1).await;
    client
        .order(&buyer_token("o_alice"), "k", "s-restock", 1)
        .await
        .expect_json(201);
    let bob = buyer_token("o_bob");
    assert_error(
        &client.order(&bob, "k", "s-restock", 1).await,
        409,
        "SOLD_OUT",
    );

    let stats = client
        .post_json(
            &format!("/admin/v1/sales/s-restock/items/{SKU}/restock"),
            HOST_TOKEN,
            &json!({ "add": 3 }),
        )
        .await
        .expect_json(200);
    assert_eq!(stats["sale_id"], "s-restock");
    let item = &stats["items"][0];
    assert_eq!(item["sku_id"], SKU);
    assert_eq!(item["stock"], 4, "{stats}");
    assert_eq!(item["remaining"], 3, "{stats}");
    assert_eq!(item["reserved"], 1, "{stats}");

    let sale = client
        .get("/v1/sales/s-restock", &bob)
        .await
        .expect_json(200);
    assert_eq!(sale["status"], "live");
    assert_eq!(sale["items"][0]["stock"], 4);
    assert_eq!(sale["items"][0]["remaining"], 3);
    client
        .order(&bob, "k", "s-restock", 1)
        .await
        .expect_json(201);
    gateway.stop().await;
}

#[tokio::test]
async fn stats_count_stock_orders_and_rejects_by_reason() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client.live_sale("s-stats", 3, 1).await;
    let (alice, bob, carol, dave) = (
        buyer_token("o_alice"),
        buyer_token("o_bob"),
        buyer_token("o_carol"),
        buyer_token("o_dave"),
    );
    let first = client
        .order(&alice, "a1", "s-stats", 1)
        .await
        .expect_json(201);
    client
        .order(&bob, "b1", "s-stats", 1)
        .await
        .expect_json(201);
    assert_error(
        &client.order(&bob, "b2", "s-stats", 1).await,
        409,
        "LIMIT_EXCEEDED",
    );
    let order_id = first["order_id"].as_str().unwrap();
    client
        .post_empty(&format!("/v1/orders/{order_id}/cancel"), &alice)
        .await
        .expect_json(200);
    client
        .order(&carol, "c1", "s-stats", 1)
        .await
        .expect_json(201);
    client
        .order(&dave, "d1", "s-stats", 1)
        .await
        .expect_json(201);
    assert_error(
        &client.order(&alice, "a2", "s-stats", 1).await,
        409,
        "SOLD_OUT",
    );
    client
        .sale_action("s-stats", "pause")
        .await
        .expect_json(200);
    assert_error(
        &client.order(&alice, "a3", "s-stats", 1).await,
        409,
        "SALE_NOT_LIVE",
    );

    let stats = client.stats("s-stats").await;
    assert_eq!(stats["sale_id"], "s-stats");
    assert_eq!(stats["status"], "paused");
    assert_eq!(
        stats["items"][0],
        json!({
            "sku_id": SKU,
            "stock": 3,
            "reserved": 3,
            "paid": 0,
            "released": 1,
            "remaining": 0,
        })
    );
    assert_eq!(
        stats["orders"],
        json!({
            "created": 4, "cancelled": 1, "expired": 0,
            "paid": 0, "refunded": 0, "reinstated": 0, "late_refunds": 0,
        })
    );
    assert_eq!(stats["rejects"]["sold_out"], 1, "{stats}");
    assert_eq!(stats["rejects"]["limit"], 1, "{stats}");
    assert_eq!(stats["rejects"]["not_live"], 1, "{stats}");
    gateway.stop().await;
}

#[tokio::test]
async fn ops_look_up_any_order_with_its_buyer_and_history() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client.live_sale("s-lookup", 5, 2).await;
    let alice = buyer_token("o_alice");
    let order = client
        .order(&alice, "k1", "s-lookup", 2)
        .await
        .expect_json(201);
    let order_id = order["order_id"].as_str().unwrap().to_owned();
    let path = format!("/admin/v1/orders/{order_id}");

    let live = client.get(&path, OPS_TOKEN).await.expect_json(200);
    for field in [
        "order_id",
        "sale_id",
        "sku_id",
        "quantity",
        "amount",
        "currency",
        "status",
        "created_at",
        "expires_at",
    ] {
        assert_eq!(live[field], order[field], "{field}: {live}");
    }
    assert_eq!(live["buyer"], "o_alice");
    let history = live["history"].as_array().expect("history");
    assert_eq!(history.len(), 1, "{live}");
    assert_eq!(history[0]["status"], "reserved");
    assert_eq!(history[0]["at"], order["created_at"]);

    client
        .post_empty(&format!("/v1/orders/{order_id}/cancel"), &alice)
        .await
        .expect_json(200);
    let done = client.get(&path, OPS_TOKEN).await.expect_json(200);
    assert_eq!(done["status"], "cancelled");
    let history = done["history"].as_array().expect("history");
    let statuses: Vec<_> = history
        .iter()
        .map(|entry| entry["status"].clone())
        .collect();
    assert_eq!(statuses, vec![json!("reserved"), json!("cancelled")]);
    assert!(rfc3339_ms(&history[1]["at"]) >= rfc3339_ms(&history[0]["at"]));
    gateway.stop().await;
}

#[tokio::test]
async fn metrics_expose_requests_stock_and_reservations_in_prometheus_text() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client.live_sale("s-metrics", 10, 1).await;
    client
        .order(&buyer_token("o_alice"), "k", "s-metrics", 1)
        .await
        .expect_json(201);

    let reply = client.get_anonymous("/metrics").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.header("x-request-id").is_some());
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = reply.text();
    for name in [
        "flashgate_http_requests_total",
        "flashgate_stock_remaining",
        "flashgate_reservations_total",
    ] {
        assert!(text.contains(name), "no {name} in:\n{text}");
    }
    let stock_line = text
        .lines()
        .find(|line| {
            line.starts_with("flashgate_stock_remaining{")
                && line.contains("sale_id=\"s-metrics\"")
                && line.contains(&format!("sku_id=\"{SKU}\""))
        })
        .unwrap_or_else(|| panic!("no stock gauge for s-metrics in:\n{text}"));
    assert!(stock_line.ends_with(" 9"), "{stock_line}");
    assert!(
        text.lines().any(|line| {
            line.starts_with("flashgate_http_requests_total{")
                && line.contains("route=\"/v1/orders\"")
                && line.contains("status=\"201\"")
        }),
        "no request counter for the order in:\n{text}"
    );
    assert!(
        text.lines().any(|line| {
            line.starts_with("flashgate_reservations_total{") && line.contains("outcome=\"ok\"")
        }),
        "no ok reservation counted in:\n{text}"
    );
    gateway.stop().await;
}

#[tokio::test]
async fn healthz_and_readyz_answer_200_without_a_token() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    let health = client.get_anonymous("/healthz").await.expect_json(200);
    assert_eq!(health, json!({ "status": "ok" }));
    let ready = client.get_anonymous("/readyz").await.expect_json(200);
    assert_eq!(ready, json!({ "status": "ready" }));
    gateway.stop().await;
}

#[tokio::test]
async fn the_session_route_tells_each_admin_token_its_role() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    for (token, role) in [
        (OPS_TOKEN, "ops"),
        (HOST_TOKEN, "host"),
        (ADMIN_TOKEN, "admin"),
    ] {
        let session = client
            .get("/admin/v1/session", token)
            .await
            .expect_json(200);
        assert_eq!(session, json!({ "role": role }));
    }
    assert_error(
        &client.get("/admin/v1/session", "not-a-known-token").await,
        401,
        "UNAUTHORIZED",
    );
    assert_error(
        &client.get_anonymous("/admin/v1/session").await,
        401,
        "UNAUTHORIZED",
    );
    // A buyer's session token is not an admin token.
    assert_error(
        &client
            .get("/admin/v1/session", &buyer_token("o_alice"))
            .await,
        401,
        "UNAUTHORIZED",
    );
    gateway.stop().await;
}

#[tokio::test]
async fn the_sale_list_shows_every_sale_newest_first_with_item_counts() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    let empty = client
        .get("/admin/v1/sales", OPS_TOKEN)
        .await
        .expect_json(200);
    assert_eq!(empty, json!({ "sales": [] }));
    client.live_sale("s-older", 5, 2).await;
    client
        .order(&buyer_token("o_alice"), "k1", "s-older", 2)
        .await
        .expect_json(201);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    client
        .create_sale(&sale_body("s-newer", 3, 1))
        .await
        .expect_json(201);

    let list = client
        .get("/admin/v1/sales", OPS_TOKEN)
        .await
        .expect_json(200);
    let sales = list["sales"].as_array().expect("sales");
    let ids: Vec<_> = sales.iter().map(|sale| sale["sale_id"].clone()).collect();
    assert_eq!(ids, [json!("s-newer"), json!("s-older")], "{list}");
    let older = &sales[1];
    assert_eq!(older["title"], "Livestream special");
    assert_eq!(older["status"], "live");
    assert_eq!(older["hold_seconds"], 60);
    rfc3339_ms(&older["created_at"]);
    assert_eq!(
        older["items"],
        json!([{
            "sku_id": SKU, "title": "Lipstick No. 7", "price": "99.00", "currency": "CNY",
            "per_user_limit": 2, "stock": 5, "reserved": 2, "paid": 0, "released": 0,
            "remaining": 3,
        }]),
        "{list}"
    );
    assert_eq!(sales[0]["status"], "scheduled");

    assert_error(
        &client.get_anonymous("/admin/v1/sales").await,
        401,
        "UNAUTHORIZED",
    );
    assert_error(
        &client.get("/admin/v1/sales", &buyer_token("o_alice")).await,
        401,
        "UNAUTHORIZED",
    );
    // ops reads the list but may not create a sale on the same path.
    assert_error(
        &client
            .post_json("/admin/v1/sales", OPS_TOKEN, &sale_body("s-ops", 1, 1))
            .await,
        403,
        "FORBIDDEN",
    );
    let refused = client
        .request(hyper::Method::PUT, "/admin/v1/sales", &[], None)
        .await;
    assert_error(&refused, 405, "INVALID_REQUEST");
    assert_eq!(refused.header("allow").as_deref(), Some("GET, POST"));
    gateway.stop().await;
}

#[tokio::test]
async fn the_stats_stream_sends_status_and_stats_as_they_change() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client.live_sale("s-stats", 4, 2).await;
    let mut stream = gateway
        .client()
        .await
        .events("/admin/v1/sales/s-stats/stats/events", OPS_TOKEN)
        .await;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.headers["content-type"], "text/event-stream");
    assert_eq!(stream.headers["cache-control"], "no-cache");
    assert!(stream.headers.contains_key("x-request-id"));
    let status = stream.next_named("status").await;
    assert_eq!(status, json!({ "sale_id": "s-stats", "status": "live" }));
    let first = stream.next_named("stats").await;
    assert_eq!(
        first,
        client.stats("s-stats").await,
        "the data is GET /stats"
    );
    assert_eq!(first["items"][0]["remaining"], 4);

    client
        .order(&buyer_token("o_alice"), "k1", "s-stats", 2)
        .await
        .expect_json(201);
    let after_order = stream.next_named("stats").await;
    assert_eq!(after_order["items"][0]["reserved"], 2, "{after_order}");
    assert_eq!(after_order["orders"]["created"], 1, "{after_order}");

    client.sale_action("s-stats", "end").await.expect_json(200);
    let ended = stream.next_named("status").await;
    assert_eq!(ended["status"], "ended");
    loop {
        match stream.next_event().await {
            None => break,
            Some(event) => assert_eq!(event.event, "stats", "only stats after ended: {event:?}"),
        }
    }
    // An ended sale has nothing more to stream.
    let reply = client
        .get("/admin/v1/sales/s-stats/stats/events", OPS_TOKEN)
        .await;
    assert_eq!(reply.status, 204, "{}", reply.text());
    gateway.stop().await;
}

#[tokio::test]
async fn the_stats_stream_checks_the_token_the_sale_and_the_stream_bound() {
    let gateway = TestGateway::start_with(|config| config.server.sse_streams_max = 1).await;
    let mut client = gateway.client().await;
    client.live_sale("s-bound", 4, 2).await;
    let path = "/admin/v1/sales/s-bound/stats/events";
    assert_error(&client.get_anonymous(path).await, 401, "UNAUTHORIZED");
    assert_error(
        &client.get(path, &buyer_token("o_alice")).await,
        401,
        "UNAUTHORIZED",
    );
    assert_error(
        &client
            .get("/admin/v1/sales/nope/stats/events", OPS_TOKEN)
            .await,
        404,
        "NOT_FOUND",
    );
    assert_error(
        &client
            .get("/admin/v1/sales/bad$id/stats/events", OPS_TOKEN)
            .await,
        400,
        "INVALID_REQUEST",
    );
    // One slot, shared with the storefront's streams.
    let mut open = gateway.client().await.events(path, HOST_TOKEN).await;
    assert_eq!(open.status, 200);
    open.next_named("stats").await;
    let refused = client
        .get("/v1/sales/s-bound/events", &buyer_token("o_alice"))
        .await;
    assert_error(&refused, 503, "OVERLOADED");
    assert!(refused.header("retry-after").is_some());
    assert_error(&client.get(path, OPS_TOKEN).await, 503, "OVERLOADED");
    drop(open);
    gateway.stop().await;
}

#[tokio::test]
async fn the_console_is_served_with_its_types_policy_and_json_404() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    let redirect = client.get_anonymous("/console").await;
    assert_eq!(redirect.status, 308);
    assert_eq!(redirect.header("location").as_deref(), Some("/console/"));
    for (path, content_type) in [
        ("/console/", "text/html; charset=utf-8"),
        ("/console/index.html", "text/html; charset=utf-8"),
        ("/console/app.js", "text/javascript; charset=utf-8"),
        ("/console/console.css", "text/css; charset=utf-8"),
        ("/console/icon.svg", "image/svg+xml"),
    ] {
        let reply = client.get_anonymous(path).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.header("content-type").as_deref(), Some(content_type));
        assert_eq!(reply.header("cache-control").as_deref(), Some("no-cache"));
        let policy = reply.header("content-security-policy").unwrap_or_default();
        assert!(
            policy.starts_with("default-src 'self';"),
            "{path}: {policy}"
        );
        assert!(!reply.body.is_empty(), "{path}");
    }
    let page = client.get_anonymous("/console/").await.text();
    assert!(page.contains("app.js") && page.contains("console.css"));
    assert_error(
        &client.get_anonymous("/console/nothing.js").await,
        404,
        "NOT_FOUND",
    );
    let refused = client
        .request(hyper::Method::POST, "/console/app.js", &[], None)
        .await;
    assert_error(&refused, 405, "INVALID_REQUEST");
    gateway.stop().await;
}
