//! `PayClient` over real HTTP against a tiny scripted WeChat Pay stand-in
//! (not the simulator): the stand-in checks every request's signature with
//! the merchant's public key and answers signed with a test platform key,
//! or with whatever failure the test scripts.
//!
//! Every wait is bounded: a request the stand-in never answers fails the
//! test through the client's own timeout, never hangs it.

use bytes::Bytes;
use flashgate::pay::crypto::{self, RsaSigner, RsaVerifier};
use flashgate::pay::wire::{RefundRequest, RefundRequestAmount, TradeState};
use flashgate::pay::{JsapiPrepay, MerchantConfig, PayClient, PayError, VerifyError};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

const MCHID: &str = "1230000109";
const APPID: &str = "wxd678efh567hg6787";
const MERCHANT_SERIAL: &str = "1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C";
const PUBLIC_KEY_ID: &str = "PUB_KEY_ID_0000000000000024101100397200000006";
const APIV3_KEY: &str = "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb";
const PREPAY_ID: &str = "wx201410272009395522657a690389285100";

/// The merchant key, generated once per test binary.
fn merchant_signer() -> &'static RsaSigner {
    static KEY: OnceLock<RsaSigner> = OnceLock::new();
    KEY.get_or_init(|| RsaSigner::generate().expect("RSA-2048 generation"))
}

/// The platform ("WeChat Pay public key") signer: the Go SDK's test key.
fn platform_signer() -> &'static RsaSigner {
    static KEY: OnceLock<RsaSigner> = OnceLock::new();
    KEY.get_or_init(|| {
        let pem = include_str!("../src/pay/testdata/wechatpay_go_test_key.pem")
            .replace("TESTING KEY", "PRIVATE KEY");
        RsaSigner::from_pkcs8_pem(&pem).unwrap()
    })
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

// ---------------------------------------------------------------------------
// The stand-in
// ---------------------------------------------------------------------------

/// What the stand-in saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path_and_query: String,
    body: Vec<u8>,
    nonce: String,
    signature_valid: bool,
    mchid: String,
    serial_no: String,
    accept: Option<String>,
    user_agent: Option<String>,
    content_type: Option<String>,
    wechatpay_serial: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Signing {
    Valid,
    Wrong,
    Absent,
}

/// One scripted answer.
#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    body: Vec<u8>,
    signing: Signing,
    delay: Duration,
}

impl Reply {
    fn json(status: u16, body: &str) -> Self {
        Self {
            status,
            body: body.as_bytes().to_vec(),
            signing: Signing::Valid,
            delay: Duration::ZERO,
        }
    }

    fn error(status: u16, code: &str) -> Self {
        Self::json(
            status,
            &format!(r#"{{"code":"{code}","message":"{code} from the stand-in"}}"#),
        )
    }

    fn signing(self, signing: Signing) -> Self {
        Self { signing, ..self }
    }

    fn delayed(self, delay: Duration) -> Self {
        Self { delay, ..self }
    }
}

type Script = dyn Fn(usize, &Seen) -> Reply + Send + Sync;

struct StandIn {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl StandIn {
    /// Serves `script(index_of_request, request)` on a loopback port until
    /// the test's runtime ends.
    async fn start(script: impl Fn(usize, &Seen) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let script: Arc<Script> = Arc::new(script);
        let seen_by_server = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen_by_server.clone();
                let script = script.clone();
                tokio::spawn(async move {
                    let service =
                        service_fn(move |request| answer(request, seen.clone(), script.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, seen }
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn answer(
    request: Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Script>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|body| body.to_bytes().to_vec())
        .unwrap_or_default();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let params = header("authorization").and_then(|value| crypto::parse_authorization(&value).ok());
    let merchant_key =
        RsaVerifier::from_spki_pem(&merchant_signer().public_key_pem().unwrap()).unwrap();
    let signature_valid = params.as_ref().is_some_and(|params| {
        let message = crypto::request_message(
            parts.method.as_str(),
            &path_and_query,
            params.timestamp.parse().unwrap_or(0),
            &params.nonce_str,
            &body,
        );
        (params.timestamp.parse::<i64>().unwrap_or(0) - now_secs()).abs() < 300
            && merchant_key.verify(&message, &params.signature)
    });
    let params = params.unwrap_or(crypto::AuthorizationParams {
        mchid: String::new(),
        nonce_str: String::new(),
        timestamp: String::new(),
        serial_no: String::new(),
        signature: String::new(),
    });
    let request_seen = Seen {
        method: parts.method.to_string(),
        path_and_query,
        body,
        nonce: params.nonce_str,
        signature_valid,
        mchid: params.mchid,
        serial_no: params.serial_no,
        accept: header("accept"),
        user_agent: header("user-agent"),
        content_type: header("content-type"),
        wechatpay_serial: header("wechatpay-serial"),
    };
    let index = {
        let mut seen = seen.lock().unwrap();
        seen.push(request_seen.clone());
        seen.len() - 1
    };
    let reply = if request_seen.signature_valid {
        script(index, &request_seen)
    } else {
        Reply::error(401, "SIGN_ERROR")
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = Response::builder()
        .status(reply.status)
        .header("content-type", "application/json");
    if reply.signing != Signing::Absent {
        let timestamp = now_secs();
        let nonce = crypto::nonce_str();
        let signed_body: &[u8] = if reply.signing == Signing::Wrong {
            b"something else"
        } else {
            &reply.body
        };
        let signature = platform_signer()
            .sign(&crypto::response_message(timestamp, &nonce, signed_body))
            .unwrap();
        response = response
            .header("Wechatpay-Timestamp", timestamp.to_string())
            .header("Wechatpay-Nonce", nonce)
            .header("Wechatpay-Signature", signature)
            .header("Wechatpay-Serial", PUBLIC_KEY_ID)
            .header("Wechatpay-Signature-Type", crypto::SIGNATURE_TYPE);
    }
    Ok(response.body(Full::new(Bytes::from(reply.body))).unwrap())
}

// ---------------------------------------------------------------------------
// Client set-up
// ---------------------------------------------------------------------------

fn config(base_url: &str) -> MerchantConfig {
    MerchantConfig {
        mchid: MCHID.into(),
        appid: APPID.into(),
        merchant_serial_no: MERCHANT_SERIAL.into(),
        merchant_private_key_pem: merchant_signer().private_key_pem().unwrap(),
        apiv3_key: APIV3_KEY.into(),
        wechatpay_public_key_id: PUBLIC_KEY_ID.into(),
        wechatpay_public_key_pem: platform_signer().public_key_pem().unwrap(),
        base_url: base_url.into(),
        backup_base_url: None,
        notify_url: "https://shop.example.com/v1/pay/notify".into(),
        timeout_ms: 3_000,
        attempts_max: 3,
        requests_per_second_max: 400,
        user_agent: "flashgate/test".into(),
    }
}

fn order() -> JsapiPrepay {
    JsapiPrepay {
        description: "直播间秒杀-保温杯".into(),
        out_trade_no: "FG20261124A0001".into(),
        time_expire: "2026-11-24T20:30:00+08:00".into(),
        attach: Some("sale=7".into()),
        total_fen: 9900,
        openid: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".into(),
    }
}

fn prepay_ok() -> Reply {
    Reply::json(200, &format!(r#"{{"prepay_id":"{PREPAY_ID}"}}"#))
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[tokio::test]
async fn prepay_round_trip_is_signed_both_ways_and_payment_is_signed_for_the_mini_program() {
    let server = StandIn::start(|_, _| prepay_ok()).await;
    let client = PayClient::new(&config(&server.base_url())).unwrap();
    assert_eq!(client.prepay_jsapi(&order()).await.unwrap(), PREPAY_ID);

    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert!(request.signature_valid);
    assert_eq!(request.method, "POST");
    assert_eq!(request.path_and_query, "/v3/pay/transactions/jsapi");
    assert_eq!(request.mchid, MCHID);
    assert_eq!(request.serial_no, MERCHANT_SERIAL);
    assert_eq!(request.nonce.len(), 32);
    assert_eq!(request.accept.as_deref(), Some("application/json"));
    assert_eq!(request.user_agent.as_deref(), Some("flashgate/test"));
    assert_eq!(request.content_type.as_deref(), Some("application/json"));
    assert_eq!(request.wechatpay_serial.as_deref(), Some(PUBLIC_KEY_ID));
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["appid"], APPID);
    assert_eq!(body["mchid"], MCHID);
    assert_eq!(body["out_trade_no"], "FG20261124A0001");
    assert_eq!(body["notify_url"], "https://shop.example.com/v1/pay/notify");
    assert_eq!(
        body["amount"],
        serde_json::json!({"total": 9900, "currency": "CNY"})
    );
    assert_eq!(body["payer"]["openid"], "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o");
    assert_eq!(body["attach"], "sale=7");

    let payment = client.request_payment(PREPAY_ID, 1_764_000_000).unwrap();
    assert_eq!(payment.app_id, APPID);
    assert_eq!(payment.time_stamp, "1764000000");
    assert_eq!(payment.package, format!("prepay_id={PREPAY_ID}"));
    assert_eq!(payment.sign_type, "RSA");
    assert_eq!(payment.nonce_str.len(), 32);
    let message =
        crypto::pay_sign_message(APPID, 1_764_000_000, &payment.nonce_str, &payment.package);
    let merchant_key =
        RsaVerifier::from_spki_pem(&merchant_signer().public_key_pem().unwrap()).unwrap();
    assert!(merchant_key.verify(&message, &payment.pay_sign));
    assert_ne!(
        client
            .request_payment(PREPAY_ID, 1_764_000_000)
            .unwrap()
            .nonce_str,
        payment.nonce_str
    );
}

#[tokio::test]
async fn an_answer_without_a_valid_signature_is_not_data() {
    // A signature that does not verify may be a probe: asked again, then
    // an error. No signature at all is never data and never asked again.
    for (signing, expected, attempts) in [
        (Signing::Wrong, VerifyError::BadSignature, 3),
        (
            Signing::Absent,
            VerifyError::MissingHeader("Wechatpay-Timestamp"),
            1,
        ),
    ] {
        let server = StandIn::start(move |_, _| prepay_ok().signing(signing)).await;
        let client = PayClient::new(&config(&server.base_url())).unwrap();
        assert_eq!(
            client.prepay_jsapi(&order()).await,
            Err(PayError::Verify(expected))
        );
        assert_eq!(server.seen().len(), attempts, "{signing:?}");
    }
}

#[tokio::test]
async fn system_error_twice_then_success_retries_the_same_body_with_fresh_nonces() {
    let server = StandIn::start(|index, _| {
        if index < 2 {
            Reply::error(500, "SYSTEM_ERROR")
        } else {
            prepay_ok()
        }
    })
    .await;
    let client = PayClient::new(&config(&server.base_url())).unwrap();
    assert_eq!(client.prepay_jsapi(&order()).await.unwrap(), PREPAY_ID);

    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|request| request.signature_valid));
    assert!(
        seen.iter().all(|request| request.body == seen[0].body),
        "same body every attempt"
    );
    for request in &seen {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["out_trade_no"], "FG20261124A0001");
    }
    assert_ne!(seen[0].nonce, seen[1].nonce);
    assert_ne!(seen[1].nonce, seen[2].nonce);
    assert_ne!(seen[0].nonce, seen[2].nonce);
}

#[tokio::test]
async fn frequency_limited_is_retried_and_param_error_is_not() {
    let server = StandIn::start(|index, _| {
        if index == 0 {
            Reply::error(429, "FREQUENCY_LIMITED")
        } else {
            prepay_ok()
        }
    })
    .await;
    let client = PayClient::new(&config(&server.base_url())).unwrap();
    assert_eq!(client.prepay_jsapi(&order()).await.unwrap(), PREPAY_ID);
    assert_eq!(server.seen().len(), 2);

    let server = StandIn::start(|_, _| Reply::error(400, "PARAM_ERROR")).await;
    let client = PayClient::new(&config(&server.base_url())).unwrap();
    let error = client.prepay_jsapi(&order()).await.unwrap_err();
    assert_eq!(
        error,
        PayError::Api {
            status: 400,
            code: "PARAM_ERROR".into(),
            message: "PARAM_ERROR from the stand-in".into()
        }
    );
    assert!(!error.is_retryable());
    assert_eq!(server.seen().len(), 1, "a 4xx is final");

    let server = StandIn::start(|_, _| Reply::error(500, "SYSTEM_ERROR")).await;
    let client = PayClient::new(&config(&server.base_url())).unwrap();
    assert!(matches!(
        client.prepay_jsapi(&order()).await,
        Err(PayError::Api { status: 500, .. })
    ));
    assert_eq!(server.seen().len(), 3, "attempts_max bounds the retries");
}

#[tokio::test]
async fn a_timeout_is_retried_then_reported() {
    let server = StandIn::start(|_, _| prepay_ok().delayed(Duration::from_millis(1_500))).await;
    let client = PayClient::new(&MerchantConfig {
        timeout_ms: 200,
        attempts_max: 2,
        ..config(&server.base_url())
    })
    .unwrap();
    let started = Instant::now();
    assert_eq!(client.prepay_jsapi(&order()).await, Err(PayError::Timeout));
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(400),
        "two attempts of 200 ms: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(1_400),
        "no attempt waited for the slow answer: {elapsed:?}"
    );
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn connection_failures_on_the_primary_move_to_the_backup_host() {
    // A port that was just free: connecting to it is refused.
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let backup = StandIn::start(|_, _| prepay_ok()).await;
    let client = PayClient::new(&MerchantConfig {
        backup_base_url: Some(backup.base_url()),
        ..config(&format!("http://{closed}"))
    })
    .unwrap();
    assert_eq!(client.prepay_jsapi(&order()).await.unwrap(), PREPAY_ID);
    assert_eq!(backup.seen().len(), 1);

    let without_backup = PayClient::new(&config(&format!("http://{closed}"))).unwrap();
    let error = without_backup.prepay_jsapi(&order()).await.unwrap_err();
    assert!(matches!(error, PayError::Connection(_)), "{error:?}");
}

#[tokio::test]
async fn query_close_and_refund_use_the_documented_paths() {
    let server = StandIn::start(|_, request| match (request.method.as_str(), request.path_and_query.as_str()) {
        ("GET", "/v3/pay/transactions/out-trade-no/FG20261124A0001?mchid=1230000109")
        | ("GET", "/v3/pay/transactions/id/4200000985202103031441826014?mchid=1230000109") => Reply::json(
            200,
            r#"{"appid":"wxd678efh567hg6787","mchid":"1230000109","out_trade_no":"FG20261124A0001",
                "transaction_id":"4200000985202103031441826014","trade_type":"JSAPI","trade_state":"SUCCESS",
                "trade_state_desc":"支付成功","success_time":"2026-11-24T20:15:03+08:00","payer":{"openid":"o"},
                "amount":{"total":9900,"payer_total":9900,"currency":"CNY","payer_currency":"CNY"},"new_key":1}"#,
        ),
        ("POST", "/v3/pay/transactions/out-trade-no/A%7CB%2A001/close") => Reply::json(204, ""),
        ("POST", "/v3/refund/domestic/refunds") | ("GET", "/v3/refund/domestic/refunds/FG20261124A0001-R1") => {
            Reply::json(
                200,
                r#"{"refund_id":"50200207182018070300011301001","out_refund_no":"FG20261124A0001-R1",
                    "transaction_id":"4200000985202103031441826014","out_trade_no":"FG20261124A0001",
                    "channel":"ORIGINAL","status":"PROCESSING","create_time":"2026-11-24T21:00:00+08:00",
                    "amount":{"total":9900,"refund":9900,"payer_total":9900,"payer_refund":9900,"currency":"CNY"}}"#,
            )
        }
        _ => Reply::error(404, "RESOURCE_NOT_EXISTS"),
    })
    .await;
    let client = PayClient::new(&config(&server.base_url())).unwrap();

    let paid = client
        .query_by_out_trade_no("FG20261124A0001")
        .await
        .unwrap();
    assert_eq!(paid.trade_state, TradeState::Success);
    assert_eq!(paid.amount.payer_total, Some(9900));
    let by_id = client
        .query_by_transaction_id("4200000985202103031441826014")
        .await
        .unwrap();
    assert_eq!(by_id, paid);

    client.close("A|B*001").await.unwrap();
    let close = server
        .seen()
        .into_iter()
        .find(|seen| seen.path_and_query.ends_with("/close"))
        .unwrap();
    assert_eq!(close.body, br#"{"mchid":"1230000109"}"#);

    let refund = client
        .refund(&RefundRequest {
            transaction_id: None,
            out_trade_no: Some("FG20261124A0001".into()),
            out_refund_no: "FG20261124A0001-R1".into(),
            reason: Some("商品已售完".into()),
            notify_url: None,
            amount: RefundRequestAmount {
                refund: 9900,
                total: 9900,
                currency: "CNY".into(),
            },
        })
        .await
        .unwrap();
    assert_eq!(refund.amount.refund, 9900);
    assert_eq!(
        client.query_refund("FG20261124A0001-R1").await.unwrap(),
        refund
    );

    assert!(matches!(
        client.query_by_out_trade_no("FG20261124B9999").await,
        Err(PayError::Api { status: 404, .. })
    ));
    assert!(server.seen().iter().all(|seen| seen.signature_valid));
    assert!(server
        .seen()
        .iter()
        .all(|seen| seen.content_type.is_some() == (seen.method == "POST")));
}

#[tokio::test]
async fn close_refuses_a_2xx_other_than_204() {
    let server = StandIn::start(|_, _| Reply::json(200, "{}")).await;
    let client = PayClient::new(&config(&server.base_url())).unwrap();
    assert_eq!(
        client.close("FG20261124A0001").await,
        Err(PayError::UnexpectedStatus(200))
    );
}

fn bill_stand_in(
    bill: &'static str,
    hash_value: String,
) -> impl Fn(usize, &Seen) -> Reply + Send + Sync {
    move |_, request| {
        match request.path_and_query.as_str() {
        "/v3/bill/tradebill?bill_date=2026-11-23&bill_type=ALL" => Reply::json(
            200,
            &format!(
                r#"{{"hash_type":"SHA1","hash_value":"{hash_value}",
                    "download_url":"https://api.mch.weixin.qq.com/v3/billdownload/file?token=6XIv5TUPto7pByrTQKhd6kwvyKLG2uY2wMMR8cNXqaA_Cv_isgaUtBzp4QtiozLO"}}"#
            ),
        ),
        "/v3/billdownload/file?token=6XIv5TUPto7pByrTQKhd6kwvyKLG2uY2wMMR8cNXqaA_Cv_isgaUtBzp4QtiozLO" => Reply {
            status: 200,
            body: bill.as_bytes().to_vec(),
            signing: Signing::Absent,
            delay: Duration::ZERO,
        },
        _ => Reply::error(404, "NO_STATEMENT_EXIST"),
    }
    }
}

#[tokio::test]
async fn trade_bill_downloads_from_the_configured_host_and_checks_sha1() {
    const BILL: &str = "交易时间,公众账号ID\r\n`2026-11-23 10:00:01,`wxd678efh567hg6787\r\n";
    let server = StandIn::start(bill_stand_in(BILL, crypto::sha1_hex(BILL.as_bytes()))).await;
    let client = PayClient::new(&config(&server.base_url())).unwrap();
    assert_eq!(client.trade_bill("2026-11-23").await.unwrap(), BILL);
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter().all(|request| request.signature_valid),
        "the download is signed too"
    );

    let server = StandIn::start(bill_stand_in(BILL, "0".repeat(40))).await;
    let client = PayClient::new(&config(&server.base_url())).unwrap();
    assert_eq!(
        client.trade_bill("2026-11-23").await,
        Err(PayError::BillHash {
            expected: "0".repeat(40),
            actual: crypto::sha1_hex(BILL.as_bytes())
        })
    );
    assert!(matches!(
        client.trade_bill("2026-11").await,
        Err(PayError::Request(_))
    ));
}

#[tokio::test]
async fn the_rate_limiter_holds_calls_under_the_configured_rate() {
    const CALLS: u32 = 30;
    const PER_SECOND: u32 = 20;
    let server = StandIn::start(|_, _| prepay_ok()).await;
    let client = PayClient::new(&MerchantConfig {
        requests_per_second_max: PER_SECOND,
        ..config(&server.base_url())
    })
    .unwrap();
    let started = Instant::now();
    let calls: Vec<_> = (0..CALLS)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.prepay_jsapi(&order()).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), PREPAY_ID);
    }
    let elapsed = started.elapsed();
    // A burst of 2 (a tenth of a second's worth), then one every 50 ms.
    let floor = Duration::from_millis(50 * u64::from(CALLS - 2));
    assert!(
        elapsed >= floor,
        "{CALLS} calls at {PER_SECOND}/s took {elapsed:?}, under {floor:?}"
    );
    assert!(elapsed < floor + Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(server.seen().len(), CALLS as usize);
}

#[tokio::test]
async fn beyond_the_wait_bound_the_limiter_refuses_without_sending() {
    let server = StandIn::start(|_, _| prepay_ok()).await;
    // One per second with a 2 s wait bound: the fourth queued call would wait 3 s.
    let client = PayClient::new(&MerchantConfig {
        requests_per_second_max: 1,
        ..config(&server.base_url())
    })
    .unwrap();
    let outcomes: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.query_by_out_trade_no("FG20261124A0001").await })
        })
        .collect();
    let mut refused = 0;
    for outcome in outcomes {
        if let Err(PayError::RateLimited { wait_ms }) = outcome.await.unwrap() {
            assert!(wait_ms > 2_000);
            refused += 1;
        }
    }
    assert_eq!(refused, 1);
    assert_eq!(server.seen().len(), 3);
}

#[tokio::test]
async fn bad_configuration_is_refused_up_front() {
    let good = config("http://127.0.0.1:9");
    for bad in [
        MerchantConfig {
            apiv3_key: "testMchAPIv3Key0".into(),
            ..good.clone()
        },
        MerchantConfig {
            attempts_max: 0,
            ..good.clone()
        },
        MerchantConfig {
            requests_per_second_max: 0,
            ..good.clone()
        },
        MerchantConfig {
            base_url: "https://api.mch.weixin.qq.com/v3".into(),
            ..good.clone()
        },
        MerchantConfig {
            merchant_private_key_pem: "nope".into(),
            ..good.clone()
        },
        MerchantConfig {
            wechatpay_public_key_pem: good.merchant_private_key_pem.clone(),
            ..good.clone()
        },
    ] {
        assert!(PayClient::new(&bad).is_err(), "{bad:?}");
    }
    assert!(PayClient::new(&good).is_ok());
    assert!(PayClient::new(&MerchantConfig {
        base_url: "https://api.mch.weixin.qq.com".into(),
        backup_base_url: Some("https://api2.mch.weixin.qq.com".into()),
        ..good
    })
    .is_ok());
}
