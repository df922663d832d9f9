//! Request bodies checked the way WeChat Pay checks them, first as JSON
//! (no undocumented key, every required key present: wechatpay-v3.md §3,
//! §6) and then field by field, each refusal a `PARAM_ERROR` whose
//! `detail.field` is a JSON Pointer. Only the keys the simulator acts on
//! are checked in depth; documented ones it ignores (`detail`,
//! `scene_info`, `goods_detail`, ...) are accepted as they come.

use super::api_error::ApiError;
use crate::clock::{parse_rfc3339, UnixMs};
use crate::pay::wire::{CloseRequest, JsapiPrepayRequest, RefundRequest, CURRENCY_CNY};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// One documented key of a request object.
struct Field {
    name: &'static str,
    required: bool,
    /// The documented keys of a nested object the simulator checks.
    children: Option<&'static [Field]>,
}

const fn field(name: &'static str, required: bool) -> Field {
    Field {
        name,
        required,
        children: None,
    }
}

const fn object(name: &'static str, required: bool, children: &'static [Field]) -> Field {
    Field {
        name,
        required,
        children: Some(children),
    }
}

/// `POST /v3/pay/transactions/jsapi` (§3).
const PREPAY_FIELDS: &[Field] = &[
    field("appid", true),
    field("mchid", true),
    field("description", true),
    field("out_trade_no", true),
    field("time_expire", false),
    field("attach", false),
    field("notify_url", true),
    field("goods_tag", false),
    field("support_fapiao", false),
    field("limit_pay", false),
    object(
        "amount",
        true,
        &[field("total", true), field("currency", false)],
    ),
    object(
        "payer",
        true,
        &[field("openid", true), field("identity", false)],
    ),
    field("detail", false),
    field("scene_info", false),
    field("settle_info", false),
    field("subsidy_info", false),
];

/// `POST /v3/refund/domestic/refunds` (§6).
const REFUND_FIELDS: &[Field] = &[
    field("transaction_id", false),
    field("out_trade_no", false),
    field("out_refund_no", true),
    field("reason", false),
    field("notify_url", false),
    field("funds_account", false),
    object(
        "amount",
        true,
        &[
            field("refund", true),
            field("total", true),
            field("currency", true),
            field("from", false),
        ],
    ),
    field("goods_detail", false),
];

const CLOSE_FIELDS: &[Field] = &[field("mchid", true)];

const DESCRIPTION_BYTES_MAX: usize = 127;
const ATTACH_BYTES_MAX: usize = 128;
const PREPAY_NOTIFY_URL_BYTES_MAX: usize = 255;
const REFUND_NOTIFY_URL_BYTES_MAX: usize = 256;
const OPENID_BYTES_MAX: usize = 128;
const REASON_BYTES_MAX: usize = 80;
const OUT_REFUND_NO_BYTES_MAX: usize = 64;
/// 10 million yuan, the gateway's own ceiling: larger is surely a bug.
const AMOUNT_FEN_MAX: i64 = 1_000_000_000;

/// A prepay request, checked, with its deadline parsed.
#[derive(Debug)]
pub struct ValidPrepay {
    pub request: JsapiPrepayRequest,
    pub raw: Value,
    pub time_expire_ms: Option<UnixMs>,
}

pub fn prepay(body: &[u8]) -> Result<ValidPrepay, ApiError> {
    let raw = json_object(body)?;
    if raw.get("payer").is_some_and(Value::is_object) && raw.pointer("/payer/openid").is_none() {
        return Err(ApiError::openid_missing());
    }
    check_fields(&raw, PREPAY_FIELDS, "")?;
    let request: JsapiPrepayRequest = typed(&raw)?;
    check_out_trade_no(&request.out_trade_no, "/out_trade_no")?;
    check_text(
        &request.description,
        "/description",
        1,
        DESCRIPTION_BYTES_MAX,
    )?;
    if let Some(attach) = &request.attach {
        check_text(attach, "/attach", 0, ATTACH_BYTES_MAX)?;
    }
    check_notify_url(&request.notify_url, PREPAY_NOTIFY_URL_BYTES_MAX)?;
    if request.payer.openid.is_empty() {
        return Err(ApiError::openid_missing());
    }
    check_text(&request.payer.openid, "/payer/openid", 1, OPENID_BYTES_MAX)?;
    check_amount(request.amount.total, "/amount/total")?;
    if !(request.amount.currency.is_empty() || request.amount.currency == CURRENCY_CNY) {
        return Err(ApiError::param("/amount/currency", "币种不支持，仅支持CNY"));
    }
    let time_expire_ms = match request.time_expire.as_str() {
        "" => None,
        text => Some(
            parse_rfc3339(text)
                .ok_or_else(|| ApiError::param("/time_expire", "time_expire时间格式错误"))?,
        ),
    };
    Ok(ValidPrepay {
        request,
        raw,
        time_expire_ms,
    })
}

pub fn refund(body: &[u8]) -> Result<RefundRequest, ApiError> {
    let raw = json_object(body)?;
    check_fields(&raw, REFUND_FIELDS, "")?;
    let request: RefundRequest = typed(&raw)?;
    if request.transaction_id.is_none() && request.out_trade_no.is_none() {
        return Err(ApiError::param_missing("/out_trade_no"));
    }
    if let Some(out_trade_no) = &request.out_trade_no {
        check_out_trade_no(out_trade_no, "/out_trade_no")?;
    }
    let number = &request.out_refund_no;
    let number_ok = (1..=OUT_REFUND_NO_BYTES_MAX).contains(&number.len())
        && number
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"_-|*@".contains(&byte));
    if !number_ok {
        return Err(ApiError::param("/out_refund_no", "商户退款单号格式错误"));
    }
    if let Some(reason) = &request.reason {
        check_text(reason, "/reason", 0, REASON_BYTES_MAX)?;
    }
    if let Some(notify_url) = &request.notify_url {
        check_notify_url(notify_url, REFUND_NOTIFY_URL_BYTES_MAX)?;
    }
    check_amount(request.amount.refund, "/amount/refund")?;
    check_amount(request.amount.total, "/amount/total")?;
    if request.amount.currency != CURRENCY_CNY {
        return Err(ApiError::param("/amount/currency", "币种不支持，仅支持CNY"));
    }
    Ok(request)
}

pub fn close(body: &[u8]) -> Result<CloseRequest, ApiError> {
    let raw = json_object(body)?;
    check_fields(&raw, CLOSE_FIELDS, "")?;
    typed(&raw)
}

/// The body's `mchid`, when it is a JSON object that has one: the header's
/// must equal it.
pub fn body_mchid(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    value.get("mchid")?.as_str().map(str::to_owned)
}

/// UTF-8 JSON object, without the 4-byte characters WeChat refuses.
fn json_object(body: &[u8]) -> Result<Value, ApiError> {
    let text =
        std::str::from_utf8(body).map_err(|_| ApiError::param("/", "请求主体不是合法的UTF-8"))?;
    if text.chars().any(|c| u32::from(c) > 0xFFFF) {
        return Err(ApiError::param("/", "请求主体含有不支持的4字节UTF-8字符"));
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|error| ApiError::param("/", &format!("请求主体不是合法的JSON: {error}")))?;
    if !value.is_object() {
        return Err(ApiError::param("/", "请求主体必须是JSON对象"));
    }
    Ok(value)
}

/// No key outside `fields`, every required one present, nested objects
/// checked the same way.
fn check_fields(value: &Value, fields: &[Field], pointer: &str) -> Result<(), ApiError> {
    let Some(map) = value.as_object() else {
        return Err(ApiError::param(pointer, "应为JSON对象"));
    };
    if let Some(extra) = map
        .keys()
        .find(|key| !fields.iter().any(|field| field.name == key.as_str()))
    {
        return Err(ApiError::param_extra(&format!("{pointer}/{extra}")));
    }
    for field in fields {
        let path = format!("{pointer}/{}", field.name);
        match (map.get(field.name), field.children) {
            (None, _) if field.required => return Err(ApiError::param_missing(&path)),
            (Some(Value::Null), _) => {
                return Err(ApiError::param(&path, "参数不允许为null"));
            }
            (Some(child), Some(children)) => check_fields(child, children, &path)?,
            _ => {}
        }
    }
    Ok(())
}

/// Deserialises into a wire type; a type error names its field.
fn typed<T: DeserializeOwned>(raw: &Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(raw).map_err(|error| {
        let path = error.path().to_string();
        let pointer = format!("/{}", path.replace('.', "/"));
        ApiError::param(&pointer, &format!("参数类型错误: {}", error.inner()))
    })
}

/// 6–32 characters of digits, letters and `_ - | *`.
fn check_out_trade_no(number: &str, pointer: &str) -> Result<(), ApiError> {
    let ok = (6..=32).contains(&number.len())
        && number
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"_-|*".contains(&byte));
    if ok {
        Ok(())
    } else {
        Err(ApiError::param(pointer, "商户订单号格式错误"))
    }
}

fn check_text(
    text: &str,
    pointer: &str,
    bytes_min: usize,
    bytes_max: usize,
) -> Result<(), ApiError> {
    if (bytes_min..=bytes_max).contains(&text.len()) {
        Ok(())
    } else {
        let message = format!("长度应为{bytes_min}到{bytes_max}字节");
        Err(ApiError::param(pointer, &message))
    }
}

/// Absolute `http(s)://host...`, no query string. Intranet hosts are
/// allowed here (the real service refuses them) so tests can listen on
/// 127.0.0.1.
fn check_notify_url(url: &str, bytes_max: usize) -> Result<(), ApiError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let ok = url.len() <= bytes_max
        && rest.is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
        && !url.contains('?');
    if ok {
        Ok(())
    } else {
        Err(ApiError::param("/notify_url", "notify_url格式不正确"))
    }
}

fn check_amount(fen: i64, pointer: &str) -> Result<(), ApiError> {
    if (1..=AMOUNT_FEN_MAX).contains(&fen) {
        Ok(())
    } else {
        Err(ApiError::param(
            pointer,
            "金额必须为大于0的整数（单位：分）",
        ))
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
