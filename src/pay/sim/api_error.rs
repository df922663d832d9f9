//! Every error answer of the simulated API: status, `{"code","message",
//! "detail"?}` body and the internal number that ends the `Request-ID`
//! (`<hex>-<number>`). Messages and numbers are WeChat's where the fact
//! sheet records them (wechatpay-v3.md §0, §1, §3, §6, §7, §8); the rest are
//! the simulator's own and say nothing about the real service.

use crate::pay::wire::ErrorBody;
use serde_json::{json, Value};

/// Internal numbers the fact sheet reports; anything else gets
/// [`GENERIC_INTERNAL_CODE`] (real numbers vary, clients must not map them).
const SIGN_ERROR_INTERNAL_CODE: u32 = 268_443_699;
const FREQUENCY_LIMITED_INTERNAL_CODE: u32 = 268_447_840;
const ORDER_NOT_EXIST_INTERNAL_CODE: u32 = 268_512_771;
const REENTRY_MISMATCH_INTERNAL_CODE: u32 = 268_498_688;
const ORDER_PAID_INTERNAL_CODE: u32 = 268_498_689;
const EXTRA_PARAMETER_INTERNAL_CODE: u32 = 270_924_358;
const OPENID_MISSING_INTERNAL_CODE: u32 = 268_501_013;
/// The simulator's own number for errors whose real one is not recorded.
pub const GENERIC_INTERNAL_CODE: u32 = 268_435_456;

/// How much of the request body `truncated_sign_message` shows: real
/// SIGN_ERROR answers show the first eight bytes (`{"amount`, `{\n"appid`).
const SIGN_MESSAGE_BODY_SHOWN_BYTES: usize = 8;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub detail: Option<Value>,
    pub internal_code: u32,
}

impl ApiError {
    fn new(status: u16, code: &str, message: &str) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.to_owned(),
            detail: None,
            internal_code: GENERIC_INTERNAL_CODE,
        }
    }

    fn with_detail(mut self, detail: Value) -> Self {
        self.detail = Some(detail);
        self
    }

    fn with_internal_code(mut self, internal_code: u32) -> Self {
        self.internal_code = internal_code;
        self
    }

    /// The JSON body.
    pub fn body(&self) -> Vec<u8> {
        let body = ErrorBody {
            code: self.code.clone(),
            message: self.message.clone(),
            detail: self.detail.clone(),
        };
        serde_json::to_vec(&body).expect("an error body serialises")
    }

    // -- request rules (§0, §1) ---------------------------------------------

    pub fn missing_accept_or_user_agent() -> Self {
        Self::new(400, "INVALID_REQUEST", "Http头缺少Accept或User-Agent")
    }

    /// A body past the simulator's bound (the real limit is not published).
    pub fn body_too_large(limit_bytes: usize) -> Self {
        let message = format!("请求报文过大 (simulator limit {limit_bytes} bytes)");
        Self::new(413, "INVALID_REQUEST", &message)
    }

    /// Header `mchid` differs from the body's (or the query's) `mchid`.
    pub fn mchid_mismatch(place: &str) -> Self {
        let message = format!("http header中的mchid与{place}中的mchid不匹配");
        Self::new(400, "INVALID_REQUEST", &message)
    }

    /// Authorization missing, malformed, for another merchant, another
    /// certificate, or stale: 401 with `detail.location = authorization`.
    pub fn authorization(message: &str, field: &str, issue: &str) -> Self {
        Self::new(401, "SIGN_ERROR", message)
            .with_detail(json!({
                "detail": {"issue": issue},
                "field": field,
                "location": "authorization",
            }))
            .with_internal_code(SIGN_ERROR_INTERNAL_CODE)
    }

    /// The signature does not verify: the shape of real answers, with the
    /// message WeChat rebuilt (body cut short) so a merchant can compare.
    pub fn sign_not_match(method: &str, url: &str, sign_message: &[u8]) -> Self {
        let head_len = sign_message_head_len(sign_message);
        let shown_len = (head_len + SIGN_MESSAGE_BODY_SHOWN_BYTES).min(sign_message.len());
        let mut truncated = String::from_utf8_lossy(&sign_message[..shown_len]).into_owned();
        if !truncated.ends_with('\n') {
            truncated.push('\n');
        }
        Self::new(401, "SIGN_ERROR", "错误的签名，验签失败")
            .with_detail(json!({
                "detail": {"issue": "sign not match"},
                "field": "signature",
                "location": "authorization",
                "sign_information": {
                    "method": method,
                    "sign_message_length": sign_message.len(),
                    "truncated_sign_message": truncated,
                    "url": url,
                },
            }))
            .with_internal_code(SIGN_ERROR_INTERNAL_CODE)
    }

    pub fn not_found(path: &str) -> Self {
        Self::new(404, "NOT_FOUND", &format!("请求的资源不存在: {path}"))
    }

    // -- parameters ----------------------------------------------------------

    /// `field` is a JSON Pointer (`/amount/total`).
    pub fn param(field: &str, message: &str) -> Self {
        Self::new(400, "PARAM_ERROR", message).with_detail(json!({
            "field": field,
            "location": "body",
        }))
    }

    pub fn param_missing(field: &str) -> Self {
        let message = format!("输入源“{field}”映射到字段时缺少必填字段");
        Self::param(field, &message)
    }

    pub fn param_extra(field: &str) -> Self {
        Self::param(field, "参数中含有非法的额外参数")
            .with_internal_code(EXTRA_PARAMETER_INTERNAL_CODE)
    }

    pub fn param_query(name: &str, message: &str) -> Self {
        Self::new(400, "PARAM_ERROR", message).with_detail(json!({
            "field": name,
            "location": "query",
        }))
    }

    pub fn openid_missing() -> Self {
        Self::param("/payer/openid", "JSAPI支付必须传openid")
            .with_internal_code(OPENID_MISSING_INTERNAL_CODE)
    }

    // -- orders (§3, §6) -------------------------------------------------------

    pub fn appid_mchid_not_match() -> Self {
        Self::new(400, "APPID_MCHID_NOT_MATCH", "AppID和mch_id不匹配")
    }

    /// A re-post of an `out_trade_no` (or `out_refund_no`) with other
    /// parameters. The code name is not confirmed (wechatpay-v3.md
    /// uncertainty 3); the message and internal number are WeChat's.
    pub fn reentry_mismatch() -> Self {
        Self::new(400, "INVALID_REQUEST", "请求重入时，参数与首次请求时不一致")
            .with_internal_code(REENTRY_MISMATCH_INTERNAL_CODE)
    }

    /// A closed or expired order's number posted again: 403, as in the
    /// current JSAPI error table.
    pub fn out_trade_no_used() -> Self {
        Self::new(403, "OUT_TRADE_NO_USED", "该订单已失效")
    }

    /// Closing (or re-posting) a paid order. The fact sheet has the code
    /// and message but no HTTP status (uncertainty 3); 400 is the
    /// simulator's choice, the status of the other business errors.
    pub fn order_paid() -> Self {
        Self::new(400, "ORDER_PAID", "订单已支付").with_internal_code(ORDER_PAID_INTERNAL_CODE)
    }

    pub fn order_not_exist() -> Self {
        Self::new(404, "ORDER_NOT_EXIST", "订单不存在")
            .with_internal_code(ORDER_NOT_EXIST_INTERNAL_CODE)
    }

    /// Refund of an unknown or unpaid order, unknown refund, expired bill link.
    pub fn resource_not_exists(message: &str) -> Self {
        Self::new(404, "RESOURCE_NOT_EXISTS", message)
    }

    pub fn no_statement_exist() -> Self {
        Self::new(400, "NO_STATEMENT_EXIST", "请求的账单文件不存在")
    }

    // -- the service itself ------------------------------------------------------

    pub fn system_error() -> Self {
        Self::new(500, "SYSTEM_ERROR", "系统繁忙，请稍后重试")
    }

    pub fn frequency_limited() -> Self {
        Self::new(429, "FREQUENCY_LIMITED", "频率超限")
            .with_internal_code(FREQUENCY_LIMITED_INTERNAL_CODE)
    }

    /// A bound of the simulator itself was reached (orders, refunds).
    pub fn simulator_full(what: &str) -> Self {
        Self::new(
            500,
            "SYSTEM_ERROR",
            &format!("simulator limit reached: {what}"),
        )
    }

    /// A fault-injected answer with the usual message of its code.
    pub fn injected(status: u16, code: &str, message: Option<&str>) -> Self {
        let usual = match code {
            "SYSTEM_ERROR" => Self::system_error(),
            "FREQUENCY_LIMITED" => Self::frequency_limited(),
            _ => Self::new(status, code, "simulated failure"),
        };
        Self {
            status,
            code: code.to_owned(),
            message: message.map_or(usual.message, str::to_owned),
            detail: None,
            internal_code: usual.internal_code,
        }
    }
}

/// Length of the four lines before the body in a request sign message
/// (`method\nurl\nts\nnonce\nbody\n`); the body itself may hold newlines.
fn sign_message_head_len(sign_message: &[u8]) -> usize {
    sign_message
        .iter()
        .enumerate()
        .filter(|(_, &byte)| byte == b'\n')
        .nth(3)
        .map_or(sign_message.len(), |(index, _)| index + 1)
}

#[cfg(test)]
#[path = "api_error_tests.rs"]
mod tests;
