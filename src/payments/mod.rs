//! The gateway's side of WeChat Pay: an order becomes a prepay, a verified
//! notification becomes a journaled payment, and the two sides are kept in
//! agreement when notifications are late, holds run out, or money arrives
//! for an order that is gone.
//!
//! `pay/` speaks the protocol, `sale/` owns the state machine; this module
//! runs the conversations between them. It never acknowledges anything (a
//! `wx.requestPayment` answer, a notification) before the engine's decision
//! is durable in the journal, and it never decides from a notification
//! alone: WeChat Pay's own query is the fallback for every doubt.
//!
//! - [`Payments::pay`]: prepay (or the still-valid one), journal `paying`,
//!   sign the `wx.requestPayment` parameters.
//! - [`Payments::notify`]: verify, decrypt, check the merchant, app and
//!   amount against the order, journal `paid` once.
//! - [`Payments::settle`]: what a paying order's hold expiry and the
//!   reconciler's sweep run: query, close when the hold is over, and act on
//!   WeChat Pay's answer.
//! - [`Payments::refund`] and the refund sweep: the same `out_refund_no`
//!   on every attempt, so WeChat Pay refunds at most once.

pub mod daily;
pub mod merchant;

pub use merchant::merchant_config;

use crate::clock::{format_beijing_rfc3339, now_ms, parse_rfc3339, UnixMs};
use crate::config::PayConfig;
use crate::ids::out_refund_no_of;
use crate::journal::JournalError;
use crate::metrics::{
    PAYMENTS_TOTAL, PAYMENT_NOTIFICATIONS_TOTAL as NOTIFICATIONS_TOTAL,
    PAYMENT_SETTLEMENTS_TOTAL as SETTLEMENTS_TOTAL, REFUNDS_TOTAL,
};
use crate::pay::client::{JsapiPrepay, PayClient};
use crate::pay::notify::{Notification, NotifyError};
use crate::pay::wire::{
    RefundRequest, RefundRequestAmount, RefundResource, RefundStatus, RequestPayment, TradeState,
    Transaction, CURRENCY_CNY,
};
use crate::pay::PayError;
use crate::sale::views::AdminOrderView;
use crate::sale::{
    Engine, PaymentOutcome, PaymentReceived, Prepay, RefundOrder, RefundReason, SaleError,
};
use dashmap::{DashMap, DashSet};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// A prepay id is valid for 2 hours at WeChat Pay; reuse one only while a
/// buyer has comfortably more than that margin left to pay with it.
const PREPAY_VALID_MS: UnixMs = 2 * 3600 * 1000 - 5 * 60 * 1000;
/// Orders a sweep looks at, per kind: bounds one sweep's calls.
const SWEEP_ORDERS_MAX: usize = 1000;
/// Settlements (close + query) running at once; the rest wait their turn.
const SETTLEMENTS_IN_FLIGHT_MAX: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error(transparent)]
    Sale(#[from] SaleError),
    #[error("WeChat Pay: {0}")]
    Pay(#[from] PayError),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// Why a notification was not accepted: WeChat Pay gets a non-2xx and
/// sends it again later.
#[derive(Debug, thiserror::Error)]
pub enum NotifyRejection {
    /// Not provably from WeChat Pay, or unreadable: 401 / 400.
    #[error(transparent)]
    Invalid(#[from] NotifyError),
    /// Verified, but it does not match our order (merchant, app, order,
    /// amount): 400, counted; a person must look.
    #[error("{reason}: {message}")]
    Mismatch {
        reason: &'static str,
        message: String,
    },
    /// We could not record it now: 500, and WeChat Pay retries. The
    /// detail is logged, not sent.
    #[error("not recorded now; retry later")]
    Unavailable(String),
}

/// The metric label of a notification refused before it reached an order.
pub fn notify_error_label(error: &NotifyError) -> &'static str {
    match error {
        NotifyError::Verify(_) | NotifyError::SignatureType(_) => "signature",
        NotifyError::Merchant { field: "appid", .. } => "appid_mismatch",
        NotifyError::Merchant { .. } => "mchid_mismatch",
        NotifyError::TooLarge { .. }
        | NotifyError::Envelope(_)
        | NotifyError::Algorithm(_)
        | NotifyError::UnknownEvent(_)
        | NotifyError::Resource { .. } => "malformed",
        NotifyError::Decrypt(_) => "decrypt",
    }
}

/// Whether a refused notification failed on its signature (401) rather
/// than its content (400).
pub fn is_signature_failure(error: &NotifyError) -> bool {
    matches!(
        error,
        NotifyError::Verify(_) | NotifyError::SignatureType(_)
    )
}

/// What `POST /v1/orders/{id}/pay` answers.
#[derive(Debug, Clone, Serialize)]
pub struct PaymentParams {
    pub order_id: String,
    pub prepay_id: String,
    pub payment: RequestPayment,
}

pub struct Payments {
    engine: Arc<Engine>,
    /// For calls a buyer or an operator waits on.
    client: PayClient,
    /// The same client held to a share of the rate, for expiry, the
    /// reconciler and late refunds (`pay::limiter`).
    background: PayClient,
    mchid: String,
    appid: String,
    notify_url: String,
    paying_query_after_ms: UnixMs,
    /// Paying orders whose hold is over: each must be closed at WeChat Pay
    /// (or found paid) before its stock goes back. Survives failed
    /// attempts; the sweep retries them. After a restart, replay rebuilds
    /// the holds and their expiry hands the orders back here.
    overdue: DashSet<String>,
    /// When the sweep last asked WeChat Pay about a paying order, so each
    /// is asked once per `paying_query_after` and a sweep reaches past the
    /// oldest ones. Entries go when the order settles or grow stale.
    queried: DashMap<String, UnixMs>,
    settlements: Semaphore,
    /// Wakes the sweep early (a late payment's refund is due).
    sweep_now: tokio::sync::Notify,
}

impl Payments {
    pub fn new(engine: Arc<Engine>, client: PayClient, config: &PayConfig) -> Payments {
        Payments {
            engine,
            background: client.background(),
            client,
            mchid: config.mchid.clone(),
            appid: config.appid.clone(),
            notify_url: config.notify_url.clone(),
            paying_query_after_ms: (config.paying_query_after_seconds * 1000) as UnixMs,
            overdue: DashSet::new(),
            queried: DashMap::new(),
            sweep_now: tokio::sync::Notify::new(),
            settlements: Semaphore::new(SETTLEMENTS_IN_FLIGHT_MAX),
        }
    }

    pub fn client(&self) -> &PayClient {
        &self.client
    }

    /// The `wx.requestPayment` parameters for a buyer's order: the current
    /// prepay while it is valid, else a new one (WeChat Pay answers the
    /// same prepay id to the same order and parameters, so two concurrent
    /// calls agree).
    pub async fn pay(&self, buyer: &str, order_id: &str) -> Result<PaymentParams, PaymentError> {
        let now = now_ms();
        let payable = self.engine.payable_order(buyer, order_id, now)?;
        let prepay_id = match payable.prepay {
            Some(prepay) => {
                // Possibly another call's, not yet durable: wait for it.
                self.engine.barrier().durable().await?;
                prepay.prepay_id
            }
            None => {
                let request = JsapiPrepay {
                    description: payable.description,
                    out_trade_no: payable.order_id.clone(),
                    // The payment deadline is the hold's end: WeChat Pay
                    // refuses to take money for a hold that ran out.
                    time_expire: format_beijing_rfc3339(payable.expires_at),
                    attach: None,
                    total_fen: payable.amount_fen,
                    openid: payable.buyer,
                };
                let started = now_ms();
                let result = self.client.prepay_jsapi(&request).await;
                metrics::counter!(PAYMENTS_TOTAL, "outcome" => if result.is_ok() { "prepay" } else { "prepay_failed" })
                    .increment(1);
                let prepay_id = result?;
                let prepay = Prepay {
                    prepay_id: prepay_id.clone(),
                    valid_until: started + PREPAY_VALID_MS,
                };
                match self.engine.start_payment(buyer, order_id, prepay, now_ms()) {
                    Ok((_, commit)) => {
                        commit.durable().await?;
                    }
                    Err(error) => {
                        // The hold ran out or the buyer cancelled while the
                        // prepay was made: nobody may pay it now.
                        self.overdue.insert(order_id.to_owned());
                        return Err(error.into());
                    }
                }
                prepay_id
            }
        };
        let payment = self
            .client
            .request_payment(&prepay_id, now_ms() / 1000)
            .map_err(PaymentError::Pay)?;
        Ok(PaymentParams {
            order_id: order_id.to_owned(),
            prepay_id,
            payment,
        })
    }

    /// A notification as WeChat Pay posted it (headers and the raw body).
    /// `Ok` means it is durable or was already: answer 2xx.
    pub async fn notify(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<(), NotifyRejection> {
        let verified = self
            .client
            .notifications()
            .parse(headers, body, now_ms() / 1000);
        let notification = verified.inspect_err(|error| {
            metrics::counter!(NOTIFICATIONS_TOTAL, "outcome" => notify_error_label(error))
                .increment(1);
            tracing::warn!(%error, "payment notification refused");
        })?;
        let result = match notification {
            Notification::Payment(transaction) => {
                self.apply_payment(&transaction, "notification").await
            }
            Notification::Refund(refund) => self.apply_refund_notification(&refund).await,
        };
        let label = match &result {
            Ok(()) => "applied",
            Err(NotifyRejection::Mismatch { reason, .. }) => reason,
            Err(NotifyRejection::Unavailable(_)) => "unavailable",
            Err(NotifyRejection::Invalid(error)) => notify_error_label(error),
        };
        metrics::counter!(NOTIFICATIONS_TOTAL, "outcome" => label).increment(1);
        match &result {
            Err(NotifyRejection::Unavailable(detail)) => {
                tracing::error!(detail, "payment notification could not be recorded")
            }
            Err(error) => tracing::warn!(%error, "payment notification refused"),
            Ok(()) => {}
        }
        result
    }

    /// Applies a payment WeChat Pay vouched for (a notification, or a query
    /// answer), after checking it is ours and for the order's amount.
    async fn apply_payment(
        &self,
        transaction: &Transaction,
        source: &'static str,
    ) -> Result<(), NotifyRejection> {
        let mismatch =
            |reason: &'static str, message: String| NotifyRejection::Mismatch { reason, message };
        if transaction.mchid != self.mchid {
            let message = format!("mchid {} is not ours", transaction.mchid);
            return Err(mismatch("mchid_mismatch", message));
        }
        if transaction.appid != self.appid {
            let message = format!("appid {} is not ours", transaction.appid);
            return Err(mismatch("appid_mismatch", message));
        }
        if !matches!(
            transaction.trade_state,
            TradeState::Success | TradeState::Refund
        ) {
            let message = format!("trade_state {} is not a payment", transaction.trade_state);
            return Err(mismatch("not_paid", message));
        }
        let Some(transaction_id) = transaction.transaction_id.clone() else {
            return Err(mismatch(
                "no_transaction_id",
                "a payment without transaction_id".into(),
            ));
        };
        let paid_at = transaction
            .success_time
            .as_deref()
            .and_then(parse_rfc3339)
            .unwrap_or_else(now_ms);
        let payment = PaymentReceived {
            transaction_id,
            amount_fen: transaction.amount.total,
            paid_at,
        };
        let order_id = &transaction.out_trade_no;
        let (outcome, commit) = match self.engine.confirm_payment(order_id, payment, now_ms()) {
            Ok(decided) => decided,
            Err(SaleError::NotFound(message)) => return Err(mismatch("unknown_order", message)),
            Err(SaleError::PaymentMismatch(message)) => {
                return Err(mismatch("amount_mismatch", message))
            }
            Err(error) => return Err(NotifyRejection::Unavailable(error.to_string())),
        };
        commit
            .durable()
            .await
            .map_err(|error| NotifyRejection::Unavailable(error.to_string()))?;
        let label = match &outcome {
            PaymentOutcome::Paid => "paid",
            PaymentOutcome::AlreadyApplied => "duplicate",
            PaymentOutcome::Reinstated => "reinstated",
            PaymentOutcome::RefundDue(_) => "late_refund",
        };
        metrics::counter!(PAYMENTS_TOTAL, "outcome" => label, "source" => source).increment(1);
        self.overdue.remove(order_id);
        self.queried.remove(order_id);
        if let PaymentOutcome::RefundDue(_) = outcome {
            // Not here: WeChat Pay wants its answer within 5 s, and the
            // refund is journaled already. The sweep asks for it now.
            tracing::warn!(
                order_id,
                "a payment arrived after the order's units were gone: refunding"
            );
            self.sweep_now.notify_one();
        }
        Ok(())
    }

    async fn apply_refund_notification(
        &self,
        refund: &RefundResource,
    ) -> Result<(), NotifyRejection> {
        if refund.mchid != self.mchid {
            return Err(NotifyRejection::Mismatch {
                reason: "mchid_mismatch",
                message: format!("mchid {} is not ours", refund.mchid),
            });
        }
        // Only the refund the gateway asked for completes the order.
        if refund.out_refund_no != out_refund_no_of(&refund.out_trade_no) {
            return Err(NotifyRejection::Mismatch {
                reason: "refund_not_requested",
                message: format!(
                    "refund {} was not asked for by this gateway",
                    refund.out_refund_no
                ),
            });
        }
        self.apply_refund_status(
            &refund.out_trade_no,
            &refund.refund_id,
            &refund.refund_status,
        )
        .await
        .map_err(|error| match error {
            PaymentError::Sale(SaleError::NotFound(message)) => NotifyRejection::Mismatch {
                reason: "unknown_order",
                message,
            },
            // A refund the gateway never asked for (made on the merchant
            // platform, say): a person must look; the daily bill shows it.
            PaymentError::Sale(SaleError::InvalidState(message)) => NotifyRejection::Mismatch {
                reason: "refund_not_requested",
                message,
            },
            other => NotifyRejection::Unavailable(other.to_string()),
        })
    }

    /// Records a refund's final state. Only success moves the order; a
    /// closed or abnormal refund leaves it `refunding` for a person (the
    /// merchant platform's abnormal-refund flow), counted and logged.
    async fn apply_refund_status(
        &self,
        order_id: &str,
        refund_id: &str,
        status: &RefundStatus,
    ) -> Result<(), PaymentError> {
        match status {
            RefundStatus::Success => {
                let (applied, commit) =
                    self.engine.complete_refund(order_id, refund_id, now_ms())?;
                commit.durable().await?;
                let label = if applied { "refunded" } else { "duplicate" };
                metrics::counter!(REFUNDS_TOTAL, "outcome" => label).increment(1);
            }
            RefundStatus::Processing => {}
            other => {
                tracing::error!(order_id, refund_id, status = %other, "refund did not succeed; needs a person");
                metrics::counter!(REFUNDS_TOTAL, "outcome" => "failed").increment(1);
            }
        }
        Ok(())
    }

    /// An operator's full refund: journal `refunding`, then ask WeChat Pay.
    /// A failed call leaves the order `refunding`; the sweep asks again
    /// with the same `out_refund_no`.
    pub async fn refund(&self, order_id: &str) -> Result<AdminOrderView, PaymentError> {
        let (refund, commit) =
            self.engine
                .request_refund(order_id, RefundReason::Admin, now_ms())?;
        commit.durable().await?;
        self.submit_refund(&refund, &self.client).await?;
        Ok(self.engine.order_for_admin(order_id)?)
    }

    async fn submit_refund(
        &self,
        refund: &RefundOrder,
        client: &PayClient,
    ) -> Result<(), PaymentError> {
        let reason = match refund.reason {
            RefundReason::Admin => "商户退款",
            RefundReason::LatePayment => "订单已超时，退回付款",
        };
        let request = RefundRequest {
            transaction_id: Some(refund.transaction_id.clone()),
            out_trade_no: None,
            out_refund_no: refund.out_refund_no.clone(),
            reason: Some(reason.into()),
            notify_url: Some(self.notify_url.clone()),
            amount: RefundRequestAmount {
                refund: refund.amount_fen,
                total: refund.amount_fen,
                currency: CURRENCY_CNY.into(),
            },
        };
        let accepted = client.refund(&request).await;
        let label = if accepted.is_ok() {
            "submitted"
        } else {
            "submit_failed"
        };
        metrics::counter!(REFUNDS_TOTAL, "outcome" => label).increment(1);
        let accepted = accepted?;
        self.apply_refund_status(&refund.order_id, &accepted.refund_id, &accepted.status)
            .await
    }

    /// Paying orders whose hold ran out (from the hold-expiry task): each
    /// is settled in the background, a bounded number at once.
    pub fn holds_over(self: &Arc<Self>, order_ids: Vec<String>) {
        for order_id in order_ids {
            if self.overdue.insert(order_id.clone()) {
                let payments = Arc::clone(self);
                tokio::spawn(async move { payments.settle(&order_id).await });
            }
        }
    }

    /// Brings one paying order in line with WeChat Pay. Paid there: paid
    /// here (its stock is still held). Not paid and the hold is over: close
    /// it there, and only once WeChat Pay says CLOSED give the stock back.
    /// Anything else (an error, a close that did not take): left for the
    /// next sweep.
    pub async fn settle(&self, order_id: &str) {
        let Ok(_permit) = self.settlements.acquire().await else {
            return;
        };
        let overdue = self.overdue.contains(order_id);
        let outcome = self.settle_once(order_id, overdue).await;
        let label = match &outcome {
            Ok(label) => *label,
            Err(error) => {
                tracing::warn!(order_id, %error, "payment not settled yet; the sweep retries");
                "retry"
            }
        };
        metrics::counter!(SETTLEMENTS_TOTAL, "outcome" => label).increment(1);
    }

    async fn settle_once(&self, order_id: &str, overdue: bool) -> Result<&'static str, String> {
        let mut transaction = self.query(order_id).await?;
        if overdue
            && transaction
                .as_ref()
                .is_some_and(|t| t.trade_state == TradeState::NotPay)
        {
            // Closing is re-entrant; what counts is the state after it.
            if let Err(error) = self.background.close(order_id).await {
                tracing::info!(order_id, %error, "close refused; asking for the order's state");
            }
            transaction = self.query(order_id).await?;
        }
        match transaction.as_ref().map(|t| &t.trade_state) {
            Some(TradeState::Success | TradeState::Refund) => {
                let transaction = transaction.expect("matched Some");
                self.apply_payment(&transaction, "query")
                    .await
                    .map_err(|error| error.to_string())?;
                Ok("paid")
            }
            // Closed there, or never reached WeChat Pay: nobody can pay it.
            Some(TradeState::Closed) | None if overdue => {
                match self.engine.expire_closed_payment(order_id, now_ms()) {
                    Ok(commit) => {
                        commit.durable().await.map_err(|error| error.to_string())?;
                    }
                    // Cancelled or paid meanwhile: nothing left to expire.
                    Err(SaleError::InvalidState(_)) => {}
                    Err(error) => return Err(error.to_string()),
                }
                self.overdue.remove(order_id);
                Ok("closed")
            }
            _ if overdue => Err("still payable at WeChat Pay after close".into()),
            _ => Ok("unpaid"),
        }
    }

    /// Before a buyer's cancel of a paying order: closes it at WeChat Pay
    /// and asks for its state. Paid there: the payment is applied (its
    /// units are still held) and the cancel is refused. Closed (or unknown
    /// there): the cancel may go ahead. Anything else: 502, nothing changed.
    pub async fn close_before_cancel(&self, order_id: &str) -> Result<(), PaymentError> {
        if let Err(error) = self.client.close(order_id).await {
            tracing::info!(order_id, %error, "close before cancel refused; asking for the order's state");
        }
        let transaction = match self.client.query_by_out_trade_no(order_id).await {
            Ok(transaction) => transaction,
            Err(PayError::Api {
                status: 404, code, ..
            }) if code == "ORDER_NOT_EXIST" => return Ok(()),
            Err(error) => return Err(error.into()),
        };
        match transaction.trade_state {
            TradeState::Closed => Ok(()),
            TradeState::Success | TradeState::Refund => {
                self.apply_payment(&transaction, "query")
                    .await
                    .map_err(|error| SaleError::InvalidState(error.to_string()))?;
                Err(SaleError::InvalidState(format!(
                    "order `{order_id}` is paid; it cannot be cancelled (ask for a refund)"
                ))
                .into())
            }
            other => Err(PayError::Api {
                status: 409,
                code: "NOT_CLOSED".into(),
                message: format!("the WeChat Pay order is still {other} after close"),
            }
            .into()),
        }
    }

    /// Whether a payment was ever started for the order (it has a prepay).
    pub fn had_prepay(&self, order_id: &str) -> bool {
        self.engine
            .order_for_admin(order_id)
            .is_ok_and(|order| order.history.iter().any(|entry| entry.status == "paying"))
    }

    /// A buyer cancelled a paying order: close it at WeChat Pay so nobody
    /// pays it now. If the buyer had paid already (close is refused, the
    /// query says SUCCESS), the payment is applied as a late one: the
    /// order is reinstated while its stock lasts, else refunded.
    pub fn cancelled(self: &Arc<Self>, order_id: &str) {
        let (payments, order_id) = (Arc::clone(self), order_id.to_owned());
        tokio::spawn(async move {
            let Ok(_permit) = payments.settlements.acquire().await else {
                return;
            };
            if let Err(error) = payments.background.close(&order_id).await {
                tracing::info!(order_id, %error, "close after cancel refused; asking for the order's state");
            }
            match payments.query(&order_id).await {
                Ok(Some(transaction))
                    if matches!(
                        transaction.trade_state,
                        TradeState::Success | TradeState::Refund
                    ) =>
                {
                    if let Err(error) = payments.apply_payment(&transaction, "query").await {
                        tracing::warn!(order_id, %error, "payment of a cancelled order not applied");
                    }
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(order_id, %error, "cancelled order's state unknown"),
            }
        });
    }

    /// WeChat Pay's view of an order; `None` when it does not know it.
    /// Background: expiry, the sweep and the close after a cancel use it.
    async fn query(&self, order_id: &str) -> Result<Option<Transaction>, String> {
        match self.background.query_by_out_trade_no(order_id).await {
            Ok(transaction) => Ok(Some(transaction)),
            Err(PayError::Api {
                status: 404, code, ..
            }) if code == "ORDER_NOT_EXIST" => Ok(None),
            Err(error) => Err(error.to_string()),
        }
    }

    /// One reconciler pass: paying orders whose notification is overdue are
    /// queried (WeChat Pay's recommended fallback), overdue holds are
    /// settled again, and refunds not yet done are asked for again.
    pub async fn sweep(&self) {
        let now = now_ms();
        let asked_since = now - self.paying_query_after_ms;
        self.queried.retain(|_, at| *at >= asked_since);
        let mut orders: Vec<String> = self.overdue.iter().map(|id| id.clone()).collect();
        orders.truncate(SWEEP_ORDERS_MAX);
        // Oldest first; those asked lately wait their turn, so a sweep
        // reaches further than the oldest SWEEP_ORDERS_MAX.
        let candidates = self
            .engine
            .payments_pending(asked_since, SWEEP_ORDERS_MAX * 4);
        let due = candidates
            .into_iter()
            .filter(|id| !self.overdue.contains(id) && !self.queried.contains_key(id))
            .take(SWEEP_ORDERS_MAX);
        for order_id in due {
            self.queried.insert(order_id.clone(), now);
            orders.push(order_id);
        }
        for order_id in &orders {
            self.settle(order_id).await;
        }
        for refund in self.engine.refunds_pending(SWEEP_ORDERS_MAX) {
            if let Err(error) = self.resume_refund(&refund).await {
                tracing::warn!(order_id = refund.order_id, %error, "refund still pending");
            }
        }
    }

    /// A refund the gateway asked for and has not seen finish: ask WeChat
    /// Pay how it stands; submit it (again, same number) if WeChat Pay does
    /// not know it.
    async fn resume_refund(&self, refund: &RefundOrder) -> Result<(), PaymentError> {
        match self.background.query_refund(&refund.out_refund_no).await {
            Ok(found) => {
                self.apply_refund_status(&refund.order_id, &found.refund_id, &found.status)
                    .await
            }
            Err(PayError::Api {
                status: 404, code, ..
            }) if code == "RESOURCE_NOT_EXISTS" => {
                self.submit_refund(refund, &self.background).await
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Runs [`Payments::sweep`] every `interval` until shutdown.
    pub async fn run_sweeps(
        self: Arc<Self>,
        interval: Duration,
        mut shutdown: crate::shutdown::Shutdown,
    ) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => self.sweep().await,
                _ = self.sweep_now.notified() => self.sweep().await,
                _ = shutdown.triggered() => return,
            }
        }
    }
}
