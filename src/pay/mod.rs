//! WeChat Pay APIv3 for a Mini Program (JSAPI) direct merchant.
//!
//! `pay` owns everything that touches WeChat Pay's protocol and nothing of
//! the sale domain: the signature and AEAD primitives ([`crypto`]), the JSON
//! on the wire ([`wire`]), the trade-bill CSV ([`bill`]) and, on top of those,
//! the HTTP client ([`client`], its rate limiter in `limiter`) and callback
//! verification ([`notify`]). The simulator (`pay::sim`)
//! speaks the server side of the same protocol with the same modules, so a
//! disagreement about a byte shows up in both directions at once.
//!
//! The protocol facts, byte for byte, are in shared/wechatpay-v3.md; the
//! fixed vectors the tests check are in shared/wechatpay-v3-vectors.md.
//! Money on this wire is integer fen (`i64`); the domain's decimal yuan is
//! converted by `crate::money` at the boundary.

pub mod bill;
pub mod client;
pub mod crypto;
mod limiter;
pub mod notify;
pub mod sim;
pub mod wire;

pub use bill::{BillError, BillRow, BillSummary};
pub use client::{JsapiPrepay, MerchantConfig, PayClient};
pub use crypto::{
    ApiV3Key, AuthorizationParams, CryptoError, RsaSigner, RsaVerifier, SignedHeaders, Verifier,
    VerifyError,
};
pub use notify::{Notification, NotificationVerifier, NotifyError};

/// What a call to WeChat Pay can end in, other than success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayError {
    /// WeChat answered with an error status and (usually) an error body.
    #[error("WeChat Pay answered {status} {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// A response failed verification: forged, stale, or a signature probe.
    #[error("response not verified: {0}")]
    Verify(#[from] VerifyError),
    /// A 2xx other than the one the endpoint promises.
    #[error("unexpected status {0}")]
    UnexpectedStatus(u16),
    /// The attempt ran past its timeout.
    #[error("timed out")]
    Timeout,
    /// Connecting, sending or reading failed below HTTP.
    #[error("connection failed: {0}")]
    Connection(String),
    /// A verified 2xx whose body is not the JSON the endpoint promises.
    #[error("response body: {0}")]
    Decode(String),
    /// The client's own rate limiter would have made the call wait longer
    /// than its bound; nothing was sent.
    #[error("client rate limit: the next request slot is {wait_ms} ms away")]
    RateLimited { wait_ms: u64 },
    /// The request was refused before sending (an argument WeChat would
    /// reject, such as an amount below 1 fen).
    #[error("request refused locally: {0}")]
    Request(String),
    /// The downloaded bill's SHA-1 differs from `hash_value`.
    #[error("bill hash mismatch: expected {expected}, got {actual}")]
    BillHash { expected: String, actual: String },
    /// Signing or key handling failed locally.
    #[error("crypto: {0}")]
    Crypto(#[from] CryptoError),
    /// The merchant configuration cannot be used.
    #[error("configuration: {0}")]
    Config(String),
}

impl PayError {
    /// Whether the same request (same body, re-signed) may be sent again:
    /// 5xx, 429 `FREQUENCY_LIMITED`/`RATELIMIT_EXCEEDED`, `SYSTEM_ERROR`,
    /// timeouts and connection failures, and a 2xx whose signature does not
    /// verify (a probe). Never any other 4xx: those are the
    /// caller's or the order's fault and a retry repeats them.
    pub fn is_retryable(&self) -> bool {
        match self {
            PayError::Api { status, code, .. } => {
                *status >= 500
                    || code == "SYSTEM_ERROR"
                    || (*status == 429
                        && matches!(code.as_str(), "FREQUENCY_LIMITED" | "RATELIMIT_EXCEEDED"))
            }
            PayError::Timeout | PayError::Connection(_) => true,
            // WeChat Pay sends signature probes (`WECHATPAY/SIGNTEST/`) on
            // responses too: a signature that does not verify is asked
            // again (every call is idempotent by its merchant number). A
            // stale timestamp or an unknown key is not a probe.
            PayError::Verify(VerifyError::BadSignature) => true,
            PayError::Verify(_)
            | PayError::UnexpectedStatus(_)
            | PayError::Decode(_)
            | PayError::RateLimited { .. }
            | PayError::Request(_)
            | PayError::BillHash { .. }
            | PayError::Crypto(_)
            | PayError::Config(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str) -> PayError {
        PayError::Api {
            status,
            code: code.into(),
            message: String::new(),
        }
    }

    #[test]
    fn only_server_side_and_transport_failures_are_retryable() {
        for retryable in [
            api(500, "SYSTEM_ERROR"),
            api(502, ""),
            api(503, "SERVICE_UNAVAILABLE"),
            api(429, "FREQUENCY_LIMITED"),
            api(429, "RATELIMIT_EXCEEDED"),
            PayError::Timeout,
            PayError::Connection("reset".into()),
        ] {
            assert!(retryable.is_retryable(), "{retryable:?}");
        }
        for final_error in [
            api(400, "PARAM_ERROR"),
            api(400, "INVALID_REQUEST"),
            api(401, "SIGN_ERROR"),
            api(403, "OUT_TRADE_NO_USED"),
            api(404, "ORDER_NOT_EXIST"),
            api(429, "SOMETHING_ELSE"),
            PayError::Verify(VerifyError::UnknownSerial("PUB_KEY_ID_X".into())),
            PayError::RateLimited { wait_ms: 5 },
            PayError::Decode("x".into()),
        ] {
            assert!(!final_error.is_retryable(), "{final_error:?}");
        }
    }
}
