//! The payment flow end to end over real HTTP: a gateway configured with
//! merchant credentials exactly as for WeChat Pay, pointed at the WeChat
//! Pay simulator running as a separate server with its own keys. The test
//! plays the buyer (the storefront API and the simulator's "confirm
//! payment") and the operator; the simulator plays WeChat Pay, notifying
//! the gateway with signed, encrypted notifications on its retry schedule
//! (time-scaled).

mod common;

use common::*;
use flashgate::config::Config;
use flashgate::pay::crypto::{
    nonce_str, pay_sign_message, random_alphanumeric, response_message, ApiV3Key, RsaSigner,
    RsaVerifier,
};
use flashgate::pay::sim::{
    DeliveryKind, FailNext, Faults, PlantedPayment, SimConfig, SimHandle, Simulator,
};
use flashgate::pay::wire::TradeState;
use serde_json::{json, Value};
use std::future::Future;
use std::time::Duration;

const MCHID: &str = "1900000109";
const APPID: &str = "wxd678efh567hg6787";
const APIV3_KEY: &str = "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb";
const MERCHANT_SERIAL: &str = "5F1C72E2A8931B72A2E13AF8DEE92471EB397115";
const PUBLIC_KEY_ID: &str = "PUB_KEY_ID_0000000000000024101100397200000006";

/// A simulator and a gateway that pays through it.
struct World {
    sim: SimHandle,
    gateway: TestGateway,
    merchant_public_key: String,
    /// The simulator's platform key, to forge notifications with.
    platform: RsaSigner,
    /// Holds the keys and the data dir; removed on drop.
    _scratch: Scratch,
}

impl World {
    async fn start(faults: Faults) -> World {
        World::start_with(faults, |_| {}).await
    }

    async fn start_with(faults: Faults, tweak: impl FnOnce(&mut Config)) -> World {
        let scratch = Scratch::new("pay");
        std::fs::create_dir_all(&scratch.0).unwrap();
        let merchant = RsaSigner::generate().unwrap();
        let merchant_public_key = merchant.public_key_pem().unwrap();
        let platform_pem = RsaSigner::generate().unwrap().private_key_pem().unwrap();
        let sim = within(
            "the simulator to start",
            Simulator::start(SimConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                mchid: MCHID.into(),
                appid: APPID.into(),
                apiv3_key: APIV3_KEY.into(),
                merchant_serial_no: MERCHANT_SERIAL.into(),
                merchant_public_key_pem: merchant_public_key.clone(),
                platform_signer: RsaSigner::from_pkcs8_pem(&platform_pem).unwrap(),
                public_key_id: PUBLIC_KEY_ID.into(),
                time_scale: 0.001,
                faults,
            }),
        )
        .await
        .expect("the simulator starts");
        let key_file = scratch.0.join("apiclient_key.pem");
        let public_key_file = scratch.0.join("wxp_pub.pem");
        std::fs::write(&key_file, merchant.private_key_pem().unwrap()).unwrap();
        std::fs::write(&public_key_file, sim.public_key_pem()).unwrap();
        let port = free_port();
        let data_dir = scratch.data_dir();
        let base_url = sim.base_url();
        let gateway = TestGateway::start_with(|config| {
            config.server.listen = format!("127.0.0.1:{port}");
            config.storage.data_dir = data_dir;
            let pay = &mut config.pay;
            pay.mchid = MCHID.into();
            pay.appid = APPID.into();
            pay.merchant_serial_no = MERCHANT_SERIAL.into();
            pay.merchant_private_key_file = key_file;
            pay.apiv3_key = APIV3_KEY.into();
            pay.wechatpay_public_key_id = PUBLIC_KEY_ID.into();
            pay.wechatpay_public_key_file = public_key_file;
            pay.base_url = base_url;
            pay.backup_base_url = String::new();
            pay.notify_url = format!("http://127.0.0.1:{port}/v1/payments/wechat/notify");
            pay.timeout_ms = 2000;
            pay.reconcile_interval_seconds = 1;
            pay.paying_query_after_seconds = 1;
            config.sale.hold_seconds_min = 1;
            config.sale.hold_tick_ms = 50;
            tweak(config);
        })
        .await;
        World {
            sim,
            gateway,
            merchant_public_key,
            platform: RsaSigner::from_pkcs8_pem(&platform_pem).unwrap(),
            _scratch: scratch,
        }
    }

    async fn client(&self) -> Client {
        self.gateway.client().await
    }

    async fn stop(self) {
        self.gateway.stop().await;
        self.sim.shutdown().await;
    }
}

/// A live one-item sale with its own hold time.
async fn live_sale(client: &mut Client, sale_id: &str, stock: i64, hold_seconds: u32) {
    let mut body = sale_body(sale_id, stock, 5);
    body["hold_seconds"] = json!(hold_seconds);
    client.create_sale(&body).await.expect_json(201);
    client.start_sale(sale_id).await.expect_json(200);
}

async fn place(client: &mut Client, buyer: &str, sale_id: &str) -> String {
    let order = client
        .order(&buyer_token(buyer), &format!("key-{buyer}"), sale_id, 1)
        .await
        .expect_json(201);
    order["order_id"].as_str().expect("order_id").to_owned()
}

async fn pay(client: &mut Client, buyer: &str, order_id: &str) -> Value {
    client
        .post_empty(&format!("/v1/orders/{order_id}/pay"), &buyer_token(buyer))
        .await
        .expect_json(200)
}

/// Pays and returns the prepay id.
async fn prepay_id(client: &mut Client, buyer: &str, order_id: &str) -> String {
    let params = pay(client, buyer, order_id).await;
    params["prepay_id"].as_str().expect("prepay_id").to_owned()
}

async fn order_status(client: &mut Client, order_id: &str) -> Value {
    client
        .get(&format!("/admin/v1/orders/{order_id}"), ADMIN_TOKEN)
        .await
        .expect_json(200)
}

/// Polls `check` until it returns `Some`, failing the test after [`WAIT`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    within(what, async {
        loop {
            if let Some(value) = check().await {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

async fn wait_for_status(world: &World, order_id: &str, status: &str) -> Value {
    let addr = world.gateway.addr;
    eventually(
        &format!("order {order_id} to become {status}"),
        || async move {
            let mut client = Client::connect(addr).await;
            let order = order_status(&mut client, order_id).await;
            (order["status"] == status).then_some(order)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_pays_and_the_notification_makes_the_order_paid_once() {
    let world = World::start(Faults::default()).await;
    let mut client = world.client().await;
    live_sale(&mut client, "pay-basic", 10, 900).await;
    let order_id = place(&mut client, "buyer-1", "pay-basic").await;

    let params = pay(&mut client, "buyer-1", &order_id).await;
    let prepay_id = params["prepay_id"].as_str().unwrap().to_owned();
    let payment = &params["payment"];
    assert_eq!(payment["package"], format!("prepay_id={prepay_id}"));
    assert_eq!(payment["signType"], "RSA");
    assert_eq!(payment["appId"], APPID);
    // The paySign verifies with the merchant's key over the four lines.
    let message = pay_sign_message(
        APPID,
        payment["timeStamp"].as_str().unwrap().parse().unwrap(),
        payment["nonceStr"].as_str().unwrap(),
        payment["package"].as_str().unwrap(),
    );
    let merchant = RsaVerifier::from_spki_pem(&world.merchant_public_key).unwrap();
    assert!(merchant.verify(&message, payment["paySign"].as_str().unwrap()));
    assert_eq!(
        order_status(&mut client, &order_id).await["status"],
        "paying"
    );

    // Paying again reuses the prepay.
    let again = pay(&mut client, "buyer-1", &order_id).await;
    assert_eq!(again["prepay_id"], prepay_id.as_str());
    // Another buyer cannot pay it.
    let other = client
        .post_empty(
            &format!("/v1/orders/{order_id}/pay"),
            &buyer_token("buyer-2"),
        )
        .await;
    assert_error(&other, 404, "NOT_FOUND");

    world.sim.pay(&prepay_id).expect("the buyer confirms");
    let order = wait_for_status(&world, &order_id, "paid").await;
    assert!(order["transaction_id"].as_str().is_some(), "{order}");
    let stats = client.stats("pay-basic").await;
    assert_eq!(stats["items"][0]["paid"], 1, "{stats}");
    // Paying a paid order is refused.
    let late = client
        .post_empty(
            &format!("/v1/orders/{order_id}/pay"),
            &buyer_token("buyer-1"),
        )
        .await;
    assert_error(&late, 409, "INVALID_STATE");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_notifications_are_answered_and_change_nothing() {
    let faults = Faults {
        duplicate_notification_rate: 1.0,
        ..Faults::default()
    };
    let world = World::start(faults).await;
    let mut client = world.client().await;
    live_sale(&mut client, "pay-dup", 10, 900).await;
    let order_id = place(&mut client, "buyer-1", "pay-dup").await;
    let prepay_id = prepay_id(&mut client, "buyer-1", &order_id).await;
    world.sim.pay(&prepay_id).unwrap();
    wait_for_status(&world, &order_id, "paid").await;
    let answered_2xx = eventually("the duplicate to be delivered", || async {
        let ok = world
            .sim
            .deliveries()
            .iter()
            .filter(|delivery| delivery.out_trade_no == order_id && delivery.outcome.is_success())
            .count();
        (ok >= 2).then_some(ok)
    })
    .await;
    assert!(answered_2xx >= 2);
    let order = order_status(&mut client, &order_id).await;
    let paid_entries = order["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["status"] == "paid")
        .count();
    assert_eq!(paid_entries, 1, "paid once: {order}");
    assert_eq!(client.stats("pay-dup").await["items"][0]["paid"], 1);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_and_probe_notifications_are_refused_until_a_good_one_lands() {
    let faults = Faults {
        tamper_next_notifications: 1,
        probe_rate: 1.0,
        ..Faults::default()
    };
    let world = World::start(faults).await;
    let mut client = world.client().await;
    live_sale(&mut client, "pay-tamper", 10, 900).await;
    let order_id = place(&mut client, "buyer-1", "pay-tamper").await;
    let prepay_id = prepay_id(&mut client, "buyer-1", &order_id).await;
    world.sim.pay(&prepay_id).unwrap();
    wait_for_status(&world, &order_id, "paid").await;
    let deliveries: Vec<_> = world
        .sim
        .deliveries()
        .into_iter()
        .filter(|delivery| delivery.out_trade_no == order_id)
        .collect();
    let refused: Vec<_> = deliveries
        .iter()
        .filter(|delivery| !delivery.outcome.is_success())
        .collect();
    assert!(
        refused.iter().any(|d| d.kind == DeliveryKind::Tampered),
        "a tampered delivery was refused: {deliveries:?}"
    );
    assert!(
        refused.iter().any(|d| d.kind == DeliveryKind::Probe),
        "a probe was refused: {deliveries:?}"
    );
    assert!(
        deliveries.iter().all(|d| d.outcome.is_success()
            == matches!(d.kind, DeliveryKind::Normal | DeliveryKind::Duplicate)),
        "only genuine notifications were accepted: {deliveries:?}"
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpaid_hold_that_runs_out_is_closed_at_wechat_pay_and_its_stock_returns() {
    let world = World::start(Faults::default()).await;
    let mut client = world.client().await;
    live_sale(&mut client, "pay-expire", 1, 1).await;
    let order_id = place(&mut client, "buyer-1", "pay-expire").await;
    pay(&mut client, "buyer-1", &order_id).await;
    assert_eq!(client.remaining("pay-expire", &buyer_token("x")).await, 0);
    wait_for_status(&world, &order_id, "expired").await;
    let at_wechat = world.sim.order(&order_id).expect("the simulator knows it");
    assert_eq!(at_wechat.trade_state, TradeState::Closed);
    assert_eq!(client.remaining("pay-expire", &buyer_token("x")).await, 1);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_who_paid_cannot_cancel_the_order_from_under_the_payment() {
    let faults = Faults {
        // The buyer pays; WeChat Pay's notification is slow to come.
        notification_delay_ms: 60_000,
        ..Faults::default()
    };
    let world = World::start(faults).await;
    let mut client = world.client().await;
    live_sale(&mut client, "pay-cancel", 1, 900).await;
    let order_id = place(&mut client, "buyer-1", "pay-cancel").await;
    let prepay = prepay_id(&mut client, "buyer-1", &order_id).await;
    world.sim.pay(&prepay).unwrap();
    // The cancel closes the WeChat Pay order first, finds it paid, applies
    // the payment and refuses: the unit never goes back on sale.
    let refused = client
        .post_empty(
            &format!("/v1/orders/{order_id}/cancel"),
            &buyer_token("buyer-1"),
        )
        .await;
    let message = assert_error(&refused, 409, "INVALID_STATE");
    assert!(message.contains("is paid"), "{message}");
    assert_eq!(order_status(&mut client, &order_id).await["status"], "paid");
    assert_eq!(client.remaining("pay-cancel", &buyer_token("x")).await, 0);

    // An unpaid paying order: the cancel closes it at WeChat Pay.
    client
        .post_json(
            "/admin/v1/sales/pay-cancel/items/sku-1/restock",
            HOST_TOKEN,
            &json!({"add": 1}),
        )
        .await
        .expect_json(200);
    let second = place(&mut client, "buyer-2", "pay-cancel").await;
    prepay_id(&mut client, "buyer-2", &second).await;
    client
        .post_empty(
            &format!("/v1/orders/{second}/cancel"),
            &buyer_token("buyer-2"),
        )
        .await
        .expect_json(200);
    assert_eq!(
        world.sim.order(&second).unwrap().trade_state,
        TradeState::Closed
    );
    world.stop().await;
}

/// A payment WeChat Pay took for `order_id` that the gateway gave up on
/// (the buyer paid a prepay the gateway no longer honours), and its
/// notification.
async fn late_payment(world: &World, client: &mut Client, order_id: &str) -> Reply {
    let planted = world
        .sim
        .plant_payment(PlantedPayment::new(order_id, 9900))
        .expect("the simulator takes the payment");
    let mut resource = transaction(order_id, 9900, MCHID, APPID);
    resource["transaction_id"] = json!(planted.transaction_id);
    let (headers, body) = forged_notification(world, &resource);
    post_notification(client, &headers, &body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_for_a_cancelled_order_is_reinstated_while_stock_lasts_else_refunded() {
    let world = World::start(Faults::default()).await;
    let mut client = world.client().await;
    live_sale(&mut client, "pay-late", 1, 900).await;

    // Stock left: the late payment takes its unit back.
    let first = place(&mut client, "buyer-1", "pay-late").await;
    client
        .post_empty(
            &format!("/v1/orders/{first}/cancel"),
            &buyer_token("buyer-1"),
        )
        .await
        .expect_json(200);
    let reply = late_payment(&world, &mut client, &first).await;
    assert_eq!(reply.status, 204, "{}", reply.text());
    let order = order_status(&mut client, &first).await;
    assert_eq!(order["status"], "paid", "{order}");
    assert!(order["transaction_id"].as_str().is_some(), "{order}");
    let stats = client.stats("pay-late").await;
    assert_eq!(stats["orders"]["reinstated"], 1, "{stats}");
    assert_eq!(client.remaining("pay-late", &buyer_token("x")).await, 0);

    // No stock left: the late payment is refunded automatically.
    let restock = json!({"add": 1});
    client
        .post_json(
            "/admin/v1/sales/pay-late/items/sku-1/restock",
            HOST_TOKEN,
            &restock,
        )
        .await
        .expect_json(200);
    let second = place(&mut client, "buyer-2", "pay-late").await;
    client
        .post_empty(
            &format!("/v1/orders/{second}/cancel"),
            &buyer_token("buyer-2"),
        )
        .await
        .expect_json(200);
    let third = place(&mut client, "buyer-3", "pay-late").await;
    let reply = late_payment(&world, &mut client, &second).await;
    assert_eq!(reply.status, 204, "{}", reply.text());
    let order = wait_for_status(&world, &second, "refunded").await;
    assert_eq!(order["refund_reason"], "late_payment", "{order}");
    assert!(order["refund_id"].as_str().is_some(), "{order}");
    assert_eq!(
        world.sim.order(&second).unwrap().trade_state,
        TradeState::Refund
    );
    assert_eq!(
        order_status(&mut client, &third).await["status"],
        "reserved"
    );
    let stats = client.stats("pay-late").await;
    assert_eq!(stats["orders"]["late_refunds"], 1, "{stats}");
    let item = &stats["items"][0];
    let sold = item["reserved"].as_i64().unwrap() + item["paid"].as_i64().unwrap();
    assert!(sold <= item["stock"].as_i64().unwrap(), "{stats}");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_refund_goes_through_wechat_pay_and_returns_the_unit() {
    let world = World::start(Faults::default()).await;
    let mut client = world.client().await;
    live_sale(&mut client, "pay-refund", 1, 900).await;
    let order_id = place(&mut client, "buyer-1", "pay-refund").await;
    let prepay = prepay_id(&mut client, "buyer-1", &order_id).await;
    world.sim.pay(&prepay).unwrap();
    wait_for_status(&world, &order_id, "paid").await;
    assert_eq!(client.remaining("pay-refund", &buyer_token("x")).await, 0);

    let refused = client
        .post_empty(&format!("/admin/v1/orders/{order_id}/refund"), HOST_TOKEN)
        .await;
    assert_error(&refused, 403, "FORBIDDEN");
    let answer = client
        .post_empty(&format!("/admin/v1/orders/{order_id}/refund"), ADMIN_TOKEN)
        .await
        .expect_json(200);
    assert!(
        answer["status"] == "refunding" || answer["status"] == "refunded",
        "{answer}"
    );
    let order = wait_for_status(&world, &order_id, "refunded").await;
    assert!(order["refund_id"].as_str().is_some(), "{order}");
    assert_eq!(
        world.sim.order(&order_id).unwrap().trade_state,
        TradeState::Refund
    );
    assert_eq!(client.remaining("pay-refund", &buyer_token("x")).await, 1);
    // A second refund asks nothing new.
    let again = client
        .post_empty(&format!("/admin/v1/orders/{order_id}/refund"), ADMIN_TOKEN)
        .await;
    assert_error(&again, 409, "INVALID_STATE");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechat_pay_5xx_and_frequency_limits_are_retried_without_a_second_order() {
    let world = World::start(Faults::default()).await;
    let mut client = world.client().await;
    live_sale(&mut client, "pay-retry", 10, 900).await;
    let order_id = place(&mut client, "buyer-1", "pay-retry").await;
    world.sim.set_faults(Faults {
        fail_next: vec![
            FailNext {
                endpoint: "prepay".into(),
                count: 1,
                status: 500,
                code: "SYSTEM_ERROR".into(),
                message: None,
            },
            FailNext {
                endpoint: "prepay".into(),
                count: 1,
                status: 429,
                code: "FREQUENCY_LIMITED".into(),
                message: None,
            },
        ],
        ..Faults::default()
    });
    let params = pay(&mut client, "buyer-1", &order_id).await;
    let prepay_id = params["prepay_id"].as_str().unwrap();
    let at_wechat = world.sim.order(&order_id).expect("one order at WeChat Pay");
    assert_eq!(at_wechat.trade_state, TradeState::NotPay);
    world.sim.pay(prepay_id).unwrap();
    wait_for_status(&world, &order_id, "paid").await;

    // A PARAM_ERROR is final: the buyer gets 502 at once.
    let other = place(&mut client, "buyer-2", "pay-retry").await;
    world.sim.set_faults(Faults {
        fail_next: vec![FailNext {
            endpoint: "prepay".into(),
            count: 1,
            status: 400,
            code: "PARAM_ERROR".into(),
            message: None,
        }],
        ..Faults::default()
    });
    let refused = client
        .post_empty(&format!("/v1/orders/{other}/pay"), &buyer_token("buyer-2"))
        .await;
    assert_error(&refused, 502, "PAYMENT_UNAVAILABLE");
    assert_eq!(
        order_status(&mut client, &other).await["status"],
        "reserved"
    );
    // And the order can still be paid once WeChat Pay answers.
    pay(&mut client, "buyer-2", &other).await;
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_notification_the_reconciler_finds_the_payment_by_query() {
    let faults = Faults {
        notifications_paused: true,
        ..Faults::default()
    };
    let world = World::start(faults).await;
    let mut client = world.client().await;
    live_sale(&mut client, "pay-query", 10, 900).await;
    let order_id = place(&mut client, "buyer-1", "pay-query").await;
    let prepay = prepay_id(&mut client, "buyer-1", &order_id).await;
    world.sim.pay(&prepay).unwrap();
    let order = wait_for_status(&world, &order_id, "paid").await;
    assert!(order["transaction_id"].as_str().is_some(), "{order}");
    assert!(world.sim.deliveries().is_empty(), "nothing was notified");
    world.stop().await;
}

/// A notification as WeChat Pay would sign and encrypt it, for `resource`.
fn forged_notification(world: &World, resource: &Value) -> (Vec<(String, String)>, String) {
    let nonce = random_alphanumeric(12);
    let ciphertext = ApiV3Key::new(APIV3_KEY.as_bytes())
        .unwrap()
        .encrypt(&nonce, "transaction", resource.to_string().as_bytes())
        .unwrap();
    let body = json!({
        "id": "7f8fcdb2-573a-547a-901e-4c34f9761293",
        "create_time": "2026-11-25T10:00:00+08:00",
        "resource_type": "encrypt-resource",
        "event_type": "TRANSACTION.SUCCESS",
        "summary": "支付成功",
        "resource": {
            "original_type": "transaction",
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": ciphertext,
            "associated_data": "transaction",
            "nonce": nonce
        }
    })
    .to_string();
    let timestamp = now_ms() / 1000;
    let header_nonce = nonce_str();
    let signature = world
        .platform
        .sign(&response_message(timestamp, &header_nonce, body.as_bytes()))
        .unwrap();
    let headers = vec![
        ("wechatpay-timestamp".to_owned(), timestamp.to_string()),
        ("wechatpay-nonce".to_owned(), header_nonce),
        ("wechatpay-signature".to_owned(), signature),
        ("wechatpay-serial".to_owned(), PUBLIC_KEY_ID.to_owned()),
        (
            "wechatpay-signature-type".to_owned(),
            "WECHATPAY2-SHA256-RSA2048".to_owned(),
        ),
    ];
    (headers, body)
}

async fn post_notification(client: &mut Client, headers: &[(String, String)], body: &str) -> Reply {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    client
        .request(
            hyper::Method::POST,
            "/v1/payments/wechat/notify",
            &headers,
            Some(body.as_bytes()),
        )
        .await
}

fn transaction(order_id: &str, total: i64, mchid: &str, appid: &str) -> Value {
    json!({
        "appid": appid,
        "mchid": mchid,
        "out_trade_no": order_id,
        "transaction_id": "4200000985202611251441826014",
        "trade_type": "JSAPI",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "OTHERS",
        "success_time": "2026-11-25T10:00:00+08:00",
        "payer": { "openid": "buyer-1" },
        "amount": { "total": total, "payer_total": total, "currency": "CNY", "payer_currency": "CNY" }
    })
}

fn rejected_count(metrics: &str, outcome: &str) -> u64 {
    let label = format!("outcome=\"{outcome}\"");
    metrics
        .lines()
        .filter(|line| {
            line.starts_with("flashgate_payment_notifications_total") && line.contains(&label)
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|value| value as u64)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_that_do_not_match_the_order_are_refused_and_counted() {
    let world = World::start(Faults::default()).await;
    let mut client = world.client().await;
    live_sale(&mut client, "pay-mismatch", 10, 900).await;
    let order_id = place(&mut client, "buyer-1", "pay-mismatch").await;
    pay(&mut client, "buyer-1", &order_id).await;
    // sale_body prices the item at 99.00: 9900 fen.
    let cases = [
        (
            transaction(&order_id, 9800, MCHID, APPID),
            "amount_mismatch",
        ),
        (
            transaction(&order_id, 9900, "1900000999", APPID),
            "mchid_mismatch",
        ),
        (
            transaction(&order_id, 9900, MCHID, "wx0000000000000bad"),
            "appid_mismatch",
        ),
        (
            transaction("FG00000000000000000000", 9900, MCHID, APPID),
            "unknown_order",
        ),
    ];
    for (resource, reason) in &cases {
        let (headers, body) = forged_notification(&world, resource);
        let reply = post_notification(&mut client, &headers, &body).await;
        assert_eq!(reply.status, 400, "{reason}: {}", reply.text());
        assert_eq!(reply.json()["code"], "FAIL", "{reason}");
    }
    let metrics = client.get_anonymous("/metrics").await.text();
    for (_, reason) in &cases {
        assert!(rejected_count(&metrics, reason) >= 1, "{reason} counted");
    }
    // Unsigned, stale and garbage notifications: 4xx, never a 2xx or 5xx.
    let (mut headers, body) =
        forged_notification(&world, &transaction(&order_id, 9900, MCHID, APPID));
    let good_headers = headers.clone();
    headers[2].1 = "WECHATPAY/SIGNTEST/AAAA".into();
    assert_eq!(
        post_notification(&mut client, &headers, &body).await.status,
        401
    );
    let mut stale = good_headers.clone();
    stale[0].1 = (now_ms() / 1000 - 600).to_string();
    assert_eq!(
        post_notification(&mut client, &stale, &body).await.status,
        401
    );
    let reply = post_notification(&mut client, &good_headers, "{not json").await;
    assert!(reply.status.is_client_error(), "{}", reply.status);
    assert_eq!(
        order_status(&mut client, &order_id).await["status"],
        "paying"
    );
    // The genuine one is applied.
    let reply = post_notification(&mut client, &good_headers, &body).await;
    assert_eq!(reply.status, 204, "{}", reply.text());
    assert_eq!(order_status(&mut client, &order_id).await["status"], "paid");
    world.stop().await;
}
