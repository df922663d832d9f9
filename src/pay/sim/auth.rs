//! Both directions of the signature scheme, server side (wechatpay-v3.md §1,
//! §2): merchant requests are verified by rebuilding the five-line message
//! from the raw method, path and query, the Authorization header's
//! timestamp and nonce, and the raw body; answers and notifications are
//! signed over `ts\nnonce\nbody\n` with the platform key and name it by its
//! `PUB_KEY_ID_...`. The byte layouts come from `crate::pay::crypto`, the
//! same code the gateway's client signs with.

use super::api_error::ApiError;
use crate::pay::crypto::{
    self, parse_authorization, request_message, response_message, AuthorizationParams, CryptoError,
    RsaSigner, RsaVerifier, SIGNATURE_TYPE, TIMESTAMP_SKEW_SECONDS_MAX,
};
use http::HeaderMap;

/// Every value a signed answer or notification carries, header by header.
#[derive(Debug, Clone)]
pub struct SignatureHeaders {
    pub timestamp: String,
    pub nonce: String,
    pub signature: String,
    pub serial: String,
    pub signature_type: &'static str,
}

impl SignatureHeaders {
    /// `(name, value)` pairs in the spelling WeChat uses.
    pub fn pairs(&self) -> [(&'static str, &str); 5] {
        [
            ("Wechatpay-Timestamp", &self.timestamp),
            ("Wechatpay-Nonce", &self.nonce),
            ("Wechatpay-Signature", &self.signature),
            ("Wechatpay-Serial", &self.serial),
            ("Wechatpay-Signature-Type", self.signature_type),
        ]
    }
}

#[derive(Debug)]
pub struct Auth {
    mchid: String,
    merchant_serial_no: String,
    merchant_key: RsaVerifier,
    platform_signer: RsaSigner,
    public_key_id: String,
}

impl Auth {
    pub fn new(
        mchid: String,
        merchant_serial_no: String,
        merchant_key: RsaVerifier,
        platform_signer: RsaSigner,
        public_key_id: String,
    ) -> Self {
        Self {
            mchid,
            merchant_serial_no,
            merchant_key,
            platform_signer,
            public_key_id,
        }
    }

    /// `Authorization` for this merchant, its certificate serial, a
    /// timestamp less than 300 s from `now_secs`, and a signature over the
    /// request as received.
    pub fn verify_request(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &HeaderMap,
        body: &[u8],
        now_secs: i64,
    ) -> Result<AuthorizationParams, ApiError> {
        let malformed = || {
            ApiError::authorization(
                "Http头Authorization值格式错误，请参考《微信支付商户REST API签名规则》",
                "authorization",
                "authorization format error",
            )
        };
        let value = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(malformed)?;
        let params = parse_authorization(value).map_err(|_| malformed())?;
        if params.mchid != self.mchid {
            return Err(ApiError::authorization(
                "Http头Authorization中的mchid与商户号不匹配",
                "mchid",
                "mchid not match",
            ));
        }
        if params.serial_no != self.merchant_serial_no {
            return Err(ApiError::authorization(
                "商户证书序列号有误。请使用签名私钥匹配的证书序列号",
                "serial_no",
                "serial_no not match",
            ));
        }
        let timestamp = parse_seconds(&params.timestamp).ok_or_else(malformed)?;
        if timestamp.abs_diff(now_secs) >= TIMESTAMP_SKEW_SECONDS_MAX.unsigned_abs() {
            return Err(ApiError::authorization(
                "Http头Authorization中的timestamp与发起请求的时间不得超过5分钟",
                "timestamp",
                "timestamp expired",
            ));
        }
        if params.nonce_str.is_empty() {
            return Err(malformed());
        }
        let message = request_message(method, path_and_query, timestamp, &params.nonce_str, body);
        if !self.merchant_key.verify(&message, &params.signature) {
            return Err(ApiError::sign_not_match(method, path_and_query, &message));
        }
        Ok(params)
    }

    /// Signs `body` (empty for a 204) as WeChat signs answers and notifications.
    pub fn sign(&self, body: &[u8], now_secs: i64) -> Result<SignatureHeaders, CryptoError> {
        let nonce = crypto::nonce_str();
        let signature = self
            .platform_signer
            .sign(&response_message(now_secs, &nonce, body))?;
        Ok(SignatureHeaders {
            timestamp: now_secs.to_string(),
            nonce,
            signature,
            serial: self.public_key_id.clone(),
            signature_type: SIGNATURE_TYPE,
        })
    }
}

/// A request must carry both `Accept` and `User-Agent` (any value).
pub fn has_accept_and_user_agent(headers: &HeaderMap) -> bool {
    headers.contains_key(http::header::ACCEPT) && headers.contains_key(http::header::USER_AGENT)
}

/// Decimal seconds exactly as written (no sign, no leading zero), so the
/// message rebuilt from the number is the one the merchant signed.
fn parse_seconds(text: &str) -> Option<i64> {
    let digits_only =
        !text.is_empty() && text.len() <= 12 && text.bytes().all(|b| b.is_ascii_digit());
    let value: i64 = text.parse().ok().filter(|_| digits_only)?;
    (value.to_string() == text).then_some(value)
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
