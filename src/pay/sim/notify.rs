//! Notifications (wechatpay-v3.md §5, §6): the envelope with its encrypted
//! resource, and their delivery on WeChat's retry schedule.
//!
//! Every pending piece of timed work — a delivery attempt, a refund that
//! will succeed — is one task in a min-heap ordered by due time, bounded by
//! [`TASKS_MAX`]; one scheduler task pops what is due and runs attempts on
//! at most [`ATTEMPTS_IN_FLIGHT_MAX`] concurrent connections. An attempt
//! that fails (non-2xx, timeout, connection error) puts its successor back
//! into the heap after the next step of the schedule, so a notification
//! holds one slot from its creation to its last attempt. At the bound a new
//! notification is dropped (and logged as such in the deliveries) rather
//! than queued without limit.
//!
//! Attempt kinds: a *probe* carries a `WECHATPAY/SIGNTEST/` signature and a
//! *tampered* one a body altered after signing; the merchant must refuse
//! both with a non-2xx (a 2xx is logged as `accepted_bad_signature`), and
//! either way the genuine notification follows on the retry schedule. A
//! *duplicate* re-sends a delivered notification, same id, once.

use super::auth::SignatureHeaders;
use super::faults::happens;
use super::post::{post, PostOutcome};
use super::{ids, Shared};
use crate::clock::{format_beijing_rfc3339, now_ms, UnixMs};
use crate::pay::crypto::{random_alphanumeric, ApiV3Key, CryptoError};
use crate::pay::wire::{EncryptedResource, NotificationEnvelope, ALGORITHM_AEAD_AES_256_GCM};
use crate::shutdown::Shutdown;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// WeChat's documented retry delays after a failed attempt: 15 retries,
/// 24 h 4 min in all. Read as 15 retries *after* the first attempt (16
/// attempts at most); the fact sheet leaves that open (uncertainty 8).
pub const RETRY_SCHEDULE_SECONDS: [u64; 15] = [
    15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600,
];
/// WeChat waits this long for the merchant's answer (scaled, at least 1 s).
pub const ANSWER_TIMEOUT_SECONDS: f64 = 5.0;
const ANSWER_TIMEOUT_MIN: Duration = Duration::from_secs(1);
/// A duplicate follows its delivered original after this long (scaled).
pub const DUPLICATE_DELAY_SECONDS: f64 = 1.0;
/// A refund is PROCESSING this long before it succeeds (scaled).
pub const REFUND_SUCCESS_DELAY_SECONDS: f64 = 2.0;
/// Pending timed tasks (notifications with attempts left, refunds to complete).
pub const TASKS_MAX: usize = 100_000;
/// Concurrent delivery connections.
pub const ATTEMPTS_IN_FLIGHT_MAX: usize = 64;
/// Attempts kept in the delivery log; older ones are forgotten first.
pub const DELIVERIES_MAX: usize = 100_000;

const USER_AGENT: &str = concat!("flashgate-wxpay-sim/", env!("CARGO_PKG_VERSION"));
const PROBE_SIGNATURE_PREFIX: &str = "WECHATPAY/SIGNTEST/";
const AEAD_NONCE_LEN: usize = 12;
const RESOURCE_TYPE: &str = "encrypt-resource";

/// What an attempt sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryKind {
    Normal,
    Duplicate,
    Probe,
    Tampered,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum DeliveryOutcome {
    /// The merchant answered with this HTTP status.
    Answered {
        status: u16,
    },
    /// No answer within the (scaled) 5 s.
    Timeout,
    ConnectionError {
        message: String,
    },
    /// Never sent: the simulator's task queue was full.
    Dropped,
}

impl DeliveryOutcome {
    /// A 2xx answer: WeChat counts the notification as delivered.
    pub fn is_success(&self) -> bool {
        matches!(self, DeliveryOutcome::Answered { status } if (200..300).contains(status))
    }
}

/// One notification attempt, as the delivery log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub event_id: String,
    /// `TRANSACTION.SUCCESS` or `REFUND.SUCCESS`.
    pub event_type: String,
    pub out_trade_no: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_refund_no: Option<String>,
    /// 1 for the first attempt of the event; retries and duplicates count on.
    pub attempt: u32,
    pub kind: DeliveryKind,
    pub outcome: DeliveryOutcome,
    /// The merchant answered 2xx to a probe or a tampered body: it did not
    /// verify the signature. Always false for normal and duplicate attempts.
    pub accepted_bad_signature: bool,
    /// When the attempt was sent, Unix ms.
    pub at_ms: UnixMs,
}

/// A notification ready to send: the envelope bytes (and a tampered copy)
/// and where they go.
#[derive(Debug)]
pub struct Notification {
    pub event_id: String,
    pub event_type: &'static str,
    pub out_trade_no: String,
    pub out_refund_no: Option<String>,
    pub notify_url: String,
    body: Bytes,
    tampered_body: Bytes,
    /// Attempts before the first genuine one (tampered, probe).
    lead_kinds: Vec<DeliveryKind>,
}

/// The event a notification reports.
pub struct Event<'a> {
    pub event_type: &'static str,
    pub summary: &'static str,
    /// `transaction` or `refund`: the resource's `original_type` and AAD.
    pub original_type: &'static str,
    pub resource_json: &'a [u8],
    pub out_trade_no: &'a str,
    pub out_refund_no: Option<&'a str>,
    pub notify_url: &'a str,
}

impl Notification {
    /// Encrypts the resource with a fresh 12-character nonce and lays out
    /// the §5 envelope.
    pub fn compose(
        key: &ApiV3Key,
        event: &Event<'_>,
        lead_kinds: Vec<DeliveryKind>,
        now_ms: UnixMs,
    ) -> Result<Self, CryptoError> {
        let nonce = random_alphanumeric(AEAD_NONCE_LEN);
        let ciphertext = key.encrypt(&nonce, event.original_type, event.resource_json)?;
        let mut envelope = NotificationEnvelope {
            id: ids::event_id(),
            create_time: format_beijing_rfc3339(now_ms),
            resource_type: RESOURCE_TYPE.into(),
            event_type: event.event_type.into(),
            summary: event.summary.into(),
            resource: EncryptedResource {
                original_type: event.original_type.into(),
                algorithm: ALGORITHM_AEAD_AES_256_GCM.into(),
                ciphertext,
                associated_data: event.original_type.into(),
                nonce,
            },
        };
        let body = Bytes::from(serde_json::to_vec(&envelope).expect("an envelope serialises"));
        // Still valid JSON, still decryptable: only the signature tells.
        envelope.summary.push_str("（已篡改）");
        let tampered_body =
            Bytes::from(serde_json::to_vec(&envelope).expect("an envelope serialises"));
        Ok(Self {
            event_id: envelope.id,
            event_type: event.event_type,
            out_trade_no: event.out_trade_no.to_owned(),
            out_refund_no: event.out_refund_no.map(str::to_owned),
            notify_url: event.notify_url.to_owned(),
            body,
            tampered_body,
            lead_kinds,
        })
    }

    /// The kind of attempt number `attempt` (1-based), duplicates aside.
    fn kind_of_attempt(&self, attempt: u32) -> DeliveryKind {
        let index = usize::try_from(attempt - 1).unwrap_or(usize::MAX);
        self.lead_kinds
            .get(index)
            .copied()
            .unwrap_or(DeliveryKind::Normal)
    }

    fn delivery(
        &self,
        attempt: u32,
        kind: DeliveryKind,
        outcome: DeliveryOutcome,
        at_ms: UnixMs,
    ) -> Delivery {
        let bad_signature = matches!(kind, DeliveryKind::Probe | DeliveryKind::Tampered);
        Delivery {
            event_id: self.event_id.clone(),
            event_type: self.event_type.to_owned(),
            out_trade_no: self.out_trade_no.clone(),
            out_refund_no: self.out_refund_no.clone(),
            attempt,
            kind,
            accepted_bad_signature: bad_signature && outcome.is_success(),
            outcome,
            at_ms,
        }
    }
}

/// Durations of the protocol, multiplied by the configured time scale.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub time_scale: f64,
}

impl Timing {
    pub fn scaled(&self, seconds: f64) -> Duration {
        Duration::from_secs_f64((seconds * self.time_scale).max(0.0))
    }

    pub fn answer_timeout(&self) -> Duration {
        self.scaled(ANSWER_TIMEOUT_SECONDS).max(ANSWER_TIMEOUT_MIN)
    }

    /// The wait after failed attempt number `attempt`, or `None` when the
    /// schedule is used up.
    pub fn retry_delay(&self, attempt: u32) -> Option<Duration> {
        let index = usize::try_from(attempt.checked_sub(1)?).ok()?;
        let seconds = *RETRY_SCHEDULE_SECONDS.get(index)?;
        Some(self.scaled(seconds as f64))
    }
}

struct Attempt {
    notification: Arc<Notification>,
    number: u32,
    kind: DeliveryKind,
}

enum Task {
    Attempt(Attempt),
    CompleteRefund(String),
}

struct Scheduled {
    due: Instant,
    sequence: u64,
    task: Task,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.sequence) == (other.due, other.sequence)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.due, self.sequence).cmp(&(other.due, other.sequence))
    }
}

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<Scheduled>>,
    next_sequence: u64,
    /// Tasks waiting in the heap or being attempted right now.
    tasks_live: usize,
}

enum Next {
    Due(Task),
    /// Nothing due; the earliest task's time, if any.
    Wait(Option<Instant>),
}

/// The timed tasks and the delivery log.
pub struct Notifier {
    queue: Mutex<Queue>,
    wake: Notify,
    deliveries: Mutex<VecDeque<Delivery>>,
    pub timing: Timing,
}

impl Notifier {
    pub fn new(timing: Timing) -> Self {
        Self {
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            deliveries: Mutex::new(VecDeque::new()),
            timing,
        }
    }

    /// Queues a new notification's first attempt after `delay`; false (and a
    /// `Dropped` entry in the log) when the queue is full.
    pub fn submit(&self, notification: Notification, delay: Duration) -> bool {
        let kind = notification.kind_of_attempt(1);
        let notification = Arc::new(notification);
        let attempt = Attempt {
            notification: Arc::clone(&notification),
            number: 1,
            kind,
        };
        if self.push_new(Task::Attempt(attempt), delay) {
            return true;
        }
        tracing::warn!(event_id = %notification.event_id, "notification dropped: {TASKS_MAX} tasks pending");
        self.record(notification.delivery(1, kind, DeliveryOutcome::Dropped, now_ms()));
        false
    }

    /// Queues the success of a refund; false when the queue is full.
    pub fn submit_refund_completion(&self, out_refund_no: String, delay: Duration) -> bool {
        self.push_new(Task::CompleteRefund(out_refund_no), delay)
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        let log = self
            .deliveries
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        log.iter().cloned().collect()
    }

    fn record(&self, delivery: Delivery) {
        tracing::debug!(?delivery, "notification attempt");
        let mut log = self
            .deliveries
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if log.len() == DELIVERIES_MAX {
            log.pop_front();
        }
        log.push_back(delivery);
    }

    fn push_new(&self, task: Task, delay: Duration) -> bool {
        let mut queue = self.lock_queue();
        if queue.tasks_live >= TASKS_MAX {
            return false;
        }
        queue.tasks_live += 1;
        Self::push(&mut queue, task, delay);
        drop(queue);
        self.wake.notify_one();
        true
    }

    /// Puts a live task back (a retry or duplicate keeps its slot).
    fn push_again(&self, task: Task, delay: Duration) {
        Self::push(&mut self.lock_queue(), task, delay);
        self.wake.notify_one();
    }

    fn push(queue: &mut Queue, task: Task, delay: Duration) {
        let sequence = queue.next_sequence;
        queue.next_sequence += 1;
        let due = Instant::now() + delay;
        queue.heap.push(Reverse(Scheduled {
            due,
            sequence,
            task,
        }));
        debug_assert!(queue.heap.len() <= queue.tasks_live);
    }

    /// A live task ended for good.
    fn finish(&self) {
        let mut queue = self.lock_queue();
        debug_assert!(queue.tasks_live > 0);
        queue.tasks_live = queue.tasks_live.saturating_sub(1);
    }

    fn next(&self, now: Instant) -> Next {
        let mut queue = self.lock_queue();
        match queue.heap.peek() {
            Some(Reverse(first)) if first.due <= now => {
                let Reverse(scheduled) = queue.heap.pop().expect("peeked");
                Next::Due(scheduled.task)
            }
            Some(Reverse(first)) => Next::Wait(Some(first.due)),
            None => Next::Wait(None),
        }
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The scheduler: runs due tasks until shutdown, then aborts the attempts
/// in flight.
pub async fn run(shared: Arc<Shared>, mut shutdown: Shutdown) {
    let permits = Arc::new(Semaphore::new(ATTEMPTS_IN_FLIGHT_MAX));
    let mut attempts = JoinSet::new();
    loop {
        while attempts.try_join_next().is_some() {}
        match shared.notifier.next(Instant::now()) {
            Next::Due(Task::CompleteRefund(out_refund_no)) => {
                shared.complete_refund(&out_refund_no);
                shared.notifier.finish();
            }
            Next::Due(Task::Attempt(attempt)) => {
                let permit = tokio::select! {
                    permit = Arc::clone(&permits).acquire_owned() => permit.expect("the semaphore is never closed"),
                    _ = shutdown.triggered() => break,
                };
                let shared = Arc::clone(&shared);
                attempts.spawn(async move {
                    run_attempt(&shared, attempt).await;
                    drop(permit);
                });
            }
            Next::Wait(until) => {
                let sleep = async {
                    match until {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = sleep => {}
                    _ = shared.notifier.wake.notified() => {}
                    Some(_) = attempts.join_next(), if !attempts.is_empty() => {}
                    _ = shutdown.triggered() => break,
                }
            }
        }
    }
    attempts.abort_all();
    while attempts.join_next().await.is_some() {}
}

async fn run_attempt(shared: &Shared, attempt: Attempt) {
    let notification = &attempt.notification;
    let at_ms = now_ms();
    let outcome = match shared.auth.sign(&notification.body, at_ms / 1000) {
        Ok(signature) => send(shared, notification, attempt.kind, signature).await,
        Err(error) => DeliveryOutcome::ConnectionError {
            message: format!("signing failed: {error}"),
        },
    };
    let delivered = outcome.is_success();
    shared
        .notifier
        .record(notification.delivery(attempt.number, attempt.kind, outcome, at_ms));
    follow_up(shared, attempt, delivered);
}

async fn send(
    shared: &Shared,
    notification: &Notification,
    kind: DeliveryKind,
    signature: SignatureHeaders,
) -> DeliveryOutcome {
    let probe_signature = format!("{PROBE_SIGNATURE_PREFIX}{}", random_alphanumeric(64));
    let mut headers: Vec<(&str, String)> = Vec::with_capacity(7);
    for (name, value) in signature.pairs() {
        let value = match (name, kind) {
            ("Wechatpay-Signature", DeliveryKind::Probe) => probe_signature.clone(),
            _ => value.to_owned(),
        };
        headers.push((name, value));
    }
    headers.push(("User-Agent", USER_AGENT.to_owned()));
    headers.push(("Request-ID", format!("{}-0", ids::request_hex())));
    let body = match kind {
        DeliveryKind::Tampered => notification.tampered_body.clone(),
        _ => notification.body.clone(),
    };
    let timeout = shared.notifier.timing.answer_timeout();
    match post(&notification.notify_url, &headers, body, timeout).await {
        PostOutcome::Answered(status) => DeliveryOutcome::Answered { status },
        PostOutcome::Timeout => DeliveryOutcome::Timeout,
        PostOutcome::ConnectionError(message) => DeliveryOutcome::ConnectionError { message },
    }
}

/// After an attempt: done, a duplicate, the next retry, or giving up.
fn follow_up(shared: &Shared, attempt: Attempt, delivered: bool) {
    let notifier = &shared.notifier;
    let genuine_delivered = delivered && attempt.kind == DeliveryKind::Normal;
    if attempt.kind == DeliveryKind::Duplicate {
        notifier.finish();
    } else if genuine_delivered {
        if happens(shared.faults().duplicate_notification_rate) {
            let duplicate = Attempt {
                notification: attempt.notification,
                number: attempt.number + 1,
                kind: DeliveryKind::Duplicate,
            };
            let delay = notifier.timing.scaled(DUPLICATE_DELAY_SECONDS);
            notifier.push_again(Task::Attempt(duplicate), delay);
        } else {
            notifier.finish();
        }
    } else if let Some(delay) = notifier.timing.retry_delay(attempt.number) {
        let number = attempt.number + 1;
        let retry = Attempt {
            kind: attempt.notification.kind_of_attempt(number),
            notification: attempt.notification,
            number,
        };
        notifier.push_again(Task::Attempt(retry), delay);
    } else {
        let event_id = &attempt.notification.event_id;
        tracing::debug!(%event_id, attempts = attempt.number, "notification given up");
        notifier.finish();
    }
}

#[cfg(test)]
#[path = "notify_tests.rs"]
mod tests;
