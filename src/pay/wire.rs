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
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;

    /// Parses `json`, checks it re-serialises to the same JSON value (no
    /// nulls added, no key lost) and returns the typed value.
    fn round_trip<T: Serialize + DeserializeOwned>(json: &str) -> T {
        let value: T = serde_json::from_str(json).expect("parses");
        let again = serde_json::to_value(&value).unwrap();
        let original: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(again, original);
        value
    }

    #[test]
    fn jsapi_prepay_request_and_response_round_trip() {
        let request: JsapiPrepayRequest = round_trip(
            r#"{"appid":"wxd678efh567hg6787","mchid":"1230000109","description":"Image形象店-深圳腾大-QQ公仔",
                "out_trade_no":"1217752501201407033233368018","time_expire":"2018-06-08T10:34:56+08:00",
                "attach":"自定义数据说明","notify_url":"https://www.weixin.qq.com/wxpay/pay.php",
                "amount":{"total":100,"currency":"CNY"},"payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}}"#,
        );
        assert_eq!(request.amount.total, 100);
        let without_attach = JsapiPrepayRequest {
            attach: None,
            ..request
        };
        assert!(!serde_json::to_string(&without_attach)
            .unwrap()
            .contains("attach"));
        let minimal: JsapiPrepayRequest = round_trip(
            r#"{"appid":"wx1","mchid":"1230000109","description":"d","out_trade_no":"ORDER1",
                "notify_url":"https://example.com/notify","amount":{"total":1},"payer":{"openid":"o"}}"#,
        );
        assert_eq!(
            (
                minimal.time_expire.as_str(),
                minimal.amount.currency.as_str()
            ),
            ("", "")
        );
        let response: PrepayResponse =
            round_trip(r#"{"prepay_id":"wx201410272009395522657a690389285100"}"#);
        assert_eq!(response.prepay_id, "wx201410272009395522657a690389285100");
    }

    #[test]
    fn transaction_parses_leniently_and_omits_absent_keys() {
        let paid: Transaction = serde_json::from_str(
            r#"{"appid":"wxd678efh567hg6787","mchid":"1230000109","out_trade_no":"1217752501201407033233368018",
                "transaction_id":"1217752501201407033233368018","trade_type":"JSAPI","trade_state":"SUCCESS",
                "trade_state_desc":"支付成功","bank_type":"CMC","attach":"自定义数据","success_time":"2018-06-08T10:34:56+08:00",
                "payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
                "amount":{"total":100,"payer_total":100,"currency":"CNY","payer_currency":"CNY"},
                "scene_info":{"device_id":"013467007045764"},
                "promotion_detail":[{"coupon_id":"109519","amount":100}]}"#,
        )
        .unwrap();
        assert_eq!(paid.trade_state, TradeState::Success);
        assert_eq!(paid.amount.payer_total, Some(100));

        let unpaid: Transaction = round_trip(
            r#"{"appid":"wxd678efh567hg6787","mchid":"1230000109","out_trade_no":"ORDER1",
                "trade_state":"NOTPAY","trade_state_desc":"订单未支付","amount":{"total":100}}"#,
        );
        assert_eq!(unpaid.trade_state, TradeState::NotPay);
        let json = serde_json::to_string(&unpaid).unwrap();
        assert!(
            !json.contains("null") && !json.contains("transaction_id"),
            "{json}"
        );

        let future: Transaction = round_trip(
            r#"{"appid":"a","mchid":"m","out_trade_no":"o","trade_state":"ACCEPT","amount":{"total":1}}"#,
        );
        assert_eq!(future.trade_state, TradeState::Other("ACCEPT".into()));
        let with_null: Transaction =
            serde_json::from_str(r#"{"appid":"a","mchid":"m","out_trade_no":"o","trade_state":"CLOSED","attach":null,"amount":{"total":1}}"#)
                .unwrap();
        assert_eq!(with_null.attach, None);
    }

    #[test]
    fn close_and_refund_documents_round_trip() {
        let close: CloseRequest = round_trip(r#"{"mchid":"1230000109"}"#);
        assert_eq!(close.mchid, "1230000109");

        let request: RefundRequest = round_trip(
            r#"{"out_trade_no":"1217752501201407033233368018","out_refund_no":"1217752501201407033233368018",
                "reason":"商品已售完","notify_url":"https://weixin.qq.com",
                "amount":{"refund":888,"total":888,"currency":"CNY"}}"#,
        );
        assert_eq!(request.transaction_id, None);
        let by_id: RefundRequest = round_trip(
            r#"{"transaction_id":"4200000985202103031441826014","out_refund_no":"R1","amount":{"refund":1,"total":2,"currency":"CNY"}}"#,
        );
        assert_eq!(by_id.out_trade_no, None);

        let refund: Refund = round_trip(
            r#"{"refund_id":"50000000382019052709732678859","out_refund_no":"1217752501201407033233368018",
                "transaction_id":"1217752501201407033233368018","out_trade_no":"1217752501201407033233368018",
                "channel":"ORIGINAL","user_received_account":"招商银行信用卡0403","success_time":"2020-12-01T16:18:12+08:00",
                "create_time":"2020-12-01T16:18:12+08:00","status":"SUCCESS",
                "amount":{"total":100,"refund":100,"payer_total":90,"payer_refund":90,"currency":"CNY"}}"#,
        );
        assert_eq!(refund.status, RefundStatus::Success);
        let processing: Refund = round_trip(
            r#"{"refund_id":"5","out_refund_no":"R","transaction_id":"T","out_trade_no":"O","status":"PROCESSING","amount":{"total":2,"refund":1}}"#,
        );
        assert_eq!(processing.status, RefundStatus::Processing);
    }

    #[test]
    fn refund_notification_resource_round_trips() {
        let resource: RefundResource = round_trip(
            r#"{"mchid":"1900000100","transaction_id":"1008450740201411110005820873","out_trade_no":"20150806125346",
                "refund_id":"50200207182018070300011301001","out_refund_no":"7752501201407033233368018",
                "refund_status":"SUCCESS","success_time":"2018-06-08T10:34:56+08:00",
                "user_received_account":"招商银行信用卡0403","amount":{"total":999,"refund":999,"payer_total":999,"payer_refund":999}}"#,
        );
        assert_eq!(resource.refund_status, RefundStatus::Success);
        assert_eq!(resource.amount.payer_refund, Some(999));
    }

    #[test]
    fn notification_envelope_round_trips() {
        let envelope: NotificationEnvelope = round_trip(
            r#"{"id":"EV-2018022511223320873","create_time":"2015-05-20T13:29:35+08:00","resource_type":"encrypt-resource",
                "event_type":"TRANSACTION.SUCCESS","summary":"支付成功",
                "resource":{"original_type":"transaction","algorithm":"AEAD_AES_256_GCM",
                "ciphertext":"xrorB1ylLg==","associated_data":"transaction","nonce":"fa3b0c9d8e7f"}}"#,
        );
        assert_eq!(envelope.event_type, EVENT_TRANSACTION_SUCCESS);
        assert_eq!(envelope.resource.algorithm, ALGORITHM_AEAD_AES_256_GCM);
        let without_aad: NotificationEnvelope = serde_json::from_str(
            r#"{"id":"1","create_time":"t","resource_type":"encrypt-resource","event_type":"REFUND.SUCCESS",
                "resource":{"original_type":"refund","algorithm":"AEAD_AES_256_GCM","ciphertext":"x","nonce":"n"}}"#,
        )
        .unwrap();
        assert_eq!(without_aad.resource.associated_data, "");
        assert_eq!(without_aad.summary, "");
    }

    #[test]
    fn error_and_bill_documents_round_trip() {
        let error: ErrorBody = round_trip(
            r#"{"code":"PARAM_ERROR","message":"参数错误","detail":{"field":"/amount/currency","value":"XYZ","issue":"Currency code is invalid","location":"body"}}"#,
        );
        assert_eq!(error.code, "PARAM_ERROR");
        let bare: ErrorBody =
            round_trip(r#"{"code":"SYSTEM_ERROR","message":"系统繁忙，请稍后重试"}"#);
        assert_eq!(bare.detail, None);
        let bill: TradeBillResponse = round_trip(
            r#"{"hash_type":"SHA1","hash_value":"79bb0f45fc4c42234a918000b2668d689e2bde04",
                "download_url":"https://api.mch.weixin.qq.com/v3/billdownload/file?token=xxx"}"#,
        );
        assert_eq!(bill.hash_type, "SHA1");
    }

    #[test]
    fn request_payment_uses_the_mini_program_names() {
        let payment = RequestPayment {
            app_id: "wx2421b1c4370ec43b".into(),
            time_stamp: "1554208460".into(),
            nonce_str: "593BEC0C930BF1AFEB40B4A08C8FB242".into(),
            package: "prepay_id=wx201410272009395522657a690389285100".into(),
            sign_type: "RSA".into(),
            pay_sign: "c2ln".into(),
        };
        assert_eq!(
            serde_json::to_string(&payment).unwrap(),
            r#"{"appId":"wx2421b1c4370ec43b","timeStamp":"1554208460","nonceStr":"593BEC0C930BF1AFEB40B4A08C8FB242","package":"prepay_id=wx201410272009395522657a690389285100","signType":"RSA","paySign":"c2ln"}"#
        );
        let back: RequestPayment = round_trip(&serde_json::to_string(&payment).unwrap());
        assert_eq!(back, payment);
    }
}
