//! Callback (notification) handling: from the raw HTTP request WeChat POSTs
//! to `notify_url` to a typed payment or refund result (wechatpay-v3.md §5, §6).
//!
//! The order of the checks is the protocol's: the signature is verified over
//! the raw body bytes first (re-serialised JSON never verifies), then the
//! envelope is parsed, then the resource is decrypted with its own nonce and
//! associated data, then parsed by `event_type`. Every failure is a typed
//! [`NotifyError`] that the HTTP layer answers with a 4xx, which makes WeChat
//! deliver again later; a signature probe (`WECHATPAY/SIGNTEST/...`) is just
//! one more `Verify` failure, never a panic.

use super::crypto::{
    ApiV3Key, SignedHeaders, Verifier, VerifyError, HEADER_SIGNATURE_TYPE, SIGNATURE_TYPE,
};
use super::wire::{
    NotificationEnvelope, RefundResource, Transaction, ALGORITHM_AEAD_AES_256_GCM,
    EVENT_REFUND_ABNORMAL, EVENT_REFUND_CLOSED, EVENT_REFUND_SUCCESS, EVENT_TRANSACTION_SUCCESS,
};
use super::CryptoError;

/// Larger notification bodies are refused before any work: real ones are a
/// few kilobytes.
pub const NOTIFICATION_BYTES_MAX: usize = 64 * 1024;

/// A verified, decrypted notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// `TRANSACTION.SUCCESS`: the order was paid.
    Payment(Transaction),
    /// `REFUND.SUCCESS`, `REFUND.ABNORMAL` or `REFUND.CLOSED`; the resource's
    /// `refund_status` says which.
    Refund(RefundResource),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    #[error("notification body of {bytes} bytes exceeds {NOTIFICATION_BYTES_MAX}")]
    TooLarge { bytes: usize },
    #[error("Wechatpay-Signature-Type {0:?} is not supported")]
    SignatureType(String),
    #[error("signature: {0}")]
    Verify(#[from] VerifyError),
    #[error("envelope is not valid notification JSON: {0}")]
    Envelope(String),
    #[error("resource algorithm {0:?} is not AEAD_AES_256_GCM")]
    Algorithm(String),
    #[error("resource: {0}")]
    Decrypt(#[from] CryptoError),
    #[error("unknown event type {0:?}")]
    UnknownEvent(String),
    #[error("decrypted resource is not a valid {event_type} resource: {reason}")]
    Resource { event_type: String, reason: String },
    #[error("{field} {found:?} is not this merchant's")]
    Merchant { field: &'static str, found: String },
}

/// Verifies and decrypts notifications for one merchant.
#[derive(Debug)]
pub struct NotificationVerifier {
    verifier: Verifier,
    key: ApiV3Key,
    mchid: String,
    appid: String,
}

impl NotificationVerifier {
    pub fn new(
        verifier: Verifier,
        key: ApiV3Key,
        mchid: impl Into<String>,
        appid: impl Into<String>,
    ) -> Self {
        Self {
            verifier,
            key,
            mchid: mchid.into(),
            appid: appid.into(),
        }
    }

    /// The WeChat Pay keys, also used for API responses.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Verifies `raw_body` as received, then decrypts and parses it. A
    /// payment must name this merchant's mchid and appid, a refund its mchid.
    pub fn parse(
        &self,
        headers: &http::HeaderMap,
        raw_body: &[u8],
        now_secs: i64,
    ) -> Result<Notification, NotifyError> {
        if raw_body.len() > NOTIFICATION_BYTES_MAX {
            return Err(NotifyError::TooLarge {
                bytes: raw_body.len(),
            });
        }
        // Absent on older callbacks: the Java SDK defaults it to RSA.
        if let Some(value) = headers.get(HEADER_SIGNATURE_TYPE) {
            if value.as_bytes() != SIGNATURE_TYPE.as_bytes() {
                return Err(NotifyError::SignatureType(
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                ));
            }
        }
        self.verifier
            .verify(&SignedHeaders::from_header_map(headers), raw_body, now_secs)?;

        let envelope: NotificationEnvelope = serde_json::from_slice(raw_body)
            .map_err(|error| NotifyError::Envelope(error.to_string()))?;
        let resource = &envelope.resource;
        if resource.algorithm != ALGORITHM_AEAD_AES_256_GCM {
            return Err(NotifyError::Algorithm(resource.algorithm.clone()));
        }
        let event_type = envelope.event_type.as_str();
        if !is_known_event(event_type) {
            return Err(NotifyError::UnknownEvent(envelope.event_type));
        }
        let plaintext = self.key.decrypt(
            &resource.nonce,
            &resource.associated_data,
            &resource.ciphertext,
        )?;
        let resource_error = |error: serde_json::Error| NotifyError::Resource {
            event_type: event_type.to_owned(),
            reason: error.to_string(),
        };
        if event_type == EVENT_TRANSACTION_SUCCESS {
            let transaction: Transaction =
                serde_json::from_slice(&plaintext).map_err(resource_error)?;
            self.check_merchant(&transaction.mchid, Some(&transaction.appid))?;
            Ok(Notification::Payment(transaction))
        } else {
            let refund: RefundResource =
                serde_json::from_slice(&plaintext).map_err(resource_error)?;
            self.check_merchant(&refund.mchid, None)?;
            Ok(Notification::Refund(refund))
        }
    }

    fn check_merchant(&self, mchid: &str, appid: Option<&str>) -> Result<(), NotifyError> {
        if mchid != self.mchid {
            return Err(NotifyError::Merchant {
                field: "mchid",
                found: mchid.to_owned(),
            });
        }
        match appid {
            Some(appid) if appid != self.appid => Err(NotifyError::Merchant {
                field: "appid",
                found: appid.to_owned(),
            }),
            _ => Ok(()),
        }
    }
}

fn is_known_event(event_type: &str) -> bool {
    matches!(
        event_type,
        EVENT_TRANSACTION_SUCCESS
            | EVENT_REFUND_SUCCESS
            | EVENT_REFUND_ABNORMAL
            | EVENT_REFUND_CLOSED
    )
}

/// Builds signed, encrypted notifications as WeChat does: the simulator's
/// sender, the tests' and the fuzz seeds' source of valid input.
pub mod build {
    use super::super::crypto::{
        self, ApiV3Key, RsaSigner, HEADER_NONCE, HEADER_SERIAL, HEADER_SIGNATURE,
        HEADER_SIGNATURE_TYPE, HEADER_TIMESTAMP, SIGNATURE_TYPE,
    };
    use super::super::wire::{EncryptedResource, NotificationEnvelope, ALGORITHM_AEAD_AES_256_GCM};
    use super::super::CryptoError;
    use http::{HeaderMap, HeaderValue};

    /// An envelope around `plaintext` encrypted with `key` under a fresh
    /// 12-character nonce; `original_type` is also the associated data, as
    /// in real traffic (`transaction`, `refund`).
    pub fn envelope(
        key: &ApiV3Key,
        id: &str,
        create_time: &str,
        event_type: &str,
        summary: &str,
        original_type: &str,
        plaintext: &[u8],
    ) -> Result<NotificationEnvelope, CryptoError> {
        let nonce = crypto::random_alphanumeric(12);
        let ciphertext = key.encrypt(&nonce, original_type, plaintext)?;
        Ok(NotificationEnvelope {
            id: id.to_owned(),
            create_time: create_time.to_owned(),
            resource_type: "encrypt-resource".to_owned(),
            event_type: event_type.to_owned(),
            summary: summary.to_owned(),
            resource: EncryptedResource {
                original_type: original_type.to_owned(),
                algorithm: ALGORITHM_AEAD_AES_256_GCM.to_owned(),
                ciphertext,
                associated_data: original_type.to_owned(),
                nonce,
            },
        })
    }

    /// The five `Wechatpay-*` headers signing `body` at `timestamp_secs`.
    pub fn signed_headers(
        signer: &RsaSigner,
        serial: &str,
        timestamp_secs: i64,
        body: &[u8],
    ) -> Result<HeaderMap, CryptoError> {
        let nonce = crypto::nonce_str();
        let signature = signer.sign(&crypto::response_message(timestamp_secs, &nonce, body))?;
        let mut headers = HeaderMap::new();
        let text = |value: &str| HeaderValue::from_str(value).map_err(|_| CryptoError::Signing);
        headers.insert(HEADER_TIMESTAMP, text(&timestamp_secs.to_string())?);
        headers.insert(HEADER_NONCE, text(&nonce)?);
        headers.insert(HEADER_SIGNATURE, text(&signature)?);
        headers.insert(HEADER_SERIAL, text(serial)?);
        headers.insert(
            HEADER_SIGNATURE_TYPE,
            HeaderValue::from_static(SIGNATURE_TYPE),
        );
        Ok(headers)
    }
}

#[cfg(test)]
#[path = "notify_tests.rs"]
mod tests;
