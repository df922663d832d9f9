//! Faults a test or the load test switches on at runtime: slow or failing API
//! answers, and notifications that arrive twice, as signature probes or
//! tampered. Everything defaults to off; every rate is a probability drawn
//! per call, every count is consumed one call at a time.

use super::ids;
use serde::{Deserialize, Serialize};

/// The endpoint names `FailNext::endpoint` accepts.
pub const ENDPOINTS: [&str; 7] = [
    "prepay",
    "query",
    "close",
    "refund",
    "refund_query",
    "tradebill",
    "billdownload",
];

/// Bounds `Faults::validate` holds a fault set to.
pub const LATENCY_MS_MAX: u64 = 60_000;
pub const NOTIFICATION_DELAY_MS_MAX: u64 = 3_600_000;
pub const FAIL_NEXT_ENTRIES_MAX: usize = 64;
pub const FAIL_NEXT_COUNT_MAX: u32 = 1_000_000;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Added before every API answer (absolute, not scaled).
    pub latency_ms: u64,
    /// Fraction of API calls answered 500 `SYSTEM_ERROR`, before any state change.
    pub system_error_rate: f64,
    /// Fraction of API calls answered 429 `FREQUENCY_LIMITED`, before any state change.
    pub frequency_limited_rate: f64,
    /// Deterministic failures, consumed in order per endpoint.
    pub fail_next: Vec<FailNext>,
    /// Fraction of successfully delivered notifications delivered once more.
    pub duplicate_notification_rate: f64,
    /// Fraction of notifications first sent with a `WECHATPAY/SIGNTEST/` signature.
    pub probe_rate: f64,
    /// The next N notifications are first sent with the body altered after signing.
    pub tamper_next_notifications: u32,
    /// Wait before the first delivery of a notification (absolute ms, not scaled).
    pub notification_delay_ms: u64,
    /// Pay and refund without notifying: the notifications are never sent.
    pub notifications_paused: bool,
}

/// The next `count` calls of `endpoint` fail with `status` and `code`, then
/// the endpoint answers normally again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailNext {
    /// One of [`ENDPOINTS`].
    pub endpoint: String,
    #[serde(default = "one")]
    pub count: u32,
    pub status: u16,
    pub code: String,
    /// Defaults to the usual message of `code`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

fn one() -> u32 {
    1
}

/// An error answer a fault decided on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectedError {
    pub status: u16,
    pub code: String,
    pub message: Option<String>,
}

impl Faults {
    /// Refuses rates outside [0, 1], unknown endpoints and values past the
    /// bounds above, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        let rates = [
            ("system_error_rate", self.system_error_rate),
            ("frequency_limited_rate", self.frequency_limited_rate),
            (
                "duplicate_notification_rate",
                self.duplicate_notification_rate,
            ),
            ("probe_rate", self.probe_rate),
        ];
        for (name, rate) in rates {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be within 0..=1, got {rate}"));
            }
        }
        if self.latency_ms > LATENCY_MS_MAX {
            return Err(format!("latency_ms must be at most {LATENCY_MS_MAX}"));
        }
        if self.notification_delay_ms > NOTIFICATION_DELAY_MS_MAX {
            let max = NOTIFICATION_DELAY_MS_MAX;
            return Err(format!("notification_delay_ms must be at most {max}"));
        }
        if self.fail_next.len() > FAIL_NEXT_ENTRIES_MAX {
            return Err(format!(
                "fail_next holds at most {FAIL_NEXT_ENTRIES_MAX} entries"
            ));
        }
        for entry in &self.fail_next {
            if !ENDPOINTS.contains(&entry.endpoint.as_str()) {
                let known = ENDPOINTS.join(", ");
                return Err(format!(
                    "fail_next endpoint {:?} is not one of {known}",
                    entry.endpoint
                ));
            }
            if !(400..=599).contains(&entry.status) {
                return Err(format!("fail_next status {} is not 4xx/5xx", entry.status));
            }
            if entry.count == 0 || entry.count > FAIL_NEXT_COUNT_MAX {
                let max = FAIL_NEXT_COUNT_MAX;
                return Err(format!("fail_next count must be within 1..={max}"));
            }
        }
        Ok(())
    }

    /// Whether this call of `endpoint` fails, and how: a pending `fail_next`
    /// entry first (consumed), then the random rates.
    pub(crate) fn decide_api_failure(&mut self, endpoint: &str) -> Option<InjectedError> {
        if let Some(index) = self
            .fail_next
            .iter()
            .position(|entry| entry.endpoint == endpoint && entry.count > 0)
        {
            let entry = &mut self.fail_next[index];
            entry.count -= 1;
            let injected = InjectedError {
                status: entry.status,
                code: entry.code.clone(),
                message: entry.message.clone(),
            };
            if entry.count == 0 {
                self.fail_next.remove(index);
            }
            return Some(injected);
        }
        if happens(self.system_error_rate) {
            return Some(InjectedError {
                status: 500,
                code: "SYSTEM_ERROR".into(),
                message: None,
            });
        }
        if happens(self.frequency_limited_rate) {
            return Some(InjectedError {
                status: 429,
                code: "FREQUENCY_LIMITED".into(),
                message: None,
            });
        }
        None
    }

    /// Consumes one of `tamper_next_notifications`, if any is left.
    pub(crate) fn take_tamper(&mut self) -> bool {
        if self.tamper_next_notifications == 0 {
            return false;
        }
        self.tamper_next_notifications -= 1;
        true
    }
}

/// True with probability `rate` (0 never, 1 always).
pub(crate) fn happens(rate: f64) -> bool {
    rate > 0.0 && ids::fraction() < rate
}

#[cfg(test)]
#[path = "faults_tests.rs"]
mod tests;
