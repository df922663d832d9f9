//! The merchant's HTTP client for WeChat Pay APIv3: JSAPI prepay, query,
//! close, refund, refund query, trade bill, and the `wx.requestPayment`
//! arguments.
//!
//! One [`PayClient`] per merchant, cheap to clone (an `Arc`). Every call:
//! 1. takes a slot from the client's rate limiter (shared by all calls; the
//!    background lane, [`PayClient::background`], is held to a share of it);
//! 2. signs `METHOD\ncanonical URL\nts\nnonce\nbody\n` with the merchant key
//!    (canonical URL = path + `?` + raw query, byte-identical to the wire);
//! 3. sends it with `Authorization`, `Accept`, `User-Agent`, `Content-Type`
//!    on bodies and `Wechatpay-Serial` = the WeChat Pay public key id, so
//!    WeChat answers signed with that key;
//! 4. verifies a 2xx (ts, nonce, raw body) before parsing it: a 2xx without a
//!    valid signature is `PayError::Verify`, never data. Error answers are
//!    read without verification (whether WeChat signs them is not
//!    documented, and the SDKs do not check them); the bill download is the
//!    one documented unsigned 2xx.
//!
//! Retries: at most `attempts_max` attempts, only for
//! [`PayError::is_retryable`] failures, full-jitter exponential backoff
//! (base 100 ms, cap 2 s), the same body each time (so the same
//! out_trade_no / out_refund_no, which WeChat treats idempotently) re-signed
//! with a fresh nonce and timestamp. After a connection failure or a 5xx, the
//! remaining attempts go to `backup_base_url` when one is configured.
//!
//! Transport: hyper 1 through hyper-util's pooled client; HTTPS with rustls
//! on the aws-lc-rs provider and the Mozilla roots compiled in; plain HTTP
//! is accepted too, for the simulator.

use super::crypto::{self, RsaSigner, RsaVerifier, SignedHeaders, Verifier, HEADER_SERIAL};
use super::limiter::{Lane, LaneLimiter};
use super::notify::NotificationVerifier;
use super::wire::{
    CloseRequest, ErrorBody, JsapiPrepayRequest, Payer, PrepayAmount, PrepayResponse, Refund,
    RefundRequest, RequestPayment, TradeBillResponse, Transaction, CURRENCY_CNY,
};
use super::{ApiV3Key, PayError};
use crate::metrics as names;
use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::uri::{Authority, Scheme};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// First retry waits up to this long (full jitter: uniformly 0..=bound).
const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// No retry waits longer than this.
const BACKOFF_CAP: Duration = Duration::from_secs(2);
/// A configured `attempts_max` above this is refused: more would hold an
/// order's caller for minutes.
pub const ATTEMPTS_MAX_LIMIT: u32 = 10;
/// The longest a call waits for a rate-limiter slot before failing with
/// `PayError::RateLimited`.
pub const RATE_LIMIT_WAIT_MAX: Duration = Duration::from_secs(2);
/// The longest a background call waits for its share's slot (then for a
/// slot of the whole rate, as any call). Nobody waits on these calls, and
/// one refused is asked again by the next sweep.
pub const BACKGROUND_WAIT_MAX: Duration = Duration::from_secs(30);
/// JSON responses are small; anything larger is refused.
const RESPONSE_BYTES_MAX: usize = 1024 * 1024;
/// A day's bill of one merchant; refused above this.
pub const BILL_BYTES_MAX: usize = 512 * 1024 * 1024;
/// Idle pooled connections kept per host.
const POOL_IDLE_PER_HOST_MAX: usize = 64;
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything the client needs to act for one merchant.
#[derive(Clone)]
pub struct MerchantConfig {
    pub mchid: String,
    /// The Mini Program's AppID.
    pub appid: String,
    /// Serial of the merchant API certificate that matches the private key.
    pub merchant_serial_no: String,
    /// `apiclient_key.pem`, PKCS#8.
    pub merchant_private_key_pem: String,
    /// 32 ASCII characters.
    pub apiv3_key: String,
    /// `PUB_KEY_ID_...`.
    pub wechatpay_public_key_id: String,
    /// `wxp_pub.pem`, SubjectPublicKeyInfo.
    pub wechatpay_public_key_pem: String,
    /// `https://api.mch.weixin.qq.com` (scheme and host only).
    pub base_url: String,
    /// `https://api2.mch.weixin.qq.com`.
    pub backup_base_url: Option<String>,
    pub notify_url: String,
    /// Per attempt: connect, send and read the whole answer.
    pub timeout_ms: u64,
    pub attempts_max: u32,
    pub requests_per_second_max: u32,
    pub user_agent: String,
}

impl fmt::Debug for MerchantConfig {
    /// Keys stay out of logs.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("MerchantConfig")
            .field("mchid", &self.mchid)
            .field("appid", &self.appid)
            .field("merchant_serial_no", &self.merchant_serial_no)
            .field("wechatpay_public_key_id", &self.wechatpay_public_key_id)
            .field("base_url", &self.base_url)
            .field("backup_base_url", &self.backup_base_url)
            .field("notify_url", &self.notify_url)
            .field("timeout_ms", &self.timeout_ms)
            .field("attempts_max", &self.attempts_max)
            .field("requests_per_second_max", &self.requests_per_second_max)
            .field("user_agent", &self.user_agent)
            .finish_non_exhaustive()
    }
}

/// A JSAPI (Mini Program) order to pay; the merchant's ids and the notify
/// URL come from [`MerchantConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsapiPrepay {
    pub description: String,
    /// 6–32 characters: digits, letters, `_ - | *`.
    pub out_trade_no: String,
    /// RFC 3339 payment deadline.
    pub time_expire: String,
    pub attach: Option<String>,
    /// At least 1 fen.
    pub total_fen: i64,
    pub openid: String,
}

/// One merchant's WeChat Pay client. Clones share the connection pool and
/// the rate limiter.
#[derive(Clone)]
pub struct PayClient {
    inner: Arc<Inner>,
    lane: Lane,
}

struct Inner {
    mchid: String,
    appid: String,
    merchant_serial_no: String,
    public_key_id: HeaderValue,
    notify_url: String,
    user_agent: HeaderValue,
    signer: RsaSigner,
    notifications: NotificationVerifier,
    primary: Origin,
    backup: Option<Origin>,
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    limiter: LaneLimiter,
    attempt_timeout: Duration,
    attempts_max: u32,
}

/// Scheme and authority of a base URL.
#[derive(Debug, Clone)]
struct Origin {
    scheme: Scheme,
    authority: Authority,
}

/// A 2xx answer, verified unless the endpoint is unsigned.
struct Answer {
    status: StatusCode,
    body: Bytes,
}

/// How one call is sent: its metric label, whether its 2xx is signed, how
/// large its answer may be.
#[derive(Clone, Copy)]
struct Call {
    endpoint: &'static str,
    signed_response: bool,
    response_bytes_max: usize,
}

impl Call {
    const fn json(endpoint: &'static str) -> Self {
        Self {
            endpoint,
            signed_response: true,
            response_bytes_max: RESPONSE_BYTES_MAX,
        }
    }
}

impl PayClient {
    /// Loads the keys and checks the configuration; no network traffic.
    pub fn new(config: &MerchantConfig) -> Result<Self, PayError> {
        validate(config)?;
        let signer = RsaSigner::from_pkcs8_pem(&config.merchant_private_key_pem)?;
        let public_key = RsaVerifier::from_spki_pem(&config.wechatpay_public_key_pem)?;
        let apiv3_key = ApiV3Key::new(config.apiv3_key.as_bytes())?;
        let verifier = Verifier::with_key(config.wechatpay_public_key_id.clone(), public_key);
        let notifications = NotificationVerifier::new(
            verifier,
            apiv3_key,
            config.mchid.clone(),
            config.appid.clone(),
        );
        let attempt_timeout = Duration::from_millis(config.timeout_ms);
        Ok(Self {
            inner: Arc::new(Inner {
                mchid: config.mchid.clone(),
                appid: config.appid.clone(),
                merchant_serial_no: config.merchant_serial_no.clone(),
                public_key_id: header_value(
                    "wechatpay_public_key_id",
                    &config.wechatpay_public_key_id,
                )?,
                notify_url: config.notify_url.clone(),
                user_agent: header_value("user_agent", &config.user_agent)?,
                signer,
                notifications,
                primary: origin(&config.base_url)?,
                backup: config.backup_base_url.as_deref().map(origin).transpose()?,
                http: http_client(attempt_timeout)?,
                limiter: LaneLimiter::new(
                    config.requests_per_second_max,
                    RATE_LIMIT_WAIT_MAX,
                    BACKGROUND_WAIT_MAX,
                ),
                attempt_timeout,
                attempts_max: config.attempts_max,
            }),
            lane: Lane::Interactive,
        })
    }

    /// The same client for calls nobody waits for (hold expiry, the
    /// reconciler, late refunds): they use at most a share of the rate
    /// (`limiter::BACKGROUND_PERCENT`), so buyers keep the rest.
    pub fn background(&self) -> PayClient {
        PayClient {
            inner: Arc::clone(&self.inner),
            lane: Lane::Background,
        }
    }

    /// Verifies and decrypts callbacks for this merchant.
    pub fn notifications(&self) -> &NotificationVerifier {
        &self.inner.notifications
    }

    /// `POST /v3/pay/transactions/jsapi` → the prepay_id (valid 2 hours).
    /// Re-posting the same order is idempotent at WeChat, so retries are safe.
    pub async fn prepay_jsapi(&self, order: &JsapiPrepay) -> Result<String, PayError> {
        check_out_trade_no(&order.out_trade_no)?;
        if order.total_fen < 1 {
            return Err(PayError::Request(format!(
                "total_fen {} is below 1 fen",
                order.total_fen
            )));
        }
        let inner = &self.inner;
        let request = JsapiPrepayRequest {
            appid: inner.appid.clone(),
            mchid: inner.mchid.clone(),
            description: order.description.clone(),
            out_trade_no: order.out_trade_no.clone(),
            time_expire: order.time_expire.clone(),
            attach: order.attach.clone(),
            notify_url: inner.notify_url.clone(),
            amount: PrepayAmount {
                total: order.total_fen,
                currency: CURRENCY_CNY.to_owned(),
            },
            payer: Payer {
                openid: order.openid.clone(),
            },
        };
        let call = Call::json("prepay_jsapi");
        let answer = self
            .send(
                call,
                Method::POST,
                "/v3/pay/transactions/jsapi".to_owned(),
                Some(json_body(&request)?),
            )
            .await?;
        let response: PrepayResponse = decode(call, &answer)?;
        Ok(response.prepay_id)
    }

    /// `GET /v3/pay/transactions/out-trade-no/{out_trade_no}?mchid=...`.
    pub async fn query_by_out_trade_no(&self, out_trade_no: &str) -> Result<Transaction, PayError> {
        check_out_trade_no(out_trade_no)?;
        let path = format!(
            "/v3/pay/transactions/out-trade-no/{}?mchid={}",
            escape_path_segment(out_trade_no),
            escape_path_segment(&self.inner.mchid)
        );
        let call = Call::json("query_by_out_trade_no");
        let answer = self.send(call, Method::GET, path, None).await?;
        decode(call, &answer)
    }

    /// `GET /v3/pay/transactions/id/{transaction_id}?mchid=...` (paid orders only).
    pub async fn query_by_transaction_id(
        &self,
        transaction_id: &str,
    ) -> Result<Transaction, PayError> {
        check_identifier("transaction_id", transaction_id, 32)?;
        let path = format!(
            "/v3/pay/transactions/id/{}?mchid={}",
            escape_path_segment(transaction_id),
            escape_path_segment(&self.inner.mchid)
        );
        let call = Call::json("query_by_transaction_id");
        let answer = self.send(call, Method::GET, path, None).await?;
        decode(call, &answer)
    }

    /// `POST /v3/pay/transactions/out-trade-no/{out_trade_no}/close` → 204.
    /// The 204 is signed over an empty body (`ts\nnonce\n\n`).
    pub async fn close(&self, out_trade_no: &str) -> Result<(), PayError> {
        check_out_trade_no(out_trade_no)?;
        let path = format!(
            "/v3/pay/transactions/out-trade-no/{}/close",
            escape_path_segment(out_trade_no)
        );
        let body = json_body(&CloseRequest {
            mchid: self.inner.mchid.clone(),
        })?;
        let answer = self
            .send(Call::json("close"), Method::POST, path, Some(body))
            .await?;
        if answer.status != StatusCode::NO_CONTENT {
            return Err(PayError::UnexpectedStatus(answer.status.as_u16()));
        }
        Ok(())
    }

    /// `POST /v3/refund/domestic/refunds`. Acceptance, not success: the
    /// result comes by notification or [`PayClient::query_refund`]. A retry
    /// reuses `out_refund_no`, so the order is refunded at most once.
    pub async fn refund(&self, request: &RefundRequest) -> Result<Refund, PayError> {
        if request.out_trade_no.is_some() == request.transaction_id.is_some() {
            return Err(PayError::Request(
                "exactly one of out_trade_no and transaction_id names the order".to_owned(),
            ));
        }
        check_identifier("out_refund_no", &request.out_refund_no, 64)?;
        if request.amount.refund < 1 || request.amount.refund > request.amount.total {
            return Err(PayError::Request(format!(
                "refund {} fen is not within 1..={} fen",
                request.amount.refund, request.amount.total
            )));
        }
        let call = Call::json("refund");
        let answer = self
            .send(
                call,
                Method::POST,
                "/v3/refund/domestic/refunds".to_owned(),
                Some(json_body(request)?),
            )
            .await?;
        decode(call, &answer)
    }

    /// `GET /v3/refund/domestic/refunds/{out_refund_no}`.
    pub async fn query_refund(&self, out_refund_no: &str) -> Result<Refund, PayError> {
        check_identifier("out_refund_no", out_refund_no, 64)?;
        let path = format!(
            "/v3/refund/domestic/refunds/{}",
            escape_path_segment(out_refund_no)
        );
        let call = Call::json("query_refund");
        let answer = self.send(call, Method::GET, path, None).await?;
        decode(call, &answer)
    }

    /// The ALL trade bill of `date` (`YYYY-MM-DD`) as CSV text: requests the
    /// bill (signed, verified), then downloads `download_url`'s path and
    /// query from the configured host (signed request, unsigned answer) and
    /// checks the SHA-1 against `hash_value`.
    pub async fn trade_bill(&self, date: &str) -> Result<String, PayError> {
        check_bill_date(date)?;
        let call = Call::json("trade_bill");
        let path = format!("/v3/bill/tradebill?bill_date={date}&bill_type=ALL");
        let answer = self.send(call, Method::GET, path, None).await?;
        let bill: TradeBillResponse = decode(call, &answer)?;
        if !bill.hash_type.eq_ignore_ascii_case("SHA1") {
            return Err(PayError::Decode(format!(
                "unsupported hash_type {:?}",
                bill.hash_type
            )));
        }
        let download_path = bill
            .download_url
            .parse::<Uri>()
            .ok()
            .and_then(|uri| uri.path_and_query().map(|path| path.as_str().to_owned()))
            .filter(|path| path.starts_with('/'))
            .ok_or_else(|| {
                PayError::Decode(format!("download_url {:?} has no path", bill.download_url))
            })?;
        let download = Call {
            endpoint: "bill_download",
            signed_response: false,
            response_bytes_max: BILL_BYTES_MAX,
        };
        let file = self
            .send(download, Method::GET, download_path, None)
            .await?;
        let actual = crypto::sha1_hex(&file.body);
        if !actual.eq_ignore_ascii_case(&bill.hash_value) {
            return Err(PayError::BillHash {
                expected: bill.hash_value,
                actual,
            });
        }
        String::from_utf8(file.body.to_vec())
            .map_err(|_| PayError::Decode("the bill is not UTF-8".to_owned()))
    }

    /// The arguments of `wx.requestPayment` for `prepay_id`: a fresh nonce,
    /// `now_secs`, and paySign over `appid\nts\nnonce\nprepay_id=...\n`
    /// with the merchant key.
    pub fn request_payment(
        &self,
        prepay_id: &str,
        now_secs: i64,
    ) -> Result<RequestPayment, PayError> {
        let nonce = crypto::nonce_str();
        let package = format!("prepay_id={prepay_id}");
        let message = crypto::pay_sign_message(&self.inner.appid, now_secs, &nonce, &package);
        Ok(RequestPayment {
            app_id: self.inner.appid.clone(),
            time_stamp: now_secs.to_string(),
            nonce_str: nonce,
            package,
            sign_type: "RSA".to_owned(),
            pay_sign: self.inner.signer.sign(&message)?,
        })
    }

    /// The retry loop around [`PayClient::attempt`].
    async fn send(
        &self,
        call: Call,
        method: Method,
        path_and_query: String,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, PayError> {
        let inner = &self.inner;
        let body = body.map(Bytes::from);
        let mut on_backup = false;
        let mut attempt = 1;
        loop {
            let origin = match (&inner.backup, on_backup) {
                (Some(backup), true) => backup,
                _ => &inner.primary,
            };
            let result = self
                .attempt(call, origin, &method, &path_and_query, body.as_ref())
                .await;
            let error = match result {
                Ok(answer) => return Ok(answer),
                Err(error) => error,
            };
            if !error.is_retryable() || attempt >= inner.attempts_max {
                metrics::counter!(names::WECHATPAY_ERRORS_TOTAL, "endpoint" => call.endpoint)
                    .increment(1);
                return Err(error);
            }
            let server_side = matches!(error, PayError::Connection(_))
                || matches!(error, PayError::Api { status, .. } if status >= 500);
            on_backup |= server_side && inner.backup.is_some();
            metrics::counter!(names::WECHATPAY_RETRIES_TOTAL, "endpoint" => call.endpoint)
                .increment(1);
            tracing::debug!(endpoint = call.endpoint, attempt, %error, "retrying WeChat Pay call");
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
        }
    }

    /// One signed request with its own timeout, rate-limited; records the
    /// attempt's outcome and duration.
    async fn attempt(
        &self,
        call: Call,
        origin: &Origin,
        method: &Method,
        path_and_query: &str,
        body: Option<&Bytes>,
    ) -> Result<Answer, PayError> {
        if let Err(wait) = self.inner.limiter.acquire(self.lane).await {
            metrics::counter!(names::WECHATPAY_THROTTLED_TOTAL, "endpoint" => call.endpoint)
                .increment(1);
            return Err(PayError::RateLimited {
                wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            });
        }
        let started = Instant::now();
        let result = match tokio::time::timeout(
            self.inner.attempt_timeout,
            self.exchange(call, origin, method, path_and_query, body),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(PayError::Timeout),
        };
        metrics::histogram!(names::WECHATPAY_REQUEST_DURATION_SECONDS, "endpoint" => call.endpoint)
            .record(started.elapsed().as_secs_f64());
        metrics::counter!(
            names::WECHATPAY_REQUESTS_TOTAL,
            "endpoint" => call.endpoint,
            "outcome" => outcome_label(&result)
        )
        .increment(1);
        result
    }

    /// Signs, sends, reads and (for signed endpoints) verifies one request.
    async fn exchange(
        &self,
        call: Call,
        origin: &Origin,
        method: &Method,
        path_and_query: &str,
        body: Option<&Bytes>,
    ) -> Result<Answer, PayError> {
        let inner = &self.inner;
        let request = self.signed_request(origin, method, path_and_query, body)?;
        let response = inner
            .http
            .request(request)
            .await
            .map_err(|error| PayError::Connection(error_chain(&error)))?;
        let (parts, incoming) = response.into_parts();
        let body = Limited::new(incoming, call.response_bytes_max)
            .collect()
            .await
            .map_err(
                |error| match error.downcast::<http_body_util::LengthLimitError>() {
                    Ok(_) => PayError::Decode(format!(
                        "answer exceeds {} bytes",
                        call.response_bytes_max
                    )),
                    Err(error) => PayError::Connection(error.to_string()),
                },
            )?
            .to_bytes();
        if !parts.status.is_success() {
            return Err(api_error(parts.status, &body));
        }
        if call.signed_response {
            inner.notifications.verifier().verify(
                &SignedHeaders::from_header_map(&parts.headers),
                &body,
                now_secs(),
            )?;
        }
        Ok(Answer {
            status: parts.status,
            body,
        })
    }

    fn signed_request(
        &self,
        origin: &Origin,
        method: &Method,
        path_and_query: &str,
        body: Option<&Bytes>,
    ) -> Result<Request<Full<Bytes>>, PayError> {
        let inner = &self.inner;
        let timestamp = now_secs();
        let nonce = crypto::nonce_str();
        let body_bytes = body.map_or(&[][..], |body| body.as_ref());
        let message = crypto::request_message(
            method.as_str(),
            path_and_query,
            timestamp,
            &nonce,
            body_bytes,
        );
        let signature = inner.signer.sign(&message)?;
        let authorization = crypto::authorization_header(
            &inner.mchid,
            &inner.merchant_serial_no,
            &nonce,
            timestamp,
            &signature,
        );
        let uri = Uri::builder()
            .scheme(origin.scheme.clone())
            .authority(origin.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(|error| PayError::Request(format!("URL {path_and_query:?}: {error}")))?;
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(uri)
            .header(
                AUTHORIZATION,
                header_value("Authorization", &authorization)?,
            )
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .header(USER_AGENT, inner.user_agent.clone())
            .header(HEADER_SERIAL, inner.public_key_id.clone());
        if body.is_some() {
            builder = builder.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        builder
            .body(Full::new(body.cloned().unwrap_or_default()))
            .map_err(|error| PayError::Request(error.to_string()))
    }
}

impl fmt::Debug for PayClient {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("PayClient")
            .field("mchid", &self.inner.mchid)
            .field("primary", &self.inner.primary)
            .field("backup", &self.inner.backup)
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn validate(config: &MerchantConfig) -> Result<(), PayError> {
    let refuse = |message: String| Err(PayError::Config(message));
    if !(1..=ATTEMPTS_MAX_LIMIT).contains(&config.attempts_max) {
        return refuse(format!(
            "attempts_max {} is not within 1..={ATTEMPTS_MAX_LIMIT}",
            config.attempts_max
        ));
    }
    if config.requests_per_second_max == 0 {
        return refuse("requests_per_second_max must be at least 1".to_owned());
    }
    if config.timeout_ms == 0 {
        return refuse("timeout_ms must be at least 1".to_owned());
    }
    for (name, value) in [
        ("mchid", &config.mchid),
        ("appid", &config.appid),
        ("merchant_serial_no", &config.merchant_serial_no),
        ("wechatpay_public_key_id", &config.wechatpay_public_key_id),
        ("notify_url", &config.notify_url),
        ("user_agent", &config.user_agent),
    ] {
        if value.is_empty() {
            return refuse(format!("{name} is empty"));
        }
    }
    Ok(())
}

/// A base URL's scheme and host; a path, query or other scheme is refused,
/// since the signed URL is the request's own path.
fn origin(base_url: &str) -> Result<Origin, PayError> {
    let refuse = || {
        PayError::Config(format!(
            "base URL {base_url:?} must be http(s)://host[:port]"
        ))
    };
    let uri: Uri = base_url.parse().map_err(|_| refuse())?;
    let scheme = uri.scheme().cloned().ok_or_else(refuse)?;
    if scheme != Scheme::HTTPS && scheme != Scheme::HTTP {
        return Err(refuse());
    }
    let path_is_root = uri.path_and_query().is_none_or(|path| path.as_str() == "/");
    if !path_is_root {
        return Err(refuse());
    }
    let authority = uri.authority().cloned().ok_or_else(refuse)?;
    Ok(Origin { scheme, authority })
}

fn http_client(
    attempt_timeout: Duration,
) -> Result<Client<HttpsConnector<HttpConnector>, Full<Bytes>>, PayError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(attempt_timeout));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::aws_lc_rs::default_provider())
        .map_err(|error| PayError::Config(format!("TLS: {error}")))?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(POOL_IDLE_PER_HOST_MAX)
        .build(https))
}

fn header_value(name: &str, value: &str) -> Result<HeaderValue, PayError> {
    HeaderValue::from_str(value)
        .map_err(|_| PayError::Config(format!("{name} is not a valid header value")))
}

fn json_body<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, PayError> {
    serde_json::to_vec(value).map_err(|error| PayError::Request(error.to_string()))
}

fn decode<T: DeserializeOwned>(call: Call, answer: &Answer) -> Result<T, PayError> {
    serde_json::from_slice(&answer.body)
        .map_err(|error| PayError::Decode(format!("{}: {error}", call.endpoint)))
}

/// `PayError::Api` from an error answer; a body that is not the documented
/// `{code, message}` (a proxy's HTML page, say) keeps its text as the message.
fn api_error(status: StatusCode, body: &[u8]) -> PayError {
    const MESSAGE_CHARS_MAX: usize = 512;
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(error) => PayError::Api {
            status: status.as_u16(),
            code: error.code,
            message: error.message,
        },
        Err(_) => PayError::Api {
            status: status.as_u16(),
            code: String::new(),
            message: String::from_utf8_lossy(body)
                .chars()
                .take(MESSAGE_CHARS_MAX)
                .collect(),
        },
    }
}

/// Full jitter: uniform in `0..=min(cap, base·2^(attempt-1))`.
fn backoff(attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(16);
    let bound = BACKOFF_BASE.saturating_mul(1 << exponent).min(BACKOFF_CAP);
    let mut random = [0u8; 8];
    aws_lc_rs::rand::fill(&mut random).expect("the system CSPRNG is available");
    let bound_micros = u64::try_from(bound.as_micros()).unwrap_or(u64::MAX);
    Duration::from_micros(u64::from_le_bytes(random) % (bound_micros + 1))
}

fn outcome_label(result: &Result<Answer, PayError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(PayError::Api { status: 429, .. }) => "throttled",
        Err(PayError::Api { status, .. }) if *status >= 500 => "server_error",
        Err(PayError::Api { .. }) => "client_error",
        Err(PayError::Timeout) => "timeout",
        Err(PayError::Connection(_)) => "connection",
        Err(PayError::Verify(_)) => "unverified",
        Err(_) => "error",
    }
}

/// The error and its sources, which is where hyper-util puts the reason.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn now_secs() -> i64 {
    crate::clock::now_ms().div_euclid(1000)
}

/// Percent-encodes everything but `A-Z a-z 0-9 - . _ ~`, so `|` and `*` in an
/// out_trade_no travel as `%7C` and `%2A`; the signed URL is this text.
fn escape_path_segment(segment: &str) -> String {
    let mut escaped = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            escaped.push(char::from(byte));
        } else {
            escaped.push_str(&format!("%{byte:02X}"));
        }
    }
    escaped
}

/// WeChat's out_trade_no: 6–32 of digits, letters, `_ - | *`.
fn check_out_trade_no(out_trade_no: &str) -> Result<(), PayError> {
    let well_formed = (6..=32).contains(&out_trade_no.len())
        && out_trade_no
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'|' | b'*'));
    if well_formed {
        Ok(())
    } else {
        Err(PayError::Request(format!(
            "out_trade_no {out_trade_no:?} is not 6-32 of [0-9A-Za-z_-|*]"
        )))
    }
}

/// Identifiers that go into a path: non-empty, bounded, no control bytes.
fn check_identifier(name: &str, value: &str, len_max: usize) -> Result<(), PayError> {
    if value.is_empty()
        || value.len() > len_max
        || value.bytes().any(|byte| byte.is_ascii_control())
    {
        return Err(PayError::Request(format!(
            "{name} {value:?} is empty, too long or has control bytes"
        )));
    }
    Ok(())
}

fn check_bill_date(date: &str) -> Result<(), PayError> {
    let bytes = date.as_bytes();
    let shaped = bytes.len() == 10
        && bytes.iter().enumerate().all(|(index, byte)| {
            if index == 4 || index == 7 {
                *byte == b'-'
            } else {
                byte.is_ascii_digit()
            }
        });
    if shaped {
        Ok(())
    } else {
        Err(PayError::Request(format!(
            "bill date {date:?} is not YYYY-MM-DD"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_jittered_within_the_exponential_bound() {
        for attempt in 1..=12 {
            let bound = BACKOFF_BASE
                .saturating_mul(1 << (attempt - 1))
                .min(BACKOFF_CAP);
            for _ in 0..50 {
                assert!(backoff(attempt) <= bound);
            }
        }
        let samples: Vec<Duration> = (0..20).map(|_| backoff(5)).collect();
        assert!(
            samples.iter().any(|sample| *sample != samples[0]),
            "jitter varies"
        );
    }

    #[test]
    fn path_segments_are_escaped_and_identifiers_checked() {
        assert_eq!(escape_path_segment("FG-0001_a.b~"), "FG-0001_a.b~");
        assert_eq!(escape_path_segment("A|B*C/D?"), "A%7CB%2AC%2FD%3F");
        assert!(check_out_trade_no("FG0001").is_ok());
        assert!(check_out_trade_no("a|b*c_d-e").is_ok());
        for bad in ["", "short", "has space", "has/slash", &"x".repeat(33)] {
            assert!(check_out_trade_no(bad).is_err(), "{bad:?}");
        }
        assert!(check_bill_date("2026-11-24").is_ok());
        for bad in ["2026-1-24", "2026/11/24", "20261124", "2026-11-24&x=1"] {
            assert!(check_bill_date(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn base_urls_are_scheme_and_host_only() {
        assert!(origin("https://api.mch.weixin.qq.com").is_ok());
        assert!(origin("https://api2.mch.weixin.qq.com/").is_ok());
        assert!(origin("http://127.0.0.1:8080").is_ok());
        for bad in [
            "api.mch.weixin.qq.com",
            "ftp://host",
            "https://host/prefix",
            "https://host/?q=1",
        ] {
            assert!(origin(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn error_answers_keep_code_and_message() {
        let error = api_error(
            StatusCode::BAD_REQUEST,
            r#"{"code":"PARAM_ERROR","message":"参数错误","detail":{"field":"/amount/total"}}"#
                .as_bytes(),
        );
        assert_eq!(
            error,
            PayError::Api {
                status: 400,
                code: "PARAM_ERROR".into(),
                message: "参数错误".into()
            }
        );
        let html = api_error(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
        assert!(matches!(html, PayError::Api { status: 502, ref code, .. } if code.is_empty()));
        assert!(html.is_retryable());
    }
}
