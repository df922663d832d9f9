//! A WeChat Pay API v3 simulator for a direct merchant (RSA, public-key
//! mode), faithful to shared/wechatpay-v3.md where that page is sure, so
//! the gateway's payment flow can be tested without the real service. It
//! runs in-process ([`Simulator::start`]) or as `flashgate wxpay-sim`.
//!
//! What it serves, over plain HTTP/1.1:
//!
//! - The merchant API, every request verified as WeChat verifies it
//!   (`Accept` and `User-Agent` present, `Authorization` parsed by name,
//!   merchant and serial, timestamp within 300 s, SHA256withRSA over the
//!   raw request) and every answer carrying `Request-ID: <hex>-<code>`;
//!   2xx answers are signed with the platform key and name it
//!   `Wechatpay-Serial: PUB_KEY_ID_...` (204 with the empty-body rule), error
//!   answers are not signed (whether WeChat signs them is unverified; SDKs
//!   do not check them), nor is the bill download (as real):
//!   `POST /v3/pay/transactions/jsapi`,
//!   `GET /v3/pay/transactions/out-trade-no/{no}?mchid=`,
//!   `GET /v3/pay/transactions/id/{transaction_id}?mchid=`,
//!   `POST /v3/pay/transactions/out-trade-no/{no}/close`,
//!   `POST /v3/refund/domestic/refunds`,
//!   `GET /v3/refund/domestic/refunds/{out_refund_no}`,
//!   `GET /v3/bill/tradebill?bill_date=YYYY-MM-DD[&bill_type=ALL]`,
//!   `GET /v3/billdownload/file?token=`.
//! - Notifications to each order's `notify_url` (and a refund's), signed and
//!   encrypted, retried on WeChat's schedule × `time_scale` (`notify`).
//! - A control plane under `/sim/v1/` for tests and the load test driving a
//!   separate process. It is **unsigned test plumbing**, no part of the
//!   protocol: `POST /sim/v1/pay` `{"prepay_id"|"out_trade_no"}` (the buyer
//!   pays; 409 when refused), `PUT`/`GET /sim/v1/faults`,
//!   `GET /sim/v1/deliveries`, `GET /sim/v1/orders/{out_trade_no}`,
//!   `GET /sim/v1/refunds/{out_refund_no}`, `POST /sim/v1/planted-payments`.
//!
//! The simulator's clock is the real clock; `time_scale` only shrinks the
//! notification schedule and the refund delay, so a test runs the 24-hour
//! retry schedule in seconds. Everything is bounded, each bound a constant
//! beside the code it limits: orders and refunds (`ledger`), pending timed
//! tasks, delivery connections and the delivery log (`notify`), bill files
//! (`trade_bill`), connections and request bodies (`server`).
//!
//! Choices where the fact sheet is unsure are commented where they are
//! made (`api_error`, `ledger`, `notify`, `trade_bill`, `auth`).

mod api_error;
mod auth;
mod control;
pub mod faults;
mod ids;
mod ledger;
mod notify;
mod post;
mod routes;
mod server;
mod trade_bill;
mod validate;

pub use faults::{FailNext, Faults};
pub use notify::{Delivery, DeliveryKind, DeliveryOutcome, RETRY_SCHEDULE_SECONDS};

use crate::clock::{now_ms, UnixMs};
use crate::pay::crypto::{ApiV3Key, RsaSigner, RsaVerifier};
use crate::pay::wire::{
    Refund, RefundResource, Transaction, EVENT_REFUND_SUCCESS, EVENT_TRANSACTION_SUCCESS,
};
use crate::shutdown::{self, ShutdownTrigger};
use auth::Auth;
use ledger::{Ledger, Merchant};
use notify::{Event, Notification, Notifier, Timing};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The largest `time_scale`. Above 1 the schedule slows down (a soak test
/// may want that); at 1000 its last retry already waits 250 days.
pub const TIME_SCALE_MAX: f64 = 1000.0;
/// The default `--public-key-id` of `flashgate wxpay-sim`: `PUB_KEY_ID_` and
/// 34 digits, the length of every published example.
pub const DEFAULT_PUBLIC_KEY_ID: &str = "PUB_KEY_ID_0119000000000000000000000000000001";

/// Everything a simulator needs; it serves exactly one merchant.
pub struct SimConfig {
    /// `127.0.0.1:0` in tests.
    pub listen: SocketAddr,
    pub mchid: String,
    pub appid: String,
    /// 32 bytes; encrypts notification resources.
    pub apiv3_key: String,
    /// Requests must name this certificate serial...
    pub merchant_serial_no: String,
    /// ...and verify with this key (SPKI PEM, `BEGIN PUBLIC KEY`).
    pub merchant_public_key_pem: String,
    /// Signs answers and notifications.
    pub platform_signer: RsaSigner,
    /// `PUB_KEY_ID_...`, sent as `Wechatpay-Serial`.
    pub public_key_id: String,
    /// Multiplies the notification retry schedule and the refund delay
    /// (1.0 real time, 0.001 in tests).
    pub time_scale: f64,
    pub faults: Faults,
}

/// A payment WeChat Pay knows and the merchant never heard of (for
/// reconciliation tests): it is in queries and the bill, never notified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlantedPayment {
    pub out_trade_no: String,
    pub total_fen: i64,
    #[serde(default = "PlantedPayment::default_openid")]
    pub openid: String,
    #[serde(default = "PlantedPayment::default_description")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach: Option<String>,
    /// When it was paid (Unix ms); now when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_at_ms: Option<UnixMs>,
}

impl PlantedPayment {
    /// A payment of `total_fen` made now by a made-up buyer.
    pub fn new(out_trade_no: impl Into<String>, total_fen: i64) -> Self {
        Self {
            out_trade_no: out_trade_no.into(),
            total_fen,
            openid: Self::default_openid(),
            description: Self::default_description(),
            attach: None,
            paid_at_ms: None,
        }
    }

    fn default_openid() -> String {
        "oSimPlantedBuyer".into()
    }

    fn default_description() -> String {
        "planted payment".into()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("simulator configuration: {0}")]
    Config(String),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("no order {0:?}")]
    UnknownOrder(String),
    #[error("order {0} is closed")]
    OrderClosed(String),
    #[error("order {0} is already paid")]
    AlreadyPaid(String),
    #[error("order {0}: its time_expire has passed")]
    PaymentDeadlinePassed(String),
    #[error("prepay id {0} has expired (a prepay id is valid 2 hours)")]
    PrepayExpired(String),
    #[error("order {0} already exists")]
    OrderExists(String),
    #[error("planted payment refused: {0}")]
    InvalidPlant(String),
    #[error("simulator limit reached: {0}")]
    Full(String),
}

impl SimError {
    /// The `code` of the control plane's JSON error.
    pub fn code(&self) -> &'static str {
        match self {
            SimError::Config(_) | SimError::Listen { .. } => "CONFIG",
            SimError::UnknownOrder(_) => "ORDER_NOT_EXIST",
            SimError::OrderClosed(_) => "ORDER_CLOSED",
            SimError::AlreadyPaid(_) => "ORDER_PAID",
            SimError::PaymentDeadlinePassed(_) => "ORDER_EXPIRED",
            SimError::PrepayExpired(_) => "PREPAY_EXPIRED",
            SimError::OrderExists(_) => "ORDER_EXISTS",
            SimError::InvalidPlant(_) => "PARAM_ERROR",
            SimError::Full(_) => "SIMULATOR_FULL",
        }
    }
}

pub struct Simulator;

impl Simulator {
    /// Checks the configuration, binds, and serves until
    /// [`SimHandle::shutdown`] (or until every handle is dropped).
    pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
        let shared = Shared::new(config)?;
        let listener =
            TcpListener::bind(shared.listen)
                .await
                .map_err(|source| SimError::Listen {
                    address: shared.listen,
                    source,
                })?;
        let address = listener.local_addr().map_err(|source| SimError::Listen {
            address: shared.listen,
            source,
        })?;
        let shared = Arc::new(Shared {
            base_url: format!("http://{address}"),
            ..shared
        });
        let (trigger, shutdown) = shutdown::channel();
        let tasks = vec![
            tokio::spawn(server::serve(
                listener,
                Arc::clone(&shared),
                shutdown.clone(),
            )),
            tokio::spawn(notify::run(Arc::clone(&shared), shutdown)),
        ];
        tracing::debug!(base_url = %shared.base_url, "WeChat Pay simulator listening");
        Ok(SimHandle {
            shared,
            lifecycle: Arc::new(Lifecycle {
                trigger,
                tasks: Mutex::new(tasks),
            }),
        })
    }
}

/// The running simulator; clones share it.
#[derive(Clone)]
pub struct SimHandle {
    shared: Arc<Shared>,
    lifecycle: Arc<Lifecycle>,
}

struct Lifecycle {
    trigger: ShutdownTrigger,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Lifecycle {
    /// The last handle gone stops the simulator.
    fn drop(&mut self) {
        self.trigger.trigger();
    }
}

impl SimHandle {
    /// `http://127.0.0.1:<port>`, the base URL for the gateway's client.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The platform public key (SPKI PEM), as `wxp_pub.pem`.
    pub fn public_key_pem(&self) -> String {
        self.shared.public_key_pem.clone()
    }

    pub fn public_key_id(&self) -> &str {
        &self.shared.public_key_id
    }

    /// Replaces the fault set. Invalid values are the caller's bug: logged,
    /// then used as given (rates outside 0..=1 act as 0 or 1).
    pub fn set_faults(&self, faults: Faults) {
        if let Err(problem) = faults.validate() {
            tracing::warn!(%problem, "simulator faults out of range");
        }
        *self.shared.lock_faults() = faults;
    }

    /// The faults now in force (with `fail_next` counts consumed so far).
    pub fn faults(&self) -> Faults {
        self.shared.faults()
    }

    /// The buyer confirms in `wx.requestPayment`: NOTPAY → SUCCESS, and the
    /// TRANSACTION.SUCCESS notification is scheduled (unless paused).
    pub fn pay(&self, prepay_id_or_out_trade_no: &str) -> Result<Transaction, SimError> {
        self.shared.pay(prepay_id_or_out_trade_no)
    }

    /// The order as a query would show it now.
    pub fn order(&self, out_trade_no: &str) -> Option<Transaction> {
        self.shared
            .lock_ledger()
            .transaction(out_trade_no, now_ms())
    }

    pub fn refund(&self, out_refund_no: &str) -> Option<Refund> {
        self.shared.lock_ledger().refund_by_number(out_refund_no)
    }

    /// Every notification attempt so far (the most recent 100,000).
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.notifier.deliveries()
    }

    /// Records a payment the merchant never heard of; no notification.
    pub fn plant_payment(&self, planted: PlantedPayment) -> Result<Transaction, SimError> {
        self.shared.lock_ledger().plant(&planted, now_ms())
    }

    /// Stops accepting, lets open requests finish (bounded), stops the
    /// notification scheduler.
    pub async fn shutdown(self) {
        self.lifecycle.trigger.trigger();
        let tasks = std::mem::take(
            &mut *self
                .lifecycle
                .tasks
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for task in tasks {
            if let Err(error) = task.await {
                tracing::warn!(%error, "simulator task ended abnormally");
            }
        }
    }
}

/// The simulator's state, shared by the API, the control plane, the handle
/// and the notification scheduler. Locks are held for map operations only,
/// never across an await.
pub(crate) struct Shared {
    listen: SocketAddr,
    base_url: String,
    merchant: Merchant,
    auth: Auth,
    apiv3_key: ApiV3Key,
    public_key_pem: String,
    public_key_id: String,
    ledger: Mutex<Ledger>,
    faults: Mutex<Faults>,
    notifier: Notifier,
    bill_files: trade_bill::BillFiles,
}

impl Shared {
    fn new(config: SimConfig) -> Result<Self, SimError> {
        let invalid = SimError::Config;
        for (name, value) in [
            ("mchid", &config.mchid),
            ("appid", &config.appid),
            ("merchant_serial_no", &config.merchant_serial_no),
            ("public_key_id", &config.public_key_id),
        ] {
            if value.is_empty() {
                return Err(invalid(format!("{name} must not be empty")));
            }
        }
        if !(config.time_scale.is_finite()
            && config.time_scale > 0.0
            && config.time_scale <= TIME_SCALE_MAX)
        {
            let scale = config.time_scale;
            return Err(invalid(format!(
                "time_scale must be within (0, {TIME_SCALE_MAX}], got {scale}"
            )));
        }
        config.faults.validate().map_err(invalid)?;
        let apiv3_key = ApiV3Key::new(config.apiv3_key.as_bytes())
            .map_err(|error| invalid(format!("apiv3_key: {error}")))?;
        let merchant_key = RsaVerifier::from_spki_pem(&config.merchant_public_key_pem)
            .map_err(|error| invalid(format!("merchant_public_key_pem: {error}")))?;
        let public_key_pem = config
            .platform_signer
            .public_key_pem()
            .map_err(|error| invalid(format!("platform_signer: {error}")))?;
        let merchant = Merchant {
            mchid: config.mchid.clone(),
            appid: config.appid,
        };
        Ok(Self {
            listen: config.listen,
            base_url: String::new(),
            auth: Auth::new(
                config.mchid,
                config.merchant_serial_no,
                merchant_key,
                config.platform_signer,
                config.public_key_id.clone(),
            ),
            ledger: Mutex::new(Ledger::new(merchant.clone())),
            merchant,
            apiv3_key,
            public_key_pem,
            public_key_id: config.public_key_id,
            faults: Mutex::new(config.faults),
            notifier: Notifier::new(Timing {
                time_scale: config.time_scale,
            }),
            bill_files: trade_bill::BillFiles::default(),
        })
    }

    fn lock_ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn faults(&self) -> Faults {
        self.lock_faults().clone()
    }

    fn pay(&self, prepay_id_or_out_trade_no: &str) -> Result<Transaction, SimError> {
        let now = now_ms();
        let payment = self.lock_ledger().pay(prepay_id_or_out_trade_no, now)?;
        let transaction = payment.transaction;
        let resource_json = serde_json::to_vec(&transaction).expect("a transaction serialises");
        self.notify(
            &Event {
                event_type: EVENT_TRANSACTION_SUCCESS,
                summary: "支付成功",
                original_type: "transaction",
                resource_json: &resource_json,
                out_trade_no: &transaction.out_trade_no,
                out_refund_no: None,
                notify_url: &payment.notify_url,
            },
            now,
        );
        Ok(transaction)
    }

    /// Starts the PROCESSING → SUCCESS timer of a refund just created; at
    /// the task bound it succeeds at once instead.
    fn start_refund(&self, out_refund_no: &str) {
        let delay = self
            .notifier
            .timing
            .scaled(notify::REFUND_SUCCESS_DELAY_SECONDS);
        if !self
            .notifier
            .submit_refund_completion(out_refund_no.to_owned(), delay)
        {
            self.complete_refund(out_refund_no);
        }
    }

    fn complete_refund(&self, out_refund_no: &str) {
        let now = now_ms();
        let Some(completed) = self.lock_ledger().complete_refund(out_refund_no, now) else {
            return;
        };
        let Some(notify_url) = completed.notify_url.as_deref() else {
            // Real refunds without notify_url go to the URL configured on
            // the merchant platform; the simulator has none.
            tracing::debug!(%out_refund_no, "refund succeeded; no notify_url to tell");
            return;
        };
        let resource: &RefundResource = &completed.resource;
        let resource_json = serde_json::to_vec(resource).expect("a refund resource serialises");
        self.notify(
            &Event {
                event_type: EVENT_REFUND_SUCCESS,
                summary: "退款成功",
                original_type: "refund",
                resource_json: &resource_json,
                out_trade_no: &resource.out_trade_no,
                out_refund_no: Some(&resource.out_refund_no),
                notify_url,
            },
            now,
        );
    }

    /// Composes and queues a notification as the faults in force say:
    /// not at all when paused, after a tampered and/or probe attempt, after
    /// the configured delay.
    fn notify(&self, event: &Event<'_>, now: UnixMs) {
        let (lead_kinds, delay) = {
            let mut faults = self.lock_faults();
            if faults.notifications_paused {
                tracing::debug!(out_trade_no = event.out_trade_no, "notifications paused");
                return;
            }
            let mut lead_kinds = Vec::with_capacity(2);
            if faults.take_tamper() {
                lead_kinds.push(DeliveryKind::Tampered);
            }
            if faults::happens(faults.probe_rate) {
                lead_kinds.push(DeliveryKind::Probe);
            }
            (
                lead_kinds,
                Duration::from_millis(faults.notification_delay_ms),
            )
        };
        match Notification::compose(&self.apiv3_key, event, lead_kinds, now) {
            Ok(notification) => {
                self.notifier.submit(notification, delay);
            }
            Err(error) => tracing::warn!(%error, "notification not composed"),
        }
    }
}
