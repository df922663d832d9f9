//! Every error code over real HTTP: the status, the JSON error body
//! `{"error":{"code","message","request_id"}}` and the `x-request-id` header.

mod common;

use common::*;
use hyper::Method;
use serde_json::json;
use std::time::Duration;

// ---- request ids ---------------------------------------------------------

#[tokio::test]
async fn a_sent_request_id_is_echoed_in_header_and_error_body() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    let reply = client
        .request(
            Method::GET,
            "/v1/sales/nope",
            &[
                ("authorization", &bearer(&buyer_token("o_alice"))),
                ("x-request-id", "trace-abc-123"),
            ],
            None,
        )
        .await;
    assert_error(&reply, 404, "NOT_FOUND");
    assert_eq!(
        reply.header("x-request-id").as_deref(),
        Some("trace-abc-123")
    );
    assert_eq!(reply.json()["error"]["request_id"], "trace-abc-123");

    let ok = client
        .request(
            Method::GET,
            "/healthz",
            &[("x-request-id", "trace-ok-1")],
            None,
        )
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("x-request-id").as_deref(), Some("trace-ok-1"));

    // Without one, the gateway makes a distinct id per request.
    let first = client.get_anonymous("/healthz").await;
    let second = client.get_anonymous("/healthz").await;
    let (first, second) = (first.header("x-request-id"), second.header("x-request-id"));
    assert!(first.as_ref().is_some_and(|id| !id.is_empty()));
    assert_ne!(first, second);
    gateway.stop().await;
}

// ---- 400 INVALID_REQUEST ---------------------------------------------------

#[tokio::test]
async fn malformed_json_is_400() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client.live_sale("s1", 10, 2).await;
    let alice = buyer_token("o_alice");
    for body in [r#"{"sale_id":"s1","#, "not json", ""] {
        let reply = client.order_body(&alice, "k", body).await;
        let message = assert_error(&reply, 400, "INVALID_REQUEST");
        assert!(
            message.contains("JSON") || message.contains("body"),
            "{body:?}: {message}"
        );
    }
    let reply = client
        .order_body(
            &alice,
            "k",
            r#"{"sale_id":"s1","sku_id":"sku-1","quantity":1} trailing"#,
        )
        .await;
    assert_error(&reply, 400, "INVALID_REQUEST");
    assert_eq!(client.remaining("s1", &alice).await, 10);
    gateway.stop().await;
}

#[tokio::test]
async fn an_order_body_that_is_not_a_json_object_is_400() {
    // The contract's body is {"sale_id","sku_id","quantity"}: an object.
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client.live_sale("s1", 10, 2).await;
    let alice = buyer_token("o_alice");
    for body in [r#"["s1","sku-1",1]"#, "[1,2]", "42", r#""s1""#, "null"] {
        let reply = client.order_body(&alice, "k", body).await;
        assert_eq!(
            reply.status,
            400,
            "the non-object body {body} was answered: {}",
            reply.text()
        );
        assert_error(&reply, 400, "INVALID_REQUEST");
    }
    assert_eq!(client.remaining("s1", &alice).await, 10);
    gateway.stop().await;
}

#[tokio::test]
async fn unknown_and_missing_fields_are_400_naming_the_field() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client.live_sale("s1", 10, 2).await;
    let alice = buyer_token("o_alice");
    // The buyer is whoever the token says, never a field of the body.
    let reply = client
        .order_body(
            &alice,
            "k",
            r#"{"sale_id":"s1","sku_id":"sku-1","quantity":1,"buyer":"o_bob"}"#,
        )
        .await;
    let message = assert_error(&reply, 400, "INVALID_REQUEST");
    assert!(message.contains("buyer"), "{message}");

    let reply = client
        .order_body(&alice, "k", r#"{"sale_id":"s1","quantity":1}"#)
        .await;
    let message = assert_error(&reply, 400, "INVALID_REQUEST");
    assert!(message.contains("sku_id"), "{message}");

    let reply = client
        .order_body(
            &alice,
            "k",
            r#"{"sale_id":"s1","sku_id":"sku-1","quantity":"2"}"#,
        )
        .await;
    let message = assert_error(&reply, 400, "INVALID_REQUEST");
    assert!(message.contains("quantity"), "{message}");

    let mut body = sale_body("s2", 1, 1);
    body["items"][0]["colour"] = json!("red");
    let message = assert_error(&client.create_sale(&body).await, 400, "INVALID_REQUEST");
    assert!(message.contains("colour"), "{message}");
    gateway.stop().await;
}

#[tokio::test]
async fn bad_ids_in_path_or_body_are_400_naming_the_id() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client.live_sale("s1", 10, 2).await;
    let alice = buyer_token("o_alice");
    let too_long = "x".repeat(33);
    for path in [
        format!("/v1/sales/{too_long}"),
        "/v1/sales/bad%20id".to_owned(),
        "/v1/sales/bad$id/events".to_owned(),
    ] {
        let message = assert_error(&client.get(&path, &alice).await, 400, "INVALID_REQUEST");
        assert!(message.contains("sale_id"), "{path}: {message}");
    }
    let message = assert_error(
        &client.get("/admin/v1/sales/bad!id/stats", OPS_TOKEN).await,
        400,
        "INVALID_REQUEST",
    );
    assert!(message.contains("sale_id"), "{message}");
    for path in ["/v1/orders/short", "/v1/orders/has.dot.inside"] {
        let message = assert_error(&client.get(path, &alice).await, 400, "INVALID_REQUEST");
        assert!(message.contains("order_id"), "{path}: {message}");
    }
    let body = json!({ "sale_id": too_long, "sku_id": SKU, "quantity": 1 }).to_string();
    let message = assert_error(
        &client.order_body(&alice, "k", &body).await,
        400,
        "INVALID_REQUEST",
    );
    assert!(message.contains("sale_id"), "{message}");
    let body = json!({ "sale_id": "s1", "sku_id": "sku 1", "quantity": 1 }).to_string();
    let message = assert_error(
        &client.order_body(&alice, "k", &body).await,
        400,
        "INVALID_REQUEST",
    );
    assert!(message.contains("sku_id"), "{message}");
    gateway.stop().await;
}

#[tokio::test]
async fn quantity_below_one_or_above_the_limit_is_400_naming_quantity() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client.live_sale("s1", 10, 2).await;
    let alice = buyer_token("o_alice");
    for quantity in [0, -1, 3, 4_294_967_297] {
        let reply = client.order(&alice, "k", "s1", quantity).await;
        let message = assert_error(&reply, 400, "INVALID_REQUEST");
        assert!(
            message.contains("quantity"),
            "quantity {quantity}: {message}"
        );
    }
    let reply = client
        .order_body(
            &alice,
            "k",
            r#"{"sale_id":"s1","sku_id":"sku-1","quantity":1.5}"#,
        )
        .await;
    let message = assert_error(&reply, 400, "INVALID_REQUEST");
    assert!(message.contains("quantity"), "{message}");
    // None of them took stock or spent the key.
    assert_eq!(client.remaining("s1", &alice).await, 10);
    client.order(&alice, "k", "s1", 2).await.expect_json(201);
    gateway.stop().await;
}

#[tokio::test]
async fn a_missing_or_invalid_idempotency_key_is_400_naming_the_header() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client.live_sale("s1", 10, 2).await;
    let auth = bearer(&buyer_token("o_alice"));
    let body = json!({ "sale_id": "s1", "sku_id": SKU, "quantity": 1 }).to_string();
    let long_key = "k".repeat(65);
    let cases: [&[(&str, &str)]; 3] = [
        &[("authorization", &auth)],
        &[("authorization", &auth), ("idempotency-key", &long_key)],
        &[("authorization", &auth), ("idempotency-key", "has space")],
    ];
    for headers in cases {
        let reply = client
            .request(Method::POST, "/v1/orders", headers, Some(body.as_bytes()))
            .await;
        let message = assert_error(&reply, 400, "INVALID_REQUEST");
        assert!(message.contains("Idempotency-Key"), "{message}");
    }
    assert_eq!(client.remaining("s1", OPS_TOKEN).await, 10);
    gateway.stop().await;
}

#[tokio::test]
async fn invalid_sale_definitions_and_restocks_are_400_naming_the_field() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    let mut body = sale_body("s1", 5, 1);
    body["hold_seconds"] = json!(59);
    let message = assert_error(&client.create_sale(&body).await, 400, "INVALID_REQUEST");
    assert!(message.contains("hold_seconds"), "{message}");

    let mut body = sale_body("s1", 5, 1);
    body["items"][0]["price"] = json!("1.005");
    let message = assert_error(&client.create_sale(&body).await, 400, "INVALID_REQUEST");
    assert!(message.contains("items[0].price"), "{message}");

    let mut body = sale_body("s1", 5, 1);
    body["starts_at"] = json!("tomorrow");
    let message = assert_error(&client.create_sale(&body).await, 400, "INVALID_REQUEST");
    assert!(message.contains("starts_at"), "{message}");

    client
        .create_sale(&sale_body("s1", 5, 1))
        .await
        .expect_json(201);
    let path = format!("/admin/v1/sales/s1/items/{SKU}/restock");
    let message = assert_error(
        &client
            .post_json(&path, HOST_TOKEN, &json!({ "add": 0 }))
            .await,
        400,
        "INVALID_REQUEST",
    );
    assert!(message.contains("add"), "{message}");
    gateway.stop().await;
}

// ---- 401 UNAUTHORIZED ------------------------------------------------------

#[tokio::test]
async fn requests_without_a_token_are_401() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client.live_sale("s1", 10, 2).await;
    let body = json!({ "sale_id": "s1", "sku_id": SKU, "quantity": 1 }).to_string();
    let reply = client
        .request(
            Method::POST,
            "/v1/orders",
            &[("idempotency-key", "k")],
            Some(body.as_bytes()),
        )
        .await;
    assert_error(&reply, 401, "UNAUTHORIZED");
    for path in [
        "/v1/sales/s1",
        "/v1/sales/s1/events",
        "/v1/orders/FG0000000000000000000001",
        "/admin/v1/sales/s1/stats",
    ] {
        assert_error(&client.get_anonymous(path).await, 401, "UNAUTHORIZED");
    }
    // Not a bearer token.
    let reply = client
        .request(
            Method::GET,
            "/v1/sales/s1",
            &[("authorization", "Basic YWxpY2U6c2VjcmV0")],
            None,
        )
        .await;
    assert_error(&reply, 401, "UNAUTHORIZED");
    let reply = client
        .request(
            Method::POST,
            "/admin/v1/sales",
            &[],
            Some(sale_body("s2", 1, 1).to_string().as_bytes()),
        )
        .await;
    assert_error(&reply, 401, "UNAUTHORIZED");
    assert_eq!(client.remaining("s1", OPS_TOKEN).await, 10);
    gateway.stop().await;
}

#[tokio::test]
async fn forged_expired_and_malformed_session_tokens_are_401() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client.live_sale("s1", 10, 2).await;
    let forged = forged_buyer_token("o_alice");
    let message = assert_error(
        &client.order(&forged, "k", "s1", 1).await,
        401,
        "UNAUTHORIZED",
    );
    assert!(message.contains("signature"), "{message}");
    let expired = expired_buyer_token("o_alice");
    let message = assert_error(
        &client.order(&expired, "k", "s1", 1).await,
        401,
        "UNAUTHORIZED",
    );
    assert!(message.contains("expired"), "{message}");
    assert_error(
        &client.get("/v1/sales/s1", &expired).await,
        401,
        "UNAUTHORIZED",
    );
    // A tampered payload: another buyer's claims under alice's signature.
    let alice = buyer_token("o_alice");
    let bob = buyer_token("o_bob");
    let alice_parts: Vec<_> = alice.split('.').collect();
    let bob_parts: Vec<_> = bob.split('.').collect();
    let tampered = format!("{}.{}.{}", alice_parts[0], bob_parts[1], alice_parts[2]);
    assert_error(
        &client.order(&tampered, "k", "s1", 1).await,
        401,
        "UNAUTHORIZED",
    );
    assert_error(
        &client.order("a.b.c", "k", "s1", 1).await,
        401,
        "UNAUTHORIZED",
    );
    // An admin token is no buyer.
    assert_error(
        &client.order(HOST_TOKEN, "k", "s1", 1).await,
        401,
        "UNAUTHORIZED",
    );
    assert_eq!(client.remaining("s1", OPS_TOKEN).await, 10);
    gateway.stop().await;
}

#[tokio::test]
async fn unknown_admin_tokens_are_401() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client
        .create_sale(&sale_body("s1", 5, 1))
        .await
        .expect_json(201);
    let message = assert_error(
        &client
            .post_json(
                "/admin/v1/sales",
                "not-a-real-token",
                &sale_body("s2", 1, 1),
            )
            .await,
        401,
        "UNAUTHORIZED",
    );
    assert!(message.contains("admin token"), "{message}");
    assert_error(
        &client
            .post_empty("/admin/v1/sales/s1/start", "dev-host-token-x")
            .await,
        401,
        "UNAUTHORIZED",
    );
    assert_error(
        &client
            .get("/admin/v1/sales/s1/stats", "nobody-knows-me")
            .await,
        401,
        "UNAUTHORIZED",
    );
    // A storefront session is no admin.
    assert_error(
        &client
            .get("/admin/v1/sales/s1/stats", &buyer_token("o_alice"))
            .await,
        401,
        "UNAUTHORIZED",
    );
    assert_error(
        &client.get("/v1/sales/s1", "not-a-real-token").await,
        401,
        "UNAUTHORIZED",
    );
    gateway.stop().await;
}

// ---- 403 FORBIDDEN ---------------------------------------------------------

#[tokio::test]
async fn the_ops_role_may_not_create_start_or_restock_sales() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    let message = assert_error(
        &client
            .post_json("/admin/v1/sales", OPS_TOKEN, &sale_body("s1", 5, 1))
            .await,
        403,
        "FORBIDDEN",
    );
    assert!(message.contains("ops"), "{message}");
    client
        .create_sale(&sale_body("s1", 5, 1))
        .await
        .expect_json(201);
    for action in ["start", "pause", "end"] {
        assert_error(
            &client
                .post_empty(&format!("/admin/v1/sales/s1/{action}"), OPS_TOKEN)
                .await,
            403,
            "FORBIDDEN",
        );
    }
    assert_error(
        &client
            .post_json(
                &format!("/admin/v1/sales/s1/items/{SKU}/restock"),
                OPS_TOKEN,
                &json!({ "add": 1 }),
            )
            .await,
        403,
        "FORBIDDEN",
    );
    let sale = client.get("/v1/sales/s1", OPS_TOKEN).await.expect_json(200);
    assert_eq!(sale["status"], "scheduled");
    assert_eq!(sale["items"][0]["stock"], 5);
    gateway.stop().await;
}

// ---- 404 NOT_FOUND ---------------------------------------------------------

#[tokio::test]
async fn unknown_sales_items_orders_and_routes_are_404() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client.live_sale("s1", 5, 1).await;
    let alice = buyer_token("o_alice");
    assert_error(
        &client.get("/v1/sales/nope", &alice).await,
        404,
        "NOT_FOUND",
    );
    assert_error(
        &client.get("/v1/sales/nope/events", &alice).await,
        404,
        "NOT_FOUND",
    );
    assert_error(
        &client.order(&alice, "k1", "nope", 1).await,
        404,
        "NOT_FOUND",
    );
    let body = json!({ "sale_id": "s1", "sku_id": "no-such-sku", "quantity": 1 }).to_string();
    assert_error(
        &client.order_body(&alice, "k2", &body).await,
        404,
        "NOT_FOUND",
    );
    let unknown_order = "FG0000000000000000000001";
    assert_error(
        &client
            .get(&format!("/v1/orders/{unknown_order}"), &alice)
            .await,
        404,
        "NOT_FOUND",
    );
    assert_error(
        &client
            .post_empty(&format!("/v1/orders/{unknown_order}/cancel"), &alice)
            .await,
        404,
        "NOT_FOUND",
    );
    assert_error(
        &client
            .get(&format!("/admin/v1/orders/{unknown_order}"), OPS_TOKEN)
            .await,
        404,
        "NOT_FOUND",
    );
    assert_error(&client.start_sale("nope").await, 404, "NOT_FOUND");
    assert_error(
        &client.get("/admin/v1/sales/nope/stats", OPS_TOKEN).await,
        404,
        "NOT_FOUND",
    );
    assert_error(
        &client
            .post_json(
                "/admin/v1/sales/s1/items/nope/restock",
                HOST_TOKEN,
                &json!({ "add": 1 }),
            )
            .await,
        404,
        "NOT_FOUND",
    );
    for path in ["/v1/nothing", "/", "/v2/sales/s1", "/v1/sales/s1/events/x"] {
        assert_error(&client.get_anonymous(path).await, 404, "NOT_FOUND");
    }
    gateway.stop().await;
}

#[tokio::test]
async fn another_buyers_order_is_404_like_an_unknown_one() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client.live_sale("s1", 5, 1).await;
    let (alice, mallory) = (buyer_token("o_alice"), buyer_token("o_mallory"));
    let order = client.order(&alice, "k", "s1", 1).await.expect_json(201);
    let order_id = order["order_id"].as_str().unwrap();

    let read = client
        .get(&format!("/v1/orders/{order_id}"), &mallory)
        .await;
    let message = assert_error(&read, 404, "NOT_FOUND");
    assert!(!message.contains("o_alice"), "{message}");
    let cancel = client
        .post_empty(&format!("/v1/orders/{order_id}/cancel"), &mallory)
        .await;
    assert_error(&cancel, 404, "NOT_FOUND");
    // Same answer as for an order that does not exist, bar the id.
    let unknown = client
        .get("/v1/orders/FG0000000000000000000999", &mallory)
        .await;
    let unknown_message = assert_error(&unknown, 404, "NOT_FOUND");
    assert_eq!(
        message.replace(order_id, "ID"),
        unknown_message.replace("FG0000000000000000000999", "ID")
    );

    let still = client
        .get(&format!("/v1/orders/{order_id}"), &alice)
        .await
        .expect_json(200);
    assert_eq!(still["status"], "reserved");
    gateway.stop().await;
}

// ---- 405 -------------------------------------------------------------------

#[tokio::test]
async fn a_wrong_method_on_a_known_path_is_405() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    let auth = bearer(HOST_TOKEN);
    for (method, path, allowed) in [
        (Method::GET, "/v1/orders", "POST"),
        (Method::DELETE, "/v1/sales/s1", "GET"),
        (Method::POST, "/v1/sales/s1", "GET"),
        (Method::GET, "/admin/v1/sales/s1/start", "POST"),
        (Method::PUT, "/admin/v1/sales", "GET, POST"),
        (Method::POST, "/healthz", "GET"),
    ] {
        let reply = client
            .request(method.clone(), path, &[("authorization", &auth)], None)
            .await;
        assert_eq!(reply.status, 405, "{method} {path}: {}", reply.text());
        let message = assert_error(&reply, 405, "INVALID_REQUEST");
        assert!(message.contains(allowed), "{method} {path}: {message}");
    }
    gateway.stop().await;
}

#[tokio::test]
async fn a_405_answer_lists_the_allowed_method_in_an_allow_header() {
    // RFC 9110 §15.5.6: a 405 response MUST carry Allow.
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    let reply = client.request(Method::GET, "/v1/orders", &[], None).await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow").as_deref(), Some("POST"), "{reply:?}");
    let reply = client
        .request(Method::DELETE, "/v1/sales/s1", &[], None)
        .await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow").as_deref(), Some("GET"), "{reply:?}");
    gateway.stop().await;
}

// ---- 409 -------------------------------------------------------------------

#[tokio::test]
async fn ordering_from_a_scheduled_paused_or_ended_sale_is_409_sale_not_live() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client
        .create_sale(&sale_body("s1", 5, 1))
        .await
        .expect_json(201);
    let alice = buyer_token("o_alice");
    let message = assert_error(
        &client.order(&alice, "k", "s1", 1).await,
        409,
        "SALE_NOT_LIVE",
    );
    assert!(message.contains("scheduled"), "{message}");
    client.start_sale("s1").await.expect_json(200);
    client.sale_action("s1", "pause").await.expect_json(200);
    let message = assert_error(
        &client.order(&alice, "k", "s1", 1).await,
        409,
        "SALE_NOT_LIVE",
    );
    assert!(message.contains("paused"), "{message}");
    client.sale_action("s1", "end").await.expect_json(200);
    let message = assert_error(
        &client.order(&alice, "k", "s1", 1).await,
        409,
        "SALE_NOT_LIVE",
    );
    assert!(message.contains("ended"), "{message}");
    assert_eq!(client.remaining("s1", &alice).await, 5);
    gateway.stop().await;
}

#[tokio::test]
async fn a_live_sale_past_its_ends_at_is_409_sale_not_live() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    let mut body = sale_body("s1", 5, 1);
    let ends_at = flashgate::clock::format_rfc3339(now_ms() + 600);
    body["ends_at"] = json!(ends_at);
    client.create_sale(&body).await.expect_json(201);
    client.start_sale("s1").await.expect_json(200);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let alice = buyer_token("o_alice");
    assert_error(
        &client.order(&alice, "k", "s1", 1).await,
        409,
        "SALE_NOT_LIVE",
    );
    let sale = client.get("/v1/sales/s1", &alice).await.expect_json(200);
    assert_eq!(sale["status"], "ended");
    gateway.stop().await;
}

#[tokio::test]
async fn ordering_beyond_the_stock_is_409_sold_out() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client.live_sale("s1", 3, 2).await;
    let (alice, bob) = (buyer_token("o_alice"), buyer_token("o_bob"));
    client.order(&alice, "k", "s1", 2).await.expect_json(201);
    // One unit left: two are more than the stock.
    let message = assert_error(&client.order(&bob, "k1", "s1", 2).await, 409, "SOLD_OUT");
    assert!(!message.is_empty());
    client.order(&bob, "k2", "s1", 1).await.expect_json(201);
    assert_error(
        &client.order(&buyer_token("o_carol"), "k", "s1", 1).await,
        409,
        "SOLD_OUT",
    );
    let stats = client.stats("s1").await;
    assert_eq!(stats["items"][0]["remaining"], 0);
    assert_eq!(stats["items"][0]["reserved"], 3);
    gateway.stop().await;
}

#[tokio::test]
async fn ordering_beyond_the_per_user_limit_is_409_limit_exceeded() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client.live_sale("s1", 10, 2).await;
    let alice = buyer_token("o_alice");
    client.order(&alice, "k1", "s1", 1).await.expect_json(201);
    let message = assert_error(
        &client.order(&alice, "k2", "s1", 2).await,
        409,
        "LIMIT_EXCEEDED",
    );
    assert!(message.contains('2'), "names the limit: {message}");
    client.order(&alice, "k3", "s1", 1).await.expect_json(201);
    assert_error(
        &client.order(&alice, "k4", "s1", 1).await,
        409,
        "LIMIT_EXCEEDED",
    );
    assert_eq!(client.remaining("s1", &alice).await, 8);
    gateway.stop().await;
}

#[tokio::test]
async fn illegal_transitions_are_409_invalid_state() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client.live_sale("s1", 10, 2).await;
    // Start a live sale.
    assert_error(&client.start_sale("s1").await, 409, "INVALID_STATE");
    // Duplicate sale_id.
    let message = assert_error(
        &client.create_sale(&sale_body("s1", 10, 2)).await,
        409,
        "INVALID_STATE",
    );
    assert!(message.contains("s1"), "{message}");
    // Cancel a cancelled order.
    let alice = buyer_token("o_alice");
    let order = client.order(&alice, "k", "s1", 1).await.expect_json(201);
    let cancel = format!("/v1/orders/{}/cancel", order["order_id"].as_str().unwrap());
    client.post_empty(&cancel, &alice).await.expect_json(200);
    assert_error(
        &client.post_empty(&cancel, &alice).await,
        409,
        "INVALID_STATE",
    );
    assert_eq!(client.remaining("s1", &alice).await, 10, "returned once");
    // Pause a scheduled sale.
    client
        .create_sale(&sale_body("s2", 10, 2))
        .await
        .expect_json(201);
    assert_error(
        &client.sale_action("s2", "pause").await,
        409,
        "INVALID_STATE",
    );
    // Restock, start or end an ended sale.
    client.sale_action("s1", "end").await.expect_json(200);
    let restock = format!("/admin/v1/sales/s1/items/{SKU}/restock");
    assert_error(
        &client
            .post_json(&restock, HOST_TOKEN, &json!({ "add": 5 }))
            .await,
        409,
        "INVALID_STATE",
    );
    assert_error(&client.start_sale("s1").await, 409, "INVALID_STATE");
    assert_error(&client.sale_action("s1", "end").await, 409, "INVALID_STATE");
    let stats = client.stats("s1").await;
    assert_eq!(stats["items"][0]["stock"], 10);
    gateway.stop().await;
}

// ---- 413 PAYLOAD_TOO_LARGE -------------------------------------------------

fn order_head(extra: &[String]) -> String {
    let mut lines = vec![
        format!("authorization: Bearer {}", buyer_token("o_alice")),
        "idempotency-key: big".to_owned(),
        "content-type: application/json".to_owned(),
    ];
    lines.extend_from_slice(extra);
    raw_head("POST", "/v1/orders", &lines)
}

/// A valid order body padded with spaces to exactly `size` bytes.
fn padded_order(size: usize) -> Vec<u8> {
    let mut body = json!({ "sale_id": "s1", "sku_id": SKU, "quantity": 1 })
        .to_string()
        .into_bytes();
    body.resize(size, b' ');
    body
}

#[tokio::test]
async fn a_body_over_16_kib_with_content_length_is_413() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client.live_sale("s1", 10, 2).await;
    let body = padded_order(16 * 1024 + 1);
    let mut stream = raw_connect(gateway.addr).await;
    let head = order_head(&[format!("content-length: {}", body.len())]);
    raw_write(&mut stream, head.as_bytes()).await;
    raw_write(&mut stream, &body).await;
    let reply = raw_read_response(&mut stream).await;
    let message = assert_error(&reply, 413, "PAYLOAD_TOO_LARGE");
    assert!(message.contains("16384"), "{message}");
    assert_eq!(client.remaining("s1", OPS_TOKEN).await, 10);
    gateway.stop().await;
}

#[tokio::test]
async fn a_chunked_body_over_16_kib_is_413() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client.live_sale("s1", 10, 2).await;
    let body = padded_order(20_000);
    let mut stream = raw_connect(gateway.addr).await;
    let head = order_head(&["transfer-encoding: chunked".to_owned()]);
    let mut wire = head.into_bytes();
    for chunk in body.chunks(4000) {
        wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        wire.extend_from_slice(chunk);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    raw_write(&mut stream, &wire).await;
    let reply = raw_read_response(&mut stream).await;
    assert_error(&reply, 413, "PAYLOAD_TOO_LARGE");
    assert_eq!(client.remaining("s1", OPS_TOKEN).await, 10);
    gateway.stop().await;
}

#[tokio::test]
async fn a_body_of_exactly_16_kib_is_accepted() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client.live_sale("s1", 10, 2).await;
    let body = padded_order(16 * 1024);
    let auth = bearer(&buyer_token("o_alice"));
    let reply = client
        .request(
            Method::POST,
            "/v1/orders",
            &[("authorization", &auth), ("idempotency-key", "k")],
            Some(&body),
        )
        .await;
    reply.expect_json(201);
    gateway.stop().await;
}

// ---- 422 IDEMPOTENCY_CONFLICT ----------------------------------------------

#[tokio::test]
async fn reusing_an_idempotency_key_with_another_body_is_422() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    client.live_sale("s1", 10, 3).await;
    let alice = buyer_token("o_alice");
    let order = client.order(&alice, "once", "s1", 1).await.expect_json(201);
    let message = assert_error(
        &client.order(&alice, "once", "s1", 2).await,
        422,
        "IDEMPOTENCY_CONFLICT",
    );
    assert!(message.contains("Idempotency-Key"), "{message}");
    assert_eq!(client.remaining("s1", &alice).await, 9);
    // The key still answers its own body.
    let replay = client.order(&alice, "once", "s1", 1).await.expect_json(200);
    assert_eq!(replay["order_id"], order["order_id"]);
    gateway.stop().await;
}

// ---- 503 OVERLOADED --------------------------------------------------------

#[tokio::test]
async fn beyond_requests_in_flight_max_requests_get_503_with_retry_after() {
    let gateway = TestGateway::start_with(|config| {
        config.server.requests_in_flight_max = 1;
        config.server.retry_after_seconds = 2;
    })
    .await;
    let mut client = gateway.client().await;
    client.live_sale("s1", 10, 2).await;

    // Hold one order in flight: the head and half of its body.
    let body = json!({ "sale_id": "s1", "sku_id": SKU, "quantity": 1 }).to_string();
    let (first_half, second_half) = body.as_bytes().split_at(body.len() / 2);
    let mut slow = raw_connect(gateway.addr).await;
    let head = order_head(&[format!("content-length: {}", body.len())]);
    raw_write(&mut slow, head.as_bytes()).await;
    raw_write(&mut slow, first_half).await;
    // Scrapes bypass admission: wait until the held order is in flight, so
    // no request below races it for the one place (the held one would be
    // refused instead, and nothing would be held).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let metrics = client.get_anonymous("/metrics").await.text();
        if metrics.contains("\nflashgate_http_requests_in_flight 1\n") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the held order never showed in flight:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let shed = loop {
        let reply = client
            .request(
                Method::GET,
                "/v1/sales/s1",
                &[
                    ("x-request-id", "shed-me"),
                    ("authorization", &format!("Bearer {OPS_TOKEN}")),
                ],
                None,
            )
            .await;
        if reply.status == 503 {
            break reply;
        }
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert!(
            tokio::time::Instant::now() < deadline,
            "a second request was never refused while one was in flight"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_error(&shed, 503, "OVERLOADED");
    assert_eq!(shed.header("retry-after").as_deref(), Some("2"));
    assert_eq!(shed.header("x-request-id").as_deref(), Some("shed-me"));
    let order_refused = client.order(&buyer_token("o_bob"), "k", "s1", 1).await;
    assert_error(&order_refused, 503, "OVERLOADED");
    // Probes and scrapes bypass admission: a busy node is not a dead one.
    client.get_anonymous("/healthz").await.expect_json(200);
    client.get_anonymous("/readyz").await.expect_json(200);

    // The held request completes, and the gateway serves again.
    raw_write(&mut slow, second_half).await;
    let reply = raw_read_response(&mut slow).await;
    let order = reply.expect_json(201);
    assert_eq!(order["status"], "reserved");
    client.get_anonymous("/healthz").await.expect_json(200);
    // Bob's refused order left nothing behind: his key works.
    client
        .order(&buyer_token("o_bob"), "k", "s1", 1)
        .await
        .expect_json(201);
    assert_eq!(client.remaining("s1", OPS_TOKEN).await, 8);
    gateway.stop().await;
}
