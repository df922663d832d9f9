//! Every JSON document on the WeChat Pay wire, shared by the client and the
//! simulator so both sides agree on each key.
//!
//! Rules from the protocol (wechatpay-v3.md §0): JSON `null` is not allowed,
//! so every `Option` is omitted when `None`; WeChat may add keys at any time,
//! so nothing denies unknown fields; amounts are integer fen. Enumerations
//! WeChat may extend (trade state, refund status) keep an unknown value
//! as `Other` instead of failing the whole document.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Declares a string enumeration that keeps unknown values: WeChat adds
/// states (`ACCEPT` appeared in some product docs) without notice.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum $name {
            $($variant,)+
            /// A value this crate does not know, kept verbatim.
            Other(String),
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)+
                    $name::Other(text) => text,
                }
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> Self {
                match text.as_str() {
                    $($text => $name::$variant,)+
                    _ => $name::Other(text),
                }
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.as_str().to_owned()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(
    /// `trade_state` of a transaction. JSAPI: NOTPAY → SUCCESS | CLOSED, SUCCESS → REFUND.
    TradeState {
        Success = "SUCCESS",
        Refund = "REFUND",
        NotPay = "NOTPAY",
        Closed = "CLOSED",
        Revoked = "REVOKED",
        UserPaying = "USERPAYING",
        PayError = "PAYERROR",
    }
);

wire_enum!(
    /// `status` of a refund, `refund_status` of a refund notification.
    RefundStatus {
        Success = "SUCCESS",
        Closed = "CLOSED",
        Processing = "PROCESSING",
        Abnormal = "ABNORMAL",
    }
);

/// The only currency WeChat Pay accepts on this API.
pub const CURRENCY_CNY: &str = "CNY";

// ---------------------------------------------------------------------------
// JSAPI prepay
// ---------------------------------------------------------------------------

/// `POST /v3/pay/transactions/jsapi` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsapiPrepayRequest {
    pub appid: String,
    pub mchid: String,
    pub description: String,
    pub out_trade_no: String,
    /// RFC 3339, e.g. `2018-06-08T10:34:56+08:00`: the payment deadline.
    /// Optional on the wire (7 days without it); empty means absent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub time_expire: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach: Option<String>,
    pub notify_url: String,
    pub amount: PrepayAmount,
    pub payer: Payer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepayAmount {
    /// Fen, at least 1.
    pub total: i64,
    /// Optional on the wire (`CNY` without it); empty means absent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payer {
    pub openid: String,
}

/// `200 {"prepay_id": "wx2014..."}`; valid for 2 hours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepayResponse {
    pub prepay_id: String,
}

// ---------------------------------------------------------------------------
// Transaction: query result and decrypted TRANSACTION.SUCCESS resource
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    pub appid: String,
    pub mchid: String,
    pub out_trade_no: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trade_type: Option<String>,
    pub trade_state: TradeState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trade_state_desc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach: Option<String>,
    /// RFC 3339, present once paid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<Payer>,
    pub amount: TransactionAmount,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionAmount {
    pub total: i64,
    /// What the user actually paid after discounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_total: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_currency: Option<String>,
}

/// `POST /v3/pay/transactions/out-trade-no/{out_trade_no}/close` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseRequest {
    pub mchid: String,
}

// ---------------------------------------------------------------------------
// Refunds
// ---------------------------------------------------------------------------

/// `POST /v3/refund/domestic/refunds` body: exactly one of `transaction_id`
/// and `out_trade_no` names the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_trade_no: Option<String>,
    /// Unique per merchant: the same number is refunded at most once, so a
    /// retry reuses it.
    pub out_refund_no: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Overrides the refund notification URL configured on the platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_url: Option<String>,
    pub amount: RefundRequestAmount,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRequestAmount {
    pub refund: i64,
    pub total: i64,
    pub currency: String,
}

/// Refund create response and `GET /v3/refund/domestic/refunds/{out_refund_no}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub refund_id: String,
    pub out_refund_no: String,
    pub transaction_id: String,
    pub out_trade_no: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_received_account: Option<String>,
    pub status: RefundStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    pub amount: RefundAmount,
}

/// Amounts of a refund (response, query and notification alike).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundAmount {
    pub total: i64,
    pub refund: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_total: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_refund: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// Decrypted resource of a REFUND.SUCCESS / REFUND.ABNORMAL / REFUND.CLOSED
/// notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundResource {
    pub mchid: String,
    pub transaction_id: String,
    pub out_trade_no: String,
    pub refund_id: String,
    pub out_refund_no: String,
    pub refund_status: RefundStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_received_account: Option<String>,
    pub amount: RefundAmount,
}

// ---------------------------------------------------------------------------
// Notifications
// ---------------------------------------------------------------------------

/// The callback body WeChat POSTs to `notify_url`; `resource` is encrypted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationEnvelope {
    pub id: String,
    pub create_time: String,
    /// `encrypt-resource`.
    pub resource_type: String,
    /// `TRANSACTION.SUCCESS`, `REFUND.SUCCESS`, `REFUND.ABNORMAL`, `REFUND.CLOSED`, ...
    pub event_type: String,
    /// Human-readable, e.g. `支付成功`.
    #[serde(default)]
    pub summary: String,
    pub resource: EncryptedResource,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedResource {
    /// `transaction` or `refund`.
    pub original_type: String,
    /// `AEAD_AES_256_GCM`.
    pub algorithm: String,
    /// Base64 of ciphertext ‖ 16-byte tag.
    pub ciphertext: String,
    /// May be empty.
    #[serde(default)]
    pub associated_data: String,
    /// 12 characters, used as the GCM IV as is.
    pub nonce: String,
}

/// The algorithm every notification resource uses.
pub const ALGORITHM_AEAD_AES_256_GCM: &str = "AEAD_AES_256_GCM";
pub const EVENT_TRANSACTION_SUCCESS: &str = "TRANSACTION.SUCCESS";
pub const EVENT_REFUND_SUCCESS: &str = "REFUND.SUCCESS";
pub const EVENT_REFUND_ABNORMAL: &str = "REFUND.ABNORMAL";
pub const EVENT_REFUND_CLOSED: &str = "REFUND.CLOSED";

// ---------------------------------------------------------------------------
// Errors, bills, the Mini Program side
// ---------------------------------------------------------------------------

/// Body of every 4xx/5xx: `{"code", "message", "detail"?}`. `detail` varies
/// by error (`field`, `value`, `issue`, `location`, `sign_information`), so
/// it stays untyped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

/// `GET /v3/bill/tradebill?bill_date=...` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeBillResponse {
    /// `SHA1`.
    pub hash_type: String,
    /// Lower-case hex SHA-1 of the (decompressed) bill.
    pub hash_value: String,
    pub download_url: String,
}

/// The arguments of `wx.requestPayment`, named exactly as the Mini Program
/// API spells them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestPayment {
    pub app_id: String,
    /// Unix seconds, as a string.
    pub time_stamp: String,
    pub nonce_str: String,
    /// `prepay_id=<prepay_id>`.
    pub package: String,
    /// `RSA`.
    pub sign_type: String,
    pub pay_sign: String,
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
