//! The WeChat Pay simulator over real HTTP, driven as a merchant would drive
//! WeChat Pay: every request signed here with `flashgate::pay::crypto` (the
//! gateway's own client is not used, so a shared mistake cannot hide), every
//! answer and notification verified with the simulator's public key. Time
//! runs at 1/1000 (`time_scale` 0.001): the 15 s first retry takes 15 ms.
//!
//! Every network wait is bounded by [`WAIT`] and names what it waited for.

use bytes::Bytes;
use flashgate::clock::{beijing_date, format_beijing_rfc3339, now_ms};
use flashgate::pay::bill;
use flashgate::pay::crypto::{
    authorization_header, nonce_str, request_message, sha1_hex, ApiV3Key, RsaSigner, RsaVerifier,
    SignedHeaders, Verifier, VerifyError,
};
use flashgate::pay::sim::{
    DeliveryKind, DeliveryOutcome, FailNext, Faults, PlantedPayment, SimConfig, SimHandle,
    Simulator,
};
use flashgate::pay::wire::{
    NotificationEnvelope, RefundResource, RefundStatus, TradeBillResponse, TradeState, Transaction,
};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The longest any single wait may take before the test fails.
const WAIT: Duration = Duration::from_secs(10);
const MCHID: &str = "1230000109";
const APPID: &str = "wxd678efh567hg6787";
const MERCHANT_SERIAL: &str = "5F1C72E2A8931B72A2E13AF8DEE92471EB397115";
const APIV3_KEY: &str = "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb";
const PUBLIC_KEY_ID: &str = "PUB_KEY_ID_0114232134912410000000000000000001";
const USER_AGENT: &str = "flashgate-tests/1.0";
/// A notify_url nothing listens on, for tests that pause notifications.
const NOWHERE: &str = "http://127.0.0.1:9/notify";

async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(WAIT, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

fn now_secs() -> i64 {
    now_ms() / 1000
}

/// RSA-2048 key generation is slow in a debug build: each test process
/// makes one merchant key and one platform key and loads copies of them.
fn cached_key(cell: &'static OnceLock<String>) -> RsaSigner {
    let pem = cell.get_or_init(|| {
        let key = RsaSigner::generate().expect("RSA key generation");
        key.private_key_pem().expect("the key as PEM")
    });
    RsaSigner::from_pkcs8_pem(pem).expect("the cached key loads")
}

fn merchant_key() -> RsaSigner {
    static PEM: OnceLock<String> = OnceLock::new();
    cached_key(&PEM)
}

fn platform_key() -> RsaSigner {
    static PEM: OnceLock<String> = OnceLock::new();
    cached_key(&PEM)
}

// ---------------------------------------------------------------------------
// The merchant side: signing requests, verifying answers
// ---------------------------------------------------------------------------

struct Merchant {
    sim: SimHandle,
    signer: RsaSigner,
    platform: Verifier,
    apiv3_key: ApiV3Key,
}

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "answer {} is not JSON ({error}): {:?}",
                self.status, self.body
            )
        })
    }

    fn typed<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "answer {} does not parse ({error}): {:?}",
                self.status, self.body
            )
        })
    }

    fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    }

    fn request_id_code(&self) -> &str {
        let request_id = self.header("Request-ID");
        let (hex, code) = request_id
            .rsplit_once('-')
            .expect("Request-ID is <hex>-<code>");
        assert!(
            hex.len() >= 16 && hex.bytes().all(|byte| byte.is_ascii_hexdigit()),
            "{request_id}"
        );
        code
    }
}

/// How a test bends a request that is otherwise signed correctly.
#[derive(Default)]
struct Bend {
    without_user_agent: bool,
    without_accept: bool,
    /// Sign this body, send the real one.
    signed_body: Option<String>,
    timestamp_offset_secs: i64,
    /// The pairs in the PHP SDK's order instead of Go's.
    php_pair_order: bool,
}

async fn start(faults: Faults) -> Merchant {
    let signer = merchant_key();
    let sim = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        mchid: MCHID.into(),
        appid: APPID.into(),
        apiv3_key: APIV3_KEY.into(),
        merchant_serial_no: MERCHANT_SERIAL.into(),
        merchant_public_key_pem: signer.public_key_pem().unwrap(),
        platform_signer: platform_key(),
        public_key_id: PUBLIC_KEY_ID.into(),
        time_scale: 0.001,
        faults,
    })
    .await
    .expect("the simulator starts");
    let platform_key = RsaVerifier::from_spki_pem(&sim.public_key_pem()).unwrap();
    Merchant {
        platform: Verifier::with_key(sim.public_key_id(), platform_key),
        sim,
        signer,
        apiv3_key: ApiV3Key::new(APIV3_KEY.as_bytes()).unwrap(),
    }
}

impl Merchant {
    async fn call(&self, method: &str, path_and_query: &str, body: &str) -> Answer {
        self.call_bent(method, path_and_query, body, Bend::default())
            .await
    }

    async fn call_bent(
        &self,
        method: &str,
        path_and_query: &str,
        body: &str,
        bend: Bend,
    ) -> Answer {
        let timestamp = now_secs() + bend.timestamp_offset_secs;
        let nonce = nonce_str();
        let signed_body = bend.signed_body.as_deref().unwrap_or(body);
        let message = request_message(
            method,
            path_and_query,
            timestamp,
            &nonce,
            signed_body.as_bytes(),
        );
        let signature = self.signer.sign(&message).unwrap();
        let authorization = if bend.php_pair_order {
            format!(
                "WECHATPAY2-SHA256-RSA2048 mchid=\"{MCHID}\",serial_no=\"{MERCHANT_SERIAL}\",timestamp=\"{timestamp}\",nonce_str=\"{nonce}\",signature=\"{signature}\""
            )
        } else {
            authorization_header(MCHID, MERCHANT_SERIAL, &nonce, timestamp, &signature)
        };
        let mut request = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header("Host", self.address())
            .header("Authorization", authorization);
        if !bend.without_accept {
            request = request.header("Accept", "application/json");
        }
        if !bend.without_user_agent {
            request = request.header("User-Agent", USER_AGENT);
        }
        if !body.is_empty() {
            request = request.header("Content-Type", "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        exchange(&self.address(), request).await
    }

    fn address(&self) -> String {
        self.sim.base_url().trim_start_matches("http://").to_owned()
    }

    /// Checks a signed answer or notification as the gateway must.
    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), VerifyError> {
        self.platform
            .verify(&SignedHeaders::from_header_map(headers), body, now_secs())
    }

    /// Verifies, then decrypts a notification's resource.
    fn open<T: DeserializeOwned>(&self, received: &Received) -> (NotificationEnvelope, T) {
        self.verify(&received.headers, &received.body)
            .expect("the notification verifies");
        let envelope: NotificationEnvelope = serde_json::from_slice(&received.body).unwrap();
        let resource = &envelope.resource;
        let plaintext = self
            .apiv3_key
            .decrypt(
                &resource.nonce,
                &resource.associated_data,
                &resource.ciphertext,
            )
            .expect("the resource decrypts");
        let inner = serde_json::from_slice(&plaintext).expect("the resource parses");
        (envelope, inner)
    }

    async fn prepay(&self, out_trade_no: &str, total: i64, notify_url: &str) -> String {
        let answer = self
            .call(
                "POST",
                "/v3/pay/transactions/jsapi",
                &prepay_body(out_trade_no, total, notify_url),
            )
            .await;
        assert_eq!(answer.status, 200, "prepay {out_trade_no}: {answer:?}");
        answer.json()["prepay_id"].as_str().unwrap().to_owned()
    }

    async fn query(&self, out_trade_no: &str) -> Answer {
        let path = format!("/v3/pay/transactions/out-trade-no/{out_trade_no}?mchid={MCHID}");
        self.call("GET", &path, "").await
    }

    async fn refund(
        &self,
        out_trade_no: &str,
        out_refund_no: &str,
        refund: i64,
        total: i64,
        notify_url: &str,
    ) -> Answer {
        let body = json!({
            "out_trade_no": out_trade_no, "out_refund_no": out_refund_no, "reason": "主播取消",
            "notify_url": notify_url, "amount": {"refund": refund, "total": total, "currency": "CNY"}
        });
        self.call("POST", "/v3/refund/domestic/refunds", &body.to_string())
            .await
    }

    /// Requests a day's bill (signed answer), downloads it (unsigned file),
    /// checks its SHA-1 and parses it.
    async fn trade_bill(&self, date: &str) -> bill::Bill {
        let path = format!("/v3/bill/tradebill?bill_date={date}&bill_type=ALL");
        let answer = self.call("GET", &path, "").await;
        assert_eq!(answer.status, 200, "{answer:?}");
        self.verify(&answer.headers, &answer.body).unwrap();
        let bill_answer: TradeBillResponse = answer.typed();
        assert_eq!(bill_answer.hash_type, "SHA1");
        let download_path = bill_answer
            .download_url
            .strip_prefix(&self.sim.base_url())
            .expect("the download URL is the simulator's");
        let file = self.call("GET", download_path, "").await;
        assert_eq!(file.status, 200, "{file:?}");
        let unsigned = file.headers.get("Wechatpay-Signature").is_none();
        assert!(unsigned, "the bill file is not signed");
        assert!(file.headers.get("Request-ID").is_some());
        assert_eq!(sha1_hex(&file.body), bill_answer.hash_value);
        let text = std::str::from_utf8(&file.body).expect("the bill is UTF-8");
        bill::parse_bill(text).expect("the bill parses")
    }

    /// Waits until the delivery log holds `count` attempts.
    async fn deliveries(&self, count: usize) -> Vec<flashgate::pay::sim::Delivery> {
        within(&format!("{count} delivery log entries"), async {
            loop {
                let deliveries = self.sim.deliveries();
                if deliveries.len() >= count {
                    return deliveries;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
    }
}

/// The fields of a bill line the tests compare.
fn bill_line(row: &bill::BillRow) -> (String, String, String, i64, i64) {
    (
        row.out_trade_no.clone(),
        row.out_refund_no.clone(),
        row.trade_state.clone(),
        row.total_fen,
        row.refund_requested_fen,
    )
}

fn prepay_body(out_trade_no: &str, total: i64, notify_url: &str) -> String {
    json!({
        "appid": APPID, "mchid": MCHID, "description": "直播间秒杀-保温杯",
        "out_trade_no": out_trade_no,
        "time_expire": format_beijing_rfc3339(now_ms() + 30 * 60_000),
        "attach": "sale=7", "notify_url": notify_url,
        "amount": {"total": total, "currency": "CNY"}, "payer": {"openid": "oBuyer0001"}
    })
    .to_string()
}

async fn exchange(address: &str, request: Request<Full<Bytes>>) -> Answer {
    within("the simulator's answer", async {
        let stream = TcpStream::connect(address)
            .await
            .expect("connect to the simulator");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("HTTP handshake");
        tokio::spawn(connection);
        let response = sender
            .send_request(request)
            .await
            .expect("send the request");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("read the answer").to_bytes();
        Answer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        }
    })
    .await
}

// ---------------------------------------------------------------------------
// The merchant's notify_url: a tiny HTTP server answering scripted statuses
// ---------------------------------------------------------------------------

struct Received {
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
}

struct NotifyEndpoint {
    url: String,
    received: mpsc::Receiver<Received>,
}

impl NotifyEndpoint {
    /// Answers `statuses` in order, then 200 to everything.
    async fn start(statuses: &[u16]) -> NotifyEndpoint {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/v1/payments/wechat/notify",
            listener.local_addr().unwrap()
        );
        let (sender, received) = mpsc::channel(64);
        let statuses = Arc::new(Mutex::new(VecDeque::from(statuses.to_vec())));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sender = sender.clone();
                let statuses = Arc::clone(&statuses);
                let service = service_fn(move |request: Request<Incoming>| {
                    let sender = sender.clone();
                    let statuses = Arc::clone(&statuses);
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|all| all.to_bytes())
                            .unwrap_or_default();
                        let status = statuses.lock().unwrap().pop_front().unwrap_or(200);
                        let received = Received {
                            headers: parts.headers,
                            body,
                            at: Instant::now(),
                        };
                        let _ = sender.send(received).await;
                        let answer = Response::builder()
                            .status(status)
                            .body(Full::new(Bytes::new()));
                        Ok::<_, Infallible>(answer.unwrap())
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        NotifyEndpoint { url, received }
    }

    async fn next(&mut self, what: &str) -> Received {
        within(what, self.received.recv())
            .await
            .expect("the notify endpoint is running")
    }

    /// Fails if anything arrives within `quiet`.
    async fn expect_nothing(&mut self, quiet: Duration) {
        if let Ok(Some(received)) = tokio::time::timeout(quiet, self.received.recv()).await {
            panic!("unexpected notification: {:?}", received.body);
        }
    }
}

fn event_id(received: &Received) -> String {
    let envelope: NotificationEnvelope = serde_json::from_slice(&received.body).unwrap();
    envelope.id
}

fn paused() -> Faults {
    Faults {
        notifications_paused: true,
        ..Faults::default()
    }
}

// ---------------------------------------------------------------------------
// Prepay and the request rules
// ---------------------------------------------------------------------------

#[tokio::test]
async fn prepay_answers_a_signed_prepay_id_and_a_repost_gets_the_same_one() {
    let merchant = start(paused()).await;
    let body = prepay_body("FG0000000001", 9900, NOWHERE);
    let answer = merchant
        .call("POST", "/v3/pay/transactions/jsapi", &body)
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    merchant
        .verify(&answer.headers, &answer.body)
        .expect("the answer verifies");
    assert_eq!(answer.header("Wechatpay-Serial"), PUBLIC_KEY_ID);
    assert_eq!(
        answer.header("Wechatpay-Signature-Type"),
        "WECHATPAY2-SHA256-RSA2048"
    );
    assert_eq!(answer.request_id_code(), "0");
    let prepay_id = answer.json()["prepay_id"].as_str().unwrap().to_owned();
    assert!(
        prepay_id.starts_with("wx") && prepay_id.len() == 36,
        "{prepay_id}"
    );

    let again = merchant
        .call("POST", "/v3/pay/transactions/jsapi", &body)
        .await;
    assert_eq!(again.json()["prepay_id"], prepay_id.as_str());

    let changed = body.replace("9900", "9901");
    let refused = merchant
        .call("POST", "/v3/pay/transactions/jsapi", &changed)
        .await;
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (400, "INVALID_REQUEST")
    );
    assert_eq!(
        refused.json()["message"],
        "请求重入时，参数与首次请求时不一致"
    );
    assert_ne!(refused.request_id_code(), "0");
    assert!(
        refused.headers.get("Wechatpay-Signature").is_none(),
        "errors are not signed"
    );
    merchant.sim.shutdown().await;
}

#[tokio::test]
async fn prepay_refuses_a_bad_body_naming_the_field() {
    let merchant = start(paused()).await;
    let body = prepay_body("FG0000000001", 9900, NOWHERE);
    let cases = [
        (
            prepay_body("FG0000000002", 0, NOWHERE),
            "PARAM_ERROR",
            Some("/amount/total"),
        ),
        (
            body.replace("\"attach\"", "\"attach_x\""),
            "PARAM_ERROR",
            Some("/attach_x"),
        ),
        (
            body.replace("\"description\":\"直播间秒杀-保温杯\",", ""),
            "PARAM_ERROR",
            Some("/description"),
        ),
        (
            body.replace(APPID, "wx0000000000000000"),
            "APPID_MCHID_NOT_MATCH",
            None,
        ),
    ];
    for (bad_body, code, field) in cases {
        let answer = merchant
            .call("POST", "/v3/pay/transactions/jsapi", &bad_body)
            .await;
        assert_eq!(
            (answer.status, answer.code().as_str()),
            (400, code),
            "{bad_body}"
        );
        if let Some(field) = field {
            assert_eq!(answer.json()["detail"]["field"], field, "{bad_body}");
        }
    }
    merchant.sim.shutdown().await;
}

#[tokio::test]
async fn requests_breaking_the_v3_rules_are_refused() {
    let merchant = start(paused()).await;
    let path = "/v3/pay/transactions/jsapi";
    let body = prepay_body("FG0000000010", 100, NOWHERE);

    let bent = |bend: Bend| merchant.call_bent("POST", path, &body, bend);
    let forged = bent(Bend {
        signed_body: Some(format!("{body} ")),
        ..Bend::default()
    })
    .await;
    assert_eq!((forged.status, forged.code().as_str()), (401, "SIGN_ERROR"));
    let detail = &forged.json()["detail"];
    assert_eq!(detail["location"], "authorization");
    assert_eq!(detail["sign_information"]["url"], path);
    assert_eq!(detail["sign_information"]["method"], "POST");
    assert!(detail["sign_information"]["sign_message_length"]
        .as_u64()
        .is_some());

    for bend in [
        Bend {
            without_user_agent: true,
            ..Bend::default()
        },
        Bend {
            without_accept: true,
            ..Bend::default()
        },
    ] {
        let answer = bent(bend).await;
        assert_eq!(
            (answer.status, answer.code().as_str()),
            (400, "INVALID_REQUEST")
        );
        assert_eq!(answer.json()["message"], "Http头缺少Accept或User-Agent");
    }

    let stale = bent(Bend {
        timestamp_offset_secs: -301,
        ..Bend::default()
    })
    .await;
    assert_eq!((stale.status, stale.code().as_str()), (401, "SIGN_ERROR"));

    let other_mchid = body.replace(
        &format!("\"mchid\":\"{MCHID}\""),
        "\"mchid\":\"1900000109\"",
    );
    let mismatch = merchant.call("POST", path, &other_mchid).await;
    assert_eq!(mismatch.status, 400, "{mismatch:?}");
    assert!(
        mismatch.json()["message"]
            .as_str()
            .unwrap()
            .contains("mchid"),
        "{mismatch:?}"
    );

    let php_order = bent(Bend {
        php_pair_order: true,
        ..Bend::default()
    })
    .await;
    assert_eq!(
        php_order.status, 200,
        "Authorization pairs are parsed by name: {php_order:?}"
    );
    assert!(merchant.sim.order("FG0000000010").is_some());
    merchant.sim.shutdown().await;
}

// ---------------------------------------------------------------------------
// Query, close
// ---------------------------------------------------------------------------

#[tokio::test]
async fn queries_show_the_order_before_and_after_payment() {
    let merchant = start(paused()).await;
    let prepay_id = merchant.prepay("FG0000000020", 1500, NOWHERE).await;

    let unpaid = merchant.query("FG0000000020").await;
    assert_eq!(unpaid.status, 200);
    merchant.verify(&unpaid.headers, &unpaid.body).unwrap();
    let transaction: Transaction = unpaid.typed();
    assert_eq!(transaction.trade_state, TradeState::NotPay);
    assert_eq!(
        (transaction.transaction_id, transaction.amount.total),
        (None, 1500)
    );

    let paid = merchant.sim.pay(&prepay_id).expect("the buyer pays");
    let answer = merchant.query("FG0000000020").await;
    let transaction: Transaction = answer.typed();
    assert_eq!(transaction, paid);
    assert_eq!(transaction.trade_state, TradeState::Success);
    let transaction_id = transaction.transaction_id.clone().unwrap();
    assert!(transaction_id.starts_with("42000") && transaction_id.len() == 28);
    assert!(transaction.success_time.unwrap().ends_with("+08:00"));
    assert_eq!(transaction.payer.unwrap().openid, "oBuyer0001");
    assert_eq!(
        (
            transaction.amount.payer_total,
            transaction.attach.as_deref()
        ),
        (Some(1500), Some("sale=7"))
    );

    let by_id = merchant
        .call(
            "GET",
            &format!("/v3/pay/transactions/id/{transaction_id}?mchid={MCHID}"),
            "",
        )
        .await;
    assert_eq!(by_id.typed::<Transaction>(), paid);

    let unknown = merchant.query("FG0000009999").await;
    assert_eq!(
        (unknown.status, unknown.code().as_str()),
        (404, "ORDER_NOT_EXIST")
    );
    let without_mchid = merchant
        .call("GET", "/v3/pay/transactions/out-trade-no/FG0000000020", "")
        .await;
    assert_eq!(
        (without_mchid.status, without_mchid.code().as_str()),
        (400, "PARAM_ERROR")
    );
    merchant.sim.shutdown().await;
}

#[tokio::test]
async fn close_answers_a_signed_204_and_the_order_can_no_longer_be_paid() {
    let merchant = start(paused()).await;
    let prepay_id = merchant.prepay("FG0000000030", 100, NOWHERE).await;
    let close_body = json!({"mchid": MCHID}).to_string();
    let closed = merchant
        .call(
            "POST",
            "/v3/pay/transactions/out-trade-no/FG0000000030/close",
            &close_body,
        )
        .await;
    assert_eq!(closed.status, 204, "{closed:?}");
    assert!(closed.body.is_empty());
    merchant
        .verify(&closed.headers, b"")
        .expect("a 204 is signed over the empty body");
    assert!(
        merchant.sim.pay(&prepay_id).is_err(),
        "a closed order cannot be paid"
    );
    assert_eq!(
        merchant.sim.order("FG0000000030").unwrap().trade_state,
        TradeState::Closed
    );
    let reused = merchant
        .call(
            "POST",
            "/v3/pay/transactions/jsapi",
            &prepay_body("FG0000000030", 100, NOWHERE),
        )
        .await;
    assert_eq!(
        (reused.status, reused.code().as_str()),
        (403, "OUT_TRADE_NO_USED")
    );

    let unknown = merchant
        .call(
            "POST",
            "/v3/pay/transactions/out-trade-no/FG0000000039/close",
            &close_body,
        )
        .await;
    assert_eq!(unknown.status, 204, "an unknown number still closes");
    assert_eq!(merchant.query("FG0000000039").await.status, 404);

    merchant.prepay("FG0000000031", 100, NOWHERE).await;
    merchant.sim.pay("FG0000000031").unwrap();
    let paid = merchant
        .call(
            "POST",
            "/v3/pay/transactions/out-trade-no/FG0000000031/close",
            &close_body,
        )
        .await;
    assert_eq!((paid.status, paid.code().as_str()), (400, "ORDER_PAID"));
    merchant.sim.shutdown().await;
}

// ---------------------------------------------------------------------------
// Notifications
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_payment_notification_verifies_and_decrypts_to_the_transaction() {
    let merchant = start(Faults::default()).await;
    let mut endpoint = NotifyEndpoint::start(&[]).await;
    merchant.prepay("FG0000000040", 9900, &endpoint.url).await;
    let paid = merchant.sim.pay("FG0000000040").unwrap();

    let received = endpoint.next("the TRANSACTION.SUCCESS notification").await;
    let header = |name: &str| {
        received
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
    assert_eq!(header("Wechatpay-Serial"), Some(PUBLIC_KEY_ID));
    assert_eq!(
        header("Wechatpay-Signature-Type"),
        Some("WECHATPAY2-SHA256-RSA2048")
    );
    assert_eq!(header("Content-Type"), Some("application/json"));
    assert!(
        header("User-Agent").is_some() && header("Request-ID").is_some_and(|id| id.ends_with("-0"))
    );
    let (envelope, transaction): (NotificationEnvelope, Transaction) = merchant.open(&received);
    assert_eq!(transaction, paid);
    assert_eq!(
        (envelope.event_type.as_str(), envelope.summary.as_str()),
        ("TRANSACTION.SUCCESS", "支付成功")
    );
    assert_eq!(envelope.resource_type, "encrypt-resource");
    assert_eq!(
        (
            envelope.resource.original_type.as_str(),
            envelope.resource.associated_data.as_str()
        ),
        ("transaction", "transaction")
    );
    assert_eq!(
        (
            envelope.resource.algorithm.as_str(),
            envelope.resource.nonce.len()
        ),
        ("AEAD_AES_256_GCM", 12)
    );
    assert_eq!(
        envelope.id.split('-').count(),
        5,
        "UUID-shaped: {}",
        envelope.id
    );
    assert!(envelope.create_time.ends_with("+08:00"));

    let deliveries = merchant.deliveries(1).await;
    assert_eq!(deliveries.len(), 1);
    let delivery = &deliveries[0];
    assert_eq!((delivery.attempt, delivery.kind), (1, DeliveryKind::Normal));
    assert_eq!(delivery.outcome, DeliveryOutcome::Answered { status: 200 });
    assert_eq!(
        (delivery.event_id.as_str(), delivery.out_trade_no.as_str()),
        (envelope.id.as_str(), "FG0000000040")
    );
    endpoint.expect_nothing(Duration::from_millis(100)).await;
    merchant.sim.shutdown().await;
}

#[tokio::test]
async fn a_failing_merchant_is_retried_on_the_scaled_schedule() {
    let merchant = start(Faults::default()).await;
    let mut endpoint = NotifyEndpoint::start(&[500, 503, 204]).await;
    merchant.prepay("FG0000000050", 100, &endpoint.url).await;
    merchant.sim.pay("FG0000000050").unwrap();
    let first = endpoint.next("the first attempt").await;
    let second = endpoint.next("the first retry").await;
    let third = endpoint.next("the second retry").await;
    // 15 s and 15 s at 1/1000.
    assert!(
        second.at - first.at >= Duration::from_millis(14),
        "{:?}",
        second.at - first.at
    );
    assert!(
        third.at - second.at >= Duration::from_millis(14),
        "{:?}",
        third.at - second.at
    );
    assert_eq!(event_id(&first), event_id(&third), "one event, retried");
    assert_eq!(first.body, third.body, "the same body each time");
    merchant.verify(&third.headers, &third.body).unwrap();

    let deliveries = merchant.deliveries(3).await;
    let statuses: Vec<(u32, DeliveryOutcome)> = deliveries
        .iter()
        .map(|d| (d.attempt, d.outcome.clone()))
        .collect();
    assert_eq!(
        statuses,
        [1, 2, 3]
            .into_iter()
            .zip([500, 503, 204])
            .map(|(attempt, status)| (attempt, DeliveryOutcome::Answered { status }))
            .collect::<Vec<_>>()
    );
    endpoint.expect_nothing(Duration::from_millis(100)).await;
    merchant.sim.shutdown().await;
}

#[tokio::test]
async fn a_probe_comes_first_and_the_genuine_notification_follows() {
    let merchant = start(Faults {
        probe_rate: 1.0,
        ..Faults::default()
    })
    .await;
    // The first order's merchant refuses the probe; the second's wrongly accepts it.
    let mut endpoint = NotifyEndpoint::start(&[401, 200, 200, 200]).await;
    for out_trade_no in ["FG0000000060", "FG0000000061"] {
        merchant.prepay(out_trade_no, 100, &endpoint.url).await;
        merchant.sim.pay(out_trade_no).unwrap();
        let probe = endpoint.next("the probe").await;
        let signature = probe.headers["Wechatpay-Signature"].to_str().unwrap();
        assert!(signature.starts_with("WECHATPAY/SIGNTEST/"), "{signature}");
        assert_eq!(
            merchant.verify(&probe.headers, &probe.body),
            Err(VerifyError::BadSignature)
        );
        let genuine = endpoint
            .next("the genuine notification after the probe")
            .await;
        let (_, transaction): (_, Transaction) = merchant.open(&genuine);
        assert_eq!(transaction.out_trade_no, out_trade_no);
        assert_eq!(event_id(&probe), event_id(&genuine));
    }
    let deliveries = merchant.deliveries(4).await;
    let kinds: Vec<(DeliveryKind, bool)> = deliveries
        .iter()
        .map(|d| (d.kind, d.accepted_bad_signature))
        .collect();
    assert_eq!(
        kinds,
        [
            (DeliveryKind::Probe, false),
            (DeliveryKind::Normal, false),
            (DeliveryKind::Probe, true),
            (DeliveryKind::Normal, false)
        ]
    );
    merchant.sim.shutdown().await;
}

#[tokio::test]
async fn a_tampered_notification_fails_verification_then_the_genuine_one_follows() {
    let merchant = start(Faults {
        tamper_next_notifications: 1,
        ..Faults::default()
    })
    .await;
    let mut endpoint = NotifyEndpoint::start(&[400]).await;
    merchant.prepay("FG0000000070", 100, &endpoint.url).await;
    merchant.sim.pay("FG0000000070").unwrap();
    let tampered = endpoint.next("the tampered notification").await;
    assert_eq!(
        merchant.verify(&tampered.headers, &tampered.body),
        Err(VerifyError::BadSignature)
    );
    let genuine = endpoint.next("the genuine notification").await;
    assert_ne!(tampered.body, genuine.body);
    let (_, transaction): (_, Transaction) = merchant.open(&genuine);
    assert_eq!(transaction.trade_state, TradeState::Success);

    merchant.prepay("FG0000000071", 100, &endpoint.url).await;
    merchant.sim.pay("FG0000000071").unwrap();
    let next = endpoint.next("the next order's notification").await;
    merchant
        .verify(&next.headers, &next.body)
        .expect("only one notification was tampered");
    let kinds: Vec<DeliveryKind> = merchant
        .deliveries(3)
        .await
        .iter()
        .map(|d| d.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            DeliveryKind::Tampered,
            DeliveryKind::Normal,
            DeliveryKind::Normal
        ]
    );
    merchant.sim.shutdown().await;
}

#[tokio::test]
async fn a_delivered_notification_may_arrive_twice() {
    let merchant = start(Faults {
        duplicate_notification_rate: 1.0,
        ..Faults::default()
    })
    .await;
    let mut endpoint = NotifyEndpoint::start(&[]).await;
    merchant.prepay("FG0000000080", 100, &endpoint.url).await;
    merchant.sim.pay("FG0000000080").unwrap();
    let first = endpoint.next("the notification").await;
    let duplicate = endpoint.next("its duplicate").await;
    merchant
        .verify(&duplicate.headers, &duplicate.body)
        .unwrap();
    assert_eq!(event_id(&first), event_id(&duplicate));
    let kinds: Vec<DeliveryKind> = merchant
        .deliveries(2)
        .await
        .iter()
        .map(|d| d.kind)
        .collect();
    assert_eq!(kinds, [DeliveryKind::Normal, DeliveryKind::Duplicate]);
    endpoint.expect_nothing(Duration::from_millis(100)).await;
    merchant.sim.shutdown().await;
}

// ---------------------------------------------------------------------------
// Refunds
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_refund_is_processing_then_succeeds_with_a_notification_and_refunds_once() {
    let merchant = start(Faults::default()).await;
    let mut endpoint = NotifyEndpoint::start(&[]).await;
    merchant.prepay("FG0000000090", 9900, &endpoint.url).await;
    merchant.sim.pay("FG0000000090").unwrap();
    endpoint.next("the payment notification").await;

    let created = merchant
        .refund("FG0000000090", "FG0000000090-R1", 900, 9900, &endpoint.url)
        .await;
    assert_eq!(created.status, 200, "{created:?}");
    merchant.verify(&created.headers, &created.body).unwrap();
    let refund: flashgate::pay::wire::Refund = created.typed();
    assert_eq!(refund.status, RefundStatus::Processing);
    assert!(refund.refund_id.starts_with("50") && refund.refund_id.len() == 29);
    assert_eq!((refund.amount.refund, refund.amount.total), (900, 9900));
    assert_eq!(
        merchant.sim.order("FG0000000090").unwrap().trade_state,
        TradeState::Refund
    );

    let again = merchant
        .refund("FG0000000090", "FG0000000090-R1", 900, 9900, &endpoint.url)
        .await;
    assert_eq!(
        again.typed::<flashgate::pay::wire::Refund>().refund_id,
        refund.refund_id
    );

    let received = endpoint.next("the REFUND.SUCCESS notification").await;
    let (envelope, resource): (_, RefundResource) = merchant.open(&received);
    assert_eq!(
        (envelope.event_type.as_str(), envelope.summary.as_str()),
        ("REFUND.SUCCESS", "退款成功")
    );
    assert_eq!(envelope.resource.associated_data, "refund");
    assert_eq!(
        (resource.refund_status, resource.out_refund_no.as_str()),
        (RefundStatus::Success, "FG0000000090-R1")
    );
    assert_eq!(resource.amount.refund, 900);
    endpoint.expect_nothing(Duration::from_millis(100)).await;

    let queried = merchant
        .call("GET", "/v3/refund/domestic/refunds/FG0000000090-R1", "")
        .await;
    merchant.verify(&queried.headers, &queried.body).unwrap();
    let queried: flashgate::pay::wire::Refund = queried.typed();
    assert_eq!(
        (queried.status, queried.refund_id),
        (RefundStatus::Success, refund.refund_id)
    );

    let too_much = merchant
        .refund("FG0000000090", "FG0000000090-R2", 9001, 9900, &endpoint.url)
        .await;
    assert_eq!(
        (too_much.status, too_much.code().as_str()),
        (400, "PARAM_ERROR")
    );
    merchant.prepay("FG0000000091", 100, NOWHERE).await;
    let unpaid = merchant
        .refund("FG0000000091", "FG0000000091-R1", 100, 100, NOWHERE)
        .await;
    assert_eq!(
        (unpaid.status, unpaid.code().as_str()),
        (404, "RESOURCE_NOT_EXISTS")
    );
    let unknown = merchant
        .call("GET", "/v3/refund/domestic/refunds/NO-SUCH-REFUND", "")
        .await;
    assert_eq!(
        (unknown.status, unknown.code().as_str()),
        (404, "RESOURCE_NOT_EXISTS")
    );
    merchant.sim.shutdown().await;
}

// ---------------------------------------------------------------------------
// Trade bill
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_trade_bill_lists_the_days_payments_and_refunds() {
    let merchant = start(paused()).await;
    for (number, total) in [("FG0000000100", 9900), ("FG0000000101", 1)] {
        merchant.prepay(number, total, NOWHERE).await;
        merchant.sim.pay(number).unwrap();
    }
    assert_eq!(
        merchant
            .refund("FG0000000100", "FG0000000100-R1", 900, 9900, NOWHERE)
            .await
            .status,
        200
    );
    merchant
        .sim
        .plant_payment(PlantedPayment::new("PLANTED0001", 500))
        .unwrap();
    merchant.prepay("FG0000000102", 100, NOWHERE).await;

    let parsed = merchant.trade_bill(&beijing_date(now_ms())).await;
    let mut lines: Vec<_> = parsed.rows.iter().map(bill_line).collect();
    lines.sort();
    let line = |number: &str, refund_no: &str, state: &str, total: i64, refund: i64| {
        let text = |value: &str| value.to_owned();
        (text(number), text(refund_no), text(state), total, refund)
    };
    assert_eq!(
        lines,
        [
            line("FG0000000100", "0", "REFUND", 9900, 0),
            line("FG0000000100", "FG0000000100-R1", "REFUND", 0, 900),
            line("FG0000000101", "0", "SUCCESS", 1, 0),
            line("PLANTED0001", "0", "SUCCESS", 500, 0),
        ],
        "the unpaid order is not in the bill"
    );
    assert_eq!(parsed.summary.trade_count, 4);
    assert!(parsed
        .rows
        .iter()
        .all(|row| row.mchid == MCHID && row.appid == APPID));

    let yesterday_ms = now_ms() - 86_400_000;
    let planted = PlantedPayment {
        paid_at_ms: Some(yesterday_ms),
        ..PlantedPayment::new("PLANTED0009", 700)
    };
    merchant.sim.plant_payment(planted).unwrap();
    let yesterday = merchant.trade_bill(&beijing_date(yesterday_ms)).await;
    let lines: Vec<_> = yesterday.rows.iter().map(bill_line).collect();
    assert_eq!(lines, [line("PLANTED0009", "0", "SUCCESS", 700, 0)]);

    let empty = merchant
        .call("GET", "/v3/bill/tradebill?bill_date=2001-01-01", "")
        .await;
    assert_eq!(
        (empty.status, empty.code().as_str()),
        (400, "NO_STATEMENT_EXIST")
    );
    let bad_date = merchant
        .call("GET", "/v3/bill/tradebill?bill_date=yesterday", "")
        .await;
    assert_eq!(
        (bad_date.status, bad_date.code().as_str()),
        (400, "PARAM_ERROR")
    );
    merchant.sim.shutdown().await;
}

// ---------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------

#[tokio::test]
async fn fail_next_answers_the_scripted_errors_then_normally() {
    let merchant = start(paused()).await;
    let fail = |endpoint: &str, status: u16, code: &str| FailNext {
        endpoint: endpoint.into(),
        count: 1,
        status,
        code: code.into(),
        message: None,
    };
    merchant.sim.set_faults(Faults {
        fail_next: vec![
            fail("prepay", 500, "SYSTEM_ERROR"),
            fail("query", 429, "FREQUENCY_LIMITED"),
        ],
        ..paused()
    });
    let body = prepay_body("FG0000000110", 100, NOWHERE);
    let failed = merchant
        .call("POST", "/v3/pay/transactions/jsapi", &body)
        .await;
    assert_eq!(
        (failed.status, failed.code().as_str()),
        (500, "SYSTEM_ERROR")
    );
    assert!(
        merchant.sim.order("FG0000000110").is_none(),
        "failed before any state change"
    );
    let created = merchant
        .call("POST", "/v3/pay/transactions/jsapi", &body)
        .await;
    assert_eq!(created.status, 200);

    let limited = merchant.query("FG0000000110").await;
    assert_eq!(
        (limited.status, limited.code().as_str()),
        (429, "FREQUENCY_LIMITED")
    );
    assert_eq!(merchant.query("FG0000000110").await.status, 200);
    assert!(merchant.sim.faults().fail_next.is_empty());
    merchant.sim.shutdown().await;
}

// ---------------------------------------------------------------------------
// The control plane
// ---------------------------------------------------------------------------

/// An unsigned `/sim/v1/` call.
async fn control(address: &str, method: &str, path: &str, body: Value) -> Answer {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("Host", address)
        .header("Content-Type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    exchange(address, request).await
}

#[tokio::test]
async fn the_control_plane_pays_and_shows_orders_faults_and_deliveries() {
    let merchant = start(paused()).await;
    let address = merchant.address();
    let faults = control(&address, "PUT", "/sim/v1/faults", json!({})).await;
    assert_eq!(faults.status, 200, "{faults:?}");
    assert_eq!(
        faults.typed::<Faults>(),
        Faults::default(),
        "missing keys are off"
    );
    let mut endpoint = NotifyEndpoint::start(&[]).await;
    let prepay_id = merchant.prepay("FG0000000120", 100, &endpoint.url).await;

    let paid = control(
        &address,
        "POST",
        "/sim/v1/pay",
        json!({"prepay_id": prepay_id}),
    )
    .await;
    assert_eq!(paid.status, 200, "{paid:?}");
    assert_eq!(paid.typed::<Transaction>().trade_state, TradeState::Success);
    let order = control(&address, "GET", "/sim/v1/orders/FG0000000120", Value::Null).await;
    assert_eq!(order.typed::<Transaction>(), paid.typed::<Transaction>());
    endpoint
        .next("the notification of a payment made over the control plane")
        .await;
    merchant.deliveries(1).await;
    let deliveries = control(&address, "GET", "/sim/v1/deliveries", Value::Null).await;
    let deliveries = deliveries.json();
    assert_eq!(deliveries[0]["kind"], "normal", "{deliveries}");
    assert_eq!(
        deliveries[0]["outcome"],
        json!({"result": "answered", "status": 200})
    );

    let again = json!({"out_trade_no": "FG0000000120"});
    let refused = control(&address, "POST", "/sim/v1/pay", again).await;
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (409, "ORDER_PAID")
    );
    let both = json!({"out_trade_no": "FG0000000120", "prepay_id": "wx1"});
    assert_eq!(
        control(&address, "POST", "/sim/v1/pay", both).await.status,
        400
    );
    let unknown = control(&address, "GET", "/sim/v1/refunds/NO-SUCH", Value::Null).await;
    assert_eq!(unknown.status, 404);
    merchant.sim.shutdown().await;
}

// ---------------------------------------------------------------------------
// The standalone process
// ---------------------------------------------------------------------------

/// `flashgate wxpay-sim` once it printed its ready line. Killed if the test
/// fails before it exited; its directory is removed.
struct Process {
    child: std::process::Child,
    dir: std::path::PathBuf,
    address: String,
    public_key_id: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Process {
    /// Starts the simulator with the cached merchant and platform keys and
    /// waits (bounded) for `wxpay-sim listening on http://ADDR public_key_id=…`.
    fn start() -> Process {
        let dir = std::env::temp_dir().join(format!(
            "flashgate-wxpay-sim-{}-{}",
            std::process::id(),
            now_ms()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, pem: String| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        let merchant_public = write(
            "merchant_public.pem",
            merchant_key().public_key_pem().unwrap(),
        );
        let platform_private = write(
            "platform_private.pem",
            platform_key().private_key_pem().unwrap(),
        );
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_flashgate"))
            .args([
                "wxpay-sim",
                "--listen",
                "127.0.0.1:0",
                "--mchid",
                MCHID,
                "--appid",
                APPID,
            ])
            .args([
                "--merchant-serial-no",
                MERCHANT_SERIAL,
                "--time-scale",
                "0.001",
            ])
            .arg("--merchant-public-key")
            .arg(&merchant_public)
            .arg("--platform-private-key")
            .arg(&platform_private)
            .arg("--platform-public-key-out")
            .arg(dir.join("wxp_pub.pem"))
            .env("FLASHGATE_SIM_APIV3_KEY", APIV3_KEY)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .spawn()
            .expect("spawn flashgate wxpay-sim");
        let stdout = child.stdout.take().unwrap();
        let mut process = Process {
            child,
            dir,
            address: String::new(),
            public_key_id: String::new(),
        };
        let (line_sender, line_receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
            let _ = line_sender.send(line);
        });
        let line = line_receiver.recv_timeout(WAIT).unwrap_or_else(|_| {
            panic!(
                "timed out after {WAIT:?} waiting for the ready line; stderr:\n{}",
                process.stderr()
            )
        });
        let ready = line
            .trim_end()
            .strip_prefix("wxpay-sim listening on http://");
        let Some((address, public_key_id)) =
            ready.and_then(|rest| rest.split_once(" public_key_id="))
        else {
            panic!(
                "unexpected ready line {line:?}; stderr:\n{}",
                process.stderr()
            );
        };
        process.address = address.to_owned();
        process.public_key_id = public_key_id.to_owned();
        process
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    async fn control(&self, method: &str, path: &str, body: Value) -> Answer {
        control(&self.address, method, path, body).await
    }

    /// A signed `GET`, as the merchant's client sends it.
    async fn signed_get(&self, path: &str) -> Answer {
        let (timestamp, nonce) = (now_secs(), nonce_str());
        let message = request_message("GET", path, timestamp, &nonce, b"");
        let signature = merchant_key().sign(&message).unwrap();
        let authorization =
            authorization_header(MCHID, MERCHANT_SERIAL, &nonce, timestamp, &signature);
        let request = Request::builder()
            .uri(path)
            .header("Host", self.address.as_str())
            .header("Accept", "application/json")
            .header("User-Agent", USER_AGENT)
            .header("Authorization", authorization)
            .body(Full::new(Bytes::new()))
            .unwrap();
        exchange(&self.address, request).await
    }

    /// SIGTERM, then the exit status (bounded wait).
    async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        assert!(killed.expect("run kill").success(), "kill -TERM {pid}");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            let stderr = self.stderr();
            assert!(
                Instant::now() < deadline,
                "no exit within {WAIT:?} of SIGTERM; stderr:\n{stderr}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn the_standalone_simulator_serves_until_sigterm() {
    let mut process = Process::start();
    let id = &process.public_key_id;
    assert!(
        id.starts_with("PUB_KEY_ID_") && id.len() == "PUB_KEY_ID_".len() + 34,
        "{id}"
    );

    let planted = json!({"out_trade_no": "PLANTED0002", "total_fen": 300});
    let planted = process
        .control("POST", "/sim/v1/planted-payments", planted)
        .await;
    assert_eq!(planted.status, 201, "{planted:?}");
    let paid_again = json!({"out_trade_no": "PLANTED0002"});
    let refused = process.control("POST", "/sim/v1/pay", paid_again).await;
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (409, "ORDER_PAID")
    );
    let unknown = process
        .control("POST", "/sim/v1/pay", json!({"prepay_id": "wx0"}))
        .await;
    assert_eq!(unknown.status, 404);
    let invalid = process
        .control("PUT", "/sim/v1/faults", json!({"probe_rate": 2.0}))
        .await;
    assert_eq!(invalid.status, 400, "an invalid fault set is refused");

    let written = std::fs::read_to_string(process.dir.join("wxp_pub.pem"))
        .expect("the public key was written");
    assert_eq!(
        written,
        platform_key().public_key_pem().unwrap(),
        "the given platform key signs"
    );
    let verifier = Verifier::with_key(id.as_str(), RsaVerifier::from_spki_pem(&written).unwrap());
    let answer = process
        .signed_get(&format!(
            "/v3/pay/transactions/out-trade-no/PLANTED0002?mchid={MCHID}"
        ))
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let headers = SignedHeaders::from_header_map(&answer.headers);
    verifier
        .verify(&headers, &answer.body, now_secs())
        .expect("the answer verifies");
    assert_eq!(
        answer.typed::<Transaction>().trade_state,
        TradeState::Success
    );

    let status = process.terminate().await;
    assert!(
        status.success(),
        "exited with {status}; stderr:\n{}",
        process.stderr()
    );
}
